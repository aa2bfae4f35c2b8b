"""Robustness rules of the book (issue 16), on the Cython book and the reference book.

- Stops trigger on every trade price of a taker's walk (the market traded at or
  through them), not only on the last one; triggered orders still enter after the
  taker, in arrival order (docs/book.md, "Stop orders").
- A level total that would pass 2**63-1 is rejected (``LEVEL_OVERFLOW``) before any
  event, and the book stays consistent.
- One-byte fields out of 0..255 raise OverflowError; in-range invalid values are
  echoed as given in the REJECTED event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pyx.book import Book
from pyx.enums import EvKind, OrdType, Reason, Side, Tif
from tests.refbook import RefBook

BUY, SELL = int(Side.BUY), int(Side.SELL)
LIMIT, STOP_LIMIT = int(OrdType.LIMIT), int(OrdType.STOP_LIMIT)
STOP_MARKET = int(OrdType.STOP_MARKET)
GTC, IOC = int(Tif.GTC), int(Tif.IOC)
TRADE, TRIGGERED, REJECTED = int(EvKind.TRADE), int(EvKind.TRIGGERED), int(EvKind.REJECTED)
INT64_MAX = 2**63 - 1

BOOKS: list[Callable[..., Any]] = [Book, RefBook]


def ev_dicts(b: Any) -> list[dict[str, int]]:
    """Events since the last clear as dicts; then clear."""
    ev = b.events()
    names = ev.dtype.names or ()
    out = [{n: int(r[n]) for n in names} for r in ev]
    b.clear_events()
    return out


def check(b: Any) -> None:
    """The Cython book's whole-book invariants (the reference book has none to check)."""
    if isinstance(b, Book):
        b.check_invariants()


# ------------------------------------------------------------------ stops


@pytest.mark.parametrize("make", BOOKS)
def test_issue_example_stop_reached_mid_walk_triggers(make):
    """last 102, SELL stop 100, asks 99 and 101: a buy of 2 @ 101 trades at 99 -> trigger."""
    b = make(1)
    b.new_limit(1, 1, SELL, 102, 1)
    b.new_limit(2, 2, BUY, 102, 1)  # last = 102
    b.new_stop(3, 3, SELL, STOP_MARKET, 100, 0, 1, tif=IOC)
    b.new_limit(4, 4, BUY, 95, 5)  # liquidity for the triggered sell
    b.new_limit(5, 5, SELL, 99, 1)
    b.new_limit(6, 6, SELL, 101, 1)
    b.clear_events()
    b.new_limit(7, 7, BUY, 101, 2)
    ev = ev_dicts(b)
    kinds = [(e["kind"], e["order_id"], e["price_ticks"]) for e in ev]
    assert kinds[1:4] == [(TRADE, 7, 99), (TRADE, 7, 101), (TRIGGERED, 3, 0)]
    assert (TRADE, 3, 95) in kinds[4:]
    assert b.stops() == [] and b.order(3) is None
    check(b)


def mirror(side: int, price: int) -> tuple[int, int]:
    """The same situation seen from the other side: prices reflected around 104."""
    return (BUY if side == SELL else SELL), (208 - price if price else 0)


