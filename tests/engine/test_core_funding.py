"""engine.core.Core: deposits, withdrawals, transfers, idempotency, broken variants."""

from __future__ import annotations

import numpy as np
import pytest

from engine.wire import commands as cmd
from engine.wire.commands import ReplyStatus
from engine.wire.events import decode
from pyx.enums import EvKind, Reason, Side
from tests.engine.corekit import BASE, QUOTE, SYM, Ex, kinds, reject_changes_nothing


def _dup(ex: Ex, rec: np.ndarray) -> np.ndarray:
    """Run a duplicate: reply status 3, no event, nothing changes."""
    before = ex.core.content_hash()
    ev, rep = ex.run(rec)
    assert rep["status"][0] == ReplyStatus.DUPLICATE and rep["reason"][0] == 0
    assert len(ev) == 0
    assert ex.core.content_hash() == before
    ex.check()
    return rep


def test_deposit_credits_and_is_idempotent() -> None:
    ex = Ex()
    ex.user(7)
    ev, rep = ex.run(cmd.deposit(555, 7, QUOTE, 1_000, client_ref=9))
    assert rep["status"][0] == ReplyStatus.APPLIED and rep["value"][0] == 1_000
    assert kinds(ev) == ["DEPOSITED"]
    d = decode(ev[0])
    assert (d["user_id"], d["asset_id"], d["ref"], d["amount_minor"]) == (7, QUOTE, 555, 1_000)
    assert (d["account"], d["available_minor"]) == (0, 1_000)
    assert ex.bal(7, QUOTE) == (1_000, 0)
    rep = _dup(ex, cmd.deposit(555, 7, QUOTE, 1_000))
    assert rep["value"][0] == 1_000
    # the same reference with other content is no retry: rejected, nothing credited
    for other in (
        cmd.deposit(555, 7, BASE, 1_000),
        cmd.deposit(555, 7, QUOTE, 999),
        cmd.deposit(555, 7, QUOTE, 1_000, account=1),
    ):
        reject_changes_nothing(ex, other, Reason.EXISTS_WITH_DIFFERENT_FIELDS)
    ex.ok(cmd.deposit(556, 7, QUOTE, 1, account=1))
    assert ex.bal(7, QUOTE, 1) == (1, 0)
    assert ex.core.assets()[QUOTE]["deposited_minor"] == 1_001
    ex.check()


@pytest.mark.parametrize(
    ("rec", "reason"),
    [
        (cmd.deposit(0, 1, QUOTE, 5), Reason.INVALID_ID),
        (cmd.deposit(9, 99, QUOTE, 5), Reason.UNKNOWN_USER),
        (cmd.deposit(9, 1, 77, 5), Reason.UNKNOWN_ASSET),
        (cmd.deposit(9, 1, QUOTE, 5, account=2), Reason.INVALID_ACCOUNT),
        (cmd.deposit(9, 1, QUOTE, 5, account=-1), Reason.INVALID_ACCOUNT),
        (cmd.deposit(9, 1, QUOTE, 0), Reason.INVALID_AMOUNT),
        (cmd.deposit(9, 1, QUOTE, -5), Reason.INVALID_AMOUNT),
        (cmd.deposit(9, 1, QUOTE, 2**62), Reason.AMOUNT_OVERFLOW),
        (cmd.withdraw_hold(0, 1, QUOTE, 5), Reason.INVALID_ID),
        (cmd.withdraw_hold(9, 99, QUOTE, 5), Reason.UNKNOWN_USER),
        (cmd.withdraw_hold(9, 1, 77, 5), Reason.UNKNOWN_ASSET),
        (cmd.withdraw_hold(9, 1, QUOTE, 5, account=2), Reason.INVALID_ACCOUNT),
        (cmd.withdraw_hold(9, 1, QUOTE, 0), Reason.INVALID_AMOUNT),
        (cmd.withdraw_hold(9, 1, QUOTE, 1_001), Reason.INSUFFICIENT_FUNDS),
        (cmd.withdraw_hold(9, 1, QUOTE, 1, account=1), Reason.INSUFFICIENT_FUNDS),
        (cmd.withdraw_commit(9), Reason.UNKNOWN_WITHDRAWAL),
        (cmd.withdraw_release(9), Reason.UNKNOWN_WITHDRAWAL),
        (cmd.transfer(99, QUOTE, 1, 0, 1, ref=101), Reason.UNKNOWN_USER),
        (cmd.transfer(1, 77, 1, 0, 1, ref=102), Reason.UNKNOWN_ASSET),
        (cmd.transfer(1, QUOTE, 1, 0, 0, ref=103), Reason.INVALID_ACCOUNT),
        (cmd.transfer(1, QUOTE, 1, 0, 2, ref=104), Reason.INVALID_ACCOUNT),
        (cmd.transfer(1, QUOTE, 0, 0, 1, ref=105), Reason.INVALID_AMOUNT),
        (cmd.transfer(1, QUOTE, 1_001, 0, 1, ref=106), Reason.INSUFFICIENT_FUNDS),
    ],
)
def test_funding_rejects_change_nothing(rec: np.ndarray, reason: int) -> None:
    ex = Ex()
    ex.user(1, quote=1_000)
    ev = reject_changes_nothing(ex, rec, reason)
    assert len(ev) == 0


