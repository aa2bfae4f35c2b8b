"""The event log: every event frame the core publishes, in segment files.

The log is derived data: the journal is the truth and the log can always be
rebuilt from it, so appends are not synced (the server syncs it before a
snapshot, so that the part a snapshot-based recovery cannot regenerate is
durable).  Each record is exactly an event frame (:mod:`engine.wire.frames`):
a 32-byte header with magic, event count, the command sequence range covered
and a CRC32C, then the 96-byte event records.  Records follow each other
without gaps in sequence: ``first_seq == previous last_seq + 1``.

Segments are named ``events-<first_seq:020d>.log`` and roll at
:data:`EVENT_SEGMENT_BYTES_MAX`.  :class:`EventLog` is the writer (core thread
only); :class:`EventLogReader` is the reader of the replay service (its own
thread, its own storage instance, sees only whole records thanks to the CRC).
"""

from __future__ import annotations

import bisect
import logging
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from bursa_wire.layout import EV_SIZE
from engine.storage import Storage
from engine.wire.frames import (
    EVENT_HEADER_SIZE,
    REPLAY_BEYOND_END,
    REPLAY_NOT_AVAILABLE,
    REPLAY_OK,
    FrameError,
    check_event_frame,
    decode_event_frame,
    encode_event_frame,
    peek_event_header,
)

log = logging.getLogger("bursa.eventlog")

EVENT_SEGMENT_PREFIX = "events-"
EVENT_SEGMENT_SUFFIX = ".log"
EVENT_SEGMENT_BYTES_MAX = 64 << 20
# Temp file of a segment being regenerated (not a segment name: ignored, removed at open).
REGEN_SUFFIX = ".regen"
# Bytes read per storage call while scanning a segment.
SCAN_CHUNK_BYTES = 4 << 20
# A header claiming more events than this is corrupt (largest frame the core writes
# is bounded by MAX_FRAME_EVENTS in the server, one command may exceed it a little).
FRAME_EVENTS_MAX = 1 << 20


