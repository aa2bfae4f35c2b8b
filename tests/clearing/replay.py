"""Drive the in-process core with a bank flow and compare a ledger with it."""

from __future__ import annotations

import numpy as np

from clearing.db import Db
from clearing.ledger import Ledger
from clearing.rules import AVAILABLE, EXTERNAL, FEE, HELD, SYSTEM_USER
from engine.core import Core
from engine.wire.commands import CmdBatch
from tests.clearing.bankflow import ASSETS, BankFlow, setup

Frame = tuple[int, int, np.ndarray]


def run_core(
    seed: int, n_cmds: int, n_users: int = 5, per_batch: int = 7
) -> tuple[Core, list[Frame]]:
    """A core after setup + ``n_cmds`` random commands; returns (core, [(first, last,
    events)]) with one frame per batch, as the core process would publish them."""
    core = Core()
    frames: list[Frame] = []
    flow = BankFlow(seed, n_users)
    cmds = setup(n_users) + flow.commands(n_cmds)
    for i in range(0, len(cmds), per_batch):
        b = CmdBatch()
        for c in cmds[i : i + per_batch]:
            b.add(c)
        first = core.last_seq + 1
        ev, _rep = core.run(b.to_array())
        frames.append((first, int(core.last_seq), ev.copy()))
    return core, frames


def mismatches(core: Core, ledger: Ledger, n_users: int) -> list[str]:
    """Every difference between the ledger's balances and the core's."""
    out = []
    bal = ledger.balances
    for u in range(1, n_users + 1):
        for a in ASSETS:
            for acc in (0, 1):
                want = tuple(core.balance(u, a, acc))
                got = (bal.get((u, acc, AVAILABLE, a), 0), bal.get((u, acc, HELD, a), 0))
                if want != got:
                    out.append(f"user {u} asset {a} account {acc}: core {want} ledger {got}")
    assets = core.assets()
    for a in ASSETS:
        fee = bal.get((SYSTEM_USER, 0, FEE, a), 0)
        if fee != core.fee_balance(a):
            out.append(f"fee {a}: core {core.fee_balance(a)} ledger {fee}")
        ext = bal.get((SYSTEM_USER, 0, EXTERNAL, a), 0)
        net = assets[a]["deposited_minor"] - assets[a]["withdrawn_minor"]
        if ext != -net:
            out.append(f"external {a}: ledger {ext}, core -(deposits - withdrawals) {-net}")
        total = sum(v for k, v in bal.items() if k[3] == a)
        if total != 0:
            out.append(f"asset {a}: ledger sums to {total}")
    live = {(int(o["user_id"]), int(o["order_id"])): int(o["hold"]) for o in core.open_orders()}
    if live != {k: h.amount for k, h in ledger.holds.items()}:
        out.append("live order holds differ")
    return out


def db_balances(db: Db) -> dict[tuple[int, int, int, int], int]:
    """The balances table as a dict (non-zero rows)."""
    return {
        (int(r[0]), int(r[1]), int(r[2]), int(r[3])): int(r[4])
        for r in db.query("SELECT user_id, account, bucket, asset, balance FROM balances")
        if int(r[4]) != 0
    }


def concat(frames: list[Frame]) -> np.ndarray:
    """All events of the frames."""
    return np.concatenate([f[2] for f in frames])