def test_deposit_supply_bound_counts_outstanding() -> None:
    ex = Ex()
    ex.user(1)
    ex.ok(cmd.deposit(1, 1, QUOTE, 2**62 - 10))
    reject_changes_nothing(ex, cmd.deposit(2, 1, QUOTE, 11), Reason.AMOUNT_OVERFLOW)
    # the supply stays BELOW 2**62 (docs/commands.md): reaching it exactly is rejected
    reject_changes_nothing(ex, cmd.deposit(3, 1, QUOTE, 10), Reason.AMOUNT_OVERFLOW)
    ex.ok(cmd.deposit(3, 1, QUOTE, 9))
    ex.check()
    # a rejected reference was not consumed: it can be used once valid
    ex.ok(cmd.withdraw_hold(1, 1, QUOTE, 100), cmd.withdraw_commit(1), cmd.deposit(2, 1, QUOTE, 11))
    ex.check()


def test_withdraw_hold_then_commit() -> None:
    ex = Ex()
    ex.user(1, quote=1_000)
    ev = ex.ok(cmd.withdraw_hold(42, 1, QUOTE, 300))
    assert kinds(ev) == ["WITHDRAW_HELD"]
    d = decode(ev[0])
    assert (d["withdrawal_id"], d["amount_minor"], d["available_minor"]) == (42, 300, 700)
    assert ex.bal(1, QUOTE) == (700, 300)
    _dup(ex, cmd.withdraw_hold(42, 1, QUOTE, 300))
    ev, rep = ex.run(cmd.withdraw_commit(42))
    assert kinds(ev) == ["WITHDRAW_COMMITTED"] and rep["value"][0] == 700
    assert (decode(ev[0])["user_id"], decode(ev[0])["asset_id"]) == (1, QUOTE)
    assert ex.bal(1, QUOTE) == (700, 0)
    assert ex.core.assets()[QUOTE]["withdrawn_minor"] == 300
    assert ex.core.withdrawals()[42] == (1, QUOTE, 0, 300, 2)
    _dup(ex, cmd.withdraw_commit(42))
    reject_changes_nothing(ex, cmd.withdraw_release(42), Reason.WITHDRAWAL_COMMITTED)
    rep = _dup(ex, cmd.withdraw_hold(42, 1, QUOTE, 300))  # the id stays used
    assert rep["value"][0] == 700  # the hold's own result
    reject_changes_nothing(
        ex, cmd.withdraw_hold(42, 1, QUOTE, 5), Reason.EXISTS_WITH_DIFFERENT_FIELDS
    )
    ex.check()


def test_withdraw_hold_then_release() -> None:
    ex = Ex()
    ex.user(1, quote=1_000)
    ex.ok(cmd.withdraw_hold(42, 1, QUOTE, 300, account=0))
    ev = ex.ok(cmd.withdraw_release(42))
    assert kinds(ev) == ["WITHDRAW_RELEASED"]
    assert ex.bal(1, QUOTE) == (1_000, 0)
    _dup(ex, cmd.withdraw_release(42))
    reject_changes_nothing(ex, cmd.withdraw_commit(42), Reason.WITHDRAWAL_RELEASED)
    assert ex.core.assets()[QUOTE]["withdrawn_minor"] == 0
    ex.check()


