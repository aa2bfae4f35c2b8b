"""`bursa wallet demo`: the deposit flow on the simulated chain, in one process.

A seeded simulated chain and the real deterministic core (in process) show:
deposit addresses, confirmations counting up to the credit, a deposit below the
minimum, a reorg below the threshold (the deposit is orphaned, never credited) and
one above it (an incident: the amount held in the core, the chain halted, then an
operator settles and resumes). Prints one JSON line per stage.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from embit import bip32

from engine.core import Core
from engine.wire import commands
from wallet.config import AssetConfig, ChainConfig
from wallet.corelink import InProcessCore
from wallet.scanner import ChainRuntime, Wallet
from wallet.simchain import SimChain
from wallet.store import Store

BTC = 1
# A demo-only key: the wallet itself only ever sees the account xpub below.
DEMO_ROOT = bip32.HDKey.from_seed(bytes(range(32)))
DEMO_XPUB = DEMO_ROOT.derive("m/84h/1h/0h").to_public().to_base58()


def _say(stage: str, **kw: Any) -> None:
    print(json.dumps({"stage": stage, **kw}), flush=True)


def run_demo(db: Path, seed: int = 1) -> dict[str, int]:
    """Run the demo against a fresh database; returns the final core balance of user 1."""
    core = Core()
    for c in (commands.add_asset(BTC, 8), commands.add_fee_tier(0, 0, 0)):
        core.run(c)
    for u in (1, 2):
        core.run(commands.add_user(u, 0))
    sim = SimChain(seed=seed)
    cfg = ChainConfig(
        name="sbtc",
        kind="sim-rpc",
        network="btc-regtest",
        xpub=DEMO_XPUB,
        assets=(AssetConfig(BTC, min_deposit=10_000),),
        credit_confirmations=3,
        pool_size=4,
    )
    w = Wallet(Store(str(db)), [ChainRuntime(cfg, sim)], InProcessCore(core))
    a1, a2 = w.deposit_address("sbtc", 1), w.deposit_address("sbtc", 2)
    _say("addresses", user1=a1, user2=a2)

    def mine(n: int) -> None:
        for _ in range(n):
            sim.mine()
            w.step_all()

    sim.send([(a1, 150_000), (a2, 500)])
    for _ in range(3):
        mine(1)
        _say(
            "block",
            height=sim.tip().height,
            user1=[h["display"] for h in w.history(1)],
            user2=[f"{h['status']}: {h['reason']}" for h in w.history(2)],
        )
    _say("balance", user1=core.balance(1, BTC, 1))
    sim.send([(a1, 70_000)])
    mine(1)
    sim.reorg(1, keep=False)
    w.step_all()
    _say(
        "reorg below the threshold",
        user1=[h["display"] for h in w.history(1)],
        balance=core.balance(1, BTC, 1),
    )
    sim.send([(a1, 40_000)])
    mine(3)
    sim.reorg(4, keep=False)
    w.step_all()
    _say(
        "reorg above the threshold",
        halted=w.store.halted("sbtc"),
        user1=[h["display"] for h in w.history(1)],
        balance_available_held=core.balance(1, BTC, 1),
    )
    ref = next(d.ref for d in w.store.deposits("status = 'reversed'"))
    w.settle(ref, "commit")
    w.resume("sbtc", operator="demo")
    mine(3)
    _say(
        "settled and resumed",
        balance_available_held=core.balance(1, BTC, 1),
        conservation_errors=core.conservation_errors(),
        counters=w.store.counters(),
    )
    avail, held = core.balance(1, BTC, 1)
    w.store.close()
    return {"available": int(avail), "held": int(held)}


def main() -> int:
    """Run the demo in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        run_demo(Path(tmp) / "wallet.db")
    return 0
