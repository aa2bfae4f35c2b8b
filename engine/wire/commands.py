"""Command records of the core: field mapping per kind, builders, batches.

Every command is one 96-byte ``CMD_DTYPE`` record (bursa_wire/layout.py).  The
fields a trading kind reads are listed in :data:`COMMAND_FIELDS`, those of an admin
or funding kind by its named view (:mod:`engine.wire.views`, whose names the
builders below use); both are the source of the tables in docs/commands.md.
Fields not listed are ignored by that kind and should be 0.  The builders return a
one-record array with those fields set; :class:`CmdBatch` collects records and
:func:`stamp` numbers them the way the sequencer does (``seq`` consecutive, ``ts_ns`` set).

Units: prices are integer ticks, quantities integer lots, amounts integer minor
units of an asset (its smallest unit, e.g. satoshi), fee rates integer parts per
million (ppm) of the notional.  Nothing here is a float.

Every command gets exactly one reply (``REPLY_DTYPE``): ``status`` is a
:class:`ReplyStatus`, ``reason`` a ``Reason`` (``OK`` = 0 when applied), ``value``
the per-kind result listed in :data:`REPLY_VALUE`.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

from bursa_wire.layout import CMD_DTYPE
from engine.wire.views import CMD_VIEWS
from pyx.enums import CmdFlag, CmdKind, OrdType, Side, Tif

Cmds = npt.NDArray[np.void]

ACCOUNT_TRADING = 0  # orders hold and settle here
ACCOUNT_FUNDING = 1  # deposits/withdrawals may target it; TRANSFER moves between the two
N_ACCOUNTS = 2


class ReplyStatus(IntEnum):
    """``status`` of a reply record."""

    APPLIED = 1
    REJECTED = 2
    DUPLICATE = 3  # exact retry of an applied command: the first result, nothing changed


# (wire field, meaning, unit) per trading command kind: the field mapping of each.  Admin
# and funding kinds have named views instead (engine/wire/views.py: CMD_VIEW_FIELDS).
_ORDER_REF = (
    "order_id",
    "order id chosen by the client: per user, 1..2**40-1, never reused",
    "id",
)
_USER = ("user_id", "the user the command acts for", "id")
COMMAND_FIELDS: dict[CmdKind, tuple[tuple[str, str, str], ...]] = {
    CmdKind.NEW: (
        _ORDER_REF,
        _USER,
        ("symbol_id", "symbol", "id"),
        ("side", "BUY=1 / SELL=2", "Side"),
        ("ord_type", "LIMIT, MARKET, MARKET_QUOTE, STOP_LIMIT, STOP_MARKET", "OrdType"),
        ("tif", "GTC / IOC / FOK (markets: IOC)", "Tif"),
        (
            "price_ticks",
            "limit price; MARKET/STOP_MARKET: optional worst price (0 = none)",
            "ticks",
        ),
        (
            "qty_lots",
            "quantity; MARKET_QUOTE: the budget in quote minor units, fee included",
            "lots / minor units",
        ),
        ("stop_price_ticks", "stop trigger price (stop orders)", "ticks"),
        ("stp", "self-trade prevention mode", "Stp"),
        ("flags", "POST_ONLY (LIMIT GTC only)", "CmdFlag"),
    ),
    CmdKind.CANCEL: (_ORDER_REF, _USER),
    CmdKind.REDUCE: (_ORDER_REF, _USER, ("qty_lots", "new open quantity (< open)", "lots")),
    CmdKind.REPLACE: (
        _ORDER_REF,
        _USER,
        ("price_ticks", "new limit price", "ticks"),
        ("qty_lots", "new open quantity", "lots"),
    ),
    CmdKind.MASS_CANCEL: (
        _USER,
        ("symbol_id", "symbol; 0 = every symbol", "id"),
        ("side", "0 = both sides, BUY, SELL", "Side"),
    ),
}

# What the reply's ``value`` carries when the command is applied (or a duplicate).
REPLY_VALUE: dict[CmdKind, str] = {
    CmdKind.NEW: "quote (BUY) or base (SELL) minor units the order still holds after the command",
    CmdKind.CANCEL: "0",
    CmdKind.REDUCE: "minor units the order still holds",
    CmdKind.REPLACE: "minor units the order still holds",
    CmdKind.MASS_CANCEL: "number of orders canceled",
    CmdKind.CANCEL_ALL_SYMBOL: "number of orders canceled",
    CmdKind.DEPOSIT: "the balance's available amount after the command",
    CmdKind.WITHDRAW_HOLD: "the balance's available amount after the command",
    CmdKind.WITHDRAW_COMMIT: "the balance's available amount after the command",
    CmdKind.WITHDRAW_RELEASE: "the balance's available amount after the command",
    CmdKind.TRANSFER: "the source balance's available amount after the command",
}

U32_MAX = (1 << 32) - 1


def _rec(kind: CmdKind, **fields: int) -> Cmds:
    """A one-record CMD_DTYPE array of ``kind`` with ``fields`` set (others 0), by the
    names of the kind's view if it has one (the same bytes), else the record's."""
    a = np.zeros(1, dtype=CMD_DTYPE)
    view = CMD_VIEWS.get(kind)
    named = a if view is None else view.of(a)
    named["kind"] = int(kind)
    for name, value in fields.items():
        named[name] = value
    return a


# ------------------------------------------------------------------ trading


def new_order(
    order_id: int,
    user_id: int,
    symbol_id: int,
    side: int,
    ord_type: int,
    qty_lots: int,
    *,
    price_ticks: int = 0,
    tif: int = Tif.GTC,
    stop_price_ticks: int = 0,
    stp: int = 0,
    flags: int = 0,
    client_ref: int = 0,
) -> Cmds:
    """NEW order of any type (docs/book.md).

    Parameters
    ----------
    order_id : int
        Client-chosen id, per user, 1..2**40-1, never reused (docs/commands.md,
        "Idempotency"): a resend with the same fields is answered as the first.
    user_id, symbol_id : int
        The owner and the symbol.
    side, ord_type, tif, stp, flags : int
        ``Side``, ``OrdType``, ``Tif``, ``Stp``, ``CmdFlag`` values.
    qty_lots : int
        Quantity in lots; for MARKET_QUOTE the budget in quote minor units (fee included).
    price_ticks : int
        Limit price in ticks; MARKET / STOP_MARKET: optional worst price (0 = none).
    stop_price_ticks : int
        Trigger price of stop orders, ticks.
    """
    return _rec(
        CmdKind.NEW,
        order_id=order_id,
        user_id=user_id,
        symbol_id=symbol_id,
        side=side,
        ord_type=ord_type,
        tif=tif,
        price_ticks=price_ticks,
        qty_lots=qty_lots,
        stop_price_ticks=stop_price_ticks,
        stp=stp,
        flags=flags,
        client_ref=client_ref,
    )


def new_limit(
    order_id: int,
    user_id: int,
    symbol_id: int,
    side: int,
    price_ticks: int,
    qty_lots: int,
    *,
    tif: int = Tif.GTC,
    stp: int = 0,
    post_only: bool = False,
    client_ref: int = 0,
) -> Cmds:
    """NEW limit order: ``qty_lots`` lots at ``price_ticks`` ticks (GTC, IOC or FOK)."""
    return new_order(
        order_id,
        user_id,
        symbol_id,
        side,
        OrdType.LIMIT,
        qty_lots,
        price_ticks=price_ticks,
        tif=tif,
        stp=stp,
        flags=CmdFlag.POST_ONLY if post_only else 0,
        client_ref=client_ref,
    )


def new_market(
    order_id: int,
    user_id: int,
    symbol_id: int,
    side: int,
    qty_lots: int,
    *,
    worst_price_ticks: int = 0,
    stp: int = 0,
    client_ref: int = 0,
) -> Cmds:
    """NEW market order by base quantity (lots); optional worst price in ticks.

    A BUY holds ``qty_lots`` at its worst price: the best ask at arrival plus the
    symbol's protection ticks, or ``worst_price_ticks`` if lower.
    """
    return new_order(
        order_id,
        user_id,
        symbol_id,
        side,
        OrdType.MARKET,
        qty_lots,
        price_ticks=worst_price_ticks,
        tif=Tif.IOC,
        stp=stp,
        client_ref=client_ref,
    )


def new_market_quote(
    order_id: int,
    user_id: int,
    symbol_id: int,
    budget_minor: int,
    *,
    stp: int = 0,
    client_ref: int = 0,
) -> Cmds:
    """NEW market BUY by quote budget: spend at most ``budget_minor`` quote minor units,
    fees included (the whole budget is held)."""
    return new_order(
        order_id,
        user_id,
        symbol_id,
        Side.BUY,
        OrdType.MARKET_QUOTE,
        budget_minor,
        tif=Tif.IOC,
        stp=stp,
        client_ref=client_ref,
    )


def new_stop(
    order_id: int,
    user_id: int,
    symbol_id: int,
    side: int,
    ord_type: int,
    stop_price_ticks: int,
    qty_lots: int,
    *,
    price_ticks: int = 0,
    tif: int | None = None,
    stp: int = 0,
    client_ref: int = 0,
) -> Cmds:
    """NEW stop order (STOP_LIMIT or STOP_MARKET) triggered at ``stop_price_ticks``.

    ``price_ticks`` is the limit price (STOP_LIMIT) or an optional worst price
    (STOP_MARKET; a BUY holds at ``stop + protection`` or this, whichever is lower).
    ``tif`` defaults to GTC for STOP_LIMIT and IOC for STOP_MARKET.
    """
    if tif is None:
        tif = Tif.GTC if ord_type == OrdType.STOP_LIMIT else Tif.IOC
    return new_order(
        order_id,
        user_id,
        symbol_id,
        side,
        ord_type,
        qty_lots,
        price_ticks=price_ticks,
        tif=tif,
        stop_price_ticks=stop_price_ticks,
        stp=stp,
        client_ref=client_ref,
    )


def cancel(order_id: int, user_id: int, *, symbol_id: int = 0, client_ref: int = 0) -> Cmds:
    """CANCEL a live order of ``user_id`` (its symbol is found by order id)."""
    return _rec(
        CmdKind.CANCEL,
        order_id=order_id,
        user_id=user_id,
        symbol_id=symbol_id,
        client_ref=client_ref,
    )


def reduce(
    order_id: int, user_id: int, new_leaves_lots: int, *, symbol_id: int = 0, client_ref: int = 0
) -> Cmds:
    """REDUCE an order to ``new_leaves_lots`` open lots (keeps priority; 0 cancels)."""
    return _rec(
        CmdKind.REDUCE,
        order_id=order_id,
        user_id=user_id,
        qty_lots=new_leaves_lots,
        symbol_id=symbol_id,
        client_ref=client_ref,
    )


def replace(
    order_id: int,
    user_id: int,
    price_ticks: int,
    qty_lots: int,
    *,
    symbol_id: int = 0,
    client_ref: int = 0,
) -> Cmds:
    """REPLACE an order's price (ticks) and open quantity (lots); the hold is recomputed."""
    return _rec(
        CmdKind.REPLACE,
        order_id=order_id,
        user_id=user_id,
        price_ticks=price_ticks,
        qty_lots=qty_lots,
        symbol_id=symbol_id,
        client_ref=client_ref,
    )


