"""The command journal: append-only segment files of CRC-protected batches.

Every batch of sequenced commands is written with ONE append (so group commit is
one append plus one sync)::

    HEADER (32 bytes) | payload (count x 96-byte CMD_DTYPE records) | TRAILER (= HEADER)

Header layout (little-endian, see docs/architecture.md "Journal format"):

====== ==== ============ =====================================================
offset size field        meaning
====== ==== ============ =====================================================
0      4    magic        ``b"BRSJ"``
4      2    version      :data:`VERSION`
6      2    record_size  96 (``CMD_SIZE``)
8      8    first_seq    sequence number of the batch's first command
16     4    count        commands in the batch (1..:data:`MAX_BATCH_CMDS`)
20     4    payload_len  ``count * record_size`` bytes
24     4    payload_crc  crc32c of the payload
28     4    header_crc   crc32c of bytes 0..27
====== ==== ============ =====================================================

Segments are named ``journal-<first seq, 20 digits>.seg`` and rolled at a size
bound.  Why a trailer: after a power loss a file is its durable prefix plus
possibly a torn last write (a prefix of its sectors).  A batch whose header and
payload CRC are valid is complete.  A damaged batch is a torn tail only if
nothing written follows the damage: no valid trailer, no later valid header, and
no non-zero byte after the damaged part (lost sectors are absent or read as
zeros, while every record and header holds non-zero bytes).  Otherwise the
damage is inside the durable prefix and the journal refuses to start
(:class:`JournalCorrupt`) instead of silently dropping acknowledged data.
"""

from __future__ import annotations

import errno
import itertools
import logging
import mmap
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import crc32c
import numpy as np
import numpy.typing as npt

from bursa_wire.layout import CMD_DTYPE, CMD_SIZE
from engine.storage import FileStorage, Storage, StorageError
from pyx.smallturn import encode_journal_batch

#: A whole segment as scanned: bytes, or a read-only memory map of the file.
SegmentData = bytes | mmap.mmap

log = logging.getLogger("bursa.journal")

MAGIC = b"BRSJ"
VERSION = 1
#: magic, version, record_size, first_seq, count, payload_len, payload_crc (header_crc follows).
_HEAD = struct.Struct("<4sHHQIII")
_CRC = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SEQ_AT: int = CMD_DTYPE.fields["seq"][1]  # type: ignore[index]
HEADER_SIZE = _HEAD.size + _CRC.size
assert HEADER_SIZE == 32, HEADER_SIZE

#: Largest batch one append may carry (6 MiB of payload): bounds reads and allocations.
MAX_BATCH_CMDS = 65_536
#: Batches of at most this many commands are copied to bytes for encoding (see encode_batch).
ENCODE_COPY_MAX_CMDS = 64
#: Default segment size bound; a segment is rolled before a batch would cross it.
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
#: Smallest possible batch on disk: bounds the scan loop of one segment.
MIN_BATCH_BYTES = 2 * HEADER_SIZE + CMD_SIZE
SEQ_DIGITS = 20
SEGMENT_PREFIX = "journal-"
SEGMENT_SUFFIX = ".seg"
ARCHIVE_PREFIX = "archive-"
_SEGMENT_RE = re.compile(r"^(archive-)?journal-(\d{20})\.seg$")
#: Suffix of the copy of the last segment that recovery writes and renames into place.
REWRITE_SUFFIX = ".rewrite"

ArchiveMode = Literal["rename", "delete"]


class JournalCorrupt(Exception):  # noqa: N818 (the name is the contract)
    """Damage inside the durable prefix of the journal: recovery must stop.

    Parameters
    ----------
    segment : str
        Segment file name.
    batch_index : int
        Index of the damaged batch inside the segment (0-based).
    seq : int
        Sequence number (record number) of the first record that cannot be trusted.
    offset : int
        Byte offset of the damaged batch (or record) inside the segment.
    reason : str
        What is wrong.
    """

    def __init__(self, segment: str, batch_index: int, seq: int, offset: int, reason: str) -> None:
        self.segment = segment
        self.batch_index = batch_index
        self.seq = seq
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"journal corrupt: {segment} batch #{batch_index} at byte {offset} "
            f"(record seq {seq}): {reason}. Refusing to start: restore this segment "
            f"from a replica or archive; data after it cannot be trusted."
        )


