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

import numpy as np

from bindings.client import CoreClient
from engine.core import Core
from engine.recovery import recover
from engine.storage import FileStorage
from engine.wire.roles import ROLES, role_of

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


def core_endpoints(ready: dict[str, Any]) -> dict[str, str]:
    """The core's trade / fund / admin endpoints."""
    return {k: str(ready[k]) for k in ROLES}


def route(kind: int) -> str:
    """Which core socket takes a command kind."""
    return role_of(kind)


class CoreSender:
    """Sends commands to the right core socket, in order, waiting for each run's replies."""

    def __init__(self, ready: dict[str, Any]) -> None:
        self.clients = {name: CoreClient(ep) for name, ep in core_endpoints(ready).items()}

    def send(self, cmds: np.ndarray) -> None:
        """Send ``cmds`` in runs of the same socket; waits for every reply."""
        routes = [route(int(k)) for k in cmds["kind"]]
        i = 0
        while i < len(cmds):
            j = i
            while j < len(cmds) and routes[j] == routes[i]:
                j += 1
            self.clients[routes[i]].submit(cmds[i:j])
            i = j

    def last_seq(self) -> int:
        """The core's last sequence number (ping)."""
        return int(self.clients["admin"].control("ping")["last_seq"])

    def close(self) -> None:
        """Close every socket."""
        for c in self.clients.values():
            c.close()


def core_from_journal(data_dir: Path) -> Core:
    """The core's state rebuilt read-only from its journal (the replay-derived book)."""
    storage = FileStorage(str(data_dir))
    try:
        core, _ = recover(storage, repair=False, use_snapshots=False, include_archived=True)
    finally:
        storage.close()
    assert isinstance(core, Core)
    return core