def mass_cancel(user_id: int, *, symbol_id: int = 0, side: int = 0, client_ref: int = 0) -> Cmds:
    """MASS_CANCEL every order of ``user_id`` in ``symbol_id`` (0 = all), ``side`` (0 = both)."""
    return _rec(
        CmdKind.MASS_CANCEL,
        user_id=user_id,
        symbol_id=symbol_id,
        side=side,
        client_ref=client_ref,
    )


# -------------------------------------------------------------------- admin


def add_asset(asset_id: int, decimals: int = 0) -> Cmds:
    """ADD_ASSET ``asset_id`` (1..65535); ``decimals`` is for display only."""
    return _rec(CmdKind.ADD_ASSET, asset_id=asset_id, decimals=decimals)


def add_symbol(
    symbol_id: int,
    base_asset_id: int,
    quote_asset_id: int,
    *,
    tick_step: int = 1,
    lot_step: int = 1,
    price_multiplier: int = 1,
    base_per_lot: int = 1,
    min_qty_lots: int = 1,
    max_qty_lots: int = 10**6,
    min_price_ticks: int = 1,
    max_price_ticks: int = 10**9,
    protection_ticks: int = 10**6,
) -> Cmds:
    """ADD_SYMBOL: a book trading ``base`` against ``quote``.

    Parameters
    ----------
    tick_step, lot_step : int
        Price grid (ticks) and quantity grid (lots), 1..2**32-1.
    price_multiplier : int
        Quote minor units per (tick x lot): a fill of q lots at p ticks moves
        ``p * q * price_multiplier`` quote minor units.
    base_per_lot : int
        Base minor units per lot.
    min_qty_lots, max_qty_lots : int
        Order quantity range (min_qty_lots < 2**32).
    min_price_ticks, max_price_ticks : int
        The price band.
    protection_ticks : int
        Market orders trade at most this many ticks from the best opposite price.

    The core rejects (``INVALID_CONFIG``) a config where the largest order's
    notional ``max_price * max_qty * multiplier`` or ``max_qty * base_per_lot``
    reaches 2**62.  The minimum notional is set by :func:`set_min_notional`.
    """
    if not (0 < tick_step <= U32_MAX and 0 < lot_step <= U32_MAX):
        raise ValueError("tick_step and lot_step must be in 1..2**32-1")
    if not 0 < min_qty_lots <= U32_MAX:
        raise ValueError("min_qty_lots must be in 1..2**32-1")
    return _rec(
        CmdKind.ADD_SYMBOL,
        symbol_id=symbol_id,
        base_asset_id=base_asset_id,
        quote_asset_id=quote_asset_id,
        tick_step=tick_step,
        lot_step=lot_step,
        min_qty_lots=min_qty_lots,
        max_qty_lots=max_qty_lots,
        min_price_ticks=min_price_ticks,
        max_price_ticks=max_price_ticks,
        price_multiplier=price_multiplier,
        base_per_lot=base_per_lot,
        protection_ticks=protection_ticks,
    )


