"""Sequencer: seq/ts stamping, durability modes, snapshots, archive, failures, variants."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bursa_wire.layout import CMD_DTYPE
from engine.clock import ManualClock
from engine.core import Core
from engine.journal import ARCHIVE_PREFIX, JournalCorrupt, JournalWriteError, list_segments
from engine.recovery import VARIANT_SKIP_CRC
from engine.sequencer import OVERLAP_MIN_CMDS, VARIANT_ACK_BEFORE_SYNC, Sequencer
from engine.snapshot import VARIANT_RENAME_NOSYNC, list_snapshots
from engine.storage import FileStorage, StorageError
from sim.disk import FaultRates, SimCrash, SimDisk
from tests.engine import coreflow
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.util import flip_bit


def open_seq(storage, clock=None, **kw) -> Sequencer:
    return Sequencer.open(storage, clock or ManualClock(), core_cls=FakeCore, **kw)


def expected_hash(records: list[bytes]) -> bytes:
    """State hash of a FakeCore fed the given sequenced 96-byte records."""
    core = FakeCore()
    if records:
        core.apply(np.frombuffer(b"".join(records), dtype=CMD_DTYPE))
    return core.state_hash()


# ------------------------------------------------------------------ basics


def test_submit_stamps_seq_and_ts_and_returns_replies(storage) -> None:
    clock = ManualClock(1_000)
    s = open_seq(storage, clock)
    cmds = make_cmds(3)
    events, replies = s.submit(cmds)
    assert list(cmds["seq"]) == [1, 2, 3] and (cmds["ts_ns"] == 1_000).all()
    assert list(replies["seq"]) == [1, 2, 3] and list(replies["client_ref"]) == [1, 2, 3]
    assert list(events["seq"]) == [1, 2, 3]
    clock.advance(5)
    ro = make_cmds(2)
    ro.flags.writeable = False
    _, replies = s.submit(ro)  # read-only input is copied, not rejected
    assert list(replies["seq"]) == [4, 5] and s.last_seq == 5 == s.core.last_seq
    assert s.stats.batches == 2 and s.stats.commands == 5 and s.stats.syncs == 2


def test_ts_never_goes_backwards(storage) -> None:
    clock = ManualClock(10_000)
    s = open_seq(storage, clock)
    s.submit(make_cmds(1))

    class Backwards(ManualClock):
        def now_ns(self) -> int:
            return 5

    s.clock = Backwards()
    cmds = make_cmds(1)
    s.submit(cmds)
    assert cmds["ts_ns"][0] == 10_000
    s2 = open_seq(storage, Backwards())  # the last ts comes back from the journal
    cmds = make_cmds(1)
    s2.submit(cmds)
    assert cmds["ts_ns"][0] == 10_000


def test_bad_batches_are_refused_without_sequencing(storage) -> None:
    s = open_seq(storage)
    with pytest.raises(ValueError, match="CMD_DTYPE"):
        s.submit(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="MAX_BATCH_CMDS"):
        s.submit(np.zeros(70_000, dtype=CMD_DTYPE))
    events, replies = s.submit(np.zeros(0, dtype=CMD_DTYPE))
    assert len(events) == len(replies) == 0
    assert s.last_seq == 0 and list_segments(storage) == []


def test_bad_mode_is_refused(storage) -> None:
    with pytest.raises(ValueError, match="durability mode"):
        open_seq(storage, mode="lazy")


def test_reopen_is_idempotent_on_real_files(tmp_path) -> None:
    fs = FileStorage(str(tmp_path))
    s = open_seq(fs, snapshot_every_cmds=7, segment_bytes=800)
    for i in range(10):
        s.submit(make_cmds(3, start_ref=100 * i))
    s.close()
    h = s.core.state_hash()
    fs.close()
    contents = None
    for _ in range(3):
        fs = FileStorage(str(tmp_path))
        s2 = open_seq(fs, snapshot_every_cmds=7, segment_bytes=800)
        assert s2.core.state_hash() == h and s2.last_seq == 30
        assert s2.report.tail_damage is None and not s2.report.snapshots_rejected
        now = {n: (tmp_path / n).read_bytes() for n in sorted(fs.list())}
        assert contents is None or now == contents
        contents = now
        s2.close()
        fs.close()


# ------------------------------------------------------------------ durability modes


def test_fsync_mode_keeps_every_acked_batch_through_power_losses() -> None:
    rng = random.Random(7)
    disk = SimDisk(random.Random(7))
    s = open_seq(disk, segment_bytes=1500, snapshot_every_cmds=25)
    acked: list[bytes] = []
    for i in range(120):
        cmds = make_cmds(rng.randint(1, 6), start_ref=1000 * i)
        s.submit(cmds)
        acked += [r.tobytes() for r in cmds]
        if rng.random() < 0.2:
            disk.power_loss()
            disk.restart()
            s = open_seq(disk, segment_bytes=1500, snapshot_every_cmds=25)
            assert s.last_seq == len(acked)
            assert s.core.state_hash() == expected_hash(acked)
    assert disk.power_losses > 5


def test_overlapped_sync_gives_the_same_journal_and_keeps_acked_batches(storage) -> None:
    kw = {"segment_bytes": 60_000, "snapshot_every_cmds": 1_000}
    plain = open_seq(SimDisk(random.Random(0)), **kw)
    s = open_seq(storage, overlap_sync=True, **kw)
    for i in range(12):
        n = OVERLAP_MIN_CMDS + 37 * i if i % 3 else 5  # overlapped and not
        a, b = make_cmds(n, start_ref=1000 * i), make_cmds(n, start_ref=1000 * i)
        _, ra = s.submit(a)
        _, rb = plain.submit(b)
        assert ra.tobytes() == rb.tobytes()
    assert s.core.state_hash() == plain.core.state_hash()
    assert s.stats.syncs == plain.stats.syncs == 12
    names = [n for n in storage.list() if n.startswith("journal-")]
    assert len(names) > 1  # rolled while overlapping
    for name in names:
        assert storage.read(name, 0, 10**8) == plain.storage.read(name, 0, 10**8)
    s.close()
    again = open_seq(storage)
    assert again.core.state_hash() == plain.core.state_hash()


def test_overlapped_sync_failure_is_raised_from_submit() -> None:
    disk = SimDisk(random.Random(0))
    s = open_seq(disk, overlap_sync=True)
    s.submit(make_cmds(OVERLAP_MIN_CMDS))
    disk.rates = FaultRates(eio_sync=1.0)
    with pytest.raises(JournalWriteError, match="fdatasync"):
        s.submit(make_cmds(OVERLAP_MIN_CMDS, start_ref=5000))
    assert s.failed
    disk2 = SimDisk(random.Random(1))
    s2 = open_seq(disk2, overlap_sync=True)
    disk2.arm(2, power_loss=True, after=False)  # the sync on the helper thread
    with pytest.raises(SimCrash):
        s2.submit(make_cmds(OVERLAP_MIN_CMDS))
    s.close()


def test_async_mode_survives_a_crash_and_keeps_a_prefix_on_power_loss() -> None:
    disk = SimDisk(random.Random(3))
    s = open_seq(disk, mode="async")
    sent: list[bytes] = []
    for i in range(10):
        cmds = make_cmds(2, start_ref=10 * i)
        s.submit(cmds)
        sent += [r.tobytes() for r in cmds]
    assert s.stats.syncs == 0
    disk.crash()  # kill -9: the page cache survives
    disk.restart()
    s = open_seq(disk, mode="async")
    assert s.last_seq == 20 and s.core.state_hash() == expected_hash(sent)
    # Recovery synced what it replayed; new batches are unsynced again.
    for i in range(10, 20):
        cmds = make_cmds(2, start_ref=10 * i)
        s.submit(cmds)
        sent += [r.tobytes() for r in cmds]
    disk.power_loss()
    disk.restart()
    s = open_seq(disk, mode="async")
    assert 20 <= s.last_seq <= 40 and s.last_seq % 2 == 0
    assert s.core.state_hash() == expected_hash(sent[: s.last_seq])


def test_none_mode_writes_nothing(storage) -> None:
    s = open_seq(storage, mode="none", snapshot_every_cmds=1)
    s.submit(make_cmds(5))
    assert s.last_seq == 5 and s.snapshot() is None
    assert storage.list() == []


def test_close_syncs_async_batches() -> None:
    disk = SimDisk(random.Random(0))
    s = open_seq(disk, mode="async")
    s.submit(make_cmds(4))
    s.close()
    disk.power_loss()
    disk.restart()
    assert open_seq(disk).last_seq == 4


# ------------------------------------------------------------------ snapshots and archive


def test_snapshot_by_count_keeps_two_and_archives_the_journal(storage) -> None:
    s = open_seq(storage, snapshot_every_cmds=10, segment_bytes=700)
    for i in range(20):
        s.submit(make_cmds(3, start_ref=10 * i))
    snaps = [seq for seq, _ in list_snapshots(storage)]
    assert len(snaps) == 2 and snaps == [48, 60] and s.stats.snapshots == 5
    segs = list_segments(storage)
    assert segs[0][0] <= snaps[0] + 1  # the journal reaches back to the older snapshot
    archived = [n for n in storage.list() if n.startswith(ARCHIVE_PREFIX)]
    assert archived and all(n.endswith(".seg") for n in archived)
    s2 = open_seq(storage)
    assert s2.core.state_hash() == s.core.state_hash()
    assert s2.report.snapshot_seq == 60


def test_snapshot_by_time_and_on_request(storage) -> None:
    clock = ManualClock()
    s = open_seq(storage, clock, snapshot_every_ns=1_000)
    s.submit(make_cmds(2))
    assert list_snapshots(storage) == []
    clock.advance(1_000)
    s.submit(make_cmds(2))
    assert [q for q, _ in list_snapshots(storage)] == [4]
    assert s.snapshot() is None  # nothing new since
    s.submit(make_cmds(1))
    assert s.snapshot() == "snapshot-00000000000000000005.snap"
    assert [q for q, _ in list_snapshots(storage)] == [4, 5]


def test_failed_automatic_snapshot_does_not_stop_the_core() -> None:
    disk = SimDisk(random.Random(0))
    s = open_seq(disk, snapshot_every_cmds=2)
    disk.fault_filter = lambda name: name.startswith("snapshot-")
    disk.rates = FaultRates(eio_write=1.0)
    _, replies = s.submit(make_cmds(3))
    assert len(replies) == 3 and s.stats.snapshot_failures == 1
    assert list_snapshots(disk) == [] and not s.failed
    disk.rates = FaultRates()
    s.submit(make_cmds(3))
    assert [q for q, _ in list_snapshots(disk)] == [6]


# ------------------------------------------------------------------ journal failures


def test_write_error_fails_the_batch_and_recovery_resumes() -> None:
    disk = SimDisk(random.Random(11))
    s = open_seq(disk)
    acked = make_cmds(4)
    s.submit(acked)
    disk.rates = FaultRates(misdirected_write=1.0)
    disk.fault_filter = lambda name: name.startswith("journal-")
    with pytest.raises(JournalWriteError):
        s.submit(make_cmds(4, start_ref=50))
    assert s.failed
    with pytest.raises(JournalWriteError):
        s.submit(make_cmds(1))
    disk.rates = FaultRates()
    disk.crash()
    disk.restart()
    # The misdirected bytes landed on the durable first batch: that is damage inside
    # the durable prefix, and recovery must refuse rather than guess.
    fault = disk.faults[-1]
    assert fault.kind == "misdirected_write" and fault.durable
    with pytest.raises(JournalCorrupt):
        open_seq(disk)


def test_sync_error_then_restart_keeps_acked_and_may_keep_the_failed_batch() -> None:
    disk = SimDisk(random.Random(2))
    s = open_seq(disk)
    s.submit(make_cmds(2))
    disk.rates = FaultRates(eio_sync=1.0)
    with pytest.raises(JournalWriteError, match="fdatasync"):
        s.submit(make_cmds(2, start_ref=9))
    disk.rates = FaultRates()
    disk.crash()
    disk.restart()
    s = open_seq(disk)
    # The failed batch is in the page cache: recovery applies it whole and syncs it.
    assert s.last_seq == 4
    disk.power_loss()
    disk.restart()
    assert open_seq(disk).last_seq == 4


# ------------------------------------------------------------------ broken variants


@pytest.mark.variants
def test_variant_ack_before_sync_loses_an_acked_batch() -> None:
    for variants, survives in ((frozenset(), True), (frozenset({VARIANT_ACK_BEFORE_SYNC}), False)):
        disk = SimDisk(random.Random(0))
        s = open_seq(disk, variants=variants)
        s.submit(make_cmds(2))
        s.submit(make_cmds(2, start_ref=5))  # acked
        disk.power_loss()
        disk.restart()
        assert (open_seq(disk).last_seq == 4) is survives


@pytest.mark.variants
def test_variant_skip_crc_accepts_corrupt_records(storage) -> None:
    s = open_seq(storage)
    for i in range(3):
        s.submit(make_cmds(3, start_ref=10 * i))
    live = s.core.state_hash()
    flip_bit(storage, list_segments(storage)[0][1], 32 + 96 + 41)
    with pytest.raises(JournalCorrupt):
        open_seq(storage)
    broken = open_seq(storage, variants=frozenset({VARIANT_SKIP_CRC}))
    assert broken.last_seq == 9 and broken.core.state_hash() != live


@pytest.mark.variants
def test_variant_snapshot_rename_nosync_breaks_recovery_after_power_loss() -> None:
    broken = {frozenset(): 0, frozenset({VARIANT_RENAME_NOSYNC}): 0}
    for variants in broken:
        for seed in range(10):  # a power loss keeps a random prefix of unsynced writes
            disk = SimDisk(random.Random(seed))
            s = open_seq(
                disk, snapshot_every_cmds=4, segment_bytes=600, archive="delete", variants=variants
            )
            for i in range(8):
                s.submit(make_cmds(2, start_ref=10 * i))
            disk.power_loss()
            disk.restart()
            try:
                ok = open_seq(disk).core.state_hash() == s.core.state_hash()
            except JournalCorrupt:
                ok = False
            broken[variants] += not ok
    assert broken[frozenset()] == 0
    assert broken[frozenset({VARIANT_RENAME_NOSYNC})] >= 3


# ------------------------------------------------------------------ randomized faults


def run_faulty(
    seed: int, variants: frozenset[str] = frozenset(), steps: int = 80, *, real: bool = False
) -> str:
    """One small seeded run with storage faults; returns "ok" or "stopped" (expected).

    Asserts after every recovery: every acknowledged command is there, and the
    state equals a fresh core fed exactly the records of seq 1..last_seq (the
    FakeCore folds every record; ``real`` runs engine.core.Core on a real flow).
    """
    rng = random.Random(seed)
    clock = ManualClock()
    rates = FaultRates(
        short_write=0.03, enospc=0.01, eio_write=0.02, misdirected_write=0.01, eio_sync=0.03
    )
    disk = SimDisk(random.Random(seed), clock, rates)
    core_cls = Core if real else FakeCore
    kw = {"snapshot_every_cmds": 20, "segment_bytes": 2000, "variants": variants}
    history: list[bytes] = []  # record of seq i+1 as last written (acked or not)
    acked_last = 0
    flow = coreflow.Flow(seed)
    pending_setup = real

    def expected(records: list[bytes]) -> bytes:
        core = core_cls()
        if records:
            core.apply(np.frombuffer(b"".join(records), dtype=CMD_DTYPE))
        return core.state_hash()

    def reopen(tries: int = 20) -> Sequencer | None:
        disk.disarm()
        disk.restart()
        try:
            s = Sequencer.open(disk, clock, core_cls=core_cls, **kw)
        except JournalCorrupt:
            assert any(f.durable for f in disk.faults), "stopped without durable damage"
            return None
        except (SimCrash, StorageError):  # the disk failed during recovery: start again
            assert tries > 0
            return reopen(tries - 1)
        del history[s.last_seq :]
        assert s.last_seq >= acked_last, (seed, s.last_seq, acked_last)
        assert s.last_seq == len(history)
        assert s.core.state_hash() == expected(history), seed
        return s

    s = reopen()
    for step in range(steps):
        assert s is not None
        r = rng.random()
        if r < 0.05:
            disk.power_loss()
        elif r < 0.10:
            disk.crash()
        elif r < 0.11:
            disk.flip_bits()
            continue
        elif r < 0.18:
            disk.arm(rng.randint(1, 4), power_loss=rng.random() < 0.5, after=rng.random() < 0.5)
            continue
        else:
            n = rng.randint(1, 8)
            if pending_setup:
                cmds = coreflow.setup()
            else:
                cmds = flow.batch(n) if real else make_cmds(n, start_ref=1000 * step)
            first = s.last_seq + 1
            try:
                s.submit(cmds)
            except (JournalWriteError, SimCrash):
                if cmds["seq"][0] == first:  # sequenced: it may survive in the page cache
                    history[first - 1 :] = [r.tobytes() for r in cmds]
                if not disk.dead:
                    disk.crash()
            else:
                history[first - 1 :] = [r.tobytes() for r in cmds]
                acked_last = s.last_seq
                pending_setup = False
                continue
        s = reopen()
        if s is None:
            return "stopped"
    return "ok"


def test_random_faults_never_lose_acked_commands() -> None:
    results = [run_faulty(seed) for seed in range(40)]
    assert results.count("ok") >= 15  # many seeds see no durable damage


def test_random_faults_with_the_real_core() -> None:
    results = [run_faulty(seed, real=True) for seed in range(15)]
    assert results.count("ok") >= 5


@pytest.mark.variants
@pytest.mark.parametrize(
    "variant", [VARIANT_ACK_BEFORE_SYNC, VARIANT_SKIP_CRC, VARIANT_RENAME_NOSYNC]
)
def test_random_faults_catch_each_broken_variant(variant) -> None:
    caught_at = None
    for seed in range(40):  # each variant is caught within a few seeds
        try:
            run_faulty(seed, frozenset({variant}), steps=120)
        except AssertionError:
            caught_at = seed
            break
    assert caught_at is not None, f"{variant} not caught in 40 seeds"
