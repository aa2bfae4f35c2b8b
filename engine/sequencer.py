"""The sequencer: numbers command batches, makes them durable, applies them.

One :meth:`Sequencer.submit` per batch is the whole write path of the core::

    seq/ts_ns stamped -> one journal append -> read-back check -> core.apply
    -> fdatasync (fsync mode) -> (events, replies) to the caller

(:meth:`Sequencer.stage` and :meth:`Sequencer.make_durable` are its two halves,
for a caller that prepares its output before the sync: the server.)

Group commit is the caller's job: it passes every pending command as one batch,
so the cost of the sync is shared.  In ``fsync`` mode ``submit`` returns only
after the batch is durable, so nothing the caller publishes from its result can
be lost.  Any journal failure raises :class:`~engine.journal.JournalWriteError`:
the caller must not acknowledge the batch and must restart through recovery.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from bursa_wire.layout import CMD_DTYPE, CMD_SIZE, EV_DTYPE, REPLY_DTYPE
from engine import variants as variants_mod
from engine.clock import Clock
from engine.corelike import CoreClass
from engine.highwater import HighWater
from engine.journal import (
    DEFAULT_SEGMENT_BYTES,
    MAX_BATCH_CMDS,
    MIN_BATCH_BYTES,
    ArchiveMode,
    JournalWriter,
)
from engine.recovery import EventSink, recover
from engine.snapshot import (
    SnapshotWriteError,
    prune_snapshots,
    snapshot_name,
    write_snapshot,
)
from engine.storage import Storage
from pyx.core import stamp_batch

log = logging.getLogger("bursa.sequencer")

Mode = Literal["fsync", "async", "none"]
MODES: tuple[Mode, ...] = ("fsync", "async", "none")
DEFAULT_SNAPSHOT_EVERY_CMDS = 5_000_000
DEFAULT_SNAPSHOT_EVERY_NS = 300 * 1_000_000_000
#: Broken variant (simulator self-test): in fsync mode return before the sync; sync lazily.
VARIANT_ACK_BEFORE_SYNC = variants_mod.ACK_BEFORE_SYNC

#: Smallest batch whose sync is overlapped with apply (below it the two thread
#: hand-offs cost more than the apply they would hide).
OVERLAP_MIN_CMDS = 256
#: The durable high-water record (engine.highwater) is rewritten at most this often
#: after journal syncs (one small extra fdatasync per interval), and always at
#: snapshots and at close.
DEFAULT_HIGH_WATER_EVERY_NS = 100_000_000
#: Snapshot intervals at least this large mean "never": the caller drives snapshots
#: (the server, which syncs its event log first).
SNAPSHOT_NEVER = 1 << 62
#: Largest batch :meth:`Sequencer.direct_journal` hands to the compiled turn.
DIRECT_MAX_CMDS = 64

_EMPTY_EVENTS = np.zeros(0, dtype=EV_DTYPE)
_EMPTY_REPLIES = np.zeros(0, dtype=REPLY_DTYPE)


@dataclass
class SequencerStats:
    """Counters since open (for the bench and the simulator)."""

    batches: int = 0
    commands: int = 0
    syncs: int = 0
    snapshots: int = 0
    snapshot_failures: int = 0
    high_water_writes: int = 0


class Sequencer:
    """Sequencing, journaling and snapshots around one core.

    Build with :meth:`open`; it runs recovery first.  Attributes ``core``,
    ``report`` (the :class:`~engine.recovery.RecoveryReport` of the open) and
    ``stats`` are public for reading.
    """

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        *,
        mode: Mode = "fsync",
        snapshot_every_cmds: int = DEFAULT_SNAPSHOT_EVERY_CMDS,
        snapshot_every_ns: int = DEFAULT_SNAPSHOT_EVERY_NS,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        archive: ArchiveMode = "rename",
        variants: frozenset[str] = frozenset(),
        on_events: EventSink | None = None,
        core_cls: CoreClass | None = None,
        overlap_sync: bool = False,
        known_seq: int = 0,
        accept_journal_loss: bool = False,
        high_water_every_ns: int = DEFAULT_HIGH_WATER_EVERY_NS,
        defer_high_water: bool = False,
    ) -> None:
        """Recover the core from ``storage``; then ready for :meth:`submit`.

        Parameters
        ----------
        storage, clock
            The disk and time interfaces (real or simulated).
        mode : {"fsync", "async", "none"}
            ``fsync``: a batch is fdatasync'd before submit returns (default).
            ``async``: written, not synced.  ``none``: not written (benchmarks only).
        snapshot_every_cmds : int
            Take a snapshot after at least this many commands since the last one.
        snapshot_every_ns : int
            ... or when this much monotonic time (ns) passed since the last one.
        segment_bytes : int
            Journal segment size bound (bytes).
        archive : {"rename", "delete"}
            What happens to segments no kept snapshot needs any more.
        variants : frozenset of str
            Broken variants for the simulator's self-test (never in production).
        on_events : callable, optional
            Receives the events of every batch replayed by recovery.
        core_cls : CoreClass, optional
            State machine class (default ``engine.core.Core``).
        overlap_sync : bool
            fsync mode: run the fdatasync of batches of at least
            ``OVERLAP_MIN_CMDS`` commands on a helper thread while the core
            applies them (submit still returns only after both).  Off by default;
            the simulator keeps it off so that everything runs on one thread.
        known_seq : int
            A seq the caller knows was durable (evidence for recovery, e.g. the
            event log in fsync mode).
        accept_journal_loss : bool
            Operator override: start even if the journal ends before the evidence.
        high_water_every_ns : int
            Least monotonic time between two writes of the high-water record.
        defer_high_water : bool
            fsync mode: ``submit`` does not write the high-water record (one more
            fdatasync every ``high_water_every_ns``); the caller calls
            :meth:`note_durable` once the batch's acknowledgements have left, so
            that sync never delays an acknowledgement.

        Raises
        ------
        JournalCorrupt
            Recovery found damage inside the durable prefix.
        JournalLoss
            The journal ends before what was durably acknowledged.
        """
        if mode not in MODES:
            raise ValueError(f"durability mode must be one of {MODES}, not {mode!r}")
        if snapshot_every_cmds <= 0 or snapshot_every_ns <= 0:
            raise ValueError("snapshot intervals must be positive")
        core, report = recover(
            storage,
            variants=variants,
            on_events=on_events,
            core_cls=core_cls,
            known_seq=known_seq,
            accept_journal_loss=accept_journal_loss,
        )
        self.storage = storage
        self.clock = clock
        self.core = core
        self.report = report
        self.mode: Mode = mode
        self.snapshot_every_cmds = snapshot_every_cmds
        self.snapshot_every_ns = snapshot_every_ns
        self.archive: ArchiveMode = archive
        self.variants = variants_mod.check(variants)
        self.stats = SequencerStats()
        self._last_seq = core.last_seq
        self._last_ts_ns = report.last_ts_ns
        self._lazy_sync = mode == "fsync" and VARIANT_ACK_BEFORE_SYNC in variants
        self._writer = JournalWriter(
            storage,
            next_seq=self._last_seq + 1,
            tail_segment=report.tail_segment,
            tail_size=report.tail_size,
            segment_bytes=segment_bytes,
        )
        # The newest snapshot known to be good, and the one before it: kept so
        # that a newest snapshot damaged at rest still has a fallback.
        self._snap_seq = report.snapshot_seq if report.snapshot_name else -1
        self._prev_snap_seq = -1
        self._cmds_since_snap = 0
        self._snap_mono_ns = clock.monotonic_ns()
        self._syncer = _SyncThread(self._writer) if overlap_sync and mode == "fsync" else None
        self._high_water = HighWater(storage)
        self._high_water_every_ns = high_water_every_ns
        self._defer_high_water = defer_high_water
        self._high_water_mono_ns = clock.monotonic_ns()
        # The batch stage() wrote and make_durable() has yet to sync: (offset, bytes).
        self._unsynced: tuple[int, bytes] | None = None
        if mode != "none":
            # recovery synced everything it found: that much is durable now
            self._note_durable(force=True)

    @classmethod
    def open(cls, storage: Storage, clock: Clock, **kwargs: Any) -> Sequencer:
        """Same as the constructor (recovery, then ready); reads better at call sites."""
        return cls(storage, clock, **kwargs)

    @property
    def last_seq(self) -> int:
        """Sequence number of the last command sequenced (and applied)."""
        return self._last_seq

    @property
    def failed(self) -> bool:
        """True after a journal failure: the process must restart through recovery."""
        return self._writer.failed

    def submit(
        self, cmds: npt.NDArray[np.void]
    ) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]:
        """Sequence, journal, sync (per mode) and apply one batch.

        Parameters
        ----------
        cmds : ndarray of CMD_DTYPE
            1..MAX_BATCH_CMDS commands.  ``seq`` and ``ts_ns`` are set in place
            (a read-only array is copied first).

        Returns
        -------
        (events, replies)
            EV_DTYPE events (a view valid until the next submit) and REPLY_DTYPE
            replies, one per command.  In fsync mode the batch is durable.

        Raises
        ------
        JournalWriteError
            The batch could not be made durable: do not acknowledge it; restart.
        ValueError
            Wrong dtype/shape or batch too large (nothing sequenced).
        """
        events, replies = self.stage(cmds)
        self.make_durable()
        return events, replies

    def stage(
        self, cmds: npt.NDArray[np.void]
    ) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]:
        """The first half of :meth:`submit`: sequence, journal and apply one batch,
        leaving its fdatasync (fsync mode) to :meth:`make_durable`.

        The caller may prepare what it will send (encode event frames, reply bytes)
        but must let NOTHING of the batch leave the process, and write nothing
        derived from it (the event log), before :meth:`make_durable` returned; if
        that raises, the applied state is thrown away with the process, as on any
        journal failure (recovery replays only what the journal holds).  Doing the
        work before the sync keeps it off the path after the sync's wake-up.

        Same parameters, results and errors as :meth:`submit`.
        """
        assert self._unsynced is None, "stage() twice without make_durable()"
        n = len(cmds)
        # Identity first: comparing structured dtypes field by field costs microseconds.
        if (cmds.dtype is not CMD_DTYPE and cmds.dtype != CMD_DTYPE) or cmds.ndim != 1:
            raise ValueError(f"submit needs a 1-D CMD_DTYPE array, got {cmds.dtype} {cmds.shape}")
        if n == 0:
            return _EMPTY_EVENTS, _EMPTY_REPLIES
        if n > MAX_BATCH_CMDS:
            raise ValueError(f"batch of {n} commands exceeds MAX_BATCH_CMDS={MAX_BATCH_CMDS}")
        if not (cmds.flags.writeable and cmds.flags.c_contiguous):
            cmds = np.ascontiguousarray(cmds).copy()
        first = self._last_seq + 1
        # ts_ns never goes backwards even if the wall clock does.
        self._last_ts_ns = max(self.clock.now_ns(), self._last_ts_ns)
        stamp_batch(cmds, first, self._last_ts_ns)
        if self._syncer is not None and n >= OVERLAP_MIN_CMDS and not self._lazy_sync:
            events, replies = self._journal_overlapped(cmds)
        elif self.mode == "fsync" and not self._lazy_sync:
            # Written and read back now; synced by make_durable().  The read-back
            # reads the page cache, which holds the same bytes before and after the
            # sync: it catches a misdirected or short write either way.
            written = self._writer.append(cmds)
            self._writer.verify(written)
            self._unsynced = written
            events, replies = self.core.apply(cmds)
        else:
            if self.mode != "none":
                self._journal(cmds)
            events, replies = self.core.apply(cmds)
        self._last_seq = first + n - 1
        assert self.core.last_seq == self._last_seq, (self.core.last_seq, self._last_seq)
        self.stats.batches += 1
        self.stats.commands += n
        self._cmds_since_snap += n
        return events, replies

    def direct_journal(self, n: int) -> tuple[JournalWriter, int, Any, int, int] | None:
        """For the compiled turn (:mod:`pyx.smallturn`): the next batch of ``n``
        commands written straight to the journal's descriptor, in C, when the whole
        of :meth:`stage` + :meth:`make_durable` for it is one write, one read-back,
        the apply and (fsync mode) one fdatasync; else None (call :meth:`stage`).

        Returns ``(writer, fd, sync_histogram, first_seq, ts_ns)`` with the batch's
        timestamp already taken (as :meth:`stage` takes it).  The caller then does
        exactly what :meth:`stage` and :meth:`make_durable` do for such a batch
        (stamp, encode, write at ``writer.size``, read back, apply, sync, the same
        counters; a failure marks the writer failed and raises
        :class:`~engine.journal.JournalWriteError`); ``tests/engine/test_compiled_turn.py``
        compares both paths byte for byte.

        None unless: a small batch (1..:data:`DIRECT_MAX_CMDS`), mode ``fsync`` or
        ``async`` without the broken variant, the high-water record deferred
        (fsync), snapshots driven by the caller (:data:`SNAPSHOT_NEVER`), a live
        writer on an existing segment with a durable name and room for the batch
        (no roll), and a storage whose class gives its raw descriptor
        (``direct_io``: the real files; the simulator's fault-injecting disk and
        any wrapper keep the Python path).
        """
        w = self._writer
        if (
            not 0 < n <= DIRECT_MAX_CMDS
            or self._lazy_sync
            or w.failed
            or w.segment is None
            or w._new_name
            or self.snapshot_every_cmds < SNAPSHOT_NEVER
            or self.snapshot_every_ns < SNAPSHOT_NEVER
            or self._unsynced is not None
        ):
            return None
        if self.mode == "fsync":
            if not self._defer_high_water:
                return None
        elif self.mode != "async":
            return None
        if w.size > 0 and w.size + MIN_BATCH_BYTES - CMD_SIZE + n * CMD_SIZE > w.segment_bytes:
            return None  # the batch rolls the segment: the Python path
        # Looked up on the class: a wrapper's __getattr__ must not hand out the
        # descriptor it exists to intercept (tests wrap storages that way).
        direct_io = getattr(type(w.storage), "direct_io", None)
        if direct_io is None:
            return None
        got = direct_io(w.storage, w.segment)
        if got is None:
            return None
        fd, hist = got
        self._last_ts_ns = max(self.clock.now_ns(), self._last_ts_ns)
        return w, fd, hist, self._last_seq + 1, self._last_ts_ns

    def make_durable(self) -> None:
        """The second half of :meth:`submit`: fdatasync the staged batch (fsync mode),
        then the rate-limited high-water write and a due snapshot.

        Raises
        ------
        JournalWriteError
            The sync failed: acknowledge nothing of the batch; restart.
        """
        if self._unsynced is not None:
            self._unsynced = None
            self._writer.sync()
            self.stats.syncs += 1
        if self.mode == "fsync" and not self._lazy_sync and not self._defer_high_water:
            self._note_durable(force=False)
        if self.mode != "none" and self._snapshot_due():
            self._auto_snapshot()

    def note_durable(self) -> None:
        """The rate-limited high-water write that ``defer_high_water`` moved out of
        :meth:`submit`: call it after the acknowledgements of a batch have left."""
        if self.mode == "fsync" and not self._lazy_sync:
            self._note_durable(force=False)

    def _note_durable(self, *, force: bool) -> None:
        """Write the journal's synced seq to the high-water record (rate-limited)."""
        now = self.clock.monotonic_ns()
        if not force and now - self._high_water_mono_ns < self._high_water_every_ns:
            return
        self._high_water_mono_ns = now
        if self._high_water.write(self._writer.synced_seq):
            self.stats.high_water_writes += 1

    def _journal(self, cmds: npt.NDArray[np.void]) -> None:
        if self._lazy_sync:
            # Broken variant: the previous batch is synced only now, after its ack.
            self._writer.sync()
        sync = self.mode == "fsync" and not self._lazy_sync
        self._writer.write_batch(cmds, sync=sync)
        if sync:
            self.stats.syncs += 1

    def _journal_overlapped(
        self, cmds: npt.NDArray[np.void]
    ) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]:
        """fsync mode with the fdatasync on the helper thread while the core applies.

        Nothing is returned before the sync and the read-back succeeded; if either
        fails, the applied state is thrown away with the process (the writer is
        dead and the caller restarts through recovery).
        """
        assert self._syncer is not None and self.mode == "fsync"
        written = self._writer.append(cmds)
        self._syncer.start()
        try:
            events, replies = self.core.apply(cmds)
        finally:
            self._syncer.wait()
        self._writer.verify(written)
        self.stats.syncs += 1
        return events, replies

    def _snapshot_due(self) -> bool:
        if self._cmds_since_snap >= self.snapshot_every_cmds:
            return True
        return self.clock.monotonic_ns() - self._snap_mono_ns >= self.snapshot_every_ns

    def _auto_snapshot(self) -> None:
        try:
            self.snapshot()
        except SnapshotWriteError as e:
            # The journal still holds everything: a failed snapshot only costs
            # replay time, so the core keeps running and retries next interval.
            self.stats.snapshot_failures += 1
            self._cmds_since_snap = 0
            self._snap_mono_ns = self.clock.monotonic_ns()
            log.error("automatic snapshot failed: %s", e)

    def snapshot(self) -> str | None:
        """Write a snapshot at the current seq, then prune snapshots and archive segments.

        Returns the snapshot's name, or None when there is nothing new (or mode is
        ``none``).  Keeps this snapshot and the previous good one; segments only
        the older ones needed are archived.

        Raises
        ------
        SnapshotWriteError
            The snapshot could not be written (older ones are untouched).
        JournalWriteError
            Syncing the journal up to the snapshot's seq failed.
        """
        seq = self.prepare_snapshot()
        if seq is None:
            return None
        name = write_snapshot(self.storage, self.core, self.variants)
        self.snapshot_written(seq)
        return name

    def prepare_snapshot(self) -> int | None:
        """First half of :meth:`snapshot`: make the journal durable up to the current
        seq and return it (None when there is nothing new, or mode ``none``).

        A caller that writes the snapshot elsewhere (a forked child: the server)
        then calls :meth:`snapshot_written` with this seq once the file is durable.

        Raises
        ------
        JournalWriteError
            Syncing the journal failed.
        """
        if self.mode == "none" or self._last_seq in (0, self._snap_seq):
            return None
        # The journal must be durable at least up to any snapshot's seq.
        self._writer.sync()
        self._note_durable(force=True)
        return self._last_seq

    def snapshot_written(self, seq: int) -> None:
        """Second half of :meth:`snapshot`: a snapshot at ``seq`` is durable; keep it
        and the previous one, prune older snapshots, archive the segments they needed."""
        self.stats.snapshots += 1
        if self._snap_seq >= 0:
            self._prev_snap_seq = self._snap_seq
        self._snap_seq = seq
        self._cmds_since_snap = 0
        self._snap_mono_ns = self.clock.monotonic_ns()
        self._prune()

    def _prune(self) -> None:
        keep = {snapshot_name(self._snap_seq)}
        if self._prev_snap_seq >= 0:
            keep.add(snapshot_name(self._prev_snap_seq))
        try:
            removed = prune_snapshots(self.storage, keep)
            if self._prev_snap_seq >= 0:
                self._writer.archive_through(self._prev_snap_seq, self.archive)
        except OSError as e:  # StorageError, or a raw OSError of rename/unlink
            log.error("pruning snapshots/segments failed (harmless, retried later): %s", e)
            return
        if removed:
            log.info("removed snapshots %s", removed)

    def sync(self) -> None:
        """Make every written batch durable (async mode: call before a clean stop).

        Raises
        ------
        JournalWriteError
            The sync failed.
        """
        if self.mode != "none":
            self._writer.sync()
            self._note_durable(force=True)

    def close(self) -> None:
        """Sync what was written (unless the journal already failed); stop the helper thread."""
        if self._syncer is not None:
            self._syncer.stop()
            self._syncer = None
        if not self._writer.failed:
            self.sync()


class _SyncThread:
    """A helper thread that runs ``JournalWriter.sync`` while the caller applies.

    ``os.fdatasync`` releases the GIL, so the sync proceeds while the core runs.
    :meth:`start` returns once the thread has begun the sync, so the apply that
    follows cannot keep it from starting; :meth:`wait` re-raises whatever the sync
    raised (JournalWriteError, or a simulator crash).
    """

    def __init__(self, writer: JournalWriter) -> None:
        self._writer = writer
        self._go = threading.Semaphore(0)
        self._started = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        self._error: BaseException | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="bursa-journal-sync", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            if self._stopping:
                return
            self._started.release()
            try:
                self._writer.sync()
            except BaseException as e:  # handed to the submitting thread by wait()
                self._error = e
            self._done.release()

    def start(self) -> None:
        """Begin syncing the journal; returns when the helper thread is on it."""
        self._go.release()
        self._started.acquire()

    def wait(self) -> None:
        """Block until the sync is done; re-raise its failure."""
        self._done.acquire()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def stop(self) -> None:
        """End the thread (no sync may be in progress)."""
        self._stopping = True
        self._go.release()
        self._thread.join()