def set_min_notional(symbol_id: int, min_notional_minor: int) -> Cmds:
    """SET_MIN_NOTIONAL: orders below this value (quote minor units) are rejected."""
    return _rec(
        CmdKind.SET_MIN_NOTIONAL, symbol_id=symbol_id, min_notional_minor=min_notional_minor
    )


def add_user(user_id: int, fee_tier: int = 0) -> Cmds:
    """ADD_USER ``user_id`` (1..2**24-1) in ``fee_tier`` (which must exist)."""
    return _rec(CmdKind.ADD_USER, user_id=user_id, fee_tier=fee_tier)


def add_fee_tier(tier: int, maker_ppm: int, taker_ppm: int) -> Cmds:
    """ADD_FEE_TIER: maker and taker rates in ppm of the notional (0..1,000,000)."""
    return _rec(CmdKind.ADD_FEE_TIER, tier=tier, maker_ppm=maker_ppm, taker_ppm=taker_ppm)


def set_fee_tier(user_id: int, tier: int) -> Cmds:
    """SET_FEE_TIER: the user's new orders use ``tier``'s rates."""
    return _rec(CmdKind.SET_FEE_TIER, user_id=user_id, tier=tier)


def set_user_order_limit(limit: int) -> Cmds:
    """SET_USER_ORDER_LIMIT: a user's NEW beyond ``limit`` live orders is rejected
    ``USER_ORDER_LIMIT`` (the default is 10,000)."""
    return _rec(CmdKind.SET_USER_ORDER_LIMIT, user_order_limit=limit)


