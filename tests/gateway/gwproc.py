"""Run the real `bursa gateway` process in tests, against a real core, with keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bindings.client import CoreClient
from gateway import keys
from tests.childproc import READY_TIMEOUT_S, ChildProcess
from tests.e2e.coreproc import CoreProcess

BASE, QUOTE, SYMBOL = 1, 2, 1
MAKER_PPM, TAKER_PPM = 1000, 2000


class GatewayProcess(ChildProcess):
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
        super().__init__("gateway", "gw", log_dir)
        self.launcher = list(prefix)  # e.g. valgrind in front of the interpreter
        self.ready_timeout_s = ready_timeout_s
        self.core = core
        self.db = db
        self.extra = list(extra)
        self.port = 0

    def start(self, port: int | None = None) -> dict[str, Any]:
        """Start (on ``port``, or the previous port, or a free one) and wait for ready."""
        self.spawn(
            [
                "gateway", "--port", str(port if port is not None else self.port),
                "--db-path", str(self.db),
                "--core-trade-endpoint", self.core.trade_link,
                "--core-pub-endpoint", self.core.events_link,
                *self.core.flags("admin", "replay"), *self.extra,
            ]
        )  # fmt: skip
        self.wait_ready(self.ready_timeout_s)
        self.port = int(self.ready["port"])
        return self.ready


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
