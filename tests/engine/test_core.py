"""engine.core.Core: command kinds, replies, events, admin commands, snapshots."""

from __future__ import annotations

import numpy as np
import pytest

from bursa_wire.layout import CMD_DTYPE, REPLY_DTYPE
from engine.core import Core, SnapshotError
from engine.wire import commands as cmd
from engine.wire.commands import ReplyStatus
from engine.wire.events import decode
from pyx.core import internal_order_id
from pyx.enums import CmdKind, EvKind, OrdType, Reason, Side, Stp, Tif
from tests.engine.corekit import BASE, QUOTE, SYM, Ex, kinds, reject_changes_nothing


def test_empty_core() -> None:
    core = Core()
    assert core.last_seq == 0
    assert core.conservation_errors() == []
    again = Core.from_snapshot(core.to_snapshot())
    assert again.state_hash() == core.state_hash()
    assert len(core.state_hash()) == 16
    ev, rep = core.apply(np.zeros(0, dtype=CMD_DTYPE))
    assert len(ev) == 0 and len(rep) == 0 and rep.dtype == REPLY_DTYPE


def test_admin_setup_events_carry_the_config() -> None:
    core = Core()
    ev, rep = core.run(
        cmd.CmdBatch()
        .add(cmd.add_asset(7, 8))
        .add(cmd.add_asset(9, 6))
        .add(cmd.add_fee_tier(3, 100, 250))
        .add(
            cmd.add_symbol(
                5,
                7,
                9,
                tick_step=2,
                lot_step=3,
                price_multiplier=10,
                base_per_lot=1000,
                min_qty_lots=3,
                max_qty_lots=3000,
                min_price_ticks=2,
                max_price_ticks=2000,
                protection_ticks=40,
            )
        )
        .add(cmd.set_min_notional(5, 500))
        .add(cmd.add_user(11, 3))
        .to_array()
    )
    assert (rep["status"] == ReplyStatus.APPLIED).all()
    assert list(rep["seq"]) == [1, 2, 3, 4, 5, 6]
    assert kinds(ev) == [
        "ASSET_ADDED", "ASSET_ADDED", "FEE_TIER_ADDED", "SYMBOL_ADDED", "MIN_NOTIONAL_SET",
        "USER_ADDED",
    ]  # fmt: skip
    assert decode(ev[0]) | {"seq": 0} == {
        "seq": 0, "ts_ns": 0, "kind": EvKind.ASSET_ADDED, "asset_id": 7, "decimals": 8
    }  # fmt: skip
    sym = decode(ev[3])
    assert sym["symbol_id"] == 5 and sym["base_asset_id"] == 7 and sym["quote_asset_id"] == 9
    assert (sym["tick_step"], sym["lot_step"]) == (2, 3)
    assert (sym["min_qty_lots"], sym["max_qty_lots"]) == (3, 3000)
    assert (sym["min_price_ticks"], sym["max_price_ticks"]) == (2, 2000)
    assert (sym["protection_ticks"], sym["price_multiplier"], sym["base_per_lot"]) == (40, 10, 1000)
    assert decode(ev[4])["min_notional_minor"] == 500
    assert decode(ev[5]) | {"seq": 0} == {
        "seq": 0, "ts_ns": 0, "kind": EvKind.USER_ADDED, "user_id": 11, "tier": 3,
        "maker_ppm": 100, "taker_ppm": 250,
    }  # fmt: skip
    assert core.symbols()[5]["min_notional_minor"] == 500
    assert core.users()[11]["taker_ppm"] == 250
    assert core.fee_tiers() == {3: (100, 250)}
    assert core.assets()[7]["decimals"] == 8
    book = core.book(5)
    assert book is not None and book.tick_step == 2 and book.lot_step == 3


