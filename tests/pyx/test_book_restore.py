"""Book restore API: ``restore_order`` / ``restore_counters`` (docs/book.md, "Restore").

A book rebuilt from another one's ``l3_full()`` rows, ``stops()`` rows and counters
must have the same ``state_hash()`` and must then behave identically: the same
events, record for record, for any further command.  Hypothesis drives random
command streams (the generators of the differential tests) before and after the
rebuild; a long seeded exchange-style stream is cut and rebuilt several times;
unit tests cover the fields a plain ``l3()`` row does not show (submitted type,
stop price, STP mode), stop arrival order, and every refused row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from pyx.book import Book
from pyx.enums import CmdFlag, EvKind, OrdType, Side, Stp, Tif
from tests.bookgen import STREAM_CONFIG, call, check_book, ev_tuples, exchange_stream
from tests.pyx.test_book_differential import SETTINGS, Gen, configs, script

BUY, SELL = int(Side.BUY), int(Side.SELL)
LIMIT, MARKET = int(OrdType.LIMIT), int(OrdType.MARKET)
STOP_LIMIT, STOP_MARKET = int(OrdType.STOP_LIMIT), int(OrdType.STOP_MARKET)
GTC, IOC, FOK = int(Tif.GTC), int(Tif.IOC), int(Tif.FOK)
PO = int(CmdFlag.POST_ONLY)
STREAM_SEED = 20260311  # its book holds 100-250 orders and some stops at every cut
STREAM_COMMANDS = 60_000
STREAM_CUTS = (10_000, 20_000, 40_000, 50_000)  # rebuild points in the seeded stream
CHUNK_COMMANDS = 500  # batch size between two comparisons after a rebuild


def restore_into(src: Book, dst: Book) -> None:
    """Rebuild ``src`` into the empty ``dst`` through the restore API only."""
    for oid, uid, side, price, open_lots, flags, ot, tif, stop, stp in src.l3_full():
        dst.restore_order(oid, uid, side, ot, tif, price, open_lots, stop, stp, flags)
    for oid, uid, side, ot, tif, stop, price, open_lots, stp in src.stops():
        dst.restore_order(oid, uid, side, ot, tif, price, open_lots, stop, stp, 0, is_stop=True)
    dst.restore_counters(src.last_price(), src.next_match_id)


def rebuilt(src: Book, cfg: dict[str, Any], capacity_orders: int | None = None) -> Book:
    """A new book of the same configuration restored from ``src`` (the pool size is not
    behaviour: it may differ)."""
    if capacity_orders is not None:
        cfg = dict(cfg, capacity_orders=capacity_orders)
    dst = Book(src.symbol_id, **cfg)
    restore_into(src, dst)
    assert len(dst.events()) == 0, "a restore emits no event"
    return dst


def assert_same_book(a: Book, b: Book) -> None:
    """Equal hashes and equal dumps, field by field (a hash mismatch is hard to read)."""
    assert b.l3_full() == a.l3_full()
    assert b.stops() == a.stops()
    assert (b.last_price(), b.next_match_id, b.n_orders) == (
        a.last_price(),
        a.next_match_id,
        a.n_orders,
    )
    for side in (BUY, SELL):
        assert b.l2(side) == a.l2(side)
    for row in a.l3_full() + a.stops():
        assert b.order(row[0]) == a.order(row[0])
    assert b.state_hash() == a.state_hash()


def run(book: Book, cmds: list[Any], seq0: int) -> list[list[tuple[int, ...]]]:
    """Per-command events of ``cmds`` on ``book`` (seq from ``seq0``)."""
    out = []
    for i, cmd in enumerate(cmds):
        book.seq, book.ts_ns = seq0 + i, 1000 * (seq0 + i)
        book.clear_events()
        call(book, cmd)
        out.append(ev_tuples(book.events()))
    return out


@st.composite
def restore_scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], list[Any], list[Any], int]:
    """A configuration, commands before the rebuild, commands after it (same id
    generator, so they hit the restored orders), and the rebuilt book's pool size."""
    cfg = draw(configs())
    gen = Gen(draw, cfg)
    before = [gen.command() for _ in range(draw(st.integers(0, 80)))]
    after = [gen.command() for _ in range(draw(st.integers(0, 60)))]
    cap = draw(st.sampled_from([1, cfg["capacity_orders"]]))
    return cfg, before, after, cap


