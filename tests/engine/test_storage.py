"""FileStorage: the real-file implementation of the storage interface."""

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