class JournalWriteError(Exception):
    """A journal write, sync or read-back failed: nothing of the batch may be acknowledged.

    The writer is unusable afterwards; the process must restart through recovery.
    """


def segment_name(first_seq: int) -> str:
    """File name of the segment whose first command has sequence ``first_seq``."""
    assert 0 < first_seq < 10**SEQ_DIGITS
    return f"{SEGMENT_PREFIX}{first_seq:0{SEQ_DIGITS}d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str, *, include_archived: bool = False) -> int | None:
    """First sequence number encoded in a segment name, or None if ``name`` is not one."""
    m = _SEGMENT_RE.match(name)
    if m is None or (m.group(1) and not include_archived):
        return None
    return int(m.group(2))


def list_segments(storage: Storage, *, include_archived: bool = False) -> list[tuple[int, str]]:
    """``(first_seq, name)`` of every segment, sorted by first_seq.

    With ``include_archived``, archived segments are listed too (a live segment
    wins over an archived one with the same first_seq).
    """
    found: dict[int, str] = {}
    for name in storage.list():
        seq = parse_segment_name(name, include_archived=include_archived)
        if seq is not None and (seq not in found or not name.startswith(ARCHIVE_PREFIX)):
            found[seq] = name
    return sorted(found.items())


def encode_header(first_seq: int, count: int, payload_crc: int) -> bytes:
    """The 32-byte batch header (also used verbatim as the trailer)."""
    assert 0 < count <= MAX_BATCH_CMDS, count
    head = _HEAD.pack(MAGIC, VERSION, CMD_SIZE, first_seq, count, count * CMD_SIZE, payload_crc)
    return head + _CRC.pack(crc32c.crc32c(head))


def encode_batch(first_seq: int, cmds: npt.NDArray[np.void]) -> bytes:
    """Header + payload + trailer of one batch, ready for a single append.

    Parameters
    ----------
    first_seq : int
        Sequence number of ``cmds[0]``; ``cmds["seq"]`` must already be set.
    cmds : ndarray of CMD_DTYPE
        The batch (contiguous, 1..MAX_BATCH_CMDS records).
    """
    assert (cmds.dtype is CMD_DTYPE or cmds.dtype == CMD_DTYPE) and cmds.flags.c_contiguous
    # A small batch is copied as bytes (one memcpy): cheaper than a uint8 view, which
    # runs numpy's Python-level view check.  A large one is not copied: its bytes go
    # through a uint8 view (exporting the structured array's buffer directly would
    # make numpy build its format string).
    if len(cmds) <= ENCODE_COPY_MAX_CMDS:
        payload = cmds.tobytes()
        # The first record's seq, read from the bytes (a numpy scalar costs microseconds).
        assert _U64.unpack_from(payload, _SEQ_AT)[0] == first_seq
        # The same bytes as below, built in C (tests/engine/test_journal.py compares).
        return encode_journal_batch(first_seq, payload, MAGIC, VERSION, CMD_SIZE)
    view = cmds.view(np.uint8).data
    assert _U64.unpack_from(view, _SEQ_AT)[0] == first_seq
    return encode_payload(first_seq, len(cmds), view)


def encode_payload(first_seq: int, count: int, payload: bytes | memoryview) -> bytes:
    """Header + ``payload`` (``count`` records) + trailer, in Python (large batches;
    the reference the C encoder of small ones is tested against)."""
    header = encode_header(first_seq, count, crc32c.crc32c(payload))
    return b"".join((header, payload, header))


def parse_header(data: SegmentData | memoryview, off: int) -> tuple[int, int, int, int] | None:
    """``(first_seq, count, payload_len, payload_crc)`` of a valid header at ``off``, else None.

    Valid means: complete, right magic/version/record size, header CRC matching,
    and a count/length that a writer could have produced.
    """
    if off < 0 or off + HEADER_SIZE > len(data):
        return None
    magic, version, rec_size, first_seq, count, plen, pcrc = _HEAD.unpack_from(data, off)
    if magic != MAGIC or version != VERSION or rec_size != CMD_SIZE:
        return None
    (hcrc,) = _CRC.unpack_from(data, off + _HEAD.size)
    if hcrc != crc32c.crc32c(memoryview(data)[off : off + _HEAD.size]):
        return None
    if not (0 < count <= MAX_BATCH_CMDS) or plen != count * CMD_SIZE or first_seq == 0:
        return None
    return first_seq, count, plen, pcrc