@settings(SETTINGS, max_examples=150)
@given(scenario=restore_scenarios())
def test_rebuilt_book_has_the_same_hash_and_behaves_identically(scenario):
    cfg, before, after, cap = scenario
    note(script(cfg, before + after))
    orig = Book(1, **cfg)
    run(orig, before, 1)
    twin = rebuilt(orig, cfg, cap)
    assert_same_book(orig, twin)
    twin.check_invariants()
    seq0 = len(before) + 1
    for i, cmd in enumerate(after):
        got = run(twin, [cmd], seq0 + i)
        want = run(orig, [cmd], seq0 + i)
        assert got == want, (i, cmd)
        assert twin.state_hash() == orig.state_hash(), (i, cmd)
    assert_same_book(orig, twin)
    twin.check_invariants()
    check_book(twin)
    # a rebuilt book rebuilds to itself
    assert rebuilt(twin, cfg).state_hash() == twin.state_hash()


def test_seeded_stream_rebuilt_midway_continues_identically():
    """A long exchange-style stream (stops, STP, crossing moves) through the batch API,
    rebuilt at several points; both books then run the rest in chunks."""
    recs = exchange_stream(STREAM_SEED, STREAM_COMMANDS)
    orig = Book(1, **STREAM_CONFIG)
    orig.process(recs[: STREAM_CUTS[0]])
    done = STREAM_CUTS[0]
    triggered_resting = 0
    for cut in (*STREAM_CUTS[1:], len(recs)):
        twin = rebuilt(orig, STREAM_CONFIG, 1)
        assert_same_book(orig, twin)
        assert twin.n_orders > 100 and twin.stops(), "the stream should leave a real book"
        triggered_resting += sum(r[6] == STOP_LIMIT for r in twin.l3_full())
        for start in range(done, cut, CHUNK_COMMANDS):
            chunk = recs[start : min(cut, start + CHUNK_COMMANDS)]
            want = orig.process(chunk).tobytes()
            assert twin.process(chunk).tobytes() == want, start
            assert twin.state_hash() == orig.state_hash(), start
        twin.check_invariants()
        done = cut
    assert triggered_resting > 0, "a triggered STOP_LIMIT should rest at some cut"


# ------------------------------------------------------------------ hidden fields


def triggered_stop_limit_book() -> Book:
    """A STOP_LIMIT GTC (id 10, stop 100, limit 99, stp DECREMENT) triggered and resting;
    a LIMIT (id 11) sent with a stop price; a post-only bid (id 12)."""
    b = Book(1)
    b.new_stop(10, 1, SELL, STOP_LIMIT, 100, 99, 4, tif=GTC, stp=int(Stp.DECREMENT))
    b.new_limit(1, 2, BUY, 100, 1)
    b.new_limit(2, 3, SELL, 100, 1)  # trades at 100: triggers 10, which rests at 99
    b.new_order(11, 4, SELL, LIMIT, GTC, 105, 2, 77, int(Stp.CANCEL_OLDEST), 0)
    b.new_limit(12, 5, BUY, 90, 3, post_only=True)
    b.clear_events()
    return b


def test_l3_full_shows_what_l3_does_not():
    b = triggered_stop_limit_book()
    rows = {r[0]: r for r in b.l3_full()}
    assert rows[10] == (10, 1, SELL, 99, 4, 0, STOP_LIMIT, GTC, 100, int(Stp.DECREMENT))
    assert rows[11] == (11, 4, SELL, 105, 2, 0, LIMIT, GTC, 77, int(Stp.CANCEL_OLDEST))
    assert rows[12] == (12, 5, BUY, 90, 3, PO, LIMIT, GTC, 0, 0)
    assert [r[:6] for r in b.l3_full()] == b.l3()


def test_restore_keeps_submitted_type_stop_price_and_stp():
    b = triggered_stop_limit_book()
    twin = rebuilt(b, {})
    assert_same_book(b, twin)
    assert twin.order(10) == (1, SELL, STOP_LIMIT, 99, 4, 100)
    assert twin.order(11) == (4, SELL, LIMIT, 105, 2, 77)
    # the events of a restored order carry its submitted type
    for book in (b, twin):
        book.cancel(10)
    assert ev_tuples(twin.events()) == ev_tuples(b.events())
    assert int(twin.events()["ord_type"][0]) == STOP_LIMIT


