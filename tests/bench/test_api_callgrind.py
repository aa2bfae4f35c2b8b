"""bench.api --callgrind: the instruction total is read from the dump its trigger
names (one dump per connection count, in one output directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.api import _callgrind_total


def _dump(path: Path, tag: str, total: int) -> None:
    path.write_text(
        "# callgrind format\nversion: 1\npid: 7\npart: 1\n\n"
        f"desc: Timerange: Basic block 0 - 9\ndesc: Trigger: dump {tag}\n\n"
        f"events: Ir\nsummary: 0\nfn=(1) f\n0 {total}\ntotals: {total}\n"
    )


def test_total_of_the_named_dump(tmp_path: Path) -> None:
    (tmp_path / "callgrind.out.7").write_text("")  # the final dump at exit: empty here
    _dump(tmp_path / "callgrind.out.7.1", "c1", 1_000)
    _dump(tmp_path / "callgrind.out.7.2", "c8", 5_000)
    _dump(tmp_path / "callgrind.out.7.3", "c16", 9_000)
    assert _callgrind_total(tmp_path, "c1") == 1_000
    assert _callgrind_total(tmp_path, "c8") == 5_000
    assert _callgrind_total(tmp_path, "c16") == 9_000
    with pytest.raises(RuntimeError):
        _callgrind_total(tmp_path, "c2")
