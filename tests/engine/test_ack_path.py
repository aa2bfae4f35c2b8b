"""The core's fsync ack path (issue 17): the high-water record's own sync is deferred
until the caller's acknowledgements left, the Sequencer's stage/make_durable split
lets nothing out before the sync, the C stamp and the sync histograms are right, and
the per-frame kind check (bytes.translate) agrees with the role table."""

from __future__ import annotations

import errno
import time
from typing import Any

import numpy as np
import pytest
import zmq

from bursa_wire.layout import CMD_DTYPE, REPLY_DTYPE
from engine.clock import ManualClock
from engine.highwater import read_high_water
from engine.journal import JournalWriteError
from engine.metrics import MAX_SYNC_NAMES, CoreMetrics, TimedStorage
from engine.sequencer import Sequencer
from engine.server import _KIND_BYTES, CoreServer, kinds_allowed
from engine.storage import FileStorage, StorageError
from engine.wire import commands
from engine.wire.frames import peek_event_header
from engine.wire.roles import ROLE_KINDS, ROLES
from pyx.core import stamp_batch
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.serve import loopback_config


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


class _CountingSyncs:
    """Storage wrapper counting fdatasyncs of journal segments (everything else passed on)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.journal_syncs = 0
        self.fail_sync = False

    def sync(self, name: str) -> None:
        if name.startswith("journal-"):
            if self.fail_sync:
                raise StorageError(errno.EIO, f"fdatasync {name}: Input/output error")
            self.journal_syncs += 1
        self.inner.sync(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_stage_writes_and_applies_make_durable_syncs(storage) -> None:
    disk = _CountingSyncs(storage)
    seqr = Sequencer.open(disk, ManualClock(), core_cls=FakeCore)
    seqr.submit(make_cmds(1, start_ref=500))  # the segment's name made durable once
    before = disk.journal_syncs
    _events, replies = seqr.stage(make_cmds(3, start_ref=1_000))
    # Applied and in the journal's file, not yet synced.
    assert len(replies) == 3 and seqr.last_seq == 4 and seqr.core.last_seq == 4
    assert disk.journal_syncs == before and seqr.stats.syncs == 1
    with pytest.raises(AssertionError):
        seqr.stage(make_cmds(1, start_ref=2_000))  # the staged batch must be synced first
    seqr.make_durable()
    assert disk.journal_syncs == before + 1 and seqr.stats.syncs == 2
    seqr.make_durable()  # nothing staged: no second sync
    assert disk.journal_syncs == before + 1
    seqr.close()
    # What was staged and synced is what recovery finds.
    again = Sequencer.open(storage, ManualClock(), core_cls=FakeCore)
    assert again.last_seq == 4
    again.close()


def test_failed_sync_lets_nothing_of_the_batch_out(tmp_path) -> None:
    """The server builds its event frames and replies between stage and make_durable:
    when the sync fails, no reply is sent and nothing reaches the event log or PUB."""
    cfg = loopback_config(str(tmp_path / "core"))
    server = CoreServer(cfg, core_cls=FakeCore)
    disk = _CountingSyncs(server.sequencer._writer.storage)
    server.sequencer._writer.storage = disk
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    client = ctx.socket(zmq.DEALER)
    sub = ctx.socket(zmq.SUB)
    try:
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(server.endpoints["pub"])
        client.connect(server.endpoints["trade"])
        client.send(make_cmds(2).tobytes())
        while not server.turn(50):
            pass
        assert client.poll(5000) and len(client.recv()) == 2 * REPLY_DTYPE.itemsize
        logged = server.eventlog.last_seq
        assert logged == 2
        disk.fail_sync = True
        client.send(make_cmds(2, start_ref=10).tobytes())
        with pytest.raises(JournalWriteError):
            for _ in range(200):
                server.turn(50)
        assert server.eventlog.last_seq == logged  # nothing logged
        assert not client.poll(300)  # no reply
        time.sleep(0.2)
        frames = []
        while sub.poll(0):
            frames.append(sub.recv())
        assert all(peek_event_header(f)[2] <= logged for f in frames)  # nothing published
    finally:
        client.close(0)
        sub.close(0)
        server.replay.stop()
        server._close_sockets()
        server.storage.close()


def test_stamp_batch_numbers_in_place_and_refuses_other_arrays() -> None:
    cmds = make_cmds(4)
    stamp_batch(cmds, 41, 7_000)
    assert cmds["seq"].tolist() == [41, 42, 43, 44] and set(cmds["ts_ns"].tolist()) == {7_000}
    before = cmds.copy()
    for bad in (cmds[::2], np.zeros(2, dtype=REPLY_DTYPE), np.zeros((2, 2), dtype=CMD_DTYPE)):
        with pytest.raises(TypeError):
            stamp_batch(bad, 1, 1)
    frozen = cmds.copy()
    frozen.flags.writeable = False
    with pytest.raises(TypeError):
        stamp_batch(frozen, 1, 1)
    assert (cmds == before).all()  # nothing written by a refused call


def test_timed_storage_sync_histograms_by_file_kind(tmp_path) -> None:
    metrics = CoreMetrics()
    disk = TimedStorage(FileStorage(str(tmp_path)), metrics)
    for name in ("journal-1.seg", "events-1.log", "journal-1.seg", "other.dat"):
        disk.write_at(name, 0, b"x")
        disk.sync(name)
    assert metrics.sync["journal"].count == 2 and metrics.sync["event_log"].count == 1
    assert metrics.sync["snapshot"].count == 0  # other.dat is not measured
    for k in range(MAX_SYNC_NAMES + 5):  # the name cache stays bounded
        disk.write_at(f"events-{k}.log", 0, b"x")
        disk.sync(f"events-{k}.log")
    assert len(disk._sync_hist) <= MAX_SYNC_NAMES
    assert metrics.sync["event_log"].count == 1 + MAX_SYNC_NAMES + 5
    disk.close()
