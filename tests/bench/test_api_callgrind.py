"""bench.api --callgrind: the instruction total and its parts are read from the dump its trigger
names (one dump per connection count, in one output directory)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.api import _callgrind_parts, _callgrind_total


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


# ``callgrind_annotate --inclusive=yes`` lines as it prints them (a recursive instance
# of a function is named ``fn'2``).
_ANNOTATED = """\
--------------------------------------------------------------------------------
2,347 (100.0%)  PROGRAM TOTALS
--------------------------------------------------------------------------------
1,300 (55.39%)  /src/unix/stream.c:uv__read [/lib/loop.so]
  900 (38.35%)  /src/unix/stream.c:uv__read'2 [/lib/loop.so]
   40 ( 1.70%)  /src/unix/loop-watcher.c:uv__run_idle [/lib/loop.so]
    7 ( 0.30%)  /src/timer.c:uv__run_timers [/lib/loop.so]
    5 ( 0.21%)  /src/timer.c:uv__run_timers_extra [/lib/loop.so]
"""


def test_parts_of_the_named_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each part is the inclusive count of the function that runs it, read from
    ``callgrind_annotate`` of the dump its trigger names (not a recursive instance,
    not a longer name); a part absent from the dump is 0."""
    _dump(tmp_path / "callgrind.out.7.1", "c1", 1_000)
    _dump(tmp_path / "callgrind.out.7.2", "c8", 2_347)
    seen: list[list[str]] = []

    def annotate(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, _ANNOTATED, "")

    monkeypatch.setattr(subprocess, "run", annotate)
    assert _callgrind_parts(tmp_path, "c8") == {
        "read": 1_300, "idle": 40, "links": 0, "timers": 7, "tick": 0}  # fmt: skip
    assert seen == [["callgrind_annotate", "--inclusive=yes", str(tmp_path / "callgrind.out.7.2")]]
