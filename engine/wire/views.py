"""Named views of the admin and funding records: the same bytes, names that say the unit.

The 96-byte command and event records (bursa_wire/layout.py) are shared by every
kind, so a kind reuses fields named for something else: a deposit's amount sits in
``qty_lots``, an order's hold in ``taker_fee``, a symbol's tick and lot steps are
packed into ``order_id``.  A :class:`View` gives one kind its own names: a numpy
structured dtype over the same 96 bytes (``records.view(view.dtype)``, no copy),
built from the table of :class:`VField` rows below, which is also the source of
the per-kind tables of docs/commands.md.  Writers (``engine.wire.commands``) and
readers (``engine.wire.events.decode``, clearing, the gateway) use these names;
the compiled core keeps raw offsets (tests/engine/test_views.py checks both agree).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from bursa_wire.layout import CMD_DTYPE, CMD_FIELDS, EV_DTYPE, EV_FIELDS
from pyx.enums import CmdKind, EvKind

Records = npt.NDArray[np.void]


class VField(NamedTuple):
    """One named field of a view.

    ``name`` is the field's name in the view (its unit last: ``amount_minor``), ``wire``
    the record field whose bytes it reads, ``part`` ``(byte offset, numpy code)`` when
    it is only part of that field (a packed pair), else None (the whole field).
    """

    name: str
    wire: str
    unit: str
    doc: str
    part: tuple[int, str] | None = None


class View:
    """A kind's names over a record's bytes (see the module docstring)."""

    def __init__(
        self, base: np.dtype[np.void], common: tuple[str, ...], fields: tuple[VField, ...]
    ):
        self.fields = fields
        names: list[str] = []
        formats: list[np.dtype[Any]] = []
        offsets: list[int] = []
        base_fields = base.fields
        assert base_fields is not None
        for name in common:
            dt, off = base_fields[name][:2]
            names.append(name)
            formats.append(dt)
            offsets.append(off)
        for f in fields:
            dt, off = base_fields[f.wire][:2]
            if f.part is not None:
                assert f.part[0] + np.dtype(f.part[1]).itemsize <= dt.itemsize, f
                off += f.part[0]
                dt = np.dtype(f.part[1])
            names.append(f.name)
            formats.append(dt)
            offsets.append(off)
        self.dtype: np.dtype[np.void] = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": base.itemsize}
        )
        self._order = list(base.names or ())

    def of(self, records: Records) -> Records:
        """``records`` (of the base dtype) seen through this view: the same memory."""
        return records.view(self.dtype)

    def one(self, record: np.void) -> np.void:
        """One record (an element of a base-dtype array) seen through this view."""
        named: np.void = record.view(self.dtype)
        return named

    def wire(self, name: str) -> str:
        """The record field a whole named field reads."""
        for f in self.fields:
            if f.name == name:
                if f.part is not None:
                    raise ValueError(f"{name} is part of {f.wire}: read it through the view")
                return f.wire
        raise KeyError(name)

    def index(self, name: str) -> int:
        """Position of a named field in a record tuple (``records.tolist()[i]``)."""
        return self._order.index(self.wire(name))


_CMD_COMMON = ("seq", "ts_ns", "client_ref", "kind")
_EV_COMMON = ("seq", "ts_ns", "kind")

# ----------------------------------------------------------------- commands
_USER = VField("user_id", "user_id", "id", "the user the command acts for")
_ASSET = VField("asset_id", "symbol_id", "id", "asset")
_AMOUNT = VField("amount_minor", "qty_lots", "minor units", "amount (> 0)")
_ACCOUNT = VField("account", "a0", "index", "account: 0 trading, 1 funding")
_SYMBOL = VField("symbol_id", "symbol_id", "id", "symbol")
_WD_ID = VField("withdrawal_id", "order_id", "id", "withdrawal id")

CMD_VIEW_FIELDS: dict[CmdKind, tuple[VField, ...]] = {
    CmdKind.ADD_ASSET: (
        VField("asset_id", "symbol_id", "id", "new asset id (1..65535)"),
        VField("decimals", "a3", "count", "decimals, for display only (0..30)"),
    ),
    CmdKind.ADD_SYMBOL: (
        VField("symbol_id", "symbol_id", "id", "new symbol id (1..65535)"),
        VField("base_asset_id", "a3", "id", "base asset", (0, "<u2")),
        VField("quote_asset_id", "a3", "id", "quote asset", (2, "<u2")),
        VField("tick_step", "order_id", "ticks", "price grid (1..2**32-1)", (0, "<u4")),
        VField("lot_step", "order_id", "lots", "quantity grid (1..2**32-1)", (4, "<u4")),
        VField("min_qty_lots", "user_id", "lots", "minimum order quantity (>= 1)"),
        VField("max_qty_lots", "qty_lots", "lots", "maximum order quantity"),
        VField("min_price_ticks", "price_ticks", "ticks", "low end of the price band (>= 1)"),
        VField("max_price_ticks", "stop_price_ticks", "ticks", "high end of the price band"),
        VField("price_multiplier", "a0", "minor units", "quote minor units per (tick x lot), >= 1"),
        VField("base_per_lot", "a1", "minor units", "base minor units per lot, >= 1"),
        VField(
            "protection_ticks",
            "a2",
            "ticks",
            "market orders trade at most this far from the best price",
        ),
    ),
    CmdKind.SET_MIN_NOTIONAL: (
        _SYMBOL,
        VField(
            "min_notional_minor",
            "a0",
            "quote minor units",
            "minimum order value (price x qty x multiplier), >= 0",
        ),
    ),
    CmdKind.ADD_USER: (
        VField("user_id", "user_id", "id", "new user id (1..2**24-1)"),
        VField("fee_tier", "a3", "id", "fee tier"),
    ),
    CmdKind.ADD_FEE_TIER: (
        VField("tier", "a3", "id", "new fee tier id"),
        VField("maker_ppm", "a0", "ppm", "maker fee rate (0..1e6)"),
        VField("taker_ppm", "a1", "ppm", "taker fee rate (0..1e6)"),
    ),
    CmdKind.SET_FEE_TIER: (_USER, VField("tier", "a3", "id", "fee tier (new orders only)")),
    CmdKind.HALT_SYMBOL: (_SYMBOL,),
    CmdKind.RESUME_SYMBOL: (_SYMBOL,),
    CmdKind.SUSPEND_USER: (_USER,),
    CmdKind.RESUME_USER: (_USER,),
    CmdKind.CANCEL_ALL_SYMBOL: (
        VField("symbol_id", "symbol_id", "id", "symbol whose book is emptied"),
    ),
    CmdKind.DEPOSIT: (
        VField("ref", "order_id", "id", "external reference (non-zero); a used one is a duplicate"),
        _USER,
        _ASSET,
        _AMOUNT,
        _ACCOUNT,
    ),
    CmdKind.WITHDRAW_HOLD: (
        VField(
            "withdrawal_id", "order_id", "id", "withdrawal id (non-zero); a used one is a duplicate"
        ),
        _USER,
        _ASSET,
        _AMOUNT._replace(doc="amount (> 0), moved from available to held"),
        _ACCOUNT,
    ),
    CmdKind.WITHDRAW_COMMIT: (
        _WD_ID._replace(doc="withdrawal id: the held amount leaves the exchange"),
    ),
    CmdKind.WITHDRAW_RELEASE: (_WD_ID._replace(doc="withdrawal id: held back to available"),),
    CmdKind.SET_USER_ORDER_LIMIT: (
        VField(
            "user_order_limit",
            "a0",
            "count",
            "live orders per user at most (1..2**24); default 10,000",
        ),
    ),
    CmdKind.TRANSFER: (
        VField("ref", "order_id", "id", "reference (non-zero); a used one is a duplicate"),
        _USER,
        _ASSET,
        _AMOUNT,
        VField("from_account", "a0", "index", "from account"),
        VField("to_account", "a1", "index", "to account (!= from)"),
    ),
}

# ------------------------------------------------------------------- events
_E_USER = VField("user_id", "user_id", "id", "user")
_E_ASSET = VField("asset_id", "symbol_id", "id", "asset")
_E_ACCOUNT = VField("account", "price_ticks", "index", "account (0 trading, 1 funding)")
_E_AVAIL = VField(
    "available_minor", "leaves_lots", "minor units", "the balance's available amount after"
)
_E_TIER = (
    VField("tier", "order_id", "id", "fee tier"),
    VField("maker_ppm", "price_ticks", "ppm", "maker fee rate"),
    VField("taker_ppm", "qty_lots", "ppm", "taker fee rate"),
)
_E_SYMBOL = VField("symbol_id", "symbol_id", "id", "symbol")


def _wd(what: str) -> tuple[VField, ...]:
    return (
        _E_USER,
        _E_ASSET,
        VField("withdrawal_id", "order_id", "id", "withdrawal id"),
        VField("amount_minor", "qty_lots", "minor units", what),
        _E_ACCOUNT,
        _E_AVAIL,
    )


# On ACCEPTED / CANCELED / REDUCED / REPLACED the core writes the order's hold into the
# two fee fields (events.py docstring); the book's own fields keep their names.
_BOOK_ORDER = tuple(
    VField(f.name, f.name, f.unit, f.doc)
    for f in EV_FIELDS
    if f.name
    in (
        "order_id",
        "price_ticks",
        "qty_lots",
        "leaves_lots",
        "user_id",
        "symbol_id",
        "reason",
        "side",
        "flags",
        "ord_type",
    )
)
_HOLD = (
    VField(
        "hold_minor",
        "taker_fee",
        "minor units",
        "what the order holds after the event (quote for a BUY, base for a SELL)",
    ),
    VField(
        "hold_delta_minor",
        "maker_fee",
        "minor units",
        "change of its hold (positive: more held; negative: released)",
    ),
)

EV_VIEW_FIELDS: dict[EvKind, tuple[VField, ...]] = {
    EvKind.ACCEPTED: _BOOK_ORDER + _HOLD,
    EvKind.CANCELED: _BOOK_ORDER + _HOLD,
    EvKind.REDUCED: _BOOK_ORDER + _HOLD,
    EvKind.REPLACED: _BOOK_ORDER + _HOLD,
    EvKind.ASSET_ADDED: (
        VField("asset_id", "symbol_id", "id", "asset id"),
        VField("decimals", "qty_lots", "count", "decimals (display only)"),
    ),
    EvKind.SYMBOL_ADDED: (
        _E_SYMBOL,
        VField("base_asset_id", "user_id", "id", "base asset"),
        VField("quote_asset_id", "maker_user_id", "id", "quote asset"),
        VField("tick_step", "order_id", "ticks", "price grid", (0, "<u4")),
        VField("lot_step", "order_id", "lots", "quantity grid", (4, "<u4")),
        VField("min_qty_lots", "maker_order_id", "lots", "minimum order quantity"),
        VField("max_qty_lots", "qty_lots", "lots", "maximum order quantity"),
        VField("min_price_ticks", "price_ticks", "ticks", "low end of the price band"),
        VField("max_price_ticks", "leaves_lots", "ticks", "high end of the price band"),
        VField("protection_ticks", "match_id", "ticks", "market order protection"),
        VField(
            "price_multiplier", "taker_fee", "minor units", "quote minor units per (tick x lot)"
        ),
        VField("base_per_lot", "maker_fee", "minor units", "base minor units per lot"),
    ),
    EvKind.MIN_NOTIONAL_SET: (
        _E_SYMBOL,
        VField("min_notional_minor", "qty_lots", "minor units", "minimum order value, quote"),
    ),
    EvKind.USER_ADDED: (_E_USER, *_E_TIER),
    EvKind.FEE_TIER_ADDED: _E_TIER,
    EvKind.FEE_TIER_SET: (_E_USER, *_E_TIER),
    EvKind.SYMBOL_HALTED: (_E_SYMBOL,),
    EvKind.SYMBOL_RESUMED: (_E_SYMBOL,),
    EvKind.USER_SUSPENDED: (_E_USER,),
    EvKind.USER_RESUMED: (_E_USER,),
    EvKind.DEPOSITED: (
        _E_USER,
        _E_ASSET,
        VField("ref", "order_id", "id", "external reference"),
        VField("amount_minor", "qty_lots", "minor units", "amount credited to available"),
        _E_ACCOUNT,
        _E_AVAIL,
    ),
    EvKind.WITHDRAW_HELD: _wd("amount moved from available to held"),
    EvKind.WITHDRAW_COMMITTED: _wd("amount that left held (and the exchange)"),
    EvKind.WITHDRAW_RELEASED: _wd("amount moved from held back to available"),
    EvKind.USER_ORDER_LIMIT_SET: (
        VField("user_order_limit", "qty_lots", "count", "live orders per user at most"),
    ),
    EvKind.TRANSFERRED: (
        _E_USER,
        _E_ASSET,
        VField("ref", "order_id", "id", "the command's reference"),
        VField(
            "amount_minor", "qty_lots", "minor units", "amount moved between available balances"
        ),
        VField("from_account", "price_ticks", "index", "source account"),
        VField("to_account", "maker_order_id", "index", "destination account"),
        VField(
            "available_minor", "leaves_lots", "minor units", "the source's available amount after"
        ),
    ),
}

assert {f.name for f in CMD_FIELDS} == set(CMD_DTYPE.names or ())
CMD_VIEWS: dict[CmdKind, View] = {
    k: View(CMD_DTYPE, _CMD_COMMON, rows) for k, rows in CMD_VIEW_FIELDS.items()
}
EV_VIEWS: dict[EvKind, View] = {
    k: View(EV_DTYPE, _EV_COMMON, rows) for k, rows in EV_VIEW_FIELDS.items()
}