@pytest.mark.parametrize(
    ("rec", "reason"),
    [
        (cmd.add_asset(0), Reason.INVALID_ID),
        (cmd.add_asset(BASE), Reason.ASSET_EXISTS),
        (cmd.add_asset(50, 31), Reason.INVALID_CONFIG),
        (cmd.add_symbol(0, BASE, QUOTE), Reason.INVALID_ID),
        (cmd.add_symbol(SYM, BASE, QUOTE), Reason.SYMBOL_EXISTS),
        (cmd.add_symbol(2, BASE, 77), Reason.UNKNOWN_ASSET),
        (cmd.add_symbol(2, BASE, BASE), Reason.INVALID_CONFIG),
        (cmd.add_symbol(2, BASE, QUOTE, min_qty_lots=10, max_qty_lots=5), Reason.INVALID_CONFIG),
        (
            cmd.add_symbol(2, BASE, QUOTE, min_price_ticks=10, max_price_ticks=5),
            Reason.INVALID_CONFIG,
        ),
        (cmd.add_symbol(2, BASE, QUOTE, price_multiplier=0), Reason.INVALID_CONFIG),
        (cmd.add_symbol(2, BASE, QUOTE, base_per_lot=0), Reason.INVALID_CONFIG),
        (cmd.add_symbol(2, BASE, QUOTE, protection_ticks=-1), Reason.INVALID_CONFIG),
        # price x qty x multiplier of the largest order would reach 2**62
        (
            cmd.add_symbol(2, BASE, QUOTE, max_price_ticks=2**31, max_qty_lots=2**31),
            Reason.INVALID_CONFIG,
        ),
        (
            cmd.add_symbol(2, BASE, QUOTE, base_per_lot=2**40, max_qty_lots=2**30),
            Reason.INVALID_CONFIG,
        ),
        # a level holding every live order (2**24) of the largest size would pass 2**63 lots
        (
            cmd.add_symbol(2, BASE, QUOTE, max_price_ticks=1, base_per_lot=1, max_qty_lots=2**40),
            Reason.INVALID_CONFIG,
        ),
        (cmd.set_min_notional(9, 1), Reason.UNKNOWN_SYMBOL),
        (cmd.set_min_notional(SYM, -1), Reason.INVALID_CONFIG),
        (cmd.add_fee_tier(0, 1, 1), Reason.FEE_TIER_EXISTS),
        (cmd.add_fee_tier(1, -1, 1), Reason.INVALID_CONFIG),
        (cmd.add_fee_tier(1, 1, 1_000_001), Reason.INVALID_CONFIG),
        (cmd.add_user(0), Reason.INVALID_ID),
        (cmd.add_user(2**24), Reason.INVALID_ID),
        (cmd.add_user(5, 9), Reason.UNKNOWN_FEE_TIER),
        (cmd.set_fee_tier(99, 0), Reason.UNKNOWN_USER),
        (cmd.halt_symbol(9), Reason.UNKNOWN_SYMBOL),
        (cmd.resume_symbol(SYM), Reason.ALREADY_IN_STATE),
        (cmd.suspend_user(99), Reason.UNKNOWN_USER),
        (cmd.cancel_all_symbol(9), Reason.UNKNOWN_SYMBOL),
    ],
)
def test_admin_rejects_change_nothing(rec: np.ndarray, reason: int) -> None:
    ex = Ex()
    ex.user(1, base=1000, quote=1000)
    ev = reject_changes_nothing(ex, rec, reason)
    assert len(ev) == 0  # admin rejects live in the reply only


def test_admin_rejects_of_existing_user_and_same_tier() -> None:
    ex = Ex()
    ex.user(1)
    reject_changes_nothing(ex, cmd.add_user(1), Reason.USER_EXISTS)
    reject_changes_nothing(ex, cmd.set_fee_tier(1, 0), Reason.ALREADY_IN_STATE)
    reject_changes_nothing(ex, cmd.set_fee_tier(1, 4), Reason.UNKNOWN_FEE_TIER)
    reject_changes_nothing(ex, cmd.resume_user(1), Reason.ALREADY_IN_STATE)


