"""`bursa marketdata`: the public market-data feed as a process.

One single-threaded loop: follow the core's events (``EventSubscriber``: replay
on start and on gaps), turn them into feed messages (:class:`~marketdata.feed.Feed`),
publish them on PUB with topics ``<channel>.<symbol>.``, and answer snapshot and
replay requests on a ROUTER socket (:mod:`marketdata.service`) between events,
so answers are consistent with what was published.

Derived state, no checkpoint: on start it replays the core's event log from
seq 1 silently (its numbering is a deterministic function of the events), then
binds and prints its ready line; a kill -9 loses nothing.  Every queue is
bounded: PUB drops for a subscriber past ``sndhwm`` messages (the subscriber
sees the gap by sequence and recovers through the service), the replay window
holds ``replay_window`` messages per channel and symbol.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, fields
from types import FrameType
from typing import Any

import zmq

from bindings.client import CoreError, EventSubscriber
from engine import logs
from engine.metrics_http import Collector, PeerCounter, counter, gauge, subscriber_families
from engine.metrics_http import serve as serve_metrics
from marketdata.feed import REPLAY_WINDOW_DEFAULT, Feed, group_parts
from marketdata.service import handle

log = logging.getLogger("bursa.marketdata")

DEFAULT_PUB_ENDPOINT = "tcp://127.0.0.1:7101"
DEFAULT_SERVICE_ENDPOINT = "tcp://127.0.0.1:7102"
# Poll timeout when idle; after this long without live core events the replay
# service is asked once (a lost last frame is never stuck behind a quiet stream).
IDLE_POLL_MS = 50
IDLE_REPLAY_MS = 200
# Frames applied and requests answered per loop turn at most (fairness, bounded turns).
MAX_FRAMES_PER_TURN = 64
MAX_REQUESTS_PER_TURN = 64
# A PUB part holds the messages of one topic of one turn, back to back, up to this size.
PART_BYTES_MAX = 65_536
# Pause before asking the core again after its replay service failed to answer.
RETRY_S = 0.5


@dataclass
class MarketDataConfig:
    """Settings of ``bursa marketdata`` (TOML section ``[marketdata]``; flags override).

    Attributes
    ----------
    core_pub_endpoint, core_replay_endpoint : str
        The core's event PUB and replay endpoints (``pub`` / ``replay`` of its ready line).
    pub_endpoint, service_endpoint : str
        Where to bind the feed PUB and the snapshot/replay ROUTER.
    sndhwm : int
        PUB parts (each up to 64 KiB of messages) queued per subscriber before PUB
        drops for it.
    replay_window : int
        Messages kept per (channel, symbol) for replay requests.
    test_drop_every : int
        TESTS ONLY: do not send every N-th message (0: off); the sequence numbers
        still advance, so subscribers see gaps and must recover.
    """

    core_pub_endpoint: str = "tcp://127.0.0.1:7002"
    core_replay_endpoint: str = "tcp://127.0.0.1:7003"
    pub_endpoint: str = DEFAULT_PUB_ENDPOINT
    service_endpoint: str = DEFAULT_SERVICE_ENDPOINT
    sndhwm: int = 10_000
    replay_window: int = REPLAY_WINDOW_DEFAULT
    test_drop_every: int = 0
    metrics: str = "127.0.0.1:0"  # Prometheus /metrics address ("" or "off": none)

    def validate(self) -> None:
        """Raise ValueError on a setting out of range."""
        if self.sndhwm <= 0 or self.replay_window <= 0 or self.test_drop_every < 0:
            raise ValueError("sndhwm and replay_window must be > 0, test_drop_every >= 0")


class MarketDataServer:
    """Sockets + feed (see the module docstring)."""

    def __init__(self, config: MarketDataConfig, ctx: zmq.Context[Any] | None = None) -> None:
        config.validate()
        self.config = config
        self.ctx = ctx or zmq.Context.instance()
        self.feed = Feed(config.replay_window)
        self.esub = EventSubscriber(
            config.core_pub_endpoint, config.core_replay_endpoint, from_seq=1, ctx=self.ctx
        )
        self.stopping = False
        self.sent = 0
        self.dropped_on_purpose = 0
        self.catch_up()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, config.sndhwm)
        self.pub.bind(config.pub_endpoint)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.SNDHWM, 1000)
        self.router.bind(config.service_endpoint)
        self.pub_bound = self.pub.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.service_bound = self.router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.requests = 0
        self.subscribers = PeerCounter(self.pub)
        self._poller = zmq.Poller()
        self._poller.register(self.router, zmq.POLLIN)
        self._poller.register(self.esub.sub, zmq.POLLIN)
        self._last_live = time.monotonic()

    def catch_up(self) -> None:
        """Rebuild the feed from the core's replay service, publishing nothing."""
        esub = self.esub
        while True:
            frames, _next, last = esub.replay(esub.next_seq)
            for f in frames:
                if f.last_seq < esub.next_seq:
                    continue
                if f.first_seq > esub.next_seq:
                    raise CoreError(f"replay skipped from {esub.next_seq} to {f.first_seq}")
                self.feed.apply_events(f.events, f.last_seq)
                esub.next_seq = f.last_seq + 1
            self.feed.take()  # rebuilt, not re-sent: clients fill gaps from the service
            if not frames or esub.next_seq > last:
                break
        esub.caught_up = True
        # The rebuilt state is long-lived: out of the cyclic GC's sight, so its
        # collections (triggered by the per-message tuples) do not walk it.
        gc.collect()
        gc.freeze()
        log.info("caught up to core seq %d", self.feed.core_seq, extra={"seq": self.feed.core_seq})

    def status(self) -> dict[str, Any]:
        """Endpoints and counters (the ready line)."""
        return {
            "pub": self.pub_bound,
            "service": self.service_bound,
            "core_seq": self.feed.core_seq,
            "pid": os.getpid(),
        }

    def publish(self) -> None:
        """Send what the feed produced (the drop switch skips every N-th message).

        One ZeroMQ message per topic per turn (cut at PART_BYTES_MAX): the messages
        of a topic stay in sequence order, and the per-message cost of ZeroMQ on
        both sides is paid once per part (grouping in :func:`pyx.mdfeed.group_parts`).
        """
        out = self.feed.take()
        if not out:
            return
        parts, self.sent, dropped = group_parts(
            out, PART_BYTES_MAX, self.config.test_drop_every, self.sent
        )
        self.dropped_on_purpose += dropped
        send = self.pub.send
        for tp, part in parts:
            send(tp, zmq.SNDMORE)
            send(part)

    def turn(self, timeout_ms: int) -> None:
        """One loop turn: requests, then new core events, then publish."""
        poller = self._poller
        ready = dict(poller.poll(timeout_ms))
        if self.router in ready:
            for _ in range(MAX_REQUESTS_PER_TURN):
                try:
                    parts = self.router.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                ident, body = parts[0], parts[1:]
                delim = len(body) > 1 and body[0] == b""
                if delim:
                    body = body[1:]
                answer = handle(self.feed, body[0] if len(body) == 1 else b"")
                self.requests += 1
                # A client that does not read its answers loses them (bounded queue).
                with contextlib.suppress(zmq.Again):
                    self.router.send_multipart(
                        [ident, *((b"",) if delim else ()), *answer], zmq.NOBLOCK
                    )
        now = time.monotonic()
        idle = now - self._last_live >= IDLE_REPLAY_MS / 1000
        if self.esub.sub in ready or idle:
            frames = self.esub.poll(0, MAX_FRAMES_PER_TURN, idle_replay=idle)
            if self.esub.sub in ready or frames:
                self._last_live = now
            if idle:
                self._last_live = now
            for f in frames:
                self.feed.apply_events(f.events, f.last_seq)
            self.publish()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns 0."""
        while not self.stopping:
            try:
                self.turn(IDLE_POLL_MS)
            except (TimeoutError, CoreError) as e:
                # The core's replay service is away (restart): keep serving clients
                # from what we have and ask again; the stream resumes where it stopped.
                log.warning("core events unavailable: %s; retrying", e)
                time.sleep(RETRY_S)
        self.close()
        return 0

    def close(self) -> None:
        """Close every socket."""
        self.esub.close()
        self.subscribers.stop()
        self.pub.close()
        self.router.close()


def families(server: MarketDataServer) -> list[Any]:
    """The feed's metrics at scrape time (names start ``bursa_marketdata_``)."""
    p = "bursa_marketdata"
    return [
        gauge(f"{p}_subscribers", "connected feed subscribers", server.subscribers.peers),
        counter(f"{p}_connections", "feed connections accepted", server.subscribers.accepted),
        counter(f"{p}_messages", "feed messages numbered and published", server.sent),
        counter(
            f"{p}_dropped",
            "messages not sent on purpose (test_drop_every; PUB high-water drops are "
            "invisible to the sender: subscribers see the gap and ask the service)",
            server.dropped_on_purpose,
        ),
        counter(f"{p}_requests", "snapshot/replay requests answered", server.requests),
        gauge(f"{p}_core_seq", "last core seq applied to the feed", server.feed.core_seq),
        *subscriber_families(server.esub, p),
    ]


