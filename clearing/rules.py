"""Event -> ledger entries: the double-entry rules, as a pure function.

:func:`post` maps one core event (an :class:`Ev`, the fields of ``EV_DTYPE`` in
record order) to the balanced entries it causes, given read-only lookups of the
symbol configurations and of the holds of live orders.  It changes nothing: the
caller (:mod:`clearing.ledger`) applies the entries to balances and the returned
hold updates to its order table.

Accounts are ``(user_id, account, bucket, asset)``: a user's ``available`` and
``held`` buckets of its trading (0) or funding (1) account, the exchange's fee
account (user 0, bucket ``FEE``) and the external world (user 0, bucket
``EXTERNAL``) against which deposits and committed withdrawals post.  An entry's
``amount`` is signed: positive is a debit (the account's balance grows),
negative a credit.  Every event's entries sum to zero per asset, so the whole
ledger does too, and the external account of an asset holds minus the asset's
outstanding supply (deposits - committed withdrawals).  Rules per event kind:
docs/clearing.md.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.wire.views import EV_VIEWS
from pyx.enums import EvKind, Side

# Buckets of an account.
AVAILABLE = 0
HELD = 1
FEE = 2
EXTERNAL = 3
BUCKET_NAMES = {AVAILABLE: "available", HELD: "held", FEE: "fee", EXTERNAL: "external"}
# The exchange's own accounts (fee, external) belong to user 0, account 0.
SYSTEM_USER = 0

# Causes of entries.
HOLD = "hold"
RELEASE = "release"
TRADE = "trade"
FEE_CAUSE = "fee"
DEPOSIT = "deposit"
WITHDRAW_HOLD = "withdraw_hold"
WITHDRAW_COMMIT = "withdraw_commit"
WITHDRAW_RELEASE = "withdraw_release"
TRANSFER = "transfer"
CAUSES = (
    HOLD,
    RELEASE,
    TRADE,
    FEE_CAUSE,
    DEPOSIT,
    WITHDRAW_HOLD,
    WITHDRAW_COMMIT,
    WITHDRAW_RELEASE,
    TRANSFER,
)

TAKER_DONE = 1
MAKER_DONE = 2

# Kinds and sides as plain ints: the rules compare them once per event.
_ACCEPTED = int(EvKind.ACCEPTED)
_CANCELED = int(EvKind.CANCELED)
_REDUCED = int(EvKind.REDUCED)
_REPLACED = int(EvKind.REPLACED)
_TRADE = int(EvKind.TRADE)
_DEPOSITED = int(EvKind.DEPOSITED)
_WITHDRAW_HELD = int(EvKind.WITHDRAW_HELD)
_WITHDRAW_COMMITTED = int(EvKind.WITHDRAW_COMMITTED)
_WITHDRAW_RELEASED = int(EvKind.WITHDRAW_RELEASED)
_TRANSFERRED = int(EvKind.TRANSFERRED)
_BUY = int(Side.BUY)


class Ev(NamedTuple):
    """One event record as Python ints, fields in ``EV_DTYPE`` order (``EV_FIELDS``;
    tests/clearing/test_rules.py checks the order): ``Ev(*records.tolist()[i])``."""

    seq: int
    ts_ns: int
    order_id: int
    maker_order_id: int
    price_ticks: int
    qty_lots: int
    leaves_lots: int
    match_id: int
    taker_fee: int
    maker_fee: int
    user_id: int
    maker_user_id: int
    symbol_id: int
    reason: int
    kind: int
    side: int
    flags: int
    ord_type: int


def _getter(kinds: tuple[EvKind, ...], *names: str) -> Callable[[Ev], Any]:
    """Read fields of an :class:`Ev` by the names of its kind's view (engine.wire.views),
    e.g. ``amount_minor`` rather than the ``qty_lots`` that carries it; one getter
    serves kinds whose views place those names alike."""
    where = {tuple(EV_VIEWS[k].index(n) for n in names) for k in kinds}
    assert len(where) == 1, (kinds, names)
    return operator.itemgetter(*where.pop())


_WITHDRAW_KINDS = (EvKind.WITHDRAW_HELD, EvKind.WITHDRAW_COMMITTED, EvKind.WITHDRAW_RELEASED)
# (hold after, change of hold) of ACCEPTED / CANCELED / REDUCED / REPLACED
hold_fields = _getter(
    (EvKind.ACCEPTED, EvKind.CANCELED, EvKind.REDUCED, EvKind.REPLACED),
    "hold_minor",
    "hold_delta_minor",
)
# (user, account, asset, amount, reference) of DEPOSITED and WITHDRAW_*
funding_fields = _getter(
    (EvKind.DEPOSITED,), "user_id", "account", "asset_id", "amount_minor", "ref"
)
withdrawal_fields = _getter(
    _WITHDRAW_KINDS, "user_id", "account", "asset_id", "amount_minor", "withdrawal_id"
)
# (user, from account, to account, asset, amount, reference) of TRANSFERRED
transfer_fields = _getter(
    (EvKind.TRANSFERRED,),
    "user_id",
    "from_account",
    "to_account",
    "asset_id",
    "amount_minor",
    "ref",
)
# (base, quote, price multiplier, base per lot) of SYMBOL_ADDED: a :class:`Symbol`
symbol_fields = _getter(
    (EvKind.SYMBOL_ADDED,), "base_asset_id", "quote_asset_id", "price_multiplier", "base_per_lot"
)
# (asset, decimals) of ASSET_ADDED
asset_fields = _getter((EvKind.ASSET_ADDED,), "asset_id", "decimals")


Account = tuple[int, int, int, int]  # user_id, account, bucket, asset
OrderKey = tuple[int, int]  # user_id, order_id


class Symbol(NamedTuple):
    """What the rules need of a symbol (from its SYMBOL_ADDED event)."""

    base: int
    quote: int
    multiplier: int
    base_per_lot: int


class Hold(NamedTuple):
    """A live order's hold: the asset held and the amount (minor units)."""

    asset: int
    amount: int


