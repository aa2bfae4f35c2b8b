"""Run the real `bursa core` process for end-to-end tests (start, ready, kill -9, stop)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bindings.client import RoutedClient

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "tcp://127.0.0.1:*"
# How long a core may take to recover and bind (a cold start imports numpy/zmq).
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class CoreProcess:
    """One `python -m bursa core` child on free loopback ports.

    Its stdout (the ready line) and stderr (logs) go to files in ``log_dir`` so
    the child never blocks on a full pipe.
    """

    def __init__(self, data_dir: Path, log_dir: Path, mode: str = "fsync", *extra: str) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.mode = mode
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.starts = 0

    def start(self) -> dict[str, Any]:
        """Start the core and wait for its ready line; returns it."""
        self.start_nowait()
        self.ready = self._wait_ready()
        return self.ready

    def start_nowait(self) -> None:
        """Start the core without waiting for it to be ready."""
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        self.out_path = self.log_dir / f"core-{self.starts}.out"
        self.err_path = self.log_dir / f"core-{self.starts}.err"
        cmd = [
            sys.executable,
            "-m",
            "bursa",
            "core",
            "--data-dir",
            str(self.data_dir),
            "--trade-endpoint",
            LOOPBACK,
            "--fund-endpoint",
            LOOPBACK,
            "--admin-endpoint",
            LOOPBACK,
            "--pub-endpoint",
            LOOPBACK,
            "--replay-endpoint",
            LOOPBACK,
            "--mode",
            self.mode,
            *self.extra,
        ]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO, env=env)

    def _wait_ready(self) -> dict[str, Any]:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.out_path.read_text()
            for line in text.splitlines():
                if line.startswith("{"):
                    ready: dict[str, Any] = json.loads(line)
                    assert ready["ready"] is True
                    return ready
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"core exited with {self.proc.returncode}:\n{self.err_path.read_text()}"
                )
            time.sleep(0.02)
        raise TimeoutError(f"core not ready in {READY_TIMEOUT_S}s:\n{self.err_path.read_text()}")

    @property
    def trade(self) -> str:
        """Bound order-entry endpoint (NEW, CANCEL, REDUCE, REPLACE, MASS_CANCEL)."""
        return str(self.ready["trade"])

    @property
    def fund(self) -> str:
        """Bound funding endpoint (DEPOSIT, WITHDRAW_*, TRANSFER)."""
        return str(self.ready["fund"])

    @property
    def admin(self) -> str:
        """Bound admin endpoint (configuration commands and every state query)."""
        return str(self.ready["admin"])

    def client(self) -> RoutedClient:
        """A client sending each command to its socket (the caller closes it)."""
        return RoutedClient.from_ready(self.ready)

    @property
    def pub(self) -> str:
        """Bound PUB endpoint."""
        return str(self.ready["pub"])

    @property
    def replay(self) -> str:
        """Bound replay endpoint."""
        return str(self.ready["replay"])

    def kill9(self) -> None:
        """SIGKILL, then reap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int:
        """SIGTERM (graceful: snapshot then exit) and wait; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def cleanup(self) -> None:
        """Kill the child if it still runs (test teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)


def run_replay(data_dir: Path) -> str:
    """`bursa replay <dir>` as a subprocess; returns the state hash it prints (hex)."""
    out = subprocess.run(
        [sys.executable, "-m", "bursa", "replay", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return parse_state_hash(out.stdout)


def parse_state_hash(text: str) -> str:
    """The hex state hash in `bursa replay` output (a JSON line or ``state_hash <hex>``)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            obj = json.loads(line)
            if "state_hash" in obj:
                return str(obj["state_hash"])
        for tok in line.replace("=", " ").replace(":", " ").split():
            if len(tok) >= 32 and all(ch in "0123456789abcdef" for ch in tok):
                return tok
    raise AssertionError(f"no state hash in replay output:\n{text}")
