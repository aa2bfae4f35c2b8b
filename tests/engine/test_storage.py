"""FileStorage: the real-file implementation of the storage interface."""

import errno
import os

import pytest

from engine.storage import FileStorage, StorageError


def test_append_read_truncate_rename_remove(tmp_path) -> None:
    st = FileStorage(str(tmp_path))
    st.append("a", b"hello ")
    st.append("a", b"world")
    st.sync("a")
    assert st.read("a", 0, 100) == b"hello world"
    assert st.size("a") == 11
    st.write_at("a", 6, b"W")
    assert st.read("a", 6, 5) == b"World"
    st.truncate("a", 5)
    assert st.read("a", 0, 100) == b"hello"
    st.rename("a", "b")
    st.sync_dir()
    assert st.list() == ["b"]
    st.remove("b")
    assert st.list() == []
    st.close()


@pytest.mark.parametrize(
    "op",
    [
        lambda st: st.remove("missing"),
        lambda st: st.rename("missing", "other"),
    ],
)
def test_failures_are_storage_errors(tmp_path, op) -> None:
    st = FileStorage(str(tmp_path))
    with pytest.raises(StorageError):
        op(st)


def test_bad_names_are_refused(tmp_path) -> None:
    st = FileStorage(str(tmp_path))
    for name in ("", ".", "..", "x/y"):
        with pytest.raises(ValueError):
            st.append(name, b"x")


def test_short_writes_are_completed_and_a_stuck_write_fails(tmp_path, monkeypatch) -> None:
    st = FileStorage(str(tmp_path))
    st.write_at("a", 0, b"x" * 10)
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, off: real(fd, bytes(data)[:3], off))
    st.write_at("a", 2, b"abcdefgh")  # 3 + 3 + 2 bytes
    assert st.read("a", 0, 100) == b"xxabcdefgh"
    monkeypatch.setattr(os, "pwrite", lambda fd, data, off: 0)
    with pytest.raises(StorageError, match="short write"):
        st.write_at("a", 0, b"y")


@pytest.mark.parametrize("call", ["pwrite", "pread", "fdatasync"])
def test_os_errors_of_hot_calls_are_storage_errors_naming_the_file(
    tmp_path, monkeypatch, call
) -> None:
    st = FileStorage(str(tmp_path))
    st.write_at("journal-x", 0, b"data")

    def fail(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, call, fail)
    with pytest.raises(StorageError, match="journal-x") as e:
        if call == "pwrite":
            st.write_at("journal-x", 0, b"more")
        elif call == "pread":
            st.read("journal-x", 0, 4)
        else:
            st.sync("journal-x")
    assert e.value.errno == errno.EIO


def test_read_only_storage_refuses_writes_and_syncs(tmp_path) -> None:
    FileStorage(str(tmp_path)).write_at("a", 0, b"x")
    ro = FileStorage(str(tmp_path), read_only=True)
    assert ro.read("a", 0, 1) == b"x"
    for op in (lambda: ro.write_at("a", 0, b"y"), lambda: ro.sync("a")):
        with pytest.raises(StorageError) as e:
            op()
        assert e.value.errno == errno.EROFS
