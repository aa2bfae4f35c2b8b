"""A seeded command stream for the real core: setup, funded users, random orders.

Used by the durability tests that run ``engine.core.Core`` through the journal,
snapshots and recovery; the commands include rejects (unknown orders, funds).
"""

from __future__ import annotations

import random

import numpy as np

from bursa_wire.layout import CMD_DTYPE
from engine.wire import commands as wc
from pyx.enums import Side

BASE, QUOTE, SYM = 1, 2, 1
N_USERS = 8


def setup() -> np.ndarray:
    """Assets, one symbol, a fee tier, users and their deposits."""
    b = wc.CmdBatch()
    b.add(wc.add_asset(BASE, 8)).add(wc.add_asset(QUOTE, 6)).add(wc.add_fee_tier(0, 1_000, 2_000))
    b.add(wc.add_symbol(SYM, BASE, QUOTE, price_multiplier=10, base_per_lot=100))
    for u in range(1, N_USERS + 1):
        b.add(wc.add_user(u))
        b.add(wc.deposit(10 * u, u, BASE, 10**9))
        b.add(wc.deposit(10 * u + 1, u, QUOTE, 10**12))
    return b.to_array()


class Flow:
    """Random orders, cancels and deposits from a seed (unsequenced batches)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_oid = 1
        self.next_ref = 10_000

    def batch(self, n: int) -> np.ndarray:
        """``n`` random commands."""
        rng = self.rng
        parts = []
        for _ in range(n):
            r = rng.random()
            user = rng.randint(1, N_USERS)
            if r < 0.7:
                side = Side.BUY if rng.random() < 0.5 else Side.SELL
                parts.append(
                    wc.new_limit(
                        self.next_oid, user, SYM, side, rng.randint(90, 110), rng.randint(1, 20)
                    )
                )
                self.next_oid += 1
            elif r < 0.95:
                parts.append(wc.cancel(rng.randint(1, self.next_oid), user, symbol_id=SYM))
            else:
                parts.append(wc.deposit(self.next_ref, user, QUOTE, rng.randint(1, 10**6)))
                self.next_ref += 1
        return np.concatenate(parts) if parts else np.zeros(0, dtype=CMD_DTYPE)
