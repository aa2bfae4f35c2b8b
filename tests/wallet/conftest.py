"""Fixtures of the wallet tests: a real core process with assets and users, test xpubs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from embit import bip32, bip39

from bindings.client import CoreClient
from tests.e2e.coreproc import CoreProcess, running_core
from wallet.corelink import CoreFunding

MNEMONIC = "abandon " * 11 + "about"
SEED = bip39.mnemonic_to_seed(MNEMONIC)
ROOT = bip32.HDKey.from_seed(SEED)
# Account xpubs (the wallet host sees only these); tests keep the root to sign.
XPUB_BIP84 = ROOT.derive("m/84h/1h/0h").to_public().to_base58()
XPUB_BIP44_ETH = ROOT.derive("m/44h/60h/0h").to_public().to_base58()
ASSETS = (1, 2, 3)
USERS = tuple(range(1, 11))


class CoreHandle:
    """A running core with its endpoints, an admin client and the wallet's funding link."""

    def __init__(self, proc: CoreProcess) -> None:
        self.proc = proc
        self.ready: dict[str, Any] = proc.ready
        self.fund_ep = str(self.ready["fund"])
        self.admin_ep = str(self.ready["admin"])
        self.admin = CoreClient(self.admin_ep)
        self.funding = CoreFunding(self.fund_ep, self.admin_ep)

    def balance(self, user: int, asset: int, account: int = 1) -> tuple[int, int]:
        """(available, held)."""
        b = self.admin.control("balance", user_id=user, asset_id=asset, account=account)["balance"]
        return int(b[0]), int(b[1])

    def conservation_ok(self) -> bool:
        """The core's conservation check."""
        ans = self.admin.control("conservation")
        return bool(ans["ok"]) and not ans.get("errors")

    def close(self) -> None:
        """Close the clients."""
        self.admin.close()
        self.funding.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One private PostgreSQL server for the session (tests/wallet/nodes.py)."""
    from tests.wallet.nodes import Postgres

    srv = Postgres()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: Any, tmp_path: Any) -> str:
    """The wallet database URL: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "w.db")
    import uuid

    import psycopg

    srv = request.getfixturevalue("pg_server")
    name = f"wallet_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(srv.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{srv.url.rsplit('/', 1)[0]}/{name}"


@pytest.fixture
def core(tmp_path) -> Iterator[CoreHandle]:
    """A fresh core with assets 1..3 and users 1..10 (fee tier 0)."""
    with running_core(tmp_path, data="core", logs="corelogs") as proc:
        h = CoreHandle(proc)
        for a in ASSETS:
            assert h.admin.add_asset(a, 8)["status"] == 1
        assert h.admin.add_fee_tier(0, 0, 0)["status"] == 1
        for u in USERS:
            assert h.admin.add_user(u, 0)["status"] == 1
        yield h
        h.close()
