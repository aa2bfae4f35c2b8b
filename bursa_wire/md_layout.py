"""Feed message layouts: the one definition of every public market-data message.

Every message on the feed (PUB), in replay answers and in the client is one
fixed-layout, packed, little-endian record: the 32-byte :data:`HEADER` followed by
the body of its type (:data:`BODIES`).  Fields reuse :class:`bursa_wire.layout.Field`
(name, numpy type code, unit, doc); the struct codecs (:mod:`bursa_wire.md_codec`)
and the byte tables of docs/marketdata.md (:mod:`marketdata.wire.gendoc`) are built
from these tables, so code and spec cannot drift.  No field carries a user id or a
client's order id: L3 orders are named by feed-assigned public ids.
"""

from __future__ import annotations

from enum import IntEnum

from bursa_wire.layout import Field


class Channel(IntEnum):
    """Feed channels; each channel and symbol has its own gap-free ``channel_seq``."""

    L3 = 1
    L2 = 2
    TRADES = 3
    BBO = 4
    CANDLES = 5
    STATUS = 6


class MsgType(IntEnum):
    """Message types (the ``msg_type`` byte of the header)."""

    L3_ADD = 1
    L3_EXECUTE = 2
    L3_CANCEL = 3
    L3_DELETE = 4
    L3_REPLACE = 5
    L2_LEVEL = 10
    TRADE = 20
    BBO = 30
    CANDLE = 40
    STATUS = 50


class SymbolStatus(IntEnum):
    """The ``status`` byte of a STATUS message."""

    TRADING = 1
    HALTED = 2


# Topic names: a ZeroMQ topic is b"<name>.<symbol_id>." (the trailing dot keeps
# symbol 1 from matching symbol 10 under prefix matching).
CHANNEL_NAMES: dict[Channel, str] = {
    Channel.L3: "l3",
    Channel.L2: "l2",
    Channel.TRADES: "trades",
    Channel.BBO: "bbo",
    Channel.CANDLES: "candles",
    Channel.STATUS: "status",
}

# Candle intervals in seconds (1s, 1m, 5m, 15m, 1h, 4h, 1d); buckets start at
# multiples of the interval since the Unix epoch.
CANDLE_INTERVALS_S: tuple[int, ...] = (1, 60, 300, 900, 3600, 14400, 86400)

HEADER: tuple[Field, ...] = (
    Field("msg_type", "u1", "MsgType", "message type"),
    Field("channel", "u1", "Channel", "channel the message belongs to"),
    Field("symbol_id", "<u2", "id", "symbol"),
    Field("body_size", "<u4", "bytes", "size of the body that follows the header"),
    Field("channel_seq", "<u8", "sequence", "gap-free per (channel, symbol), from 1"),
    Field("core_seq", "<u8", "sequence", "core command sequence number it came from"),
    Field("ts_ns", "<u8", "ns", "core event time (sequencer clock), ns since the Unix epoch"),
)

_SIDE = Field("side", "u1", "Side", "BUY=1, SELL=2")
_PUB_ID = Field("order_ref", "<u8", "id", "feed-assigned public order id (per symbol)")
_PRICE = Field("price_ticks", "<i8", "ticks", "the order's price")

