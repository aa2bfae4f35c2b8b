"""engine.core.Core: worst-case holds, reject paths, fee math, hold release on every end."""

from __future__ import annotations

import numpy as np
import pytest

from engine.wire import commands as cmd
from pyx.core import internal_order_id
from pyx.enums import CmdFlag, EvKind, OrdType, Reason, Side, Stp, Tif
from tests.engine.corekit import BASE, QUOTE, SYM, Ex, kinds, reject_changes_nothing

Q0 = 10**9  # quote each user starts with, minor units
B0 = 10**8  # base each user starts with, minor units


def _ex(**kw: int) -> Ex:
    """Users 1 (buyer), 2 (seller), 3 (both) funded; defaults of corekit.Ex."""
    ex = Ex(**kw)  # type: ignore[arg-type]
    for uid in (1, 2, 3):
        ex.user(uid, base=B0, quote=Q0)
    return ex


def _hold(ex: Ex, oid: int) -> int:
    rec = ex.core.order_hold(oid)
    assert rec is not None
    return int(rec["hold"])


# ----------------------------------------------------------------- holds


def test_limit_holds() -> None:
    ex = _ex()
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 100, 7), cmd.new_limit(2, 2, SYM, Side.SELL, 120, 3))
    assert _hold(ex, 1) == ex.buy_hold(100, 7) == 7000 + 14
    assert ex.bal(1, QUOTE) == (Q0 - 7014, 7014)
    assert _hold(ex, 2) == 3 * 100  # base_per_lot = 100
    assert ex.bal(2, BASE) == (B0 - 300, 300)
    ex.check()


def test_market_buy_holds_best_ask_plus_protection() -> None:
    ex = _ex()
    ex.ok(cmd.new_limit(9, 2, SYM, Side.SELL, 100, 10))
    ev = ex.ok(cmd.new_market(1, 1, SYM, Side.BUY, 3))
    assert kinds(ev) == ["ACCEPTED", "TRADE"]
    assert ev["price_ticks"][0] == 150  # worst price = best ask 100 + protection 50
    assert ev["taker_fee"][0] == ex.buy_hold(150, 3)
    assert ev["flags"][1] & 1  # TAKER_DONE: the rest of the hold is released
    assert ex.bal(1, QUOTE) == (Q0 - 3000 - 6, 0)
    assert ex.bal(1, BASE) == (B0 + 300, 0)
    ex.check()


@pytest.mark.parametrize(
    ("kw", "worst", "expect"),
    [
        ({}, 120, 120),  # the command's worst price is lower than the band
        ({}, 0, 150),
        ({"max_price": 130}, 0, 130),  # clamped to the price band
        ({"tick_step": 20, "protection": 50}, 0, 140),  # floored to the tick grid
    ],
)
def test_market_buy_worst_price(kw: dict[str, int], worst: int, expect: int) -> None:
    ex = _ex(**kw)
    ex.ok(cmd.new_limit(9, 2, SYM, Side.SELL, 100, 10))
    ev = ex.ok(cmd.new_market(1, 1, SYM, Side.BUY, 2, worst_price_ticks=worst))
    assert ev["price_ticks"][0] == expect
    assert ev["taker_fee"][0] == ex.buy_hold(expect, 2)
    ex.check()


def _money(ex: Ex) -> tuple[object, ...]:
    """Balances, fee accounts and books: everything but the remembered order ids."""
    d = ex.core._dump()
    return (d["balances"], d["assets"], d["orders"], d["books"])


def test_market_buy_below_best_ask_or_on_empty_book_changes_nothing() -> None:
    ex = _ex()
    before = _money(ex)
    ev = ex.ok(cmd.new_market(1, 1, SYM, Side.BUY, 2))
    assert kinds(ev) == ["ACCEPTED", "CANCELED"]
    assert ev["reason"][1] == Reason.NO_LIQUIDITY and ev["taker_fee"][0] == 0
    assert _money(ex) == before  # only the order id is used up
    ex.ok(cmd.new_limit(9, 2, SYM, Side.SELL, 100, 10))
    before = _money(ex)
    ev = ex.ok(cmd.new_market(2, 1, SYM, Side.BUY, 2, worst_price_ticks=99))
    assert kinds(ev) == ["ACCEPTED", "CANCELED"]
    assert _money(ex) == before
    ex.check()