def halt_symbol(symbol_id: int) -> Cmds:
    """HALT_SYMBOL: new orders and replaces are rejected; cancels still work."""
    return _rec(CmdKind.HALT_SYMBOL, symbol_id=symbol_id)


def resume_symbol(symbol_id: int) -> Cmds:
    """RESUME_SYMBOL: trading resumes."""
    return _rec(CmdKind.RESUME_SYMBOL, symbol_id=symbol_id)


def suspend_user(user_id: int) -> Cmds:
    """SUSPEND_USER: new orders, replaces, withdrawals and transfers are rejected."""
    return _rec(CmdKind.SUSPEND_USER, user_id=user_id)


def resume_user(user_id: int) -> Cmds:
    """RESUME_USER: the user may trade again."""
    return _rec(CmdKind.RESUME_USER, user_id=user_id)


def cancel_all_symbol(symbol_id: int) -> Cmds:
    """CANCEL_ALL_SYMBOL: cancel every order (resting and stop) of the symbol's book."""
    return _rec(CmdKind.CANCEL_ALL_SYMBOL, symbol_id=symbol_id)


# ------------------------------------------------------------------ funding


def deposit(
    ref: int,
    user_id: int,
    asset_id: int,
    amount_minor: int,
    *,
    account: int = 0,
    client_ref: int = 0,
) -> Cmds:
    """DEPOSIT ``amount_minor`` minor units; idempotent by the external reference ``ref``."""
    return _rec(
        CmdKind.DEPOSIT,
        ref=ref,
        user_id=user_id,
        asset_id=asset_id,
        amount_minor=amount_minor,
        account=account,
        client_ref=client_ref,
    )


