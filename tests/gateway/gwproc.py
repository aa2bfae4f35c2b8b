"""Run the real `bursa gateway` process in tests, against a real core, with keys."""

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
from gateway import keys
from tests.e2e.coreproc import REPO, CoreProcess

READY_TIMEOUT_S = 60.0
BASE, QUOTE, SYMBOL = 1, 2, 1
MAKER_PPM, TAKER_PPM = 1000, 2000


class GatewayProcess:
    """One `python -m bursa gateway` child on a free loopback port."""

    def __init__(
        self,
        core: CoreProcess,
        db: Path,
        log_dir: Path,
        *extra: str,
        prefix: tuple[str, ...] = (),
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        self.core = core
        self.prefix = list(prefix)  # e.g. valgrind in front of the interpreter
        self.ready_timeout_s = ready_timeout_s
        self.db = db
        self.log_dir = log_dir
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.starts = 0
        self.port = 0

    def start(self, port: int | None = None) -> dict[str, Any]:
        """Start (on ``port``, or the previous port, or a free one) and wait for ready."""
        self.starts += 1
        out = self.log_dir / f"gw-{self.starts}.out"
        err = self.log_dir / f"gw-{self.starts}.err"
        r = self.core.ready
        cmd = [
            *self.prefix, sys.executable, "-m", "bursa", "gateway",
            "--port", str(port if port is not None else self.port),
            "--db-path", str(self.db),
            "--core-trade-endpoint", str(r["trade"]),
            "--core-admin-endpoint", str(r["admin"]),
            "--core-pub-endpoint", str(r["pub"]),
            "--core-replay-endpoint", str(r["replay"]),
            *self.extra,
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(out, "wb") as o, open(err, "wb") as e:
            self.proc = subprocess.Popen(cmd, stdout=o, stderr=e, cwd=REPO, env=env)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            for line in out.read_text().splitlines():
                if line.startswith("{"):
                    self.ready = json.loads(line)
                    self.port = int(self.ready["port"])
                    return self.ready
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}:\n{err.read_text()}")
            time.sleep(0.02)
        raise TimeoutError(f"gateway not ready:\n{err.read_text()}")

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
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stderr(self) -> str:
        """The latest run's log."""
        return (self.log_dir / f"gw-{self.starts}.err").read_text()


def setup_market(core: CoreProcess, users: tuple[int, ...] = (1, 2), funds: int = 10**12) -> None:
    """Assets 1 (base) and 2 (quote), fee tier 0, symbol 1, funded users."""
    r = core.ready
    with CoreClient(str(r["admin"])) as adm:
        adm.add_asset(BASE)
        adm.add_asset(QUOTE)
        adm.add_fee_tier(0, MAKER_PPM, TAKER_PPM)
        adm.add_symbol(SYMBOL, BASE, QUOTE)
        for u in users:
            adm.add_user(u)
    with CoreClient(str(r["fund"])) as fund:
        for u in users:
            fund.deposit(u * 10 + 1, u, BASE, funds)
            fund.deposit(u * 10 + 2, u, QUOTE, funds)


def make_key(
    db: Path, out: Path, user_id: int, perm: str = "trade", ips: tuple[str, ...] = ()
) -> Path:
    """Create an API key for ``user_id`` in the gateway's database; returns its key file."""
    store = keys.KeyStore(keys.connect(db))
    key, priv = store.create(user_id, perm, ips)
    keys.write_key_file(out, key, priv)
    store.con.close()
    return out
