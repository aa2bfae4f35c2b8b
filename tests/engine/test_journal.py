"""Journal format, scanning (torn tail vs corruption), writer, read-back check, archive."""

from __future__ import annotations

import errno
import random
import struct

import crc32c
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bursa_wire.layout import CMD_DTYPE, CMD_SIZE
from engine.journal import (
    ARCHIVE_PREFIX,
    HEADER_SIZE,
    MAGIC,
    JournalCorrupt,
    JournalReader,
    JournalWriteError,
    JournalWriter,
    encode_batch,
    encode_header,
    list_segments,
    parse_header,
    parse_segment_name,
    repair_tail,
    scan_segment,
    segment_name,
)
from engine.storage import FileStorage, StorageError
from sim.disk import FaultRates, SimDisk
from tests.engine.fakecore import make_cmds
from tests.engine.util import cut, flip_bit, put


def sequenced(first_seq: int, n: int) -> np.ndarray:
    """``n`` commands with seq from ``first_seq`` and a ts."""
    cmds = make_cmds(n, start_ref=first_seq)
    cmds["seq"] = np.arange(first_seq, first_seq + n, dtype=np.uint64)
    cmds["ts_ns"] = 1_700_000_000_000_000_000 + first_seq
    return cmds


def segment_bytes(sizes: list[int], first_seq: int = 1) -> tuple[bytes, list[int]]:
    """A segment of batches of the given sizes; also each batch's start offset."""
    parts, offsets, seq, off = [], [], first_seq, 0
    for n in sizes:
        b = encode_batch(seq, sequenced(seq, n))
        parts.append(b)
        offsets.append(off)
        off += len(b)
        seq += n
    return b"".join(parts), offsets


def batch_len(n: int) -> int:
    return 2 * HEADER_SIZE + n * CMD_SIZE


# ------------------------------------------------------------------ format


def test_header_byte_layout_and_trailer_copy() -> None:
    cmds = sequenced(42, 3)
    buf = encode_batch(42, cmds)
    assert len(buf) == batch_len(3)
    head = buf[:HEADER_SIZE]
    assert head == buf[-HEADER_SIZE:]
    assert head[0:4] == MAGIC
    version, rec_size, first_seq, count, plen, pcrc, hcrc = struct.unpack_from("<HHQIIII", head, 4)
    assert (version, rec_size, first_seq, count, plen) == (1, 96, 42, 3, 288)
    assert pcrc == crc32c.crc32c(cmds.tobytes())
    assert hcrc == crc32c.crc32c(head[:28])
    assert buf[HEADER_SIZE:-HEADER_SIZE] == cmds.tobytes()
    assert parse_header(buf, 0) == (42, 3, 288, pcrc)
    assert parse_header(buf, len(buf) - HEADER_SIZE) == (42, 3, 288, pcrc)


def test_segment_names_round_trip() -> None:
    assert segment_name(1) == "journal-00000000000000000001.seg"
    assert parse_segment_name(segment_name(123456789)) == 123456789
    assert parse_segment_name(ARCHIVE_PREFIX + segment_name(5)) is None
    assert parse_segment_name(ARCHIVE_PREFIX + segment_name(5), include_archived=True) == 5
    assert parse_segment_name("journal-1.seg") is None
    assert parse_segment_name("snapshot-00000000000000000001.snap") is None


def test_bad_header_fields_are_invalid() -> None:
    buf = bytearray(encode_batch(1, sequenced(1, 1)))
    assert parse_header(bytes(buf[:31]), 0) is None
    for pos in range(HEADER_SIZE):
        damaged = bytearray(buf)
        damaged[pos] ^= 0x10
        assert parse_header(bytes(damaged), 0) is None, pos


# ------------------------------------------------------------------ writer + reader


