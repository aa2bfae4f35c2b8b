"""Recovery: snapshot + journal tail, torn tails, corruption, fallback, idempotence."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from bursa_wire.layout import CMD_SIZE
from engine.clock import ManualClock
from engine.core import Core
from engine.journal import (
    HEADER_SIZE,
    JournalCorrupt,
    list_segments,
    segment_name,
)
from engine.recovery import VARIANT_SKIP_CRC, recover
from engine.replay import main as replay_main
from engine.sequencer import Sequencer
from engine.snapshot import HEADER_SIZE as SNAP_HEADER_SIZE
from engine.snapshot import list_snapshots, snapshot_name, write_snapshot
from engine.storage import FileStorage
from sim.disk import SimDisk
from tests.engine import coreflow
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.util import cut, flip_bit


def live_run(storage, batches, *, snapshot_at=(), segment_bytes=10_000, **kw):
    """Submit ``batches`` (sizes) through a Sequencer; snapshot after the listed batch indexes."""
    seqr = Sequencer.open(
        storage, ManualClock(), core_cls=FakeCore, segment_bytes=segment_bytes, **kw
    )
    ref = 1_000 * (seqr.last_seq + 1)
    for i, n in enumerate(batches):
        seqr.submit(make_cmds(n, start_ref=ref))
        ref += n
        if i in snapshot_at:
            seqr.snapshot()
    return seqr


def test_empty_storage_gives_an_empty_core(storage) -> None:
    core, report = recover(storage, core_cls=FakeCore)
    assert core.last_seq == 0 and report.last_seq == 0
    assert report.snapshot_name is None and report.tail_segment is None
    assert storage.list() == []


def test_journal_only_replays_everything_and_feeds_events(storage) -> None:
    live = live_run(storage, [3, 1, 4, 1, 5])
    seen: list[int] = []
    core, report = recover(
        storage, core_cls=FakeCore, on_events=lambda ev: seen.extend(int(s) for s in ev["seq"])
    )
    assert core.state_hash() == live.core.state_hash()
    assert seen == list(range(1, 15))
    assert (report.batches_replayed, report.commands_replayed, report.last_seq) == (5, 14, 14)
    assert report.tail_damage is None and not report.tail_repaired


def test_snapshot_plus_tail_equals_from_scratch(storage) -> None:
    live = live_run(storage, [2] * 20, snapshot_at={4, 11}, segment_bytes=700)
    core, report = recover(storage, core_cls=FakeCore)
    assert report.snapshot_seq == 24 and report.commands_replayed == 16
    scratch, rep2 = recover(storage, core_cls=FakeCore, use_snapshots=False, include_archived=True)
    assert rep2.snapshot_name is None and rep2.commands_replayed == 40
    assert core.state_hash() == scratch.state_hash() == live.core.state_hash()


def test_torn_tail_at_every_byte_recovers_the_previous_batch(new_storage) -> None:
    probe = new_storage()
    live_run(probe, [2, 3, 2])
    name = segment_name(1)
    full = probe.read(name, 0, probe.size(name))
    last_start = len(full) - (2 * HEADER_SIZE + 2 * CMD_SIZE)
    payload_end = len(full) - HEADER_SIZE
    prev_hash = FakeCore()
    cmds = make_cmds(5, start_ref=1000)
    cmds["seq"] = np.arange(1, 6)
    cmds["ts_ns"] = 1_700_000_000_000_000_000
    prev_hash.apply(cmds[:2])
    prev_hash.apply(cmds[2:])
    for size in range(last_start + 1, len(full), 7):
        storage = new_storage()
        storage.append(name, full[:size])
        storage.sync(name)
        storage.sync_dir()
        core, report = recover(storage, core_cls=FakeCore)
        if size < payload_end:
            assert report.last_seq == 5, size
            assert core.state_hash() == prev_hash.state_hash()
            assert report.tail_damage is not None and report.tail_damage.kind == "torn"
            assert storage.size(name) == last_start
        else:
            assert report.last_seq == 7 and report.tail_damage is not None
            assert report.tail_damage.kind == "trailer" and storage.size(name) == len(full)
        assert report.tail_repaired and "tail" in report.summary()
        again, rep2 = recover(storage, core_cls=FakeCore)  # idempotent, nothing left to repair
        assert rep2.tail_damage is None and again.state_hash() == core.state_hash()


def test_corruption_inside_the_prefix_stops_and_changes_nothing(storage) -> None:
    live_run(storage, [4, 4, 4])
    name = segment_name(1)
    size = storage.size(name)
    batch = 2 * HEADER_SIZE + 4 * CMD_SIZE
    flip_bit(storage, name, batch + HEADER_SIZE + 100)
    with pytest.raises(JournalCorrupt) as exc:
        recover(storage, core_cls=FakeCore)
    assert (exc.value.batch_index, exc.value.seq, exc.value.offset) == (1, 5, batch)
    assert storage.size(name) == size


def test_corrupt_last_batch_with_valid_trailer_is_not_truncated(storage) -> None:
    live_run(storage, [4, 4])
    name = segment_name(1)
    size = storage.size(name)
    flip_bit(storage, name, size - HEADER_SIZE - 1)  # last payload byte
    with pytest.raises(JournalCorrupt, match="completely written"):
        recover(storage, core_cls=FakeCore)
    assert storage.size(name) == size


def test_missing_segment_stops(storage) -> None:
    live_run(storage, [3] * 10, segment_bytes=700)
    segs = list_segments(storage)
    storage.remove(segs[2][1])
    with pytest.raises(JournalCorrupt, match="missing segment"):
        recover(storage, core_cls=FakeCore)


def test_half_written_newest_snapshot_falls_back(storage) -> None:
    live = live_run(storage, [2] * 10, snapshot_at={3, 7}, segment_bytes=700)
    newest = snapshot_name(16)
    assert [s for s, _ in list_snapshots(storage)] == [8, 16]
    cut(storage, newest, storage.size(newest) - 5)
    core, report = recover(storage, core_cls=FakeCore)
    assert report.snapshot_seq == 8 and [n for n, _ in report.snapshots_rejected] == [newest]
    assert core.state_hash() == live.core.state_hash()


def test_bit_flipped_newest_snapshot_falls_back(storage) -> None:
    live = live_run(storage, [2] * 10, snapshot_at={3, 7}, segment_bytes=700)
    flip_bit(storage, snapshot_name(16), SNAP_HEADER_SIZE + 1, 6)
    core, report = recover(storage, core_cls=FakeCore)
    assert report.snapshot_seq == 8 and len(report.snapshots_rejected) == 1
    assert core.state_hash() == live.core.state_hash()


def test_both_snapshots_bad_and_journal_archived_stops(storage) -> None:
    live_run(storage, [2] * 12, snapshot_at={3, 7, 10}, segment_bytes=500, archive="delete")
    for _, name in list_snapshots(storage):
        flip_bit(storage, name, 20)
    with pytest.raises(JournalCorrupt, match="missing segment"):
        recover(storage, core_cls=FakeCore)


def test_snapshot_ahead_of_the_journal_stops(storage) -> None:
    live_run(storage, [2, 2])
    core = FakeCore()
    cmds = make_cmds(9)
    cmds["seq"] = np.arange(1, 10)
    core.apply(cmds)
    write_snapshot(storage, core)
    with pytest.raises(JournalCorrupt, match="before the state's seq 9"):
        recover(storage, core_cls=FakeCore)


def test_leftover_snapshot_temp_is_removed(storage) -> None:
    live_run(storage, [2])
    storage.append(snapshot_name(2) + ".tmp", b"half")
    storage.sync_dir()
    _, report = recover(storage, core_cls=FakeCore)
    assert report.temp_files_removed == [snapshot_name(2) + ".tmp"]
    assert snapshot_name(2) + ".tmp" not in storage.list()


def test_read_only_recovery_changes_nothing(storage) -> None:
    live_run(storage, [2, 2])
    name = segment_name(1)
    cut(storage, name, storage.size(name) - 50)
    storage.append(snapshot_name(2) + ".tmp", b"half")
    before = {n: storage.read(n, 0, storage.size(n)) for n in storage.list()}
    _core, report = recover(storage, core_cls=FakeCore, repair=False)
    assert report.last_seq == 2 and report.tail_damage is not None and not report.tail_repaired
    assert {n: storage.read(n, 0, storage.size(n)) for n in storage.list()} == before


@pytest.mark.variants
def test_skip_crc_variant_accepts_a_corrupt_record(storage) -> None:
    live = live_run(storage, [4, 4, 4])
    flip_bit(storage, segment_name(1), HEADER_SIZE + CMD_SIZE + 40)  # qty_lots of record 2
    with pytest.raises(JournalCorrupt):
        recover(storage, core_cls=FakeCore)
    core, _ = recover(storage, core_cls=FakeCore, variants=frozenset({VARIANT_SKIP_CRC}))
    assert core.last_seq == 12 and core.state_hash() != live.core.state_hash()


# ------------------------------------------------------------------ the real core


def real_run(storage, n_batches, *, seed=1, **kw):
    """Setup + ``n_batches`` random batches of the real core through a Sequencer."""
    seqr = Sequencer.open(storage, ManualClock(), **kw)
    seqr.submit(coreflow.setup())
    flow = coreflow.Flow(seed)
    for i in range(n_batches):
        seqr.submit(flow.batch(1 + (i * 37) % 50))
    return seqr


def test_real_core_replay_equals_live(tmp_path, capsys) -> None:
    fs = FileStorage(str(tmp_path))
    live = real_run(fs, 40, snapshot_every_cmds=300, segment_bytes=20_000)
    live_hash = live.core.state_hash()
    assert live.core.conservation_errors() == []
    assert list_snapshots(fs) and any(n.startswith("archive-") for n in fs.list())
    fs.close()
    assert replay_main([str(tmp_path)]) == 0  # from scratch, archived segments included
    out = capsys.readouterr().out
    assert f"state hash     {live_hash.hex()}" in out
    assert f"last seq       {live.last_seq}" in out and "conservation   ok" in out
    assert replay_main([str(tmp_path), "--from-snapshot", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["state_hash"] == live_hash.hex() and res["snapshot_seq"] > 0
    fs = FileStorage(str(tmp_path))
    again = Sequencer.open(fs, ManualClock())
    assert again.core.state_hash() == live_hash and again.last_seq == live.last_seq
    fs.close()


def test_real_core_replay_reports_corruption(tmp_path, capsys) -> None:
    fs = FileStorage(str(tmp_path))
    real_run(fs, 10)
    name = segment_name(1)
    size = fs.size(name)
    flip_bit(fs, name, size // 2)
    fs.close()
    assert replay_main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "journal corrupt" in err and name in err and "record seq" in err
    assert replay_main([str(tmp_path / "nope")]) == 2


def events_into(out: list[int]):
    """An on_events sink that records the seq of every replayed event."""
    return lambda ev: out.extend(int(s) for s in ev["seq"])


def test_real_core_survives_power_losses_with_acked_commands() -> None:
    disk = SimDisk(random.Random(4))
    clock = ManualClock()
    kw = {"snapshot_every_cmds": 150, "segment_bytes": 8_000}
    seqr = Sequencer.open(disk, clock, **kw)
    seqr.submit(coreflow.setup())
    flow = coreflow.Flow(4)
    reference = Core()
    reference.run(coreflow.setup(), ts_ns=clock.now_ns())
    for i in range(60):
        cmds = flow.batch(1 + i % 17)
        seqr.submit(cmds)
        reference.apply(cmds)  # stamped in place by submit
        if i % 7 == 6:
            disk.power_loss()
            disk.restart()
            events: list[int] = []
            seqr = Sequencer.open(disk, clock, on_events=events_into(events), **kw)
            assert seqr.last_seq == reference.last_seq
            assert seqr.core.state_hash() == reference.state_hash()
            assert seqr.core.conservation_errors() == []
            assert not events or events[0] == seqr.report.snapshot_seq + 1
    scratch, _ = recover(disk, use_snapshots=False, include_archived=True, repair=False)
    assert scratch.state_hash() == seqr.core.state_hash()