def test_limit_trade_settles_with_fees() -> None:
    ex = Ex(mult=10, base_per_lot=100, maker_ppm=1_000, taker_ppm=2_000)
    ex.user(1, quote=10**9)
    ex.user(2, base=10**6)
    ev = ex.ok(cmd.new_limit(10, 1, SYM, Side.BUY, 100, 5))
    hold = ex.buy_hold(100, 5)  # 5000 + ceil(5000 * 2000 / 1e6) = 5010
    assert hold == 5010
    assert kinds(ev) == ["ACCEPTED"]
    assert (ev["taker_fee"][0], ev["maker_fee"][0]) == (hold, hold)
    assert ex.bal(1, QUOTE) == (10**9 - hold, hold)
    ev = ex.ok(cmd.new_limit(11, 2, SYM, Side.SELL, 90, 3))
    assert kinds(ev) == ["ACCEPTED", "TRADE"]
    tr = ev[1]
    # 3 lots at the maker's 100 ticks: 3000 quote minor, 300 base minor
    assert (tr["price_ticks"], tr["qty_lots"]) == (100, 3)
    assert tr["taker_fee"] == 6  # seller (taker) 2000 ppm of 3000
    assert tr["maker_fee"] == 3  # buyer (maker) 1000 ppm of 3000
    assert ex.bal(1, QUOTE) == (10**9 - hold, hold - 3003)
    assert ex.bal(1, BASE) == (300, 0)
    assert ex.bal(2, BASE) == (10**6 - 300, 0)
    assert ex.bal(2, QUOTE) == (2994, 0)
    assert ex.core.fee_balance(QUOTE) == 9
    assert ex.core.fee_balance(BASE) == 0
    ev = ex.ok(cmd.cancel(10, 1))
    assert kinds(ev) == ["CANCELED"]
    assert (ev["taker_fee"][0], ev["maker_fee"][0]) == (0, -(hold - 3003))
    assert ex.bal(1, QUOTE) == (10**9 - 3003, 0)
    assert ex.core.open_orders() == []
    ex.check()


def test_replies_one_per_command_in_order() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    cmds = (
        cmd.CmdBatch()
        .add(cmd.new_limit(1, 1, SYM, Side.BUY, 10, 1, client_ref=501))
        .add(cmd.cancel(77, 1, client_ref=502))
        .add(cmd.deposit(9, 1, QUOTE, 5, client_ref=503))
        .add(cmd.deposit(9, 1, QUOTE, 5, client_ref=504))
        .add(cmd.cancel(1, 1, client_ref=505))
        .to_array()
    )
    first = ex.core.last_seq + 1
    ev, rep = ex.core.run(cmds, ts_ns=123)
    ex.ledger.apply(ev)
    assert list(rep["seq"]) == list(range(first, first + 5))
    assert list(rep["client_ref"]) == [501, 502, 503, 504, 505]
    assert list(rep["kind"]) == [CmdKind.NEW, CmdKind.CANCEL, CmdKind.DEPOSIT, CmdKind.DEPOSIT,
                                 CmdKind.CANCEL]  # fmt: skip
    assert list(rep["status"]) == [1, 2, 1, 3, 1]
    assert list(rep["order_id"]) == [1, 77, 9, 9, 1]
    assert (ev["ts_ns"] == 123).all()
    assert kinds(ev) == ["ACCEPTED", "REJECTED", "DEPOSITED", "CANCELED"]
    assert list(ev["seq"]) == [first, first + 1, first + 2, first + 4]
    ex.check()


def test_seq_gap_raises_and_changes_nothing() -> None:
    ex = Ex()
    ex.user(1, quote=100)
    before = ex.core.state_hash()
    cmds = cmd.stamp(
        cmd.CmdBatch().add(cmd.deposit(5, 1, QUOTE, 1)).to_array(), ex.core.last_seq + 2
    )
    with pytest.raises(ValueError, match="seq"):
        ex.core.apply(cmds)
    assert ex.core.state_hash() == before
    with pytest.raises(TypeError):
        ex.core.apply(np.zeros(1, dtype=REPLY_DTYPE))


