"""Run `bursa clearing run` as a child process for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clearing.db import Db

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0


class ClearingChild:
    """One `python -m bursa clearing run` child; logs in ``log_dir``."""

    def __init__(self, db_url: str, pub: str, replay: str, log_dir: Path, *extra: str) -> None:
        self.db_url = db_url
        self.pub = pub
        self.replay = replay
        self.log_dir = log_dir
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.ready: dict[str, Any] = {}

    def start(self, wait: bool = True) -> None:
        """Start the child (and wait for its ready line)."""
        self.starts += 1
        self.out = self.log_dir / f"clearing-{self.starts}.out"
        self.err = self.log_dir / f"clearing-{self.starts}.err"
        cmd = [sys.executable, "-m", "bursa", "clearing", "run", "--db", self.db_url,
               "--core-pub-endpoint", self.pub, "--core-replay-endpoint", self.replay,
               "--flush-ms", "20", *self.extra]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env.pop("BURSA_CLEARING_DB", None)
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO, env=env)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> dict[str, Any]:
        """The ready line (raises if the child exits first)."""
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in self.out.read_text().splitlines():
                if line.startswith("{"):
                    self.ready = json.loads(line)
                    return self.ready
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"clearing exited {self.proc.returncode}:\n{self.err.read_text()}"
                )
            time.sleep(0.02)
        raise TimeoutError("clearing not ready")

    def kill9(self) -> None:
        """SIGKILL and reap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def cleanup(self) -> None:
        """Kill the child if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def wait_ledger_at(db_url: str, seq: int, timeout_s: float = 60.0) -> int:
    """Wait until the ledger's last_seq reaches ``seq``; returns it."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        try:
            with Db(db_url) as db:
                rows = db.query("SELECT last_seq FROM clearing_state WHERE id = 1")
                last = int(rows[0][0]) if rows else -1
        except Exception:
            last = -1
        if last >= seq:
            return last
        time.sleep(0.05)
    raise TimeoutError(f"ledger at {last}, wanted {seq}")