def withdraw_hold(
    withdrawal_id: int,
    user_id: int,
    asset_id: int,
    amount_minor: int,
    *,
    account: int = 0,
    client_ref: int = 0,
) -> Cmds:
    """WITHDRAW_HOLD: move ``amount_minor`` from available to held; idempotent by id."""
    return _rec(
        CmdKind.WITHDRAW_HOLD,
        withdrawal_id=withdrawal_id,
        user_id=user_id,
        asset_id=asset_id,
        amount_minor=amount_minor,
        account=account,
        client_ref=client_ref,
    )


def withdraw_commit(withdrawal_id: int, *, client_ref: int = 0) -> Cmds:
    """WITHDRAW_COMMIT: the held amount leaves the exchange (idempotent)."""
    return _rec(CmdKind.WITHDRAW_COMMIT, withdrawal_id=withdrawal_id, client_ref=client_ref)


def withdraw_release(withdrawal_id: int, *, client_ref: int = 0) -> Cmds:
    """WITHDRAW_RELEASE: the held amount goes back to available (idempotent)."""
    return _rec(CmdKind.WITHDRAW_RELEASE, withdrawal_id=withdrawal_id, client_ref=client_ref)


def transfer(
    user_id: int,
    asset_id: int,
    amount_minor: int,
    from_account: int,
    to_account: int,
    *,
    ref: int = 0,
    client_ref: int = 0,
) -> Cmds:
    """TRANSFER ``amount_minor`` between two accounts (0 trading, 1 funding) of a user;
    idempotent by ``ref`` (non-zero: the core rejects 0 with ``INVALID_ID``)."""
    return _rec(
        CmdKind.TRANSFER,
        ref=ref,
        user_id=user_id,
        asset_id=asset_id,
        amount_minor=amount_minor,
        from_account=from_account,
        to_account=to_account,
        client_ref=client_ref,
    )


# ------------------------------------------------------------------ batches


def stamp(cmds: Cmds, first_seq: int, ts_ns: int | None = None) -> Cmds:
    """Number ``cmds`` in place like the sequencer: ``seq`` = first_seq, first_seq + 1, ...

    ``ts_ns`` (ns since the epoch), if given, is written into every record.
    Returns ``cmds``.
    """
    cmds["seq"] = np.arange(first_seq, first_seq + len(cmds), dtype=np.uint64)
    if ts_ns is not None:
        cmds["ts_ns"] = ts_ns
    return cmds


class CmdBatch:
    """An append-only list of command records that becomes one ``CMD_DTYPE`` array.

    Example::

        b = CmdBatch()
        b.add(deposit(1, 7, 2, 10_000)).add(new_limit(1, 7, 1, Side.BUY, 100, 5))
        events, replies = core.apply(b.to_array(first_seq=core.last_seq + 1))
    """

    def __init__(self) -> None:
        self._parts: list[Cmds] = []

    def add(self, recs: Cmds) -> CmdBatch:
        """Append the records of ``recs`` (e.g. a builder's result); returns self."""
        if recs.dtype != CMD_DTYPE:
            raise TypeError("CmdBatch holds CMD_DTYPE records only")
        self._parts.append(recs)
        return self

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    def to_array(self, first_seq: int | None = None, ts_ns: int | None = None) -> Cmds:
        """The records as one new array; numbered from ``first_seq`` if given."""
        out = np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=CMD_DTYPE)
        if first_seq is not None:
            stamp(out, first_seq, ts_ns)
        return out