def test_writer_rolls_segments_and_reader_returns_every_record(storage) -> None:
    w = JournalWriter(storage, next_seq=1, tail_segment=None, tail_size=0, segment_bytes=2000)
    sizes = [1, 5, 3, 30, 2, 2, 7]  # the 30-command batch is larger than a segment
    seq = 1
    for n in sizes:
        w.write_batch(sequenced(seq, n), sync=True)
        seq += n
    assert w.next_seq == seq
    segs = list_segments(storage)
    assert segs[0][0] == 1 and len(segs) >= 3
    for first, name in segs:
        assert storage.read(name, 8, 8) == struct.pack("<Q", first)  # first batch's first_seq
    r = JournalReader(storage)
    got = list(r.batches(after_seq=0))
    assert [b.count for b, _ in got] == sizes
    records = np.concatenate([c for _, c in got])
    assert (records["seq"] == np.arange(1, seq)).all()
    expected = np.concatenate(
        [sequenced(s, n) for s, n in zip(np.cumsum([1, *sizes[:-1]]), sizes, strict=True)]
    )
    assert records.tobytes() == expected.tobytes()
    assert r.last_seq == seq - 1 and r.tail is not None and r.tail.damage is None


def test_reader_starts_after_a_seq_inside_a_later_segment(storage) -> None:
    w = JournalWriter(storage, next_seq=1, tail_segment=None, tail_size=0, segment_bytes=700)
    for s in range(1, 21, 2):
        w.write_batch(sequenced(s, 2), sync=True)
    got = list(JournalReader(storage).batches(after_seq=12))
    assert [b.first_seq for b, _ in got] == [13, 15, 17, 19]
    with pytest.raises(JournalCorrupt, match="falls inside batch"):
        list(JournalReader(storage).batches(after_seq=13))
    with pytest.raises(JournalCorrupt, match="before the state's seq"):
        list(JournalReader(storage).batches(after_seq=25))


def test_writer_continues_a_recovered_tail(storage) -> None:
    w = JournalWriter(storage, next_seq=1, tail_segment=None, tail_size=0)
    w.write_batch(sequenced(1, 3), sync=True)
    w.write_batch(sequenced(4, 3), sync=True)
    name = segment_name(1)
    cut(storage, name, storage.size(name) - 40)
    r = JournalReader(storage)
    assert [b.first_seq for b, _ in r.batches(0)] == [1]
    assert r.tail is not None and r.tail.damage is not None
    repair_tail(storage, r.tail.damage)
    w2 = JournalWriter(
        storage, next_seq=r.last_seq + 1, tail_segment=r.tail.name, tail_size=r.tail.end
    )
    w2.write_batch(sequenced(4, 5), sync=True)
    r2 = JournalReader(storage)
    assert [(b.first_seq, b.count) for b, _ in r2.batches(0)] == [(1, 3), (4, 5)]
    assert r2.tail is not None and r2.tail.damage is None


# ------------------------------------------------------------------ torn tail


def test_torn_tail_at_every_byte_of_the_last_batch(new_storage) -> None:
    sizes = [2, 3, 2]
    data, offsets = segment_bytes(sizes)
    last = offsets[-1]
    payload_end = len(data) - HEADER_SIZE
    name = segment_name(1)
    storage = new_storage()
    for size in range(last, len(data) + 1):
        put(storage, name, data[:size])
        r = JournalReader(storage)
        got = [b.first_seq for b, _ in r.batches(0)]
        assert r.tail is not None
        if size == last:  # a clean end between batches
            assert got == [1, 3] and r.tail.damage is None
        elif size < payload_end:  # header or payload incomplete: the batch is dropped
            assert got == [1, 3], size
            assert r.tail.damage is not None and r.tail.damage.kind == "torn"
            assert r.tail.damage.offset == last and r.tail.end == last
        elif size < len(data):  # header + payload complete: kept, trailer rewritten
            assert got == [1, 3, 6], size
            assert r.tail.damage is not None and r.tail.damage.kind == "trailer"
        else:
            assert got == [1, 3, 6] and r.tail.damage is None
        if r.tail.damage is not None:
            repair_tail(storage, r.tail.damage)
            r2 = JournalReader(storage)
            assert [b.first_seq for b, _ in r2.batches(0)] == got
            assert r2.tail is not None and r2.tail.damage is None
            assert storage.size(name) == r.tail.end
            assert storage.read(name, 0, r.tail.end) == data[: r.tail.end]


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    frac=st.floats(0, 1),
    zeros=st.booleans(),
)
def test_any_cut_recovers_the_complete_batches(sizes, frac, zeros) -> None:
    data, offsets = segment_bytes(sizes)
    size = int(frac * len(data))
    blob = data[:size]
    if zeros:  # some file systems expose the lost sectors as zeros
        blob += bytes(len(data) - size)
    scan, _ = scan_segment("s", blob, 1)
    ends = [o + batch_len(n) for o, n in zip(offsets, sizes, strict=True)]
    # A batch is complete when its header and payload are intact (zero fill may
    # complete a payload whose last bytes were zeros anyway).
    complete = [e for e in ends if blob[: e - HEADER_SIZE] == data[: e - HEADER_SIZE]]
    assert len(scan.batches) == len(complete)