def find_valid_header(data: SegmentData, start: int) -> int:
    """Offset of the first valid header (or trailer) at or after ``start``, or -1.

    Used to tell a torn tail (nothing valid after the damage) from damage inside
    the durable prefix (something complete was written after it).
    """
    pos = data.find(MAGIC, max(start, 0))
    while pos >= 0:
        if parse_header(data, pos) is not None:
            return pos
        pos = data.find(MAGIC, pos + 1)
    return -1


@dataclass(frozen=True)
class Batch:
    """One valid batch found in a segment."""

    segment: str
    offset: int
    first_seq: int
    count: int

    @property
    def last_seq(self) -> int:
        """Sequence number of the batch's last command."""
        return self.first_seq + self.count - 1


@dataclass(frozen=True)
class TailDamage:
    """What a scan found at the end of the last segment (and what repair does).

    ``kind`` is ``"torn"`` (an incomplete batch: truncate at ``offset``) or
    ``"trailer"`` (header and payload complete, trailer torn or damaged: rewrite
    the trailer at ``offset`` and keep the batch).
    """

    segment: str
    kind: Literal["torn", "trailer"]
    offset: int
    dropped_bytes: int
    reason: str
    trailer: bytes = b""


@dataclass
class SegmentScan:
    """Result of scanning one segment: its valid batches and any tail damage."""

    name: str
    batches: list[Batch]
    end: int
    damage: TailDamage | None


def scan_segment(
    name: str, data: SegmentData, first_seq: int, *, verify: bool = True
) -> tuple[SegmentScan, list[npt.NDArray[np.void]]]:
    """Validate every batch of one segment.

    Parameters
    ----------
    name : str
        Segment name (for messages).
    data : bytes or mmap.mmap
        The whole segment.
    first_seq : int
        Sequence number the segment's first batch must start at.
    verify : bool
        Check payload CRCs and per-record sequence numbers (False only for the
        ``skip_crc`` broken variant).

    Returns
    -------
    (SegmentScan, list of ndarray)
        The scan, and one read-only CMD_DTYPE view into ``data`` per valid batch.

    Raises
    ------
    JournalCorrupt
        Damage that is followed by completely written data, a sequence gap or
        repeat, or a record whose seq field disagrees with its position.
    """
    size = len(data)
    off, expected, index = 0, first_seq, 0
    batches: list[Batch] = []
    views: list[npt.NDArray[np.void]] = []
    max_batches = size // MIN_BATCH_BYTES + 1
    while off < size:
        assert index <= max_batches, (name, index)
        hdr = parse_header(data, off)
        if hdr is None:
            if find_valid_header(data, off + 1) >= 0 or _written_after(data, off + HEADER_SIZE):
                raise JournalCorrupt(
                    name, index, expected, off, "damaged batch header followed by written data"
                )
            return _torn(name, batches, off, size, "incomplete batch header"), views
        seq, count, plen, pcrc = hdr
        if seq != expected:
            # A torn write of the next batch carries the expected seq: anything
            # else is a misdirected or stale write, whatever its payload holds.
            raise JournalCorrupt(
                name, index, expected, off,
                f"sequence discontinuity: batch starts at seq {seq}, expected {expected} "
                "(misdirected or stale write)",
            )  # fmt: skip
        pend = off + HEADER_SIZE + plen
        payload = memoryview(data)[off + HEADER_SIZE : pend]
        trailer_ok = data[pend : pend + HEADER_SIZE] == data[off : off + HEADER_SIZE]
        if pend > size or (verify and crc32c.crc32c(payload) != pcrc):
            if (
                trailer_ok
                or find_valid_header(data, off + HEADER_SIZE) >= 0
                or _written_after(data, pend)
            ):
                raise JournalCorrupt(
                    name, index, seq, off, "payload CRC mismatch in a completely written batch"
                )
            return _torn(name, batches, off, size, "incomplete batch payload"), views
        cmds = np.frombuffer(data, dtype=CMD_DTYPE, count=count, offset=off + HEADER_SIZE)
        if verify:
            _check_record_seqs(name, index, off, seq, cmds)
        batches.append(Batch(name, off, seq, count))
        views.append(cmds)
        expected += count
        index += 1
        if not trailer_ok:
            if find_valid_header(data, pend) >= 0 or _written_after(data, pend + HEADER_SIZE):
                raise JournalCorrupt(
                    name, index - 1, seq, pend, "damaged batch trailer followed by written data"
                )
            header = data[off : off + HEADER_SIZE]
            damage = TailDamage(
                name, "trailer", pend, size - pend, "torn or damaged trailer of a complete batch",
                header,
            )  # fmt: skip
            return SegmentScan(name, batches, pend + HEADER_SIZE, damage), views
        off = pend + HEADER_SIZE
    return SegmentScan(name, batches, off, None), views


