"""The core's fsync ack path (issue 17): the high-water record's own sync is deferred
until the caller's acknowledgements left, and the per-frame kind check (bytes.translate)
agrees with the role table."""

from __future__ import annotations

import numpy as np

from engine.clock import ManualClock
from engine.highwater import read_high_water
from engine.sequencer import Sequencer
from engine.server import _KIND_BYTES, kinds_allowed
from engine.wire import commands
from engine.wire.roles import ROLE_KINDS, ROLES
from tests.engine.fakecore import FakeCore, make_cmds


def test_deferred_high_water_is_written_only_by_note_durable(storage) -> None:
    seqr = Sequencer.open(
        storage, ManualClock(), core_cls=FakeCore, high_water_every_ns=0,
        defer_high_water=True,
    )  # fmt: skip
    writes = seqr.stats.high_water_writes  # the one of the open (recovery synced)
    seqr.submit(make_cmds(3, start_ref=1_000))
    seqr.submit(make_cmds(2, start_ref=2_000))
    # Both batches are durable (fsync mode), but no high-water sync ran inside submit.
    assert seqr.stats.high_water_writes == writes
    assert seqr.stats.syncs == 2
    seqr.note_durable()
    assert seqr.stats.high_water_writes == writes + 1
    assert read_high_water(storage) == seqr.last_seq == 5
    seqr.note_durable()  # nothing new: no second write
    assert seqr.stats.high_water_writes == writes + 1
    seqr.close()


def test_default_still_writes_inside_submit(storage) -> None:
    seqr = Sequencer.open(storage, ManualClock(), core_cls=FakeCore, high_water_every_ns=0)
    writes = seqr.stats.high_water_writes
    seqr.submit(make_cmds(2, start_ref=1_000))
    assert seqr.stats.high_water_writes == writes + 1
    assert read_high_water(storage) == 2
    seqr.close()


def test_kind_check_matches_the_role_table() -> None:
    base = commands.cancel(1, 1)
    for role in ROLES:
        for k in range(256):
            one = base.copy()
            one["kind"] = k
            assert kinds_allowed(one.tobytes(), _KIND_BYTES[role]) == (k in ROLE_KINDS[role])
        # A frame is allowed only if every record is: one foreign kind anywhere refuses it.
        good = sorted(ROLE_KINDS[role])
        frame = np.repeat(base, len(good) + 1)
        frame["kind"][: len(good)] = good
        frame["kind"][-1] = good[0]
        assert kinds_allowed(frame.tobytes(), _KIND_BYTES[role])
        for bad in (k for k in range(256) if k not in ROLE_KINDS[role]):
            for at in (0, len(good) // 2, len(good)):
                f = frame.copy()
                f["kind"][at] = bad
                assert not kinds_allowed(f.tobytes(), _KIND_BYTES[role]), (role, bad, at)
