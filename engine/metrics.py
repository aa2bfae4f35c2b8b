"""The core's Prometheus metrics: plain counters in the loop, read at scrape time.

The command loop of :class:`engine.server.CoreServer` is hot and single-threaded,
so it never calls prometheus_client and never takes a lock: it adds to the ints,
lists and numpy arrays of :class:`CoreMetrics` once per loop turn (not per
command), and :class:`CoreCollector` turns them into metric families when
Prometheus scrapes (``bursa core --metrics HOST:PORT``; :mod:`engine.metrics_http`).
A scrape reads while the loop writes; a counter read mid-turn is at most one
turn behind, which is what a scrape of a running process means anyway.

Histograms keep Prometheus's own shape, one counter per ``le`` bucket bound
(:class:`Buckets`), exported with :class:`prometheus_client.core.HistogramMetricFamily`.
The journal's fdatasync time comes from :class:`TimedStorage`, the core's
storage with a clock around ``sync``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from typing import Any, cast

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from bursa_wire.layout import REPLY_DTYPE
from engine.wire.frames import STATUS_REJECTED
from pyx.enums import CmdKind, Reason

# Bucket bounds (upper, inclusive), seconds unless said otherwise.
ACK_BOUNDS_S = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
SYNC_BOUNDS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 1.0,
)  # fmt: skip
SNAPSHOT_BOUNDS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BOUNDS = tuple(float(1 << i) for i in range(15))  # 1 .. 16384 commands
# Storage files whose fdatasync time is measured, by name prefix -> label.
SYNC_FILES = {"journal-": "journal", "events-": "event_log", "snapshot-": "snapshot"}
NS = 1e-9
# File names whose sync histogram TimedStorage remembers at most.
MAX_SYNC_NAMES = 64
# Byte offsets of the reply fields read per turn: strided slices of the reply bytes are
# C-speed and allocate one small bytes object (numpy calls cost microseconds each).
_REC = REPLY_DTYPE.itemsize
_FIELDS: Any = REPLY_DTYPE.fields
_KIND_AT: int = _FIELDS["kind"][1]
_STATUS_AT: int = _FIELDS["status"][1]
_REASON_AT: int = _FIELDS["reason"][1]
_REJECTED = bytes([STATUS_REJECTED])
# From this many commands a turn counts kinds with numpy, below with a Python loop
# (pyx/smallturn.pyx's METRICS_LOOP_MAX is the same bound).
NUMPY_FROM = 256


def _name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return str(value)


class Buckets:
    """One histogram's counters: a count per ``le`` bound, +Inf, and the sum.

    ``observe`` is a bisect and two additions (no allocation, no lock).
    """

    def __init__(self, bounds: tuple[float, ...]) -> None:
        assert list(bounds) == sorted(bounds) and bounds, bounds
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self.sum = 0.0

    def observe(self, value: float, n: int = 1) -> None:
        """``n`` observations of ``value`` (in the bounds' unit)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += n
        self.sum += value * n

    @property
    def count(self) -> int:
        """Observations so far."""
        return sum(self.counts)

    def family(self, name: str, doc: str, fam: HistogramMetricFamily | None = None,
               labels: tuple[str, ...] = ()) -> HistogramMetricFamily:  # fmt: skip
        """As a Prometheus histogram (cumulative buckets), added to ``fam`` if given."""
        counts = list(self.counts)  # one consistent copy of the list
        out = fam or HistogramMetricFamily(name, doc, labels=None)
        cum, buckets = 0, []
        for bound, c in zip(self.bounds, counts, strict=False):
            cum += c
            buckets.append((repr(bound), cum))
        buckets.append(("+Inf", cum + counts[-1]))
        out.add_metric(list(labels), buckets, self.sum)
        return out


class CoreMetrics:
    """Counters the core's loop updates (see the module doc); one instance per server."""

    def __init__(self) -> None:
        self.commands_by_kind = [0] * 256
        self.rejects_by: dict[tuple[int, int], int] = {}
        self.ack = Buckets(ACK_BOUNDS_S)
        self.batch = Buckets(BATCH_BOUNDS)
        self.sync = {label: Buckets(SYNC_BOUNDS_S) for label in SYNC_FILES.values()}
        self.snapshot = {
            "inline": Buckets(SNAPSHOT_BOUNDS_S),
            "background": Buckets(SNAPSHOT_BOUNDS_S),
        }
        self.turns = 0
        self.full_turns = 0
        self.turn_messages = 0
        self.turn_messages_max = 0
        self.pub_frames = 0
        self.background_started_ns = 0

    def turn_done(
        self, start_ns: int, n_cmds: int, n_messages: int, replies: bytes, full: bool
    ) -> None:
        """After a turn's replies left: ack latency, batch size, commands, rejects.

        ``start_ns``: ``time.perf_counter_ns()`` when the turn's poll returned (every
        command of the turn waited at least from then to its reply); ``replies``: the
        batch's reply records (``REPLY_DTYPE``, one per command, the kind echoed);
        ``full``: the turn stopped at a bound with messages possibly left queued.
        """
        self.turns += 1
        self.turn_messages = n_messages
        if n_messages > self.turn_messages_max:
            self.turn_messages_max = n_messages
        if full:
            self.full_turns += 1
        if n_cmds == 0:
            return
        self.ack.observe((time.perf_counter_ns() - start_ns) * NS, n_cmds)
        self.batch.observe(float(n_cmds))
        kinds = replies[_KIND_AT::_REC]
        by_kind = self.commands_by_kind
        if n_cmds < NUMPY_FROM:
            for k in kinds:
                by_kind[k] += 1
        else:
            counts = np.bincount(np.frombuffer(kinds, dtype=np.uint8), minlength=256)
            for k in np.flatnonzero(counts).tolist():
                by_kind[k] += int(counts[k])
        status = replies[_STATUS_AT::_REC]
        if _REJECTED in status:
            self.count_rejects(replies, kinds, status)

    def count_rejects(self, replies: bytes, kinds: bytes, status: bytes) -> None:
        """Rejected replies by (kind, reason) (only on turns that have some; also
        called by the compiled turn, :mod:`pyx.smallturn`)."""
        if len(status) >= NUMPY_FROM:
            rec = np.frombuffer(replies, dtype=REPLY_DTYPE)
            bad = rec[rec["status"] == STATUS_REJECTED]
            keys, counts = np.unique(
                bad["kind"].astype(np.int64) << 16 | bad["reason"], return_counts=True
            )
            for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
                k = (key >> 16, key & 0xFFFF)
                self.rejects_by[k] = self.rejects_by.get(k, 0) + n
            return
        at = status.find(_REJECTED)
        while at >= 0:
            off = at * _REC + _REASON_AT
            key = (kinds[at], int.from_bytes(replies[off : off + 2], "little"))
            self.rejects_by[key] = self.rejects_by.get(key, 0) + 1
            at = status.find(_REJECTED, at + 1)

    def snapshot_done(self, how: str, start_ns: int) -> None:
        """A snapshot written (``how``: inline or background), started at ``start_ns``
        (``time.monotonic_ns()``)."""
        self.snapshot[how].observe((time.monotonic_ns() - start_ns) * NS)


class TimedStorage:
    """A :class:`engine.storage.Storage` that times each ``sync`` of the storage it wraps
    into ``metrics.sync`` (by file kind) and passes everything else through."""

    def __init__(self, inner: Any, metrics: CoreMetrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.directory: str = getattr(inner, "directory", "")
        # File name -> its sync histogram (None: not measured), found once per name:
        # the journal's segment is synced every fsync-mode turn.
        self._sync_hist: dict[str, Buckets | None] = {}

    def sync(self, name: str) -> None:
        """fdatasync ``name``; its duration goes to the histogram of its file kind."""
        t0 = time.perf_counter_ns()
        self.inner.sync(name)
        dt = (time.perf_counter_ns() - t0) * NS
        hist = self.sync_histogram(name)
        if hist is not None:
            hist.observe(dt)

    def sync_histogram(self, name: str) -> Buckets | None:
        """The histogram the syncs of ``name`` are timed into (None: not measured)."""
        hists = self._sync_hist
        if name in hists:
            return hists[name]
        hist = hists[name] = self._hist_of(name)
        return hist

    def direct_io(self, name: str) -> tuple[int, Buckets | None] | None:
        """The wrapped storage's raw descriptor of ``name`` (``FileStorage.direct_io``)
        and the histogram a caller that syncs it itself times those syncs into; None
        when the wrapped storage has no raw descriptor (looked up on its class, so
        a wrapper's ``__getattr__`` never hands one out)."""
        inner_io = getattr(type(self.inner), "direct_io", None)
        if inner_io is None:
            return None
        got = inner_io(self.inner, name)
        if got is None:
            return None
        return got[0], self.sync_histogram(name)

    def direct_fds(self) -> dict[str, int] | None:
        """The wrapped storage's ``direct_fds`` (``FileStorage.direct_fds``; writes
        are not timed here, so a direct write skips nothing); None when the wrapped
        storage has none (looked up on its class, as :meth:`direct_io`)."""
        inner_fds = getattr(type(self.inner), "direct_fds", None)
        return None if inner_fds is None else cast("dict[str, int] | None", inner_fds(self.inner))

    def _hist_of(self, name: str) -> Buckets | None:
        if len(self._sync_hist) >= MAX_SYNC_NAMES:
            self._sync_hist.clear()  # bounded: segments come and go over a long run
        base = name.removeprefix("archive-")
        for prefix, label in SYNC_FILES.items():
            if base.startswith(prefix):
                return self.metrics.sync[label]
        return None

    def list(self) -> list[str]:
        """Passed through."""
        out: list[str] = self.inner.list()
        return out

    def size(self, name: str) -> int:
        """Passed through."""
        return int(self.inner.size(name))

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Passed through."""
        out: bytes = self.inner.read(name, offset, length)
        return out

    def append(self, name: str, data: bytes) -> None:
        """Passed through."""
        self.inner.append(name, data)

    def write_at(self, name: str, offset: int, data: bytes) -> None:
        """Passed through."""
        self.inner.write_at(name, offset, data)

    def truncate(self, name: str, size: int) -> None:
        """Passed through."""
        self.inner.truncate(name, size)

    def rename(self, src: str, dst: str) -> None:
        """Passed through."""
        self.inner.rename(src, dst)

    def remove(self, name: str) -> None:
        """Passed through."""
        self.inner.remove(name)

    def sync_dir(self) -> None:
        """Passed through."""
        self.inner.sync_dir()

    def close(self) -> None:
        """Passed through."""
        self.inner.close()


class CoreCollector:
    """The metric families of one running core, read from its server at scrape time."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.m: CoreMetrics = server.metrics

    def collect(self) -> Iterable[Any]:
        """Every family (names start ``bursa_core_``; docs/operations.md lists them)."""
        s, m = self.server, self.m
        cmds = CounterMetricFamily(
            "bursa_core_commands", "commands sequenced, by kind", labels=["kind"]
        )
        by_kind = list(m.commands_by_kind)
        for k, n in enumerate(by_kind):
            if n:
                cmds.add_metric([_name(CmdKind, k)], float(n))
        yield cmds
        rej = CounterMetricFamily(
            "bursa_core_rejects", "commands rejected, by kind and reason", labels=["kind", "reason"]
        )
        for (k, r), n in sorted(dict(m.rejects_by).items()):
            rej.add_metric([_name(CmdKind, k), _name(Reason, r)], float(n))
        yield rej
        refused = CounterMetricFamily(
            "bursa_core_frames_refused",
            "messages refused before sequencing (malformed, wrong socket), and control "
            "requests refused (rate_limited)",
            labels=["why"],
        )
        refused.add_metric(["malformed"], float(s.n_malformed))
        refused.add_metric(["wrong_socket"], float(s.n_wrong_socket))
        refused.add_metric(["rate_limited"], float(s.n_rate_limited))
        yield refused
        yield m.ack.family(
            "bursa_core_ack_latency_seconds",
            "per command: from the loop turn's start to its reply sent (journal sync included)",
        )
        yield m.batch.family("bursa_core_batch_commands", "commands per group commit")
        sync = HistogramMetricFamily(
            "bursa_core_fdatasync_seconds", "fdatasync time, by file", labels=["file"]
        )
        for label, b in m.sync.items():
            b.family("", "", sync, (label,))
        yield sync
        snap = HistogramMetricFamily(
            "bursa_core_snapshot_seconds",
            "snapshot duration (inline: the loop stalls; background: fork to reap)",
            labels=["how"],
        )
        for how, b in m.snapshot.items():
            b.family("", "", snap, (how,))
        yield snap
        yield _counter("bursa_core_batches", "group commits", s.n_batches)
        yield _counter("bursa_core_turns", "loop turns that received messages", m.turns)
        yield _counter(
            "bursa_core_full_turns",
            "turns cut at the batch or message bound (messages were left queued: a backlog)",
            m.full_turns,
        )
        yield _gauge(
            "bursa_core_turn_messages", "messages drained by the last turn", m.turn_messages
        )
        yield _gauge(
            "bursa_core_turn_messages_max", "most messages drained by one turn", m.turn_messages_max
        )
        yield _counter("bursa_core_pub_frames", "event frames published on PUB", m.pub_frames)
        yield _gauge("bursa_core_last_seq", "the last sequence number", int(s.sequencer.last_seq))
        yield _counter(
            "bursa_core_capacity_growths",
            "tables grown after start (capacity_* set too small; each growth stalls a command)",
            int(getattr(s.sequencer.core, "growth_count", 0)),
        )
        yield _gauge(
            "bursa_core_event_log_first_seq",
            "oldest seq the replay service can serve (retention)",
            s.eventlog.first_seq,
        )
        yield _gauge(
            "bursa_core_snapshot_running", "1 while a background snapshot is being written",
            int(s._snap_child is not None),
        )  # fmt: skip
        yield _counter(
            "bursa_core_snapshot_failures",
            "background snapshots that failed (retried later)",
            s.background_snapshot_failures,
        )


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))
