"""A random exchange flow in the style of Jepsen's bank workload.

Three assets, two symbols, users trading limit/market/stop orders with cancels,
reduces, replaces and mass cancels, plus deposits (some with a reused
reference: duplicates), withdrawals held then committed or released, and
transfers between the trading and funding accounts.  Order ids are unique per
user and globally (``user * 10**6 + n``), valid under either order-id rule.
"""

from __future__ import annotations

import random

import numpy as np

from engine.wire import commands as wc
from pyx.enums import OrdType, Side, Tif

ASSETS = (1, 2, 3)  # 1 and 3 trade against 2
SYMBOLS = {1: (1, 2), 2: (3, 2)}


def setup(n_users: int) -> list[np.ndarray]:
    """Assets, symbols, one fee tier, users and their opening deposits."""
    out = [wc.add_asset(a, 6) for a in ASSETS]
    out.append(wc.add_fee_tier(0, 1_000, 2_000))
    for sid, (base, quote) in SYMBOLS.items():
        out.append(wc.add_symbol(sid, base, quote, price_multiplier=10, base_per_lot=100,
                                 protection_ticks=20))  # fmt: skip
    for u in range(1, n_users + 1):
        out.append(wc.add_user(u))
        for a in ASSETS:
            out.append(wc.deposit(u * 1000 + a, u, a, 10**8))
    return out


class BankFlow:
    """Random commands from a seed; :meth:`commands` yields CMD_DTYPE records."""

    def __init__(self, seed: int, n_users: int = 6) -> None:
        self.rng = random.Random(seed)
        self.n_users = n_users
        self.next_n = {u: 1 for u in range(1, n_users + 1)}
        self.live: dict[int, list[int]] = {u: [] for u in range(1, n_users + 1)}
        self.next_ref = 10**7
        self.used_refs: list[tuple[int, int, int, int]] = []
        self.pending_wd: list[int] = []
        self.next_wd = 1

    def _oid(self, user: int) -> int:
        n = self.next_n[user]
        self.next_n[user] = n + 1
        oid = user * 10**6 + n
        self.live[user].append(oid)
        if len(self.live[user]) > 40:
            self.live[user].pop(0)
        return oid

    def one(self) -> np.ndarray:
        """One random command."""
        rng = self.rng
        u = rng.randint(1, self.n_users)
        sid = rng.choice((1, 2))
        side = rng.choice((Side.BUY, Side.SELL))
        r = rng.random()
        if r < 0.45:
            tif = Tif.IOC if rng.random() < 0.15 else Tif.GTC
            return wc.new_limit(self._oid(u), u, sid, side, rng.randint(95, 105),
                                rng.randint(1, 30), tif=tif)  # fmt: skip
        if r < 0.52:
            return wc.new_market(self._oid(u), u, sid, side, rng.randint(1, 20))
        if r < 0.55:
            ot = rng.choice((OrdType.STOP_LIMIT, OrdType.STOP_MARKET))
            stop = rng.randint(90, 110)
            price = rng.randint(95, 105) if ot == OrdType.STOP_LIMIT else 0
            return wc.new_stop(self._oid(u), u, sid, side, ot, stop, rng.randint(1, 10),
                               price_ticks=price)  # fmt: skip
        if r < 0.66 and self.live[u]:
            return wc.cancel(rng.choice(self.live[u]), u)
        if r < 0.70 and self.live[u]:
            return wc.reduce(rng.choice(self.live[u]), u, rng.randint(1, 5))
        if r < 0.74 and self.live[u]:
            return wc.replace(rng.choice(self.live[u]), u, rng.randint(95, 105),
                              rng.randint(1, 30))  # fmt: skip
        if r < 0.75:
            return wc.mass_cancel(u)
        if r < 0.82:
            if self.used_refs and rng.random() < 0.2:
                ref, uu, a, amt = rng.choice(self.used_refs)  # a duplicate: no effect
                return wc.deposit(ref, uu, a, amt)
            self.next_ref += 1
            a = rng.choice((1, 2, 3))
            amt = rng.randint(1, 10**6)
            acc = rng.choice((0, 0, 1))
            self.used_refs.append((self.next_ref, u, a, amt))
            return wc.deposit(self.next_ref, u, a, amt, account=acc)
        if r < 0.88:
            self.next_wd += 1
            self.pending_wd.append(self.next_wd)
            return wc.withdraw_hold(self.next_wd, u, rng.choice((1, 2, 3)),
                                    rng.randint(1, 10**6), account=rng.choice((0, 1)))  # fmt: skip
        if r < 0.94 and self.pending_wd:
            wd = self.pending_wd.pop(rng.randrange(len(self.pending_wd)))
            if rng.random() < 0.6:
                return wc.withdraw_commit(wd)
            return wc.withdraw_release(wd)
        frm = rng.choice((0, 1))
        return wc.transfer(u, rng.choice((1, 2, 3)), rng.randint(1, 10**6), frm, 1 - frm)

    def commands(self, n: int) -> list[np.ndarray]:
        """``n`` random commands."""
        return [self.one() for _ in range(n)]