def _written_after(data: SegmentData, pos: int) -> bool:
    """True if a non-zero byte exists at or after ``pos``.

    A torn write leaves a prefix of its sectors; the lost ones are absent or read
    as zeros.  Written data after a damaged spot (every record's seq is non-zero,
    every header starts with the magic) therefore proves the damage is not a tear.
    """
    if pos >= len(data):
        return False
    rest = data[pos:]  # a copy only on this damage path (mmap has no count())
    return rest.count(0) < len(rest)


def _torn(name: str, batches: list[Batch], off: int, size: int, reason: str) -> SegmentScan:
    return SegmentScan(name, batches, off, TailDamage(name, "torn", off, size - off, reason))


def _check_record_seqs(
    name: str, index: int, off: int, first_seq: int, cmds: npt.NDArray[np.void]
) -> None:
    want = np.arange(first_seq, first_seq + len(cmds), dtype=np.uint64)
    bad = np.flatnonzero(cmds["seq"] != want)
    if len(bad):
        i = int(bad[0])
        raise JournalCorrupt(
            name, index, first_seq + i, off + HEADER_SIZE + i * CMD_SIZE,
            f"record {i} of the batch carries seq {int(cmds[i]['seq'])}, "
            f"expected {first_seq + i}",
        )  # fmt: skip


