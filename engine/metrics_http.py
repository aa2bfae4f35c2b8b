"""Start a process's Prometheus endpoint from its config: one helper for every process.

Every process has a ``metrics`` key in its TOML section (and a ``--metrics`` flag):
an address ``HOST:PORT`` to serve ``/metrics`` on (``PORT`` alone means 127.0.0.1,
port 0 picks a free one, ``""`` or ``off`` turns it off).  Defaults are loopback,
one port per process (:data:`DEFAULT_PORTS`).  :func:`serve` starts the endpoint
in a daemon thread over a fresh registry holding the process's collectors and the
standard process collector (CPU, memory, open files); the bound URL goes in the
ready line as ``"metrics"``.

Hot loops keep their counters as plain ints and arrays and expose them through a
:class:`Collector` read at scrape time (no lock and no prometheus call per
message).  :func:`subscriber_families` turns an
:class:`bindings.client.EventSubscriber`'s counters into metrics: the gaps a
subscriber filled from the replay service are the core's PUB high-water drops
(ZeroMQ's PUB drops silently; only the receiver can count them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector as _Collector
from prometheus_client.samples import Sample

# Default /metrics port per process (all on 127.0.0.1); `bursa run` serves its own on 9150.
DEFAULT_PORTS = {
    "run": 9150,
    "core": 9151,
    "marketdata": 9152,
    "clearing": 9153,
    "wallet": 9154,
    "gateway": 9155,
    "api": 9156,
}
DEFAULT_HOST = "127.0.0.1"
OFF = ("", "off")

Family = GaugeMetricFamily | CounterMetricFamily | Any


class MetricsAddressError(ValueError):
    """A ``metrics`` setting that is not ``HOST:PORT``, ``PORT``, ``""`` or ``off``."""


def default_address(process: str) -> str:
    """The default ``metrics`` setting of ``process`` (loopback, its own port)."""
    return f"{DEFAULT_HOST}:{DEFAULT_PORTS[process]}"


def parse_address(addr: str) -> tuple[str, int] | None:
    """``HOST:PORT`` / ``PORT`` -> (host, port); ``""`` / ``off`` -> None."""
    addr = addr.strip()
    if addr in OFF:
        return None
    host, sep, port_s = addr.rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_s)
    except ValueError as e:
        raise MetricsAddressError(f"metrics address {addr!r}: not HOST:PORT") from e
    if not 0 <= port <= 65535:
        raise MetricsAddressError(f"metrics address {addr!r}: port out of range")
    return host, port


class Collector(_Collector):
    """A collector from a function returning metric families (read at scrape time)."""

    def __init__(self, collect: Callable[[], Iterable[Family]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Family]:
        """The families of this scrape."""
        return self._collect()


def serve(addr: str, *collectors: _Collector) -> tuple[str | None, CollectorRegistry]:
    """Serve ``collectors`` on ``addr`` (see the module doc); returns (URL or None, registry).

    Raises
    ------
    MetricsAddressError
        A malformed address.
    OSError
        The port is taken.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    for c in collectors:
        registry.register(c)
    where = parse_address(addr)
    if where is None:
        return None, registry
    host, port = where
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound = int(server.server_address[1])
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{bound}/metrics", registry


def counter(name: str, doc: str, value: float, **labels: str) -> CounterMetricFamily:
    """One counter sample (``name`` without ``_total``) with optional labels."""
    fam = CounterMetricFamily(name, doc, labels=list(labels))
    fam.add_metric(list(labels.values()), value)
    return fam


def gauge(name: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
    """One gauge sample with optional labels."""
    fam = GaugeMetricFamily(name, doc, labels=list(labels))
    fam.add_metric(list(labels.values()), value)
    return fam


def subscriber_families(esub: Any, prefix: str) -> list[Family]:
    """Counters of an EventSubscriber following the core (``prefix``: the process's)."""
    if esub is None:
        return []
    return [
        gauge(f"{prefix}_core_next_seq", "next core seq this process expects", esub.next_seq),
        counter(
            f"{prefix}_core_gaps",
            "gaps in the core's live event stream filled from its replay service "
            "(frames the core's PUB dropped at its high-water mark, or a core restart)",
            esub.gaps_filled,
        ),
        counter(f"{prefix}_core_frames_live", "core event frames received live", esub.frames_live),
        counter(
            f"{prefix}_core_frames_replayed",
            "core event frames fetched from the replay service",
            esub.frames_replayed,
        ),
    ]


def sample_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry exports now (``_bucket``/``_total``... included)."""
    names: set[str] = set()
    for fam in registry.collect():
        s: Sample
        for s in fam.samples:
            names.add(s.name)
    return names


class PeerCounter:
    """Connected peers of a bound ZeroMQ socket (e.g. a PUB's subscribers), counted
    from its monitor events by a daemon thread that owns the monitor socket.

    The socket's own thread calls :meth:`stop` before closing the socket.
    """

    def __init__(self, sock: Any) -> None:
        import zmq

        self.peers = 0
        self.accepted = 0
        self._sock = sock
        self._mon = sock.get_monitor_socket(
            zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_MONITOR_STOPPED
        )
        self._thread = threading.Thread(target=self._run, name="peer-counter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        try:
            while True:
                ev = recv_monitor_message(self._mon)
                if ev["event"] == zmq.EVENT_ACCEPTED:
                    self.peers += 1
                    self.accepted += 1
                elif ev["event"] == zmq.EVENT_DISCONNECTED:
                    self.peers = max(0, self.peers - 1)
                elif ev["event"] == zmq.EVENT_MONITOR_STOPPED:
                    return
        except zmq.ZMQError:
            return
        finally:
            self._mon.close(linger=0)

    def stop(self) -> None:
        """Stop monitoring (the thread closes its socket and ends)."""
        import zmq

        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            return
        self._thread.join(timeout=2)
