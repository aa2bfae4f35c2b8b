"""Record layouts: the one definition of every fixed-layout binary record.

Each record is a tuple of fields ``(name, numpy type code, unit, doc)``.  The
numpy structured dtypes used by the engine and the Python decoders are built
from these tables, the byte tables in docs/ are generated from them, and
tests/pyx/test_layout.py checks that the C structs in ``pyx/records.pxd`` have
the same offsets and size.  All records are little-endian and packed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Field:
    """One field of a binary record.

    Parameters
    ----------
    name : str
        Field name (units last, e.g. ``price_ticks``).
    code : str
        numpy type code, little-endian (``<u8``, ``<i8``, ``<u4``, ``<u2``, ``u1``).
    unit : str
        Unit or enum the value is expressed in.
    doc : str
        One-line meaning.
    """

    name: str
    code: str
    unit: str
    doc: str


CMD_FIELDS: tuple[Field, ...] = (
    Field("seq", "<u8", "sequence", "global sequence number, assigned by the sequencer"),
    Field("ts_ns", "<u8", "ns", "sequencer clock when sequenced, ns since the Unix epoch"),
    Field("client_ref", "<u8", "id", "caller's correlation id, echoed in the reply"),
    Field("order_id", "<u8", "id", "order id; for funding commands the external reference"),
    Field("price_ticks", "<i8", "ticks", "limit price, or the new price of a replace"),
    Field("qty_lots", "<i8", "lots", "quantity, new remaining quantity, or quote budget"),
    Field("stop_price_ticks", "<i8", "ticks", "stop trigger price (stop orders)"),
    Field("a0", "<i8", "per kind", "command-specific argument 0"),
    Field("a1", "<i8", "per kind", "command-specific argument 1"),
    Field("a2", "<i8", "per kind", "command-specific argument 2"),
    Field("user_id", "<u4", "id", "user the command acts for"),
    Field("symbol_id", "<u2", "id", "symbol (or asset, for funding commands)"),
    Field("kind", "u1", "CmdKind", "command kind"),
    Field("side", "u1", "Side", "BUY=1, SELL=2"),
    Field("ord_type", "u1", "OrdType", "order type"),
    Field("tif", "u1", "Tif", "time in force"),
    Field("stp", "u1", "Stp", "self-trade prevention mode"),
    Field("flags", "u1", "CmdFlag", "flag bits"),
    Field("a3", "<u4", "per kind", "command-specific argument 3"),
)

EV_FIELDS: tuple[Field, ...] = (
    Field("seq", "<u8", "sequence", "sequence number of the command that produced the event"),
    Field("ts_ns", "<u8", "ns", "sequencer clock of that command"),
    Field("order_id", "<u8", "id", "subject order (the taker on TRADE)"),
    Field("maker_order_id", "<u8", "id", "TRADE: the resting (maker) order"),
    Field("price_ticks", "<i8", "ticks", "order price; TRADE: execution (maker) price"),
    Field("qty_lots", "<i8", "lots", "order / executed / canceled quantity (see docs)"),
    Field("leaves_lots", "<i8", "lots", "subject order's open quantity after the event"),
    Field("match_id", "<u8", "id", "TRADE: match id, monotonic per book"),
    Field("taker_fee", "<i8", "minor units", "TRADE: taker fee in quote (set by the core)"),
    Field("maker_fee", "<i8", "minor units", "TRADE: maker fee in quote (set by the core)"),
    Field("user_id", "<u4", "id", "subject order's user (the taker on TRADE)"),
    Field("maker_user_id", "<u4", "id", "TRADE: the maker's user"),
    Field("symbol_id", "<u2", "id", "symbol"),
    Field("reason", "<u2", "Reason", "reject or cancel reason; 0 otherwise"),
    Field("kind", "u1", "EvKind", "event kind"),
    Field("side", "u1", "Side", "subject order's side (the aggressor's on TRADE)"),
    Field("flags", "u1", "EvFlag", "TAKER_DONE=1, MAKER_DONE=2"),
    Field("ord_type", "u1", "OrdType", "subject order's type"),
)

REPLY_FIELDS: tuple[Field, ...] = (
    Field("seq", "<u8", "sequence", "sequence number given to the command (0 if not sequenced)"),
    Field("client_ref", "<u8", "id", "the command's client_ref, echoed"),
    Field("order_id", "<u8", "id", "the command's order_id (or external reference), echoed"),
    Field("value", "<i8", "per kind", "command-specific result (e.g. new balance); 0 otherwise"),
    Field("user_id", "<u4", "id", "the command's user"),
    Field("reason", "<u2", "Reason", "OK=0 or the reject reason"),
    Field("kind", "u1", "CmdKind", "the command's kind"),
    Field("status", "u1", "ReplyStatus", "1 applied, 2 rejected, 3 duplicate (idempotent no-op)"),
)


def dtype_of(fields: tuple[Field, ...]) -> np.dtype[np.void]:
    """Packed little-endian numpy structured dtype of a record table."""
    return np.dtype([(f.name, f.code) for f in fields])


CMD_DTYPE = dtype_of(CMD_FIELDS)
EV_DTYPE = dtype_of(EV_FIELDS)
REPLY_DTYPE = dtype_of(REPLY_FIELDS)
CMD_SIZE = CMD_DTYPE.itemsize
EV_SIZE = EV_DTYPE.itemsize

# A reply's status byte (REPLY_FIELDS "status"), defined here with the record so the
# compiled consumers of replies (pyx/gwreport.pyx) need not import the engine.
STATUS_APPLIED = 1
STATUS_REJECTED = 2
STATUS_DUPLICATE = 3

assert CMD_SIZE == 96, CMD_SIZE
assert EV_SIZE == 96, EV_SIZE
assert REPLY_DTYPE.itemsize == 40, REPLY_DTYPE.itemsize


def markdown_table(fields: tuple[Field, ...]) -> str:
    """Byte table of a record for the docs: offset, size, type, field, unit, meaning."""
    dt = dtype_of(fields)
    rows = ["| offset | size | type | field | unit | meaning |", "|---:|---:|---|---|---|---|"]
    for f in fields:
        off = dt.fields[f.name][1]  # type: ignore[index]
        size = np.dtype(f.code).itemsize
        rows.append(f"| {off} | {size} | `{f.code}` | `{f.name}` | {f.unit} | {f.doc} |")
    return "\n".join(rows)
