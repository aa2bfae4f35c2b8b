"""A seeded random order flow over several symbols, for the feed tests.

Every kind of book event is exercised: limit GTC/IOC/FOK, post-only, market by
quantity and by quote, stop-limit and stop-market (triggers), cancel, reduce,
replace (same price smaller: keeps priority; price change and size up: moves,
may cross and trade), mass cancel, self-trade prevention modes, halt and resume.
User ids and order ids are large numbers in their own ranges, so a test can check
that none of them ever appears in a public message's bytes.
"""

from __future__ import annotations

import random

import numpy as np

from engine.wire import commands as wc
from pyx.enums import OrdType, Side, Tif

BASE, QUOTE = 1, 2
SYMBOLS = (1, 2)
USER0 = 12_345_601  # user ids: USER0 .. USER0 + N_USERS - 1 (core range 1..2**24-1)
N_USERS = 6
OID0 = 700_000_000_001  # order ids start here (per-user ids are < 2**40)


def setup() -> np.ndarray:
    """Assets, symbols, a fee tier, users, deposits."""
    b = wc.CmdBatch()
    b.add(wc.add_asset(BASE, 8)).add(wc.add_asset(QUOTE, 6)).add(wc.add_fee_tier(0, 1_000, 2_000))
    for s in SYMBOLS:
        b.add(
            wc.add_symbol(
                s, BASE, QUOTE, price_multiplier=10, base_per_lot=100, protection_ticks=50
            )
        )
    for i in range(N_USERS):
        u = USER0 + i
        b.add(wc.add_user(u))
        b.add(wc.deposit(10 * i + 1, u, BASE, 10**13))
        b.add(wc.deposit(10 * i + 2, u, QUOTE, 10**15))
    return b.to_array()


class Flow:
    """Random commands from a seed; remembers the orders it sent, by (user, id)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_oid = OID0
        self.sent: list[tuple[int, int, int]] = []  # (user, order_id, symbol)

    def user_ids(self) -> list[int]:
        """Every user id the flow uses."""
        return [USER0 + i for i in range(N_USERS)]

    def _known(self) -> tuple[int, int, int]:
        return self.rng.choice(self.sent[-40:]) if self.sent else (USER0, OID0, SYMBOLS[0])

    def one(self) -> np.ndarray:
        """One random command."""
        rng = self.rng
        r = rng.random()
        user = USER0 + rng.randrange(N_USERS)
        sym = rng.choice(SYMBOLS)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        px = rng.randint(95, 105) + (0 if side == Side.BUY else 2)
        qty = rng.randint(1, 12)
        stp = rng.choice((0, 0, 0, 1, 2, 3, 4))
        oid = self.next_oid
        if r < 0.45:
            tif = rng.choice((Tif.GTC, Tif.GTC, Tif.GTC, Tif.IOC, Tif.FOK))
            post = tif == Tif.GTC and rng.random() < 0.1
            rec = wc.new_limit(oid, user, sym, side, px, qty, tif=tif, stp=stp, post_only=post)
        elif r < 0.50:
            rec = wc.new_market(oid, user, sym, side, qty, stp=stp)
        elif r < 0.52:
            rec = wc.new_market_quote(oid, user, sym, rng.randint(1_000, 50_000), stp=stp)
        elif r < 0.57:
            ot = rng.choice((OrdType.STOP_LIMIT, OrdType.STOP_MARKET))
            stop = rng.randint(97, 106)
            limit = stop + (2 if side == Side.BUY else -2) if ot == OrdType.STOP_LIMIT else 0
            rec = wc.new_stop(oid, user, sym, side, ot, stop, qty, price_ticks=limit, stp=stp)
        elif r < 0.72:
            u, o, s = self._known()
            return wc.cancel(o, u, symbol_id=s)
        elif r < 0.78:
            u, o, s = self._known()
            return wc.reduce(o, u, rng.randint(0, 8), symbol_id=s)
        elif r < 0.93:
            u, o, s = self._known()
            return wc.replace(o, u, rng.randint(95, 107), rng.randint(1, 14), symbol_id=s)
        elif r < 0.95:
            return wc.mass_cancel(user, symbol_id=rng.choice((0, sym)), side=rng.choice((0, 1, 2)))
        elif r < 0.953:
            return wc.halt_symbol(sym)
        else:
            return wc.resume_symbol(sym)
        self.sent.append((user, oid, sym))
        self.next_oid += 1
        return rec

    def batch(self, n: int) -> np.ndarray:
        """``n`` random commands (unsequenced)."""
        return np.concatenate([self.one() for _ in range(n)])
