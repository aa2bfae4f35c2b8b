"""Exactly-once commands in the core (pyx/core.pyx, docs/commands.md "Idempotency"):
order ids per user and never reused, a resent command answered as a duplicate of
the first with the first's result, a reused id or reference with other content
rejected, and the dedup state bounded (and in snapshots and the state hash).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import Core
from engine.wire import commands as cmd
from engine.wire.commands import ReplyStatus
from pyx.enums import Reason, Side, Tif
from tests.engine.corekit import BASE, QUOTE, SYM, Ex, kinds, reject_changes_nothing

DEDUP_ORDERS = 32  # pyx/core.pxd: accepted NEWs remembered per user
USER_ORDER_LIMIT = 10_000  # pyx/core.pxd DEFAULT_USER_ORDER_LIMIT


def _dup(ex: Ex, rec: np.ndarray) -> np.void:
    """A resent command: DUPLICATE, no event, nothing changes.  Returns the reply."""
    before = ex.core.content_hash()
    ev, rep = ex.run(rec)
    assert rep["status"][0] == ReplyStatus.DUPLICATE and rep["reason"][0] == 0, rep
    assert len(ev) == 0
    assert ex.core.content_hash() == before
    out: np.void = rep[0]
    return out


def test_a_resent_new_after_its_fill_does_not_trade_again() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    ex.user(2, base=10**6)
    ex.ok(cmd.new_limit(1, 2, SYM, Side.SELL, 100, 10))
    first = cmd.new_limit(7, 1, SYM, Side.BUY, 100, 4, tif=Tif.IOC)
    ev, rep = ex.run(first)
    assert rep["status"][0] == ReplyStatus.APPLIED and "TRADE" in kinds(ev)
    bal = ex.bal(1, BASE)
    # the reply was lost; the gateway resends the very same NEW
    again = _dup(ex, first)
    assert again["value"] == rep["value"][0] and again["order_id"] == 7
    assert ex.bal(1, BASE) == bal
    # same id, other content: not a retry, and not a new order either
    reject_changes_nothing(
        ex,
        cmd.new_limit(7, 1, SYM, Side.BUY, 100, 5, tif=Tif.IOC),
        Reason.EXISTS_WITH_DIFFERENT_FIELDS,
    )
    ex.check()


def test_a_resting_order_resent_is_a_duplicate_with_the_first_hold() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    rec = cmd.new_limit(3, 1, SYM, Side.BUY, 100, 2)
    (_, rep) = ex.run(rec)
    assert _dup(ex, rec)["value"] == rep["value"][0] == ex.buy_hold(100, 2)
    ex.ok(cmd.cancel(3, 1))
    _dup(ex, rec)  # still the first's outcome, after its end
    ex.check()


def test_order_ids_are_per_user() -> None:
    """One user cannot squat or touch another's ids."""
    ex = Ex()
    ex.user(1, quote=10**6)
    ex.user(2, quote=10**6)
    ex.ok(cmd.new_limit(5, 1, SYM, Side.BUY, 100, 1), cmd.new_limit(5, 2, SYM, Side.BUY, 101, 1))
    ev = ex.ok(cmd.cancel(5, 2))
    assert kinds(ev) == ["CANCELED"] and ev["user_id"][0] == 2 and ev["order_id"][0] == 5
    assert ex.core.order_hold(5, 1) is not None and ex.core.order_hold(5, 2) is None
    ex.check()


def test_events_carry_client_ids_on_both_sides_of_a_trade() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    ex.user(2, base=10**6)
    ex.ok(cmd.new_limit(11, 2, SYM, Side.SELL, 100, 1))
    ev = ex.ok(cmd.new_limit(11, 1, SYM, Side.BUY, 100, 1))
    (trade,) = ev[ev["kind"] == 3]
    assert (trade["order_id"], trade["user_id"]) == (11, 1)
    assert (trade["maker_order_id"], trade["maker_user_id"]) == (11, 2)
    ex.check()


