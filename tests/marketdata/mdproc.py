"""Run a real `bursa marketdata` process beside a real core (tests and the benchmark)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from engine.core import Core
from engine.recovery import recover
from engine.storage import FileStorage

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class MarketDataProcess:
    """One `python -m bursa marketdata` child; stdout/stderr go to files in ``log_dir``."""

    def __init__(self, log_dir: Path, core_ready: dict[str, Any], *extra: str) -> None:
        self.log_dir = log_dir
        self.core_ready = core_ready
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.starts = 0

    def start(self, pub: str, service: str) -> dict[str, Any]:
        """Start it binding ``pub`` and ``service``; wait for and return its ready line."""
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        out_path = self.log_dir / f"md-{self.starts}.out"
        self.err_path = self.log_dir / f"md-{self.starts}.err"
        cmd = [
            sys.executable, "-m", "bursa", "marketdata",
            "--core-pub-endpoint", self.core_ready["pub"],
            "--core-replay-endpoint", self.core_ready["replay"],
            "--pub-endpoint", pub, "--service-endpoint", service, *self.extra,
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO, env=env)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in out_path.read_text().splitlines():
                if line.startswith("{"):
                    self.ready = json.loads(line)
                    assert self.ready["ready"] is True
                    return self.ready
            if self.proc.poll() is not None:
                raise RuntimeError(f"marketdata exited:\n{self.err_path.read_text()}")
            time.sleep(0.02)
        raise TimeoutError(f"marketdata not ready:\n{self.err_path.read_text()}")

    def kill9(self) -> None:
        """SIGKILL, then reap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def cleanup(self) -> None:
        """Kill the child if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)


def core_from_journal(data_dir: Path) -> Core:
    """The core's state rebuilt read-only from its journal (the replay-derived book)."""
    storage = FileStorage(str(data_dir))
    try:
        core, _ = recover(storage, repair=False, use_snapshots=False, include_archived=True)
    finally:
        storage.close()
    assert isinstance(core, Core)
    return core
