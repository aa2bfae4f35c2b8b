"""SimDisk semantics: durability, crashes, power loss, torn writes and injected faults."""

from __future__ import annotations

import errno
import random
from typing import Any

import pytest

from engine.clock import ManualClock
from engine.storage import StorageError
from sim.disk import SECTOR_BYTES, FaultRates, SimCrash, SimDisk, SimNotFoundError


def _disk(seed: int = 0, **rates: Any) -> SimDisk:
    return SimDisk(random.Random(seed), ManualClock(), FaultRates(**rates))


def test_reads_see_unsynced_writes() -> None:
    d = _disk()
    d.append("a", b"hello")
    d.write_at("a", 1, b"EL")
    d.append("a", b"!")
    assert d.read("a", 0, 100) == b"hELlo!"
    assert d.size("a") == 6
    assert d.list() == ["a"]
    assert d.durable_size("a") == 0


def test_write_past_end_zero_fills() -> None:
    d = _disk()
    d.write_at("a", 4, b"x")
    assert d.read("a", 0, 10) == b"\0\0\0\0x"


def test_missing_file_raises_not_found() -> None:
    d = _disk()
    with pytest.raises(SimNotFoundError):
        d.read("nope", 0, 1)
    with pytest.raises(FileNotFoundError):
        d.size("nope")
    with pytest.raises(StorageError):
        d.rename("nope", "x")


def test_crash_keeps_page_cache() -> None:
    d = _disk()
    d.append("a", b"unsynced")
    d.crash()
    with pytest.raises(SimCrash):
        d.read("a", 0, 1)
    d.restart()
    assert d.read("a", 0, 100) == b"unsynced"
    assert d.list() == ["a"]


def test_power_loss_keeps_synced_data_and_synced_names() -> None:
    d = _disk()
    d.append("a", b"durable")
    d.sync("a")
    d.sync_dir()
    d.power_loss()
    d.restart()
    assert d.read("a", 0, 100) == b"durable"


def test_new_file_without_sync_dir_vanishes_on_power_loss() -> None:
    d = _disk()
    d.append("a", b"data")
    d.sync("a")  # data durable, name not
    d.power_loss()
    d.restart()
    assert d.list() == []


def test_rename_and_remove_are_undone_without_sync_dir() -> None:
    d = _disk()
    for name, data in (("snap", b"old"), ("tmp", b"new"), ("gone", b"x")):
        d.append(name, data)
        d.sync(name)
    d.sync_dir()
    d.rename("tmp", "snap")
    d.remove("gone")
    assert d.list() == ["snap"]
    assert d.read("snap", 0, 10) == b"new"
    d.power_loss()
    d.restart()
    assert d.list() == ["gone", "snap", "tmp"]
    assert d.read("snap", 0, 10) == b"old"
    assert d.read("tmp", 0, 10) == b"new"


def test_rename_is_durable_after_sync_dir() -> None:
    d = _disk()
    d.append("tmp", b"new")
    d.sync("tmp")
    d.rename("tmp", "snap")
    d.sync_dir()
    d.power_loss()
    d.restart()
    assert d.list() == ["snap"]
    assert d.read("snap", 0, 10) == b"new"


def test_truncate_is_durable_only_after_sync() -> None:
    d = _disk()
    d.append("a", b"0123456789")
    d.sync("a")
    d.sync_dir()
    d.truncate("a", 4)
    assert d.read("a", 0, 100) == b"0123"
    d.power_loss()
    d.restart()
    assert d.size("a") in (4, 10)  # the truncation is the one pending op: kept or not
    d.truncate("a", 4)
    d.sync("a")
    d.power_loss()
    d.restart()
    assert d.read("a", 0, 100) == b"0123"