# ------------------------------------------------------------------ corruption inside the prefix


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    pos=st.floats(0, 1),
    bit=st.integers(0, 7),
)
def test_any_bit_flip_stops_or_is_a_repairable_last_trailer(sizes, pos, bit) -> None:
    data, offsets = segment_bytes(sizes)
    p = min(int(pos * len(data)), len(data) - 1)
    damaged = bytearray(data)
    damaged[p] ^= 1 << bit
    if p >= len(data) - HEADER_SIZE:
        scan, _ = scan_segment("s", bytes(damaged), 1)
        assert len(scan.batches) == len(sizes)
        assert scan.damage is not None and scan.damage.kind == "trailer"
    else:
        with pytest.raises(JournalCorrupt) as exc:
            scan_segment("s", bytes(damaged), 1)
        k = max(i for i, o in enumerate(offsets) if o <= p)
        assert exc.value.batch_index == k
        first_of_batch = 1 + sum(sizes[:k])
        assert first_of_batch <= exc.value.seq < first_of_batch + sizes[k]


def test_flip_in_an_earlier_batch_stops_with_its_record_number(storage) -> None:
    data, offsets = segment_bytes([4, 4, 4])
    name = segment_name(1)
    put(storage, name, data)
    flip_bit(storage, name, offsets[1] + HEADER_SIZE + 2 * CMD_SIZE + 40, 3)
    with pytest.raises(JournalCorrupt) as exc:
        list(JournalReader(storage).batches(0))
    e = exc.value
    assert (e.segment, e.batch_index, e.seq, e.offset) == (name, 1, 5, offsets[1])
    assert "payload CRC" in str(e) and "batch #1" in str(e) and "seq 5" in str(e)
    assert storage.size(name) == len(data)


def test_last_batch_with_bad_payload_but_valid_trailer_is_corrupt_not_torn(storage) -> None:
    data, offsets = segment_bytes([2, 2])
    name = segment_name(1)
    put(storage, name, data)
    flip_bit(storage, name, offsets[1] + HEADER_SIZE + 5)
    with pytest.raises(JournalCorrupt, match="completely written"):
        list(JournalReader(storage).batches(0))
    assert storage.size(name) == len(data)


def test_last_batch_with_bad_header_but_valid_trailer_is_corrupt(storage) -> None:
    data, offsets = segment_bytes([2, 2])
    name = segment_name(1)
    put(storage, name, data)
    flip_bit(storage, name, offsets[1] + 9)
    with pytest.raises(JournalCorrupt, match="header"):
        list(JournalReader(storage).batches(0))


def test_damaged_trailer_in_the_middle_is_corrupt(storage) -> None:
    data, offsets = segment_bytes([2, 2])
    name = segment_name(1)
    put(storage, name, data)
    flip_bit(storage, name, offsets[1] - 3)
    with pytest.raises(JournalCorrupt, match="trailer"):
        list(JournalReader(storage).batches(0))


def test_misdirected_copy_with_valid_crcs_is_a_sequence_gap(storage) -> None:
    a = encode_batch(1, sequenced(1, 2))
    stale = encode_batch(1, sequenced(1, 2))  # a valid batch written at the wrong place
    name = segment_name(1)
    put(storage, name, a + stale)
    with pytest.raises(JournalCorrupt, match="discontinuity") as exc:
        list(JournalReader(storage).batches(0))
    assert exc.value.seq == 3 and exc.value.batch_index == 1