BODIES: dict[MsgType, tuple[Field, ...]] = {
    MsgType.L3_ADD: (
        _PUB_ID,
        _PRICE,
        Field("qty_lots", "<i8", "lots", "open quantity; joins the back of its level"),
        _SIDE,
    ),
    MsgType.L3_EXECUTE: (
        _PUB_ID,
        Field("price_ticks", "<i8", "ticks", "execution price (the resting order's price)"),
        Field("exec_lots", "<i8", "lots", "quantity executed"),
        Field("leaves_lots", "<i8", "lots", "open quantity after; 0 removes the order"),
        Field("match_id", "<u8", "id", "match id, as on the trade"),
        _SIDE,
    ),
    MsgType.L3_CANCEL: (
        _PUB_ID,
        _PRICE,
        Field("canceled_lots", "<i8", "lots", "quantity removed; the order keeps its place"),
        Field("leaves_lots", "<i8", "lots", "open quantity after (> 0)"),
        _SIDE,
    ),
    MsgType.L3_DELETE: (
        _PUB_ID,
        _PRICE,
        Field("qty_lots", "<i8", "lots", "open quantity removed (the whole order)"),
        _SIDE,
    ),
    MsgType.L3_REPLACE: (
        Field("old_order_ref", "<u8", "id", "public id of the order removed"),
        Field("order_ref", "<u8", "id", "new public id; joins the back of its level"),
        Field("old_price_ticks", "<i8", "ticks", "price of the order removed"),
        Field("old_qty_lots", "<i8", "lots", "open quantity of the order removed"),
        Field("price_ticks", "<i8", "ticks", "new price"),
        Field("qty_lots", "<i8", "lots", "new open quantity"),
        _SIDE,
    ),
    MsgType.L2_LEVEL: (
        Field("price_ticks", "<i8", "ticks", "level price"),
        Field("qty_lots", "<i8", "lots", "new total open quantity; 0 removes the level"),
        Field("n_orders", "<u4", "count", "orders at the level after"),
        _SIDE,
    ),
    MsgType.TRADE: (
        Field("match_id", "<u8", "id", "match id, monotonic per symbol"),
        Field("price_ticks", "<i8", "ticks", "execution price"),
        Field("qty_lots", "<i8", "lots", "quantity"),
        Field("aggressor_side", "u1", "Side", "side of the taking order"),
    ),
    MsgType.BBO: (
        Field("bid_price_ticks", "<i8", "ticks", "best bid (0: no bids)"),
        Field("bid_qty_lots", "<i8", "lots", "open quantity at the best bid"),
        Field("ask_price_ticks", "<i8", "ticks", "best ask (0: no asks)"),
        Field("ask_qty_lots", "<i8", "lots", "open quantity at the best ask"),
        Field("bid_orders", "<u4", "count", "orders at the best bid"),
        Field("ask_orders", "<u4", "count", "orders at the best ask"),
    ),
    MsgType.CANDLE: (
        Field("start_ns", "<u8", "ns", "bucket start, a multiple of the interval"),
        Field("open_ticks", "<i8", "ticks", "first trade price"),
        Field("high_ticks", "<i8", "ticks", "highest trade price"),
        Field("low_ticks", "<i8", "ticks", "lowest trade price"),
        Field("close_ticks", "<i8", "ticks", "last trade price"),
        Field("volume_lots", "<i8", "lots", "sum of trade quantities"),
        Field("quote_volume", "<i8", "ticks x lots", "sum of price x qty"),
        Field("trades", "<u8", "count", "number of trades"),
        Field("interval_s", "<u4", "s", "1, 60, 300, 900, 3600, 14400 or 86400"),
        Field("closed", "u1", "bool", "1: final (the bucket has ended); 0: in progress"),
    ),
    MsgType.STATUS: (
        Field("tick_step", "<u8", "ticks", "prices are multiples of this"),
        Field("lot_step", "<u8", "lots", "quantities are multiples of this"),
        Field("min_qty_lots", "<i8", "lots", "smallest order quantity"),
        Field("max_qty_lots", "<i8", "lots", "largest order quantity"),
        Field("min_price_ticks", "<i8", "ticks", "low end of the price band"),
        Field("max_price_ticks", "<i8", "ticks", "high end of the price band"),
        Field("price_multiplier", "<i8", "minor units", "quote minor units per (tick x lot)"),
        Field("base_per_lot", "<i8", "minor units", "base minor units per lot"),
        Field("base_asset_id", "<u2", "id", "base asset"),
        Field("quote_asset_id", "<u2", "id", "quote asset"),
        Field("base_decimals", "u1", "count", "display decimals of the base asset"),
        Field("quote_decimals", "u1", "count", "display decimals of the quote asset"),
        Field("status", "u1", "SymbolStatus", "TRADING=1, HALTED=2"),
    ),
}

# The channel each message type is published on.
CHANNEL_OF: dict[MsgType, Channel] = {
    MsgType.L3_ADD: Channel.L3,
    MsgType.L3_EXECUTE: Channel.L3,
    MsgType.L3_CANCEL: Channel.L3,
    MsgType.L3_DELETE: Channel.L3,
    MsgType.L3_REPLACE: Channel.L3,
    MsgType.L2_LEVEL: Channel.L2,
    MsgType.TRADE: Channel.TRADES,
    MsgType.BBO: Channel.BBO,
    MsgType.CANDLE: Channel.CANDLES,
    MsgType.STATUS: Channel.STATUS,
}


def topic(channel: Channel, symbol_id: int) -> bytes:
    """ZeroMQ topic of a channel and symbol, e.g. ``b"l2.1."``."""
    return f"{CHANNEL_NAMES[channel]}.{symbol_id}.".encode()


def channel_prefix(channel: Channel) -> bytes:
    """Topic prefix of a channel for every symbol, e.g. ``b"l2."``."""
    return f"{CHANNEL_NAMES[channel]}.".encode()
