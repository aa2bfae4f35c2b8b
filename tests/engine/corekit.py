"""A small test exchange around engine.core.Core for the core's tests.

One symbol (id 1) trades BASE (asset 1) against QUOTE (asset 2); fee tier 0 has
the maker/taker rates given; users are added and funded on demand.
"""

from __future__ import annotations

import numpy as np

from engine.core import Core
from engine.wire import commands as cmd
from engine.wire.commands import ReplyStatus
from pyx.core import REF_MEMORY
from pyx.enums import EvKind

BASE = 1
QUOTE = 2
SYM = 1


class Ex:
    """A core with assets, one symbol, a fee tier and helpers to run commands."""

    def __init__(
        self,
        *,
        maker_ppm: int = 1_000,
        taker_ppm: int = 2_000,
        mult: int = 10,
        base_per_lot: int = 100,
        tick_step: int = 1,
        lot_step: int = 1,
        min_price: int = 1,
        max_price: int = 1_000_000,
        min_qty: int = 1,
        max_qty: int = 1_000_000,
        protection: int = 50,
        variants: frozenset[str] = frozenset(),
        ref_memory: int = REF_MEMORY,
    ) -> None:
        self.core = Core(variants, ref_memory)
        self.ledger = EventLedger()
        self.mult = mult
        self.bpl = base_per_lot
        self.maker_ppm = maker_ppm
        self.taker_ppm = taker_ppm
        self._ref = 1_000_000
        self.ok(
            cmd.add_asset(BASE, 8),
            cmd.add_asset(QUOTE, 6),
            cmd.add_fee_tier(0, maker_ppm, taker_ppm),
            cmd.add_symbol(
                SYM,
                BASE,
                QUOTE,
                tick_step=tick_step,
                lot_step=lot_step,
                price_multiplier=mult,
                base_per_lot=base_per_lot,
                min_price_ticks=min_price,
                max_price_ticks=max_price,
                min_qty_lots=min_qty,
                max_qty_lots=max_qty,
                protection_ticks=protection,
            ),
        )

    def run(self, *recs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply the records as one batch; copies of (events, replies)."""
        b = cmd.CmdBatch()
        for r in recs:
            b.add(r)
        ev, rep = self.core.run(b.to_array())
        self.ledger.apply(ev)
        return ev.copy(), rep.copy()

    def ok(self, *recs: np.ndarray) -> np.ndarray:
        """Apply and require every command applied; returns the events."""
        ev, rep = self.run(*recs)
        bad = rep[rep["status"] != ReplyStatus.APPLIED]
        assert len(bad) == 0, f"not applied: {bad}"
        return ev

    def user(self, uid: int, base: int = 0, quote: int = 0, tier: int = 0) -> int:
        """Add user ``uid`` funded with ``base`` and ``quote`` minor units (trading account)."""
        recs = [cmd.add_user(uid, tier)]
        if base:
            self._ref += 1
            recs.append(cmd.deposit(self._ref, uid, BASE, base))
        if quote:
            self._ref += 1
            recs.append(cmd.deposit(self._ref, uid, QUOTE, quote))
        self.ok(*recs)
        return uid

    def bal(self, uid: int, asset: int, account: int = 0) -> tuple[int, int]:
        """(available, held) minor units."""
        return self.core.balance(uid, asset, account)

    def buy_hold(self, price: int, qty: int, ppm: int | None = None) -> int:
        """The worst-case hold of a limit BUY (notional + ceil of the max fee)."""
        n = price * qty * self.mult
        ppm = max(self.maker_ppm, self.taker_ppm) if ppm is None else ppm
        return n + (n * ppm + 999_999) // 1_000_000

    def check(self) -> None:
        """Conservation and hold accounting hold, and the balances rebuilt from the
        event stream alone equal the core's."""
        assert self.core.conservation_errors() == []
        assert self.ledger.mismatches(self.core) == []


def kinds(ev: np.ndarray) -> list[str]:
    """Event kind names, in order."""
    return [EvKind(int(k)).name for k in ev["kind"]]


def reject_changes_nothing(ex: Ex, rec: np.ndarray, reason: int) -> np.ndarray:
    """Run one command that must be rejected with ``reason``: the reply says so and
    the state (everything but last_seq) is unchanged.  Returns the events."""
    before = ex.core.content_hash()
    ev, rep = ex.run(rec)
    assert len(rep) == 1
    assert rep["status"][0] == ReplyStatus.REJECTED, rep
    assert rep["reason"][0] == reason, (int(rep["reason"][0]), int(reason))
    assert ex.core.content_hash() == before
    ex.check()
    return ev


class EventLedger:
    """A clearing subscriber in miniature: rebuilds every balance from events alone.

    Uses only the event stream (engine/wire/events.py): symbol configs from
    SYMBOL_ADDED, funding events, and the hold annotations the core writes on the
    book's order events (``taker_fee`` = hold after, ``maker_fee`` = hold change).
    """

    def __init__(self) -> None:
        self.avail: dict[tuple[int, int, int], int] = {}
        self.held: dict[tuple[int, int, int], int] = {}
        self.fees: dict[int, int] = {}
        self.symbols: dict[int, tuple[int, int, int, int]] = {}  # base, quote, mult, bpl
        # (user, order id) -> [user, asset, hold]: order ids are per user
        self.orders: dict[tuple[int, int], list[int]] = {}

    def _add(
        self, book: dict[tuple[int, int, int], int], key: tuple[int, int, int], x: int
    ) -> None:
        book[key] = book.get(key, 0) + x

    def _move(self, user: int, asset: int, to_held: int) -> None:
        self._add(self.avail, (user, asset, 0), -to_held)
        self._add(self.held, (user, asset, 0), to_held)

    def _end(self, oid: tuple[int, int]) -> None:
        user, asset, hold = self.orders.pop(oid)
        self._move(user, asset, -hold)

    def apply(self, ev: np.ndarray) -> None:
        """Apply a batch of events."""
        for e in ev:
            self._one(e)

    def _one(self, e: np.void) -> None:
        k = int(e["kind"])
        u, a = int(e["user_id"]), int(e["symbol_id"])
        amt, acc = int(e["qty_lots"]), int(e["price_ticks"])
        if k == EvKind.SYMBOL_ADDED:
            self.symbols[a] = (u, int(e["maker_user_id"]), int(e["taker_fee"]), int(e["maker_fee"]))
        elif k == EvKind.DEPOSITED:
            self._add(self.avail, (u, a, acc), amt)
        elif k == EvKind.WITHDRAW_HELD:
            self._add(self.avail, (u, a, acc), -amt)
            self._add(self.held, (u, a, acc), amt)
        elif k == EvKind.WITHDRAW_COMMITTED:
            self._add(self.held, (u, a, acc), -amt)
        elif k == EvKind.WITHDRAW_RELEASED:
            self._add(self.held, (u, a, acc), -amt)
            self._add(self.avail, (u, a, acc), amt)
        elif k == EvKind.TRANSFERRED:
            self._add(self.avail, (u, a, acc), -amt)
            self._add(self.avail, (u, a, int(e["maker_order_id"])), amt)
        elif k == EvKind.ACCEPTED:
            base, quote, _, _ = self.symbols[a]
            asset = quote if e["side"] == 1 else base
            self.orders[(u, int(e["order_id"]))] = [u, asset, int(e["taker_fee"])]
            self._move(u, asset, int(e["maker_fee"]))
        elif k in (EvKind.REPLACED, EvKind.REDUCED, EvKind.CANCELED):
            o = self.orders[(u, int(e["order_id"]))]
            self._move(o[0], o[1], int(e["maker_fee"]))
            o[2] = int(e["taker_fee"])
            if k == EvKind.CANCELED:
                assert o[2] == 0
                del self.orders[(u, int(e["order_id"]))]
        elif k == EvKind.TRADE:
            self._trade(e)

    def _trade(self, e: np.void) -> None:
        base, quote, mult, bpl = self.symbols[int(e["symbol_id"])]
        n = int(e["price_ticks"]) * int(e["qty_lots"]) * mult
        base_amt = int(e["qty_lots"]) * bpl
        t = (int(e["user_id"]), int(e["order_id"]))
        m = (int(e["maker_user_id"]), int(e["maker_order_id"]))
        fee_t, fee_m = int(e["taker_fee"]), int(e["maker_fee"])
        b, s, fee_b, fee_s = (t, m, fee_t, fee_m) if e["side"] == 1 else (m, t, fee_m, fee_t)
        bo, so = self.orders[b], self.orders[s]
        bo[2] -= n + fee_b
        self._add(self.held, (bo[0], quote, 0), -(n + fee_b))
        self._add(self.avail, (bo[0], base, 0), base_amt)
        so[2] -= base_amt
        self._add(self.held, (so[0], base, 0), -base_amt)
        self._add(self.avail, (so[0], quote, 0), n - fee_s)
        self.fees[quote] = self.fees.get(quote, 0) + fee_b + fee_s
        if int(e["flags"]) & 1:
            self._end(t)
        if int(e["flags"]) & 2:
            self._end(m)

    def mismatches(self, core: Core) -> list[str]:
        """Where the rebuilt balances differ from the core's."""
        out = []
        for key in set(self.avail) | set(self.held):
            want = (self.avail.get(key, 0), self.held.get(key, 0))
            got = core.balance(*key)
            if got != want:
                out.append(f"balance {key}: core {got}, events {want}")
        for asset, fee in self.fees.items():
            if core.fee_balance(asset) != fee:
                out.append(f"fee {asset}: core {core.fee_balance(asset)}, events {fee}")
        for uid, asset, acc, av, hd in core._dump(with_books=False)["balances"]:
            if (self.avail.get((uid, asset, acc), 0), self.held.get((uid, asset, acc), 0)) != (
                av,
                hd,
            ):
                out.append(f"balance {(uid, asset, acc)}: core {(av, hd)}, not from events")
        live = {(o["user_id"], o["order_id"]): o["hold"] for o in core.open_orders()}
        if live != {oid: o[2] for oid, o in self.orders.items()}:
            out.append("order holds differ")
        return out
