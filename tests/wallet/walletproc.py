"""Run the real `bursa wallet` process in tests (config file, ready line, kill -9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.coreproc import REPO
from wallet.config import ChainConfig

READY_TIMEOUT_S = 60.0


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | str):
        return json.dumps(v)
    raise TypeError(v)


def write_config(
    path: Path, db: Path, fund: str, admin: str, chains: list[ChainConfig], **top: Any
) -> Path:
    """A wallet TOML config for ``chains``."""
    lines = [
        "[wallet]",
        f"db = {json.dumps(str(db))}",
        f"core_fund_endpoint = {json.dumps(fund)}",
        f"core_admin_endpoint = {json.dumps(admin)}",
        "poll_ms = 50",
    ]
    lines += [f"{k} = {toml_value(v)}" for k, v in top.items()]
    for c in chains:
        lines.append(f"[wallet.chains.{c.name}]")
        for k, v in vars(c).items():
            if k in ("name", "assets"):
                continue
            lines.append(f"{k} = {toml_value(v)}")
        assets = ", ".join(
            "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in vars(a).items()) + "}"
            for a in c.assets
        )
        lines.append(f"assets = [{assets}]")
    path.write_text("\n".join(lines) + "\n")
    return path


def bursa_wallet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a `bursa wallet` subcommand to completion."""
    return subprocess.run(
        [sys.executable, "-m", "bursa", "wallet", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=timeout,
        check=False,
    )


class WalletProcess:
    """One `bursa wallet run` child; logs in ``log_dir``."""

    def __init__(self, config: Path, log_dir: Path) -> None:
        self.config = config
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, wait: bool = True) -> None:
        """Start; wait for the ready line unless ``wait`` is false."""
        self.starts += 1
        self.out = self.log_dir / f"wallet-{self.starts}.out"
        self.err = self.log_dir / f"wallet-{self.starts}.err"
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bursa", "wallet", "run", "--config", str(self.config)],
                stdout=o,
                stderr=e,
                cwd=REPO,
                env=dict(os.environ, PYTHONPATH=str(REPO)),
            )
        if wait:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while '"ready"' not in self.out.read_text():
                if self.proc.poll() is not None:
                    return  # died (a fault-injection kill may come before we look)
                assert time.monotonic() < deadline, self.err.read_text()
                time.sleep(0.02)

    def wait_exit(self, timeout: float = 60) -> int:
        """Wait for the process to end; its return code."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill9(self) -> None:
        """SIGKILL and reap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def cleanup(self) -> None:
        """Kill if still running."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()