def test_power_loss_keeps_synced_prefix_plus_torn_prefix_of_the_rest() -> None:
    synced = bytes(range(256)) * 3  # 768 bytes: the unsynced data starts mid-sector
    tail = bytes((i * 7) & 0xFF for i in range(5 * SECTOR_BYTES))
    outcomes = set()
    for seed in range(300):
        d = _disk(seed)
        d.append("j", synced)
        d.sync("j")
        d.sync_dir()
        d.append("j", tail[:1000])
        d.append("j", tail[1000:])
        d.power_loss()
        d.restart()
        got = d.read("j", 0, 10**6)
        assert got[: len(synced)] == synced
        rest = got[len(synced) :]
        kept = rest.rstrip(b"\0")
        # A prefix of the unsynced data, possibly zero-extended (size before data).
        assert tail.startswith(rest) or (tail.startswith(kept) and len(rest) <= len(tail))
        end = len(synced) + len(kept)
        complete = end in (len(synced), len(synced) + 1000, len(synced) + len(tail))
        assert complete or end % SECTOR_BYTES == 0 or tail[len(kept)] == 0, (seed, end)
        outcomes.add("none" if not rest else "all" if rest == tail else "torn")
        assert not d.damaged_files()  # torn tails are incomplete, not damaged
    assert outcomes == {"none", "all", "torn"}


def test_armed_crash_strikes_before_or_after_the_call() -> None:
    d = _disk()
    d.arm(2, power_loss=False, after=False)
    d.append("a", b"1")
    with pytest.raises(SimCrash) as e:
        d.append("a", b"2")
    assert not e.value.power_loss
    with pytest.raises(SimCrash):
        d.sync("a")  # a dead process stays dead
    d.restart()
    assert d.read("a", 0, 10) == b"1"

    d.arm(1, power_loss=False, after=True)
    with pytest.raises(SimCrash):
        d.append("a", b"3")
    d.restart()
    assert d.read("a", 0, 10) == b"13"


def test_armed_power_loss_drops_unsynced_data() -> None:
    d = _disk()
    d.append("a", b"x" * 10)
    d.sync("a")
    d.sync_dir()
    d.arm(1, power_loss=True, after=True)
    with pytest.raises(SimCrash) as e:
        d.append("a", b"y" * 10)
    assert e.value.power_loss
    d.restart()
    assert d.read("a", 0, 100)[:10] == b"x" * 10
    assert d.power_losses == 1


def test_sync_survives_until_armed_crash() -> None:
    d = _disk()
    d.append("a", b"x")
    d.arm(1, power_loss=True, after=True)
    with pytest.raises(SimCrash):
        d.sync("a")
    d.restart()
    assert d.list() == []  # the name was never made durable


def test_enospc_and_eio_on_write_raise_and_write_nothing() -> None:
    for kind, code in (("enospc", errno.ENOSPC), ("eio_write", errno.EIO)):
        d = _disk(0, **{kind: 1.0})
        with pytest.raises(StorageError) as e:
            d.append("a", b"data")
        assert e.value.errno == code
        assert d.size("a") == 0
        assert d.fault_counts[kind] == 1


def test_short_write_leaves_a_prefix_and_raises() -> None:
    d = _disk(3, short_write=1.0)
    with pytest.raises(StorageError):
        d.append("a", b"0123456789")
    got = d.read("a", 0, 100)
    assert len(got) < 10 and b"0123456789".startswith(got)
    assert d.fault_counts["short_write"] == 1


def test_eio_on_sync_leaves_data_unsynced() -> None:
    d = _disk(eio_sync=1.0)
    d.append("a", b"data")
    with pytest.raises(StorageError):
        d.sync("a")
    assert d.durable_size("a") == 0
    assert d.read("a", 0, 10) == b"data"


def test_slow_sync_moves_the_clock() -> None:
    clock = ManualClock()
    d = SimDisk(random.Random(1), clock, FaultRates(slow_sync=1.0))
    start = clock.now_ns()
    d.append("a", b"x")
    d.sync("a")
    assert clock.now_ns() > start
    assert d.fault_counts["slow_sync"] == 1


def test_bit_flip_damages_durable_bytes_only() -> None:
    d = _disk(5)
    d.append("a", b"\0" * 2000)
    d.sync("a")
    d.append("a", b"\0" * 100)  # unsynced: never a flip target
    fault = d.flip_bits()
    assert fault is not None and fault.durable and fault.kind == "bit_flip"
    assert fault.offset + fault.length <= 2000
    damage = d.damage("a")
    assert damage and all(0 <= s < e <= 2000 for s, e in damage)
    assert d.read("a", fault.offset, fault.length) != b"\0" * fault.length
    # An overwrite of the damaged bytes heals them.
    d.write_at("a", 0, b"\0" * 2000)
    assert d.damage("a") == []