def test_forgotten_ids_are_too_old_never_new() -> None:
    ex = Ex()
    ex.user(1, quote=10**9)
    n = DEDUP_ORDERS + 3
    recs = [cmd.new_limit(100 + i, 1, SYM, Side.BUY, 10, 1) for i in range(n)]
    ex.ok(*recs)
    # the newest DEDUP_ORDERS are remembered: exact retries are duplicates
    for rec in recs[-DEDUP_ORDERS:]:
        _dup(ex, rec)
    # the three oldest were forgotten: a resend is refused, never a second order
    for rec in recs[:3]:
        reject_changes_nothing(ex, rec, Reason.ORDER_ID_TOO_OLD)
    reject_changes_nothing(ex, cmd.new_limit(50, 1, SYM, Side.BUY, 10, 1), Reason.ORDER_ID_TOO_OLD)
    # ids above the forgotten floor that were never used are still fine, in any order
    ex.ok(
        cmd.new_limit(1_000, 1, SYM, Side.BUY, 10, 1), cmd.new_limit(500, 1, SYM, Side.BUY, 10, 1)
    )
    hwm, floor, ring = ex.core.order_marks()[1]
    assert (hwm, floor, len(ring)) == (1_000, 104, DEDUP_ORDERS)  # 5 forgotten
    assert len(ex.core.open_orders(1)) == n + 2
    ex.check()


def test_order_id_range() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    for oid in (0, 2**40, 2**64 - 1):
        reject_changes_nothing(
            ex, cmd.new_limit(oid, 1, SYM, Side.BUY, 100, 1), Reason.INVALID_ORDER_ID
        )
    ex.ok(cmd.new_limit(2**40 - 1, 1, SYM, Side.BUY, 100, 1))
    ex.ok(cmd.cancel(2**40 - 1, 1))
    reject_changes_nothing(ex, cmd.cancel(2**40 + 5, 1), Reason.UNKNOWN_ORDER_ID)


def test_user_open_order_limit() -> None:
    ex = Ex()
    ex.user(1, quote=10**12)
    b = cmd.CmdBatch()
    for i in range(USER_ORDER_LIMIT):
        b.add(cmd.new_limit(1 + i, 1, SYM, Side.BUY, 10, 1))
    _, rep = ex.core.run(b.to_array())
    assert (rep["status"] == ReplyStatus.APPLIED).all()
    over = cmd.new_limit(USER_ORDER_LIMIT + 1, 1, SYM, Side.BUY, 10, 1)
    _, rep = ex.core.run(over)
    assert rep["reason"][0] == Reason.USER_ORDER_LIMIT
    # another user is not affected; after a cancel the first may place one again
    ex.user(2, quote=10**6)
    _, rep = ex.core.run(cmd.new_limit(1, 2, SYM, Side.BUY, 10, 1))
    assert rep["status"][0] == ReplyStatus.APPLIED
    _, rep = ex.core.run(np.concatenate([cmd.cancel(1, 1), over]))
    assert (rep["status"] == ReplyStatus.APPLIED).all()
    # the operator lowers the limit: live orders stay, new ones are refused
    ev, rep = ex.core.run(cmd.set_user_order_limit(2))
    assert rep["status"][0] == ReplyStatus.APPLIED and kinds(ev) == ["USER_ORDER_LIMIT_SET"]
    _, rep = ex.core.run(cmd.new_limit(5, 2, SYM, Side.BUY, 10, 1))
    assert rep["status"][0] == ReplyStatus.APPLIED  # user 2's second order
    _, rep = ex.core.run(cmd.new_limit(6, 2, SYM, Side.BUY, 10, 1))
    assert rep["reason"][0] == Reason.USER_ORDER_LIMIT
    for bad, reason in ((0, Reason.INVALID_CONFIG), (2, Reason.ALREADY_IN_STATE)):
        _, rep = ex.core.run(cmd.set_user_order_limit(bad))
        assert rep["reason"][0] == reason
    twin = Core.from_snapshot(ex.core.to_snapshot())
    assert twin.to_snapshot() == ex.core.to_snapshot()
    _, rep = twin.run(cmd.new_limit(7, 2, SYM, Side.BUY, 10, 1))
    assert rep["reason"][0] == Reason.USER_ORDER_LIMIT


def test_transfer_is_idempotent_by_reference() -> None:
    ex = Ex()
    ex.user(1, quote=1_000)
    t = cmd.transfer(1, QUOTE, 300, 0, 1, ref=9)
    _, rep = ex.run(t)
    assert rep["status"][0] == ReplyStatus.APPLIED and rep["value"][0] == 700
    assert _dup(ex, t)["value"] == 700
    assert ex.bal(1, QUOTE, 1) == (300, 0)
    for other in (
        cmd.transfer(1, QUOTE, 301, 0, 1, ref=9),
        cmd.transfer(1, QUOTE, 300, 1, 0, ref=9),
        cmd.transfer(1, BASE, 300, 0, 1, ref=9),
    ):
        reject_changes_nothing(ex, other, Reason.EXISTS_WITH_DIFFERENT_FIELDS)
    reject_changes_nothing(ex, cmd.transfer(1, QUOTE, 1, 0, 1), Reason.INVALID_ID)
    ex.check()


