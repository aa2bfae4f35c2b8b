"""Run the real `bursa api` process in tests against a real core, with a BTC/USDT market.

Units of the test market (symbol 1, ``BTCUSDT``): BTC has 8 decimals, USDT 6; one lot
is 0.001 BTC (``base_per_lot`` 100,000), one tick 0.01 USDT (``price_multiplier`` 10
quote minor units per tick x lot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bindings.client import CoreClient
from gateway import keys
from tests.childproc import READY_TIMEOUT_S, ChildProcess
from tests.e2e.coreproc import CoreProcess

BTC, USDT, SYMBOL = 1, 2, 1
CONFIG = """
[api]
assets = {1 = "BTC", 2 = "USDT"}
"""


class ApiProcess(ChildProcess):
    """One `python -m bursa api` child on a free loopback port (no market data)."""

    def __init__(self, core: CoreProcess, data: Path, log_dir: Path, *extra: str) -> None:
        super().__init__("api", "api", log_dir)
        self.core = core
        self.data = data
        self.extra = list(extra)
        self.port = 0
        self.ready_timeout_s = READY_TIMEOUT_S  # longer under valgrind (bench.api --callgrind)
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
        self.spawn(
            [
                "api", "--config", str(self.data / "api.toml"), "--port", str(self.port),
                "--db-path", str(self.data / "api.db"), "--keys-db", str(self.keys_db),
                "--marketdata", "false",
                "--core-trade-endpoint", self.core.trade_link,
                "--core-pub-endpoint", self.core.events_link,
                *self.core.flags("admin", "replay"), *self.extra,
            ]
        )  # fmt: skip
        self.wait_ready(self.ready_timeout_s)
        self.port = int(self.ready["port"])
        return self.ready

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