def test_unknown_command_kind_rejected() -> None:
    ex = Ex()
    rec = cmd.new_limit(1, 1, SYM, Side.BUY, 10, 1)
    rec["kind"] = 99
    ev = reject_changes_nothing(ex, rec, Reason.UNKNOWN_COMMAND)
    assert kinds(ev) == ["REJECTED"] and ev["reason"][0] == Reason.UNKNOWN_COMMAND


def test_ownership_and_unknown_orders() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    ex.user(2, quote=10**6)
    ex.ok(cmd.new_limit(5, 1, SYM, Side.BUY, 10, 1))
    # order ids are per user: user 2 has no order 5, and cannot reach user 1's
    for rec in (cmd.cancel(5, 2), cmd.reduce(5, 2, 0), cmd.replace(5, 2, 11, 1)):
        ev = reject_changes_nothing(ex, rec, Reason.UNKNOWN_ORDER_ID)
        assert kinds(ev) == ["REJECTED"] and ev["user_id"][0] == 2
    for rec in (cmd.cancel(6, 1), cmd.reduce(6, 1, 0), cmd.replace(6, 1, 11, 1), cmd.cancel(0, 1)):
        reject_changes_nothing(ex, rec, Reason.UNKNOWN_ORDER_ID)


def test_order_ids_unique_across_symbols_and_never_reused() -> None:
    ex = Ex()
    ex.ok(cmd.add_symbol(2, BASE, QUOTE))
    ex.user(1, base=10**6, quote=10**6)
    ex.ok(cmd.new_limit(5, 1, SYM, Side.BUY, 10, 1))
    other = cmd.new_limit(5, 1, 2, Side.SELL, 10, 1)
    reject_changes_nothing(ex, other, Reason.EXISTS_WITH_DIFFERENT_FIELDS)
    # after it ends, the id is still taken: ids are never reused
    ex.ok(cmd.cancel(5, 1))
    reject_changes_nothing(ex, other, Reason.EXISTS_WITH_DIFFERENT_FIELDS)
    ex.check()


def test_mass_cancel_by_user_side_and_symbol() -> None:
    ex = Ex()
    ex.ok(cmd.add_symbol(2, BASE, QUOTE))
    ex.user(1, base=10**6, quote=10**6)
    ex.user(2, base=10**6, quote=10**6)
    ex.ok(
        cmd.new_limit(1, 1, SYM, Side.BUY, 10, 1),
        cmd.new_limit(2, 1, SYM, Side.SELL, 20, 1),
        cmd.new_limit(3, 1, 2, Side.BUY, 10, 1),
        cmd.new_limit(4, 2, SYM, Side.BUY, 10, 1),
        cmd.new_stop(5, 1, SYM, Side.BUY, OrdType.STOP_LIMIT, 15, 1, price_ticks=16),
    )
    _, rep = ex.run(cmd.mass_cancel(1, symbol_id=SYM, side=Side.BUY))
    assert rep["status"][0] == ReplyStatus.APPLIED and rep["value"][0] == 2
    assert sorted(o["order_id"] for o in ex.core.open_orders()) == [2, 3, 4]
    _, rep = ex.run(cmd.mass_cancel(1))  # every symbol, both sides
    assert rep["value"][0] == 2
    assert [o["order_id"] for o in ex.core.open_orders()] == [4]
    assert ex.bal(1, QUOTE) == (10**6, 0) and ex.bal(1, BASE) == (10**6, 0)
    reject_changes_nothing(ex, cmd.mass_cancel(1, side=3), Reason.INVALID_SIDE)
    reject_changes_nothing(ex, cmd.mass_cancel(1, symbol_id=9), Reason.UNKNOWN_SYMBOL)
    reject_changes_nothing(ex, cmd.mass_cancel(42), Reason.UNKNOWN_USER)
    rec = cmd.mass_cancel(2)
    rec["flags"] = 2  # MASS_ALL_USERS: admin only (CANCEL_ALL_SYMBOL)
    reject_changes_nothing(ex, rec, Reason.INVALID_FLAGS)
    ev, rep = ex.run(cmd.cancel_all_symbol(SYM))
    assert rep["value"][0] == 1 and kinds(ev) == ["CANCELED"]
    assert ev["reason"][0] == Reason.MASS_CANCELED
    assert ex.core.open_orders() == []
    ex.check()