def test_withdrawal_hold_is_not_tradable_and_funding_account_works() -> None:
    ex = Ex()
    ex.user(1, quote=1_000)
    ex.ok(
        cmd.transfer(1, QUOTE, 600, 0, 1, ref=107), cmd.withdraw_hold(1, 1, QUOTE, 600, account=1)
    )
    assert ex.bal(1, QUOTE, 1) == (0, 600) and ex.bal(1, QUOTE, 0) == (400, 0)
    reject_changes_nothing(ex, cmd.new_limit(1, 1, SYM, Side.BUY, 10, 4), Reason.INSUFFICIENT_FUNDS)
    ex.ok(cmd.withdraw_commit(1))
    assert ex.bal(1, QUOTE, 1) == (0, 0)
    ex.check()


def test_transfer_moves_between_accounts() -> None:
    ex = Ex()
    ex.user(1, quote=1_000)
    ev, rep = ex.run(cmd.transfer(1, QUOTE, 250, 0, 1, ref=77))
    assert rep["value"][0] == 750
    d = decode(ev[0])
    assert ev["kind"][0] == EvKind.TRANSFERRED
    assert (d["from_account"], d["to_account"], d["amount_minor"], d["ref"]) == (0, 1, 250, 77)
    assert ex.bal(1, QUOTE, 0) == (750, 0) and ex.bal(1, QUOTE, 1) == (250, 0)
    ex.ok(cmd.transfer(1, QUOTE, 250, 1, 0, ref=109))
    assert ex.bal(1, QUOTE, 1) == (0, 0)
    ex.check()


def test_conservation_against_an_external_ledger() -> None:
    ex = Ex()
    ex.user(1, quote=1_000)
    assert ex.core.conservation_errors(expected_net={QUOTE: 1_000}) == []
    assert ex.core.conservation_errors(expected_net={QUOTE: 999}) != []


# ------------------------------------------------------ broken variants


@pytest.mark.variants
def test_variant_double_release_breaks_hold_accounting() -> None:
    ex = Ex(variants=frozenset({"double_release"}))
    ex.user(1, quote=10**6)
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 100, 3), cmd.new_limit(2, 1, SYM, Side.BUY, 90, 3))
    assert ex.core.conservation_errors() == []  # nothing canceled yet
    ex.ok(cmd.cancel(1, 1))
    errors = ex.core.conservation_errors()
    assert any("live holds" in e for e in errors), errors
    assert ex.ledger.mismatches(ex.core) != []  # the event stream disagrees too


@pytest.mark.variants
def test_variant_double_release_breaks_on_ioc_remainder_too() -> None:
    ex = Ex(variants=frozenset({"double_release"}))
    ex.user(1, quote=10**6)
    ex.ok(cmd.new_limit(1, 1, SYM, Side.BUY, 100, 3, tif=2))  # IOC: canceled remainder
    assert ex.core.conservation_errors() != []


@pytest.mark.variants
def test_variant_dup_deposit_breaks_idempotency() -> None:
    ex = Ex(variants=frozenset({"dup_deposit"}))
    ex.user(1)
    ex.ok(cmd.deposit(5, 1, QUOTE, 100))
    _ev, rep = ex.run(cmd.deposit(5, 1, QUOTE, 100))
    assert rep["status"][0] == ReplyStatus.APPLIED  # a correct core says DUPLICATE
    assert ex.bal(1, QUOTE) == (200, 0)
    # the core's own books balance (it counted the deposit twice) ...
    assert ex.core.conservation_errors() == []
    # ... but not against the ledger of unique references a caller keeps
    assert ex.core.conservation_errors(expected_net={QUOTE: 100}) != []


def test_correct_core_passes_the_variant_scenarios() -> None:
    ex = Ex()
    ex.user(1, quote=10**6)
    ex.ok(
        cmd.new_limit(1, 1, SYM, Side.BUY, 100, 3), cmd.cancel(1, 1), cmd.deposit(5, 1, QUOTE, 100)
    )
    _dup(ex, cmd.deposit(5, 1, QUOTE, 100))
    assert ex.core.conservation_errors(expected_net={QUOTE: 10**6 + 100}) == []
