"""Periodic snapshots are written by a forked child while the loop serves (issue 16)."""

from __future__ import annotations

import time
from collections.abc import Callable

from bindings.client import CoreClient
from engine import server as server_mod
from engine.snapshot import list_snapshots
from engine.storage import FileStorage
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.serve import ServedCore, loopback_config
from tests.engine.test_server_storage_failures import FullDisk


def wait_for(cond: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_background_snapshot_is_written_and_used(tmp_path) -> None:
    d = str(tmp_path / "core")
    served = ServedCore(loopback_config(d, snapshot_every_cmds=50), FakeCore)
    with CoreClient(served.endpoint()) as c:
        for i in range(4):
            c.request(make_cmds(30, start_ref=1 + 30 * i))
        wait_for(lambda: served.server.background_snapshots >= 1)
        c.request(make_cmds(5, start_ref=500))  # the loop still serves
    with CoreClient(served.endpoint("admin")) as a:
        h = a.control("state_hash")["state_hash"]
    assert served.server.sequencer.stats.snapshots >= 1
    served.server.stopping = True
    served.thread.join(timeout=20)
    assert served.rc == [0]
    storage = FileStorage(d)
    assert list_snapshots(storage)
    storage.close()
    served2 = ServedCore(loopback_config(d), FakeCore)
    assert served2.server.sequencer.report.snapshot_seq > 0
    with CoreClient(served2.endpoint("admin")) as a:
        assert a.control("state_hash")["state_hash"] == h
    served2.server.stopping = True
    served2.thread.join(timeout=20)
    assert served2.rc == [0]


def test_failed_background_snapshot_is_retried_and_the_loop_serves(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(server_mod, "FileStorage", FullDisk)
    FullDisk.armed = "snapshot-"
    try:
        served = ServedCore(
            loopback_config(str(tmp_path / "core"), snapshot_every_cmds=20), FakeCore
        )
        with CoreClient(served.endpoint()) as c:
            c.request(make_cmds(30))
            c.request(make_cmds(1, start_ref=100))  # the next turn starts the snapshot
            wait_for(lambda: served.server.background_snapshot_failures >= 1)
            assert served.server.background_snapshots == 0
            FullDisk.armed = None
            for i in range(3):
                c.request(make_cmds(30, start_ref=1_000 + 100 * i))
            wait_for(lambda: served.server.background_snapshots >= 1)
        served.server.stopping = True
        served.thread.join(timeout=20)
        assert served.rc == [0]
    finally:
        FullDisk.armed = None