def test_halt_blocks_new_orders_not_cancels() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 10, 2), cmd.halt_symbol(SYM))
    reject_changes_nothing(ex, cmd.new_limit(2, 1, SYM, Side.BUY, 10, 1), Reason.SYMBOL_NOT_TRADING)
    reject_changes_nothing(ex, cmd.replace(1, 1, 11, 1), Reason.SYMBOL_NOT_TRADING)
    reject_changes_nothing(ex, cmd.halt_symbol(SYM), Reason.ALREADY_IN_STATE)
    ex.ok(cmd.reduce(1, 1, 1), cmd.cancel(1, 1), cmd.resume_symbol(SYM))
    ex.ok(cmd.new_limit(2, 1, SYM, Side.BUY, 10, 1))
    assert ex.core.symbols()[SYM]["halted"] == 0
    ex.check()


def test_suspended_user() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 10, 2), cmd.suspend_user(1))
    reject_changes_nothing(ex, cmd.new_limit(2, 1, SYM, Side.BUY, 10, 1), Reason.USER_NOT_ACTIVE)
    reject_changes_nothing(ex, cmd.replace(1, 1, 11, 1), Reason.USER_NOT_ACTIVE)
    reject_changes_nothing(ex, cmd.withdraw_hold(3, 1, QUOTE, 1), Reason.USER_NOT_ACTIVE)
    reject_changes_nothing(ex, cmd.transfer(1, QUOTE, 1, 0, 1, ref=5), Reason.USER_NOT_ACTIVE)
    ex.ok(cmd.deposit(77, 1, QUOTE, 5), cmd.reduce(1, 1, 1), cmd.mass_cancel(1), cmd.resume_user(1))
    ex.ok(cmd.new_limit(2, 1, SYM, Side.BUY, 10, 1))
    ex.check()


def test_fee_tier_change_applies_to_new_orders_only() -> None:
    ex = Ex(maker_ppm=0, taker_ppm=0)
    ex.ok(cmd.add_fee_tier(1, 10_000, 20_000))
    ex.user(1, quote=10**6)
    ex.user(2, base=10**6)
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 100, 1), cmd.set_fee_tier(1, 1))
    assert ex.core.users()[1]["tier"] == 1
    ev = ex.ok(cmd.new_limit(2, 2, SYM, Side.SELL, 100, 1))
    assert ev[ev["kind"] == EvKind.TRADE]["maker_fee"][0] == 0  # captured rate: tier 0
    ev = ex.ok(cmd.new_limit(3, 1, SYM, Side.BUY, 100, 1))
    assert ev["taker_fee"][0] == ex.buy_hold(100, 1, 20_000)  # new order: tier 1's max rate
    ex.check()


