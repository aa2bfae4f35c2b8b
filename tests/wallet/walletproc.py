"""Run the real `bursa wallet` process in tests (config file, ready line, kill -9)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.childproc import REPO, ChildProcess, bursa_env
from wallet.config import ChainConfig
from wallet.store import Store


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
        env=bursa_env(),
        timeout=timeout,
        check=False,
    )


def cli(conf: Path, *args: str) -> list[dict[str, Any]]:
    """A `bursa wallet` operator command with config ``conf`` that must succeed; the JSON
    lines it prints."""
    r = bursa_wallet(*args, "--config", str(conf))
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def state_of(db: Path, ref: str) -> str:
    """The state of the withdrawal with client reference ``ref`` in the wallet database
    (``""`` if there is none)."""
    st = Store(str(db))
    try:
        row = st.db.execute("SELECT state FROM withdrawals WHERE client_ref = ?", (ref,)).fetchone()
        return "" if row is None else str(row[0])
    finally:
        st.close()


class WalletProcess(ChildProcess):
    """One `bursa wallet run` child; logs in ``log_dir``."""

    def __init__(self, config: Path, log_dir: Path) -> None:
        super().__init__("wallet", "wallet", log_dir)
        self.config = config

    def start(self, wait: bool = True) -> None:
        """Start; wait for the ready line unless ``wait`` is false."""
        self.spawn(["wallet", "run", "--config", str(self.config)])
        if wait:
            # A process that dies first is left to the caller (a fault-injection kill may
            # come before the ready line is read).
            with contextlib.suppress(RuntimeError):
                self.wait_ready()

    def wait_exit(self, timeout: float = 60) -> int:
        """Wait for the process to end; its return code."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)