def test_state_hash_covers_type_stop_price_and_stp_of_resting_orders():
    """Rows that differ only in fields outside l3() must hash differently, and they
    do behave differently."""

    def one(ot: int = LIMIT, stop: int = 0, stp: int = 0) -> Book:
        b = Book(1)
        b.restore_order(1, 1, SELL, ot, GTC, 101, 3, stop, stp)
        b.restore_order(2, 1, BUY, LIMIT, GTC, 99, 3)
        b.restore_counters(100, 5)
        return b

    base = one()
    variants = [one(ot=STOP_LIMIT, stop=100), one(stop=100), one(stp=int(Stp.CANCEL_NEWEST))]
    for v in variants:
        assert v.l3() == base.l3()
        assert v.state_hash() != base.state_hash()
    # STP: the resting sell replaced across the bid of the same user
    plain, cancel_newest = one(), variants[2]
    for book in (plain, cancel_newest):
        book.replace(1, 99, 3)
    assert EvKind.TRADE in plain.events()["kind"]
    assert EvKind.TRADE not in cancel_newest.events()["kind"]


def test_stop_arrival_order_survives_a_restore():
    """Stops of equal stop price trigger in arrival order; a stop placed after the
    restore comes after the restored ones."""
    b = Book(1)
    b.new_limit(1, 1, SELL, 100, 10)
    b.new_limit(2, 2, BUY, 100, 1)  # last 100
    for oid in (30, 31, 32):  # arrival numbers used up: the twin's counter will be lower
        b.new_stop(oid, 3, BUY, STOP_MARKET, 104, 0, 1, tif=IOC)
        b.cancel(oid)
    b.new_stop(20, 3, BUY, STOP_MARKET, 105, 0, 1, tif=IOC)
    b.new_stop(21, 4, SELL, STOP_MARKET, 95, 0, 1, tif=IOC)
    b.new_stop(22, 5, BUY, STOP_LIMIT, 103, 110, 1, tif=GTC)
    b.new_stop(23, 6, BUY, STOP_MARKET, 105, 0, 1, tif=IOC)
    twin = rebuilt(b, {})
    assert_same_book(b, twin)
    for book in (b, twin):
        book.clear_events()
        book.new_stop(24, 7, BUY, STOP_MARKET, 103, 0, 1, tif=IOC)
        book.new_limit(3, 8, SELL, 106, 5)
        book.new_limit(4, 9, BUY, 106, 10)  # last 106: 20, 22, 23, 24 trigger in that order
    trig = twin.events()[twin.events()["kind"] == EvKind.TRIGGERED]
    assert trig["order_id"].tolist() == [20, 22, 23, 24]
    assert ev_tuples(twin.events()) == ev_tuples(b.events())
    assert twin.state_hash() == b.state_hash()


def test_restored_quantities_need_no_step_or_minimum():
    """A partial fill can leave less than min_qty_lots, off the lot step: restore
    takes it as it is and keeps the queue position."""
    src = Book(1)  # lot step 1: a fill can leave an odd remainder
    src.new_limit(1, 1, BUY, 100, 6)
    src.new_limit(2, 1, BUY, 100, 4)
    src.new_limit(3, 2, SELL, 100, 5)  # leaves order 1 with 1 lot
    twin = Book(1, lot_step=2, min_qty_lots=4)
    restore_into(src, twin)
    assert [r[4] for r in twin.l3()] == [1, 4]
    twin.new_limit(4, 3, SELL, 100, 4)
    fills = twin.events()[twin.events()["kind"] == EvKind.TRADE]
    assert fills["maker_order_id"].tolist() == [1, 2] and fills["qty_lots"].tolist() == [1, 3]


# ------------------------------------------------------------------------ refused rows


def populated() -> Book:
    b = Book(1, max_orders=4)
    b.restore_order(1, 1, BUY, LIMIT, GTC, 99, 2)
    b.restore_order(2, 1, SELL, LIMIT, GTC, 101, 2)
    b.restore_order(3, 1, BUY, STOP_MARKET, IOC, 0, 1, 105, is_stop=True)
    b.restore_counters(100, 3)
    return b