class JournalReader:
    """Reads the journal forward from a sequence number, validating as it goes.

    After :meth:`batches` is exhausted, :attr:`tail` (the last segment's scan,
    or None when there is no segment), :attr:`last_seq` and :attr:`last_ts_ns`
    (ts of the newest valid record, replayed or not) describe where the journal
    ends.  Reading never writes; :func:`repair_tail` does.

    Parameters
    ----------
    storage : Storage
        Where the segments are.
    verify : bool
        Check payload CRCs and record sequence numbers (False: ``skip_crc`` variant).
    include_archived : bool
        Also read ``archive-journal-*.seg`` (from-scratch replay, standbys).
    """

    def __init__(
        self, storage: Storage, *, verify: bool = True, include_archived: bool = False
    ) -> None:
        self.storage = storage
        self.verify = verify
        self.include_archived = include_archived
        self.tail: SegmentScan | None = None
        self.last_seq = 0
        self.last_ts_ns = 0
        self.segments_read: list[str] = []

    def batches(self, after_seq: int) -> Iterator[tuple[Batch, npt.NDArray[np.void]]]:
        """Yield every valid batch whose commands come after ``after_seq``, in order.

        Raises
        ------
        JournalCorrupt
            Damage inside the durable prefix, a missing segment, a torn batch in a
            segment that is not the last, or a journal that ends before ``after_seq``.
        """
        segments = list_segments(self.storage, include_archived=self.include_archived)
        self.last_seq = after_seq
        if not segments:
            if after_seq > 0:
                raise JournalCorrupt(
                    "(none)", 0, after_seq, 0,
                    f"no journal segment at all, but the state is at seq {after_seq}",
                )  # fmt: skip
            return
        try:
            start = _start_index(segments, after_seq + 1)
        except JournalCorrupt as e:
            raise self._archived_hint(segments[0][0], after_seq + 1) or e from e
        expected = segments[start][0]
        for i in range(start, len(segments)):
            first_seq, name = segments[i]
            if first_seq != expected:
                raise JournalCorrupt(
                    name, 0, expected, 0,
                    f"missing segment: the journal continues at seq {expected} but the next "
                    f"segment starts at seq {first_seq}",
                )  # fmt: skip
            data = self._segment_data(name)
            scan, views = scan_segment(name, data, first_seq, verify=self.verify)
            self.segments_read.append(name)
            if scan.damage is not None and i + 1 < len(segments):
                raise JournalCorrupt(
                    name, len(scan.batches), expected + sum(b.count for b in scan.batches),
                    scan.damage.offset,
                    f"{scan.damage.reason} in a segment followed by {segments[i + 1][1]}",
                )  # fmt: skip
            if views:
                self.last_ts_ns = int(views[-1][-1]["ts_ns"])
            for batch, cmds in zip(scan.batches, views, strict=True):
                if batch.last_seq <= after_seq:
                    continue
                if batch.first_seq <= after_seq:
                    raise JournalCorrupt(
                        name, 0, batch.first_seq, batch.offset,
                        f"state seq {after_seq} falls inside batch "
                        f"[{batch.first_seq}, {batch.last_seq}]",
                    )  # fmt: skip
                yield batch, cmds
                self.last_seq = batch.last_seq
            expected = first_seq + sum(b.count for b in scan.batches)
            self.tail = scan
        if expected - 1 < after_seq:
            raise JournalCorrupt(
                self.tail.name if self.tail else "(none)", 0, expected, 0,
                f"the journal ends at seq {expected - 1}, before the state's seq {after_seq}",
            )  # fmt: skip

    def _segment_data(self, name: str) -> SegmentData:
        """The whole segment: memory-mapped read-only over real files (no 1 GB copy per
        10M commands through ``pread``, recovery time, issue 16), else read.

        The batch views handed to the replay keep the mapping alive; a later repair
        only truncates bytes after every valid batch or renames a new file over it,
        so mapped pages of valid batches stay backed by the file.
        """
        # The server wraps its FileStorage (metrics.TimedStorage): look through it.
        inner = getattr(self.storage, "inner", self.storage)
        if isinstance(inner, FileStorage):
            fd = os.open(os.path.join(inner.directory, name), os.O_RDONLY)
            try:
                if os.fstat(fd).st_size > 0:
                    return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            finally:
                os.close(fd)
        return self.storage.read(name, 0, self.storage.size(name))

    def _archived_hint(self, live_first: int, from_seq: int) -> JournalCorrupt | None:
        """The error to raise when archived segments in this directory hold ``from_seq``.

        Recovery needs them only when no snapshot could be used (both damaged):
        name the archived segment that holds ``from_seq``, which ``bursa replay``
        (from scratch, archived segments included) reads as is.
        """
        if self.include_archived:
            return None
        archived = [
            (seq, name)
            for seq, name in list_segments(self.storage, include_archived=True)
            if name.startswith(ARCHIVE_PREFIX) and seq < live_first
        ]
        holding = [(seq, name) for seq, name in archived if seq <= from_seq]
        if not holding:
            return None
        name = holding[-1][1]
        return JournalCorrupt(
            name, 0, from_seq, 0,
            f"the live journal starts at seq {live_first} but seq {from_seq} is needed (no "
            f"usable snapshot covers it); the archived segment {name} in this directory "
            f"holds it ({len(archived)} archived segments from seq {archived[0][0]}): rename "
            f"the archived segments back to journal-*.seg, or rebuild with `bursa replay`, "
            f"which reads them as they are",
        )  # fmt: skip


def _start_index(segments: list[tuple[int, str]], from_seq: int) -> int:
    """Index of the last segment starting at or before ``from_seq`` (it holds ``from_seq``)."""
    start = -1
    for i, (first_seq, _) in enumerate(segments):
        if first_seq <= from_seq:
            start = i
    if start < 0:
        first_seq, name = segments[0]
        raise JournalCorrupt(
            name, 0, from_seq, 0,
            f"missing segment: the journal starts at seq {first_seq} but seq {from_seq} "
            "is needed (earlier segments archived or lost and no snapshot covers them)",
        )  # fmt: skip
    return start


