"""Differential property tests: the Cython book against the reference book.

Hypothesis draws a symbol configuration and a command sequence on a narrow price
range with three users (so crossing, self-trade prevention and stop triggers are
frequent), including bad input of every kind.  Each command runs on
``pyx.book.Book`` and on ``tests.refbook.RefBook``; the new event records must be
identical field for field, and after every command the Cython book must hold the
structural invariants (tests/bookgen.py) and the same L3, stop set and counters as
the reference; state hashes are compared periodically and at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from pyx.book import Book
from pyx.enums import OrdType, Side, Stp, Tif
from tests.bookgen import (
    Cmd,
    EventTracker,
    call,
    check_book,
    ev_tuples,
    new_order_args,
    to_records,
)
from tests.refbook import RefBook

BUY, SELL = int(Side.BUY), int(Side.SELL)
LIMIT, MARKET, QUOTE = int(OrdType.LIMIT), int(OrdType.MARKET), int(OrdType.MARKET_QUOTE)
STOP_LIMIT, STOP_MARKET = int(OrdType.STOP_LIMIT), int(OrdType.STOP_MARKET)
GTC, IOC, FOK = int(Tif.GTC), int(Tif.IOC), int(Tif.FOK)
MIN_PRICE, MAX_PRICE = 90, 110  # multiples of every tick step drawn below
CENTER_LO, CENTER_HI = 96, 104  # where almost all the valid prices are
N_USERS = 3  # few users: self-trade prevention is frequent
MAX_COMMANDS = 200
HASH_EVERY = 16  # commands between state_hash comparisons
BIG = [2**40, 2**56, 2**60, 2**62, 2**63 - 1]  # overflow-size values
ODD_IDS = [0, 2**63 - 1, 2**63, 2**64 - 1]  # extreme uint64 order ids

SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID_TIF = {
    LIMIT: [GTC, GTC, IOC, FOK],
    STOP_LIMIT: [GTC, IOC, FOK],
    MARKET: [IOC],
    QUOTE: [IOC],
    STOP_MARKET: [IOC],
}
BAD_FIELDS = ["side", "type", "tif", "stp", "flags", "id", "qty", "qty", "price", "price", "stop"]
# Weighted command kinds (sampled_from picks uniformly among the entries).
KINDS = (
    ["limit"] * 10
    + ["ioc", "fok", "fok", "fok", "post_only", "market", "market", "quote", "stop", "stop"]
    + ["stop"]
    + ["cancel"] * 3
    + ["reduce"] * 2
    + ["replace"] * 6
    + ["mass_cancel", "bad_new", "bad_new", "bad_new"]
)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """A small symbol: band [90, 110]; tick 1, 2 or 5, lot 1 or 2; sometimes tiny pools."""
    return {
        "tick_step": draw(st.sampled_from([1, 1, 2, 5])),
        "lot_step": draw(st.sampled_from([1, 1, 2])),
        "min_qty_lots": draw(st.sampled_from([1, 1, 2])),
        "max_qty_lots": draw(st.sampled_from([10, 10**12, 2**62, 2**62])),
        "min_price_ticks": MIN_PRICE,
        "max_price_ticks": MAX_PRICE,
        "protection_ticks": draw(st.sampled_from([0, 1, 3, 10**12, 2**63 - 1])),
        "capacity_orders": draw(st.sampled_from([1, 2, 1 << 16])),
        "max_orders": draw(st.sampled_from([5, 12, 1 << 24, 1 << 24])),
    }


class Gen:
    """Draws commands for one configuration, remembering the ids it used."""

    def __init__(self, draw: st.DrawFn, cfg: dict[str, Any]) -> None:
        self.draw = draw
        self.cfg = cfg
        self.used: list[int] = []
        self.next_id = 1

    def price(self) -> int:
        """A valid price on the tick grid near the centre of the band."""
        t: int = self.cfg["tick_step"]
        return t * self.draw(st.integers(-(-CENTER_LO // t), CENTER_HI // t))

    def bad_price(self) -> int:
        t: int = self.cfg["tick_step"]
        return self.draw(
            st.sampled_from([0, -t, MIN_PRICE - t, MAX_PRICE + t, 10**12, *BIG])
            | st.integers(86, 114)
        )

    def qty(self) -> int:
        """A valid quantity: a few lots."""
        lot: int = self.cfg["lot_step"]
        lo = -(-self.cfg["min_qty_lots"] // lot)
        hi = min(lo + 5, self.cfg["max_qty_lots"] // lot)
        return lot * self.draw(st.integers(lo, hi))

    def bad_qty(self) -> int:
        return self.draw(
            st.sampled_from([0, -1, -(2**63), self.cfg["max_qty_lots"] + 1, *BIG])
            | st.integers(-2, 12)
        )

    def fresh_id(self) -> int:
        oid = self.next_id
        self.next_id += 1
        self.used.append(oid)
        return oid

    def known_id(self) -> int:
        """An id used before (often live), or sometimes any id."""
        k = self.draw(st.integers(0, 9))
        if self.used and k < 6:
            return self.draw(st.sampled_from(self.used[-8:]))
        if self.used and k < 8:
            return self.draw(st.sampled_from(self.used))
        return self.draw(st.sampled_from(ODD_IDS) | st.integers(1, self.next_id + 2))

    def user(self) -> int:
        return self.draw(st.integers(1, N_USERS))

    def stp(self) -> int:
        return self.draw(st.integers(0, 4))

    def new(self, kind: str) -> Cmd:
        """A valid new order of ``kind`` (its id may still be a duplicate)."""
        oid = self.fresh_id() if self.draw(st.integers(0, 9)) else self.known_id()
        uid, side, stp = self.user(), self.draw(st.sampled_from([BUY, SELL])), self.stp()
        qty, price = self.qty(), self.price()
        if kind in ("limit", "ioc", "fok", "post_only"):
            tif = {"ioc": IOC, "fok": FOK}.get(kind, GTC)
            return self.new_call(
                oid, uid, side, LIMIT, tif, price, qty, 0, stp, kind == "post_only"
            )
        if kind == "market":
            worst = price if self.draw(st.booleans()) else 0
            return self.new_call(oid, uid, side, MARKET, IOC, worst, qty, 0, stp, False)
        if kind == "quote":
            budget = self.draw(st.integers(1, 1500))
            return self.new_call(oid, uid, BUY, QUOTE, IOC, 0, budget, 0, stp, False)
        ord_type = self.draw(st.sampled_from([STOP_LIMIT, STOP_MARKET]))
        tif = self.draw(st.sampled_from(VALID_TIF[ord_type]))
        if ord_type == STOP_MARKET and self.draw(st.booleans()):
            price = 0
        return self.new_call(oid, uid, side, ord_type, tif, price, qty, self.price(), stp, False)

    def new_call(
        self,
        oid: int,
        uid: int,
        side: int,
        ord_type: int,
        tif: int,
        price: int,
        qty: int,
        stop: int,
        stp: int,
        post_only: bool,
    ) -> Cmd:
        """The order through new_order or through the matching helper."""
        flags = 1 if post_only else 0
        if self.draw(st.booleans()):
            return ("new_order", (oid, uid, side, ord_type, tif, price, qty, stop, stp, flags))
        if ord_type == LIMIT:
            return ("new_limit", (oid, uid, side, price, qty, tif, stp, post_only))
        if ord_type == MARKET:
            return ("new_market", (oid, uid, side, qty, stp, price))
        if ord_type == QUOTE:
            return ("new_market_quote", (oid, uid, qty, stp))
        return ("new_stop", (oid, uid, side, ord_type, stop, price, qty, tif, stp))

    def bad_new(self) -> Cmd:
        """A new order with one (sometimes more) bad field."""
        kind = self.draw(st.sampled_from(["limit", "market", "quote", "stop", "fok"]))
        # oid, uid, side, ord_type, tif, price, qty, stop, stp, flags
        a = [int(x) for x in new_order_args(self.new(kind))]
        for _ in range(self.draw(st.integers(1, 2))):
            field = self.draw(st.sampled_from(BAD_FIELDS))
            if field == "side":
                a[2] = self.draw(st.sampled_from([0, 3, 255, SELL]))
            elif field == "type":
                a[3] = self.draw(st.sampled_from([0, 6, 255, QUOTE]))
            elif field == "tif":
                a[4] = self.draw(st.sampled_from([0, 4, GTC, IOC, FOK]))
            elif field == "stp":
                a[8] = self.draw(st.sampled_from([5, 255]))
            elif field == "flags":
                a[9] = self.draw(st.sampled_from([1, 2, 3, 4, 128]))
            elif field == "id":
                a[0] = self.known_id()
            elif field == "qty":
                a[6] = self.bad_qty()
            elif field == "price":
                a[5] = self.bad_price()
            else:
                a[7] = self.bad_price()
        return ("new_order", tuple(a))

    def command(self) -> Cmd:
        kind = self.draw(st.sampled_from(KINDS))
        if kind == "bad_new":
            return self.bad_new()
        if kind == "cancel":
            return ("cancel", (self.known_id(),))
        if kind == "reduce":
            q = self.draw(st.integers(0, 6)) if self.draw(st.integers(0, 3)) else self.bad_qty()
            return ("reduce", (self.known_id(), q))
        if kind == "replace":
            good = self.draw(st.integers(0, 5))
            price = self.price() if good else self.bad_price()
            qty = self.qty() if good else self.bad_qty()
            return ("replace", (self.known_id(), price, qty))
        if kind == "mass_cancel":
            side = self.draw(st.sampled_from([0, 0, BUY, SELL, 3]))
            return ("mass_cancel", (self.user(), side, self.draw(st.booleans())))
        return self.new(kind)


@st.composite
def scenarios(
    draw: st.DrawFn, min_size: int = 0, max_size: int = 60
) -> tuple[dict[str, Any], list[Cmd]]:
    """A configuration and a command sequence for it."""
    cfg = draw(configs())
    gen = Gen(draw, cfg)
    n = draw(st.integers(min_size, max_size))
    return cfg, [gen.command() for _ in range(n)]


def script(cfg: dict[str, Any], cmds: list[Cmd]) -> str:
    """The scenario as Python, for the failure report."""
    lines = [f"b = Book(1, **{cfg!r})"]
    lines += [f"b.{name}{tuple(args)!r}" for name, args in cmds]
    return "\n".join(lines)


def run_both(cfg: dict[str, Any], cmds: list[Cmd]) -> tuple[Book, RefBook]:
    """Run ``cmds`` on both books, checking events and invariants after each."""
    cy, ref = Book(1, **cfg), RefBook(1, **cfg)
    tracker = EventTracker()
    for i, cmd in enumerate(cmds):
        for b in (cy, ref):
            b.seq, b.ts_ns = i + 1, 1000 * (i + 1)
            b.clear_events()
        n_cy, n_ref = call(cy, cmd), call(ref, cmd)
        got, want = ev_tuples(cy.events()), ev_tuples(ref.events())
        assert got == want, (i, cmd, got, want)
        assert n_cy == n_ref == len(got)
        tracker.feed(cy.events())
        check_book(cy)
        tracker.check(cy)
        assert cy.l3() == ref.l3(), (i, cmd)
        assert cy.l3_full() == ref.l3_full(), (i, cmd)
        assert cy.stops() == ref.stops(), (i, cmd)
        assert cy.last_price() == ref.last_price()
        assert cy.n_orders == ref.n_orders
        if i % HASH_EVERY == 0:
            assert cy.state_hash() == ref.state_hash(), (i, cmd)
    assert cy.state_hash() == ref.state_hash()
    for side in (BUY, SELL):
        assert cy.l2(side) == ref.l2(side)
        assert cy.l2(side, 2) == ref.l2(side, 2)
    for oid in {args[0] for name, args in cmds if name != "mass_cancel"}:
        assert cy.order(oid) == ref.order(oid), oid
    return cy, ref


@SETTINGS
@given(scenario=scenarios())
def test_short_sequences_match_reference(scenario):
    cfg, cmds = scenario
    note(script(cfg, cmds))
    run_both(cfg, cmds)


@settings(SETTINGS, max_examples=60)
@given(scenario=scenarios(min_size=100, max_size=MAX_COMMANDS))
def test_long_sequences_match_reference(scenario):
    cfg, cmds = scenario
    note(script(cfg, cmds))
    run_both(cfg, cmds)


@settings(SETTINGS, max_examples=80)
@given(scenario=scenarios(max_size=120), noise=st.integers(0, 3))
def test_batch_api_matches_per_command(scenario, noise):
    """``Book.process`` on the CMD_DTYPE array gives the per-command events."""
    cfg, cmds = scenario
    note(script(cfg, cmds))
    per_call = Book(1, **cfg)
    expect = []
    for i, cmd in enumerate(cmds):
        per_call.seq, per_call.ts_ns = i + 1, 1000 * (i + 1)
        per_call.clear_events()
        call(per_call, cmd)
        expect += ev_tuples(per_call.events())
    recs = to_records(cmds, seq0=1, noise=noise)
    batch = Book(1, **cfg)
    got = ev_tuples(batch.process(recs))
    assert got == expect
    assert ev_tuples(batch.events()) == expect
    assert batch.state_hash() == per_call.state_hash()
    ref = RefBook(1, **cfg)
    assert ev_tuples(ref.process(recs)) == expect
    if len(recs):
        assert batch.seq == int(recs["seq"][-1]) and batch.ts_ns == int(recs["ts_ns"][-1])


@settings(SETTINGS, max_examples=40)
@given(
    scenario=scenarios(max_size=40),
    kinds=st.lists(st.sampled_from([0, 6, 17, 20, 30, 255]), min_size=1, max_size=3),
)
def test_batch_unknown_kinds_rejected(scenario, kinds):
    """Kinds the book does not know are UNKNOWN_COMMAND rejects, in both books."""
    cfg, cmds = scenario
    recs = to_records(cmds)
    bad = np.zeros(len(kinds), dtype=recs.dtype)
    bad["kind"] = kinds
    bad["order_id"], bad["user_id"], bad["side"] = 3, 2, SELL
    bad["ord_type"], bad["price_ticks"], bad["qty_lots"] = OrdType.LIMIT, 100, 1
    allr = np.concatenate([recs[: len(recs) // 2], bad, recs[len(recs) // 2 :]])
    allr["seq"] = np.arange(1, len(allr) + 1)
    cy, ref = Book(1, **cfg), RefBook(1, **cfg)
    assert ev_tuples(cy.process(allr)) == ev_tuples(ref.process(allr))
    assert cy.state_hash() == ref.state_hash()


def test_scenario_with_every_stp_mode_runs():
    """A fixed smoke scenario (keeps this file useful when hypothesis is offline)."""
    cmds: list[Cmd] = [("new_limit", (i, 1 + i % 3, SELL, 100 + i % 3, 2, Tif.GTC, 0, False))
                       for i in range(1, 10)]  # fmt: skip
    for mode in (Stp.CANCEL_NEWEST, Stp.CANCEL_OLDEST, Stp.CANCEL_BOTH, Stp.DECREMENT):
        cmds.append(("new_limit", (20 + mode, 2, BUY, 101, 3, Tif.GTC, mode, False)))
    cmds.append(("new_market_quote", (30, 1, 500, Stp.DECREMENT)))
    cy, _ = run_both({"max_orders": 64}, cmds)
    assert cy.last_price() != 0
