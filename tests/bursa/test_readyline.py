"""bursa.exchange.readyline: a child's ready line, and each way of not getting one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bursa.exchange.readyline import REPO, NotReadyError, child_env, wait_ready_line


def _start(tmp_path: Path, code: str) -> tuple[subprocess.Popen[bytes], Path]:
    out_path = tmp_path / "child.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out, env=child_env())
    return proc, out_path


def test_the_first_json_line_is_returned(tmp_path: Path) -> None:
    code = (
        "import json, time; print('starting');"
        " print(json.dumps({'ready': True, 'x': 1}), flush=True); time.sleep(30)"
    )
    proc, out = _start(tmp_path, code)
    try:
        assert wait_ready_line(proc, out, 30) == {"ready": True, "x": 1}
    finally:
        proc.kill()
        proc.wait()


def test_a_child_that_exits_first_reports_its_status(tmp_path: Path) -> None:
    proc, out = _start(tmp_path, "import sys; sys.exit(7)")
    with pytest.raises(NotReadyError, match="status 7") as e:
        wait_ready_line(proc, out, 30)
    assert e.value.exit_status == 7


def test_another_json_line_first_is_refused(tmp_path: Path) -> None:
    proc, out = _start(
        tmp_path, "print('{\"ready\": false}', flush=True); import time; time.sleep(30)"
    )
    try:
        with pytest.raises(NotReadyError, match="unexpected first line") as e:
            wait_ready_line(proc, out, 30)
        assert e.value.exit_status is None
    finally:
        proc.kill()
        proc.wait()


def test_silence_times_out_and_leaves_the_child_running(tmp_path: Path) -> None:
    proc, out = _start(tmp_path, "import time; time.sleep(30)")
    try:
        with pytest.raises(NotReadyError, match="not ready within"):
            wait_ready_line(proc, out, 0.3)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_child_env_puts_this_checkout_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = child_env(EXTRA="1")
    assert env["PYTHONPATH"].split(":") == [str(REPO), "/elsewhere"]
    assert env["EXTRA"] == "1"
