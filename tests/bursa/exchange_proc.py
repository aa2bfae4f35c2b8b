"""Start `bursa run` as a real subprocess in tests and talk to what it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bindings.client import CoreClient

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 90
WAIT_S = 120

TEST_CONFIG = """
[run]
summary_every_s = 1
backoff_initial_ms = 200
backoff_max_ms = 2000
metrics_port = 0

[chain]
block_ms = 500
deposit_every_s = 0

[traders]
cycles_per_s = 20
"""


class Exchange:
    """One `bursa run` subprocess; stdout to a file (the ready line, the summaries)."""

    def __init__(self, tmp: Path, *extra: str) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        cfg = tmp / "bursa.toml"
        if not cfg.exists():
            cfg.write_text(TEST_CONFIG)
        n = len(list(tmp.glob("run-*.out"))) + 1
        self.out_path = tmp / f"run-{n}.out"
        argv = [sys.executable, "-m", "bursa", "run", "--config", str(cfg)]
        argv += ["--data-dir", str(self.data_dir), *extra]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        self.ready = self._wait_ready()

    def output(self) -> str:
        """Everything printed so far."""
        return self.out_path.read_text(errors="replace")

    def _wait_ready(self) -> dict[str, Any]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if line.startswith('{"ready"'):
                    ready: dict[str, Any] = json.loads(line)
                    return ready
            if self.proc.poll() is not None:
                raise AssertionError(f"bursa run exited {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"bursa run not ready:\n{self.output()}")

    def wait_for(self, text: str, count: int = 1) -> None:
        """Until ``text`` appears ``count`` times in the output."""
        deadline = time.monotonic() + WAIT_S
        while self.output().count(text) < count:
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()}"
            time.sleep(0.2)

    def core(self) -> CoreClient:
        """An admin client of the core."""
        return CoreClient(str(self.ready["children"]["core"]["admin"]))

    def core_seq(self) -> int:
        """The core's last seq now."""
        with self.core() as c:
            return int(c.control("status")["last_seq"])

    def wait_seq(self, seq: int) -> int:
        """Until the core's seq passes ``seq`` (traders at work); returns it."""
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                now = self.core_seq()
            except TimeoutError:
                now = 0
            if now > seq:
                return now
            assert time.monotonic() < deadline, f"core seq stuck at {now}:\n{self.output()}"
            time.sleep(0.3)

    def reconcile(self) -> subprocess.CompletedProcess[str]:
        """`bursa reconcile` of the ledger against the running core."""
        db = f"sqlite:///{self.data_dir / 'clearing' / 'ledger.db'}"
        admin = str(self.ready["children"]["core"]["admin"])
        argv = [sys.executable, "-m", "bursa", "reconcile", "--db", db]
        argv += ["--core-admin-endpoint", admin]
        return subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=STOP_TIMEOUT_S
        )

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Signal the supervisor and wait for its exit status."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def kill(self) -> None:
        """The error path: SIGKILL the supervisor (its children get SIGTERM from the kernel)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
