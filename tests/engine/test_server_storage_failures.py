"""Storage failures of the core process end it with a clear message and exit 3 (issue 16).

The failing disk is injected: the server's FileStorage is replaced by one that
raises ENOSPC for appends to files of one kind once armed.
"""

from __future__ import annotations

import errno
import logging
import threading

import pytest

from bindings.client import CoreClient
from engine import server as server_mod
from engine.server import CoreServer, ServerConfig
from engine.storage import FileStorage, StorageError
from tests.engine.fakecore import FakeCore, make_cmds

LOOPBACK = "tcp://127.0.0.1:*"


class FullDisk(FileStorage):
    """FileStorage whose appends and writes to names starting with ``armed`` fail."""

    armed: str | None = None

    def _check(self, name: str) -> None:
        if FullDisk.armed is not None and name.startswith(FullDisk.armed):
            raise StorageError(errno.ENOSPC, f"write {name}: No space left on device")

    def append(self, name: str, data: bytes) -> None:
        self._check(name)
        super().append(name, data)

    def write_at(self, name: str, offset: int, data: bytes) -> None:
        self._check(name)
        super().write_at(name, offset, data)


@pytest.fixture
def full_disk(monkeypatch):
    FullDisk.armed = None
    monkeypatch.setattr(server_mod, "FileStorage", FullDisk)
    yield FullDisk
    FullDisk.armed = None


def start(tmp_path) -> tuple[CoreServer, threading.Thread, list[int]]:
    cfg = ServerConfig(
        data_dir=str(tmp_path / "core"),
        trade_endpoint=LOOPBACK,
        fund_endpoint=LOOPBACK,
        admin_endpoint=LOOPBACK,
        pub_endpoint=LOOPBACK,
        replay_endpoint=LOOPBACK,
    )
    srv = CoreServer(cfg, core_cls=FakeCore)
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(srv.run()), daemon=True)
    t.start()
    return srv, t, rc


def endpoint(srv: CoreServer) -> str:
    return str(srv.status()["trade"])


def test_full_disk_on_event_log_exits_3_with_a_message(tmp_path, full_disk, caplog) -> None:
    caplog.set_level(logging.CRITICAL, logger="bursa.core")
    srv, t, rc = start(tmp_path)
    with CoreClient(endpoint(srv)) as c:
        c.request(make_cmds(3))
        full_disk.armed = "events-"
        c.send(make_cmds(2, start_ref=10))
        t.join(timeout=20)
    assert not t.is_alive() and rc == [3]
    assert "event log append failed" in caplog.text and "No space left" in caplog.text
    # the batch is durable in the journal: a restart rebuilds the log and has it
    full_disk.armed = None
    srv2, t2, rc2 = start(tmp_path)
    assert srv2.sequencer.last_seq == 5 and srv2.eventlog.last_seq == 5
    srv2.stopping = True
    t2.join(timeout=20)
    assert rc2 == [0]


def test_failed_shutdown_snapshot_exits_nonzero(tmp_path, full_disk, caplog) -> None:
    caplog.set_level(logging.CRITICAL, logger="bursa.core")
    srv, t, rc = start(tmp_path)
    with CoreClient(endpoint(srv)) as c:
        c.request(make_cmds(3))
    full_disk.armed = "snapshot-"
    srv.stopping = True
    t.join(timeout=20)
    assert rc == [3]
    assert "shutdown snapshot failed" in caplog.text and "No space left" in caplog.text