def test_market_sell_holds_base() -> None:
    ex = _ex()
    ex.ok(cmd.new_limit(9, 1, SYM, Side.BUY, 100, 10))
    ev = ex.ok(cmd.new_market(2, 2, SYM, Side.SELL, 4))
    assert ev["taker_fee"][0] == 400 and kinds(ev) == ["ACCEPTED", "TRADE"]
    assert ex.bal(2, BASE) == (B0 - 400, 0)
    assert ex.bal(2, QUOTE) == (Q0 + 4000 - 8, 0)  # taker fee 2000 ppm from the proceeds
    ex.check()


def test_market_quote_budget_includes_fee() -> None:
    ex = _ex()
    ex.ok(cmd.new_limit(9, 2, SYM, Side.SELL, 100, 20))
    ev = ex.ok(cmd.new_market_quote(1, 1, SYM, 10_000))
    # net = floor(10000 * 1e6 / 1.002e6) = 9980 minor; book budget = 998 tick-lots; 9 lots fit
    assert kinds(ev) == ["ACCEPTED", "TRADE", "CANCELED"]
    assert ev["qty_lots"][0] == 998 and ev["taker_fee"][0] == 10_000
    assert ev["qty_lots"][1] == 9
    assert ev["reason"][2] == Reason.BUDGET_EXHAUSTED
    assert ev["maker_fee"][2] == -(10_000 - 9000 - 18)
    assert ex.bal(1, QUOTE) == (Q0 - 9018, 0)
    ex.check()


def test_market_quote_never_spends_more_than_budget() -> None:
    ex = _ex(maker_ppm=0, taker_ppm=999_999, mult=3)
    ex.ok(cmd.new_limit(9, 2, SYM, Side.SELL, 7, 1000))
    for oid, budget in enumerate((1, 5, 6, 41, 42, 1000, 12345), start=10):
        q0 = ex.bal(1, QUOTE)[0]
        _ev, rep = ex.run(cmd.new_market_quote(oid, 1, SYM, budget))
        spent = q0 - ex.bal(1, QUOTE)[0]
        assert 0 <= spent <= budget
        if rep["status"][0] == 2:
            assert rep["reason"][0] == Reason.INVALID_QTY and spent == 0  # buys nothing
        ex.check()


def test_stop_orders_hold_at_submission() -> None:
    ex = _ex()
    ev = ex.ok(
        cmd.new_stop(1, 1, SYM, Side.BUY, OrdType.STOP_LIMIT, 105, 2, price_ticks=110),
        cmd.new_stop(2, 1, SYM, Side.BUY, OrdType.STOP_MARKET, 105, 2),
        cmd.new_stop(3, 1, SYM, Side.BUY, OrdType.STOP_MARKET, 105, 2, price_ticks=130),
        cmd.new_stop(4, 2, SYM, Side.SELL, OrdType.STOP_MARKET, 90, 2),
    )
    assert _hold(ex, 1) == ex.buy_hold(110, 2)
    assert _hold(ex, 2) == ex.buy_hold(155, 2) and ev["price_ticks"][1] == 155
    assert _hold(ex, 3) == ex.buy_hold(130, 2) and ev["price_ticks"][2] == 130
    assert _hold(ex, 4) == 200
    reject_changes_nothing(ex, cmd.replace(1, 1, 111, 2), Reason.NOT_REPLACEABLE)
    # a trade at 105 triggers the three buy stops; they buy from the asks
    ev = ex.ok(
        cmd.new_limit(20, 3, SYM, Side.SELL, 108, 10),
        cmd.new_limit(21, 3, SYM, Side.SELL, 105, 1),
        cmd.new_limit(22, 2, SYM, Side.BUY, 105, 1),
    )
    assert kinds(ev).count("TRIGGERED") == 3
    assert ex.core.order_hold(2) is None and ex.core.order_hold(3) is None
    assert ex.core.order_hold(1) is None  # filled at 108 <= 110
    assert ex.bal(1, QUOTE)[1] == 0
    assert ex.bal(1, BASE)[0] == B0 + 600
    ex.check()