def test_withdrawal_end_retries_answer_the_first_result() -> None:
    ex = Ex()
    ex.user(1, quote=1_000)
    ex.ok(cmd.withdraw_hold(4, 1, QUOTE, 100), cmd.withdraw_release(4))
    ex.ok(cmd.deposit(99, 1, QUOTE, 5))  # available moves on after the release
    assert _dup(ex, cmd.withdraw_release(4))["value"] == 1_000
    ex.check()


def test_funding_references_are_bounded_and_old_ones_refused() -> None:
    ex = Ex(ref_memory=2)  # remember two references per kind
    ex.user(1)
    ex.ok(cmd.deposit(1, 1, QUOTE, 10), cmd.deposit(2, 1, QUOTE, 10))
    ex.ok(cmd.withdraw_hold(1, 1, QUOTE, 5), cmd.withdraw_hold(2, 1, QUOTE, 5))
    ex.ok(cmd.withdraw_commit(2))
    ex.ok(cmd.transfer(1, QUOTE, 1, 0, 1, ref=1), cmd.transfer(1, QUOTE, 1, 0, 1, ref=2))
    ex.ok(
        cmd.deposit(10, 1, QUOTE, 10),
        cmd.deposit(11, 1, QUOTE, 10),
        cmd.withdraw_hold(10, 1, QUOTE, 1),
        cmd.withdraw_hold(11, 1, QUOTE, 1),
        cmd.transfer(1, QUOTE, 1, 0, 1, ref=10),
        cmd.transfer(1, QUOTE, 1, 0, 1, ref=11),
    )
    d = ex.core._dump(with_books=False)
    # the oldest references were forgotten: the newest two of each kind are kept, and
    # the still held withdrawal 1 (it holds money) on top
    assert [r[0] for r in d["deposit_refs"]] == [10, 11]
    assert sorted(w[0] for w in d["withdrawals"]) == [1, 10, 11]
    assert [t[0] for t in d["transfers"]] == [10, 11]
    assert Core.from_snapshot(ex.core.to_snapshot()).to_snapshot() == ex.core.to_snapshot()
    # a resend of a forgotten reference is refused, never credited a second time
    reject_changes_nothing(ex, cmd.deposit(1, 1, QUOTE, 10), Reason.REFERENCE_TOO_OLD)
    reject_changes_nothing(ex, cmd.deposit(2, 1, QUOTE, 7), Reason.REFERENCE_TOO_OLD)
    reject_changes_nothing(ex, cmd.withdraw_hold(2, 1, QUOTE, 5), Reason.REFERENCE_TOO_OLD)
    reject_changes_nothing(ex, cmd.withdraw_commit(2), Reason.REFERENCE_TOO_OLD)
    reject_changes_nothing(ex, cmd.transfer(1, QUOTE, 1, 0, 1, ref=1), Reason.REFERENCE_TOO_OLD)
    # the held one can still be ended, and references above the forgotten ones are new
    ex.ok(cmd.withdraw_release(1), cmd.deposit(9, 1, QUOTE, 1))
    assert ex.core.conservation_errors() == []


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["new", "dep", "tr", "snap"]), st.integers(1, 40), st.integers(1, 3)
        ),
        max_size=60,
    )
)
def test_snapshots_keep_the_dedup_state(ops: list[tuple[str, int, int]]) -> None:
    """Any mix of fresh and resent commands, with snapshot/restore anywhere in between,
    gives the same replies and the same state hash as one uninterrupted core."""
    a = Ex()
    a.user(1, base=10**9, quote=10**9)
    b_core = Core.from_snapshot(a.core.to_snapshot())
    for op, x, y in ops:
        if op == "snap":
            b_core = Core.from_snapshot(b_core.to_snapshot())
            continue
        if op == "new":
            rec = cmd.new_limit(x, 1, SYM, Side.BUY if y == 1 else Side.SELL, 100, y)
        elif op == "dep":
            rec = cmd.deposit(x, 1, QUOTE, y)
        else:
            rec = cmd.transfer(1, QUOTE, y, 0, 1, ref=x)
        _, rep_a = a.core.run(rec)
        rep_a = rep_a.copy()
        _, rep_b = b_core.run(rec)
        assert rep_a.tobytes() == rep_b.tobytes()
    assert a.core.state_hash() == b_core.state_hash()
    assert a.core.conservation_errors() == []