def test_record_with_wrong_seq_but_valid_crc_is_corrupt() -> None:
    cmds = sequenced(1, 4)
    cmds["seq"][2] = 99
    payload = cmds.tobytes()
    head = encode_header(1, 4, crc32c.crc32c(payload))
    buf = head + payload + head
    with pytest.raises(JournalCorrupt, match="record 2") as exc:
        scan_segment("s", buf, 1)
    assert exc.value.seq == 3
    scan, _ = scan_segment("s", buf, 1, verify=False)  # the skip_crc variant accepts it
    assert len(scan.batches) == 1


def test_skip_crc_accepts_a_flipped_payload() -> None:
    data, offsets = segment_bytes([3, 3])
    damaged = bytearray(data)
    damaged[offsets[0] + HEADER_SIZE + 50] ^= 1
    with pytest.raises(JournalCorrupt):
        scan_segment("s", bytes(damaged), 1)
    scan, views = scan_segment("s", bytes(damaged), 1, verify=False)
    assert len(scan.batches) == 2
    assert views[0].tobytes() != sequenced(1, 3).tobytes()


def test_missing_segment_is_corrupt(storage) -> None:
    w = JournalWriter(storage, next_seq=1, tail_segment=None, tail_size=0, segment_bytes=600)
    for s in range(1, 13, 2):
        w.write_batch(sequenced(s, 2), sync=True)
    segs = list_segments(storage)
    assert len(segs) >= 3
    storage.remove(segs[1][1])
    with pytest.raises(JournalCorrupt, match="missing segment") as exc:
        list(JournalReader(storage).batches(0))
    assert exc.value.seq == segs[1][0]
    # Missing the first segment: the journal does not reach back to seq 1.
    storage.remove(segs[0][1])
    with pytest.raises(JournalCorrupt, match="missing segment"):
        list(JournalReader(storage).batches(0))


def test_torn_batch_in_a_segment_that_is_not_the_last_is_corrupt(storage) -> None:
    w = JournalWriter(storage, next_seq=1, tail_segment=None, tail_size=0, segment_bytes=600)
    for s in range(1, 9, 2):
        w.write_batch(sequenced(s, 2), sync=True)
    segs = list_segments(storage)
    first = segs[0][1]
    cut(storage, first, storage.size(first) - 40)
    with pytest.raises(JournalCorrupt, match="followed by"):
        list(JournalReader(storage).batches(0))


def test_no_segment_while_the_state_is_ahead_is_corrupt(storage) -> None:
    assert list(JournalReader(storage).batches(0)) == []
    with pytest.raises(JournalCorrupt, match="no journal segment"):
        list(JournalReader(storage).batches(7))


# ------------------------------------------------------------------ verify after write


def test_read_back_catches_a_misdirected_write() -> None:
    disk = SimDisk(random.Random(3))
    w = JournalWriter(disk, next_seq=1, tail_segment=None, tail_size=0)
    w.write_batch(sequenced(1, 4), sync=True)
    disk.rates = FaultRates(misdirected_write=1.0)
    with pytest.raises(JournalWriteError, match="read-back"):
        w.write_batch(sequenced(5, 4), sync=True)
    assert disk.fault_counts["misdirected_write"] == 1
    assert w.failed
    with pytest.raises(JournalWriteError):
        w.write_batch(sequenced(5, 4), sync=True)