# ------------------------------------------------------- fills and releases


def test_price_improvement_reduce_and_fill() -> None:
    ex = _ex()
    ex.ok(cmd.new_limit(9, 2, SYM, Side.SELL, 100, 2))
    ev, rep = ex.run(cmd.new_limit(1, 1, SYM, Side.BUY, 110, 4))
    cost = 2000 + 4  # 2 lots at the maker's 100, taker fee 2000 ppm
    assert rep["value"][0] == ex.buy_hold(110, 4) - cost == _hold(ex, 1)
    assert _hold(ex, 1) >= ex.buy_hold(110, 2)
    ev = ex.ok(cmd.reduce(1, 1, 1))
    assert kinds(ev) == ["REDUCED"]
    released = ex.buy_hold(110, 4) - cost - ex.buy_hold(110, 1)
    assert (ev["taker_fee"][0], ev["maker_fee"][0]) == (ex.buy_hold(110, 1), -released)
    assert ex.bal(1, QUOTE) == (Q0 - cost - ex.buy_hold(110, 1), ex.buy_hold(110, 1))
    ev = ex.ok(cmd.new_limit(10, 2, SYM, Side.SELL, 110, 1))
    assert ev["maker_fee"][1] == 1  # 1000 ppm of 1100
    assert ex.bal(1, QUOTE) == (Q0 - cost - 1101, 0)
    assert ex.bal(1, BASE) == (B0 + 300, 0)
    ex.check()


def test_replace_recomputes_the_hold() -> None:
    ex = _ex()
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 100, 2))
    ev = ex.ok(cmd.replace(1, 1, 120, 3))
    assert kinds(ev) == ["REPLACED"]
    up = ex.buy_hold(120, 3) - ex.buy_hold(100, 2)
    assert (ev["taker_fee"][0], ev["maker_fee"][0]) == (ex.buy_hold(120, 3), up)
    ev = ex.ok(cmd.replace(1, 1, 90, 1))
    assert ev["maker_fee"][0] == ex.buy_hold(90, 1) - ex.buy_hold(120, 3)
    assert ex.bal(1, QUOTE) == (Q0 - ex.buy_hold(90, 1), ex.buy_hold(90, 1))
    ex.ok(cmd.new_limit(2, 2, SYM, Side.SELL, 150, 5))
    ex.ok(cmd.replace(2, 2, 150, 2))
    assert ex.bal(2, BASE) == (B0 - 200, 200)
    ex.check()


def test_replace_without_funds_changes_nothing() -> None:
    ex = Ex()
    ex.user(1, quote=ex.buy_hold(100, 2) + 5)
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 100, 2))
    reject_changes_nothing(ex, cmd.replace(1, 1, 100, 3), Reason.INSUFFICIENT_FUNDS)
    book = ex.core.book(SYM)
    assert book is not None
    order = book.order(internal_order_id(1, 1))
    assert order is not None and order[3:5] == (100, 2)


def test_replace_that_crosses_trades_as_taker() -> None:
    ex = _ex()
    ex.ok(cmd.new_limit(9, 2, SYM, Side.SELL, 100, 3), cmd.new_limit(1, 1, SYM, Side.BUY, 90, 5))
    ev = ex.ok(cmd.replace(1, 1, 100, 5))
    assert kinds(ev) == ["REPLACED", "TRADE"]
    assert ev["taker_fee"][1] == 6 and ev["maker_fee"][1] == 3
    assert _hold(ex, 1) == ex.buy_hold(100, 5) - 3006
    ex.check()


