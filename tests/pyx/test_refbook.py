"""Unit tests of the reference book (tests/refbook.py) against hand-computed events.

Each test states a docs/book.md rule with a small scenario and the exact event
records it must produce.  The same tests run on the Cython ``pyx.book.Book`` when
it is built, so a disagreement shows here with a readable scenario before the
differential tests find it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib

import numpy as np
import pytest

from bursa_wire.layout import CMD_DTYPE, EV_FIELDS
from pyx.enums import (
    CmdFlag,
    CmdKind,
    EvFlag,
    EvKind,
    OrdType,
    Reason,
    Side,
    Stp,
    Tif,
)
from tests.refbook import RefBook

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET, MQ = OrdType.LIMIT, OrdType.MARKET, OrdType.MARKET_QUOTE
SLIM, SMKT = OrdType.STOP_LIMIT, OrdType.STOP_MARKET
TD, MD = int(EvFlag.TAKER_DONE), int(EvFlag.MAKER_DONE)
GTC, IOC, FOK = Tif.GTC, Tif.IOC, Tif.FOK
PO = int(CmdFlag.POST_ONLY)
EV_NAMES = tuple(f.name for f in EV_FIELDS)

BOOKS: list[type] = [RefBook]
with contextlib.suppress(ImportError):  # the Cython book, once it is built
    BOOKS.append(importlib.import_module("pyx.book").Book)


@pytest.fixture(params=BOOKS, ids=lambda c: c.__module__)
def mk(request):
    """Factory of books of the class under test (default config unless given)."""

    def make(**cfg):
        b = request.param(1, **cfg)
        b.seq = 7
        b.ts_ns = 1000
        return b

    return make


def ev(kind, order_id=0, **kw):
    """Expected event record as a tuple in EV_DTYPE field order."""
    rec = dict.fromkeys(EV_NAMES, 0)
    rec.update(seq=7, ts_ns=1000, symbol_id=1, kind=int(kind), order_id=order_id)
    rec.update(kw)
    return tuple(int(rec[n]) for n in EV_NAMES)


def acc(oid, uid, side, price, qty, ord_type=LIMIT):
    return ev(
        EvKind.ACCEPTED,
        oid,
        user_id=uid,
        side=side,
        ord_type=ord_type,
        price_ticks=price,
        qty_lots=qty,
        leaves_lots=qty,
    )


def trade(taker, tuid, side, maker, muid, price, qty, leaves, match_id, flags=0, ord_type=LIMIT):
    return ev(
        EvKind.TRADE,
        taker,
        user_id=tuid,
        side=side,
        ord_type=ord_type,
        maker_order_id=maker,
        maker_user_id=muid,
        price_ticks=price,
        qty_lots=qty,
        leaves_lots=leaves,
        match_id=match_id,
        flags=flags,
    )


def canceled(oid, uid, side, price, qty, reason, ord_type=LIMIT):
    return ev(
        EvKind.CANCELED,
        oid,
        user_id=uid,
        side=side,
        ord_type=ord_type,
        price_ticks=price,
        qty_lots=qty,
        reason=reason,
    )


def reduced(oid, uid, side, price, qty, leaves, reason=Reason.OK, ord_type=LIMIT):
    return ev(
        EvKind.REDUCED,
        oid,
        user_id=uid,
        side=side,
        ord_type=ord_type,
        price_ticks=price,
        qty_lots=qty,
        leaves_lots=leaves,
        reason=reason,
    )


def rejected(reason, oid, uid=0, side=0, ord_type=0, price=0, qty=0):
    return ev(
        EvKind.REJECTED,
        oid,
        user_id=uid,
        side=side,
        ord_type=ord_type,
        price_ticks=price,
        qty_lots=qty,
        reason=reason,
    )


def replaced(oid, uid, side, price, qty, ord_type=LIMIT):
    return ev(
        EvKind.REPLACED,
        oid,
        user_id=uid,
        side=side,
        ord_type=ord_type,
        price_ticks=price,
        qty_lots=qty,
        leaves_lots=qty,
    )


def triggered(oid, uid, side, price, qty, ord_type):
    return ev(
        EvKind.TRIGGERED,
        oid,
        user_id=uid,
        side=side,
        ord_type=ord_type,
        price_ticks=price,
        qty_lots=qty,
        leaves_lots=qty,
    )


def evs(book):
    """Events since the last clear as tuples, then clear."""
    out = [tuple(int(x) for x in r) for r in book.events().tolist()]
    book.clear_events()
    return out


def run(book, fn, *args, **kw):
    """Call a command, check its returned count, return its events."""
    book.clear_events()
    n = getattr(book, fn)(*args, **kw)
    out = evs(book)
    assert n == len(out)
    return out


def asks_book(mk, **cfg):
    """Book with asks 1@100 (u1, 5 lots), 2@100 (u2, 3), 3@101 (u3, 4)."""
    b = mk(**cfg)
    b.new_limit(1, 1, SELL, 100, 5)
    b.new_limit(2, 2, SELL, 100, 3)
    b.new_limit(3, 3, SELL, 101, 4)
    b.clear_events()
    return b


def bids_book(mk, **cfg):
    """Book with bids 1@100 (u1, 5 lots), 2@100 (u2, 3), 3@99 (u3, 4)."""
    b = mk(**cfg)
    b.new_limit(1, 1, BUY, 100, 5)
    b.new_limit(2, 2, BUY, 100, 3)
    b.new_limit(3, 3, BUY, 99, 4)
    b.clear_events()
    return b


# ---------------------------------------------------------------- limit orders


def test_limit_gtc_rests_silently(mk):
    b = mk()
    assert run(b, "new_limit", 10, 4, BUY, 100, 5) == [acc(10, 4, BUY, 100, 5)]
    assert run(b, "new_limit", 11, 4, SELL, 102, 2) == [acc(11, 4, SELL, 102, 2)]
    assert b.best_bid() == 100 and b.best_ask() == 102 and b.last_price() == 0
    assert b.l2(BUY) == [(100, 5, 1)] and b.l2(SELL) == [(102, 2, 1)]
    assert b.l3() == [(10, 4, BUY, 100, 5, 0), (11, 4, SELL, 102, 2, 0)]
    assert b.order(10) == (4, BUY, LIMIT, 100, 5, 0)
    assert b.order(99) is None
    assert b.n_orders == 2


def test_limit_buy_sweeps_levels_fifo_at_maker_prices(mk):
    b = asks_book(mk)
    out = run(b, "new_limit", 10, 9, BUY, 101, 10)
    assert out == [
        acc(10, 9, BUY, 101, 10),
        trade(10, 9, BUY, 1, 1, 100, 5, 5, 1, MD),
        trade(10, 9, BUY, 2, 2, 100, 3, 2, 2, MD),
        trade(10, 9, BUY, 3, 3, 101, 2, 0, 3, TD),
    ]
    assert b.last_price() == 101
    assert b.l3() == [(3, 3, SELL, 101, 2, 0)]
    assert b.n_orders == 1


def test_limit_sell_partial_then_rests(mk):
    b = bids_book(mk)
    out = run(b, "new_limit", 10, 9, SELL, 100, 10)
    assert out == [
        acc(10, 9, SELL, 100, 10),
        trade(10, 9, SELL, 1, 1, 100, 5, 5, 1, MD),
        trade(10, 9, SELL, 2, 2, 100, 3, 2, 2, MD),
    ]
    assert b.l3() == [(3, 3, BUY, 99, 4, 0), (10, 9, SELL, 100, 2, 0)]
    assert b.best_ask() == 100 and b.best_bid() == 99


def test_both_done_flags_and_match_ids_continue(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 9, BUY, 100, 5) == [
        acc(10, 9, BUY, 100, 5),
        trade(10, 9, BUY, 1, 1, 100, 5, 0, 1, TD | MD),
    ]
    assert run(b, "new_limit", 11, 9, BUY, 100, 1) == [
        acc(11, 9, BUY, 100, 1),
        trade(11, 9, BUY, 2, 2, 100, 1, 0, 2, TD),
    ]


def test_limit_ioc_remainder_canceled(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 9, BUY, 100, 10, tif=Tif.IOC) == [
        acc(10, 9, BUY, 100, 10),
        trade(10, 9, BUY, 1, 1, 100, 5, 5, 1, MD),
        trade(10, 9, BUY, 2, 2, 100, 3, 2, 2, MD),
        canceled(10, 9, BUY, 100, 2, Reason.IOC_REMAINDER),
    ]
    assert b.l3() == [(3, 3, SELL, 101, 4, 0)]


def test_limit_ioc_no_cross_is_canceled_whole(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 9, BUY, 99, 4, tif=Tif.IOC) == [
        acc(10, 9, BUY, 99, 4),
        canceled(10, 9, BUY, 99, 4, Reason.IOC_REMAINDER),
    ]


def test_fok_fillable_executes(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 9, BUY, 101, 12, tif=Tif.FOK) == [
        acc(10, 9, BUY, 101, 12),
        trade(10, 9, BUY, 1, 1, 100, 5, 7, 1, MD),
        trade(10, 9, BUY, 2, 2, 100, 3, 4, 2, MD),
        trade(10, 9, BUY, 3, 3, 101, 4, 0, 3, TD | MD),
    ]
    assert b.l3() == []


def test_fok_not_fillable_rejected_nothing_changes(mk):
    b = asks_book(mk)
    h = b.state_hash()
    assert run(b, "new_limit", 10, 9, BUY, 100, 9, tif=Tif.FOK) == [
        rejected(Reason.FOK_NOT_FILLABLE, 10, 9, BUY, LIMIT, 100, 9)
    ]
    assert b.state_hash() == h and b.n_orders == 3


@pytest.mark.parametrize(
    ("stp", "fillable"),
    [
        (Stp.STP_NONE, True),  # own order counts: 5 + 3 + 4 >= 12
        (Stp.CANCEL_OLDEST, False),  # own order 2 skipped: 5 + 4 < 12
        (Stp.DECREMENT, False),
        (Stp.CANCEL_NEWEST, False),  # walk stops at order 2: 5 < 12
        (Stp.CANCEL_BOTH, False),
    ],
)
def test_fok_walk_self_trade_modes(mk, stp, fillable):
    b = asks_book(mk)
    out = run(b, "new_limit", 10, 2, BUY, 101, 12, tif=Tif.FOK, stp=stp)
    if fillable:
        assert out[0] == acc(10, 2, BUY, 101, 12)
    else:
        assert out == [rejected(Reason.FOK_NOT_FILLABLE, 10, 2, BUY, LIMIT, 101, 12)]


def test_fok_walk_skip_modes_count_others(mk):
    b = asks_book(mk)
    # CANCEL_OLDEST: own order 2 skipped, 5 + 4 >= 9 -> fillable; then it executes like IOC.
    assert run(b, "new_limit", 10, 2, BUY, 101, 9, tif=Tif.FOK, stp=Stp.CANCEL_OLDEST) == [
        acc(10, 2, BUY, 101, 9),
        trade(10, 2, BUY, 1, 1, 100, 5, 4, 1, MD),
        canceled(2, 2, SELL, 100, 3, Reason.SELF_TRADE),
        trade(10, 2, BUY, 3, 3, 101, 4, 0, 2, TD | MD),
    ]
    b = asks_book(mk)
    # CANCEL_NEWEST: the walk stops at own order 2; 5 >= 5 -> fillable.
    assert run(b, "new_limit", 10, 2, BUY, 101, 5, tif=Tif.FOK, stp=Stp.CANCEL_NEWEST) == [
        acc(10, 2, BUY, 101, 5),
        trade(10, 2, BUY, 1, 1, 100, 5, 0, 1, TD | MD),
    ]


def test_post_only(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 9, BUY, 100, 1, post_only=True) == [
        rejected(Reason.POST_ONLY_WOULD_TAKE, 10, 9, BUY, LIMIT, 100, 1)
    ]
    assert run(b, "new_limit", 10, 9, BUY, 99, 1, post_only=True) == [acc(10, 9, BUY, 99, 1)]
    assert b.l3()[0] == (10, 9, BUY, 99, 1, int(CmdFlag.POST_ONLY))
    assert run(b, "new_limit", 11, 9, BUY, 99, 1, tif=Tif.IOC, post_only=True) == [
        rejected(Reason.INVALID_FLAGS, 11, 9, BUY, LIMIT, 99, 1)
    ]
    # Post-only on an empty opposite side never crosses.
    b = bids_book(mk)
    assert run(b, "new_limit", 10, 9, BUY, 1000, 1, post_only=True) == [acc(10, 9, BUY, 1000, 1)]


# ---------------------------------------------------------------- market orders


def test_market_buy_sweeps_then_no_liquidity(mk):
    b = asks_book(mk)
    assert run(b, "new_market", 10, 9, BUY, 20) == [
        acc(10, 9, BUY, 0, 20, MARKET),
        trade(10, 9, BUY, 1, 1, 100, 5, 15, 1, MD, MARKET),
        trade(10, 9, BUY, 2, 2, 100, 3, 12, 2, MD, MARKET),
        trade(10, 9, BUY, 3, 3, 101, 4, 8, 3, MD, MARKET),
        canceled(10, 9, BUY, 0, 8, Reason.NO_LIQUIDITY, MARKET),
    ]


def test_market_on_empty_side(mk):
    b = mk()
    assert run(b, "new_market", 10, 9, SELL, 2) == [
        acc(10, 9, SELL, 0, 2, MARKET),
        canceled(10, 9, SELL, 0, 2, Reason.NO_LIQUIDITY, MARKET),
    ]
    assert b.n_orders == 0


def test_market_protection_band(mk):
    b = asks_book(mk, protection_ticks=0)
    assert run(b, "new_market", 10, 9, BUY, 10) == [
        acc(10, 9, BUY, 0, 10, MARKET),
        trade(10, 9, BUY, 1, 1, 100, 5, 5, 1, MD, MARKET),
        trade(10, 9, BUY, 2, 2, 100, 3, 2, 2, MD, MARKET),
        canceled(10, 9, BUY, 0, 2, Reason.NO_LIQUIDITY, MARKET),
    ]
    b = bids_book(mk, protection_ticks=1)
    assert run(b, "new_market", 10, 9, SELL, 9) == [
        acc(10, 9, SELL, 0, 9, MARKET),
        trade(10, 9, SELL, 1, 1, 100, 5, 4, 1, MD, MARKET),
        trade(10, 9, SELL, 2, 2, 100, 3, 1, 2, MD, MARKET),
        trade(10, 9, SELL, 3, 3, 99, 1, 0, 3, TD, MARKET),
    ]


def test_market_worst_price(mk):
    b = asks_book(mk)
    assert run(b, "new_market", 10, 9, BUY, 10, price_ticks=100) == [
        acc(10, 9, BUY, 100, 10, MARKET),
        trade(10, 9, BUY, 1, 1, 100, 5, 5, 1, MD, MARKET),
        trade(10, 9, BUY, 2, 2, 100, 3, 2, 2, MD, MARKET),
        canceled(10, 9, BUY, 100, 2, Reason.NO_LIQUIDITY, MARKET),
    ]
    b = asks_book(mk)
    assert run(b, "new_market", 10, 9, BUY, 10, price_ticks=99) == [
        acc(10, 9, BUY, 99, 10, MARKET),
        canceled(10, 9, BUY, 99, 10, Reason.NO_LIQUIDITY, MARKET),
    ]
    assert run(b, "new_market", 11, 9, BUY, 10, price_ticks=-5) == [
        rejected(Reason.PRICE_OUT_OF_BAND, 11, 9, BUY, MARKET, -5, 10)
    ]


def test_market_quote_budget_exhausted(mk):
    b = asks_book(mk)
    # 5*100 + 3*100 = 800 spent, 150 left: 101 fits once (49 left), then no lot fits.
    assert run(b, "new_market_quote", 10, 9, 950) == [
        acc(10, 9, BUY, 0, 950, MQ),
        trade(10, 9, BUY, 1, 1, 100, 5, 450, 1, MD, MQ),
        trade(10, 9, BUY, 2, 2, 100, 3, 150, 2, MD, MQ),
        trade(10, 9, BUY, 3, 3, 101, 1, 49, 3, 0, MQ),
        canceled(10, 9, BUY, 0, 49, Reason.BUDGET_EXHAUSTED, MQ),
    ]
    assert b.l3() == [(3, 3, SELL, 101, 3, 0)]


def test_market_quote_exact_budget_and_no_liquidity(mk):
    b = asks_book(mk)
    assert run(b, "new_market_quote", 10, 9, 300) == [
        acc(10, 9, BUY, 0, 300, MQ),
        trade(10, 9, BUY, 1, 1, 100, 3, 0, 1, TD, MQ),
    ]
    b = asks_book(mk)
    assert run(b, "new_market_quote", 10, 9, 10_000) == [
        acc(10, 9, BUY, 0, 10_000, MQ),
        trade(10, 9, BUY, 1, 1, 100, 5, 9500, 1, MD, MQ),
        trade(10, 9, BUY, 2, 2, 100, 3, 9200, 2, MD, MQ),
        trade(10, 9, BUY, 3, 3, 101, 4, 8796, 3, MD, MQ),
        canceled(10, 9, BUY, 0, 8796, Reason.NO_LIQUIDITY, MQ),
    ]


def test_market_quote_lot_step_and_sell_rejected(mk):
    b = mk(lot_step=2)
    b.new_limit(1, 1, SELL, 10, 6)
    b.clear_events()
    # 55 // 10 = 5 lots -> 4 on the lot grid; 15 left buys 1 lot: not on the grid.
    assert run(b, "new_market_quote", 10, 9, 55) == [
        acc(10, 9, BUY, 0, 55, MQ),
        trade(10, 9, BUY, 1, 1, 10, 4, 15, 1, 0, MQ),
        canceled(10, 9, BUY, 0, 15, Reason.BUDGET_EXHAUSTED, MQ),
    ]
    assert run(b, "new_order", 11, 9, SELL, MQ, Tif.IOC, 0, 55) == [
        rejected(Reason.INVALID_SIDE, 11, 9, SELL, MQ, 0, 55)
    ]
    # A quote budget is not checked against the lot step or the quantity range.
    assert run(b, "new_market_quote", 12, 9, 7)[0] == acc(12, 9, BUY, 0, 7, MQ)


# ---------------------------------------------------------------- self-trade prevention


def test_stp_none_trades_with_itself(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 1, BUY, 100, 2) == [
        acc(10, 1, BUY, 100, 2),
        trade(10, 1, BUY, 1, 1, 100, 2, 0, 1, TD),
    ]


def test_stp_cancel_newest(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 2, BUY, 101, 10, stp=Stp.CANCEL_NEWEST) == [
        acc(10, 2, BUY, 101, 10),
        trade(10, 2, BUY, 1, 1, 100, 5, 5, 1, MD),
        canceled(10, 2, BUY, 101, 5, Reason.SELF_TRADE),
    ]
    assert b.l3() == [(2, 2, SELL, 100, 3, 0), (3, 3, SELL, 101, 4, 0)]


def test_stp_cancel_oldest(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 2, BUY, 101, 10, stp=Stp.CANCEL_OLDEST) == [
        acc(10, 2, BUY, 101, 10),
        trade(10, 2, BUY, 1, 1, 100, 5, 5, 1, MD),
        canceled(2, 2, SELL, 100, 3, Reason.SELF_TRADE),
        trade(10, 2, BUY, 3, 3, 101, 4, 1, 2, MD),
    ]
    assert b.l3() == [(10, 2, BUY, 101, 1, 0)]


def test_stp_cancel_both(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 2, BUY, 101, 10, stp=Stp.CANCEL_BOTH) == [
        acc(10, 2, BUY, 101, 10),
        trade(10, 2, BUY, 1, 1, 100, 5, 5, 1, MD),
        canceled(2, 2, SELL, 100, 3, Reason.SELF_TRADE),
        canceled(10, 2, BUY, 101, 5, Reason.SELF_TRADE),
    ]
    assert b.l3() == [(3, 3, SELL, 101, 4, 0)]


def test_stp_decrement_maker_smaller(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 2, BUY, 101, 10, stp=Stp.DECREMENT) == [
        acc(10, 2, BUY, 101, 10),
        trade(10, 2, BUY, 1, 1, 100, 5, 5, 1, MD),
        canceled(2, 2, SELL, 100, 3, Reason.SELF_TRADE),
        reduced(10, 2, BUY, 101, 3, 2, Reason.SELF_TRADE),
        trade(10, 2, BUY, 3, 3, 101, 2, 0, 2, TD),
    ]
    assert b.l3() == [(3, 3, SELL, 101, 2, 0)]


def test_stp_decrement_taker_smaller_and_equal(mk):
    b = asks_book(mk)
    assert run(b, "new_limit", 10, 1, BUY, 101, 2, stp=Stp.DECREMENT) == [
        acc(10, 1, BUY, 101, 2),
        reduced(1, 1, SELL, 100, 2, 3, Reason.SELF_TRADE),
        canceled(10, 1, BUY, 101, 2, Reason.SELF_TRADE),
    ]
    assert b.l3()[0] == (1, 1, SELL, 100, 3, 0)
    assert b.last_price() == 0
    assert run(b, "new_limit", 11, 1, BUY, 100, 3, stp=Stp.DECREMENT) == [
        acc(11, 1, BUY, 100, 3),
        canceled(1, 1, SELL, 100, 3, Reason.SELF_TRADE),
        canceled(11, 1, BUY, 100, 3, Reason.SELF_TRADE),
    ]
    assert b.l3() == [(2, 2, SELL, 100, 3, 0), (3, 3, SELL, 101, 4, 0)]


def test_stp_market_quote_decrement_is_cancel_newest(mk):
    b = asks_book(mk)
    assert run(b, "new_market_quote", 10, 2, 1000, stp=Stp.DECREMENT) == [
        acc(10, 2, BUY, 0, 1000, MQ),
        trade(10, 2, BUY, 1, 1, 100, 5, 500, 1, MD, MQ),
        canceled(10, 2, BUY, 0, 500, Reason.SELF_TRADE, MQ),
    ]


def test_stp_gtc_taker_canceled_does_not_rest(mk):
    b = bids_book(mk)
    assert run(b, "new_limit", 10, 1, SELL, 90, 7, stp=Stp.CANCEL_NEWEST) == [
        acc(10, 1, SELL, 90, 7),
        canceled(10, 1, SELL, 90, 7, Reason.SELF_TRADE),
    ]
    assert b.n_orders == 3


# ---------------------------------------------------------------- cancel / reduce


def test_cancel(mk):
    b = asks_book(mk)
    assert run(b, "cancel", 2) == [canceled(2, 2, SELL, 100, 3, Reason.USER_CANCELED)]
    assert run(b, "cancel", 2) == [rejected(Reason.UNKNOWN_ORDER_ID, 2)]
    assert b.l2(SELL) == [(100, 5, 1), (101, 4, 1)]


def test_reduce_keeps_priority(mk):
    b = asks_book(mk)
    assert run(b, "reduce", 1, 2) == [reduced(1, 1, SELL, 100, 3, 2)]
    assert b.l3()[:2] == [(1, 1, SELL, 100, 2, 0), (2, 2, SELL, 100, 3, 0)]
    assert b.l2(SELL, 1) == [(100, 5, 2)]
    assert run(b, "reduce", 1, 0) == [canceled(1, 1, SELL, 100, 2, Reason.USER_CANCELED)]
    assert b.order(1) is None


def test_reduce_rejects(mk):
    b = asks_book(mk, lot_step=1)
    b.new_stop(20, 5, BUY, SLIM, 105, 106, 2)
    b.clear_events()
    h = b.state_hash()
    assert run(b, "reduce", 99, 1) == [rejected(Reason.UNKNOWN_ORDER_ID, 99, qty=1)]
    assert run(b, "reduce", 20, 1) == [rejected(Reason.NOT_REPLACEABLE, 20, qty=1)]
    assert run(b, "reduce", 1, -1) == [rejected(Reason.INVALID_QTY, 1, qty=-1)]
    assert run(b, "reduce", 1, 5) == [rejected(Reason.REDUCE_NOT_SMALLER, 1, qty=5)]
    assert run(b, "reduce", 1, 6) == [rejected(Reason.REDUCE_NOT_SMALLER, 1, qty=6)]
    assert b.state_hash() == h
    b = mk(lot_step=2)
    b.new_limit(1, 1, SELL, 100, 6)
    b.clear_events()
    assert run(b, "reduce", 1, 3) == [rejected(Reason.QTY_OFF_LOT, 1, qty=3)]
    assert run(b, "reduce", 1, 4) == [reduced(1, 1, SELL, 100, 2, 4)]


# ---------------------------------------------------------------- replace


def test_replace_smaller_same_price_keeps_priority(mk):
    b = asks_book(mk)
    assert run(b, "replace", 1, 100, 4) == [replaced(1, 1, SELL, 100, 4)]
    assert b.l3()[:2] == [(1, 1, SELL, 100, 4, 0), (2, 2, SELL, 100, 3, 0)]


def test_replace_larger_same_price_loses_priority(mk):
    b = asks_book(mk)
    assert run(b, "replace", 1, 100, 6) == [replaced(1, 1, SELL, 100, 6)]
    assert b.l3()[:2] == [(2, 2, SELL, 100, 3, 0), (1, 1, SELL, 100, 6, 0)]
    assert b.l2(SELL) == [(100, 9, 2), (101, 4, 1)]


def test_replace_new_price_back_of_new_level(mk):
    b = asks_book(mk)
    assert run(b, "replace", 1, 101, 2) == [replaced(1, 1, SELL, 101, 2)]
    assert b.l3() == [
        (2, 2, SELL, 100, 3, 0),
        (3, 3, SELL, 101, 4, 0),
        (1, 1, SELL, 101, 2, 0),
    ]
    # Moving back to the old price still goes to the back.
    assert run(b, "replace", 1, 100, 2) == [replaced(1, 1, SELL, 100, 2)]
    assert b.l3()[:2] == [(2, 2, SELL, 100, 3, 0), (1, 1, SELL, 100, 2, 0)]


def test_replace_crossing_matches_then_rests(mk):
    b = asks_book(mk)
    b.new_limit(10, 9, BUY, 98, 10)
    b.clear_events()
    assert run(b, "replace", 10, 100, 10) == [
        replaced(10, 9, BUY, 100, 10),
        trade(10, 9, BUY, 1, 1, 100, 5, 5, 1, MD),
        trade(10, 9, BUY, 2, 2, 100, 3, 2, 2, MD),
    ]
    assert b.l3() == [(10, 9, BUY, 100, 2, 0), (3, 3, SELL, 101, 4, 0)]


def test_replace_crossing_uses_own_stp(mk):
    b = asks_book(mk)
    b.new_limit(10, 2, BUY, 98, 10, stp=Stp.CANCEL_NEWEST)
    b.clear_events()
    assert run(b, "replace", 10, 100, 10) == [
        replaced(10, 2, BUY, 100, 10),
        trade(10, 2, BUY, 1, 1, 100, 5, 5, 1, MD),
        canceled(10, 2, BUY, 100, 5, Reason.SELF_TRADE),
    ]
    assert b.order(10) is None


def test_replace_rejects(mk):
    b = asks_book(mk, max_qty_lots=100, max_price_ticks=1000, tick_step=1, lot_step=1)
    b.new_stop(20, 5, BUY, SLIM, 105, 106, 2)
    b.new_limit(21, 5, BUY, 90, 1, post_only=True)
    b.clear_events()
    h = b.state_hash()
    cases = [
        ((99, 100, 1), Reason.UNKNOWN_ORDER_ID),
        ((20, 100, 1), Reason.NOT_REPLACEABLE),
        ((1, 100, 0), Reason.INVALID_QTY),
        ((1, 100, -3), Reason.INVALID_QTY),
        ((1, 100, 101), Reason.QTY_OUT_OF_RANGE),
        ((1, 1001, 5), Reason.PRICE_OUT_OF_BAND),
        ((1, 0, 5), Reason.PRICE_OUT_OF_BAND),
        ((1, 100, 5), Reason.REPLACE_NO_CHANGE),
        ((21, 100, 1), Reason.POST_ONLY_WOULD_TAKE),
    ]
    for (oid, price, qty), reason in cases:
        assert run(b, "replace", oid, price, qty) == [
            rejected(reason, oid, price=price, qty=qty)
        ], reason
    assert b.state_hash() == h
    assert run(b, "replace", 21, 99, 1) == [replaced(21, 5, BUY, 99, 1)]  # post-only not crossing


def test_replace_grid_rejects(mk):
    b = mk(tick_step=5, lot_step=2, max_price_ticks=10**18, max_qty_lots=2**62)
    b.new_limit(1, 1, SELL, 100, 4)
    b.clear_events()
    assert run(b, "replace", 1, 100, 3) == [rejected(Reason.QTY_OFF_LOT, 1, price=100, qty=3)]
    assert run(b, "replace", 1, 102, 4) == [rejected(Reason.PRICE_OFF_TICK, 1, price=102, qty=4)]
    big = 2**62
    assert run(b, "replace", 1, 100, big) == [
        rejected(Reason.NOTIONAL_OVERFLOW, 1, price=100, qty=big)
    ]


# ---------------------------------------------------------------- mass cancel


def test_mass_cancel_orders(mk):
    b = mk()
    b.new_limit(1, 1, BUY, 99, 1)
    b.new_limit(2, 2, BUY, 100, 1)
    b.new_limit(3, 1, BUY, 100, 1)
    b.new_limit(4, 1, SELL, 102, 1)
    b.new_limit(5, 1, SELL, 101, 1)
    b.new_stop(6, 1, SELL, SMKT, 90, 0, 1, tif=Tif.IOC)
    b.new_stop(7, 2, BUY, SLIM, 110, 111, 1)
    b.new_stop(8, 1, BUY, SLIM, 110, 111, 1)
    b.clear_events()
    mc = Reason.MASS_CANCELED
    assert run(b, "mass_cancel", 1, SELL) == [
        canceled(5, 1, SELL, 101, 1, mc),
        canceled(4, 1, SELL, 102, 1, mc),
        canceled(6, 1, SELL, 0, 1, mc, SMKT),
    ]
    assert run(b, "mass_cancel", 1) == [
        canceled(3, 1, BUY, 100, 1, mc),
        canceled(1, 1, BUY, 99, 1, mc),
        canceled(8, 1, BUY, 111, 1, mc, SLIM),
    ]
    assert run(b, "mass_cancel", 1) == []
    assert run(b, "mass_cancel", 0, 0, True) == [
        canceled(2, 2, BUY, 100, 1, mc),
        canceled(7, 2, BUY, 111, 1, mc, SLIM),
    ]
    assert b.n_orders == 0 and b.l3() == [] and b.stops() == []


# ---------------------------------------------------------------- stop orders


def test_stop_accepted_rests_apart(mk):
    b = mk()
    assert run(b, "new_stop", 5, 1, BUY, SLIM, 105, 106, 2) == [acc(5, 1, BUY, 106, 2, SLIM)]
    assert run(b, "new_stop", 6, 1, SELL, SMKT, 95, 0, 3, tif=Tif.IOC) == [
        acc(6, 1, SELL, 0, 3, SMKT)
    ]
    assert b.l3() == []
    assert b.stops() == [
        (5, 1, BUY, SLIM, Tif.GTC, 105, 106, 2, 0),
        (6, 1, SELL, SMKT, Tif.IOC, 95, 0, 3, 0),
    ]
    assert b.order(5) == (1, BUY, SLIM, 106, 2, 105)
    assert b.n_orders == 2
    assert b.best_bid() == 0 and b.best_ask() == 0
    assert run(b, "cancel", 6) == [canceled(6, 1, SELL, 0, 3, Reason.USER_CANCELED, SMKT)]


def test_sell_stop_not_triggered_before_first_trade(mk):
    b = mk()
    b.new_stop(5, 1, SELL, SMKT, 95, 0, 3, tif=Tif.IOC)
    b.new_limit(1, 2, BUY, 90, 1)
    assert b.stops()[0][0] == 5  # last price 0 means no trade yet: nothing triggers


def test_buy_stop_limit_triggers_and_rests(mk):
    b = asks_book(mk)
    b.new_stop(20, 7, BUY, SLIM, 100, 100, 10)
    b.clear_events()
    assert run(b, "new_limit", 10, 9, BUY, 100, 1) == [
        acc(10, 9, BUY, 100, 1),
        trade(10, 9, BUY, 1, 1, 100, 1, 0, 1, TD),
        triggered(20, 7, BUY, 100, 10, SLIM),
        trade(20, 7, BUY, 1, 1, 100, 4, 6, 2, MD, SLIM),
        trade(20, 7, BUY, 2, 2, 100, 3, 3, 3, MD, SLIM),
    ]
    assert b.l3() == [(20, 7, BUY, 100, 3, 0), (3, 3, SELL, 101, 4, 0)]
    assert b.stops() == []
    assert b.order(20) == (7, BUY, SLIM, 100, 3, 100)
    # A resting triggered stop-limit keeps its type on later events.
    assert run(b, "new_limit", 11, 8, SELL, 100, 1) == [
        acc(11, 8, SELL, 100, 1),
        trade(11, 8, SELL, 20, 7, 100, 1, 0, 4, TD),
    ]
    # It is an ordinary resting order now: reduce and replace work on it.
    assert run(b, "reduce", 20, 1) == [reduced(20, 7, BUY, 100, 1, 1, ord_type=SLIM)]
    assert run(b, "replace", 20, 99, 2) == [replaced(20, 7, BUY, 99, 2, SLIM)]
    assert b.order(20) == (7, BUY, SLIM, 99, 2, 100)
    assert run(b, "cancel", 20) == [canceled(20, 7, BUY, 99, 2, Reason.USER_CANCELED, SLIM)]


def test_sell_stop_market_band_at_trigger_time(mk):
    b = bids_book(mk, protection_ticks=0)
    b.new_stop(20, 7, SELL, SMKT, 100, 0, 10, tif=Tif.IOC)
    b.clear_events()
    assert run(b, "new_limit", 10, 9, SELL, 100, 5) == [
        acc(10, 9, SELL, 100, 5),
        trade(10, 9, SELL, 1, 1, 100, 5, 0, 1, TD | MD),
        triggered(20, 7, SELL, 0, 10, SMKT),
        trade(20, 7, SELL, 2, 2, 100, 3, 7, 2, MD, SMKT),
        canceled(20, 7, SELL, 0, 7, Reason.NO_LIQUIDITY, SMKT),
    ]
    assert b.l3() == [(3, 3, BUY, 99, 4, 0)]


def test_stop_cascade_in_arrival_order(mk):
    b = mk()
    b.new_limit(1, 1, SELL, 100, 1)
    b.new_limit(2, 1, SELL, 102, 1)
    b.new_limit(3, 1, SELL, 104, 1)
    b.new_limit(4, 1, SELL, 105, 1)
    # B (arrives first, higher stop) and A both trigger on 100; C triggers on 102 (after B).
    b.new_stop(30, 3, BUY, SMKT, 102, 0, 1, tif=Tif.IOC)  # C
    b.new_stop(20, 2, BUY, SMKT, 100, 0, 1, tif=Tif.IOC)  # B
    b.new_stop(10, 2, BUY, SLIM, 99, 104, 1)  # A
    b.clear_events()
    assert run(b, "new_market", 9, 9, BUY, 1) == [
        acc(9, 9, BUY, 0, 1, MARKET),
        trade(9, 9, BUY, 1, 1, 100, 1, 0, 1, TD | MD, MARKET),
        triggered(20, 2, BUY, 0, 1, SMKT),
        trade(20, 2, BUY, 2, 1, 102, 1, 0, 2, TD | MD, SMKT),
        triggered(10, 2, BUY, 104, 1, SLIM),
        trade(10, 2, BUY, 3, 1, 104, 1, 0, 3, TD | MD, SLIM),
        triggered(30, 3, BUY, 0, 1, SMKT),
        trade(30, 3, BUY, 4, 1, 105, 1, 0, 4, TD | MD, SMKT),
    ]
    assert b.n_orders == 0 and b.last_price() == 105


def test_stop_limit_fok_not_fillable_on_trigger(mk):
    b = asks_book(mk)
    b.new_stop(20, 7, BUY, SLIM, 100, 100, 50, tif=Tif.FOK)
    b.new_stop(21, 7, BUY, SLIM, 100, 100, 2, tif=Tif.IOC)
    b.clear_events()
    assert run(b, "new_limit", 10, 9, BUY, 100, 1) == [
        acc(10, 9, BUY, 100, 1),
        trade(10, 9, BUY, 1, 1, 100, 1, 0, 1, TD),
        triggered(20, 7, BUY, 100, 50, SLIM),
        canceled(20, 7, BUY, 100, 50, Reason.FOK_NOT_FILLABLE, SLIM),
        triggered(21, 7, BUY, 100, 2, SLIM),
        trade(21, 7, BUY, 1, 1, 100, 2, 0, 2, TD, SLIM),
    ]


def test_stop_rejects(mk):
    b = asks_book(mk, tick_step=1)
    b.new_limit(10, 9, BUY, 100, 1)  # last = 100
    b.clear_events()
    assert run(b, "new_stop", 20, 7, BUY, SLIM, 100, 101, 1) == [
        rejected(Reason.STOP_WOULD_TRIGGER, 20, 7, BUY, SLIM, 101, 1)
    ]
    assert run(b, "new_stop", 20, 7, SELL, SMKT, 100, 0, 1, tif=Tif.IOC) == [
        rejected(Reason.STOP_WOULD_TRIGGER, 20, 7, SELL, SMKT, 0, 1)
    ]
    assert run(b, "new_stop", 20, 7, SELL, SMKT, 0, 0, 1, tif=Tif.IOC) == [
        rejected(Reason.PRICE_OUT_OF_BAND, 20, 7, SELL, SMKT, 0, 1)
    ]
    assert run(b, "new_stop", 20, 7, SELL, SMKT, 99, 0, 1, tif=Tif.GTC) == [
        rejected(Reason.INVALID_TIF, 20, 7, SELL, SMKT, 0, 1)
    ]
    assert run(b, "new_stop", 20, 7, SELL, SMKT, 99, 0, 1, tif=Tif.IOC)[0][14] == EvKind.ACCEPTED
    assert run(b, "replace", 20, 98, 1) == [rejected(Reason.NOT_REPLACEABLE, 20, price=98, qty=1)]
    b = mk(tick_step=2)
    assert run(b, "new_stop", 20, 7, BUY, SLIM, 101, 100, 1) == [
        rejected(Reason.PRICE_OFF_TICK, 20, 7, BUY, SLIM, 100, 1)
    ]


# ---------------------------------------------------------------- validation


def test_validation_rejects_in_order(mk):
    b = mk(tick_step=5, lot_step=2, min_qty_lots=2, max_qty_lots=10**18, max_price_ticks=10**15)
    b.new_limit(1, 1, BUY, 100, 2)
    b.clear_events()
    h = b.state_hash()
    # (order_id, side, ord_type, tif, price, qty, stop, stp, flags) -> reason
    cases = [
        ((2, 0, LIMIT, GTC, 100, 2, 0, 0, 0), Reason.INVALID_SIDE),
        ((2, 3, 9, 9, 100, 2, 0, 9, 9), Reason.INVALID_SIDE),
        ((2, BUY, 0, GTC, 100, 2, 0, 0, 0), Reason.INVALID_ORDER_TYPE),
        ((2, BUY, 6, 9, 100, 2, 0, 9, 9), Reason.INVALID_ORDER_TYPE),
        ((2, BUY, LIMIT, 0, 100, 2, 0, 0, 0), Reason.INVALID_TIF),
        ((2, BUY, MARKET, GTC, 0, 2, 0, 0, 0), Reason.INVALID_TIF),
        ((2, BUY, MQ, FOK, 0, 2, 0, 0, 0), Reason.INVALID_TIF),
        ((2, BUY, LIMIT, GTC, 100, 2, 0, 5, 0), Reason.INVALID_STP),
        ((2, BUY, LIMIT, GTC, 100, 2, 0, 0, 2), Reason.INVALID_FLAGS),
        ((2, BUY, MARKET, IOC, 0, 2, 0, 0, PO), Reason.INVALID_FLAGS),
        ((1, BUY, LIMIT, GTC, 100, 2, 0, 0, 0), Reason.DUPLICATE_ORDER_ID),
        ((1, BUY, LIMIT, GTC, 7, 0, 0, 0, 0), Reason.DUPLICATE_ORDER_ID),
        ((2, BUY, LIMIT, GTC, 7, 0, 0, 0, 0), Reason.INVALID_QTY),
        ((2, BUY, MQ, IOC, 0, -5, 0, 0, 0), Reason.INVALID_QTY),
        ((2, BUY, LIMIT, GTC, 7, 3, 0, 0, 0), Reason.QTY_OFF_LOT),
        ((2, BUY, LIMIT, GTC, 7, 4, 0, 0, 0), Reason.PRICE_OFF_TICK),
        ((2, BUY, LIMIT, GTC, 0, 4, 0, 0, 0), Reason.PRICE_OUT_OF_BAND),
        ((2, BUY, LIMIT, GTC, -5, 4, 0, 0, 0), Reason.PRICE_OUT_OF_BAND),
        ((2, BUY, LIMIT, GTC, 10**15 + 5, 4, 0, 0, 0), Reason.PRICE_OUT_OF_BAND),
        ((2, BUY, LIMIT, GTC, 10**15, 10**4, 0, 0, 0), Reason.NOTIONAL_OVERFLOW),
        ((2, BUY, MARKET, IOC, 10**15, 10**4, 0, 0, 0), Reason.NOTIONAL_OVERFLOW),
        ((2, BUY, MARKET, IOC, 3, 4, 0, 0, 0), Reason.PRICE_OFF_TICK),
        ((2, BUY, SMKT, IOC, 0, 4, 3, 0, 0), Reason.PRICE_OFF_TICK),
        ((2, BUY, SLIM, GTC, 100, 4, 0, 0, 0), Reason.PRICE_OUT_OF_BAND),
    ]
    for args, reason in cases:
        oid, side, ot, _tif, price, qty = args[:6]
        got = run(b, "new_order", oid, 3, *args[1:])
        assert got == [rejected(reason, oid, 3, side, ot, price, qty)], (args, reason, got)
    assert b.state_hash() == h


def test_reject_copies_command_fields(mk):
    b = mk(lot_step=2)
    assert run(b, "new_order", 5, 3, SELL, LIMIT, Tif.GTC, 100, 3, 0, 0, 0) == [
        rejected(Reason.QTY_OFF_LOT, 5, 3, SELL, LIMIT, 100, 3)
    ]
    assert run(b, "new_order", 5, 3, BUY, MQ, Tif.IOC, 0, 0, 0, 0, 0) == [
        rejected(Reason.INVALID_QTY, 5, 3, BUY, MQ, 0, 0)
    ]


def test_qty_range(mk):
    b = mk(min_qty_lots=2, max_qty_lots=10)
    for q in (1, 11):
        assert run(b, "new_limit", 1, 1, BUY, 100, q) == [
            rejected(Reason.QTY_OUT_OF_RANGE, 1, 1, BUY, LIMIT, 100, q)
        ]
    assert run(b, "new_limit", 1, 1, BUY, 100, 10) == [acc(1, 1, BUY, 100, 10)]
    assert run(b, "new_market", 2, 1, SELL, 11) == [
        rejected(Reason.QTY_OUT_OF_RANGE, 2, 1, SELL, MARKET, 0, 11)
    ]


def test_book_full(mk):
    b = mk(max_orders=2, capacity_orders=1)
    b.new_limit(1, 1, BUY, 100, 1)
    b.new_stop(2, 1, BUY, SLIM, 110, 110, 1)
    b.clear_events()
    assert run(b, "new_limit", 3, 1, SELL, 100, 1) == [
        rejected(Reason.BOOK_FULL, 3, 1, SELL, LIMIT, 100, 1)
    ]
    assert run(b, "new_limit", 3, 1, BUY, 100, 0) == [
        rejected(Reason.INVALID_QTY, 3, 1, BUY, LIMIT, 100, 0)
    ]
    b.cancel(1)
    assert run(b, "new_limit", 3, 1, SELL, 100, 1) == [acc(3, 1, SELL, 100, 1)]


def test_order_id_reusable_after_the_order_ended(mk):
    b = asks_book(mk)
    b.cancel(1)
    b.clear_events()
    assert run(b, "new_limit", 1, 4, BUY, 50, 1) == [acc(1, 4, BUY, 50, 1)]


def test_duplicate_of_stop_order(mk):
    b = mk()
    b.new_stop(5, 1, BUY, SLIM, 105, 106, 2)
    b.clear_events()
    assert run(b, "new_limit", 5, 1, BUY, 100, 1) == [
        rejected(Reason.DUPLICATE_ORDER_ID, 5, 1, BUY, LIMIT, 100, 1)
    ]


# ---------------------------------------------------------------- stamping, hash, batch


def test_events_stamped_with_seq_ts_symbol(mk):
    b = mk()
    b.seq, b.ts_ns = 42, 99
    b.new_limit(1, 1, BUY, 100, 1)
    e = b.events()[0]
    assert (int(e["seq"]), int(e["ts_ns"]), int(e["symbol_id"])) == (42, 99, 1)


def test_state_hash_canonical_dump(mk):
    b = asks_book(mk)
    b.new_limit(10, 9, BUY, 100, 1)  # one trade: last 100, next match id 2
    b.new_stop(20, 7, SELL, SMKT, 90, 0, 3, tif=Tif.IOC, stp=Stp.CANCEL_BOTH)
    ints = [1, 100, 2]
    tail = [LIMIT, GTC, 0, Stp.STP_NONE]  # l3_full: ord_type, tif, stop price, stp
    ints += [1, 1, SELL, 100, 4, 0, *tail, 2, 2, SELL, 100, 3, 0, *tail]
    ints += [3, 3, SELL, 101, 4, 0, *tail]
    ints += [20, 7, SELL, SMKT, Tif.IOC, 90, 0, 3, Stp.CANCEL_BOTH]
    dump = b"".join(int(x).to_bytes(8, "little", signed=True) for x in ints)
    assert b.state_hash() == hashlib.blake2b(dump, digest_size=16).digest()
    other = asks_book(mk)
    assert other.state_hash() != b.state_hash()


def test_process_batch_matches_per_command(mk):
    cmds = np.zeros(6, dtype=CMD_DTYPE)
    rows = [
        dict(
            kind=CmdKind.NEW,
            order_id=1,
            user_id=1,
            side=SELL,
            ord_type=LIMIT,
            tif=Tif.GTC,
            price_ticks=100,
            qty_lots=5,
        ),
        dict(
            kind=CmdKind.NEW,
            order_id=2,
            user_id=2,
            side=BUY,
            ord_type=LIMIT,
            tif=Tif.IOC,
            price_ticks=100,
            qty_lots=2,
        ),
        dict(kind=CmdKind.REDUCE, order_id=1, qty_lots=2),
        dict(kind=CmdKind.REPLACE, order_id=1, price_ticks=101, qty_lots=2),
        dict(kind=CmdKind.CANCEL, order_id=7),
        dict(kind=CmdKind.MASS_CANCEL, user_id=0, flags=CmdFlag.MASS_ALL_USERS),
    ]
    for i, r in enumerate(rows):
        cmds[i]["seq"] = 100 + i
        cmds[i]["ts_ns"] = 5000 + i
        for k, v in r.items():
            cmds[i][k] = v
    b = mk()
    out = [tuple(int(x) for x in r) for r in b.process(cmds).tolist()]
    ref = mk()
    expect = []
    calls = [
        ("new_limit", (1, 1, SELL, 100, 5)),
        ("new_limit", (2, 2, BUY, 100, 2, Tif.IOC)),
        ("reduce", (1, 2)),
        ("replace", (1, 101, 2)),
        ("cancel", (7,)),
        ("mass_cancel", (0, 0, True)),
    ]
    for i, (fn, args) in enumerate(calls):
        ref.seq, ref.ts_ns = 100 + i, 5000 + i
        expect += run(ref, fn, *args)
    assert out == expect
    assert [e[0] for e in out] == [100, 101, 101, 102, 103, 104, 105]
    assert b.state_hash() == ref.state_hash()


def test_mass_cancel_invalid_side_rejected(mk):
    b = asks_book(mk)
    assert run(b, "mass_cancel", 4, 3) == [rejected(Reason.INVALID_SIDE, 0, 4, 3)]
    assert b.n_orders == 3


def test_process_unknown_kind_rejected(mk):
    cmds = np.zeros(1, dtype=CMD_DTYPE)
    cmds[0]["seq"], cmds[0]["ts_ns"] = 7, 1000
    cmds[0]["kind"], cmds[0]["order_id"], cmds[0]["user_id"] = 99, 5, 6
    cmds[0]["side"], cmds[0]["ord_type"] = BUY, LIMIT
    cmds[0]["price_ticks"], cmds[0]["qty_lots"] = 100, 2
    out = [tuple(int(x) for x in r) for r in mk().process(cmds).tolist()]
    assert out == [rejected(Reason.UNKNOWN_COMMAND, 5, 6, BUY, LIMIT, 100, 2)]


@pytest.mark.parametrize(
    "cfg",
    [
        {"tick_step": 0},
        {"lot_step": 0},
        {"min_qty_lots": 0},
        {"min_price_ticks": 0},
        {"capacity_orders": 0},
        {"min_qty_lots": 5, "max_qty_lots": 4},
        {"min_price_ticks": 5, "max_price_ticks": 4},
        {"protection_ticks": -1},
    ],
)
def test_bad_config_raises(mk, cfg):
    with pytest.raises(ValueError):
        mk(**cfg)


def test_market_quote_stp_checked_before_budget(mk):
    b = asks_book(mk)
    # 500 spent on order 1, 50 left (less than one lot at 100), own order 2 is next.
    assert run(b, "new_market_quote", 10, 2, 550, Stp.CANCEL_OLDEST) == [
        acc(10, 2, BUY, 0, 550, MQ),
        trade(10, 2, BUY, 1, 1, 100, 5, 50, 1, MD, MQ),
        canceled(2, 2, SELL, 100, 3, Reason.SELF_TRADE),
        canceled(10, 2, BUY, 0, 50, Reason.BUDGET_EXHAUSTED, MQ),
    ]


def test_market_quote_reject_copies_command_price(mk):
    b = mk()
    assert run(b, "new_order", 5, 3, BUY, MQ, Tif.IOC, 97, 100, 0, 0, PO) == [
        rejected(Reason.INVALID_FLAGS, 5, 3, BUY, MQ, 97, 100)
    ]
    assert run(b, "new_order", 5, 3, BUY, MQ, Tif.IOC, 97, 100, 0, 0, 0) == [
        acc(5, 3, BUY, 0, 100, MQ),
        canceled(5, 3, BUY, 0, 100, Reason.NO_LIQUIDITY, MQ),
    ]