def _trading_state(ex: Ex) -> None:
    """Users, resting orders on both sides, stops, a triggered resting stop-limit, a
    post-only order, a pending withdrawal, a second symbol that is halted."""
    ex.ok(cmd.add_symbol(2, BASE, QUOTE), cmd.add_fee_tier(4, 0, 500))
    ex.user(1, base=10**6, quote=10**8)
    ex.user(2, base=10**6, quote=10**8, tier=4)
    ex.user(3, base=10**6, quote=10**8)
    ex.ok(
        cmd.new_limit(1, 1, SYM, Side.BUY, 100, 10),
        cmd.new_limit(2, 2, SYM, Side.BUY, 100, 5, stp=Stp.CANCEL_OLDEST),
        cmd.new_limit(3, 3, SYM, Side.SELL, 120, 7, post_only=True),
        cmd.new_stop(4, 1, SYM, Side.SELL, OrdType.STOP_LIMIT, 95, 3, price_ticks=130),
        cmd.new_stop(5, 2, SYM, Side.BUY, OrdType.STOP_MARKET, 150, 2),
        cmd.new_stop(6, 3, SYM, Side.SELL, OrdType.STOP_LIMIT, 101, 2, price_ticks=125),
        cmd.new_limit(7, 3, SYM, Side.SELL, 100, 2),  # trades at 100: triggers stop 6
        cmd.new_limit(8, 1, 2, Side.BUY, 50, 4),
        cmd.halt_symbol(2),
        cmd.withdraw_hold(900, 1, QUOTE, 1234),
        cmd.withdraw_hold(901, 2, BASE, 55),
        cmd.withdraw_commit(901),
        cmd.suspend_user(3),
    )
    hold6 = ex.core.order_hold(6)
    assert hold6 is not None and not hold6["pending_stop"]
    book = ex.core.book(SYM)
    assert book is not None
    order = book.order(internal_order_id(int(hold6["user_id"]), 6))
    assert order is not None and order[2] == OrdType.STOP_LIMIT


def _more(ex: Ex) -> np.ndarray:
    return (
        cmd.CmdBatch()
        .add(cmd.resume_user(3))
        .add(cmd.new_limit(20, 3, SYM, Side.SELL, 99, 30, stp=Stp.DECREMENT))
        .add(cmd.replace(3, 3, 101, 3))
        .add(cmd.new_limit(21, 2, SYM, Side.SELL, 94, 1))
        .add(cmd.new_limit(24, 2, SYM, Side.BUY, 94, 1))  # last trade 94: triggers stop 4
        .add(cmd.reduce(1, 1, 1))
        .add(cmd.new_market(22, 1, SYM, Side.BUY, 5))
        .add(cmd.withdraw_release(900))
        .add(cmd.resume_symbol(2))
        .add(cmd.new_limit(23, 2, 2, Side.SELL, 50, 4))
        .add(cmd.deposit(4444, 2, QUOTE, 10))
        .to_array()
    )


def test_snapshot_round_trip_and_continue_both_ways() -> None:
    ex = Ex()
    _trading_state(ex)
    ex.check()
    snap = ex.core.to_snapshot()
    twin = Core.from_snapshot(snap)
    assert twin.to_snapshot() == snap
    assert twin.state_hash() == ex.core.state_hash()
    assert twin.last_seq == ex.core.last_seq
    assert twin.conservation_errors() == []
    ev1, rep1 = ex.core.run(_more(ex))
    ev1, rep1 = ev1.copy(), rep1.copy()
    ex.ledger.apply(ev1)
    ev2, rep2 = twin.run(_more(ex))
    assert (rep1 == rep2).all()
    assert ev1.tobytes() == ev2.tobytes()
    assert EvKind.TRADE in ev1["kind"] and EvKind.TRIGGERED in ev1["kind"]
    assert twin.state_hash() == ex.core.state_hash()
    assert Core.from_snapshot(twin.to_snapshot()).state_hash() == twin.state_hash()
    ex.check()
    assert twin.conservation_errors() == []


def test_state_hash_sees_every_part_of_the_state() -> None:
    a, b = Ex(), Ex()
    assert a.core.state_hash() == b.core.state_hash()
    a.user(1, quote=100)
    assert a.core.state_hash() != b.core.state_hash()
    b.user(1, quote=100)
    assert a.core.state_hash() == b.core.state_hash()
    a.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 1, 1, stp=Stp.CANCEL_BOTH))
    b.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 1, 1, stp=Stp.CANCEL_NEWEST))
    assert a.core.content_hash() != b.core.content_hash()  # the STP mode is state


