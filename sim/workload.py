"""The simulator's workload: a world and a random command stream from one seed.

:class:`Workload` first builds a world (fee tiers, assets, symbols with random
grids and bands, users, deposits), then produces a stream of every command kind,
good and bad: limit/market/stop orders (some off the tick or lot grid, out of the
band, too large for the user's funds, for unknown users or symbols, with
duplicate order ids; ids in both order-id lanes, as the gateway and the API
interleave them), cancels, reduces, replaces and mass cancels, deposits (some
reusing a reference), withdrawal holds, commits and releases (some repeated, some
of unknown or settled ids), transfers between accounts, halts and resumes,
suspensions, fee-tier changes.

The generator is open loop: it never reads the core's state, only its own memory
of the ids it used, so the stream depends on the seed alone.  Every choice comes
from the :class:`random.Random` it is given; nothing depends on time, hash seeds
or set order.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bursa_wire.layout import CMD_DTYPE
from engine.wire import commands as cb
from engine.wire.views import CMD_VIEWS
from pyx.core import ORDER_ID_LANE_SHIFT
from pyx.enums import CmdKind, OrdType, Side, Stp, Tif

Cmds = npt.NDArray[np.void]

MAX_RECENT_ORDERS = 64
"""Order ids remembered per world for cancels, replaces and duplicate-id attempts."""

MAX_RECENT_IDS = 64
"""Deposit references and withdrawal ids remembered for duplicates."""

UNKNOWN_ID_BASE = 60_000
"""User/symbol/asset ids at or above this are never created (unknown-id commands)."""

LANE_1_EVERY = 3
"""Every third new order id goes to lane 1 (the Binance API's ids, 2**39 and up), the rest
to lane 0 (the gateway's): picked from the id counter, so no random draw changes."""


@dataclass(frozen=True)
class SymbolSpec:
    """One symbol of the world (ids, grids in ticks/lots, band, money units)."""

    symbol_id: int
    base_id: int
    quote_id: int
    tick_step: int
    lot_step: int
    multiplier: int
    base_per_lot: int
    max_qty_lots: int
    mid_ticks: int
    min_price_ticks: int
    max_price_ticks: int


@dataclass
class RecentOrder:
    """An order id the workload sent (it may have traded, been canceled, or rejected)."""

    order_id: int
    user_id: int
    symbol: SymbolSpec
    side: int
    price_ticks: int
    qty_lots: int


# Relative weights of the command mix (per mille, sum 1000).
MIX: tuple[tuple[str, int], ...] = (
    ("limit", 346),
    ("limit_ioc_fok", 50),
    ("post_only", 30),
    ("market", 40),
    ("market_quote", 20),
    ("stop", 30),
    ("cancel", 100),
    ("reduce", 30),
    ("replace", 70),
    ("mass_cancel", 10),
    ("deposit", 50),
    ("deposit_dup", 20),
    ("withdraw_hold", 45),
    ("withdraw_commit", 35),
    ("withdraw_release", 35),
    ("transfer", 35),
    ("halt_resume", 12),
    ("suspend_resume", 12),
    ("fee_tier", 10),
    ("cancel_all", 5),
    ("min_notional", 5),
    ("bad_admin", 10),
)
assert sum(w for _, w in MIX) == 1000


class Workload:
    """World set-up and command stream for one seed.

    Parameters
    ----------
    rng : random.Random
        The workload's own random stream.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._names = [name for name, _ in MIX]
        self._cum: list[int] = []
        total = 0
        for _, w in MIX:
            total += w
            self._cum.append(total)
        self.tiers = [1, 2, 3]
        self.assets: list[int] = []
        self.symbols: list[SymbolSpec] = []
        self.users: list[int] = []
        self._next_order_id = rng.randrange(1, 1 << 20)
        self._next_ref = rng.randrange(1, 1 << 30)
        self._next_client_ref = 1
        self.recent_orders: deque[RecentOrder] = deque(maxlen=MAX_RECENT_ORDERS)
        self.recent_deposits: deque[Cmds] = deque(maxlen=MAX_RECENT_IDS)
        self.recent_withdrawals: deque[int] = deque(maxlen=MAX_RECENT_IDS)
        self.recent_transfers: deque[Cmds] = deque(maxlen=MAX_RECENT_IDS)
        self.recent_new: deque[Cmds] = deque(maxlen=MAX_RECENT_IDS)

    # ------------------------------------------------------------------ world

    def setup(self) -> list[Cmds]:
        """Batches that create the world: tiers, assets, symbols, users, then deposits."""
        rng = self.rng
        admin: list[Cmds] = []
        for tier in self.tiers:
            admin.append(
                cb.add_fee_tier(tier, rng.choice((0, 100, 500)), rng.choice((0, 250, 2500)))
            )
        n_assets = rng.randint(2, 4)
        self.assets = sorted(rng.sample(range(1, 200), n_assets))
        for a in self.assets:
            admin.append(cb.add_asset(a, rng.randint(0, 8)))
        n_symbols = rng.randint(1, 3)
        used_pairs: set[tuple[int, int]] = set()
        for sid in sorted(rng.sample(range(1, 500), n_symbols)):
            base, quote = rng.sample(self.assets, 2)
            if (base, quote) in used_pairs:
                continue
            used_pairs.add((base, quote))
            spec = self._symbol_spec(sid, base, quote)
            self.symbols.append(spec)
            admin.append(
                cb.add_symbol(
                    sid,
                    base,
                    quote,
                    tick_step=spec.tick_step,
                    lot_step=spec.lot_step,
                    price_multiplier=spec.multiplier,
                    base_per_lot=spec.base_per_lot,
                    min_qty_lots=spec.lot_step,
                    max_qty_lots=spec.max_qty_lots,
                    min_price_ticks=spec.min_price_ticks,
                    max_price_ticks=spec.max_price_ticks,
                    protection_ticks=spec.tick_step * rng.choice((5, 50, 500)),
                )
            )
        n_users = rng.randint(4, 16)
        self.users = sorted(rng.sample(range(1, 5000), n_users))
        for u in self.users:
            admin.append(cb.add_user(u, rng.choice(self.tiers)))
        funding: list[Cmds] = []
        for u in self.users:
            for a in self.assets:
                for account in (cb.ACCOUNT_TRADING, cb.ACCOUNT_FUNDING):
                    if account == cb.ACCOUNT_FUNDING and rng.random() < 0.5:
                        continue
                    funding.append(self._deposit(u, a, self._fund_amount(a), account))
        return [self._batch(admin), self._batch(funding)]

    def _symbol_spec(self, sid: int, base: int, quote: int) -> SymbolSpec:
        rng = self.rng
        tick = rng.choice((1, 1, 5, 10))
        lot = rng.choice((1, 1, 10))
        mid = tick * rng.randrange(100, 2000)
        return SymbolSpec(
            symbol_id=sid,
            base_id=base,
            quote_id=quote,
            tick_step=tick,
            lot_step=lot,
            multiplier=rng.choice((1, 10, 100)),
            base_per_lot=rng.choice((1, 100, 10_000)),
            max_qty_lots=lot * 1000,
            mid_ticks=mid,
            min_price_ticks=max(tick, (mid // 2) // tick * tick),
            max_price_ticks=mid * 2,
        )

    def _fund_amount(self, asset: int) -> int:
        # Enough for many orders, sometimes not: insufficient funds must happen too.
        return self.rng.choice((10**6, 10**8, 10**10, 10**12))

    # ----------------------------------------------------------------- stream

    def commands(self, n: int) -> Cmds:
        """The next ``n`` commands of the stream, unsequenced."""
        return self._batch([self._one() for _ in range(n)])

    def _batch(self, recs: list[Cmds]) -> Cmds:
        if not recs:
            return np.zeros(0, dtype=CMD_DTYPE)
        out = np.concatenate(recs)
        refs = np.arange(self._next_client_ref, self._next_client_ref + len(out), dtype=np.uint64)
        out["client_ref"] = refs
        self._next_client_ref += len(out)
        return out

    def _one(self) -> Cmds:
        x = self.rng.randrange(1000)
        for name, cum in zip(self._names, self._cum, strict=True):
            if x < cum:
                return getattr(self, "_g_" + name)()  # type: ignore[no-any-return]
        raise AssertionError(x)  # pragma: no cover

    # -------------------------------------------------------- id helpers

    def _user(self) -> int:
        if self.rng.random() < 0.03:
            return UNKNOWN_ID_BASE + self.rng.randrange(100)
        return self.rng.choice(self.users)

    def _symbol(self) -> SymbolSpec:
        return self.rng.choice(self.symbols)

    def _order_id(self) -> int:
        rng = self.rng
        if self.recent_orders and rng.random() < 0.04:
            return rng.choice(self.recent_orders).order_id  # duplicate client order id
        if rng.random() < 0.005:
            return 0  # reserved id
        self._next_order_id += rng.randint(1, 3)
        if self._next_order_id % LANE_1_EVERY == 0:
            return 1 << ORDER_ID_LANE_SHIFT | self._next_order_id
        return self._next_order_id

    def _price(self, s: SymbolSpec) -> int:
        rng = self.rng
        r = rng.random()
        if r < 0.03:
            return rng.choice((s.tick_step * rng.randrange(1, 1000) + 1, 0, -s.tick_step))
        if r < 0.05:
            return s.max_price_ticks + s.tick_step * rng.randint(1, 10)  # out of band
        offset = rng.randint(-20, 20) * s.tick_step
        if s.tick_step > 1 and rng.random() < 0.02:
            offset += 1  # off the tick grid
        return max(s.min_price_ticks, min(s.max_price_ticks, s.mid_ticks + offset))

    def _qty(self, s: SymbolSpec) -> int:
        rng = self.rng
        r = rng.random()
        if r < 0.02:
            return rng.choice((0, -s.lot_step, s.max_qty_lots + s.lot_step))
        if r < 0.04 and s.lot_step > 1:
            return s.lot_step * rng.randint(1, 10) + 1  # off the lot grid
        if r < 0.06:
            return s.max_qty_lots  # large: often more than the user can pay
        return s.lot_step * rng.randint(1, 30)

    def _remember(self, oid: int, user: int, s: SymbolSpec, side: int, px: int, qty: int) -> None:
        if oid:
            self.recent_orders.append(RecentOrder(oid, user, s, side, px, qty))

    def _side(self) -> int:
        return self.rng.choice((Side.BUY, Side.SELL))

    def _stp(self) -> int:
        rng = self.rng
        return rng.choice((Stp.STP_NONE, Stp.STP_NONE, Stp.CANCEL_NEWEST, Stp.CANCEL_OLDEST,
                           Stp.CANCEL_BOTH, Stp.DECREMENT))  # fmt: skip

    def _deposit(self, user: int, asset: int, amount: int, account: int) -> Cmds:
        self._next_ref += self.rng.randint(1, 5)
        rec = cb.deposit(self._next_ref, user, asset, amount, account=account)
        self.recent_deposits.append(rec)
        return rec

    def _asset(self) -> int:
        if self.rng.random() < 0.03:
            return UNKNOWN_ID_BASE + self.rng.randrange(100)
        return self.rng.choice(self.assets)

    def _account(self) -> int:
        if self.rng.random() < 0.02:
            return 2  # no such account
        return self.rng.choice((cb.ACCOUNT_TRADING, cb.ACCOUNT_FUNDING))

    # ------------------------------------------------------------ generators

    def _g_limit(self) -> Cmds:
        if self.recent_new and self.rng.random() < 0.03:
            # a NEW resent unchanged after a lost reply: one effect at most
            return self.rng.choice(self.recent_new).copy()
        s, user, oid, side = self._symbol(), self._user(), self._order_id(), self._side()
        px, qty = self._price(s), self._qty(s)
        self._remember(oid, user, s, side, px, qty)
        sid = s.symbol_id if self.rng.random() > 0.02 else UNKNOWN_ID_BASE + 7
        rec = cb.new_limit(oid, user, sid, side, px, qty, stp=self._stp())
        self.recent_new.append(rec)
        return rec

    def _g_limit_ioc_fok(self) -> Cmds:
        s, user, oid, side = self._symbol(), self._user(), self._order_id(), self._side()
        px, qty = self._price(s), self._qty(s)
        tif = self.rng.choice((Tif.IOC, Tif.FOK))
        return cb.new_limit(oid, user, s.symbol_id, side, px, qty, tif=tif, stp=self._stp())

    def _g_post_only(self) -> Cmds:
        s, user, oid, side = self._symbol(), self._user(), self._order_id(), self._side()
        px, qty = self._price(s), self._qty(s)
        self._remember(oid, user, s, side, px, qty)
        return cb.new_limit(oid, user, s.symbol_id, side, px, qty, post_only=True)

    def _g_market(self) -> Cmds:
        s, user, oid, side = self._symbol(), self._user(), self._order_id(), self._side()
        worst = self._price(s) if self.rng.random() < 0.5 else 0
        return cb.new_market(
            oid, user, s.symbol_id, side, self._qty(s), worst_price_ticks=worst, stp=self._stp()
        )

    def _g_market_quote(self) -> Cmds:
        s, user, oid = self._symbol(), self._user(), self._order_id()
        budget = s.mid_ticks * s.multiplier * s.lot_step * self.rng.randint(0, 20)
        return cb.new_market_quote(oid, user, s.symbol_id, budget, stp=self._stp())

    def _g_stop(self) -> Cmds:
        rng = self.rng
        s, user, oid, side = self._symbol(), self._user(), self._order_id(), self._side()
        ord_type = rng.choice((OrdType.STOP_LIMIT, OrdType.STOP_MARKET))
        stop = self._price(s)
        px = self._price(s) if ord_type == OrdType.STOP_LIMIT or rng.random() < 0.5 else 0
        qty = self._qty(s)
        self._remember(oid, user, s, side, px, qty)
        return cb.new_stop(oid, user, s.symbol_id, side, ord_type, stop, qty, price_ticks=px)

    def _pick_order(self) -> RecentOrder | None:
        rng = self.rng
        if not self.recent_orders or rng.random() < 0.05:
            return None
        # The newest orders are the likeliest to be still live.
        n = len(self.recent_orders)
        back = min(n, 8) if rng.random() < 0.7 else n
        return self.recent_orders[n - 1 - rng.randrange(back)]

    def _g_cancel(self) -> Cmds:
        o = self._pick_order()
        if o is None:
            return cb.cancel(self._next_order_id + 1000, self._user())  # unknown order
        user = o.user_id if self.rng.random() > 0.03 else self._user()  # sometimes not the owner
        return cb.cancel(o.order_id, user)

    def _g_reduce(self) -> Cmds:
        o = self._pick_order()
        if o is None:
            return cb.reduce(self._next_order_id + 1000, self._user(), 1)
        s = o.symbol
        new_qty = s.lot_step * self.rng.randint(0, max(1, o.qty_lots // s.lot_step))
        return cb.reduce(o.order_id, o.user_id, new_qty)

    def _g_replace(self) -> Cmds:
        o = self._pick_order()
        if o is None:
            return cb.replace(self._next_order_id + 1000, self._user(), 100, 1)
        s = o.symbol
        px = self._price(s) if self.rng.random() < 0.8 else o.price_ticks
        qty = self._qty(s) if self.rng.random() < 0.5 else o.qty_lots
        return cb.replace(o.order_id, o.user_id, px, qty)

    def _g_mass_cancel(self) -> Cmds:
        rng = self.rng
        sid = rng.choice((0, self._symbol().symbol_id))
        return cb.mass_cancel(
            self._user(), symbol_id=sid, side=rng.choice((0, Side.BUY, Side.SELL))
        )

    def _g_deposit(self) -> Cmds:
        amount = self.rng.choice((1, 10**4, 10**7, 10**9, 0, -5))
        return self._deposit(self._user(), self._asset(), amount, self._account())

    def _g_deposit_dup(self) -> Cmds:
        if not self.recent_deposits:
            return self._g_deposit()
        rec = self.rng.choice(self.recent_deposits).copy()
        if self.rng.random() < 0.3:
            CMD_VIEWS[CmdKind.DEPOSIT].of(rec)["amount_minor"] += 1  # same reference, other amount
        return rec

    def _g_withdraw_hold(self) -> Cmds:
        rng = self.rng
        if self.recent_withdrawals and rng.random() < 0.15:
            wid = rng.choice(self.recent_withdrawals)  # repeated id
        else:
            self._next_ref += rng.randint(1, 5)
            wid = self._next_ref
            self.recent_withdrawals.append(wid)
        amount = rng.choice((1, 10**3, 10**6, 10**8, 10**13, 0))
        return cb.withdraw_hold(wid, self._user(), self._asset(), amount, account=self._account())

    def _wid(self) -> int:
        if not self.recent_withdrawals or self.rng.random() < 0.05:
            return self._next_ref + 77  # unknown withdrawal id
        return self.rng.choice(self.recent_withdrawals)

    def _g_withdraw_commit(self) -> Cmds:
        return cb.withdraw_commit(self._wid())

    def _g_withdraw_release(self) -> Cmds:
        return cb.withdraw_release(self._wid())

    def _g_transfer(self) -> Cmds:
        rng = self.rng
        if self.recent_transfers and rng.random() < 0.15:
            rec = rng.choice(self.recent_transfers).copy()  # a resend: one effect only
            if rng.random() < 0.3:
                CMD_VIEWS[CmdKind.TRANSFER].of(rec)["amount_minor"] += 1  # same ref, other amount
            return rec
        src = self._account()
        dst = 1 - src if src in (0, 1) and rng.random() > 0.05 else src
        amount = rng.choice((1, 10**4, 10**8, 10**13, 0))
        self._next_ref += rng.randint(1, 5)
        rec = cb.transfer(self._user(), self._asset(), amount, src, dst, ref=self._next_ref)
        self.recent_transfers.append(rec)
        return rec

    def _g_halt_resume(self) -> Cmds:
        sid = self._symbol().symbol_id if self.rng.random() > 0.05 else UNKNOWN_ID_BASE + 3
        # Mostly resumes, so that most symbols trade most of the time.
        if self.rng.random() < 0.3:
            return cb.halt_symbol(sid)
        return cb.resume_symbol(sid)

    def _g_suspend_resume(self) -> Cmds:
        if self.rng.random() < 0.25:
            return cb.suspend_user(self._user())
        return cb.resume_user(self._user())

    def _g_fee_tier(self) -> Cmds:
        tier = self.rng.choice((*self.tiers, 99))
        return cb.set_fee_tier(self._user(), tier)

    def _g_cancel_all(self) -> Cmds:
        return cb.cancel_all_symbol(self._symbol().symbol_id)

    def _g_min_notional(self) -> Cmds:
        s = self._symbol()
        value = self.rng.choice((0, 0, s.mid_ticks * s.multiplier * s.lot_step * 3, -1))
        return cb.set_min_notional(s.symbol_id, value)

    def _g_bad_admin(self) -> Cmds:
        rng = self.rng
        k = rng.randrange(6)
        if k == 0:
            return cb.add_asset(rng.choice(self.assets))  # exists
        if k == 1:
            return cb.add_user(rng.choice(self.users), 1)  # exists
        if k == 2:
            return cb.add_user(UNKNOWN_ID_BASE + 500 + rng.randrange(100), 77)  # unknown tier
        if k == 3:
            s = self._symbol()
            return cb.add_symbol(s.symbol_id, s.base_id, s.quote_id)  # exists
        if k == 4:
            return cb.add_fee_tier(rng.choice(self.tiers), 1, 1)  # exists
        rec = np.zeros(1, dtype=CMD_DTYPE)
        rec["kind"] = rng.choice((0, 6, 19, 49, 99, 255))  # unknown command kinds
        rec["user_id"] = self._user()
        return rec


__all__ = ["MIX", "CmdKind", "SymbolSpec", "Workload"]
