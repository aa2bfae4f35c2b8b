"""The core's fsync ack path (issue 17): the high-water record's own sync is deferred
until the caller's acknowledgements left, and the per-frame kind check by lookup table
agrees with the role table."""

from __future__ import annotations

import numpy as np

from engine.clock import ManualClock
from engine.highwater import read_high_water
from engine.sequencer import Sequencer
from engine.server import _KIND_TABLES
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


def test_kind_tables_match_the_role_table() -> None:
    kinds = np.arange(256)
    for role in ROLES:
        want = np.array([k in ROLE_KINDS[role] for k in range(256)])
        assert (_KIND_TABLES[role][kinds] == want).all(), role
        assert _KIND_TABLES[role].dtype == np.bool_
