"""Order-entry protocol layouts: the one definition of every frame and message.

A frame is ``length`` (u16, little-endian: bytes after the length field), ``type``
(one ASCII byte) and a body.  Session frames (login, heartbeats, logout, end of
session) are modeled on SoupBinTCP; application messages (OUCH-like) travel inside
``U`` (unsequenced, client to server) and ``S`` (sequenced, server to client; the
body starts with the u64 sequence number) frames, after their own one-byte type.

Every message is a table of :class:`bursa_wire.layout.Field` (name, type code,
unit, meaning), packed little-endian.  The codecs in :mod:`gateway.wire.codec` and
docs/protocol.md (``python -m gateway.wire.gen_doc``) are built from these tables.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from bursa_wire.layout import Field

# Field type code -> struct code.  ``S64`` is 64 raw bytes (the Ed25519 signature).
STRUCT_CODES = {"<u8": "Q", "<i8": "q", "<u4": "I", "<u2": "H", "u1": "B", "S64": "64s"}
SIZES = {"<u8": 8, "<i8": 8, "<u4": 4, "<u2": 2, "u1": 1, "S64": 64}

FRAME_HEAD = struct.Struct("<HB")  # length (bytes after this field), frame type
SEQ_HEAD = struct.Struct("<Q")  # sequence number at the start of an S frame's body
MAX_FRAME_LEN = 512  # largest accepted value of the length field
LOGIN_DOMAIN = b"BURSA-LOGIN-1"  # prefix of the signed login bytes (domain separation)

# Frame types of the session layer.
SEQUENCED = b"S"
UNSEQUENCED = b"U"

# Flag bits of LOGIN.flags.
LOGIN_CANCEL_ON_DISCONNECT = 1
# Flag bits of ENTER_ORDER.flags.
ORDER_POST_ONLY = 1
# EXECUTED.liquidity
LIQUIDITY_MAKER = 1
LIQUIDITY_TAKER = 2
# CANCEL_REJECTED.request
REQUEST_CANCEL = 1
REQUEST_REPLACE = 2
REQUEST_REDUCE = 3
# ORDER_STATUS_REPLY.state
STATE_UNKNOWN = 0
STATE_PENDING = 1
STATE_OPEN = 2
STATE_FILLED = 3
STATE_CANCELED = 4
STATE_REJECTED = 5


@dataclass(frozen=True)
class MsgSpec:
    """One message type: its code, where it travels and its field table.

    Parameters
    ----------
    name : str
        Upper-case name (``ENTER_ORDER``).
    code : bytes
        One ASCII byte: the frame type (session layer) or the message type inside a
        ``U`` / ``S`` frame (application layer).
    layer : str
        ``session`` or ``app``.
    inbound : bool
        True if sent by the client, False if sent by the gateway.
    fields : tuple[Field, ...]
        The body, packed little-endian in this order.
    doc : str
        One-line meaning.
    """

    name: str
    code: bytes
    layer: str
    inbound: bool
    fields: tuple[Field, ...]
    doc: str

    @functools.cached_property
    def struct(self) -> struct.Struct:
        """The packed little-endian body."""
        return struct.Struct("<" + "".join(STRUCT_CODES[f.code] for f in self.fields))

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """Field names in wire order."""
        return tuple(f.name for f in self.fields)


def _f(name: str, code: str, unit: str, doc: str) -> Field:
    return Field(name, code, unit, doc)


CL_ORD_ID = _f("cl_ord_id", "<u8", "id", "the client's order id, unique per session (non-zero)")
TS = _f(
    "ts_ns",
    "<u8",
    "ns",
    "time of the event, ns since the Unix epoch: the core's clock (an ACCEPTED sent on the"
    " core's reply, before its event arrived, carries the gateway's clock; docs/gateway.md)",
)
REASON = _f("reason", "<u2", "Reason", "reason code (core or gateway table)")
PRICE = _f("price_ticks", "<i8", "ticks", "price")
QTY = _f("qty_lots", "<i8", "lots", "quantity")
LEAVES = _f("leaves_lots", "<i8", "lots", "open quantity after the event")
SYMBOL = _f("symbol_id", "<u2", "id", "symbol")
SIDE = _f("side", "u1", "Side", "BUY=1, SELL=2")
REQ_ID = _f("request_id", "<u8", "id", "the client's request id, echoed")

SESSION_MESSAGES: tuple[MsgSpec, ...] = (
    MsgSpec(
        "LOGIN",
        b"L",
        "session",
        True,
        (
            _f("key_id", "<u8", "id", "API key id"),
            _f("next_seq", "<u8", "sequence", "next sequenced message wanted (0 = only new ones)"),
            _f("ts_ns", "<u8", "ns", "client clock, ns since the Unix epoch"),
            _f("nonce", "<u8", "id", "random; never reused within the timestamp window"),
            _f("flags", "u1", "bits", "1 = cancel this session's orders on disconnect"),
            _f("signature", "S64", "bytes", "Ed25519 over LOGIN_DOMAIN + the 33 bytes before"),
        ),
        "log in (first frame of a connection)",
    ),
    MsgSpec(
        "LOGIN_ACCEPTED",
        b"A",
        "session",
        False,
        (
            _f("key_id", "<u8", "id", "API key id"),
            _f("first_seq", "<u8", "sequence", "sequence number of the next S frame sent"),
            _f("last_seq", "<u8", "sequence", "the session's last sequence number at login"),
            _f("user_id", "<u4", "id", "the user the key acts for"),
            _f("heartbeat_ms", "<u4", "ms", "interval of server heartbeats; timeout is 3x"),
        ),
        "login accepted; missed messages (first_seq..last_seq) follow, then live ones",
    ),
    MsgSpec("LOGIN_REJECTED", b"J", "session", False, (REASON,), "login refused; socket closes"),
    MsgSpec("CLIENT_HEARTBEAT", b"R", "session", True, (), "client is alive"),
    MsgSpec("SERVER_HEARTBEAT", b"H", "session", False, (), "gateway is alive"),
    MsgSpec("LOGOUT", b"O", "session", True, (), "client ends the session"),
    MsgSpec("END_OF_SESSION", b"Z", "session", False, (REASON,), "gateway ends the session"),
)

APP_IN: tuple[MsgSpec, ...] = (
    MsgSpec(
        "ENTER_ORDER",
        b"O",
        "app",
        True,
        (
            CL_ORD_ID,
            _f("price_ticks", "<i8", "ticks", "limit price; MARKET/STOP_MARKET worst price or 0"),
            _f("qty_lots", "<i8", "lots", "quantity; MARKET_QUOTE: budget, quote minor units"),
            _f("stop_price_ticks", "<i8", "ticks", "stop trigger price (stop orders), else 0"),
            SYMBOL,
            SIDE,
            _f("ord_type", "u1", "OrdType", "LIMIT, MARKET, MARKET_QUOTE, STOP_LIMIT, STOP_MARKET"),
            _f("tif", "u1", "Tif", "GTC, IOC, FOK"),
            _f("stp", "u1", "Stp", "self-trade prevention mode"),
            _f("flags", "u1", "bits", "1 = post-only"),
        ),
        "enter an order",
    ),
    MsgSpec(
        "REPLACE_ORDER",
        b"U",
        "app",
        True,
        (CL_ORD_ID, _f("price_ticks", "<i8", "ticks", "new price"), QTY),
        "change an open order's price and open quantity",
    ),
    MsgSpec(
        "REDUCE_ORDER",
        b"D",
        "app",
        True,
        (CL_ORD_ID, _f("qty_lots", "<i8", "lots", "new open quantity (keeps priority)")),
        "reduce an open order's open quantity",
    ),
    MsgSpec("CANCEL_ORDER", b"X", "app", True, (CL_ORD_ID,), "cancel an open order"),
    MsgSpec(
        "MASS_CANCEL",
        b"M",
        "app",
        True,
        (
            REQ_ID,
            _f("symbol_id", "<u2", "id", "symbol; 0 = all"),
            _f("side", "u1", "Side", "0 = both"),
        ),
        "cancel every open order of the user (by symbol and/or side)",
    ),
    MsgSpec("ORDER_STATUS", b"Q", "app", True, (CL_ORD_ID,), "ask for an order's state"),
    MsgSpec(
        "BALANCE_QUERY",
        b"B",
        "app",
        True,
        (REQ_ID, _f("asset_id", "<u2", "id", "asset"), _f("account", "u1", "index", "0 trading")),
        "ask for a balance",
    ),
)

APP_OUT: tuple[MsgSpec, ...] = (
    MsgSpec(
        "ACCEPTED",
        b"A",
        "app",
        False,
        (CL_ORD_ID, TS, PRICE, QTY, LEAVES, SYMBOL, SIDE, _f("ord_type", "u1", "OrdType", "type")),
        "the order is accepted by the core",
    ),
    MsgSpec(
        "REPLACED", b"U", "app", False, (CL_ORD_ID, TS, PRICE, LEAVES), "the order was replaced"
    ),
    MsgSpec(
        "REDUCED",
        b"D",
        "app",
        False,
        (CL_ORD_ID, TS, _f("qty_lots", "<i8", "lots", "quantity removed"), LEAVES),
        "the order was reduced",
    ),
    MsgSpec(
        "CANCELED",
        b"C",
        "app",
        False,
        (CL_ORD_ID, TS, _f("qty_lots", "<i8", "lots", "quantity canceled"), REASON),
        "the order is done without (further) fills",
    ),
    MsgSpec(
        "EXECUTED",
        b"E",
        "app",
        False,
        (
            CL_ORD_ID,
            TS,
            _f("match_id", "<u8", "id", "match id, the same for both sides"),
            _f("price_ticks", "<i8", "ticks", "execution price"),
            _f("qty_lots", "<i8", "lots", "executed quantity"),
            LEAVES,
            _f("fee_minor", "<i8", "minor units", "fee this side paid"),
            _f("fee_asset_id", "<u2", "id", "asset of the fee (the symbol's quote asset)"),
            SYMBOL,
            SIDE,
            _f("liquidity", "u1", "enum", "1 maker, 2 taker"),
        ),
        "the order traded",
    ),
    MsgSpec(
        "TRIGGERED",
        b"T",
        "app",
        False,
        (CL_ORD_ID, TS, PRICE),
        "the stop order triggered",
    ),
    MsgSpec("REJECTED", b"J", "app", False, (CL_ORD_ID, TS, REASON), "the order was refused"),
    MsgSpec(
        "CANCEL_REJECTED",
        b"I",
        "app",
        False,
        (CL_ORD_ID, TS, REASON, _f("request", "u1", "enum", "1 cancel, 2 replace, 3 reduce")),
        "a cancel, replace or reduce was refused",
    ),
    MsgSpec(
        "MASS_CANCEL_ACK",
        b"M",
        "app",
        False,
        (REQ_ID, TS, _f("canceled", "<i8", "count", "orders canceled"), REASON),
        "the mass cancel was applied (or refused: reason)",
    ),
    MsgSpec(
        "ORDER_STATUS_REPLY",
        b"Q",
        "app",
        False,
        (
            CL_ORD_ID,
            PRICE,
            _f("qty_lots", "<i8", "lots", "order quantity"),
            LEAVES,
            _f("filled_lots", "<i8", "lots", "executed so far"),
            SYMBOL,
            SIDE,
            _f("state", "u1", "enum", "0 unknown, 1 pending, 2 open, 3 filled, 4 canceled, 5 rej."),
            REASON,
        ),
        "an order's state as the gateway knows it",
    ),
    MsgSpec(
        "BALANCE",
        b"B",
        "app",
        False,
        (
            REQ_ID,
            _f("available_minor", "<i8", "minor units", "available"),
            _f("held_minor", "<i8", "minor units", "held by open orders and withdrawals"),
            _f("asset_id", "<u2", "id", "asset"),
            _f("account", "u1", "index", "account"),
            REASON,
        ),
        "a balance",
    ),
)

ALL_MESSAGES = SESSION_MESSAGES + APP_IN + APP_OUT
BY_NAME: dict[str, MsgSpec] = {m.name: m for m in ALL_MESSAGES}
SESSION_IN = {m.code: m for m in SESSION_MESSAGES if m.inbound}
SESSION_OUT = {m.code: m for m in SESSION_MESSAGES if not m.inbound}
APP_IN_BY_CODE = {m.code: m for m in APP_IN}
APP_OUT_BY_CODE = {m.code: m for m in APP_OUT}
LOGIN_SIGNED_LEN = BY_NAME["LOGIN"].struct.size - 64

assert len(BY_NAME) == len(ALL_MESSAGES)
assert len(SESSION_IN) + len(SESSION_OUT) == len(SESSION_MESSAGES)
assert len(APP_IN_BY_CODE) == len(APP_IN) and len(APP_OUT_BY_CODE) == len(APP_OUT)
assert SEQUENCED not in SESSION_OUT and UNSEQUENCED not in SESSION_IN