class Entry(NamedTuple):
    """One ledger line (ids as carried by the event; 0 when not applicable)."""

    account: Account
    amount: int
    cause: str
    order_id: int = 0
    match_id: int = 0
    ref: int = 0


@dataclass
class Posting:
    """What one event does to the ledger.

    Attributes
    ----------
    entries : list of Entry
        Balanced lines (per asset, amounts sum to zero); zero amounts omitted.
    holds : dict
        ``(user_id, order_id)`` -> the order's new :class:`Hold`, or None when
        the order ended (its hold fully released).
    """

    entries: list[Entry] = field(default_factory=list)
    holds: dict[OrderKey, Hold | None] = field(default_factory=dict)


class UnknownReferenceError(ValueError):
    """The event refers to a symbol or a live order the ledger has never seen:
    the stream is not the core's stream from its start (or was cut)."""


def user_acct(user: int, account: int, bucket: int, asset: int) -> Account:
    """A user's account key."""
    return (user, account, bucket, asset)


def fee_acct(asset: int) -> Account:
    """The exchange's fee account of ``asset``."""
    return (SYSTEM_USER, 0, FEE, asset)


def external_acct(asset: int) -> Account:
    """The external account of ``asset`` (the other side of deposits and withdrawals)."""
    return (SYSTEM_USER, 0, EXTERNAL, asset)


def _pair(
    out: list[Entry],
    debit: Account,
    credit: Account,
    amount: int,
    cause: str,
    order_id: int = 0,
    match_id: int = 0,
    ref: int = 0,
) -> None:
    """Append debit ``amount`` to ``debit`` and credit it to ``credit`` (skip zero)."""
    if amount == 0:
        return
    out.append(Entry(debit, amount, cause, order_id, match_id, ref))
    out.append(Entry(credit, -amount, cause, order_id, match_id, ref))


def _hold_move(out: list[Entry], user: int, asset: int, delta: int, order_id: int) -> None:
    """available -> held (delta > 0: hold) or held -> available (delta < 0: release)."""
    av = user_acct(user, 0, AVAILABLE, asset)
    hd = user_acct(user, 0, HELD, asset)
    if delta > 0:
        _pair(out, hd, av, delta, HOLD, order_id)
    elif delta < 0:
        _pair(out, av, hd, -delta, RELEASE, order_id)