def test_stp_decrement_releases_both_holds() -> None:
    ex = _ex()
    ex.ok(cmd.new_limit(1, 3, SYM, Side.BUY, 100, 5))
    ev = ex.ok(cmd.new_limit(2, 3, SYM, Side.SELL, 100, 3, stp=Stp.DECREMENT))
    assert kinds(ev) == ["ACCEPTED", "REDUCED", "CANCELED"]
    assert ev["taker_fee"][1] == ex.buy_hold(100, 2) == _hold(ex, 1)
    assert ev["maker_fee"][2] == -300
    assert ex.bal(3, QUOTE) == (Q0 - ex.buy_hold(100, 2), ex.buy_hold(100, 2))
    assert ex.bal(3, BASE) == (B0, 0)
    ex.check()


def test_self_trade_without_stp_pays_both_fees() -> None:
    ex = _ex()
    ex.ok(cmd.new_limit(1, 3, SYM, Side.BUY, 100, 5), cmd.new_limit(2, 3, SYM, Side.SELL, 100, 5))
    assert ex.bal(3, QUOTE) == (Q0 - 5 - 10, 0)
    assert ex.bal(3, BASE) == (B0, 0)
    assert ex.core.fee_balance(QUOTE) == 15
    ex.check()


def test_ioc_remainder_and_fok_release() -> None:
    ex = _ex()
    ex.ok(cmd.new_limit(9, 2, SYM, Side.SELL, 100, 2))
    ev = ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 100, 5, tif=Tif.IOC))
    assert kinds(ev) == ["ACCEPTED", "TRADE", "CANCELED"]
    assert ex.bal(1, QUOTE) == (Q0 - 2004, 0)
    reject_changes_nothing(
        ex, cmd.new_limit(2, 1, SYM, Side.BUY, 100, 5, tif=Tif.FOK), Reason.FOK_NOT_FILLABLE
    )


# ------------------------------------------------------------------ fees


def test_fees_round_down_and_fee_account_gets_exactly_what_was_paid() -> None:
    ex = _ex(maker_ppm=3_333, taker_ppm=7_777, mult=1, base_per_lot=1)
    paid = 0
    oid = 100
    for price, qty in ((1, 1), (3, 7), (299, 1), (1000, 333), (7, 13)):
        oid += 2
        ex.ok(cmd.new_limit(oid, 2, SYM, Side.SELL, price, qty))
        ev = ex.ok(cmd.new_limit(oid + 1, 1, SYM, Side.BUY, price, qty))
        tr = ev[ev["kind"] == EvKind.TRADE]
        n = price * qty
        assert int(tr["taker_fee"].sum()) == n * 7_777 // 10**6
        assert int(tr["maker_fee"].sum()) == n * 3_333 // 10**6
        paid += int(tr["taker_fee"].sum() + tr["maker_fee"].sum())
    assert ex.core.fee_balance(QUOTE) == paid
    assert ex.bal(1, QUOTE)[1] == 0 and ex.bal(2, BASE)[1] == 0
    ex.check()


def test_full_fee_rate_leaves_the_seller_nothing() -> None:
    ex = _ex(maker_ppm=1_000_000, taker_ppm=1_000_000)
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 100, 1))
    assert _hold(ex, 1) == 2000
    ex.ok(cmd.new_limit(2, 2, SYM, Side.SELL, 100, 1))
    assert ex.bal(2, QUOTE) == (Q0, 0)
    assert ex.bal(1, QUOTE) == (Q0 - 2000, 0)
    assert ex.core.fee_balance(QUOTE) == 2000
    ex.check()


# ---------------------------------------------------------------- rejects

