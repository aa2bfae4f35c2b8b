"""The journal's preallocated segments (zeros written ahead of the end, docs/coreturn.md pass 6).

A batch overwrites zeros that already exist, so its sync flushes data only; the
zeros after the last batch must read as the journal's end (never replayed, not
damage, cut by recovery's rewrite of the last segment), and a torn batch over them
as a torn tail, in every state a crash can leave.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.journal import (
    PREALLOC_BYTES,
    JournalReader,
    JournalWriter,
    encode_batch,
    list_segments,
    segment_name,
)
from engine.recovery import recover
from engine.storage import FileStorage, Storage, StorageError
from sim.disk import SimDisk
from tests.engine.fakecore import FakeCore
from tests.engine.test_journal import sequenced


def _write(w: JournalWriter, sizes: list[int]) -> int:
    """Write batches of ``sizes`` commands from ``w.next_seq``; the next seq."""
    for n in sizes:
        w.write_batch(sequenced(w.next_seq, n), sync=True)
    return w.next_seq


def _plain_journal(sizes: list[int], segment_bytes: int) -> dict[str, bytes]:
    """Every segment's bytes as written without preallocation (the reference)."""
    disk = SimDisk(random.Random(0))
    w = JournalWriter(
        disk, next_seq=1, tail_segment=None, tail_size=0,
        segment_bytes=segment_bytes, prealloc_bytes=0,
    )  # fmt: skip
    _write(w, sizes)
    return {name: disk.read(name, 0, disk.size(name)) for _, name in list_segments(disk)}


def _recovered_segments(storage: Storage) -> dict[str, bytes]:
    return {name: storage.read(name, 0, storage.size(name)) for _, name in list_segments(storage)}


def test_default_preallocation_is_positive_and_bounded() -> None:
    assert 0 < PREALLOC_BYTES <= 64 * 1024 * 1024


def test_segment_is_zero_filled_ahead_and_the_zeros_read_as_the_end(storage) -> None:
    w = JournalWriter(storage, next_seq=1, tail_segment=None, tail_size=0, prealloc_bytes=4096)
    _write(w, [1, 3, 2])
    name = segment_name(1)
    assert w.alloc_end == 4096 and storage.size(name) == 4096 > w.size
    assert storage.read(name, w.size, 4096) == bytes(4096 - w.size)
    r = JournalReader(storage)
    assert [(b.first_seq, b.count) for b, _ in r.batches(0)] == [(1, 1), (2, 3), (5, 2)]
    assert r.tail is not None and r.tail.end == w.size
    # Nothing written after the last batch: the end, not damage.
    assert r.tail.damage is None and r.tail.zero_bytes == 4096 - w.size


def test_preallocation_extends_in_steps_and_a_large_batch_gets_room(storage) -> None:
    w = JournalWriter(
        storage, next_seq=1, tail_segment=None, tail_size=0,
        segment_bytes=1 << 20, prealloc_bytes=1000,
    )  # fmt: skip
    _write(w, [1])
    assert w.alloc_end == 1000
    _write(w, [20])  # 1984 bytes: past one step
    assert w.alloc_end == w.size == 160 + 1984
    _write(w, [1])
    assert w.alloc_end == w.size - 160 + 1000
    assert storage.size(segment_name(1)) == w.alloc_end


@pytest.mark.parametrize("prealloc", [0, 300, 4096])
def test_rolled_segments_end_at_their_last_batch(storage, prealloc) -> None:
    w = JournalWriter(
        storage, next_seq=1, tail_segment=None, tail_size=0,
        segment_bytes=1000, prealloc_bytes=prealloc,
    )  # fmt: skip
    sizes = [1, 2, 3, 1, 8, 2, 1, 1, 4]
    _write(w, sizes)
    segs = list_segments(storage)
    assert len(segs) >= 3
    r = JournalReader(storage)
    assert [b.count for b, _ in r.batches(0)] == sizes
    # No segment but the last holds zeros: a tail before another segment is corruption.
    want = _plain_journal(sizes, 1000)
    got = _recovered_segments(storage)
    assert sorted(got) == sorted(want)
    for _, name in segs[:-1]:
        assert got[name] == want[name]
    last = segs[-1][1]
    assert got[last][: len(want[last])] == want[last]
    assert got[last][len(want[last]) :] == bytes(len(got[last]) - len(want[last]))