def load_config(path: str | None) -> dict[str, Any]:
    """Keys of the ``[marketdata]`` section of a TOML file (unknown keys are an error)."""
    if path is None:
        return {}
    with open(path, "rb") as f:
        data = tomllib.load(f)
    section: dict[str, Any] = data.get("marketdata", {})
    unknown = set(section) - {f.name for f in fields(MarketDataConfig)}
    if unknown:
        raise ValueError(f"unknown [marketdata] keys: {sorted(unknown)}")
    return section


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bursa marketdata", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="TOML file with a [marketdata] section (flags win)")
    p.add_argument("--core-pub-endpoint", help="the core's event PUB endpoint")
    p.add_argument("--core-replay-endpoint", help="the core's replay endpoint")
    p.add_argument("--pub-endpoint", help=f"feed PUB bind (default {DEFAULT_PUB_ENDPOINT})")
    p.add_argument(
        "--service-endpoint", help=f"snapshot/replay bind (default {DEFAULT_SERVICE_ENDPOINT})"
    )
    p.add_argument("--sndhwm", type=int, help="messages queued per subscriber (default 10000)")
    p.add_argument("--replay-window", type=int, help="messages kept per channel and symbol")
    p.add_argument("--test-drop-every", type=int, help="TESTS ONLY: skip every N-th message")
    p.add_argument("--metrics", help="Prometheus /metrics HOST:PORT (default 127.0.0.1:0; off)")
    logs.add_arguments(p)
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> MarketDataConfig:
    """File settings overridden by command-line flags."""
    values = load_config(args.config)
    for f in fields(MarketDataConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    return MarketDataConfig(**values)


def main(argv: list[str] | None = None) -> int:
    """Run the feed until SIGTERM/SIGINT; prints one JSON ready line on stdout."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logs.setup("marketdata", args.log_format, args.log_level)
    try:
        config = config_from_args(args)
        server = MarketDataServer(config)
        url, _ = serve_metrics(config.metrics, Collector(lambda: families(server)))
    except (ValueError, OSError, zmq.ZMQError, CoreError, TimeoutError) as e:
        print(f"bursa marketdata: {type(e).__name__}: {e}", file=sys.stderr)
        return 1

    def _stop(signum: int, frame: FrameType | None) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ready = {"ready": True, **server.status(), "metrics": url, "config": asdict(config)}
    print(json.dumps(ready), flush=True)
    return server.run()


if __name__ == "__main__":
    sys.exit(main())
