"""Snapshots: layout, validation, atomic write protocol, fallback, pruning."""

from __future__ import annotations

import contextlib
import random
import struct

import crc32c
import pytest

from engine.snapshot import (
    HEADER_SIZE,
    VARIANT_RENAME_NOSYNC,
    SnapshotInvalid,
    SnapshotWriteError,
    decode_snapshot,
    encode_snapshot,
    list_snapshots,
    load_newest,
    load_snapshot,
    prune_snapshots,
    snapshot_name,
    write_snapshot,
)
from sim.disk import FaultRates, SimCrash, SimDisk
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.util import cut, flip_bit, put


def core_at(seq: int) -> FakeCore:
    core = FakeCore()
    cmds = make_cmds(seq)
    cmds["seq"] = range(1, seq + 1)
    core.apply(cmds)
    return core


def test_layout_and_round_trip(storage) -> None:
    core = core_at(7)
    data = encode_snapshot(core)
    magic, version, hash_len, seq, plen, h = struct.unpack_from("<4sHHQQ32s", data, 0)
    assert (magic, version, hash_len, seq, plen) == (b"BRSS", 1, 16, 7, len(core.to_snapshot()))
    assert h[:16] == core.state_hash() and h[16:] == bytes(16)
    assert struct.unpack_from("<I", data, 56)[0] == crc32c.crc32c(core.to_snapshot())
    assert struct.unpack_from("<I", data, 60)[0] == crc32c.crc32c(data[:60])
    assert data[HEADER_SIZE:] == core.to_snapshot()
    assert decode_snapshot(data) == (7, core.state_hash(), core.to_snapshot())
    name = write_snapshot(storage, core)
    assert name == snapshot_name(7) == "snapshot-00000000000000000007.snap"
    assert storage.list() == [name]
    loaded = load_snapshot(storage, name, FakeCore)
    assert loaded.state_hash() == core.state_hash() and loaded.last_seq == 7


def test_every_truncation_is_rejected(storage) -> None:
    data = encode_snapshot(core_at(3))
    name = snapshot_name(3)
    for size in range(len(data)):
        put(storage, name, data[:size])
        with pytest.raises(SnapshotInvalid):
            load_snapshot(storage, name, FakeCore)


def test_every_bit_flip_is_rejected(storage) -> None:
    data = encode_snapshot(core_at(3))
    name = snapshot_name(3)
    put(storage, name, data)
    for pos in range(len(data)):  # hash padding bytes included: the header CRC covers them
        damaged = bytearray(data)
        damaged[pos] ^= 0x04
        put(storage, name, bytes(damaged))
        with pytest.raises(SnapshotInvalid):
            load_snapshot(storage, name, FakeCore)


def test_valid_crcs_but_wrong_state_hash_is_rejected(storage) -> None:
    core = core_at(4)
    good = encode_snapshot(core)
    other = core_at(4)
    other.qty_sum += 1  # a core whose payload does not match the hash we claim

    class Liar(FakeCore):
        def state_hash(self) -> bytes:
            return core.state_hash()

    liar = Liar.from_snapshot(other.to_snapshot())
    bad = encode_snapshot(liar)
    assert bad != good
    put(storage, snapshot_name(4), bad)
    with pytest.raises(SnapshotInvalid, match="state hash"):
        load_snapshot(storage, snapshot_name(4), FakeCore)


def test_name_and_header_must_agree(storage) -> None:
    put(storage, snapshot_name(9), encode_snapshot(core_at(4)))
    with pytest.raises(SnapshotInvalid, match="file name"):
        load_snapshot(storage, snapshot_name(9), FakeCore)


def test_core_that_rejects_the_payload_is_invalid(storage) -> None:
    class Picky(FakeCore):
        @classmethod
        def from_snapshot(cls, data, variants=frozenset()):
            raise ValueError("unknown format")

    write_snapshot(storage, core_at(2))
    with pytest.raises(SnapshotInvalid, match="rejected the payload"):
        load_snapshot(storage, snapshot_name(2), Picky)