def post(e: Ev, symbols: Mapping[int, Symbol], holds: Mapping[OrderKey, Hold]) -> Posting:
    """The entries and hold updates of one event (pure: reads, never writes).

    Raises
    ------
    UnknownReferenceError
        A trading event names a symbol or an order the lookups do not know.
    """
    k = e.kind
    p = Posting()
    out = p.entries
    # Most frequent kinds first (order entry dominates a real stream).
    if k == _ACCEPTED:
        sym = _symbol(symbols, e.symbol_id)
        asset = sym.quote if e.side == _BUY else sym.base
        hold, delta = hold_fields(e)
        _hold_move(out, e.user_id, asset, delta, e.order_id)
        p.holds[(e.user_id, e.order_id)] = Hold(asset, hold)
    elif k in (_CANCELED, _REDUCED, _REPLACED):
        key = (e.user_id, e.order_id)
        h = _hold(holds, key)
        hold, delta = hold_fields(e)
        _hold_move(out, e.user_id, h.asset, delta, e.order_id)
        p.holds[key] = None if k == _CANCELED else Hold(h.asset, hold)
    elif k == _TRADE:
        _trade(e, _symbol(symbols, e.symbol_id), holds, p)
    elif k == _DEPOSITED:
        user, account, asset, amount, ref = funding_fields(e)
        acc = user_acct(user, account, AVAILABLE, asset)
        _pair(out, acc, external_acct(asset), amount, DEPOSIT, ref=ref)
    elif k in (_WITHDRAW_HELD, _WITHDRAW_COMMITTED, _WITHDRAW_RELEASED):
        user, account, asset, amount, wid = withdrawal_fields(e)
        av = user_acct(user, account, AVAILABLE, asset)
        hd = user_acct(user, account, HELD, asset)
        if k == _WITHDRAW_HELD:
            _pair(out, hd, av, amount, WITHDRAW_HOLD, ref=wid)
        elif k == _WITHDRAW_COMMITTED:
            _pair(out, external_acct(asset), hd, amount, WITHDRAW_COMMIT, ref=wid)
        else:
            _pair(out, av, hd, amount, WITHDRAW_RELEASE, ref=wid)
    elif k == _TRANSFERRED:
        user, from_account, to_account, asset, amount, ref = transfer_fields(e)
        src = user_acct(user, from_account, AVAILABLE, asset)
        dst = user_acct(user, to_account, AVAILABLE, asset)
        _pair(out, dst, src, amount, TRANSFER, ref=ref)
    return p


def _symbol(symbols: Mapping[int, Symbol], sid: int) -> Symbol:
    try:
        return symbols[sid]
    except KeyError:
        raise UnknownReferenceError(f"unknown symbol {sid}") from None


def _hold(holds: Mapping[OrderKey, Hold], key: OrderKey) -> Hold:
    try:
        return holds[key]
    except KeyError:
        raise UnknownReferenceError(f"unknown live order (user, order) = {key}") from None


def _trade(e: Ev, sym: Symbol, holds: Mapping[OrderKey, Hold], p: Posting) -> None:
    """A fill: quote from the buyer's hold, base from the seller's hold, fees to
    the fee account, then the release of whatever a finished order still holds."""
    out = p.entries
    n = e.price_ticks * e.qty_lots * sym.multiplier
    base_amt = e.qty_lots * sym.base_per_lot
    taker = (e.user_id, e.order_id)
    maker = (e.maker_user_id, e.maker_order_id)
    if e.side == _BUY:
        buyer, seller, fee_b, fee_s = taker, maker, e.taker_fee, e.maker_fee
    else:
        buyer, seller, fee_b, fee_s = maker, taker, e.maker_fee, e.taker_fee
    bh, sh = _hold(holds, buyer), _hold(holds, seller)
    q, b = sym.quote, sym.base
    mid = e.match_id
    b_held_q = user_acct(buyer[0], 0, HELD, q)
    s_avail_q = user_acct(seller[0], 0, AVAILABLE, q)
    _pair(out, s_avail_q, b_held_q, n, TRADE, buyer[1], mid)
    _pair(out, user_acct(buyer[0], 0, AVAILABLE, b), user_acct(seller[0], 0, HELD, b),
          base_amt, TRADE, seller[1], mid)  # fmt: skip
    _pair(out, fee_acct(q), b_held_q, fee_b, FEE_CAUSE, buyer[1], mid)
    _pair(out, fee_acct(q), s_avail_q, fee_s, FEE_CAUSE, seller[1], mid)
    left = {
        buyer: Hold(bh.asset, bh.amount - n - fee_b),
        seller: Hold(sh.asset, sh.amount - base_amt),
    }
    if buyer == seller:  # a self-trade with STP_NONE: one order cannot be both sides
        raise UnknownReferenceError(f"order {buyer} trades with itself")
    done = set()
    if e.flags & TAKER_DONE:
        done.add(taker)
    if e.flags & MAKER_DONE:
        done.add(maker)
    for key, h in left.items():
        if key in done:
            _hold_move(out, key[0], h.asset, -h.amount, key[1])
            p.holds[key] = None
        else:
            p.holds[key] = h


def balanced(entries: list[Entry]) -> dict[int, int]:
    """Per asset, the sum of the entries' amounts (all zero when balanced)."""
    sums: dict[int, int] = {}
    for en in entries:
        sums[en.account[3]] = sums.get(en.account[3], 0) + en.amount
    return sums
