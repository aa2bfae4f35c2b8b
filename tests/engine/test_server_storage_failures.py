"""Storage failures of the core process end it with a clear message and exit 3 (issue 16).

The failing disk is injected: the server's FileStorage is replaced by one that
raises ENOSPC for appends to files of one kind once armed.
"""

from __future__ import annotations

import errno
import logging

import pytest

from bindings.client import CoreClient
from engine import server as server_mod
from engine.storage import FileStorage, StorageError
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.serve import ServedCore, loopback_config


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


def test_full_disk_on_event_log_exits_3_with_a_message(tmp_path, full_disk, caplog) -> None:
    caplog.set_level(logging.CRITICAL, logger="bursa.core")
    served = ServedCore(loopback_config(str(tmp_path / "core")), FakeCore)
    with CoreClient(served.endpoint()) as c:
        c.request(make_cmds(3))
        full_disk.armed = "events-"
        c.send(make_cmds(2, start_ref=10))
        served.thread.join(timeout=20)
    assert not served.thread.is_alive() and served.rc == [3]
    assert "event log append failed" in caplog.text and "No space left" in caplog.text
    # the batch is durable in the journal: a restart rebuilds the log and has it
    full_disk.armed = None
    served2 = ServedCore(loopback_config(str(tmp_path / "core")), FakeCore)
    assert served2.server.sequencer.last_seq == 5 and served2.server.eventlog.last_seq == 5
    served2.server.stopping = True
    served2.thread.join(timeout=20)
    assert served2.rc == [0]


def test_failed_shutdown_snapshot_exits_nonzero(tmp_path, full_disk, caplog) -> None:
    caplog.set_level(logging.CRITICAL, logger="bursa.core")
    served = ServedCore(loopback_config(str(tmp_path / "core")), FakeCore)
    with CoreClient(served.endpoint()) as c:
        c.request(make_cmds(3))
    full_disk.armed = "snapshot-"
    served.server.stopping = True
    served.thread.join(timeout=20)
    assert served.rc == [3]
    assert "shutdown snapshot failed" in caplog.text and "No space left" in caplog.text