def test_recovery_drops_the_zeros_and_the_writer_continues_byte_identical(storage) -> None:
    w = JournalWriter(storage, next_seq=1, tail_segment=None, tail_size=0, prealloc_bytes=2048)
    _write(w, [2, 1])
    core, report = recover(storage, core_cls=FakeCore)
    assert core.last_seq == 3 and report.tail_damage is None and not report.tail_repaired
    assert report.tail_zero_bytes == 2048 - w.size
    name = segment_name(1)
    assert storage.size(name) == report.tail_size == w.size
    w2 = JournalWriter(
        storage, next_seq=4, tail_segment=report.tail_segment, tail_size=report.tail_size,
        prealloc_bytes=2048,
    )  # fmt: skip
    assert w2.alloc_end == w2.size
    _write(w2, [3, 1])
    assert storage.size(name) == w2.alloc_end
    r = JournalReader(storage)
    assert [(b.first_seq, b.count) for b, _ in r.batches(0)] == [(1, 2), (3, 1), (4, 3), (7, 1)]
    got = storage.read(name, 0, w2.size)
    assert got == _plain_journal([2, 1, 3, 1], 1 << 26)[name]


def test_torn_record_followed_by_zeros_is_a_torn_tail(storage) -> None:
    w = JournalWriter(storage, next_seq=1, tail_segment=None, tail_size=0, prealloc_bytes=8192)
    _write(w, [2, 3])
    end = w.size
    name = segment_name(1)
    nxt = encode_batch(6, sequenced(6, 4))
    for keep in (1, 31, 32, 100, 300, len(nxt) - 40, len(nxt) - 33, len(nxt) - 1):
        # A torn write over the zeros: a prefix of the batch, zeros after it.
        storage.write_at(name, end, nxt[:keep])
        storage.sync(name)
        r = JournalReader(storage)
        got = [b.first_seq for b, _ in r.batches(0)]
        assert r.tail is not None and r.tail.damage is not None
        # Header and payload complete (the lost bytes may have been zeros anyway,
        # e.g. the high bytes of a record's last field): kept, trailer rewritten.
        if keep >= 32 and not any(nxt[keep : len(nxt) - 32]):
            assert got == [1, 3, 6] and r.tail.damage.kind == "trailer"
        else:
            assert got == [1, 3] and r.tail.damage.kind == "torn" and r.tail.end == end
        storage.write_at(name, end, bytes(len(nxt)))
        storage.sync(name)
    # Header and payload complete, trailer zeros: kept, the trailer rewritten.
    storage.write_at(name, end, nxt[:-32])
    storage.sync(name)
    core, report = recover(storage, core_cls=FakeCore)
    assert core.last_seq == 9 and report.tail_damage is not None
    assert report.tail_damage.kind == "trailer"
    assert storage.read(name, 0, storage.size(name)) == _plain_journal([2, 3, 4], 1 << 26)[name]


def test_torn_record_followed_by_zeros_recovers_the_complete_batches(storage) -> None:
    w = JournalWriter(storage, next_seq=1, tail_segment=None, tail_size=0, prealloc_bytes=8192)
    _write(w, [2, 3])
    name = segment_name(1)
    nxt = encode_batch(6, sequenced(6, 4))
    storage.write_at(name, w.size, nxt[:200])
    storage.sync(name)
    core, report = recover(storage, core_cls=FakeCore)
    assert core.last_seq == 5
    assert report.tail_damage is not None and report.tail_damage.kind == "torn"
    assert storage.size(name) == w.size
    assert storage.read(name, 0, w.size) == _plain_journal([2, 3], 1 << 26)[name]