NEW_REJECTS = [
    (cmd.new_limit(0, 1, SYM, Side.BUY, 100, 1), Reason.INVALID_ORDER_ID),
    (cmd.new_limit(1, 99, SYM, Side.BUY, 100, 1), Reason.UNKNOWN_USER),
    (cmd.new_limit(1, 1, 9, Side.BUY, 100, 1), Reason.UNKNOWN_SYMBOL),
    (cmd.new_limit(1, 1, SYM, 3, 100, 1), Reason.INVALID_SIDE),
    (cmd.new_order(1, 1, SYM, Side.SELL, OrdType.MARKET_QUOTE, 100, tif=Tif.IOC),
     Reason.INVALID_SIDE),
    (cmd.new_order(1, 1, SYM, Side.BUY, 9, 1, price_ticks=100), Reason.INVALID_ORDER_TYPE),
    (cmd.new_limit(8, 1, SYM, Side.BUY, 100, 1), Reason.EXISTS_WITH_DIFFERENT_FIELDS),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 100, 0), Reason.INVALID_QTY),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 100, -4), Reason.INVALID_QTY),
    (cmd.new_market_quote(1, 1, SYM, 0), Reason.INVALID_QTY),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 102, 1), Reason.PRICE_OFF_TICK),
    (cmd.new_limit(1, 1, SYM, Side.SELL, 102, 1), Reason.PRICE_OFF_TICK),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 0, 1), Reason.PRICE_OUT_OF_BAND),
    (cmd.new_limit(1, 1, SYM, Side.BUY, -5, 1), Reason.PRICE_OUT_OF_BAND),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 10**6 + 5, 1), Reason.PRICE_OUT_OF_BAND),
    (cmd.new_market(1, 1, SYM, Side.BUY, 1, worst_price_ticks=7), Reason.PRICE_OFF_TICK),
    (cmd.new_stop(1, 1, SYM, Side.BUY, OrdType.STOP_MARKET, 103, 1), Reason.PRICE_OFF_TICK),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 10**6, 2**61), Reason.NOTIONAL_OVERFLOW),
    (cmd.new_limit(1, 1, SYM, Side.SELL, 10**6, 2**61), Reason.NOTIONAL_OVERFLOW),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 100, 10**6), Reason.INSUFFICIENT_FUNDS),
    (cmd.new_limit(1, 1, SYM, Side.SELL, 100, 10**6 + 4), Reason.INSUFFICIENT_FUNDS),
    (cmd.new_market_quote(1, 1, SYM, Q0 + 1), Reason.INSUFFICIENT_FUNDS),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 5, 1), Reason.BELOW_MIN_NOTIONAL),
    (cmd.new_limit(1, 1, SYM, Side.SELL, 5, 1), Reason.BELOW_MIN_NOTIONAL),
    (cmd.new_market_quote(1, 1, SYM, 49), Reason.BELOW_MIN_NOTIONAL),
    # checks of the book, after the hold was placed: the hold is undone
    (cmd.new_limit(1, 1, SYM, Side.BUY, 100, 3), Reason.QTY_OFF_LOT),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 5, 10**6 + 2), Reason.QTY_OUT_OF_RANGE),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 200, 2, post_only=True), Reason.POST_ONLY_WOULD_TAKE),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 200, 20, tif=Tif.FOK), Reason.FOK_NOT_FILLABLE),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 100, 2, tif=9), Reason.INVALID_TIF),
    (cmd.new_limit(1, 1, SYM, Side.BUY, 100, 2, stp=7), Reason.INVALID_STP),
    (cmd.new_order(1, 1, SYM, Side.BUY, OrdType.LIMIT, 2, price_ticks=100, flags=4),
     Reason.INVALID_FLAGS),
    (cmd.new_order(1, 1, SYM, Side.BUY, OrdType.LIMIT, 2, price_ticks=100, tif=Tif.IOC,
                 flags=CmdFlag.POST_ONLY), Reason.INVALID_FLAGS),
    (cmd.new_stop(1, 1, SYM, Side.SELL, OrdType.STOP_LIMIT, 110, 2, price_ticks=100),
     Reason.STOP_WOULD_TRIGGER),
]  # fmt: skip