def sweep_book(make: Callable[..., Any], flip: bool) -> Any:
    """Last 104; stops of both sides around it; asks 101/103/105/107 (mirrored: bids).

    Stops (order id: side, stop price), in arrival order: 11 SELL 103, 12 BUY 106,
    13 SELL 102, 14 BUY 105, 15 SELL 100 and 16 BUY 109 (beyond the sweep).
    """
    b = make(1)

    def sp(side: int, price: int) -> tuple[int, int]:
        return mirror(side, price) if flip else (side, price)

    def limit(oid: int, uid: int, side: int, price: int, qty: int) -> None:
        s, p = sp(side, price)
        b.new_limit(oid, uid, s, p, qty)

    def stop(oid: int, side: int, ord_type: int, stop_px: int, limit_px: int) -> None:
        s, p = sp(side, stop_px)
        _, lp = sp(side, limit_px)
        tif = GTC if ord_type == STOP_LIMIT else IOC
        b.new_stop(oid, 50 + oid, s, ord_type, p, lp, 1, tif=tif)

    limit(1, 1, SELL, 104, 1)
    limit(2, 2, BUY, 104, 1)  # last = 104
    stop(11, SELL, STOP_LIMIT, 103, 90)
    stop(12, BUY, STOP_LIMIT, 106, 118)
    stop(13, SELL, STOP_MARKET, 102, 0)
    stop(14, BUY, STOP_MARKET, 105, 0)
    stop(15, SELL, STOP_MARKET, 100, 0)
    stop(16, BUY, STOP_MARKET, 109, 0)
    limit(20, 20, BUY, 95, 10)  # liquidity for triggered sells
    limit(21, 21, SELL, 108, 10)  # liquidity for triggered buys
    for oid, px in ((31, 101), (32, 103), (33, 105), (34, 107)):
        limit(oid, oid, SELL, px, 1)
    b.clear_events()
    s, p = sp(BUY, 107)
    b.new_limit(40, 40, s, p, 4)  # the sweep: 101, 103, 105, 107 (mirrored: 107 ... 101)
    return b


@pytest.mark.parametrize("flip", [False, True], ids=["buy-sweep", "sell-sweep"])
@pytest.mark.parametrize("make", BOOKS)
def test_sweep_through_stop_levels_of_both_sides(make, flip):
    """Every stop a price of the walk reached triggers, in arrival order, after the taker.

    The walk's prices are 101..107: SELL stops 103 and 102 are reached by 101 (at or
    through), BUY stops 106 and 105 by 107; the triggered SELL 103 trades at 95, which
    then reaches SELL 100 (a cascade, appended last); BUY 109 stays pending.
    """
    b = sweep_book(make, flip)
    ev = ev_dicts(b)
    taker_trades = [e["price_ticks"] for e in ev if e["kind"] == TRADE and e["order_id"] == 40]
    expect = [101, 103, 105, 107]
    assert taker_trades == ([208 - p for p in expect] if flip else expect)
    last_taker = max(i for i, e in enumerate(ev) if e["order_id"] == 40)
    trig = [(i, e["order_id"]) for i, e in enumerate(ev) if e["kind"] == TRIGGERED]
    assert [oid for _, oid in trig] == [11, 12, 13, 14, 15]
    assert all(i > last_taker for i, _ in trig)
    assert [row[0] for row in b.stops()] == [16]
    check(b)


def test_sweep_events_agree_with_reference_book():
    """The Cython and reference books emit the same records for both sweeps."""
    for flip in (False, True):
        a, r = sweep_book(Book, flip), sweep_book(RefBook, flip)
        assert ev_dicts(a) == ev_dicts(r)
        assert a.state_hash() == r.state_hash()


@pytest.mark.parametrize("make", BOOKS)
def test_command_without_trade_triggers_nothing(make):
    """Trades of an earlier command do not count for a later one."""
    b = make(1)
    b.new_limit(1, 1, SELL, 99, 1)
    b.new_limit(2, 2, BUY, 99, 1)  # trade at 99 (no stop yet)
    b.new_limit(3, 3, SELL, 105, 1)
    b.new_limit(4, 4, BUY, 105, 1)  # last = 105
    b.new_stop(5, 5, SELL, STOP_MARKET, 100, 0, 1, tif=IOC)  # 99 < 100 traded before it
    b.new_limit(6, 6, SELL, 106, 1)
    b.clear_events()
    b.new_limit(7, 7, BUY, 106, 1)  # trades at 106 only
    assert TRIGGERED not in [e["kind"] for e in ev_dicts(b)]
    assert [row[0] for row in b.stops()] == [5]
    check(b)


# ------------------------------------------------------------ level total


