"""Event records of the core: field mapping per kind and a decoder.

Every event is one 96-byte ``EV_DTYPE`` record (bursa_wire/layout.py) carrying
the ``seq`` and ``ts_ns`` of the command that produced it.  Book events
(ACCEPTED ... TRIGGERED) are described in docs/book.md; the core fills in:

- on TRADE: ``taker_fee`` and ``maker_fee``, the fees each side paid, in quote
  minor units (floor of notional x ppm / 1e6 each);
- on ACCEPTED, CANCELED, REDUCED and REPLACED (money of the order's hold):
  ``taker_fee`` = the amount the order still holds after the event and
  ``maker_fee`` = the change of its hold (positive: more held, negative:
  released), in minor units of the held asset (quote for a BUY, base for a SELL).
  A TRADE with TAKER_DONE / MAKER_DONE releases what that order still held (a
  subscriber that tracks holds from ACCEPTED knows the amount);
- on REJECTED of a trading command: ``user_id`` = the command's user.

Core events of admin and funding commands use the fields listed in
:data:`EVENT_FIELDS`; together with the trading events they let a subscriber
(clearing) rebuild every balance from the stream alone.  Rejected admin and
funding commands produce no event (only their reply).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pyx.enums import EvKind

# Rows: (wire field, name, unit, meaning).
_USER = ("user_id", "user_id", "id", "user")
_ASSET = ("symbol_id", "asset_id", "id", "asset")
_AMOUNT = ("qty_lots", "amount_minor", "minor units", "amount")
_ACCOUNT = ("price_ticks", "account", "index", "account (0 trading, 1 funding)")
_AVAIL = ("leaves_lots", "available_minor", "minor units", "the balance's available amount after")
_TIER = (
    ("order_id", "tier", "id", "fee tier"),
    ("price_ticks", "maker_ppm", "ppm", "maker fee rate"),
    ("qty_lots", "taker_ppm", "ppm", "taker fee rate"),
)
_SYMBOL = ("symbol_id", "symbol_id", "id", "symbol")


def _wd(what: str) -> tuple[tuple[str, str, str, str], ...]:
    return (
        _USER,
        _ASSET,
        ("order_id", "withdrawal_id", "id", "withdrawal id"),
        ("qty_lots", "amount_minor", "minor units", what),
        _ACCOUNT,
        _AVAIL,
    )


# Field mapping of every core event kind.
EVENT_FIELDS: dict[EvKind, tuple[tuple[str, str, str, str], ...]] = {
    EvKind.ASSET_ADDED: (
        ("symbol_id", "asset_id", "id", "asset id"),
        ("qty_lots", "decimals", "count", "decimals (display only)"),
    ),
    EvKind.SYMBOL_ADDED: (
        _SYMBOL,
        ("user_id", "base_asset_id", "id", "base asset"),
        ("maker_user_id", "quote_asset_id", "id", "quote asset"),
        ("order_id", "steps", "ticks | lots", "tick_step | lot_step << 32"),
        ("maker_order_id", "min_qty_lots", "lots", "minimum order quantity"),
        ("qty_lots", "max_qty_lots", "lots", "maximum order quantity"),
        ("price_ticks", "min_price_ticks", "ticks", "low end of the price band"),
        ("leaves_lots", "max_price_ticks", "ticks", "high end of the price band"),
        ("match_id", "protection_ticks", "ticks", "market order protection"),
        ("taker_fee", "price_multiplier", "minor units", "quote minor units per (tick x lot)"),
        ("maker_fee", "base_per_lot", "minor units", "base minor units per lot"),
    ),
    EvKind.MIN_NOTIONAL_SET: (
        _SYMBOL,
        ("qty_lots", "min_notional_minor", "minor units", "minimum order value, quote"),
    ),
    EvKind.USER_ADDED: (_USER, *_TIER),
    EvKind.FEE_TIER_ADDED: _TIER,
    EvKind.FEE_TIER_SET: (_USER, *_TIER),
    EvKind.SYMBOL_HALTED: (_SYMBOL,),
    EvKind.SYMBOL_RESUMED: (_SYMBOL,),
    EvKind.USER_SUSPENDED: (_USER,),
    EvKind.USER_RESUMED: (_USER,),
    EvKind.DEPOSITED: (
        _USER,
        _ASSET,
        ("order_id", "ref", "id", "external reference"),
        ("qty_lots", "amount_minor", "minor units", "amount credited to available"),
        _ACCOUNT,
        _AVAIL,
    ),
    EvKind.WITHDRAW_HELD: _wd("amount moved from available to held"),
    EvKind.WITHDRAW_COMMITTED: _wd("amount that left held (and the exchange)"),
    EvKind.WITHDRAW_RELEASED: _wd("amount moved from held back to available"),
    EvKind.USER_ORDER_LIMIT_SET: (
        ("qty_lots", "user_order_limit", "count", "live orders per user at most"),
    ),
    EvKind.TRANSFERRED: (
        _USER,
        _ASSET,
        ("order_id", "ref", "id", "the command's reference"),
        ("qty_lots", "amount_minor", "minor units", "amount moved between available balances"),
        ("price_ticks", "from_account", "index", "source account"),
        ("maker_order_id", "to_account", "index", "destination account"),
        ("leaves_lots", "available_minor", "minor units", "the source's available amount after"),
    ),
}

# On ACCEPTED / CANCELED / REDUCED / REPLACED: the fields that carry the hold (module doc).
HOLD_AFTER_FIELD = "taker_fee"
HOLD_DELTA_FIELD = "maker_fee"


def decode(ev: np.void) -> dict[str, Any]:
    """One event record as a dict: core kinds by the names of :data:`EVENT_FIELDS`,
    other kinds by the record's own field names (integers throughout)."""
    kind = int(ev["kind"])
    out: dict[str, Any] = {"seq": int(ev["seq"]), "ts_ns": int(ev["ts_ns"]), "kind": kind}
    try:
        fields = EVENT_FIELDS[EvKind(kind)]
    except (ValueError, KeyError):
        names = ev.dtype.names or ()
        out.update({n: int(ev[n]) for n in names})
        return out
    for wire, name, _unit, _meaning in fields:
        out[name] = int(ev[wire])
    return out
