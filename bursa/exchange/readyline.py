"""Starting a `python -m bursa ...` child: its environment, and waiting for its ready line.

Every bursa process prints ONE JSON line ``{"ready": true, ...endpoints...}`` on stdout
once it serves.  Its starters (the supervisor's :class:`bursa.exchange.children.Child`,
``make run``'s :class:`bursa.run.CoreChild`, the tests' ``tests.childproc``) send stdout
to a file, so a child never blocks on a full pipe, and poll that file.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: How often the stdout file is read while waiting (a cold start takes ~1 s).
POLL_S = 0.02


class NotReadyError(RuntimeError):
    """No ready line: the child exited first (``exit_status``), printed another JSON line
    first, or took longer than the timeout (``exit_status`` None for both)."""

    def __init__(self, why: str, exit_status: int | None = None) -> None:
        super().__init__(why)
        self.exit_status = exit_status


def child_env(**extra: str) -> dict[str, str]:
    """This environment with the repository first on ``PYTHONPATH`` (so ``-m bursa``
    finds this checkout from any working directory) and ``extra`` set."""
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), **extra)


def wait_ready_line(
    proc: subprocess.Popen[bytes], out_path: Path, timeout_s: float, poll_s: float = POLL_S
) -> dict[str, Any]:
    """The child's ready line (a dict), read from its stdout file ``out_path``.

    Raises
    ------
    NotReadyError
        The first JSON line is not ``"ready": true``, the child exited before printing
        one, or none came within ``timeout_s``.  The child is left as it is.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in out_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                ready: dict[str, Any] = json.loads(line)
                if ready.get("ready") is not True:
                    raise NotReadyError(f"unexpected first line {line!r}")
                return ready
        if proc.poll() is not None:
            raise NotReadyError(
                f"exited with status {proc.returncode} before ready", proc.returncode
            )
        time.sleep(poll_s)
    raise NotReadyError(f"not ready within {timeout_s} s")
