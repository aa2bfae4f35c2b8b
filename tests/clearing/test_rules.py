"""The event -> entries rules: every event balances; the stream rebuilds the core."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bursa_wire.layout import EV_FIELDS
from clearing import rules
from clearing.rules import AVAILABLE, EXTERNAL, HELD, Ev, Hold, Symbol
from pyx.enums import EvKind, Side
from tests.clearing.replay import run_core

SYM = {1: Symbol(base=1, quote=2, multiplier=10, base_per_lot=100)}


def ev(**kw: int) -> Ev:
    """An event with the given fields, zero elsewhere."""
    return Ev(**{f.name: kw.get(f.name, 0) for f in EV_FIELDS})


def test_ev_fields_follow_the_record_layout() -> None:
    assert Ev._fields == tuple(f.name for f in EV_FIELDS)


def test_deposit_posts_against_the_external_account() -> None:
    p = rules.post(ev(kind=EvKind.DEPOSITED, user_id=7, symbol_id=2, qty_lots=500,
                      price_ticks=1, order_id=99), {}, {})  # fmt: skip
    assert [(e.account, e.amount, e.cause, e.ref) for e in p.entries] == [
        ((7, 1, AVAILABLE, 2), 500, "deposit", 99),
        ((0, 0, EXTERNAL, 2), -500, "deposit", 99),
    ]


def test_trade_with_fees_and_final_release() -> None:
    # Buyer (taker, user 1, order 10) held 10,000 + fee reserve; buys 3 lots at 100.
    holds = {(1, 10): Hold(2, 3_100), (2, 20): Hold(1, 300)}
    e = ev(kind=EvKind.TRADE, side=Side.BUY, user_id=1, order_id=10, maker_user_id=2,
           maker_order_id=20, symbol_id=1, price_ticks=100, qty_lots=3, match_id=5,
           taker_fee=6, maker_fee=3, flags=rules.TAKER_DONE | rules.MAKER_DONE)  # fmt: skip
    p = rules.post(e, SYM, holds)
    assert rules.balanced(p.entries) == {1: 0, 2: 0}
    got: dict[rules.Account, int] = {}
    for en in p.entries:
        got[en.account] = got.get(en.account, 0) + en.amount
    assert got == {
        (1, 0, HELD, 2): -3_100,  # 3,000 notional + 6 fee + 94 released
        (1, 0, AVAILABLE, 2): 94,
        (2, 0, AVAILABLE, 2): 3_000 - 3,
        (0, 0, rules.FEE, 2): 9,
        (2, 0, HELD, 1): -300,
        (1, 0, AVAILABLE, 1): 300,
    }
    assert p.holds == {(1, 10): None, (2, 20): None}


def test_unknown_order_is_a_stream_error() -> None:
    with pytest.raises(rules.UnknownReferenceError):
        rules.post(ev(kind=EvKind.CANCELED, user_id=1, order_id=5), SYM, {})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 300))
def test_every_event_of_a_core_stream_balances(seed: int, n: int) -> None:
    """Every event the real core emits maps to entries summing to zero per asset,
    with holds tracked exactly as the core reports them."""
    core, frames = run_core(seed, n)
    symbols: dict[int, Symbol] = {}
    holds: dict[tuple[int, int], Hold] = {}
    for _first, _last, events in frames:
        for rec in events.tolist():
            e = Ev(*rec)
            p = rules.post(e, symbols, holds)
            assert all(v == 0 for v in rules.balanced(p.entries).values()), (e, p)
            assert all(en.amount != 0 for en in p.entries)
            if e.kind == EvKind.SYMBOL_ADDED:
                symbols[e.symbol_id] = Symbol(e.user_id, e.maker_user_id, e.taker_fee,
                                              e.maker_fee)  # fmt: skip
            for k, h in p.holds.items():
                if h is None:
                    holds.pop(k)
                else:
                    holds[k] = h
    live = {(int(o["user_id"]), int(o["order_id"])): int(o["hold"]) for o in core.open_orders()}
    assert live == {k: h.amount for k, h in holds.items()}
