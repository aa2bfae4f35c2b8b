"""Unit tests of the Cython order book (pyx.book.Book) against docs/book.md.

One or more focused tests per order type, time in force, self-trade prevention
mode, replace rule, reduce, mass cancel variant, stop trigger (cascade included)
and reject reason; the event record fields; state_hash; the L2/L3 dumps; the
batch API against the per-command API; pool growth and BOOK_FULL.  Every book a
test makes through ``mk()`` is checked with ``check_invariants()`` at the end.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import struct
from typing import Any

import numpy as np
import pytest

from bursa_wire.layout import CMD_DTYPE, EV_DTYPE
from pyx.book import Book
from pyx.enums import CmdFlag, CmdKind, EvFlag, EvKind, OrdType, Reason, Side, Stp, Tif
from pyx.evbuf import EventBuf

BUY, SELL = int(Side.BUY), int(Side.SELL)
LIMIT, MARKET, QUOTE = int(OrdType.LIMIT), int(OrdType.MARKET), int(OrdType.MARKET_QUOTE)
STOP_LIMIT, STOP_MARKET = int(OrdType.STOP_LIMIT), int(OrdType.STOP_MARKET)
GTC, IOC, FOK = int(Tif.GTC), int(Tif.IOC), int(Tif.FOK)
ACC, REJ, TRD = int(EvKind.ACCEPTED), int(EvKind.REJECTED), int(EvKind.TRADE)
CXL, RED = int(EvKind.CANCELED), int(EvKind.REDUCED)
REP, TRG = int(EvKind.REPLACED), int(EvKind.TRIGGERED)
TD, MD = int(EvFlag.TAKER_DONE), int(EvFlag.MAKER_DONE)
R = Reason
EV_NAMES: tuple[str, ...] = EV_DTYPE.names or ()

_BOOKS: list[Book] = []


@pytest.fixture(autouse=True)
def _check_every_book():
    """Every book made through mk() must hold its invariants at the end of the test."""
    _BOOKS.clear()
    yield
    for b in _BOOKS:
        b.check_invariants()
    _BOOKS.clear()


def mk(**cfg) -> Book:
    b = Book(7, **cfg)
    b.seq, b.ts_ns = 11, 22
    _BOOKS.append(b)
    return b


def evs(b: Book) -> list[dict[str, int]]:
    """The events since the last call, as dicts (then cleared)."""
    out = [{n: int(r[n]) for n in EV_NAMES} for r in b.events()]
    b.clear_events()
    return out


def short(events: list[dict[str, int]]) -> list[tuple[int, ...]]:
    """(kind, order_id, qty_lots, leaves_lots, reason) of each event."""
    return [
        (e["kind"], e["order_id"], e["qty_lots"], e["leaves_lots"], e["reason"]) for e in events
    ]


def trades(events: list[dict[str, int]]) -> list[tuple[int, ...]]:
    """(taker, maker, price, qty, leaves, flags) of the TRADE events."""
    return [
        (
            e["order_id"],
            e["maker_order_id"],
            e["price_ticks"],
            e["qty_lots"],
            e["leaves_lots"],
            e["flags"],
        )
        for e in events
        if e["kind"] == TRD
    ]


def open_lots(b: Book, oid: int) -> int:
    o = b.order(oid)
    assert o is not None
    return o[4]


def rest(b: Book, oid: int, uid: int, side: int, price: int, qty: int, **kw) -> None:
    """A resting limit order that must not trade."""
    assert b.new_limit(oid, uid, side, price, qty, **kw) == 1
    assert b.order(oid) is not None
    b.clear_events()


def ladder(b: Book) -> None:
    """Asks 101: 2 (id 1), 2 (id 2); 102: 3 (id 3). Bids 99: 2 (id 4); 98: 5 (id 5)."""
    rest(b, 1, 1, SELL, 101, 2)
    rest(b, 2, 2, SELL, 101, 2)
    rest(b, 3, 3, SELL, 102, 3)
    rest(b, 4, 4, BUY, 99, 2)
    rest(b, 5, 5, BUY, 98, 5)


# --------------------------------------------------------------- order types


def test_limit_gtc_rests_with_accepted_event():
    b = mk()
    assert b.new_limit(10, 3, BUY, 100, 5) == 1
    [e] = evs(b)
    assert e == {
        "seq": 11,
        "ts_ns": 22,
        "order_id": 10,
        "maker_order_id": 0,
        "price_ticks": 100,
        "qty_lots": 5,
        "leaves_lots": 5,
        "match_id": 0,
        "taker_fee": 0,
        "maker_fee": 0,
        "user_id": 3,
        "maker_user_id": 0,
        "symbol_id": 7,
        "reason": 0,
        "kind": ACC,
        "side": BUY,
        "flags": 0,
        "ord_type": LIMIT,
    }
    assert b.best_bid() == 100 and b.best_ask() == 0 and b.n_orders == 1
    assert b.order(10) == (3, BUY, LIMIT, 100, 5, 0)
    assert b.l3() == [(10, 3, BUY, 100, 5, 0)]


def test_limit_sweeps_levels_best_first_fifo_at_maker_price():
    b = mk()
    ladder(b)
    assert b.new_limit(20, 9, BUY, 102, 6) == 4
    ev = evs(b)
    assert [e["kind"] for e in ev] == [ACC, TRD, TRD, TRD]
    assert trades(ev) == [
        (20, 1, 101, 2, 4, MD),
        (20, 2, 101, 2, 2, MD),
        (20, 3, 102, 2, 0, TD),
    ]
    assert [e["match_id"] for e in ev[1:]] == [1, 2, 3]
    assert b.last_price() == 102 and b.best_ask() == 102
    assert b.order(3) == (3, SELL, LIMIT, 102, 1, 0)
    assert b.order(20) is None and b.order(1) is None


def test_trade_event_fields():
    b = mk()
    rest(b, 1, 4, SELL, 101, 3)
    b.seq, b.ts_ns = 99, 12345
    b.new_market(2, 6, BUY, 3)
    e = evs(b)[1]
    assert e == {
        "seq": 99,
        "ts_ns": 12345,
        "order_id": 2,
        "maker_order_id": 1,
        "price_ticks": 101,
        "qty_lots": 3,
        "leaves_lots": 0,
        "match_id": 1,
        "taker_fee": 0,
        "maker_fee": 0,
        "user_id": 6,
        "maker_user_id": 4,
        "symbol_id": 7,
        "reason": 0,
        "kind": TRD,
        "side": BUY,
        "flags": TD | MD,
        "ord_type": MARKET,
    }


def test_limit_remainder_rests_after_trading():
    b = mk()
    ladder(b)
    b.new_limit(20, 9, BUY, 101, 7)
    assert trades(evs(b)) == [(20, 1, 101, 2, 5, MD), (20, 2, 101, 2, 3, MD)]
    assert b.best_bid() == 101 and b.best_ask() == 102
    assert b.l2(BUY) == [(101, 3, 1), (99, 2, 1), (98, 5, 1)]


def test_sell_limit_matches_bids_symmetrically():
    b = mk()
    ladder(b)
    b.new_limit(20, 9, SELL, 98, 4)
    assert trades(evs(b)) == [(20, 4, 99, 2, 2, MD), (20, 5, 98, 2, 0, TD)]
    assert b.l2(BUY) == [(98, 3, 1)]


def test_ioc_remainder_canceled():
    b = mk()
    ladder(b)
    assert b.new_limit(20, 9, BUY, 101, 5, tif=IOC) == 4
    ev = evs(b)
    assert short(ev)[-1] == (CXL, 20, 1, 0, R.IOC_REMAINDER)
    assert ev[-1]["price_ticks"] == 101
    assert b.order(20) is None and b.best_bid() == 99


def test_ioc_without_liquidity_is_canceled_whole():
    b = mk()
    assert short(evs(b)) == []
    b.new_limit(1, 1, BUY, 100, 4, tif=IOC)
    assert short(evs(b)) == [(ACC, 1, 4, 4, 0), (CXL, 1, 4, 0, R.IOC_REMAINDER)]
    assert b.n_orders == 0


def test_fok_fillable_executes_like_ioc():
    b = mk()
    ladder(b)
    assert b.new_limit(20, 9, BUY, 102, 7, tif=FOK) == 4
    ev = evs(b)
    assert [e["kind"] for e in ev] == [ACC, TRD, TRD, TRD]
    assert trades(ev)[-1] == (20, 3, 102, 3, 0, TD | MD)
    assert b.best_ask() == 0


def test_fok_not_fillable_rejected_and_nothing_changes():
    b = mk()
    ladder(b)
    h = b.state_hash()
    assert b.new_limit(20, 9, BUY, 101, 5, tif=FOK) == 1
    [e] = evs(b)
    assert (e["kind"], e["reason"], e["order_id"], e["qty_lots"], e["price_ticks"]) == (
        REJ,
        R.FOK_NOT_FILLABLE,
        20,
        5,
        101,
    )
    assert b.state_hash() == h


@pytest.mark.parametrize(
    ("stp", "fillable"),
    [
        (Stp.STP_NONE, True),  # own maker counts
        (Stp.CANCEL_OLDEST, False),  # own maker skipped: 2 + 3 < 6
        (Stp.DECREMENT, False),
        (Stp.CANCEL_NEWEST, False),  # walk stops at the own maker
        (Stp.CANCEL_BOTH, False),
    ],
)
def test_fok_walk_and_self_trade_prevention(stp, fillable):
    b = mk()
    ladder(b)  # asks: 1 (user 1) x2, 2 (user 2) x2 at 101, 3 (user 3) x3 at 102
    b.new_limit(20, 2, BUY, 102, 6, tif=FOK, stp=int(stp))
    ev = evs(b)
    assert (ev[0]["kind"] == ACC) == fillable
    if not fillable:
        assert short(ev) == [(REJ, 20, 6, 0, R.FOK_NOT_FILLABLE)]


def test_fok_walk_skipping_own_maker_can_still_fill():
    b = mk()
    ladder(b)
    b.new_limit(20, 2, BUY, 102, 5, tif=FOK, stp=int(Stp.CANCEL_OLDEST))
    ev = evs(b)
    assert [e["kind"] for e in ev] == [ACC, TRD, CXL, TRD]
    assert ev[2]["order_id"] == 2 and ev[2]["reason"] == R.SELF_TRADE
    assert trades(ev) == [(20, 1, 101, 2, 3, MD), (20, 3, 102, 3, 0, TD | MD)]


def test_post_only_rests_when_not_crossing():
    b = mk()
    ladder(b)
    assert b.new_limit(20, 9, BUY, 100, 1, post_only=True) == 1
    assert b.l3()[0] == (20, 9, BUY, 100, 1, int(CmdFlag.POST_ONLY))


@pytest.mark.parametrize(("side", "price"), [(BUY, 101), (BUY, 105), (SELL, 99), (SELL, 90)])
def test_post_only_that_would_take_is_rejected(side, price):
    b = mk()
    ladder(b)
    h = b.state_hash()
    b.new_limit(20, 9, side, price, 1, post_only=True)
    assert short(evs(b)) == [(REJ, 20, 1, 0, R.POST_ONLY_WOULD_TAKE)]
    assert b.state_hash() == h


def test_market_buy_walks_book_and_cancels_remainder():
    b = mk()
    ladder(b)
    assert b.new_market(20, 9, BUY, 10) == 5
    ev = evs(b)
    assert ev[0]["price_ticks"] == 0 and ev[0]["ord_type"] == MARKET
    assert trades(ev) == [
        (20, 1, 101, 2, 8, MD),
        (20, 2, 101, 2, 6, MD),
        (20, 3, 102, 3, 3, MD),
    ]
    assert short(ev)[-1] == (CXL, 20, 3, 0, R.NO_LIQUIDITY)


def test_market_on_empty_side_is_canceled():
    b = mk()
    rest(b, 1, 1, BUY, 100, 1)
    b.new_market(2, 1, BUY, 5)
    assert short(evs(b)) == [(ACC, 2, 5, 5, 0), (CXL, 2, 5, 0, R.NO_LIQUIDITY)]


def test_market_protection_band():
    b = mk(protection_ticks=1)
    rest(b, 1, 1, SELL, 100, 1)
    rest(b, 2, 1, SELL, 101, 1)
    rest(b, 3, 1, SELL, 102, 1)
    b.new_market(9, 2, BUY, 5)  # best ask 100: trades up to 101
    ev = evs(b)
    assert [t[1] for t in trades(ev)] == [1, 2]
    assert short(ev)[-1] == (CXL, 9, 3, 0, R.NO_LIQUIDITY)
    rest(b, 4, 1, BUY, 90, 1)
    rest(b, 5, 1, BUY, 89, 1)
    rest(b, 6, 1, BUY, 88, 1)
    b.new_market(10, 2, SELL, 5)  # best bid 90: trades down to 89
    assert [t[1] for t in trades(evs(b))] == [4, 5]


def test_market_worst_price():
    b = mk()
    ladder(b)
    b.new_market(20, 9, BUY, 10, price_ticks=101)
    ev = evs(b)
    assert ev[0]["price_ticks"] == 101
    assert [t[1] for t in trades(ev)] == [1, 2]
    assert ev[-1]["kind"] == CXL and ev[-1]["price_ticks"] == 101 and ev[-1]["qty_lots"] == 6
    b.new_market(21, 9, SELL, 10, price_ticks=99)
    assert [t[1] for t in trades(evs(b))] == [4]


def test_market_quote_spends_budget_by_whole_lots():
    b = mk(lot_step=2)
    rest(b, 1, 1, SELL, 100, 2)
    rest(b, 2, 1, SELL, 101, 4)
    rest(b, 3, 1, SELL, 103, 6)
    # 200 at 100 (budget 550 -> 350), then 350 // 101 = 3 -> 2 lots (202) -> 148,
    # then 148 // 103 = 1 -> 0 lots: the next lot does not fit
    assert b.new_market_quote(9, 2, 550) == 4
    ev = evs(b)
    assert short(ev)[0] == (ACC, 9, 550, 550, 0) and ev[0]["ord_type"] == QUOTE
    assert trades(ev) == [(9, 1, 100, 2, 350, MD), (9, 2, 101, 2, 148, 0)]
    assert short(ev)[-1] == (CXL, 9, 148, 0, R.BUDGET_EXHAUSTED)
    assert open_lots(b, 2) == 2


def test_market_quote_no_liquidity_and_exact_budget():
    b = mk()
    rest(b, 1, 1, SELL, 100, 2)
    b.new_market_quote(9, 2, 500)
    ev = evs(b)
    assert trades(ev) == [(9, 1, 100, 2, 300, MD)]
    assert short(ev)[-1] == (CXL, 9, 300, 0, R.NO_LIQUIDITY)
    rest(b, 2, 1, SELL, 100, 5)
    b.new_market_quote(10, 2, 300)  # spent exactly: taker done, no cancel
    assert short(evs(b)) == [(ACC, 10, 300, 300, 0), (TRD, 10, 3, 0, 0)]
    assert open_lots(b, 2) == 2


def test_market_quote_band():
    b = mk(protection_ticks=2)
    rest(b, 1, 1, SELL, 100, 1)
    rest(b, 2, 1, SELL, 103, 1)
    b.new_market_quote(9, 2, 1000)
    ev = evs(b)
    assert [t[1] for t in trades(ev)] == [1]
    assert short(ev)[-1] == (CXL, 9, 900, 0, R.NO_LIQUIDITY)


# ------------------------------------------------------------------- stops


def test_stop_limit_rests_in_stop_set_and_triggers():
    b = mk()
    ladder(b)
    assert b.new_stop(30, 7, BUY, STOP_LIMIT, 101, 102, 4) == 1
    [e] = evs(b)
    assert (e["kind"], e["price_ticks"], e["qty_lots"], e["ord_type"]) == (ACC, 102, 4, STOP_LIMIT)
    assert b.stops() == [(30, 7, BUY, STOP_LIMIT, GTC, 101, 102, 4, 0)]
    assert b.order(30) == (7, BUY, STOP_LIMIT, 102, 4, 101) and b.n_orders == 6
    b.new_limit(40, 8, BUY, 101, 1)  # trades at 101: the stop triggers
    ev = evs(b)
    trg = ev[2]
    assert (trg["order_id"], trg["price_ticks"], trg["qty_lots"], trg["leaves_lots"]) == (
        30,
        102,
        4,
        4,
    )
    assert trg["ord_type"] == STOP_LIMIT and trg["user_id"] == 7 and trg["side"] == BUY
    # 40 took 1 lot of id 1; the stop (limit 102, 4 lots) takes the rest at 101, then 102
    assert [e["kind"] for e in ev] == [ACC, TRD, TRG, TRD, TRD, TRD]
    assert trades(ev)[1:] == [
        (30, 1, 101, 1, 3, MD),
        (30, 2, 101, 2, 1, MD),
        (30, 3, 102, 1, 0, TD),
    ]
    assert ev[3]["ord_type"] == STOP_LIMIT and ev[3]["user_id"] == 7
    assert b.stops() == [] and b.order(30) is None


def test_triggered_stop_limit_rests_as_ordinary_order():
    b = mk()
    rest(b, 1, 1, SELL, 100, 1)
    b.new_stop(30, 7, BUY, STOP_LIMIT, 100, 99, 4)
    b.new_limit(2, 2, BUY, 100, 1)
    ev = evs(b)
    assert [e["kind"] for e in ev] == [ACC, ACC, TRD, TRG]
    assert b.order(30) == (7, BUY, STOP_LIMIT, 99, 4, 100)
    assert b.l3() == [(30, 7, BUY, 99, 4, 0)]
    assert b.replace(30, 98, 3) == 1 and b.reduce(30, 1) == 1
    assert b.order(30) == (7, BUY, STOP_LIMIT, 98, 1, 100)


def test_stop_market_triggers_with_band_at_trigger_time():
    b = mk(protection_ticks=1)
    rest(b, 1, 1, SELL, 100, 1)
    rest(b, 2, 1, SELL, 101, 1)
    rest(b, 3, 1, SELL, 102, 1)
    rest(b, 4, 1, SELL, 103, 1)
    b.new_stop(30, 7, BUY, STOP_MARKET, 100, 0, 5, tif=IOC)
    b.new_market(5, 2, BUY, 1)  # takes 100; the stop sees best ask 101: band 102
    ev = evs(b)
    assert [e["kind"] for e in ev] == [ACC, ACC, TRD, TRG, TRD, TRD, CXL]
    assert ev[3]["price_ticks"] == 0 and ev[3]["ord_type"] == STOP_MARKET
    assert [t[1] for t in trades(ev)] == [1, 2, 3]
    assert short(ev)[-1] == (CXL, 30, 3, 0, R.NO_LIQUIDITY)
    assert ev[-1]["ord_type"] == STOP_MARKET


def test_sell_stop_triggers_on_lower_price():
    b = mk()
    rest(b, 1, 1, BUY, 100, 1)
    rest(b, 2, 1, BUY, 95, 5)
    b.new_stop(30, 7, SELL, STOP_MARKET, 100, 0, 2, tif=IOC)
    b.new_stop(31, 7, SELL, STOP_LIMIT, 99, 96, 2)  # not reached by 100
    b.new_limit(3, 2, SELL, 100, 1)
    ev = evs(b)
    assert [(e["kind"], e["order_id"]) for e in ev] == [
        (ACC, 30),
        (ACC, 31),
        (ACC, 3),
        (TRD, 3),
        (TRG, 30),
        (TRD, 30),
        (TRG, 31),
    ]
    # 30 sold at 95, which reaches 31 (stop 99 >= 95): 31 rests at 96 (bids: none above)
    assert b.l3() == [(2, 1, BUY, 95, 3, 0), (31, 7, SELL, 96, 2, 0)]
    assert b.stops() == []


def test_stop_cascade_fifo_and_arrival_order_across_sides():
    b = mk()
    rest(b, 1, 1, SELL, 100, 1)
    rest(b, 2, 1, SELL, 101, 1)
    rest(b, 3, 1, BUY, 90, 10)
    # arrival order: 30 (sell stop, reached later by 101? no: sell stops trigger <=)
    b.new_stop(30, 5, BUY, STOP_MARKET, 101, 0, 1, tif=IOC)  # triggered by 101
    b.new_stop(31, 5, SELL, STOP_LIMIT, 100, 90, 1)  # triggered by 100 (last <= 100)
    b.new_stop(32, 5, BUY, STOP_LIMIT, 100, 100, 1)  # triggered by 100
    b.new_stop(33, 5, BUY, STOP_MARKET, 102, 0, 1, tif=IOC)  # never reached
    b.clear_events()
    b.new_limit(4, 2, BUY, 100, 1)  # trades at 100: 31 and 32 trigger (arrival order)
    ev = evs(b)
    assert [(e["kind"], e["order_id"]) for e in ev] == [
        (ACC, 4),
        (TRD, 4),
        (TRG, 31),
        (TRD, 31),  # sells to bid 90 at 90: last 90
        (TRG, 32),  # buy limit 100: asks 101 only, rests
    ]
    assert b.last_price() == 90
    assert [s[0] for s in b.stops()] == [30, 33]
    # now a trade at 101 triggers 30, whose fill at ... nothing left: canceled
    b.new_limit(5, 2, BUY, 101, 1)
    ev = evs(b)
    assert [(e["kind"], e["order_id"]) for e in ev] == [
        (ACC, 5),
        (TRD, 5),
        (TRG, 30),
        (CXL, 30),
    ]


def test_stop_cascade_chain():
    b = mk()
    for i, p in enumerate((100, 101, 102, 103)):
        rest(b, 1 + i, 1, SELL, p, 1)
    b.new_stop(30, 5, BUY, STOP_MARKET, 100, 0, 1, tif=IOC)  # fills at 101
    b.new_stop(31, 5, BUY, STOP_MARKET, 101, 0, 1, tif=IOC)  # then at 102
    b.new_stop(32, 5, BUY, STOP_LIMIT, 102, 103, 1)  # then at 103
    b.new_stop(33, 5, BUY, STOP_LIMIT, 104, 104, 1)  # never
    b.clear_events()
    b.new_market(9, 2, BUY, 1)
    ev = evs(b)
    assert [(e["kind"], e["order_id"], e["maker_order_id"]) for e in ev] == [
        (ACC, 9, 0),
        (TRD, 9, 1),
        (TRG, 30, 0),
        (TRD, 30, 2),
        (TRG, 31, 0),
        (TRD, 31, 3),
        (TRG, 32, 0),
        (TRD, 32, 4),
    ]
    assert b.last_price() == 103 and [s[0] for s in b.stops()] == [33]
    assert b.n_orders == 1


def test_triggered_fok_stop_not_fillable_is_canceled():
    b = mk()
    rest(b, 1, 1, SELL, 100, 1)
    rest(b, 2, 1, SELL, 101, 1)
    b.new_stop(30, 5, BUY, STOP_LIMIT, 100, 101, 5, tif=FOK)
    b.new_stop(31, 5, BUY, STOP_LIMIT, 100, 101, 1, tif=FOK)
    b.clear_events()
    b.new_limit(3, 2, BUY, 100, 1)
    ev = evs(b)
    assert [(e["kind"], e["order_id"], e["reason"]) for e in ev] == [
        (ACC, 3, 0),
        (TRD, 3, 0),
        (TRG, 30, 0),
        (CXL, 30, R.FOK_NOT_FILLABLE),
        (TRG, 31, 0),
        (TRD, 31, 0),
    ]
    assert ev[3]["qty_lots"] == 5 and ev[3]["price_ticks"] == 101


def test_triggered_ioc_stop_limit_remainder():
    b = mk()
    rest(b, 1, 1, SELL, 100, 2)
    b.new_stop(30, 5, BUY, STOP_LIMIT, 100, 100, 5, tif=IOC)
    b.new_limit(3, 2, BUY, 100, 1)
    assert short(evs(b))[-2:] == [(TRD, 30, 1, 4, 0), (CXL, 30, 4, 0, R.IOC_REMAINDER)]


def test_stop_would_trigger_and_stop_cancel():
    b = mk()
    rest(b, 1, 1, SELL, 100, 1)
    b.new_limit(2, 2, BUY, 100, 1)  # last = 100
    b.clear_events()
    b.new_stop(30, 5, BUY, STOP_LIMIT, 100, 100, 1)
    b.new_stop(31, 5, SELL, STOP_LIMIT, 100, 100, 1)
    b.new_stop(32, 5, BUY, STOP_LIMIT, 101, 101, 1)
    b.new_stop(33, 5, SELL, STOP_MARKET, 99, 0, 1, tif=IOC)
    assert [(e["kind"], e["reason"]) for e in evs(b)] == [
        (REJ, R.STOP_WOULD_TRIGGER),
        (REJ, R.STOP_WOULD_TRIGGER),
        (ACC, 0),
        (ACC, 0),
    ]
    assert b.cancel(32) == 1
    [e] = evs(b)
    assert (e["kind"], e["reason"], e["qty_lots"], e["price_ticks"], e["ord_type"]) == (
        CXL,
        R.USER_CANCELED,
        1,
        101,
        STOP_LIMIT,
    )
    assert [s[0] for s in b.stops()] == [33] and b.n_orders == 1


@pytest.mark.parametrize("cmd", ["reduce", "replace"])
def test_stop_orders_are_not_replaceable(cmd):
    b = mk()
    b.new_stop(30, 5, BUY, STOP_LIMIT, 100, 100, 4)
    b.clear_events()
    h = b.state_hash()
    if cmd == "reduce":
        b.reduce(30, 1)
    else:
        b.replace(30, 99, 4)
    assert [(e["kind"], e["reason"]) for e in evs(b)] == [(REJ, R.NOT_REPLACEABLE)]
    assert b.state_hash() == h


def test_many_stops_sorted_and_triggered_in_arrival_order():
    b = mk(capacity_orders=4)
    rnd = random.Random(5)
    prices = [rnd.randrange(101, 120) for _ in range(60)]
    for i, p in enumerate(prices):
        b.new_stop(100 + i, 5, BUY, STOP_LIMIT, p, 105, 1)  # rests when triggered
    rest(b, 1, 1, SELL, 110, 1)
    rest(b, 2, 1, SELL, 200, 1000)
    b.clear_events()
    b.new_limit(3, 2, BUY, 110, 1)
    trg = [e["order_id"] for e in evs(b) if e["kind"] == TRG]
    assert trg == [100 + i for i, p in enumerate(prices) if p <= 110]
    assert [s[0] for s in b.stops()] == [100 + i for i, p in enumerate(prices) if p > 110]
    assert b.l2(BUY) == [(105, len(trg), len(trg))]


# ----------------------------------------------------- self-trade prevention


def stp_book() -> Book:
    """Asks at 100: id 1 (user 1) x2, id 2 (user 2) x2, id 3 (user 1) x2."""
    b = mk()
    rest(b, 1, 1, SELL, 100, 2)
    rest(b, 2, 2, SELL, 100, 2)
    rest(b, 3, 1, SELL, 100, 2)
    return b


def test_stp_none_trades_with_itself():
    b = stp_book()
    b.new_limit(9, 1, BUY, 100, 2)
    assert trades(evs(b)) == [(9, 1, 100, 2, 0, TD | MD)]


def test_stp_cancel_newest():
    b = stp_book()
    b.new_limit(9, 1, BUY, 100, 5, stp=int(Stp.CANCEL_NEWEST))
    assert short(evs(b)) == [(ACC, 9, 5, 5, 0), (CXL, 9, 5, 0, R.SELF_TRADE)]
    assert [r[0] for r in b.l3()] == [1, 2, 3]


def test_stp_cancel_newest_after_some_fills():
    b = mk()
    rest(b, 1, 2, SELL, 100, 2)
    rest(b, 2, 1, SELL, 100, 2)
    b.new_limit(9, 1, BUY, 100, 5, stp=int(Stp.CANCEL_NEWEST))
    assert short(evs(b)) == [
        (ACC, 9, 5, 5, 0),
        (TRD, 9, 2, 3, 0),
        (CXL, 9, 3, 0, R.SELF_TRADE),
    ]
    assert b.order(9) is None and b.order(2) is not None


def test_stp_cancel_oldest_continues():
    b = stp_book()
    b.new_limit(9, 1, BUY, 100, 3, stp=int(Stp.CANCEL_OLDEST))
    ev = evs(b)
    assert short(ev) == [
        (ACC, 9, 3, 3, 0),
        (CXL, 1, 2, 0, R.SELF_TRADE),
        (TRD, 9, 2, 1, 0),
        (CXL, 3, 2, 0, R.SELF_TRADE),
    ]
    assert ev[1]["user_id"] == 1 and ev[1]["price_ticks"] == 100 and ev[1]["side"] == SELL
    # the taker's remainder (1 lot) rests: GTC
    assert b.l3() == [(9, 1, BUY, 100, 1, 0)]


def test_stp_cancel_both():
    b = stp_book()
    b.new_limit(9, 1, BUY, 100, 3, stp=int(Stp.CANCEL_BOTH))
    assert short(evs(b)) == [
        (ACC, 9, 3, 3, 0),
        (CXL, 1, 2, 0, R.SELF_TRADE),
        (CXL, 9, 3, 0, R.SELF_TRADE),
    ]
    assert [r[0] for r in b.l3()] == [2, 3]


def test_stp_decrement_taker_larger():
    b = stp_book()
    b.new_limit(9, 1, BUY, 100, 5, stp=int(Stp.DECREMENT))
    ev = evs(b)
    assert short(ev) == [
        (ACC, 9, 5, 5, 0),
        (CXL, 1, 2, 0, R.SELF_TRADE),  # maker decremented to 0
        (RED, 9, 2, 3, R.SELF_TRADE),  # taker decremented by 2, continues
        (TRD, 9, 2, 1, 0),
        (RED, 3, 1, 1, R.SELF_TRADE),  # maker 3 keeps 1
        (CXL, 9, 1, 0, R.SELF_TRADE),  # taker decremented to 0
    ]
    assert b.l3() == [(3, 1, SELL, 100, 1, 0)]
    assert b.l2(SELL) == [(100, 1, 1)]


def test_stp_decrement_equal():
    b = mk()
    rest(b, 1, 1, SELL, 100, 2)
    b.new_limit(9, 1, BUY, 100, 2, stp=int(Stp.DECREMENT))
    assert short(evs(b)) == [
        (ACC, 9, 2, 2, 0),
        (CXL, 1, 2, 0, R.SELF_TRADE),
        (CXL, 9, 2, 0, R.SELF_TRADE),
    ]
    assert b.n_orders == 0


def test_stp_market_quote_decrement_acts_as_cancel_newest():
    b = stp_book()
    b.new_market_quote(9, 1, 10_000, stp=int(Stp.DECREMENT))
    assert short(evs(b)) == [(ACC, 9, 10_000, 10_000, 0), (CXL, 9, 10_000, 0, R.SELF_TRADE)]
    assert b.n_orders == 3


def test_stp_only_same_user():
    b = stp_book()
    b.new_limit(9, 2, BUY, 100, 1, stp=int(Stp.CANCEL_BOTH))
    assert trades(evs(b)) == [(9, 1, 100, 1, 0, TD)]


# ------------------------------------------------------------ replace rules


def test_replace_same_price_smaller_qty_keeps_priority():
    b = mk()
    rest(b, 1, 1, BUY, 100, 5)
    rest(b, 2, 2, BUY, 100, 5)
    assert b.replace(1, 100, 3) == 1
    [e] = evs(b)
    assert (e["kind"], e["order_id"], e["price_ticks"], e["qty_lots"], e["leaves_lots"]) == (
        REP,
        1,
        100,
        3,
        3,
    )
    assert (e["user_id"], e["side"], e["ord_type"], e["reason"]) == (1, BUY, LIMIT, 0)
    assert [r[0] for r in b.l3()] == [1, 2] and b.l2(BUY) == [(100, 8, 2)]


def test_replace_same_price_larger_qty_loses_priority():
    b = mk()
    rest(b, 1, 1, BUY, 100, 5)
    rest(b, 2, 2, BUY, 100, 5)
    b.replace(1, 100, 6)
    assert [r[0] for r in b.l3()] == [2, 1] and b.l2(BUY) == [(100, 11, 2)]


def test_replace_new_price_goes_to_back_of_new_level():
    b = mk()
    rest(b, 1, 1, BUY, 100, 5)
    rest(b, 2, 2, BUY, 99, 5)
    rest(b, 3, 3, BUY, 98, 5)
    b.replace(1, 99, 5)
    assert [r[0] for r in b.l3()] == [2, 1, 3]
    assert b.l2(BUY) == [(99, 10, 2), (98, 5, 1)]
    b.replace(3, 101, 2)
    assert b.l2(BUY) == [(101, 2, 1), (99, 10, 2)] and b.best_bid() == 101


def test_replace_crossing_matches_then_rests():
    b = mk()
    ladder(b)
    b.replace(4, 101, 5)  # bid 99x2 -> 101x5: takes the 4 lots at 101, rests 1
    ev = evs(b)
    assert [e["kind"] for e in ev] == [REP, TRD, TRD]
    assert trades(ev) == [(4, 1, 101, 2, 3, MD), (4, 2, 101, 2, 1, MD)]
    assert b.order(4) == (4, BUY, LIMIT, 101, 1, 0) and b.best_bid() == 101


def test_replace_crossing_uses_own_stp_mode():
    b = mk()
    rest(b, 1, 1, SELL, 101, 2)
    rest(b, 2, 1, BUY, 100, 2, stp=int(Stp.CANCEL_NEWEST))
    b.replace(2, 101, 2)
    assert short(evs(b)) == [(REP, 2, 2, 2, 0), (CXL, 2, 2, 0, R.SELF_TRADE)]
    assert b.order(2) is None and b.n_orders == 1


def test_replace_fully_filled_leaves_book():
    b = mk()
    ladder(b)
    b.replace(5, 102, 4)
    ev = evs(b)
    assert trades(ev) == [(5, 1, 101, 2, 2, MD), (5, 2, 101, 2, 0, TD | MD)]
    assert b.order(5) is None and b.n_orders == 2


def test_replace_triggers_stops():
    b = mk()
    ladder(b)
    b.new_stop(30, 9, SELL, STOP_MARKET, 101, 0, 1, tif=IOC)
    b.clear_events()
    b.replace(4, 101, 1)
    assert [(e["kind"], e["order_id"]) for e in evs(b)] == [
        (REP, 4),
        (TRD, 4),
        (TRG, 30),
        (TRD, 30),
    ]


@pytest.mark.parametrize(
    ("oid", "price", "qty", "reason"),
    [
        (77, 100, 1, R.UNKNOWN_ORDER_ID),
        (4, 99, 0, R.INVALID_QTY),
        (4, 99, -3, R.INVALID_QTY),
        (4, 99, 3, R.QTY_OFF_LOT),
        (4, 99, 1002, R.QTY_OUT_OF_RANGE),
        (4, 97, 2, R.PRICE_OFF_TICK),
        (4, 201, 2, R.PRICE_OUT_OF_BAND),
        (4, 96, 2, R.PRICE_OUT_OF_BAND),
        (4, 99, 2, R.REPLACE_NO_CHANGE),
        (6, 102, 2, R.POST_ONLY_WOULD_TAKE),
    ],
)
def test_replace_rejects(oid, price, qty, reason):
    b = mk(tick_step=3, lot_step=2, max_qty_lots=1000, min_price_ticks=99, max_price_ticks=150)
    rest(b, 1, 1, SELL, 102, 2)
    rest(b, 4, 4, BUY, 99, 2)
    rest(b, 6, 4, BUY, 99, 2, post_only=True)
    h = b.state_hash()
    assert b.replace(oid, price, qty) == 1
    [e] = evs(b)
    assert (e["kind"], e["reason"], e["order_id"], e["price_ticks"], e["qty_lots"]) == (
        REJ,
        reason,
        oid,
        price,
        qty,
    )
    assert (e["user_id"], e["side"], e["ord_type"], e["leaves_lots"]) == (0, 0, 0, 0)
    assert b.state_hash() == h


def test_replace_notional_overflow():
    b = mk(max_price_ticks=2**40, max_qty_lots=2**40)
    rest(b, 1, 1, BUY, 100, 2)
    b.replace(1, 2**40, 2**30)
    assert evs(b)[0]["reason"] == R.NOTIONAL_OVERFLOW


def test_post_only_replace_not_crossing_is_allowed():
    b = mk()
    rest(b, 1, 1, SELL, 102, 2)
    rest(b, 2, 1, BUY, 99, 2, post_only=True)
    assert b.replace(2, 101, 2) == 1
    assert b.l3()[0] == (2, 1, BUY, 101, 2, int(CmdFlag.POST_ONLY))


# ------------------------------------------------------------------ reduce


def test_reduce_keeps_priority():
    b = mk()
    rest(b, 1, 1, SELL, 100, 5)
    rest(b, 2, 2, SELL, 100, 5)
    assert b.reduce(1, 2) == 1
    [e] = evs(b)
    assert (e["kind"], e["qty_lots"], e["leaves_lots"], e["reason"], e["price_ticks"]) == (
        RED,
        3,
        2,
        0,
        100,
    )
    assert [r[0] for r in b.l3()] == [1, 2] and b.l2(SELL) == [(100, 7, 2)]


def test_reduce_to_zero_cancels():
    b = mk()
    rest(b, 1, 1, SELL, 100, 5)
    b.reduce(1, 0)
    assert short(evs(b)) == [(CXL, 1, 5, 0, R.USER_CANCELED)]
    assert b.n_orders == 0 and b.best_ask() == 0


@pytest.mark.parametrize(
    ("oid", "leaves", "reason"),
    [
        (9, 1, R.UNKNOWN_ORDER_ID),
        (1, -2, R.INVALID_QTY),
        (1, 6, R.REDUCE_NOT_SMALLER),
        (1, 8, R.REDUCE_NOT_SMALLER),
        (1, 3, R.QTY_OFF_LOT),
        (30, 2, R.NOT_REPLACEABLE),
    ],
)
def test_reduce_rejects(oid, leaves, reason):
    b = mk(lot_step=2)
    rest(b, 1, 1, SELL, 100, 6)
    b.new_stop(30, 5, BUY, STOP_LIMIT, 110, 110, 4)
    b.clear_events()
    h = b.state_hash()
    b.reduce(oid, leaves)
    assert short(evs(b)) == [(REJ, oid, leaves, 0, reason)]
    assert b.state_hash() == h


# ------------------------------------------------------------------ cancel


def test_cancel_resting_and_unknown():
    b = mk()
    ladder(b)
    assert b.cancel(2) == 1
    [e] = evs(b)
    assert (e["kind"], e["reason"], e["qty_lots"], e["leaves_lots"], e["price_ticks"]) == (
        CXL,
        R.USER_CANCELED,
        2,
        0,
        101,
    )
    assert (e["user_id"], e["side"], e["ord_type"]) == (2, SELL, LIMIT)
    assert b.cancel(2) == 1
    assert short(evs(b)) == [(REJ, 2, 0, 0, R.UNKNOWN_ORDER_ID)]
    b.cancel(1)  # the best level empties
    assert b.best_ask() == 102 and b.n_orders == 3


# ------------------------------------------------------------- mass cancel


def mass_book() -> Book:
    b = mk()
    rest(b, 1, 1, BUY, 99, 1)
    rest(b, 2, 2, BUY, 100, 1)
    rest(b, 3, 1, BUY, 100, 1)
    rest(b, 4, 1, SELL, 102, 1)
    rest(b, 5, 2, SELL, 101, 1)
    rest(b, 6, 1, SELL, 101, 1)
    b.new_stop(7, 1, SELL, STOP_LIMIT, 90, 90, 1)
    b.new_stop(8, 2, BUY, STOP_LIMIT, 110, 110, 1)
    b.new_stop(9, 1, BUY, STOP_MARKET, 111, 0, 1, tif=IOC)
    b.clear_events()
    return b


def test_mass_cancel_by_user_order_of_events():
    b = mass_book()
    assert b.mass_cancel(1) == 6
    ev = evs(b)
    assert [e["order_id"] for e in ev] == [3, 1, 6, 4, 7, 9]
    assert {(e["kind"], e["reason"], e["leaves_lots"]) for e in ev} == {(CXL, R.MASS_CANCELED, 0)}
    assert [r[0] for r in b.l3()] == [2, 5] and [s[0] for s in b.stops()] == [8]


def test_mass_cancel_by_user_and_side():
    b = mass_book()
    b.mass_cancel(1, SELL)
    assert [e["order_id"] for e in evs(b)] == [6, 4, 7]
    assert [r[0] for r in b.l3()] == [2, 3, 1, 5]


def test_mass_cancel_all_users():
    b = mass_book()
    assert b.mass_cancel(0, 0, True) == 9
    assert [e["order_id"] for e in evs(b)] == [2, 3, 1, 5, 6, 4, 7, 8, 9]
    assert b.n_orders == 0 and b.l3() == [] and b.stops() == []
    assert b.best_bid() == 0 and b.best_ask() == 0


def test_mass_cancel_all_users_one_side():
    b = mass_book()
    b.mass_cancel(123, BUY, all_users=True)
    assert [e["order_id"] for e in evs(b)] == [2, 3, 1, 8, 9]


def test_mass_cancel_nothing_matches():
    b = mass_book()
    h = b.state_hash()
    assert b.mass_cancel(42) == 0 and evs(b) == [] and b.state_hash() == h


def test_mass_cancel_bad_side():
    b = mass_book()
    h = b.state_hash()
    assert b.mass_cancel(1, 3) == 1
    [e] = evs(b)
    assert (e["kind"], e["reason"], e["user_id"], e["side"]) == (REJ, R.INVALID_SIDE, 1, 3)
    assert b.state_hash() == h


def test_mass_cancel_many_levels_keeps_others():
    b = mk(capacity_orders=8)
    for i in range(300):
        rest(b, i + 1, 1 + i % 3, BUY if i % 2 else SELL, 1000 + i if i % 2 else 2000 + i, 1)
    before = [r for r in b.l3() if r[1] != 2]
    b.mass_cancel(2)
    assert b.l3() == before and b.n_orders == 200


# ----------------------------------------------------------------- rejects


def new(b: Book, **kw) -> list[dict[str, int]]:
    """new_order with defaults (a valid LIMIT GTC BUY 1 @ 100) overridden by kw."""
    a = {
        "order_id": 50,
        "user_id": 5,
        "side": BUY,
        "ord_type": LIMIT,
        "tif": GTC,
        "price_ticks": 100,
        "qty_lots": 2,
        "stop_price_ticks": 0,
        "stp": 0,
        "flags": 0,
    }
    a.update(kw)
    b.new_order(*a.values())
    return evs(b)


REJECTS = [
    ({"side": 0}, R.INVALID_SIDE),
    ({"side": 3}, R.INVALID_SIDE),
    ({"side": 2, "ord_type": QUOTE, "tif": IOC}, R.INVALID_SIDE),
    ({"ord_type": 0}, R.INVALID_ORDER_TYPE),
    ({"ord_type": 6}, R.INVALID_ORDER_TYPE),
    ({"tif": 0}, R.INVALID_TIF),
    ({"tif": 4}, R.INVALID_TIF),
    ({"ord_type": MARKET, "tif": GTC}, R.INVALID_TIF),
    ({"ord_type": MARKET, "tif": FOK}, R.INVALID_TIF),
    ({"ord_type": QUOTE, "tif": GTC}, R.INVALID_TIF),
    ({"ord_type": STOP_MARKET, "tif": GTC, "stop_price_ticks": 110}, R.INVALID_TIF),
    ({"stp": 5}, R.INVALID_STP),
    ({"stp": 255}, R.INVALID_STP),
    ({"flags": 2}, R.INVALID_FLAGS),
    ({"flags": 4}, R.INVALID_FLAGS),
    ({"flags": 1, "tif": IOC}, R.INVALID_FLAGS),
    ({"flags": 1, "ord_type": MARKET, "tif": IOC}, R.INVALID_FLAGS),
    ({"flags": 1, "ord_type": STOP_LIMIT, "stop_price_ticks": 110}, R.INVALID_FLAGS),
    ({"order_id": 2}, R.DUPLICATE_ORDER_ID),
    ({"order_id": 30}, R.DUPLICATE_ORDER_ID),  # a stop order's id
    ({"qty_lots": 0}, R.INVALID_QTY),
    ({"qty_lots": -2}, R.INVALID_QTY),
    ({"ord_type": QUOTE, "tif": IOC, "qty_lots": 0}, R.INVALID_QTY),
    ({"qty_lots": 3}, R.QTY_OFF_LOT),
    ({"qty_lots": 1002}, R.QTY_OUT_OF_RANGE),
    ({"qty_lots": 0, "side": 1, "price_ticks": 1}, R.INVALID_QTY),
    ({"price_ticks": 101}, R.PRICE_OFF_TICK),
    ({"price_ticks": 0}, R.PRICE_OUT_OF_BAND),
    ({"price_ticks": -4}, R.PRICE_OUT_OF_BAND),
    ({"price_ticks": 52}, R.PRICE_OUT_OF_BAND),
    ({"price_ticks": 2**40}, R.PRICE_OUT_OF_BAND),
    ({"ord_type": MARKET, "tif": IOC, "price_ticks": 101}, R.PRICE_OFF_TICK),
    ({"ord_type": MARKET, "tif": IOC, "price_ticks": 2**40}, R.PRICE_OUT_OF_BAND),
    (
        {"ord_type": STOP_MARKET, "tif": IOC, "price_ticks": 3, "stop_price_ticks": 110},
        R.PRICE_OFF_TICK,
    ),
    ({"ord_type": STOP_LIMIT, "stop_price_ticks": 111}, R.PRICE_OFF_TICK),
    ({"ord_type": STOP_LIMIT, "stop_price_ticks": 0}, R.PRICE_OUT_OF_BAND),
    ({"ord_type": STOP_MARKET, "tif": IOC, "stop_price_ticks": 10**9}, R.PRICE_OUT_OF_BAND),
    ({"ord_type": STOP_LIMIT, "price_ticks": 101, "stop_price_ticks": 0}, R.PRICE_OFF_TICK),
    ({"ord_type": STOP_LIMIT, "stop_price_ticks": 98}, R.STOP_WOULD_TRIGGER),
    ({"ord_type": STOP_LIMIT, "side": SELL, "stop_price_ticks": 102}, R.STOP_WOULD_TRIGGER),
    ({"side": SELL, "price_ticks": 98, "flags": 1}, R.POST_ONLY_WOULD_TAKE),
    ({"price_ticks": 102, "tif": FOK, "qty_lots": 8}, R.FOK_NOT_FILLABLE),
]


@pytest.mark.parametrize(("kw", "reason"), REJECTS)
def test_new_order_rejects(kw, reason):
    """Each reject reason of a new order: one REJECTED event, nothing changes."""
    b = mk(tick_step=2, lot_step=2, max_qty_lots=1000, min_price_ticks=60, max_price_ticks=10**6)
    rest(b, 1, 1, SELL, 102, 2)
    rest(b, 2, 2, SELL, 104, 2)
    rest(b, 3, 3, BUY, 98, 2)
    b.new_limit(4, 4, BUY, 102, 2)  # last price 102
    b.new_stop(30, 3, BUY, STOP_LIMIT, 120, 120, 2)
    b.clear_events()
    h, n = b.state_hash(), b.n_orders
    [e] = new(b, **kw)
    a = {
        "order_id": 50,
        "user_id": 5,
        "side": BUY,
        "ord_type": LIMIT,
        "price_ticks": 100,
        "qty_lots": 2,
    } | {k: v for k, v in kw.items() if k not in ("tif", "stp", "flags", "stop_price_ticks")}
    assert e["kind"] == REJ and e["reason"] == reason
    for k, v in a.items():
        assert e[k] == (v & 0xFF if k in ("side", "ord_type") else v), k
    assert e["leaves_lots"] == 0 and e["seq"] == 11 and e["symbol_id"] == 7
    assert b.state_hash() == h and b.n_orders == n


def test_notional_overflow():
    b = mk(max_price_ticks=2**62, max_qty_lots=2**62)
    new(b, price_ticks=2**32, qty_lots=2**31 - 1)  # fits
    assert [e["kind"] for e in new(b, order_id=51, price_ticks=2**32, qty_lots=2**31)] == [REJ]
    assert new(b, order_id=52, price_ticks=2**33, qty_lots=2**31)[0]["reason"] == (
        R.NOTIONAL_OVERFLOW
    )
    e = new(b, order_id=53, ord_type=MARKET, tif=IOC, price_ticks=2**40, qty_lots=2**40)
    assert e[0]["reason"] == R.NOTIONAL_OVERFLOW
    # a market budget is not a quantity: no overflow check and no lot/range checks
    assert new(b, order_id=54, ord_type=QUOTE, tif=IOC, qty_lots=2**63 - 1)[0]["kind"] == ACC


@pytest.mark.parametrize(
    ("kw", "reason"),
    [  # several checks fail: the first in docs/book.md order wins
        ({"side": 0, "ord_type": 0, "tif": 0}, R.INVALID_SIDE),
        ({"ord_type": 9, "tif": 0, "stp": 9}, R.INVALID_ORDER_TYPE),
        ({"tif": 9, "stp": 9, "flags": 8}, R.INVALID_TIF),
        ({"stp": 9, "flags": 8, "order_id": 3}, R.INVALID_STP),
        ({"flags": 8, "order_id": 3}, R.INVALID_FLAGS),
        ({"order_id": 3, "qty_lots": 0}, R.DUPLICATE_ORDER_ID),
        ({"qty_lots": -1, "price_ticks": 1}, R.INVALID_QTY),
        ({"qty_lots": 3, "price_ticks": 1}, R.QTY_OFF_LOT),
        ({"qty_lots": 2000, "price_ticks": 1}, R.QTY_OUT_OF_RANGE),
        ({"price_ticks": 1}, R.PRICE_OFF_TICK),
        ({"price_ticks": 2**62, "qty_lots": 4}, R.PRICE_OUT_OF_BAND),
        ({"ord_type": STOP_LIMIT, "price_ticks": 1, "stop_price_ticks": 1}, R.PRICE_OFF_TICK),
        ({"ord_type": STOP_LIMIT, "stop_price_ticks": 1}, R.PRICE_OFF_TICK),
        ({"ord_type": STOP_LIMIT, "stop_price_ticks": 2}, R.PRICE_OUT_OF_BAND),
        ({"ord_type": STOP_LIMIT, "stop_price_ticks": 100}, R.STOP_WOULD_TRIGGER),
        ({"order_id": 60, "price_ticks": 102, "flags": 1}, R.BOOK_FULL),
    ],
)
def test_validation_order(kw, reason):
    b = mk(tick_step=2, lot_step=2, max_qty_lots=1000, min_price_ticks=60, max_orders=3)
    rest(b, 1, 1, SELL, 102, 2)
    b.new_limit(2, 2, BUY, 102, 2)  # trades: last price 102
    rest(b, 3, 3, SELL, 104, 2)
    if reason == R.BOOK_FULL:
        rest(b, 4, 3, SELL, 106, 2)
        rest(b, 5, 3, SELL, 108, 2)
    b.clear_events()
    assert new(b, **kw)[0]["reason"] == reason


def test_negative_or_too_large_ids_are_python_errors():
    b = mk()
    with pytest.raises(OverflowError):
        b.new_limit(-1, 1, BUY, 100, 1)
    with pytest.raises(OverflowError):
        b.new_limit(1, 2**32, BUY, 100, 1)
    with pytest.raises(OverflowError):
        b.cancel(2**64)
    assert b.n_orders == 0 and len(b.events()) == 0


def test_bad_config_raises():
    bad: list[dict[str, Any]] = [
        {"tick_step": 0},
        {"lot_step": -1},
        {"min_qty_lots": 0},
        {"min_qty_lots": 5, "max_qty_lots": 4},
        {"min_price_ticks": 0},
        {"min_price_ticks": 9, "max_price_ticks": 8},
        {"protection_ticks": -1},
        {"capacity_orders": 0},
        {"max_orders": 0},
        {"max_orders": 2**31},
    ]
    for cfg in bad:
        with pytest.raises(ValueError):
            Book(1, **cfg)
    with pytest.raises(ValueError):
        Book(70000)


# -------------------------------------------------------- pool and BOOK_FULL


def test_pool_grows_beyond_capacity():
    b = mk(capacity_orders=2)
    rnd = random.Random(3)
    for i in range(1, 3001):
        side = BUY if i % 2 else SELL
        price = 1000 - rnd.randrange(1, 500) if side == BUY else 1000 + rnd.randrange(1, 500)
        rest(b, i, i % 7, side, price, 1 + i % 5)
    assert b.n_orders == 3000 and b.capacity == 4096
    b.check_invariants()
    for i in range(1, 3001, 3):
        assert b.cancel(i) == 1
    assert b.n_orders == 2000
    b.check_invariants()
    assert sum(r[4] for r in b.l3()) == sum(lv[1] for s in (BUY, SELL) for lv in b.l2(s))


def test_book_full_at_max_orders():
    b = mk(capacity_orders=1, max_orders=3)
    rest(b, 1, 1, BUY, 90, 1)
    rest(b, 2, 1, SELL, 110, 1)
    b.new_stop(3, 1, BUY, STOP_LIMIT, 120, 120, 1)
    assert b.n_orders == 3 and b.capacity == 3
    h = b.state_hash()
    for args in ((4, 1, BUY, 91, 1), (5, 1, BUY, 110, 1, IOC)):
        b.clear_events()
        b.new_limit(*args)
        assert short(evs(b))[0][-1] == R.BOOK_FULL
    b.new_market(6, 1, SELL, 1)
    assert evs(b)[0]["reason"] == R.BOOK_FULL
    assert b.state_hash() == h
    b.cancel(3)  # frees a slot
    b.clear_events()
    b.new_limit(4, 1, BUY, 91, 1)
    assert evs(b)[0]["kind"] == ACC and b.n_orders == 3


# ------------------------------------------------------------- dumps, hash


def test_l2_depth_and_l3_priority_order():
    b = mk()
    ladder(b)
    rest(b, 6, 6, BUY, 99, 1)
    assert b.l2(SELL) == [(101, 4, 2), (102, 3, 1)]
    assert b.l2(SELL, 1) == [(101, 4, 2)]
    assert b.l2(BUY) == [(99, 3, 2), (98, 5, 1)]
    assert b.l2(BUY, 0) == []
    assert [r[0] for r in b.l3()] == [4, 6, 5, 1, 2, 3]
    with pytest.raises(ValueError):
        b.l2(0)


def canonical_hash(b: Book) -> bytes:
    """docs/book.md: symbol_id, last_price, next match_id, l3_full rows, stop rows; int64 LE."""
    ints = [b.symbol_id, b.last_price(), b.next_match_id]
    for row in b.l3_full():
        ints += row
    for stop in b.stops():
        ints += stop
    data = b"".join(struct.pack("<Q", v & (2**64 - 1)) for v in ints)
    return hashlib.blake2b(data, digest_size=16).digest()


def test_state_hash_is_the_canonical_dump():
    b = mk()
    assert b.state_hash() == canonical_hash(b)
    ladder(b)
    b.new_limit(2**64 - 1, 2**32 - 1, BUY, 101, 1)  # trades; huge ids
    rest(b, 2**63 + 5, 3, BUY, 97, 1)
    b.new_stop(30, 5, SELL, STOP_LIMIT, 90, 89, 1, stp=3)
    b.new_stop(31, 5, BUY, STOP_MARKET, 110, 0, 1, tif=IOC)
    assert b.next_match_id == 2 and len(b.stops()) == 2
    assert b.state_hash() == canonical_hash(b)
    assert len(b.state_hash()) == 16


def test_state_hash_equal_books_and_differences():
    def build(order=(1, 2)) -> Book:
        b = mk()
        for oid in order:
            rest(b, oid, oid, BUY, 100, 1)
        rest(b, 3, 3, SELL, 105, 2)
        return b

    a, c = build(), build()
    assert a.state_hash() == c.state_hash()
    assert build((2, 1)).state_hash() != a.state_hash()  # priority differs
    c.replace(1, 100, 2)  # loses priority, more lots
    assert c.state_hash() != a.state_hash()
    d = build()
    d.reduce(3, 1)
    assert d.state_hash() != a.state_hash()
    e, f = build(), build()
    e.new_limit(9, 9, BUY, 105, 1)  # a trade: last price and match id change
    f.reduce(3, 1)
    assert e.l3() == f.l3() and e.state_hash() != f.state_hash()
    g = build()
    g.new_stop(30, 5, BUY, STOP_LIMIT, 110, 110, 1)
    assert g.state_hash() != a.state_hash()
    g.cancel(30)
    assert g.state_hash() == a.state_hash()  # stop arrival counters are not state


def test_same_state_through_different_paths_hashes_equal():
    a, b = mk(), mk()
    rest(a, 1, 1, BUY, 100, 3)
    rest(b, 1, 1, BUY, 101, 7)
    b.replace(1, 100, 3)  # back to the same state
    rest(a, 2, 1, SELL, 110, 1)
    rest(b, 9, 1, SELL, 111, 1)
    rest(b, 2, 1, SELL, 110, 1)
    b.cancel(9)
    assert a.state_hash() == b.state_hash()


def test_events_view_and_shared_buffer():
    eb = EventBuf(2)
    b1 = Book(1, events=eb)
    b2 = Book(2, events=eb)
    _BOOKS.extend([b1, b2])
    b1.new_limit(1, 1, BUY, 100, 1)
    b2.new_limit(1, 1, BUY, 100, 1)
    b1.new_limit(2, 1, BUY, 100, 1)
    assert len(eb) == 3 and eb.view()["symbol_id"].tolist() == [1, 2, 1]
    assert b1.events().dtype == EV_DTYPE and len(b2.events()) == 3
    b1.clear_events()
    assert len(eb) == 0 and len(b2.events()) == 0


# -------------------------------------------------------------- batch API


def cmd_records(cmds: list[tuple[int, dict[str, int]]]) -> np.ndarray:
    """CMD_DTYPE records from (kind, fields dict) pairs; seq = 100 + i, ts = 7 * seq."""
    recs = np.zeros(len(cmds), dtype=CMD_DTYPE)
    for i, (kind, fields) in enumerate(cmds):
        recs[i]["kind"] = kind
        recs[i]["seq"] = 100 + i
        recs[i]["ts_ns"] = 7 * (100 + i)
        for k, v in fields.items():
            recs[i][k] = v
    return recs


def run_per_call(b: Book, recs: np.ndarray) -> list[Any]:
    """The per-command API on the same records (seq / ts_ns set per command)."""
    for r in recs:
        b.seq, b.ts_ns = int(r["seq"]), int(r["ts_ns"])
        k = int(r["kind"])
        if k == CmdKind.NEW:
            b.new_order(
                *(
                    int(r[f])
                    for f in (
                        "order_id",
                        "user_id",
                        "side",
                        "ord_type",
                        "tif",
                        "price_ticks",
                        "qty_lots",
                        "stop_price_ticks",
                        "stp",
                        "flags",
                    )
                )
            )
        elif k == CmdKind.CANCEL:
            b.cancel(int(r["order_id"]))
        elif k == CmdKind.REDUCE:
            b.reduce(int(r["order_id"]), int(r["qty_lots"]))
        elif k == CmdKind.REPLACE:
            b.replace(int(r["order_id"]), int(r["price_ticks"]), int(r["qty_lots"]))
        elif k == CmdKind.MASS_CANCEL:
            all_users = bool(int(r["flags"]) & CmdFlag.MASS_ALL_USERS)
            b.mass_cancel(int(r["user_id"]), int(r["side"]), all_users)
    out: list[Any] = b.events().tolist()
    return out


def random_records(n: int, seed: int, unknown: bool = False) -> np.ndarray:
    """A mixed stream of every command kind on a narrow price range.

    With ``unknown`` about 1% of the records have a kind the book does not know.
    """
    rnd = random.Random(seed)
    cmds: list[tuple[int, dict[str, int]]] = []
    for i in range(n):
        oid = rnd.randrange(1, i + 2)
        r = rnd.random()
        if r < 0.5:
            ord_type = rnd.choice([LIMIT] * 6 + [MARKET, QUOTE, STOP_LIMIT, STOP_MARKET])
            tif = rnd.choice([GTC, GTC, IOC, FOK]) if ord_type in (LIMIT, STOP_LIMIT) else IOC
            cmds.append(
                (
                    CmdKind.NEW,
                    {
                        "order_id": i + 1,
                        "user_id": rnd.randrange(1, 4),
                        "side": rnd.choice([1, 2]),
                        "ord_type": ord_type,
                        "tif": tif,
                        "price_ticks": rnd.randrange(95, 106),
                        "qty_lots": rnd.randrange(1, 6)
                        if ord_type != QUOTE
                        else rnd.randrange(1, 900),
                        "stop_price_ticks": rnd.randrange(95, 106),
                        "stp": rnd.randrange(0, 5),
                        "flags": rnd.choice([0, 0, 0, 1])
                        if tif == GTC and ord_type == LIMIT
                        else 0,
                    },
                )
            )
        elif r < 0.65:
            cmds.append((CmdKind.CANCEL, {"order_id": oid}))
        elif r < 0.72:
            cmds.append((CmdKind.REDUCE, {"order_id": oid, "qty_lots": rnd.randrange(0, 4)}))
        elif r < 0.97:
            cmds.append(
                (
                    CmdKind.REPLACE,
                    {
                        "order_id": oid,
                        "price_ticks": rnd.randrange(95, 106),
                        "qty_lots": rnd.randrange(1, 6),
                    },
                )
            )
        elif r < 0.99 or not unknown:
            cmds.append(
                (
                    CmdKind.MASS_CANCEL,
                    {
                        "user_id": rnd.randrange(1, 4),
                        "side": rnd.randrange(0, 3),
                        "flags": rnd.choice([0, int(CmdFlag.MASS_ALL_USERS)]),
                    },
                )
            )
        else:
            cmds.append((rnd.choice([0, 6, 99]), {"order_id": oid, "user_id": 1}))
    return cmd_records(cmds)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_equals_per_call(seed):
    recs = random_records(1500, seed)
    per_call = mk(max_orders=200)
    want = run_per_call(per_call, recs)
    batch = mk(max_orders=200)
    got = batch.process(recs)
    assert got.tolist() == want
    assert batch.events().tolist() == want
    assert batch.state_hash() == per_call.state_hash()
    assert batch.seq == int(recs["seq"][-1]) and batch.ts_ns == int(recs["ts_ns"][-1])
    kinds = set(got["kind"].tolist())
    assert {ACC, REJ, TRD, CXL, RED, REP, TRG} <= kinds
    # events carry the seq / ts_ns of the command that produced them
    assert set(got["seq"].tolist()) <= set(recs["seq"].tolist())
    assert (got["ts_ns"] == 7 * got["seq"]).all()


def test_batch_clears_previous_events_and_takes_strided_input():
    recs = random_records(200, 9)
    a, b = mk(), mk()
    a.new_limit(10**9, 1, BUY, 50, 1)
    b.new_limit(10**9, 1, BUY, 50, 1)
    two = np.zeros(2 * len(recs), dtype=CMD_DTYPE)
    two[::2] = recs
    got = a.process(two[::2])
    assert got.tolist() == b.process(recs).tolist()
    assert got[0]["seq"] == 100


def test_batch_unknown_kind_and_bad_input():
    b = mk()
    recs = cmd_records(
        [
            (
                0,
                {
                    "order_id": 5,
                    "user_id": 2,
                    "side": 1,
                    "ord_type": 1,
                    "price_ticks": 100,
                    "qty_lots": 3,
                },
            )
        ]
    )
    [e] = b.process(recs).tolist()
    e = dict(zip(EV_NAMES, e, strict=True))
    assert (e["kind"], e["reason"], e["order_id"], e["user_id"], e["qty_lots"]) == (
        REJ,
        R.UNKNOWN_COMMAND,
        5,
        2,
        3,
    )
    with pytest.raises(TypeError):
        b.process(np.zeros(3, dtype=EV_DTYPE))
    with pytest.raises(ValueError):
        b.process(np.zeros((2, 2), dtype=CMD_DTYPE))
    assert len(b.process(np.zeros(0, dtype=CMD_DTYPE))) == 0


# ------------------------------------------------------ longer random runs


def test_random_stream_keeps_invariants():
    """Every command kind on a narrow range; whole-book invariants after each."""
    recs = random_records(2500, 11, unknown=True)
    b = mk(capacity_orders=4, max_orders=300)
    for i in range(len(recs)):
        b.process(recs[i : i + 1])
        b.check_invariants()
    assert b.n_orders == len(b.l3()) + len(b.stops())


def test_wide_prices_dormant_levels_and_compaction():
    """Levels emptied below the best stay dormant; many of them force compaction."""
    b = mk(capacity_orders=64)
    rnd = random.Random(7)
    live: list[int] = []
    for i in range(1, 6001):
        if live and rnd.random() < 0.45:
            oid = live.pop(rnd.randrange(len(live)))
            if rnd.random() < 0.5:
                b.cancel(oid)
            else:
                o = b.order(oid)
                assert o is not None
                b.replace(
                    oid,
                    rnd.randrange(1, 5000) if o[1] == BUY else 5000 + rnd.randrange(1, 50000),
                    o[4],
                )
                live.append(oid)
        else:
            side = rnd.choice([BUY, SELL])
            p = rnd.randrange(1, 5000) if side == BUY else 5000 + rnd.randrange(1, 50000)
            b.new_limit(i, 1, side, p, 1)
            live.append(i)
        if i % 500 == 0:
            b.check_invariants()
    b.clear_events()
    assert b.n_orders == len(live)
    levels = {(s, p) for (_, _, s, p, _, _) in b.l3()}
    assert len(b.l2(BUY)) + len(b.l2(SELL)) == len(levels)
    assert b.best_bid() == max(p for s, p in levels if s == BUY)
    assert b.best_ask() == min(p for s, p in levels if s == SELL)


def test_dormant_level_recycled_in_place():
    b = mk()
    for oid, p in ((1, 100), (2, 90), (3, 80)):
        rest(b, oid, 1, BUY, p, 1)
    b.cancel(2)  # below the best: stays in the array, dormant
    assert b._level_stats()[0] == (3, 1) and b.l2(BUY) == [(100, 1, 1), (80, 1, 1)]
    rest(b, 4, 1, BUY, 85, 2)  # takes the dormant entry over: no new entry
    assert b._level_stats()[0] == (3, 0)
    assert b.l2(BUY) == [(100, 1, 1), (85, 2, 1), (80, 1, 1)]
    b.cancel(4)
    rest(b, 5, 1, BUY, 90, 1)  # 90 > 85: the dormant entry is the left neighbour
    assert b._level_stats()[0] == (3, 0)
    b.cancel(1)  # the best empties: popped, the best is 90 again
    assert b._level_stats()[0] == (2, 0) and b.best_bid() == 90
    b.cancel(5)
    assert b._level_stats()[0] == (1, 0) and b.best_bid() == 80
    rest(b, 6, 1, BUY, 90, 1)
    assert b.l3() == [(6, 1, BUY, 90, 1, 0), (3, 1, BUY, 80, 1, 0)]


def test_dormant_levels_compacted_when_the_level_pool_runs_out():
    """Moves upwards under a fixed best leave a dormant level behind each time and
    never land next to one: the small level pool runs out and is compacted."""
    b = mk(capacity_orders=8)
    rest(b, 1, 1, BUY, 60_000, 1)  # a fixed best: nothing below it is ever popped
    for oid in range(2, 11):
        rest(b, oid, 1, BUY, 100 * oid, 1)
    sizes = []
    for k in range(300):
        b.replace(2 + k % 9, 2_000 + k, 1)
        sizes.append(b._level_stats()[0][0])
    b.clear_events()
    assert b.capacity == 16 and max(sizes) > 16
    assert any(c < a for a, c in itertools.pairwise(sizes))  # compacted
    assert [lv[0] for lv in b.l2(BUY)] == [60_000, *range(2_299, 2_290, -1)]


def test_dormant_levels_compacted_when_they_outnumber_active_ones():
    b = mk()
    rest(b, 1, 1, BUY, 60_000, 1)
    for oid in range(2, 1202):
        rest(b, oid, 1, BUY, 1_000 + oid, 1)
    assert b._level_stats()[0] == (1201, 0)
    sizes = []
    for oid in range(2, 1202):
        b.cancel(oid)
        sizes.append(b._level_stats()[0])
    # the k-th cancel leaves k dormant and 1201 - k active levels; dormant >
    # 2 x active + 1024 first holds at k = 1143: that cancel compacts the array
    assert sizes[1141] == (1201, 1142) and sizes[1142] == (58, 0)
    assert sizes[-1] == (58, 57) and b.l2(BUY) == [(60_000, 1, 1)]