@pytest.mark.parametrize(("rec", "reason"), NEW_REJECTS)
def test_new_order_rejects_change_nothing(rec: np.ndarray, reason: int) -> None:
    ex = Ex(tick_step=5, lot_step=2, max_qty=10**6)
    ex.user(1, base=10**8, quote=10**9)
    ex.user(2, base=10**8, quote=10**9)
    ex.ok(
        cmd.set_min_notional(SYM, 500),
        cmd.new_limit(9, 2, SYM, Side.SELL, 150, 2),
        cmd.new_limit(8, 1, SYM, Side.BUY, 100, 2),
        cmd.new_limit(7, 2, SYM, Side.SELL, 100, 2),  # trades: last trade price 100
    )
    ev = reject_changes_nothing(ex, rec, reason)
    assert kinds(ev) == ["REJECTED"]
    assert ev["reason"][0] == reason and ev["order_id"][0] == rec["order_id"][0]
    assert ev["user_id"][0] == rec["user_id"][0]


@pytest.mark.parametrize(
    ("rec", "reason"),
    [
        (cmd.replace(8, 1, 100, 0), Reason.INVALID_QTY),
        (cmd.replace(8, 1, 102, 2), Reason.PRICE_OFF_TICK),
        (cmd.replace(8, 1, 0, 2), Reason.PRICE_OUT_OF_BAND),
        (cmd.replace(8, 1, 10**6, 2**61), Reason.NOTIONAL_OVERFLOW),
        (cmd.replace(8, 1, 5, 2), Reason.BELOW_MIN_NOTIONAL),
        (cmd.replace(8, 1, 100, 3), Reason.QTY_OFF_LOT),
        (cmd.replace(8, 1, 100, 2), Reason.REPLACE_NO_CHANGE),
        (cmd.replace(8, 1, 100, 10**6), Reason.INSUFFICIENT_FUNDS),
        (cmd.reduce(8, 1, 3), Reason.REDUCE_NOT_SMALLER),
        (cmd.reduce(8, 1, -1), Reason.INVALID_QTY),
        (cmd.replace(6, 1, 100, 2), Reason.NOT_REPLACEABLE),
        (cmd.reduce(6, 1, 0), Reason.NOT_REPLACEABLE),
    ],
)
def test_amend_rejects_change_nothing(rec: np.ndarray, reason: int) -> None:
    ex = Ex(tick_step=5, lot_step=2)
    ex.user(1, base=10**8, quote=10**7)
    ex.ok(
        cmd.set_min_notional(SYM, 500),
        cmd.new_limit(8, 1, SYM, Side.BUY, 100, 2),
        cmd.new_stop(6, 1, SYM, Side.BUY, OrdType.STOP_LIMIT, 200, 2, price_ticks=200),
    )
    reject_changes_nothing(ex, rec, reason)


def test_funding_account_is_not_usable_for_orders() -> None:
    ex = Ex()
    ex.user(1)
    ex.ok(cmd.deposit(5, 1, QUOTE, 10**6, account=1))
    reject_changes_nothing(ex, cmd.new_limit(1, 1, SYM, Side.BUY, 10, 1), Reason.INSUFFICIENT_FUNDS)
    ex.ok(cmd.transfer(1, QUOTE, 10**6, 1, 0, ref=1), cmd.new_limit(1, 1, SYM, Side.BUY, 10, 1))
    ex.check()


def test_buy_hold_covers_every_fill_sequence() -> None:
    """Many small fills at better prices never exceed the ceil-rounded hold."""
    ex = _ex(maker_ppm=999, taker_ppm=1_001, mult=7, base_per_lot=3)
    for i in range(40):
        ex.ok(cmd.new_limit(100 + i, 2, SYM, Side.SELL, 50 + i % 5, 1))
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 60, 100))
    hold = ex.core.order_hold(1)
    assert hold is not None and hold["hold"] >= ex.buy_hold(60, 60, 1_001)
    ex.ok(cmd.cancel(1, 1))
    ex.check()
