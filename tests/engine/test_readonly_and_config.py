"""Replays never write or create files; unknown config keys are errors (issue 16)."""

from __future__ import annotations

import os

import pytest

from engine.clock import ManualClock
from engine.replay import main as replay_main
from engine.replay import replay_dir
from engine.sequencer import Sequencer
from engine.server import load_config
from engine.storage import FileStorage, StorageError
from tests.engine.fakecore import FakeCore, make_cmds

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def make_dir(path: str) -> None:
    storage = FileStorage(path)
    seqr = Sequencer.open(storage, ManualClock(), core_cls=FakeCore, segment_bytes=2_000)
    for i in range(6):
        seqr.submit(make_cmds(5, start_ref=100 * i + 1))
    seqr.snapshot()
    seqr.submit(make_cmds(3, start_ref=9_000))
    seqr.close()
    storage.close()


@pytest.mark.parametrize("from_scratch", [True, False])
def test_replay_opens_files_read_only(tmp_path, monkeypatch, from_scratch) -> None:
    d = str(tmp_path / "core")
    make_dir(d)
    before = {n: os.stat(os.path.join(d, n)).st_mtime_ns for n in os.listdir(d)}
    opened: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path, flags, *a, **kw):
        opened.append((str(path), flags))
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", spy)
    result = replay_dir(d, from_scratch=from_scratch, core_cls=FakeCore)
    monkeypatch.undo()
    assert result.last_seq == 33
    assert opened and all(flags & WRITE_FLAGS == 0 for _, flags in opened), opened
    assert {n: os.stat(os.path.join(d, n)).st_mtime_ns for n in os.listdir(d)} == before


def test_replay_of_a_missing_directory_creates_nothing(tmp_path) -> None:
    d = tmp_path / "nowhere"
    with pytest.raises(StorageError):
        replay_dir(str(d), core_cls=FakeCore)
    assert not d.exists()
    assert replay_main([str(d)]) == 2 and not d.exists()


def test_read_only_storage_refuses_writes(tmp_path) -> None:
    d = str(tmp_path / "core")
    make_dir(d)
    ro = FileStorage(d, read_only=True)
    name = ro.list()[0]
    assert ro.read(name, 0, 4)
    for call in (
        lambda: ro.append(name, b"x"),
        lambda: ro.write_at("new-file", 0, b"x"),
        lambda: ro.sync(name),
        lambda: ro.truncate(name, 0),
        lambda: ro.rename(name, "other"),
        lambda: ro.remove(name),
        ro.sync_dir,
    ):
        with pytest.raises(StorageError, match="read-only"):
            call()
    with pytest.raises(StorageError):
        ro.read("no-such-file", 0, 1)  # reading never creates
    assert "no-such-file" not in os.listdir(d) and "new-file" not in os.listdir(d)
    ro.close()


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('[core_server]\nmode = "async"\n', True),
        ('[core_server]\nmdoe = "async"\n', False),  # misspelt, in the section
        ('mode = "async"\n', True),  # top level: this process's settings
        ('mdoe = "async"\n', False),  # misspelt at top level: was ignored before
        ('mode = "async"\n[gateway]\nport = 1\n', True),  # other processes' tables
    ],
)
def test_unknown_config_keys_are_errors(tmp_path, text, ok) -> None:
    p = tmp_path / "core.toml"
    p.write_text(text)
    if ok:
        assert load_config(str(p))["mode"] == "async"
    else:
        with pytest.raises(ValueError, match="unknown config keys"):
            load_config(str(p))