def segment_name(first_seq: int) -> str:
    """File name of the segment whose first record starts at ``first_seq``."""
    assert first_seq > 0
    return f"{EVENT_SEGMENT_PREFIX}{first_seq:020d}{EVENT_SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """First sequence number of a segment file name, or None if not a segment."""
    if not (name.startswith(EVENT_SEGMENT_PREFIX) and name.endswith(EVENT_SEGMENT_SUFFIX)):
        return None
    digits = name[len(EVENT_SEGMENT_PREFIX) : -len(EVENT_SEGMENT_SUFFIX)]
    if len(digits) != 20 or not digits.isdigit():
        return None
    return int(digits)


def list_segments(storage: Storage) -> list[tuple[int, str]]:
    """``(first_seq, name)`` of every segment, sorted by sequence."""
    segs = []
    for name in storage.list():
        first = parse_segment_name(name)
        if first is not None:
            segs.append((first, name))
    segs.sort()
    return segs


@dataclass
class ScanResult:
    """What a scan of one segment found.

    Attributes
    ----------
    end_offset : int
        Offset just after the last valid record.
    last_seq : int
        ``last_seq`` of the last valid record (``prev_last_seq`` if none).
    clean : bool
        True if the scan stopped at the end of the file, False if at a bad record.
    """

    end_offset: int
    last_seq: int
    clean: bool
    offsets: array[int] = field(default_factory=lambda: array("Q"))
    lasts: array[int] = field(default_factory=lambda: array("Q"))


def scan_segment(
    storage: Storage,
    name: str,
    start_offset: int,
    prev_last_seq: int,
    result: ScanResult,
    max_bytes: int = 0,
) -> ScanResult:
    """Walk the records of ``name`` from ``start_offset``; stop at EOF or the first bad one.

    A record is bad if its header, length, CRC or sequence continuity
    (``first_seq == prev_last_seq + 1``, skipped when ``prev_last_seq`` is 0) is wrong.
    Record offsets and last sequence numbers are appended to ``result``.  With
    ``max_bytes`` the walk also stops (clean) before a record starting that many
    bytes past ``start_offset`` (a bounded step of a background check).
    """
    size = storage.size(name)
    if max_bytes:
        size = min(size, start_offset + max_bytes)
    offset = start_offset
    last_seq = prev_last_seq
    buf = b""
    buf_at = offset
    clean = True
    # Each iteration consumes one record or stops: bounded by size / header size.
    for _ in range(size // EVENT_HEADER_SIZE + 1):
        if offset >= size:
            break
        rel = offset - buf_at
        if len(buf) - rel < EVENT_HEADER_SIZE:
            buf = storage.read(name, offset, min(SCAN_CHUNK_BYTES, max(size - offset, 1 << 16)))
            buf_at, rel = offset, 0
        try:
            n_events, first, last, _crc = peek_event_header(buf, rel)
            if n_events > FRAME_EVENTS_MAX:
                raise FrameError("event count out of range")
            rec_size = EVENT_HEADER_SIZE + n_events * EV_SIZE
            if len(buf) - rel < rec_size:
                buf = storage.read(name, offset, max(SCAN_CHUNK_BYTES, rec_size))
                buf_at, rel = offset, 0
            check_event_frame(buf, rel)
            if last_seq and first != last_seq + 1:
                raise FrameError(f"sequence gap: record starts at {first}, expected {last_seq + 1}")
        except FrameError as e:
            log.warning("event log %s: bad record at offset %d: %s", name, offset, e)
            clean = False
            break
        result.offsets.append(offset)
        result.lasts.append(last)
        offset += rec_size
        last_seq = last
    result.end_offset = offset
    result.last_seq = last_seq
    result.clean = clean
    return result


class EventLog:
    """Writer of the event log (core thread only).

    Parameters
    ----------
    storage : Storage
        Where the segments live (may be shared with the journal: names differ).
    segment_bytes_max : int
        Size at which a new segment is started.
    """

    def __init__(self, storage: Storage, segment_bytes_max: int = EVENT_SEGMENT_BYTES_MAX) -> None:
        assert segment_bytes_max > EVENT_HEADER_SIZE
        self.storage = storage
        self.segment_bytes_max = segment_bytes_max
        self.first_seq = 0  # first command sequence covered by the log (0: empty)
        self.last_seq = 0  # last command sequence covered by the log (0: empty)
        self._segment: str | None = None
        self._segment_size = 0

    def open(self) -> int:
        """Scan the last segment, cut a torn or corrupt tail, return ``last_seq``.

        Only the tail can be torn by a crash: a segment is synced before the next
        one is started, and a segment's last seq is the next one's first seq - 1
        (names carry first seqs), so older segments are not read here (the replay
        reader CRC-checks every record before serving it, and the server's
        :class:`EventLogVerifier` checks them in the background).  Damage in the
        tail only loses the records from that point on: the server rebuilds them
        from the journal.  Bytes read: the last non-empty segment (plus the
        empty or wholly corrupt segments after it, which are dropped).
        """
        leftovers = [
            n
            for n in self.storage.list()
            if n.startswith(EVENT_SEGMENT_PREFIX) and n.endswith(REGEN_SUFFIX)
        ]
        for n in leftovers:
            self.storage.remove(n)
        segs = list_segments(self.storage)
        self._segment, self._segment_size = None, 0
        last = 0
        # Walk back over segments whose first record is bad: each is dropped whole.
        keep = 0
        for i in range(len(segs) - 1, -1, -1):
            first, name = segs[i]
            res = scan_segment(self.storage, name, 0, first - 1, ScanResult(0, first - 1, True))
            if res.end_offset == 0:
                continue
            if not res.clean:
                self._cut(name, res.end_offset)
            self._segment, self._segment_size = name, res.end_offset
            last = res.last_seq
            keep = i + 1
            break
        self._drop_segments(segs[keep:])
        self.first_seq = segs[0][0] if self._segment is not None else 0
        self.last_seq = last
        return self.last_seq

    def _cut(self, name: str, size: int) -> None:
        log.warning("event log: truncating %s to %d bytes", name, size)
        self.storage.truncate(name, size)
        self.storage.sync(name)

    def _drop_segments(self, segs: list[tuple[int, str]]) -> None:
        for _first, name in segs:
            log.warning("event log: removing segment %s", name)
            self.storage.remove(name)
        if segs:
            self.storage.sync_dir()

    def truncate_after(self, seq: int) -> None:
        """Drop every record covering a command after ``seq`` (log ahead of the journal).

        Records end on command boundaries, so a record is dropped whole; a record
        straddling ``seq`` is dropped too and the caller regenerates from its start.
        Afterwards ``last_seq <= seq``.
        """
        if self.last_seq <= seq:
            return
        segs = list_segments(self.storage)
        firsts = [first for first, _ in segs]
        # The segment holding seq + 1 (names carry first seqs): later ones go whole,
        # only this one is read.
        i = bisect.bisect_right(firsts, seq + 1) - 1
        keep_last = firsts[i] - 1 if i >= 0 else 0
        if i >= 0:
            first, name = segs[i]
            res = scan_segment(self.storage, name, 0, first - 1, ScanResult(0, first - 1, True))
            j = bisect.bisect_right(res.lasts, seq)
            cut = res.offsets[j] if j < len(res.lasts) else res.end_offset
            keep_last = res.lasts[j - 1] if j else keep_last
            if cut == 0:
                self._drop_segments(segs[i:])
            else:
                if cut < self.storage.size(name):
                    self._cut(name, cut)
                self._drop_segments(segs[i + 1 :])
        else:
            self._drop_segments(segs)
        self._segment = None
        self._segment_size = 0
        segs = list_segments(self.storage)
        if segs:
            self._segment = segs[-1][1]
            self._segment_size = self.storage.size(self._segment)
        else:
            self.first_seq = 0
        self.last_seq = keep_last
        assert self.last_seq <= seq

    def append_frame(self, frame: bytes, first_seq: int, last_seq: int) -> None:
        """Append one encoded event frame covering ``first_seq..last_seq``."""
        assert first_seq <= last_seq
        assert not self.last_seq or first_seq == self.last_seq + 1, (first_seq, self.last_seq)
        if self._segment is None or self._segment_size >= self.segment_bytes_max:
            self._segment = segment_name(first_seq)
            self._segment_size = 0
        # At the tracked end (open() and truncate_after() set it from the scan or the
        # file's size), not storage.append: no fstat per frame on the ack path.
        self.storage.write_at(self._segment, self._segment_size, frame)
        self._segment_size += len(frame)
        if not self.first_seq:
            self.first_seq = first_seq
        self.last_seq = last_seq

    def append_events(self, first_seq: int, last_seq: int, events: np.ndarray) -> bytes:
        """Encode, append and return the frame of ``events`` (used when rebuilding)."""
        frame = encode_event_frame(first_seq, last_seq, events.tobytes())
        self.append_frame(frame, first_seq, last_seq)
        return frame

    def prune(self, retain_bytes: int) -> int:
        """Retention: remove the oldest whole segments while the log holds more than
        ``retain_bytes`` (the segment being written is always kept).  Returns how many
        were removed; afterwards the replay service answers requests before
        :attr:`first_seq` with ``REPLAY_NOT_AVAILABLE`` ("too old: rebuild from a
        snapshot").  Recovery never needs them: it regenerates events after the
        newest snapshot from the journal."""
        segs = list_segments(self.storage)
        sizes = [self.storage.size(name) for _, name in segs]
        total = sum(sizes)
        drop = 0
        while drop < len(segs) - 1 and total > retain_bytes:
            total -= sizes[drop]
            drop += 1
        if drop:
            for _, name in segs[:drop]:
                self.storage.remove(name)
            self.storage.sync_dir()
            self.first_seq = segs[drop][0]
            log.info(
                "event log retention: removed %d segment(s), log starts at seq %d",
                drop,
                self.first_seq,
            )
        return drop

    def replace_segment(self, name: str, frames: Iterator[bytes]) -> int:
        """Atomically replace sealed segment ``name`` by ``frames`` (regenerated from the
        journal after damage): written to a temp file, synced, renamed into place,
        directory synced.  Returns the bytes written."""
        assert name != self._segment, "the segment being written is never replaced"
        tmp = name + REGEN_SUFFIX
        if tmp in self.storage.list():
            self.storage.remove(tmp)
        written = 0
        for frame in frames:
            self.storage.append(tmp, frame)
            written += len(frame)
        self.storage.sync(tmp)
        self.storage.rename(tmp, name)
        self.storage.sync_dir()
        log.warning("event log: %s regenerated from the journal (%d bytes)", name, written)
        return written

    def sync(self) -> None:
        """Make the log durable (before a snapshot, at shutdown)."""
        if self._segment is not None:
            self.storage.sync(self._segment)
            self.storage.sync_dir()


@dataclass
class _SegIndex:
    first_seq: int
    name: str
    scan: ScanResult
    # Sealed (a later segment exists) and indexed to its end: never scanned again.
    sealed_ok: bool = False


class EventLogReader:
    """Reads frames from the event log for the replay service (one thread).

    Segments are indexed lazily, when a read first reaches them, and every
    record is CRC-checked as it is indexed, before it is served: the writer's
    start-up scan reads only the last segment, so this is where damage in an
    older segment is found.  A damaged sealed segment is served up to the
    damage; its index is then dropped so that it is read again once the
    server's :class:`EventLogVerifier` has regenerated it from the journal.

    Parameters
    ----------
    storage : Storage
        A storage instance of its own over the same directory as the writer's.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._segs: list[_SegIndex] = []
        self._last_seq = 0
        self.damaged: set[str] = set()

    def refresh(self) -> None:
        """Learn the segments (the writer appends, and retention removes whole segments
        from the front) and index records appended to the last one."""
        if self.damaged:
            close = getattr(self.storage, "close", None)
            if close is not None:
                close()
        listed = list_segments(self.storage)
        present = {name for _, name in listed}
        self._segs = [s for s in self._segs if s.name in present]
        known = {s.name for s in self._segs}
        for first, name in listed:
            if name not in known:
                self._segs.append(_SegIndex(first, name, ScanResult(0, first - 1, True)))
        self._segs.sort(key=lambda s: s.first_seq)
        if not self._segs:
            self._last_seq = 0
            return
        tail = self._segs[-1]
        res = tail.scan
        if self.storage.size(tail.name) > res.end_offset:
            # A half-written record fails its CRC and is read again next time.
            scan_segment(self.storage, tail.name, res.end_offset, res.last_seq, res)
        self._last_seq = res.last_seq

    @property
    def last_seq(self) -> int:
        """Highest command sequence covered by indexed records (0 if none)."""
        return self._last_seq

    @property
    def first_seq(self) -> int:
        """First command sequence of the log (0 if empty)."""
        return self._segs[0].first_seq if self._segs else 0

    def _index(self, i: int) -> bool:
        """Index segment ``i`` (sealed ones to their end); False if it is damaged."""
        seg = self._segs[i]
        if i == len(self._segs) - 1 or seg.sealed_ok:
            return True
        want_last = self._segs[i + 1].first_seq - 1
        res = seg.scan
        scan_segment(self.storage, seg.name, res.end_offset, res.last_seq, res)
        if res.clean and res.last_seq == want_last:
            seg.sealed_ok = True
            self.damaged.discard(seg.name)
            return True
        if seg.name not in self.damaged:
            log.error(
                "event log %s: damaged, valid to seq %d of %d; served up to there until "
                "the core regenerates it from the journal",
                seg.name,
                res.last_seq,
                want_last,
            )
        self.damaged.add(seg.name)
        # Read it afresh next time (refresh() also drops cached file descriptors: the
        # repair replaces the file under the same name).
        seg.scan = ScanResult(0, seg.first_seq - 1, True)
        return False

    def _records_from(self, from_seq: int) -> Iterator[tuple[str, int]]:
        firsts = [s.first_seq for s in self._segs]
        i = max(bisect.bisect_right(firsts, from_seq) - 1, 0)
        for k_seg in range(i, len(self._segs)):
            seg = self._segs[k_seg]
            scan = seg.scan
            ok = self._index(k_seg)
            j = bisect.bisect_left(scan.lasts, from_seq)
            for k in range(j, len(scan.offsets)):
                yield seg.name, scan.offsets[k]
            if not ok:
                return

    def read(self, from_seq: int, max_events: int, max_bytes: int) -> tuple[list[bytes], int, int]:
        """Frames covering commands ``>= from_seq``.

        Parameters
        ----------
        from_seq : int
            First command sequence wanted (0 and 1 both mean "from the start").
        max_events, max_bytes : int
            Stop before a frame that would pass either bound (at least one frame
            is returned when any is available).

        Returns
        -------
        (frames, next_seq, status)
            ``next_seq`` is the first sequence not covered; ``status`` is
            ``REPLAY_OK``, ``REPLAY_NOT_AVAILABLE`` (``from_seq`` precedes the log)
            or ``REPLAY_BEYOND_END`` (``from_seq`` is past the log's last seq + 1;
            ``next_seq`` is then that last seq + 1).
        """
        assert max_events > 0 and max_bytes > 0
        self.refresh()
        from_seq = max(from_seq, 1)
        if from_seq > self.last_seq + 1:
            return [], self.last_seq + 1, REPLAY_BEYOND_END
        if not self._segs:
            return [], from_seq, REPLAY_OK
        if from_seq < self.first_seq:
            return [], self.first_seq, REPLAY_NOT_AVAILABLE
        frames: list[bytes] = []
        n_events = 0
        n_bytes = 0
        next_seq = from_seq
        for name, offset in self._records_from(from_seq):
            head = self.storage.read(name, offset, EVENT_HEADER_SIZE)
            n, first, last, _crc = peek_event_header(head)
            if last < next_seq:
                continue
            if frames and (n_events + n > max_events or n_bytes + n * EV_SIZE > max_bytes):
                break
            frame = self.storage.read(name, offset, EVENT_HEADER_SIZE + n * EV_SIZE)
            if first < next_seq:
                frame = _trim_frame(frame, next_seq)
            frames.append(frame)
            n_events += n
            n_bytes += len(frame)
            next_seq = last + 1
        return frames, next_seq, REPLAY_OK


class EventLogVerifier:
    """Background check of the segments the writer's start-up scan skipped (core thread).

    :meth:`EventLog.open` reads only the last segment; this walks the older ones in
    bounded steps (:meth:`step`, called when the core has time) and reports a
    damaged one, which the server then regenerates from the journal
    (:meth:`EventLog.replace_segment`).

    Parameters
    ----------
    storage : Storage
        The writer's storage.
    segments : list of (first_seq, name)
        The segments to check, sorted; each one's last seq is the next one's first
        seq - 1 (so the last entry is a bound only: it is not checked).
    step_bytes : int
        Bytes read per :meth:`step` at most (plus one record).
    """

    def __init__(
        self, storage: Storage, segments: list[tuple[int, str]], step_bytes: int = SCAN_CHUNK_BYTES
    ) -> None:
        assert step_bytes > 0
        self.storage = storage
        self.step_bytes = step_bytes
        self._todo = list(segments)
        self._res: ScanResult | None = None
        self.bytes_read = 0
        self.segments_checked = 0

    @property
    def done(self) -> bool:
        """True once every sealed segment was checked."""
        return len(self._todo) < 2

    def step(self) -> tuple[int, int, str] | None:
        """Check up to ``step_bytes`` more; returns ``(first_seq, last_seq, name)`` of a
        damaged segment (then forgotten: the caller regenerates it), else None."""
        if self.done:
            return None
        first, name = self._todo[0]
        want_last = self._todo[1][0] - 1
        res = self._res
        if res is None:
            res = self._res = ScanResult(0, first - 1, True)
        start = res.end_offset
        try:
            size = self.storage.size(name)
            scan_segment(self.storage, name, start, res.last_seq, res, self.step_bytes)
        except OSError:
            # Retention removed it meanwhile: nothing left to check there.
            self._next()
            return None
        self.bytes_read += res.end_offset - start
        # Keep the index small: only the position matters here.
        del res.offsets[:]
        del res.lasts[:]
        if res.clean and res.end_offset < size:
            return None  # step budget used, segment not finished
        self._next()
        if res.clean and res.last_seq == want_last:
            return None
        log.error(
            "event log %s: damaged (valid to seq %d of %d at byte %d)",
            name,
            res.last_seq,
            want_last,
            res.end_offset,
        )
        return first, want_last, name

    def _next(self) -> None:
        self._todo.pop(0)
        self._res = None
        self.segments_checked += 1


def split_event_frames(
    first_seq: int, last_seq: int, events: np.ndarray, max_events: int
) -> list[tuple[int, int, np.ndarray]]:
    """Cut a batch's events into frames of at most ``max_events``, on command boundaries.

    Parameters
    ----------
    first_seq, last_seq : int
        Command sequence range of the batch (inclusive).
    events : numpy.ndarray
        ``EV_DTYPE`` records sorted by ``seq``, all within the range.
    max_events : int
        Events per frame (a single command with more events gets a frame of its own).

    Returns
    -------
    list of (first_seq, last_seq, events)
        Consecutive, gap-free ranges covering ``first_seq..last_seq``.
    """
    assert first_seq <= last_seq and max_events > 0
    n = len(events)
    if n <= max_events:
        return [(first_seq, last_seq, events)]
    seqs = events["seq"]
    out: list[tuple[int, int, np.ndarray]] = []
    i = 0
    a = first_seq
    # Each iteration emits one frame and advances i by >= 1 event.
    for _ in range(n + 1):
        if n - i <= max_events:
            out.append((a, last_seq, events[i:]))
            break
        cut_seq = int(seqs[i + max_events])
        j = int(np.searchsorted(seqs, cut_seq, side="left"))
        if j == i:
            # One command with more than max_events events: it gets a frame of its own.
            j = int(np.searchsorted(seqs, cut_seq, side="right"))
            if j >= n:
                out.append((a, last_seq, events[i:]))
                break
            cut_seq = int(seqs[j])
        out.append((a, cut_seq - 1, events[i:j]))
        a, i = cut_seq, j
    assert out[0][0] == first_seq and out[-1][1] == last_seq
    return out


def _trim_frame(frame: bytes, from_seq: int) -> bytes:
    """The part of ``frame`` covering commands ``>= from_seq`` (re-encoded)."""
    ef = decode_event_frame(frame, verify=False)
    assert ef.first_seq < from_seq <= ef.last_seq
    keep = ef.events[ef.events["seq"] >= from_seq]
    return encode_event_frame(from_seq, ef.last_seq, keep.tobytes())