class LyingStorage:
    """Wraps a storage; the ``lie``-th write silently writes only half its data."""

    def __init__(self, inner, lie: int) -> None:
        self.inner = inner
        self.lie = lie

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _data(self, data):
        self.lie -= 1
        return data[: len(data) // 2] if self.lie == 0 else data

    def append(self, name, data):
        self.inner.append(name, self._data(data))

    def write_at(self, name, offset, data):
        self.inner.write_at(name, offset, self._data(data))


def test_read_back_catches_a_silent_short_write(storage) -> None:
    w = JournalWriter(LyingStorage(storage, 2), next_seq=1, tail_segment=None, tail_size=0)
    w.write_batch(sequenced(1, 2), sync=True)
    with pytest.raises(JournalWriteError, match="differs"):
        w.write_batch(sequenced(3, 2), sync=True)


@pytest.mark.parametrize("fault", ["eio_sync", "enospc", "short_write", "eio_write"])
def test_storage_errors_become_journal_write_errors(fault) -> None:
    disk = SimDisk(random.Random(1))
    w = JournalWriter(disk, next_seq=1, tail_segment=None, tail_size=0)
    rates = FaultRates()
    setattr(rates, fault, 1.0)
    disk.rates = rates
    with pytest.raises(JournalWriteError) as exc:
        w.write_batch(sequenced(1, 2), sync=True)
    assert isinstance(exc.value.__cause__, StorageError)
    assert exc.value.__cause__.errno in (errno.EIO, errno.ENOSPC)
    assert w.failed


# ------------------------------------------------------------------ archive


@pytest.mark.parametrize("mode", ["rename", "delete"])
def test_archive_through_keeps_needed_and_current_segments(storage, mode) -> None:
    w = JournalWriter(storage, next_seq=1, tail_segment=None, tail_size=0, segment_bytes=600)
    for s in range(1, 13, 2):
        w.write_batch(sequenced(s, 2), sync=True)
    segs = list_segments(storage)
    firsts = [s for s, _ in segs]
    cutoff = firsts[2] - 1  # everything in the first two segments is <= cutoff
    done = w.archive_through(cutoff, mode)
    assert done == [segs[0][1], segs[1][1]]
    assert [s for s, _ in list_segments(storage)] == firsts[2:]
    archived = [n for n in storage.list() if n.startswith(ARCHIVE_PREFIX)]
    assert archived == ([ARCHIVE_PREFIX + n for n in done] if mode == "rename" else [])
    assert w.archive_through(10**9, mode) == [segs[i][1] for i in range(2, len(segs) - 1)]
    assert list_segments(storage) == [segs[-1]]  # the current segment stays
    r = JournalReader(storage, include_archived=(mode == "rename"))
    if mode == "rename":
        assert sum(b.count for b, _ in r.batches(0)) == 12
    else:
        with pytest.raises(JournalCorrupt, match="missing segment"):
            list(r.batches(0))


def test_cmd_dtype_is_what_the_journal_stores() -> None:
    assert CMD_DTYPE.itemsize == CMD_SIZE == 96


def _read_all(storage: object) -> tuple[list[int], str | None, str | None]:
    """Seqs replayed, tail damage kind and JournalCorrupt reason (or None)."""
    reader = JournalReader(storage)  # type: ignore[arg-type]
    seqs: list[int] = []
    try:
        for _batch, cmds in reader.batches(after_seq=0):
            seqs += [int(s) for s in cmds["seq"]]
    except JournalCorrupt as e:
        return seqs, None, e.reason
    damage = reader.tail.damage if reader.tail is not None else None
    return seqs, damage.kind if damage is not None else None, None


@pytest.mark.parametrize(
    "damage",
    ["none", "torn_payload", "torn_trailer", "zeros_after", "flip_then_data", "empty_last"],
)
def test_memory_mapped_segments_read_like_bytes(tmp_path, damage: str) -> None:
    # Real files are replayed through a read-only memory map (recovery time): every
    # verdict (torn tail, trailer, damage followed by data) must equal the one on bytes.
    first, _offsets = segment_bytes([3, 5, 2])
    second, offs2 = segment_bytes([4, 4], first_seq=11)
    if damage == "torn_payload":
        second = second[: offs2[1] + HEADER_SIZE + 100]
    elif damage == "torn_trailer":
        second = second[:-5]
    elif damage == "zeros_after":
        second = second + b"\0" * 300
    elif damage == "flip_then_data":
        b = bytearray(second)
        b[HEADER_SIZE + 7] ^= 1
        second = bytes(b)
    files = FileStorage(str(tmp_path))
    disk = SimDisk(random.Random(5))
    for st_ in (files, disk):
        put(st_, segment_name(1), first)
        if damage == "empty_last":
            put(st_, segment_name(11), b"")
        else:
            put(st_, segment_name(11), second)
    assert _read_all(files) == _read_all(disk)
    seqs, kind, reason = _read_all(files)
    expected = {
        "none": (list(range(1, 19)), None, None),
        "torn_payload": (list(range(1, 15)), "torn", None),
        "torn_trailer": (list(range(1, 19)), "trailer", None),
        "zeros_after": (list(range(1, 19)), "torn", None),
        "empty_last": (list(range(1, 11)), None, None),
    }
    if damage == "flip_then_data":
        assert reason is not None and "CRC" in reason
    else:
        assert (seqs, kind, reason) == expected[damage]
