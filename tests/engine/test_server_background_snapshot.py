"""Periodic snapshots are written by a forked child while the loop serves (issue 16)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bindings.client import CoreClient
from engine import server as server_mod
from engine.server import CoreServer, ServerConfig
from engine.snapshot import list_snapshots
from engine.storage import FileStorage
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.test_server_storage_failures import FullDisk

LOOPBACK = "tcp://127.0.0.1:*"


def start(data_dir: str, **kw: object) -> tuple[CoreServer, threading.Thread, list[int]]:
    cfg = ServerConfig(
        data_dir=data_dir,
        trade_endpoint=LOOPBACK,
        fund_endpoint=LOOPBACK,
        admin_endpoint=LOOPBACK,
        pub_endpoint=LOOPBACK,
        replay_endpoint=LOOPBACK,
        **kw,  # type: ignore[arg-type]
    )
    srv = CoreServer(cfg, core_cls=FakeCore)
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(srv.run()), daemon=True)
    t.start()
    return srv, t, rc


def wait_for(cond: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def endpoint(srv: CoreServer, role: str = "trade") -> str:
    return str(srv.status()[role])


def test_background_snapshot_is_written_and_used(tmp_path) -> None:
    d = str(tmp_path / "core")
    srv, t, rc = start(d, snapshot_every_cmds=50)
    with CoreClient(endpoint(srv)) as c:
        for i in range(4):
            c.request(make_cmds(30, start_ref=1 + 30 * i))
        wait_for(lambda: srv.background_snapshots >= 1)
        c.request(make_cmds(5, start_ref=500))  # the loop still serves
    with CoreClient(endpoint(srv, "admin")) as a:
        h = a.control("state_hash")["state_hash"]
    assert srv.sequencer.stats.snapshots >= 1
    srv.stopping = True
    t.join(timeout=20)
    assert rc == [0]
    storage = FileStorage(d)
    assert list_snapshots(storage)
    storage.close()
    srv2, t2, rc2 = start(d)
    assert srv2.sequencer.report.snapshot_seq > 0
    with CoreClient(endpoint(srv2, "admin")) as a:
        assert a.control("state_hash")["state_hash"] == h
    srv2.stopping = True
    t2.join(timeout=20)
    assert rc2 == [0]


def test_failed_background_snapshot_is_retried_and_the_loop_serves(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(server_mod, "FileStorage", FullDisk)
    FullDisk.armed = "snapshot-"
    try:
        srv, t, rc = start(str(tmp_path / "core"), snapshot_every_cmds=20)
        with CoreClient(endpoint(srv)) as c:
            c.request(make_cmds(30))
            c.request(make_cmds(1, start_ref=100))  # the next turn starts the snapshot
            wait_for(lambda: srv.background_snapshot_failures >= 1)
            assert srv.background_snapshots == 0
            FullDisk.armed = None
            for i in range(3):
                c.request(make_cmds(30, start_ref=1_000 + 100 * i))
            wait_for(lambda: srv.background_snapshots >= 1)
        srv.stopping = True
        t.join(timeout=20)
        assert rc == [0]
    finally:
        FullDisk.armed = None