BAD_ROWS = [
    ((1, 1, BUY, LIMIT, GTC, 98, 1), {}, "id already live"),
    ((9, 1, 0, LIMIT, GTC, 98, 1), {}, "side"),
    ((9, 1, 3, LIMIT, GTC, 98, 1), {}, "side"),
    ((9, 1, BUY, LIMIT, GTC, 98, 0), {}, "open_lots"),
    ((9, 1, BUY, LIMIT, GTC, 98, -3), {}, "open_lots"),
    ((9, 1, BUY, LIMIT, GTC, 98, 1), {"stp": 5}, "stp"),
    ((9, 1, BUY, MARKET, GTC, 98, 1), {}, "ord_type"),
    ((9, 1, BUY, LIMIT, IOC, 98, 1), {}, "tif"),
    ((9, 1, BUY, LIMIT, GTC, 98, 1), {"flags": 2}, "flags"),
    ((9, 1, BUY, STOP_LIMIT, GTC, 98, 1), {"flags": PO}, "flags"),
    ((9, 1, BUY, LIMIT, GTC, 0, 1), {}, "price"),
    ((9, 1, BUY, LIMIT, GTC, 101, 1), {}, "crosses"),
    ((9, 1, SELL, LIMIT, GTC, 99, 1), {}, "crosses"),
    ((9, 1, BUY, LIMIT, GTC, 99, 2**63 - 2), {}, "overflows"),
    ((9, 1, BUY, LIMIT, GTC, 0, 1, 110), {"is_stop": True}, "ord_type"),
    ((9, 1, BUY, STOP_MARKET, GTC, 0, 1, 110), {"is_stop": True}, "tif"),
    ((9, 1, BUY, STOP_LIMIT, IOC, 0, 1, 110), {"is_stop": True}, "limit price"),
    ((9, 1, BUY, STOP_LIMIT, 4, 111, 1, 110), {"is_stop": True}, "tif"),
    ((9, 1, BUY, STOP_MARKET, IOC, -1, 1, 110), {"is_stop": True}, "worst price"),
    ((9, 1, BUY, STOP_MARKET, IOC, 0, 1, 110), {"is_stop": True, "flags": PO}, "flags"),
    ((9, 1, BUY, STOP_MARKET, IOC, 0, 1, 0), {"is_stop": True}, "stop price"),
    ((9, 1, BUY, STOP_MARKET, IOC, 0, 1, 100), {"is_stop": True}, "reached"),
    ((9, 1, SELL, STOP_MARKET, IOC, 0, 1, 100), {"is_stop": True}, "reached"),
]


@pytest.mark.parametrize(("args", "kw", "msg"), BAD_ROWS)
def test_a_corrupt_row_is_refused_and_changes_nothing(args, kw, msg):
    b = populated()
    before = (b.state_hash(), b.n_orders, b.l3_full(), b.stops())
    with pytest.raises(ValueError, match=msg):
        b.restore_order(*args, **kw)
    assert (b.state_hash(), b.n_orders, b.l3_full(), b.stops()) == before
    assert len(b.events()) == 0
    b.check_invariants()


def test_a_full_book_refuses_more_rows():
    b = populated()
    b.restore_order(4, 1, SELL, LIMIT, GTC, 101, 2)  # 4 of max_orders 4
    with pytest.raises(ValueError, match="book full"):
        b.restore_order(5, 1, SELL, LIMIT, GTC, 102, 2)
    assert b.n_orders == 4
    b.check_invariants()


def test_bad_counters_are_refused_and_change_nothing():
    b = populated()
    h = b.state_hash()
    for last, match, msg in ((-1, 3, "last price"), (100, 0, "match id"), (105, 3, "reaches")):
        with pytest.raises(ValueError, match=msg):
            b.restore_counters(last, match)
        assert b.state_hash() == h
    b.restore_counters(0, 1)  # no trade yet: no stop can be reached
    assert (b.last_price(), b.next_match_id) == (0, 1)


def test_counters_are_read_only_attributes():
    b = Book(1)
    with pytest.raises(AttributeError):
        b.last_price_ticks = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        b.next_match_id = 5  # type: ignore[misc]
    assert b.last_price_ticks == 0 and b.next_match_id == 1


def test_wrapper_overflow_is_not_a_book_error():
    b = Book(1)
    with pytest.raises(OverflowError):
        b.restore_order(-1, 1, BUY, LIMIT, GTC, 100, 1)
    with pytest.raises(OverflowError):
        b.restore_order(1, 2**32, BUY, LIMIT, GTC, 100, 1)
    assert b.n_orders == 0


def test_restore_into_a_used_book_appends_at_the_back():
    b = Book(1)
    b.new_limit(1, 1, BUY, 100, 1)
    b.restore_order(2, 2, BUY, LIMIT, GTC, 100, 1)
    b.new_limit(3, 3, BUY, 100, 1)
    assert [r[0] for r in b.l3()] == [1, 2, 3]
    assert np.array_equal(b.events()["order_id"], [1, 3])
