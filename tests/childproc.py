"""A real `python -m bursa <command>` child process in tests: start it, wait for its JSON
ready line, kill -9 it, stop it, read its log.

Every bursa process prints ONE JSON line ``{"ready": true, ...}`` on stdout once it
serves; the per-process helpers (``tests/e2e/coreproc.py``, ``tests/gateway/gwproc.py``,
``tests/api/apiproc.py``, ...) subclass :class:`ChildProcess` and only build the command
line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bursa.exchange.readyline import NotReadyError, wait_ready_line

REPO = Path(__file__).resolve().parents[1]
# How long a child may take to bind and print its ready line (a cold start imports
# numpy/zmq, a core recovers its journal first) on a loaded machine.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
POLL_S = 0.02


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a child that must keep
    its address across restarts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bursa_env(**extra: str) -> dict[str, str]:
    """This environment with the repository on ``PYTHONPATH`` (and ``extra`` set)."""
    return dict(os.environ, PYTHONPATH=str(REPO), **extra)


class ChildProcess:
    """One `python -m bursa ...` child whose stdout's first JSON line is its ready line.

    Its stdout (the ready line) and stderr (logs) go to ``<prefix>-<n>.out`` and
    ``<prefix>-<n>.err`` in ``log_dir`` (``n`` counts the starts, so each run keeps its
    own log) and the child never blocks on a full pipe.
    """

    def __init__(self, name: str, prefix: str, log_dir: Path) -> None:
        self.name = name
        self.prefix = prefix
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.starts = 0
        self.out_path = log_dir / f"{prefix}-0.out"
        self.err_path = log_dir / f"{prefix}-0.err"
        # Words in front of the interpreter (e.g. valgrind for bench.e2e --callgrind).
        self.launcher: list[str] = []

    def spawn(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """Start ``python -m bursa *args`` (from the repository) with fresh log files;
        does not wait."""
        self.starts += 1
        self.out_path = self.log_dir / f"{self.prefix}-{self.starts}.out"
        self.err_path = self.log_dir / f"{self.prefix}-{self.starts}.err"
        cmd = [*self.launcher, sys.executable, "-m", "bursa", *args]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=err, cwd=REPO, env=dict(env or bursa_env())
            )

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Wait for the ready line, keep it in ``self.ready`` and return it; raises
        ``RuntimeError`` (with the log) if the child exits first, ``TimeoutError`` if it
        takes longer than ``timeout_s``."""
        assert self.proc is not None
        try:
            self.ready = wait_ready_line(self.proc, self.out_path, timeout_s, poll_s=POLL_S)
        except NotReadyError as e:
            if e.exit_status is not None:
                raise RuntimeError(f"{self.name} {e}:\n{self.stderr()}") from e
            raise TimeoutError(f"{self.name} {e}:\n{self.stderr()}") from e
        return self.ready

    def running(self) -> bool:
        """Whether the child has been started and has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL, then reap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int:
        """SIGTERM (graceful) and wait; returns the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def cleanup(self) -> None:
        """Kill the child if it still runs (test teardown)."""
        if self.running():
            self.kill9()

    def stderr(self) -> str:
        """The latest run's log."""
        return self.err_path.read_text()