def test_fallback_to_the_previous_snapshot(storage) -> None:
    write_snapshot(storage, core_at(3))
    write_snapshot(storage, core_at(6))
    write_snapshot(storage, core_at(9))
    name9 = snapshot_name(9)
    cut(storage, name9, HEADER_SIZE + 10)  # half written
    flip_bit(storage, snapshot_name(6), HEADER_SIZE + 3)  # and a bit flip in the next one
    core, name, rejected = load_newest(storage, FakeCore)
    assert name == snapshot_name(3) and core is not None and core.last_seq == 3
    assert [n for n, _ in rejected] == [name9, snapshot_name(6)]
    assert "size" in rejected[0][1] and "CRC" in rejected[1][1]


def test_no_valid_snapshot(storage) -> None:
    assert load_newest(storage, FakeCore) == (None, None, [])
    put(storage, snapshot_name(5), b"garbage")
    core, name, rejected = load_newest(storage, FakeCore)
    assert core is None and name is None and len(rejected) == 1


def test_write_failure_leaves_older_snapshots_and_no_temp() -> None:
    disk = SimDisk(random.Random(0))
    write_snapshot(disk, core_at(2))
    disk.rates = FaultRates(eio_write=1.0)
    with pytest.raises(SnapshotWriteError):
        write_snapshot(disk, core_at(5))
    assert disk.list() == [snapshot_name(2)]
    disk.rates = FaultRates(eio_sync=1.0)
    with pytest.raises(SnapshotWriteError):
        write_snapshot(disk, core_at(5))
    assert disk.list() == [snapshot_name(2)]


def test_misdirected_snapshot_write_is_caught_by_read_back() -> None:
    disk = SimDisk(random.Random(5))
    write_snapshot(disk, core_at(2))
    disk.rates = FaultRates(misdirected_write=1.0)
    with pytest.raises(SnapshotWriteError, match="read-back"):
        write_snapshot(disk, core_at(5))
    assert snapshot_name(5) not in disk.list()


def test_leftover_temp_is_replaced(storage) -> None:
    put(storage, snapshot_name(3) + ".tmp", b"old junk from a crash")
    write_snapshot(storage, core_at(3))
    assert storage.list() == [snapshot_name(3)]
    assert load_snapshot(storage, snapshot_name(3), FakeCore).last_seq == 3


def test_snapshot_survives_power_loss_right_after_write() -> None:
    disk = SimDisk(random.Random(1))
    write_snapshot(disk, core_at(4))
    disk.power_loss()
    disk.restart()
    assert load_snapshot(disk, snapshot_name(4), FakeCore).last_seq == 4


@pytest.mark.variants
def test_rename_nosync_variant_loses_the_snapshot_on_power_loss() -> None:
    lost = 0
    for seed in range(10):  # a power loss keeps a random prefix of the unsynced writes
        disk = SimDisk(random.Random(seed))
        write_snapshot(disk, core_at(4), frozenset({VARIANT_RENAME_NOSYNC}))
        disk.sync_dir()  # even once the name is durable, the content never was
        disk.power_loss()
        disk.restart()
        try:
            load_snapshot(disk, snapshot_name(4), FakeCore)
        except SnapshotInvalid:
            lost += 1
    assert lost >= 3


@pytest.mark.parametrize("power_loss", [False, True])
def test_crash_at_every_step_of_a_write_leaves_old_or_new(power_loss) -> None:
    for step in range(1, 8):
        for after in (False, True):
            disk = SimDisk(random.Random(step))
            write_snapshot(disk, core_at(2))
            disk.arm(step, power_loss=power_loss, after=after)
            with contextlib.suppress(SimCrash):
                write_snapshot(disk, core_at(5))
            disk.restart()
            core, name, _ = load_newest(disk, FakeCore)
            assert core is not None and name in (snapshot_name(2), snapshot_name(5))
            if power_loss and name == snapshot_name(5):
                # Only possible once the rename was made durable by the directory sync.
                assert step >= 5 or (step == 4 and after)


def test_prune_keeps_only_the_named_snapshots(storage) -> None:
    for s in (1, 2, 3, 4):
        write_snapshot(storage, core_at(s))
    put(storage, snapshot_name(7) + ".tmp", b"x")
    put(storage, "journal-00000000000000000001.seg", b"")
    removed = prune_snapshots(storage, {snapshot_name(3), snapshot_name(4)})
    assert removed == [snapshot_name(1), snapshot_name(2), snapshot_name(7) + ".tmp"]
    assert [s for s, _ in list_snapshots(storage)] == [3, 4]
    assert "journal-00000000000000000001.seg" in storage.list()
