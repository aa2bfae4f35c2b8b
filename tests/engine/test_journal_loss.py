"""Recovery refuses a journal shorter than what was durably acknowledged (issue 16).

The evidence: the high-water record (engine.highwater), snapshot names and the
caller's own (the server's event log).  The operator override starts anyway and
lowers the record, so the next plain start works.
"""

from __future__ import annotations

import pytest

from engine.clock import ManualClock
from engine.highwater import (
    HIGH_WATER_NAME,
    SLOT_SIZE,
    HighWater,
    decode_slot,
    encode_slot,
    read_high_water,
)
from engine.journal import list_segments
from engine.recovery import JournalLoss, recover
from engine.sequencer import Sequencer
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.util import cut


def run(storage, batches, *, close=True, **kw):
    """Submit batches of the given sizes with a high-water write after every batch."""
    seqr = Sequencer.open(
        storage, ManualClock(), core_cls=FakeCore, segment_bytes=10_000,
        high_water_every_ns=0, **kw,
    )  # fmt: skip
    ref = 1_000 * (seqr.last_seq + 1)
    for n in batches:
        seqr.submit(make_cmds(n, start_ref=ref))
        ref += n
    if close:
        seqr.close()
    return seqr


def newest_segment(storage) -> str:
    return list_segments(storage)[-1][1]


def test_high_water_follows_synced_batches(storage) -> None:
    s = run(storage, [3, 2, 4], close=False)
    assert read_high_water(storage) == 9
    assert s.stats.high_water_writes == 3


def test_cut_newest_segment_is_refused_then_override_starts(storage) -> None:
    run(storage, [3, 2, 4])
    name = newest_segment(storage)
    cut(storage, name, storage.size(name) // 2)
    with pytest.raises(JournalLoss) as exc:
        recover(storage, core_cls=FakeCore)
    msg = str(exc.value)
    assert "seq 9" in msg and "--accept-journal-loss" in msg and "journal.hwm" in msg
    size = storage.size(name)
    with pytest.raises(JournalLoss):
        Sequencer.open(storage, ManualClock(), core_cls=FakeCore)
    assert storage.size(name) == size  # refused before any repair
    s = Sequencer.open(storage, ManualClock(), core_cls=FakeCore, accept_journal_loss=True)
    assert s.report.journal_loss_accepted and s.last_seq < 9
    assert read_high_water(storage) == s.last_seq
    s.close()
    again = Sequencer.open(storage, ManualClock(), core_cls=FakeCore)
    assert again.last_seq == s.last_seq and not again.report.journal_loss_accepted


def test_deleted_newest_segment_is_refused(storage) -> None:
    run(storage, [50] * 6)  # several segments of 10 kB
    segs = list_segments(storage)
    assert len(segs) >= 2
    storage.remove(segs[-1][1])
    storage.sync_dir()
    with pytest.raises(JournalLoss):
        recover(storage, core_cls=FakeCore)


def test_caller_evidence_alone_refuses(storage) -> None:
    """Without a high-water record, the caller's evidence (the event log) still counts."""
    run(storage, [3, 2])
    storage.remove(HIGH_WATER_NAME)
    core, _ = recover(storage, core_cls=FakeCore, known_seq=5)
    assert core.last_seq == 5
    with pytest.raises(JournalLoss, match="the event log"):
        recover(storage, core_cls=FakeCore, known_seq=7)


def test_read_only_replay_does_not_check_or_write(storage) -> None:
    run(storage, [3, 2, 4])
    name = newest_segment(storage)
    cut(storage, name, storage.size(name) // 2)
    before = {n: storage.size(n) for n in storage.list()}
    core, _ = recover(storage, core_cls=FakeCore, repair=False)
    assert core.last_seq < 9
    assert {n: storage.size(n) for n in storage.list()} == before


def test_torn_slot_keeps_the_other(storage) -> None:
    hw = HighWater(storage)
    assert hw.write(5) and hw.write(8)
    assert read_high_water(storage) == 8
    # tear the slot holding 8: the other slot (5) is still a valid lower bound
    data = storage.read(HIGH_WATER_NAME, 0, 2 * SLOT_SIZE)
    newest = 0 if decode_slot(data[:SLOT_SIZE]) == (2, 8) else 1
    storage.write_at(HIGH_WATER_NAME, newest * SLOT_SIZE + 3, b"\xff")
    storage.sync(HIGH_WATER_NAME)
    assert read_high_water(storage) == 5
    assert decode_slot(encode_slot(7, 99)) == (7, 99)
    assert decode_slot(b"\0" * SLOT_SIZE) is None


def test_damaged_snapshot_beyond_the_end_refuses_and_override_sets_it_aside(storage) -> None:
    from engine.snapshot import list_snapshots
    from tests.engine.util import flip_bit

    s = run(storage, [3, 2, 4], close=False)
    s.snapshot()  # at seq 9
    s.close()
    storage.remove(HIGH_WATER_NAME)
    (snap,) = [name for _, name in list_snapshots(storage)]
    flip_bit(storage, snap, 20)  # unusable
    name = newest_segment(storage)
    cut(storage, name, storage.size(name) // 2)
    with pytest.raises(JournalLoss, match="snapshot file"):
        recover(storage, core_cls=FakeCore)
    core, rep = recover(storage, core_cls=FakeCore, accept_journal_loss=True)
    assert rep.journal_loss_accepted and core.last_seq < 9
    assert list_snapshots(storage) == [] and "lost-" + snap in storage.list()
    core2, rep2 = recover(storage, core_cls=FakeCore)
    assert core2.last_seq == core.last_seq and not rep2.journal_loss_accepted