def test_from_snapshot_rejects_bad_bytes() -> None:
    ex = Ex()
    _trading_state(ex)
    snap = ex.core.to_snapshot()
    for bad in (b"", snap[:-1], snap + b"\0", b"X" + snap[1:]):
        with pytest.raises(SnapshotError):
            Core.from_snapshot(bad)


@pytest.mark.variants
def test_variants_are_validated() -> None:
    with pytest.raises(ValueError, match="variants"):
        Core(frozenset({"nope"}))
    assert Core(frozenset({"double_release"})).variants == frozenset({"double_release"})


def test_events_of_rejected_book_command_carry_the_user() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    ev = reject_changes_nothing(
        ex, cmd.new_limit(1, 1, SYM, Side.BUY, 10, 1, tif=9), Reason.INVALID_TIF
    )
    assert ev["user_id"][0] == 1
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 10, 3))
    ev = reject_changes_nothing(ex, cmd.reduce(1, 1, 5), Reason.REDUCE_NOT_SMALLER)
    assert ev["user_id"][0] == 1 and ev["kind"][0] == EvKind.REJECTED
    reject_changes_nothing(ex, cmd.replace(1, 1, 10, 3), Reason.REPLACE_NO_CHANGE)
    ex.check()


def test_market_orders_tif() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    rec = cmd.new_order(1, 1, SYM, Side.BUY, OrdType.MARKET, 1, tif=Tif.GTC)
    reject_changes_nothing(ex, rec, Reason.INVALID_TIF)


def test_read_only_input_and_rejected_market_quote_echoes_the_command() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    cmds = cmd.stamp(
        cmd.CmdBatch().add(cmd.new_market_quote(1, 1, SYM, 5)).to_array(), ex.core.last_seq + 1
    )
    ro = np.frombuffer(cmds.tobytes(), dtype=CMD_DTYPE)
    assert not ro.flags.writeable
    before = ex.core.content_hash()
    ev, rep = ex.core.apply(ro)
    # a 5-minor budget buys nothing at multiplier 10: the book rejects the empty budget
    assert rep["reason"][0] == Reason.INVALID_QTY
    assert ev["qty_lots"][0] == 5 and ev["user_id"][0] == 1
    assert ex.core.content_hash() == before


def test_snapshot_of_orders_left_below_min_qty() -> None:
    ex = Ex(min_qty=5, lot_step=1)
    ex.user(1, base=10**6, quote=10**8)
    ex.user(2, base=10**6, quote=10**8)
    ex.ok(
        cmd.new_limit(1, 1, SYM, Side.BUY, 100, 6),
        cmd.new_limit(2, 1, SYM, Side.BUY, 100, 5, post_only=True),
        cmd.new_limit(3, 1, SYM, Side.BUY, 100, 7),
        cmd.new_limit(4, 2, SYM, Side.SELL, 100, 5),  # leaves order 1 with 1 lot
        cmd.reduce(3, 1, 2),
    )
    twin = Core.from_snapshot(ex.core.to_snapshot())
    assert twin.state_hash() == ex.core.state_hash()
    book = twin.book(SYM)
    assert book is not None
    assert [row[4] for row in book.l3()] == [1, 5, 2]  # priority kept
    more = cmd.CmdBatch().add(cmd.new_limit(5, 2, SYM, Side.SELL, 100, 8)).to_array()
    ev1, _ = ex.core.run(more)
    ev1 = ev1.copy()
    ex.ledger.apply(ev1)
    ev2, _ = twin.run(more)
    assert ev1.tobytes() == ev2.tobytes()
    assert twin.state_hash() == ex.core.state_hash()
    ex.check()
