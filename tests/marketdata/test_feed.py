"""The feed state machine against the real core, in process: exact books, determinism,
no private ids, candles."""

from __future__ import annotations

import numpy as np
import pytest

from bursa_wire.md_codec import decode
from bursa_wire.md_layout import Channel, MsgType, topic
from engine.core import Core
from marketdata.feed import Feed
from pyx.core import client_order_id
from pyx.enums import EvKind, Side
from tests.marketdata.feedkit import (
    TS0,
    Run,
    assert_book_matches,
    assert_no_private_ids,
    candles_by_key,
    recompute_candles,
)
from tests.marketdata.flow import OID0, SYMBOLS, Flow, setup


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_local_books_equal_core_books_after_every_batch(seed: int) -> None:
    run = Run(seed)
    kinds: set[int] = set()
    for _ in range(150):
        run.random(1, 12, 97_000_000)
        for s in SYMBOLS:
            assert_book_matches(run.core, run.books[s])
            # The feed's own book names the same (user, order) keys in the same order.
            sb = run.feed.symbols[s]
            got = [
                (sb.side_levels(side)[p].orders[ref].key[::-1], side, p, q)
                for ref, side, p, q in sb.l3()
            ]
            cb = run.core.book(s)
            assert cb is not None
            want = [
                ((client_order_id(int(o[0]))[1], int(o[1])), int(o[2]), int(o[3]), int(o[4]))
                for o in cb.l3()
            ]
            assert got == want
        kinds |= {decode(raw).msg_type for _, raw in run.msgs}
    # The flow exercised every message type.
    assert kinds == set(MsgType)


def test_sequence_numbers_are_gap_free_per_channel_and_symbol() -> None:
    run = Run(4)
    run.random(100, 15, 50_000_000)
    last: dict[tuple[int, int], int] = {}
    for tp, raw in run.msgs:
        m = decode(raw)
        k = (m.channel, m.symbol_id)
        assert m.channel_seq == last.get(k, 0) + 1
        last[k] = m.channel_seq
        assert tp == topic(Channel(m.channel), m.symbol_id)
    assert {k[0] for k in last} == set(Channel)


def test_output_does_not_depend_on_framing() -> None:
    """Same events cut one command per call or all at once, or delivered twice:
    byte-identical messages (what lets a restart continue the numbering)."""
    core = Core()
    ev0, _ = core.run(setup(), TS0)
    evs = [ev0.copy()]
    flow = Flow(5)
    for i in range(60):
        ev, _ = core.run(flow.batch(10), TS0 + i * 300_000_000)
        evs.append(ev.copy())
    last = core.last_seq
    allev = np.concatenate(evs)
    whole = Feed()
    whole.apply_events(allev, last)
    per_cmd = Feed()
    for s in np.unique(allev["seq"]):
        per_cmd.apply_events(allev[allev["seq"] == s], int(s))
        per_cmd.apply_events(allev[allev["seq"] <= s], int(s))  # duplicates: skipped
    per_cmd.core_seq = max(per_cmd.core_seq, last)
    assert [r for _, r in whole.take()] == [r for _, r in per_cmd.take()]


def test_no_public_message_carries_a_user_or_order_id() -> None:
    run = Run(6)
    run.random(80, 15, 40_000_000)
    assert len(run.msgs) > 1000
    for _tp, raw in run.msgs:
        assert_no_private_ids(raw, run.flow.user_ids(), run.flow.next_oid, OID0)


def test_candles_equal_recomputation_from_trades() -> None:
    run = Run(7)
    # Steps from 10 ms to 2 h so that every interval closes some candles.
    for dt in (10_000_000, 700_000_000, 45 * 10**9, 7_000 * 10**9, 90_000 * 10**9) * 8:
        run.random(3, 15, dt)
    msgs = [decode(raw) for _, raw in run.msgs]
    want = recompute_candles(msgs)
    closed, latest = candles_by_key(msgs)
    assert closed, "no candle closed"
    assert set(latest) == set(want)
    for k, m in latest.items():
        b = m.body
        got = (b["open_ticks"], b["high_ticks"], b["low_ticks"], b["close_ticks"],
               b["volume_lots"], b["quote_volume"], b["trades"])  # fmt: skip
        assert got == want[k], k
    # Closed exactly when a later command's time passed the bucket's end.
    last_ts = max(m.ts_ns for m in msgs)
    for (_s, iv, start), _m in latest.items():
        assert ((_s, iv, start) in closed) == (start + iv * 10**9 <= last_ts)
    assert {iv for _s, iv, _st in closed} == {1, 60, 300, 900, 3600, 14400, 86400}


def test_halt_and_resume_publish_status() -> None:
    run = Run(8)
    from engine.wire import commands as wc

    run.step(wc.halt_symbol(1))
    assert run.books[1].status is not None and run.books[1].status["status"] == 2
    run.step(wc.resume_symbol(1))
    st = run.books[1].status
    assert st is not None and st["status"] == 1
    assert (st["tick_step"], st["lot_step"], st["price_multiplier"], st["base_per_lot"]) == (
        1,
        1,
        10,
        100,
    )
    assert (st["base_decimals"], st["quote_decimals"]) == (8, 6)