class _FailBatchAfterExtension:
    """A storage that extends (the zeros land and are synced) and then dies on the
    batch's own write: a crash right after the preallocation grew."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.armed = False

    def __getattr__(self, attr: str) -> object:
        return getattr(self.inner, attr)

    def write_at(self, name: str, offset: int, data: bytes) -> None:
        if self.armed and any(data):
            raise StorageError(5, "crash before the batch write")
        self.inner.write_at(name, offset, data)


def test_crash_after_extending_the_preallocation(storage) -> None:
    fail = _FailBatchAfterExtension(storage)
    w = JournalWriter(
        fail, next_seq=1, tail_segment=None, tail_size=0,  # type: ignore[arg-type]
        prealloc_bytes=500,
    )  # fmt: skip
    _write(w, [1, 1])  # 320 bytes inside the first 500
    name = segment_name(1)
    fail.armed = True
    with pytest.raises(Exception, match="crash before the batch write"):
        w.write_batch(sequenced(3, 2), sync=True)
    assert storage.size(name) == 1000  # the extension happened and was synced
    core, report = recover(storage, core_cls=FakeCore)
    assert core.last_seq == 2 and report.tail_size == 320
    assert storage.size(name) == 320
    assert storage.read(name, 0, 320) == _plain_journal([1, 1], 1 << 26)[name]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=12),
    segment_bytes=st.sampled_from([600, 1500, 1 << 20]),
    prealloc=st.sampled_from([0, 200, 1000, 5000]),
    tear=st.integers(0, 1100),
    power_seed=st.integers(0, 2**16),
)
def test_power_loss_at_any_point_recovers_a_prefix_byte_identical(
    sizes, segment_bytes, prealloc, tear, power_seed
) -> None:
    """SimDisk power losses at a random mutating call: what recovery keeps is a
    prefix of the batches, every acknowledged one among them, and its journal bytes
    equal those of a writer without preallocation."""
    disk = SimDisk(random.Random(power_seed))
    w = JournalWriter(
        disk, next_seq=1, tail_segment=None, tail_size=0,
        segment_bytes=segment_bytes, prealloc_bytes=prealloc,
    )  # fmt: skip
    disk.arm(1 + tear % 40, power_loss=True, after=bool(tear & 1))
    acked: list[int] = []
    try:
        for n in sizes:
            w.write_batch(sequenced(w.next_seq, n), sync=True)
            acked.append(n)
    except BaseException:  # SimCrash or the JournalWriteError it leaves behind
        pass
    if disk.armed:  # finished before the crash struck
        disk.disarm()
    disk.power_loss()
    disk.restart()
    core, _report = recover(disk, core_cls=FakeCore)
    n_acked = sum(acked)
    assert core.last_seq >= n_acked
    # Only whole batches come back: the recovered seq ends a prefix of the batches.
    prefix = list(np.cumsum([0, *sizes]))
    assert core.last_seq in prefix
    kept = sizes[: prefix.index(core.last_seq)]
    want = _plain_journal(kept, segment_bytes) if kept else {}
    got = _recovered_segments(disk)
    for name, data in want.items():
        assert got[name][: len(data)] == data
        assert got[name] == data  # recovery cut the zeros of the tail segment


def test_file_storage_segment_holds_real_zeros(tmp_path) -> None:
    fs = FileStorage(str(tmp_path))
    w = JournalWriter(fs, next_seq=1, tail_segment=None, tail_size=0, prealloc_bytes=65536)
    _write(w, [1])
    st_ = (tmp_path / segment_name(1)).stat()
    # Written zeros, not a hole: the blocks are allocated, so a batch's sync does not
    # allocate (ext4 would convert unwritten extents: a metadata commit per sync).
    assert st_.st_size == 65536 and st_.st_blocks * 512 >= 65536
    fs.close()