def test_bit_flip_needs_a_durable_target() -> None:
    d = _disk()
    d.append("a", b"unsynced")
    assert d.flip_bits() is None


def test_misdirected_write_damages_a_victim_and_leaves_stale_bytes() -> None:
    d = _disk(2, misdirected_write=1.0)
    d.faults_enabled = False
    d.append("victim", b"V" * 1000)
    d.sync("victim")
    d.faults_enabled = True
    d.append("j", b"J" * 100)
    fault = d.faults[-1]
    assert fault.kind == "misdirected_write"
    assert d.read("j", 0, 100) == b"\0" * 100  # the intended place got nothing
    assert d.damage("j") == []  # a lost write, not damage: only a read-back sees it
    assert d.damage("victim") == [(fault.offset, fault.offset + fault.length)]
    assert d.read("victim", fault.offset, fault.length) == b"J" * fault.length


def test_fault_filter_limits_faults() -> None:
    d = SimDisk(random.Random(0), None, FaultRates(eio_write=1.0), lambda n: n.startswith("j"))
    d.append("other", b"fine")
    with pytest.raises(StorageError):
        d.append("journal", b"fails")


def test_clone_is_independent() -> None:
    d = _disk()
    d.append("a", b"abc")
    d.sync("a")
    d.sync_dir()
    c = d.clone()
    c.remove("a")
    assert d.list() == ["a"] and c.list() == []


def test_same_seed_same_outcome() -> None:
    def run(seed: int) -> tuple[bytes, list[object]]:
        d = _disk(seed, short_write=0.2, misdirected_write=0.2, eio_sync=0.2)
        d.append("j", b"")
        d.sync_dir()
        for i in range(40):
            try:
                d.append("j", bytes([i]) * 700)
                d.sync("j")
            except StorageError:
                pass
            if i % 7 == 0:
                d.flip_bits()
        d.power_loss()
        d.restart()
        return d.read("j", 0, 10**6), list(d.faults)

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_lost_sync_keeps_the_page_cache_but_never_reaches_the_disk() -> None:
    d = _disk(0, eio_sync=1.0, sync_lost=1.0)
    d.faults_enabled = False
    d.append("j", b"A" * 10)
    d.sync("j")
    d.sync_dir()
    d.faults_enabled = True
    d.append("j", b"B" * 10)
    with pytest.raises(StorageError):
        d.sync("j")
    assert d.fault_counts["sync_lost"] == 1
    assert d.read("j", 0, 100) == b"A" * 10 + b"B" * 10  # still readable (clean pages)
    d.faults_enabled = False
    d.append("j", b"C" * 10)
    d.sync("j")  # succeeds, but the B pages are clean: they are not written again
    d.power_loss()
    d.restart()
    assert d.read("j", 0, 100) == b"A" * 10 + b"\0" * 10 + b"C" * 10


def test_rewrite_segment_makes_lost_sync_pages_durable() -> None:
    """The fsyncgate fix (engine.journal.rewrite_segment): after a lost sync, copying the
    segment into a new file and renaming it over the old one gets the bytes the page
    cache shows onto the disk, where a plain sync writes nothing (test above)."""
    from engine.journal import rewrite_segment, segment_name

    name = segment_name(1)
    d = _disk(0, eio_sync=1.0, sync_lost=1.0)
    d.faults_enabled = False
    d.append(name, b"A" * 10)
    d.sync(name)
    d.sync_dir()
    d.faults_enabled = True
    d.append(name, b"B" * 10)
    with pytest.raises(StorageError):
        d.sync(name)
    d.faults_enabled = False
    d.sync(name)  # what recovery did before: nothing reaches the disk
    rewrite_segment(d, name, 20)
    assert d.list() == [name]
    d.append(name, b"C" * 10)
    d.sync(name)
    d.power_loss()
    d.restart()
    assert d.read(name, 0, 100) == b"A" * 10 + b"B" * 10 + b"C" * 10