def write_verified(storage: Storage, name: str, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset``, sync it, and read it back.

    Used where recovery writes on top of what it just read: a misdirected or
    lost write there must stop recovery (StorageError: the process retries)
    rather than leave a hole under batches acknowledged later.
    """
    storage.write_at(name, offset, data)
    storage.sync(name)
    if storage.read(name, offset, len(data)) != data:
        raise StorageError(errno.EIO, f"read-back of {name} at {offset} differs after a rewrite")


def is_rewrite_temp(name: str) -> bool:
    """True for a leftover copy of :func:`rewrite_segment` (removed at recovery)."""
    return (
        name.endswith(REWRITE_SUFFIX)
        and parse_segment_name(name[: -len(REWRITE_SUFFIX)]) is not None
    )


def rewrite_segment(storage: Storage, name: str, size: int) -> None:
    """Make the first ``size`` bytes of segment ``name`` durable without trusting the page cache.

    After a failed fdatasync Linux may mark the dirty pages clean ("fsyncgate"):
    they stay readable, so recovery replays them, but a plain fdatasync writes
    nothing and a later power loss leaves a hole under batches acknowledged on
    top of them.  So recovery copies what it read into a NEW file (fresh dirty
    pages), syncs it, reads it back (a misdirected write into a new file leaves
    zeros at the intended place, so the read-back catches it), renames it over
    the segment and syncs the directory.

    Raises
    ------
    StorageError
        Any step failed (the process retries recovery; the old segment is intact).
    """
    tmp = name + REWRITE_SUFFIX
    if tmp in storage.list():
        storage.remove(tmp)
    data = storage.read(name, 0, size)
    if len(data) != size:
        raise StorageError(errno.EIO, f"short read of {name}: {len(data)} of {size} bytes")
    if data:
        write_verified(storage, tmp, 0, data)
    else:
        storage.truncate(tmp, 0)
        storage.sync(tmp)
    storage.rename(tmp, name)
    storage.sync_dir()


def repair_tail(storage: Storage, damage: TailDamage) -> None:
    """Make the last segment end at its last complete batch, durably.

    A torn batch is truncated away; a complete batch with a torn or damaged
    trailer keeps its data and gets its trailer rewritten.  Logged as a warning.
    """
    storage.truncate(damage.segment, damage.offset)
    if damage.kind == "torn":
        storage.sync(damage.segment)
    else:
        assert len(damage.trailer) == HEADER_SIZE
        write_verified(storage, damage.segment, damage.offset, damage.trailer)
    log.warning(
        "journal tail repaired: %s at byte %d: %s (%s, %d bytes)",
        damage.segment, damage.offset, damage.reason, damage.kind, damage.dropped_bytes,
    )  # fmt: skip


class JournalWriter:
    """Appends batches to the current segment; rolls, syncs, verifies, archives.

    Parameters
    ----------
    storage : Storage
        Where segments live.
    next_seq : int
        Sequence number the next batch must start at.
    tail_segment : str or None
        Segment to continue appending to (from recovery), or None to start a new one.
    tail_size : int
        Valid size of ``tail_segment`` in bytes.
    segment_bytes : int
        Roll to a new segment before a batch would make the current one larger.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        next_seq: int,
        tail_segment: str | None,
        tail_size: int,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        assert next_seq >= 1 and segment_bytes >= MIN_BATCH_BYTES
        self.storage = storage
        self.segment_bytes = segment_bytes
        self.segment = tail_segment
        self.size = tail_size if tail_segment is not None else 0
        self.next_seq = next_seq
        # Every batch through this seq is durable (recovery synced what it found).
        self.synced_seq = next_seq - 1
        self.dirty = False
        self.failed = False
        self._new_name = False

    def write_batch(self, cmds: npt.NDArray[np.void], *, sync: bool) -> None:
        """Append one batch (one write), optionally fdatasync it, then read it back.

        Parameters
        ----------
        cmds : ndarray of CMD_DTYPE
            The batch; ``seq`` must run from :attr:`next_seq` and ``ts_ns`` be set.
        sync : bool
            fdatasync before returning (fsync mode).

        Raises
        ------
        JournalWriteError
            The storage failed or the read-back differs (misdirected or short
            write).  Nothing of the batch may be acknowledged; the writer is dead.
        """
        written = self.append(cmds)
        if sync or self._new_name:
            # A new segment's name is made durable at once, in every mode.
            self.sync(data=sync)
        self.verify(written)

    def append(self, cmds: npt.NDArray[np.void]) -> tuple[int, bytes]:
        """Write one batch at the end of the current segment (rolling first if needed).

        The first half of :meth:`write_batch`, for callers that overlap the sync
        with other work: call :meth:`sync` and then :meth:`verify` with the result
        before acknowledging anything.

        Returns
        -------
        (offset, bytes)
            Where the batch was written and its exact bytes.

        Raises
        ------
        JournalWriteError
            The storage failed; the writer is dead.
        """
        if self.failed:
            raise JournalWriteError("journal writer failed earlier: restart through recovery")
        first_seq = self.next_seq
        buf = encode_batch(first_seq, cmds)
        try:
            if self.segment is None or (
                self.size > 0 and self.size + len(buf) > self.segment_bytes
            ):
                self._roll(first_seq)
            assert self.segment is not None
            offset = self.size
            # write_at at the tracked end, not append: no fstat per batch, and a
            # file that grew behind our back cannot shift where the batch lands.
            self.dirty = True
            self.storage.write_at(self.segment, offset, buf)
        except OSError as e:  # StorageError, or a raw OSError of rename/unlink
            self.failed = True
            raise JournalWriteError(f"journal write of seq {first_seq} failed: {e}") from e
        self.size += len(buf)
        self.next_seq = first_seq + len(cmds)
        return offset, buf

    def verify(self, written: tuple[int, bytes]) -> None:
        """Read a batch back and compare it with what :meth:`append` wrote.

        Raises
        ------
        JournalWriteError
            The read failed or differs (misdirected or silently short write).
        """
        offset, buf = written
        assert self.segment is not None and offset + len(buf) <= self.size
        try:
            back = self.storage.read(self.segment, offset, len(buf))
        except OSError as e:
            self.failed = True
            raise JournalWriteError(f"journal read-back of {self.segment} failed: {e}") from e
        if back != buf:
            self.failed = True
            raise JournalWriteError(
                f"journal read-back of {self.segment} at byte {offset} differs from what "
                f"was written ({len(back)} of {len(buf)} bytes read)"
            )

    def _roll(self, first_seq: int) -> None:
        if self.segment is not None and self.dirty:
            # The old segment is made durable first so that a later segment never
            # exists after a power loss while the earlier one lost its tail.
            self.storage.sync(self.segment)
            self.dirty = False
        self.segment = segment_name(first_seq)
        self.size = 0
        self._new_name = True
        log.info("journal: new segment %s", self.segment)

    def sync(self, *, data: bool = True) -> None:
        """fdatasync the current segment if it has unsynced batches, and make a new
        segment's name durable.  Safe to run on a helper thread while the caller
        does other work, as long as nothing else touches the writer meanwhile.

        Parameters
        ----------
        data : bool
            False: only the directory (a new segment's name), not the data.

        Raises
        ------
        JournalWriteError
            The sync failed; the writer is dead.
        """
        if self.failed:
            raise JournalWriteError("journal writer failed earlier: restart through recovery")
        if self.segment is None:
            return
        try:
            if data and self.dirty:
                self.storage.sync(self.segment)
                self.dirty = False
            if self._new_name:
                # A new segment's name must be durable before anything in it is acked.
                self.storage.sync_dir()
                self._new_name = False
            if data:
                self.synced_seq = self.next_seq - 1
        except OSError as e:  # StorageError, or a raw OSError of the directory sync
            self.failed = True
            raise JournalWriteError(f"journal sync of {self.segment} failed: {e}") from e

    def archive_through(self, seq: int, mode: ArchiveMode = "rename") -> list[str]:
        """Archive (rename to ``archive-...`` or delete) segments holding only seqs <= ``seq``.

        The current segment is never archived.  Returns the names archived.
        """
        segments = list_segments(self.storage)
        done: list[str] = []
        for (_, name), (next_first, _) in itertools.pairwise(segments):
            if next_first - 1 > seq or name == self.segment:
                break
            if mode == "delete":
                self.storage.remove(name)
            else:
                self.storage.rename(name, ARCHIVE_PREFIX + name)
            done.append(name)
        if done:
            self.storage.sync_dir()
            log.info("journal: archived (%s) %d segments through seq %d", mode, len(done), seq)
        return done