def test_replaced_order_that_crosses_is_deleted_not_replaced() -> None:
    from engine.wire import commands as wc

    run = Run(9)
    u1, u2 = run.flow.user_ids()[:2]
    run.step(wc.new_limit(OID0, u1, 1, 2, 110, 5))
    run.step(wc.new_limit(OID0 + 1, u2, 1, 1, 100, 5))
    run.msgs.clear()
    run.step(wc.replace(OID0 + 1, u2, 110, 3))  # crosses: trades 3 at 110, nothing rests
    types = [decode(r).msg_type for _, r in run.msgs]
    assert MsgType.L3_REPLACE not in types and MsgType.L3_DELETE in types
    assert_book_matches(run.core, run.books[1])
    run.msgs.clear()
    run.step(wc.replace(OID0, u1, 111, 2))  # moves: one REPLACE
    types = [decode(r).msg_type for _, r in run.msgs]
    assert types.count(MsgType.L3_REPLACE) == 1
    assert_book_matches(run.core, run.books[1])
    assert int(EvKind.REPLACED)


def _ev(seq: int, kind: int, **f: int) -> np.ndarray:
    from bursa_wire.layout import EV_DTYPE

    rec = np.zeros(1, dtype=EV_DTYPE)
    rec["seq"], rec["ts_ns"], rec["kind"], rec["symbol_id"] = seq, TS0 + seq, kind, 1
    for k, v in f.items():
        rec[k] = v
    return rec


def test_orders_are_keyed_by_user_and_order_id() -> None:
    """Order ids live in the namespace of their user (the core's trust-boundary change):
    two users' orders with the same id are two orders."""
    from pyx.enums import OrdType

    lim = int(OrdType.LIMIT)
    evs = np.concatenate(
        [
            _ev(1, EvKind.SYMBOL_ADDED, order_id=1 | (1 << 32), qty_lots=10**6, leaves_lots=10**9),
            _ev(2, EvKind.ACCEPTED, user_id=7, order_id=5, side=2, price_ticks=100,
                qty_lots=3, leaves_lots=3, ord_type=lim),
            _ev(3, EvKind.ACCEPTED, user_id=8, order_id=5, side=2, price_ticks=101,
                qty_lots=2, leaves_lots=2, ord_type=lim),
            _ev(4, EvKind.CANCELED, user_id=8, order_id=5, side=2, price_ticks=101,
                qty_lots=2, ord_type=lim),
            _ev(5, EvKind.TRADE, user_id=9, order_id=5, maker_user_id=7, maker_order_id=5,
                side=1, price_ticks=100, qty_lots=1, leaves_lots=0, match_id=1, ord_type=lim),
        ]
    )  # fmt: skip
    feed = Feed()
    feed.apply_events(evs, 5)
    sb = feed.symbols[1]
    assert sb.l3() == [[1, 2, 100, 2]]
    types = [decode(r).msg_type for _, r in feed.take()]
    assert types.count(MsgType.L3_ADD) == 2 and types.count(MsgType.L3_DELETE) == 1
    assert types.count(MsgType.L3_EXECUTE) == 1


def test_candle_volumes_saturate_instead_of_wrapping() -> None:
    """Quote volume is a sum of price x qty over a bucket: each trade fits in i64 (the
    core refuses a notional that would not), a bucket of them may not. The feed saturates
    at 2**63-1 (docs/marketdata.md); wrapping would publish a negative volume."""
    from engine.wire import commands as wc

    core, feed = Core(), Feed(1000)
    px, qty = 2**29, 2**30  # one trade: 2**59 ticks x lots
    b = wc.CmdBatch()
    b.add(wc.add_asset(1, 0)).add(wc.add_asset(2, 0)).add(wc.add_fee_tier(0, 0, 0))
    b.add(wc.add_symbol(9, 1, 2, max_qty_lots=2**31, max_price_ticks=2**30))
    for u in (1, 2):
        b.add(wc.add_user(u))
        b.add(wc.deposit(10 * u, u, 1, 2**31)).add(wc.deposit(10 * u + 1, u, 2, 2**60))
    ts = TS0
    ev, _ = core.run(b.to_array(), ts)
    feed.apply_events(ev, core.last_seq)
    oid = {1: 0, 2: 0}
    for k in range(20):  # 20 x 2**59 = 10 x 2**60 > 2**63 - 1, all in one 1-day bucket
        maker, taker = (1, 2) if k % 2 == 0 else (2, 1)
        oid[maker] += 1
        oid[taker] += 1
        cmds = np.concatenate(
            [wc.new_limit(oid[maker], maker, 9, Side.SELL, px, qty),
             wc.new_limit(oid[taker], taker, 9, Side.BUY, px, qty)]
        )  # fmt: skip
        ts += 1_000_000
        ev, rep = core.run(cmds, ts)
        assert (rep["status"] != 2).all(), rep
        feed.apply_events(ev, core.last_seq)
    day = [
        m
        for m in (decode(raw) for _, raw in feed.take())
        if m.msg_type == MsgType.CANDLE and m["interval_s"] == 86_400
    ]
    assert day[-1]["trades"] == 20
    assert day[-1]["quote_volume"] == 2**63 - 1  # saturated, never negative
    assert day[-1]["volume_lots"] == 20 * qty
    assert all(m["quote_volume"] >= 0 for m in day)
