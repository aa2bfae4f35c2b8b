"""Run the real `bursa api` process in tests against a real core, with a BTC/USDT market.

Units of the test market (symbol 1, ``BTCUSDT``): BTC has 8 decimals, USDT 6; one lot
is 0.001 BTC (``base_per_lot`` 100,000), one tick 0.01 USDT (``price_multiplier`` 10
quote minor units per tick x lot).
"""

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
BTC, USDT, SYMBOL = 1, 2, 1
CONFIG = """
[api]
assets = {1 = "BTC", 2 = "USDT"}
"""


class ApiProcess:
    """One `python -m bursa api` child on a free loopback port (no market data)."""

    def __init__(self, core: CoreProcess, data: Path, log_dir: Path, *extra: str) -> None:
        self.core = core
        self.data = data
        self.log_dir = log_dir
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.starts = 0
        self.port = 0
        data.mkdir(parents=True, exist_ok=True)
        (data / "api.toml").write_text(CONFIG)

    @property
    def keys_db(self) -> Path:
        """The shared key store (the gateway's database)."""
        return self.data / "gateway.db"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return str(self.ready["api"])

    def start(self) -> dict[str, Any]:
        """Start (on the previous port, or a free one) and wait for the ready line."""
        self.starts += 1
        out = self.log_dir / f"api-{self.starts}.out"
        err = self.log_dir / f"api-{self.starts}.err"
        r = self.core.ready
        cmd = [
            sys.executable, "-m", "bursa", "api", "--config", str(self.data / "api.toml"),
            "--port", str(self.port), "--db-path", str(self.data / "api.db"),
            "--keys-db", str(self.keys_db), "--marketdata", "false",
            "--core-trade-endpoint", str(r["trade"]), "--core-admin-endpoint", str(r["admin"]),
            "--core-pub-endpoint", str(r["pub"]), "--core-replay-endpoint", str(r["replay"]),
            *self.extra,
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(out, "wb") as o, open(err, "wb") as e:
            self.proc = subprocess.Popen(cmd, stdout=o, stderr=e, cwd=REPO, env=env)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in out.read_text().splitlines():
                if line.startswith("{"):
                    self.ready = json.loads(line)
                    self.port = int(self.ready["port"])
                    return self.ready
            if self.proc.poll() is not None:
                raise RuntimeError(f"api exited {self.proc.returncode}:\n{err.read_text()}")
            time.sleep(0.05)
        raise TimeoutError(f"api not ready:\n{err.read_text()}")

    def kill9(self) -> None:
        """SIGKILL and reap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait; the exit status."""
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
        return (self.log_dir / f"api-{self.starts}.err").read_text()

    def make_key(self, user_id: int, key_type: str = "hmac", perm: str = "trade") -> keys.ApiKey:
        """A key of ``user_id`` in the shared key store; (key, secret or private key)."""
        store = keys.KeyStore(keys.connect(self.keys_db))
        try:
            key, priv = store.create(user_id, perm, (), key_type)
        finally:
            store.con.close()
        self.secrets[key.api_key] = priv
        return key

    secrets: dict[str, bytes] = {}


def setup_market(core: CoreProcess, users: tuple[int, ...] = (1, 2)) -> None:
    """BTC (8 decimals), USDT (6), fee tier 0 (0.1 % maker, 0.2 % taker), BTCUSDT, and
    users funded with 10 BTC and 1,000,000 USDT each."""
    r = core.ready
    with CoreClient(str(r["admin"])) as adm:
        adm.add_asset(BTC, 8)
        adm.add_asset(USDT, 6)
        adm.add_fee_tier(0, 1000, 2000)
        adm.add_symbol(SYMBOL, BTC, USDT, base_per_lot=100_000, price_multiplier=10,
                       max_qty_lots=10**6, max_price_ticks=10**9)  # fmt: skip
        for u in users:
            adm.add_user(u)
    with CoreClient(str(r["fund"])) as fund:
        for u in users:
            fund.deposit(u * 10 + 1, u, BTC, 10 * 10**8)
            fund.deposit(u * 10 + 2, u, USDT, 10**6 * 10**6)