@pytest.mark.parametrize("make", BOOKS)
def test_level_total_overflow_is_rejected_before_any_event(make):
    """The issue's example: a second order at a full level is rejected, book consistent."""
    b = make(1, max_qty_lots=INT64_MAX, max_price_ticks=INT64_MAX)
    b.new_limit(1, 1, SELL, 1, INT64_MAX)
    b.clear_events()
    assert b.new_limit(2, 1, SELL, 1, 1) == 1
    (e,) = ev_dicts(b)
    assert (e["kind"], e["order_id"], e["reason"]) == (REJECTED, 2, Reason.LEVEL_OVERFLOW)
    assert b.n_orders == 1 and b.order(2) is None
    assert b.l2(SELL) == [(1, INT64_MAX, 1)]
    check(b)
    b.new_limit(3, 1, SELL, 2, 5)
    b.clear_events()
    assert b.replace(3, 1, 5) == 1  # into the full level
    (e,) = ev_dicts(b)
    assert (e["kind"], e["reason"]) == (REJECTED, Reason.LEVEL_OVERFLOW)
    assert b.order(3) is not None and b.order(3)[3:5] == (2, 5)
    b.replace(1, 1, INT64_MAX - 1)  # same price, smaller: keeps priority, allowed
    b.replace(3, 1, 1)  # now it fits exactly
    assert b.l2(SELL) == [(1, INT64_MAX, 2)]
    assert b.cancel(1) == 1 and b.cancel(3) == 1 and b.n_orders == 0
    check(b)


@pytest.mark.parametrize("make", BOOKS)
def test_triggered_stop_limit_into_full_level_is_canceled(make):
    """A triggered STOP_LIMIT GTC that would overflow its level ends CANCELED, reason set."""
    b = make(1, max_qty_lots=INT64_MAX, max_price_ticks=INT64_MAX)
    b.new_limit(1, 1, BUY, 1, INT64_MAX)
    b.new_limit(2, 2, SELL, 10, 1)
    b.new_limit(3, 3, BUY, 10, 1)  # last = 10
    b.new_stop(4, 4, BUY, STOP_LIMIT, 11, 1, 1)
    b.new_limit(5, 5, SELL, 11, 1)
    b.clear_events()
    b.new_limit(6, 6, BUY, 11, 1)
    ev = ev_dicts(b)
    assert [(e["kind"], e["order_id"], e["reason"]) for e in ev][-2:] == [
        (TRIGGERED, 4, 0),
        (int(EvKind.CANCELED), 4, Reason.LEVEL_OVERFLOW),
    ]
    assert b.order(4) is None and b.n_orders == 1
    check(b)


# --------------------------------------------------------- one-byte fields


@pytest.mark.parametrize("make", BOOKS)
@pytest.mark.parametrize("field", ["side", "ord_type", "tif", "stp", "flags"])
@pytest.mark.parametrize("value", [256, 257, -1])
def test_one_byte_fields_out_of_range_raise(make, field, value):
    """Out of 0..255 -> OverflowError, no event, nothing changed (never a truncated echo)."""
    b = make(1)
    args = {"side": BUY, "ord_type": LIMIT, "tif": GTC, "stp": 0, "flags": 0}
    args[field] = value
    with pytest.raises(OverflowError):
        b.new_order(
            1, 1, args["side"], args["ord_type"], args["tif"], 100, 1, 0, args["stp"], args["flags"]
        )
    assert len(b.events()) == 0 and b.n_orders == 0


@pytest.mark.parametrize("make", BOOKS)
def test_mass_cancel_side_out_of_range_raises_and_in_range_is_echoed(make):
    b = make(1)
    for bad in (256, 257, -1):
        with pytest.raises(OverflowError):
            b.mass_cancel(1, bad)
    assert len(b.events()) == 0
    b.mass_cancel(1, 3)
    (e,) = ev_dicts(b)
    assert (e["kind"], e["side"], e["reason"]) == (REJECTED, 3, Reason.INVALID_SIDE)


@pytest.mark.parametrize("make", BOOKS)
def test_in_range_invalid_byte_is_echoed_as_given(make):
    b = make(1)
    b.new_order(1, 1, 200, 201, GTC, 100, 1)
    (e,) = ev_dicts(b)
    assert (e["kind"], e["side"], e["ord_type"], e["reason"]) == (
        REJECTED,
        200,
        201,
        Reason.INVALID_SIDE,
    )
