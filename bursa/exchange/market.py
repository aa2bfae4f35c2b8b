"""The demo market `bursa run` creates on its first start (never again after).

BTC/USDT with the units of the scripted tour (bursa/run.py): prices in 0.01 USDT on a
tick grid of 10, sizes in lots of 0.0001 BTC.  A market maker (user 1) and takers
(users 2..4) get deposits through the core's fund socket; deposits carry fixed
external references, so sending the setup twice credits once.  Each demo user gets a
trade API key in the gateway's database (:func:`api_keys`), its private key in a file
of mode 0600 under the data directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bindings.client import RoutedClient
from bursa import run as tour
from engine.wire import commands
from engine.wire.frames import STATUS_APPLIED, STATUS_DUPLICATE
from gateway import keys
from pyx.enums import CmdKind

MAKER = 1
TAKERS = (2, 3, 4)
USERS = {MAKER: 1, **{t: 0 for t in TAKERS}}  # user id -> fee tier
DEPOSITS = {tour.BTC: 100 * 10**tour.BTC_DECIMALS, tour.USDT: 10_000_000 * 10**tour.USDT_DECIMALS}
DEPOSIT_REF_BASE = 1_000


class SetupError(RuntimeError):
    """A deposit of the demo setup was not applied."""


def setup_commands() -> list[Any]:
    """Assets, symbol, fee tiers, users (admin socket), then deposits (fund socket)."""
    cmds: list[Any] = [commands.add_asset(a, d) for a, d in tour.ASSET_DECIMALS.items()]
    cmds.append(
        commands.add_symbol(
            tour.SYMBOL_ID,
            tour.BTC,
            tour.USDT,
            tick_step=tour.TICK_STEP,
            lot_step=1,
            price_multiplier=tour.PRICE_MULTIPLIER,
            base_per_lot=tour.BASE_PER_LOT,
            min_qty_lots=1,
            max_qty_lots=tour.MAX_QTY_LOTS,
            min_price_ticks=tour.MIN_PRICE_TICKS,
            max_price_ticks=tour.MAX_PRICE_TICKS,
            protection_ticks=tour.PROTECTION_TICKS,
        )
    )
    cmds += [commands.add_fee_tier(t, m, k) for t, (_, m, k) in tour.FEE_TIERS.items()]
    cmds += [commands.add_user(u, tier) for u, tier in USERS.items()]
    ref = DEPOSIT_REF_BASE
    for u in USERS:
        for asset, amount in DEPOSITS.items():
            ref += 1
            cmds.append(commands.deposit(ref, u, asset, amount))
    return cmds


def create(ready: dict[str, Any]) -> int:
    """Send the setup to a running core; returns its last seq.

    Admin commands rejected because they already exist (a setup cut short and sent
    again) are fine; a deposit must be applied or a duplicate of one applied before.
    """
    client = RoutedClient.from_ready(ready)
    try:
        last = 0
        for cmd in setup_commands():
            rep = client.request(cmd)
            last = max(last, int(np.max(rep["seq"])))
            if cmd["kind"][0] == CmdKind.DEPOSIT and int(rep["status"][0]) not in (
                STATUS_APPLIED,
                STATUS_DUPLICATE,
            ):
                raise SetupError(f"deposit not applied: reason {int(rep['reason'][0])}")
        return last
    finally:
        client.close()


def key_file(key_dir: Path, user_id: int) -> Path:
    """Where the private API key of demo user ``user_id`` lives."""
    return key_dir / f"user-{user_id}.key"


def api_keys(db: Path, key_dir: Path) -> dict[int, Path]:
    """A trade key per demo user in the gateway's database ``db``, created once.

    A user whose key file exists keeps it (restarts); the files are written with mode
    0600 (:func:`gateway.keys.write_key_file`) in ``key_dir`` (mode 0700).
    """
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db.parent.mkdir(parents=True, exist_ok=True)
    out = {u: key_file(key_dir, u) for u in USERS}
    missing = [u for u, f in out.items() if not f.exists()]
    if missing:
        store = keys.KeyStore(keys.connect(db))
        try:
            for u in missing:
                key, private = store.create(u, keys.PERM_TRADE, ())
                keys.write_key_file(out[u], key, private)
        finally:
            store.con.close()
    return out
