"""Reference order book: a slow, obviously-correct model of docs/book.md.

The tests run every command sequence through this book and through the Cython
``pyx.book.Book`` and require the same events, record for record, and the same
final book.  Clarity wins over speed here: plain dicts and lists, one loop per
rule, no caching.  Prices are integer ticks, quantities integer lots (a quote
budget is in ``price_ticks * qty_lots`` units); there is no float anywhere.

The Python API is the one of ``pyx.book.Book`` (see docs/book.md, "Python API").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from bursa_wire.layout import EV_DTYPE, EV_FIELDS
from pyx.enums import CmdFlag, CmdKind, EvFlag, EvKind, OrdType, Reason, Side, Stp, Tif

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
EV_NAMES = tuple(f.name for f in EV_FIELDS)

# The types whose price_ticks is a limit price (the others carry an optional worst price).
LIMIT_TYPES = (OrdType.LIMIT, OrdType.STOP_LIMIT)
STOP_TYPES = (OrdType.STOP_LIMIT, OrdType.STOP_MARKET)
ALLOWED_TIF: dict[int, tuple[int, ...]] = {
    OrdType.LIMIT: (Tif.GTC, Tif.IOC, Tif.FOK),
    OrdType.STOP_LIMIT: (Tif.GTC, Tif.IOC, Tif.FOK),
    OrdType.MARKET: (Tif.IOC,),
    OrdType.MARKET_QUOTE: (Tif.IOC,),
    OrdType.STOP_MARKET: (Tif.IOC,),
}


def _check_u8(*values: int) -> None:
    """One-byte command fields out of 0..255 raise OverflowError (docs/book.md)."""
    for v in values:
        if not 0 <= v <= 255:
            raise OverflowError(f"{v} does not fit a one-byte field")


@dataclass
class RefOrder:
    """One live order (resting, stop, or the taker being processed).

    ``open_lots`` is the open quantity in lots; for a MARKET_QUOTE taker it is the
    unspent budget in ``price_ticks * lots`` units.
    """

    order_id: int
    user_id: int
    side: int
    ord_type: int
    tif: int
    price_ticks: int
    open_lots: int
    stop_price_ticks: int
    stp: int
    flags: int


class RefBook:
    """Pure-Python order book with the semantics and API of ``pyx.book.Book``.

    Parameters are the ``BookConfig`` keyword arguments of docs/book.md (prices in
    ticks, quantities in lots).  ``events`` is accepted for API compatibility and
    ignored: this book keeps its own list of event records.
    """

    def __init__(
        self,
        symbol_id: int = 1,
        *,
        tick_step: int = 1,
        lot_step: int = 1,
        min_qty_lots: int = 1,
        max_qty_lots: int = 10**12,
        min_price_ticks: int = 1,
        max_price_ticks: int = 10**12,
        protection_ticks: int = 10**12,
        capacity_orders: int = 1 << 16,
        max_orders: int = 1 << 24,
        events: Any = None,
    ) -> None:
        # docs/book.md "Clarifications": a bad configuration raises, it is not clamped.
        if min(tick_step, lot_step, min_qty_lots, min_price_ticks, capacity_orders) < 1:
            raise ValueError("steps, minimums and capacity_orders must be >= 1")
        if min_qty_lots > max_qty_lots or min_price_ticks > max_price_ticks:
            raise ValueError("min must be <= max")
        if protection_ticks < 0:
            raise ValueError("protection_ticks must be >= 0")
        self.symbol_id = symbol_id
        self.tick_step = tick_step
        self.lot_step = lot_step
        self.min_qty_lots = min_qty_lots
        self.max_qty_lots = max_qty_lots
        self.min_price_ticks = min_price_ticks
        self.max_price_ticks = max_price_ticks
        self.protection_ticks = protection_ticks
        self.capacity_orders = min(capacity_orders, max_orders)  # no pool here: API only
        self.max_orders = max_orders
        self.seq = 0
        self.ts_ns = 0
        # price_ticks -> orders of that level in priority (FIFO) order; no empty levels.
        self.bids: dict[int, list[RefOrder]] = {}
        self.asks: dict[int, list[RefOrder]] = {}
        # Stop orders in arrival order (dicts keep insertion order).
        self.stop_orders: dict[int, RefOrder] = {}
        # order_id -> live order (resting or stop).
        self.live: dict[int, RefOrder] = {}
        self.last_price_ticks = 0
        # Prices of the trades since stops were last collected: any of them reaching
        # a stop triggers it (the market traded at or through the stop price).
        self.traded: list[int] = []
        self.next_match_id = 1
        self.evs: list[tuple[int, ...]] = []

    # ------------------------------------------------------------------ events

    def _emit(self, kind: int, o: RefOrder | None = None, **fields: int) -> None:
        """Append one event; the subject order's fields first, then ``fields``."""
        rec = dict.fromkeys(EV_NAMES, 0)
        rec["seq"] = self.seq
        rec["ts_ns"] = self.ts_ns
        rec["symbol_id"] = self.symbol_id
        rec["kind"] = kind
        if o is not None:
            rec["order_id"] = o.order_id
            rec["user_id"] = o.user_id
            rec["side"] = o.side
            rec["ord_type"] = o.ord_type
            rec["price_ticks"] = o.price_ticks
        rec.update(fields)
        self.evs.append(tuple(int(rec[n]) for n in EV_NAMES))

    def _canceled(self, o: RefOrder, reason: int, qty_lots: int | None = None) -> None:
        """CANCELED event for ``o`` (qty = its open quantity unless given)."""
        q = o.open_lots if qty_lots is None else qty_lots
        self._emit(EvKind.CANCELED, o, qty_lots=q, leaves_lots=0, reason=reason)

    def _reject(
        self,
        reason: int,
        order_id: int,
        user_id: int = 0,
        side: int = 0,
        ord_type: int = 0,
        price_ticks: int = 0,
        qty_lots: int = 0,
    ) -> None:
        self._emit(
            EvKind.REJECTED,
            None,
            order_id=order_id,
            user_id=user_id,
            side=side,
            ord_type=ord_type,
            price_ticks=price_ticks,
            qty_lots=qty_lots,
            leaves_lots=0,
            reason=reason,
        )

    def events(self) -> np.ndarray:
        """Events since the last clear, as an EV_DTYPE array (a copy)."""
        return np.array(self.evs, dtype=EV_DTYPE)

    def clear_events(self) -> None:
        """Forget the events recorded so far."""
        self.evs.clear()

    # ------------------------------------------------------------- book access

    def _side_levels(self, side: int) -> dict[int, list[RefOrder]]:
        return self.bids if side == Side.BUY else self.asks

    def _prices_best_first(self, side: int) -> list[int]:
        return sorted(self._side_levels(side), reverse=(side == Side.BUY))

    def best_bid(self) -> int:
        """Best bid price in ticks, 0 if there is no bid."""
        return max(self.bids) if self.bids else 0

    def best_ask(self) -> int:
        """Best ask price in ticks, 0 if there is no ask."""
        return min(self.asks) if self.asks else 0

    def _best_opposite(self, side: int) -> int:
        return self.best_ask() if side == Side.BUY else self.best_bid()

    def last_price(self) -> int:
        """Price in ticks of the most recent fill, 0 before the first."""
        return self.last_price_ticks

    @property
    def n_orders(self) -> int:
        """Live orders: resting plus stop."""
        return len(self.live)

    def order(self, order_id: int) -> tuple[int, ...] | None:
        """(user_id, side, ord_type, price_ticks, open_lots, stop_price_ticks) or None."""
        o = self.live.get(order_id)
        if o is None:
            return None
        return (o.user_id, o.side, o.ord_type, o.price_ticks, o.open_lots, o.stop_price_ticks)

    def l2(self, side: int, depth: int = 2**31) -> list[tuple[int, int, int]]:
        """(price_ticks, total_lots, n_orders) per level of ``side``, best first."""
        levels = self._side_levels(side)
        rows: list[tuple[int, int, int]] = []
        for p in self._prices_best_first(side)[:depth]:
            rows.append((p, sum(o.open_lots for o in levels[p]), len(levels[p])))
        return rows

    def l3(self) -> list[tuple[int, ...]]:
        """Resting orders: bids best to worst FIFO, then asks.

        Rows are (order_id, user_id, side, price_ticks, open_lots, flags).
        """
        rows: list[tuple[int, ...]] = []
        for side in (Side.BUY, Side.SELL):
            levels = self._side_levels(side)
            for p in self._prices_best_first(side):
                for o in levels[p]:
                    rows.append(
                        (o.order_id, o.user_id, o.side, o.price_ticks, o.open_lots, o.flags)
                    )
        return rows

    def l3_full(self) -> list[tuple[int, ...]]:
        """``l3()`` rows followed by (ord_type, tif, stop_price_ticks, stp)."""
        return [
            (
                o.order_id,
                o.user_id,
                o.side,
                o.price_ticks,
                o.open_lots,
                o.flags,
                o.ord_type,
                o.tif,
                o.stop_price_ticks,
                o.stp,
            )
            for o in self._resting_in_priority()
        ]

    def stops(self) -> list[tuple[int, ...]]:
        """Stop orders in arrival order.

        Rows are (order_id, user_id, side, ord_type, tif, stop_price_ticks,
        price_ticks, open_lots, stp).
        """
        return [
            (
                o.order_id,
                o.user_id,
                o.side,
                o.ord_type,
                o.tif,
                o.stop_price_ticks,
                o.price_ticks,
                o.open_lots,
                o.stp,
            )
            for o in self.stop_orders.values()
        ]

    def state_hash(self) -> bytes:
        """16-byte blake2b over the canonical dump of docs/book.md."""
        ints = [self.symbol_id, self.last_price_ticks, self.next_match_id]
        for row in self.l3_full():
            ints.extend(row)
        for row in self.stops():
            ints.extend(row)
        # 8-byte little-endian two's complement (uint64 ids wrap like a C cast).
        dump = b"".join((int(x) % (1 << 64)).to_bytes(8, "little") for x in ints)
        return hashlib.blake2b(dump, digest_size=16).digest()

    def _rest(self, o: RefOrder) -> None:
        """Append ``o`` at the back of its level."""
        self._side_levels(o.side).setdefault(o.price_ticks, []).append(o)
        self.live[o.order_id] = o

    def _unrest(self, o: RefOrder) -> None:
        """Take resting ``o`` out of its level (and of the live set)."""
        levels = self._side_levels(o.side)
        level = levels[o.price_ticks]
        level.remove(o)
        if not level:
            del levels[o.price_ticks]
        del self.live[o.order_id]

    def _remove(self, o: RefOrder) -> None:
        """Remove a live order, resting or stop."""
        if o.order_id in self.stop_orders:
            del self.stop_orders[o.order_id]
            del self.live[o.order_id]
        else:
            self._unrest(o)

    # --------------------------------------------------------------- checks

    def _check_price(self, price_ticks: int, qty_lots: int) -> int:
        """Tick, band, then notional overflow of a limit or worst price."""
        if price_ticks % self.tick_step != 0:
            return Reason.PRICE_OFF_TICK
        if not self.min_price_ticks <= price_ticks <= self.max_price_ticks:
            return Reason.PRICE_OUT_OF_BAND
        if not INT64_MIN <= price_ticks * qty_lots <= INT64_MAX:
            return Reason.NOTIONAL_OVERFLOW
        return Reason.OK

    def _check_qty(self, qty_lots: int) -> int:
        """Lot step, then the quantity range."""
        if qty_lots % self.lot_step != 0:
            return Reason.QTY_OFF_LOT
        if not self.min_qty_lots <= qty_lots <= self.max_qty_lots:
            return Reason.QTY_OUT_OF_RANGE
        return Reason.OK

    def _crosses(self, side: int, price_ticks: int) -> bool:
        """True when a limit at ``price_ticks`` would trade with the best opposite."""
        if side == Side.BUY:
            return bool(self.asks) and price_ticks >= self.best_ask()
        return bool(self.bids) and price_ticks <= self.best_bid()

    def _validate_new(
        self,
        order_id: int,
        side: int,
        ord_type: int,
        tif: int,
        price_ticks: int,
        qty_lots: int,
        stop_price_ticks: int,
        stp: int,
        flags: int,
    ) -> int:
        """Checks 1-8 of docs/book.md "Validation order" (FOK is checked later)."""
        # 1. enums and flags
        if side not in (Side.BUY, Side.SELL):
            return Reason.INVALID_SIDE
        if ord_type not in ALLOWED_TIF:
            return Reason.INVALID_ORDER_TYPE
        if ord_type == OrdType.MARKET_QUOTE and side != Side.BUY:
            return Reason.INVALID_SIDE
        if tif not in ALLOWED_TIF[ord_type]:
            return Reason.INVALID_TIF
        if stp not in tuple(Stp):
            return Reason.INVALID_STP
        if flags & ~int(CmdFlag.POST_ONLY):
            return Reason.INVALID_FLAGS
        if flags & CmdFlag.POST_ONLY and not (ord_type == OrdType.LIMIT and tif == Tif.GTC):
            return Reason.INVALID_FLAGS
        # 2. duplicate id
        if order_id in self.live:
            return Reason.DUPLICATE_ORDER_ID
        # 3. quantity (or budget)
        if qty_lots <= 0:
            return Reason.INVALID_QTY
        # 4. lot step and range (not for a quote budget)
        if ord_type != OrdType.MARKET_QUOTE:
            r = self._check_qty(qty_lots)
            if r != Reason.OK:
                return r
        # 5. limit price, or the optional worst price of a market order
        if ord_type in LIMIT_TYPES or (
            ord_type in (OrdType.MARKET, OrdType.STOP_MARKET) and price_ticks != 0
        ):
            r = self._check_price(price_ticks, qty_lots)
            if r != Reason.OK:
                return r
        # 6. stop price
        if ord_type in STOP_TYPES:
            if stop_price_ticks % self.tick_step != 0:
                return Reason.PRICE_OFF_TICK
            if not self.min_price_ticks <= stop_price_ticks <= self.max_price_ticks:
                return Reason.PRICE_OUT_OF_BAND
            if self._stop_reached(side, stop_price_ticks):
                return Reason.STOP_WOULD_TRIGGER
        # 7. pool
        if len(self.live) >= self.max_orders:
            return Reason.BOOK_FULL
        # 8. post-only
        if flags & CmdFlag.POST_ONLY and self._crosses(side, price_ticks):
            return Reason.POST_ONLY_WOULD_TAKE
        return Reason.OK

    def _stop_reached(self, side: int, stop_price_ticks: int) -> bool:
        """True when the last trade price reaches the stop (never before a trade)."""
        last = self.last_price_ticks
        if last == 0:
            return False
        return last >= stop_price_ticks if side == Side.BUY else last <= stop_price_ticks

    def _fok_fillable(self, t: RefOrder) -> bool:
        """The FOK walk of docs/book.md: can ``t`` be filled completely?"""
        opp = Side.SELL if t.side == Side.BUY else Side.BUY
        levels = self._side_levels(opp)
        total = 0
        for p in self._prices_best_first(opp):
            if (t.side == Side.BUY and p > t.price_ticks) or (
                t.side == Side.SELL and p < t.price_ticks
            ):
                break
            for m in levels[p]:
                if m.user_id == t.user_id and t.stp != Stp.STP_NONE:
                    if t.stp in (Stp.CANCEL_NEWEST, Stp.CANCEL_BOTH):
                        return total >= t.open_lots
                    continue  # CANCEL_OLDEST / DECREMENT: skipped, not counted
                total += m.open_lots
        return total >= t.open_lots

    # ------------------------------------------------------------- matching

    def _price_bound(self, t: RefOrder) -> int | None:
        """Worst maker price ``t`` may trade at; None when it cannot trade at all."""
        if t.ord_type in LIMIT_TYPES:
            return t.price_ticks
        best = self._best_opposite(t.side)
        if best == 0:
            return None  # a market order arriving on an empty opposite side
        if t.side == Side.BUY:
            bound = min(best + self.protection_ticks, INT64_MAX)  # int64 saturation
            if t.price_ticks != 0:
                bound = min(bound, t.price_ticks)
        else:
            bound = best - self.protection_ticks
            if t.price_ticks != 0:
                bound = max(bound, t.price_ticks)
        return bound

    def _take(self, t: RefOrder) -> str:
        """Match taker ``t`` against the opposite side.

        Returns why matching stopped: ``"filled"`` (nothing open), ``"stp"`` (the taker
        was canceled by self-trade prevention), ``"budget"`` (MARKET_QUOTE: the next
        lot does not fit in the budget) or ``"empty"`` (no maker left within the price).
        """
        bound = self._price_bound(t)
        opp = Side.SELL if t.side == Side.BUY else Side.BUY
        quote = t.ord_type == OrdType.MARKET_QUOTE
        while t.open_lots > 0:
            if bound is None:
                return "empty"
            prices = self._prices_best_first(opp)
            if not prices:
                return "empty"
            p = prices[0]
            if (t.side == Side.BUY and p > bound) or (t.side == Side.SELL and p < bound):
                return "empty"
            m = self._side_levels(opp)[p][0]
            if m.user_id == t.user_id and t.stp != Stp.STP_NONE:
                if self._self_trade(t, m):
                    return "stp"
                continue
            if quote:
                q = min(m.open_lots, (t.open_lots // p) // self.lot_step * self.lot_step)
                if q == 0:
                    return "budget"
                t.open_lots -= q * p
            else:
                q = min(m.open_lots, t.open_lots)
                t.open_lots -= q
            m.open_lots -= q
            self.last_price_ticks = p
            self.traded.append(p)
            flags = 0
            if t.open_lots == 0:
                flags |= EvFlag.TAKER_DONE
            if m.open_lots == 0:
                flags |= EvFlag.MAKER_DONE
                self._unrest(m)
            self._emit(
                EvKind.TRADE,
                t,
                maker_order_id=m.order_id,
                maker_user_id=m.user_id,
                price_ticks=p,
                qty_lots=q,
                leaves_lots=t.open_lots,
                match_id=self.next_match_id,
                flags=flags,
            )
            self.next_match_id += 1
        return "filled"

    def _self_trade(self, t: RefOrder, m: RefOrder) -> bool:
        """Apply the taker's STP mode against same-user maker ``m``.

        Returns True when the taker is ended (no remainder event follows).
        """
        mode = t.stp
        if t.ord_type == OrdType.MARKET_QUOTE and mode == Stp.DECREMENT:
            mode = Stp.CANCEL_NEWEST  # a budget cannot be decremented by lots
        if mode == Stp.CANCEL_NEWEST:
            self._canceled(t, Reason.SELF_TRADE)
            t.open_lots = 0
            return True
        if mode == Stp.CANCEL_OLDEST:
            self._unrest(m)
            self._canceled(m, Reason.SELF_TRADE)
            return False
        if mode == Stp.CANCEL_BOTH:
            self._unrest(m)
            self._canceled(m, Reason.SELF_TRADE)
            self._canceled(t, Reason.SELF_TRADE)
            t.open_lots = 0
            return True
        assert mode == Stp.DECREMENT
        d = min(t.open_lots, m.open_lots)
        m.open_lots -= d
        t.open_lots -= d
        for o in (m, t):
            if o.open_lots == 0:
                if o is m:
                    self._unrest(m)
                self._canceled(o, Reason.SELF_TRADE, qty_lots=d)
            else:
                self._emit(
                    EvKind.REDUCED,
                    o,
                    qty_lots=d,
                    leaves_lots=o.open_lots,
                    reason=Reason.SELF_TRADE,
                )
        return t.open_lots == 0

    def _execute(self, t: RefOrder) -> None:
        """Match ``t`` (new or triggered, already accepted) and handle its remainder."""
        why = self._take(t)
        if why == "stp" or t.open_lots == 0:
            return
        if t.ord_type in LIMIT_TYPES:
            if t.tif == Tif.GTC:
                self._rest(t)
            else:
                self._canceled(t, Reason.IOC_REMAINDER)
        elif t.ord_type == OrdType.MARKET_QUOTE:
            reason = Reason.BUDGET_EXHAUSTED if why == "budget" else Reason.NO_LIQUIDITY
            self._canceled(t, reason)
        else:
            self._canceled(t, Reason.NO_LIQUIDITY)

    def _run_triggers(self) -> None:
        """Trigger stops reached by any trade price, cascading, in arrival order."""
        fifo: list[RefOrder] = []
        self._collect_triggered(fifo)
        while fifo:
            o = fifo.pop(0)
            self._emit(EvKind.TRIGGERED, o, qty_lots=o.open_lots, leaves_lots=o.open_lots)
            if o.tif == Tif.FOK and not self._fok_fillable(o):
                self._canceled(o, Reason.FOK_NOT_FILLABLE)
            elif o.tif == Tif.GTC and self._level_overflows(o.side, o.price_ticks, o.open_lots):
                self._canceled(o, Reason.LEVEL_OVERFLOW)
            else:
                self._execute(o)
            self._collect_triggered(fifo)

    def _collect_triggered(self, fifo: list[RefOrder]) -> None:
        """Move every stop that a trade since the last collection reached to ``fifo``."""
        traded, self.traded = self.traded, []
        for o in list(self.stop_orders.values()):
            if o.side == Side.BUY:
                hit = any(p >= o.stop_price_ticks for p in traded)
            else:
                hit = any(p <= o.stop_price_ticks for p in traded)
            if hit:
                del self.stop_orders[o.order_id]
                del self.live[o.order_id]
                fifo.append(o)

    def _level_overflows(
        self, side: int, price_ticks: int, qty_lots: int, leaving: RefOrder | None = None
    ) -> bool:
        """Would ``qty_lots`` more at ``price_ticks`` pass 2**63-1 in that level?

        ``leaving`` is an order that leaves the level first (a replace).
        """
        level = self._side_levels(side).get(price_ticks, [])
        total = sum(o.open_lots for o in level if o is not leaving)
        return total + qty_lots > INT64_MAX

    # ------------------------------------------------------------- commands

    def _count(self, n0: int) -> int:
        return len(self.evs) - n0

    def new_order(
        self,
        order_id: int,
        user_id: int,
        side: int,
        ord_type: int,
        tif: int,
        price_ticks: int,
        qty_lots: int,
        stop_price_ticks: int = 0,
        stp: int = 0,
        flags: int = 0,
    ) -> int:
        """Submit a new order; returns the number of events appended."""
        _check_u8(side, ord_type, tif, stp, flags)
        n0 = len(self.evs)
        reason = self._validate_new(
            order_id, side, ord_type, tif, price_ticks, qty_lots, stop_price_ticks, stp, flags
        )
        o = RefOrder(
            int(order_id),
            int(user_id),
            int(side),
            int(ord_type),
            int(tif),
            0 if ord_type == OrdType.MARKET_QUOTE else int(price_ticks),  # no price
            int(qty_lots),
            int(stop_price_ticks),
            int(stp),
            int(flags),
        )
        fok = reason == Reason.OK and tif == Tif.FOK and ord_type == OrdType.LIMIT
        if fok and not self._fok_fillable(o):
            reason = Reason.FOK_NOT_FILLABLE
        gtc = reason == Reason.OK and tif == Tif.GTC and ord_type == OrdType.LIMIT
        if gtc and self._level_overflows(side, price_ticks, qty_lots):
            reason = Reason.LEVEL_OVERFLOW
        if reason != Reason.OK:
            self._reject(reason, order_id, user_id, side, ord_type, price_ticks, qty_lots)
            return self._count(n0)
        self._emit(EvKind.ACCEPTED, o, qty_lots=qty_lots, leaves_lots=qty_lots)
        if ord_type in STOP_TYPES:
            self.stop_orders[order_id] = o
            self.live[order_id] = o
            return self._count(n0)
        self._execute(o)
        self._run_triggers()
        return self._count(n0)

    def new_limit(
        self,
        order_id: int,
        user_id: int,
        side: int,
        price_ticks: int,
        qty_lots: int,
        tif: int = Tif.GTC,
        stp: int = 0,
        post_only: bool = False,
    ) -> int:
        """New LIMIT order; returns the number of events appended."""
        flags = int(CmdFlag.POST_ONLY) if post_only else 0
        return self.new_order(
            order_id, user_id, side, OrdType.LIMIT, tif, price_ticks, qty_lots, 0, stp, flags
        )

    def new_market(
        self,
        order_id: int,
        user_id: int,
        side: int,
        qty_lots: int,
        stp: int = 0,
        price_ticks: int = 0,
    ) -> int:
        """New MARKET order (``price_ticks``: worst price, 0 = none)."""
        return self.new_order(
            order_id, user_id, side, OrdType.MARKET, Tif.IOC, price_ticks, qty_lots, 0, stp, 0
        )

    def new_market_quote(self, order_id: int, user_id: int, budget: int, stp: int = 0) -> int:
        """New MARKET_QUOTE buy spending at most ``budget`` (price_ticks * lots units)."""
        return self.new_order(
            order_id, user_id, Side.BUY, OrdType.MARKET_QUOTE, Tif.IOC, 0, budget, 0, stp, 0
        )

    def new_stop(
        self,
        order_id: int,
        user_id: int,
        side: int,
        ord_type: int,
        stop_price_ticks: int,
        price_ticks: int,
        qty_lots: int,
        tif: int = Tif.GTC,
        stp: int = 0,
    ) -> int:
        """New STOP_LIMIT or STOP_MARKET order."""
        return self.new_order(
            order_id, user_id, side, ord_type, tif, price_ticks, qty_lots, stop_price_ticks, stp, 0
        )

    def cancel(self, order_id: int) -> int:
        """Cancel a resting or stop order."""
        n0 = len(self.evs)
        o = self.live.get(order_id)
        if o is None:
            self._reject(Reason.UNKNOWN_ORDER_ID, order_id)
            return self._count(n0)
        self._remove(o)
        self._canceled(o, Reason.USER_CANCELED)
        return self._count(n0)

    def reduce(self, order_id: int, new_leaves_lots: int) -> int:
        """Cut a resting order's open quantity to ``new_leaves_lots``, keeping priority."""
        n0 = len(self.evs)
        o = self.live.get(order_id)
        reason: int = Reason.OK
        if o is None:
            reason = Reason.UNKNOWN_ORDER_ID
        elif order_id in self.stop_orders:
            reason = Reason.NOT_REPLACEABLE
        elif new_leaves_lots < 0:
            reason = Reason.INVALID_QTY
        elif new_leaves_lots >= o.open_lots:
            reason = Reason.REDUCE_NOT_SMALLER
        elif new_leaves_lots % self.lot_step != 0:
            reason = Reason.QTY_OFF_LOT
        if reason != Reason.OK:
            self._reject(reason, order_id, qty_lots=new_leaves_lots)
            return self._count(n0)
        assert o is not None
        if new_leaves_lots == 0:
            self._unrest(o)
            self._canceled(o, Reason.USER_CANCELED)
            return self._count(n0)
        removed = o.open_lots - new_leaves_lots
        o.open_lots = new_leaves_lots
        self._emit(EvKind.REDUCED, o, qty_lots=removed, leaves_lots=new_leaves_lots)
        return self._count(n0)

    def replace(self, order_id: int, price_ticks: int, qty_lots: int) -> int:
        """New price and/or open quantity for a resting order."""
        n0 = len(self.evs)
        o = self.live.get(order_id)
        reason: int = Reason.OK
        if o is None:
            reason = Reason.UNKNOWN_ORDER_ID
        elif order_id in self.stop_orders:
            reason = Reason.NOT_REPLACEABLE
        elif qty_lots <= 0:
            reason = Reason.INVALID_QTY
        else:
            reason = self._check_qty(qty_lots)
            if reason == Reason.OK:
                reason = self._check_price(price_ticks, qty_lots)
            if reason == Reason.OK and price_ticks == o.price_ticks and qty_lots == o.open_lots:
                reason = Reason.REPLACE_NO_CHANGE
            if (
                reason == Reason.OK
                and o.flags & CmdFlag.POST_ONLY
                and self._crosses(o.side, price_ticks)
            ):
                reason = Reason.POST_ONLY_WOULD_TAKE
            keeps = price_ticks == o.price_ticks and qty_lots < o.open_lots
            if (
                reason == Reason.OK
                and not keeps
                and self._level_overflows(o.side, price_ticks, qty_lots, o)
            ):
                reason = Reason.LEVEL_OVERFLOW
        if reason != Reason.OK:
            self._reject(reason, order_id, price_ticks=price_ticks, qty_lots=qty_lots)
            return self._count(n0)
        assert o is not None
        keeps_priority = price_ticks == o.price_ticks and qty_lots < o.open_lots
        self._emit(
            EvKind.REPLACED, o, price_ticks=price_ticks, qty_lots=qty_lots, leaves_lots=qty_lots
        )
        if keeps_priority:
            o.open_lots = qty_lots
            return self._count(n0)
        self._unrest(o)
        o.price_ticks = price_ticks
        o.open_lots = qty_lots
        o.tif = Tif.GTC
        self._execute(o)
        self._run_triggers()
        return self._count(n0)

    def mass_cancel(self, user_id: int = 0, side: int = 0, all_users: bool = False) -> int:
        """Cancel every resting and stop order of ``user_id`` (or all users) on ``side``."""
        _check_u8(side)
        n0 = len(self.evs)
        if side not in (0, Side.BUY, Side.SELL):
            self._reject(Reason.INVALID_SIDE, 0, user_id, side)
            return self._count(n0)

        def hit(o: RefOrder) -> bool:
            return (all_users or o.user_id == user_id) and (side == 0 or o.side == side)

        victims = [o for o in self._resting_in_priority() if hit(o)]
        victims += [o for o in self.stop_orders.values() if hit(o)]
        for o in victims:
            self._remove(o)
            self._canceled(o, Reason.MASS_CANCELED)
        return self._count(n0)

    def _resting_in_priority(self) -> list[RefOrder]:
        out: list[RefOrder] = []
        for s in (Side.BUY, Side.SELL):
            levels = self._side_levels(s)
            for p in self._prices_best_first(s):
                out.extend(levels[p])
        return out

    def process(self, cmds: np.ndarray) -> np.ndarray:
        """Batch API: clear the events, run every CMD_DTYPE record, return the events."""
        self.clear_events()
        for c in cmds:
            self.seq = int(c["seq"])
            self.ts_ns = int(c["ts_ns"])
            self.apply_record(c)
        return self.events()

    def apply_record(self, c: Any) -> int:
        """Run one CMD_DTYPE record (seq/ts_ns are taken from the book attributes)."""
        kind = int(c["kind"])
        oid = int(c["order_id"])
        if kind == CmdKind.NEW:
            return self.new_order(
                oid,
                int(c["user_id"]),
                int(c["side"]),
                int(c["ord_type"]),
                int(c["tif"]),
                int(c["price_ticks"]),
                int(c["qty_lots"]),
                int(c["stop_price_ticks"]),
                int(c["stp"]),
                int(c["flags"]),
            )
        if kind == CmdKind.CANCEL:
            return self.cancel(oid)
        if kind == CmdKind.REDUCE:
            return self.reduce(oid, int(c["qty_lots"]))
        if kind == CmdKind.REPLACE:
            return self.replace(oid, int(c["price_ticks"]), int(c["qty_lots"]))
        if kind == CmdKind.MASS_CANCEL:
            all_users = bool(int(c["flags"]) & CmdFlag.MASS_ALL_USERS)
            return self.mass_cancel(int(c["user_id"]), int(c["side"]), all_users)
        n0 = len(self.evs)
        self._reject(
            Reason.UNKNOWN_COMMAND,
            oid,
            int(c["user_id"]),
            int(c["side"]),
            int(c["ord_type"]),
            int(c["price_ticks"]),
            int(c["qty_lots"]),
        )
        return self._count(n0)
