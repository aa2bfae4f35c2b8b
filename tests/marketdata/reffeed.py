"""Reference (pure Python) feed: the oracle the Cython feed (``pyx.mdfeed``) is compared to.

This is the original sans-IO feed state machine with its book, kept only as the
test oracle of tests/marketdata/test_differential.py; the process uses
:mod:`pyx.mdfeed` (same output byte for byte, several times faster).

The feed state machine: core event frames in, public feed messages out (sans-IO).

:class:`Feed` turns the core's events into L3, L2, trade, BBO, candle and status
messages and numbers them per (channel, symbol).  Its output is a deterministic
function of the core's event stream alone (no clock, no randomness, no
dependence on how events were cut into frames): the same events from seq 1
always give the same messages with the same sequence numbers, which is what lets
a restarted process continue the numbering without a checkpoint
(docs/marketdata.md, "Sequence numbers and time").

Per core command: L3 and trade messages as the events come, then one L2 message
per changed level, one BBO if the top changed and the candles of symbols that
traded.  Incoming orders are held as the *pending taker* while they match and
appear on the book (L3_ADD or L3_REPLACE) only once they rest.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bursa_wire.md_codec import BODY_STRUCTS, FULL_STRUCTS
from bursa_wire.md_layout import (
    CANDLE_INTERVALS_S,
    CHANNEL_OF,
    Channel,
    MsgType,
    SymbolStatus,
    topic,
)
from pyx.enums import EvKind, OrdType

I64_MAX = 2**63 - 1  # candle volume sums saturate here (docs/marketdata.md)

BUY = 1
SELL = 2
# Closed candles kept per interval, recent trades kept per symbol (answers of the service).
CANDLE_HISTORY_MAX = 1000
RECENT_TRADES_MAX = 1000


@dataclass(slots=True)
class Order:
    """A resting order: public ``ref``, side, price (ticks), open quantity (lots)."""

    ref: int
    key: tuple[int, int]
    side: int
    price: int
    leaves: int


@dataclass(slots=True)
class Level:
    """One price level: total open lots and its orders by ref in priority order."""

    qty: int = 0
    orders: dict[int, Order] = field(default_factory=dict)


@dataclass(slots=True)
class Candle:
    """An in-progress candle (prices in ticks, volume in lots, quote volume ticks x lots)."""

    start_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    quote_volume: int = 0
    trades: int = 0


class SymbolBook:
    """State the feed keeps for one symbol: book, sequence numbers, status, candles."""

    def __init__(self, symbol_id: int, replay_window: int) -> None:
        self.symbol_id = symbol_id
        self.orders: dict[tuple[int, int], Order] = {}
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.next_ref = 1
        # By channel value (an int: IntEnum members hash and compare equal to it).
        self.seqs: dict[int, int] = {int(ch): 0 for ch in Channel}
        self.topics: dict[int, bytes] = {int(ch): topic(ch, symbol_id) for ch in Channel}
        # The last messages of each channel, for the replay service (bounded).
        self.windows: dict[int, deque[bytes]] = {
            int(ch): deque(maxlen=replay_window) for ch in Channel
        }
        self.config: tuple[int, ...] = ()
        self.halted = False
        self.status_raw = b""
        self.bbo: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)
        self.candles: dict[int, Candle | None] = dict.fromkeys(CANDLE_INTERVALS_S)
        self.candle_last_raw: dict[int, bytes] = {}
        self.candle_history: dict[int, deque[bytes]] = {
            iv: deque(maxlen=CANDLE_HISTORY_MAX) for iv in CANDLE_INTERVALS_S
        }
        self.trades: deque[bytes] = deque(maxlen=RECENT_TRADES_MAX)

    def side_levels(self, side: int) -> dict[int, Level]:
        """The levels of a side, by price."""
        return self.bids if side == BUY else self.asks

    def level_state(self, side: int, price: int) -> tuple[int, int]:
        """(total lots, order count) of a level; (0, 0) when it does not exist."""
        lv = self.side_levels(side).get(price)
        return (lv.qty, len(lv.orders)) if lv is not None else (0, 0)

    def add(self, order: Order) -> None:
        """Rest ``order`` at the back of its level."""
        levels = self.side_levels(order.side)
        lv = levels.get(order.price)
        if lv is None:
            lv = levels[order.price] = Level()
        lv.orders[order.ref] = order
        lv.qty += order.leaves
        self.orders[order.key] = order

    def remove(self, order: Order) -> None:
        """Take ``order`` off the book."""
        levels = self.side_levels(order.side)
        lv = levels[order.price]
        del lv.orders[order.ref]
        lv.qty -= order.leaves
        if not lv.orders:
            assert lv.qty == 0, lv.qty
            del levels[order.price]
        del self.orders[order.key]

    def reduce(self, order: Order, lots: int) -> None:
        """Remove ``lots`` from a resting order, keeping its place (0 < lots < leaves)."""
        assert 0 < lots < order.leaves, (lots, order.leaves)
        self.side_levels(order.side)[order.price].qty -= lots
        order.leaves -= lots

    def top(self) -> tuple[int, int, int, int, int, int]:
        """(bid price, bid lots, bid orders, ask price, ask lots, ask orders); 0s when empty."""
        bp = max(self.bids) if self.bids else 0
        ap = min(self.asks) if self.asks else 0
        bl = self.bids.get(bp)
        al = self.asks.get(ap)
        return (
            bp,
            bl.qty if bl else 0,
            len(bl.orders) if bl else 0,
            ap,
            al.qty if al else 0,
            len(al.orders) if al else 0,
        )

    def l2(self, depth: int = 0) -> tuple[list[list[int]], list[list[int]]]:
        """Bids and asks as ``[price, lots, orders]`` best first (depth 0 = all)."""
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        if depth > 0:
            bids, asks = bids[:depth], asks[:depth]
        return (
            [[p, lv.qty, len(lv.orders)] for p, lv in bids],
            [[p, lv.qty, len(lv.orders)] for p, lv in asks],
        )

    def l3(self) -> list[list[int]]:
        """Every resting order ``[ref, side, price, lots]``: bids best first, then asks."""
        out: list[list[int]] = []
        for levels, rev in ((self.bids, True), (self.asks, False)):
            for p in sorted(levels, reverse=rev):
                out += [[o.ref, o.side, p, o.leaves] for o in levels[p].orders.values()]
        return out


# Messages kept per (channel, symbol) for the replay service.
REPLAY_WINDOW_DEFAULT = 100_000
_NS = 1_000_000_000
_NEVER = 1 << 64

_ACCEPTED = int(EvKind.ACCEPTED)
_TRADE = int(EvKind.TRADE)
_CANCELED = int(EvKind.CANCELED)
_REDUCED = int(EvKind.REDUCED)
_REPLACED = int(EvKind.REPLACED)
_TRIGGERED = int(EvKind.TRIGGERED)
_LIMIT = int(OrdType.LIMIT)
# Per message type: (pack of header + body, channel, body size); plain ints on the
# hot path (hashing an IntEnum member costs a Python call).
_SPECS: dict[int, tuple[Any, int, int]] = {
    int(t): (FULL_STRUCTS[t].pack, int(CHANNEL_OF[t]), BODY_STRUCTS[t].size) for t in MsgType
}
_M_ADD, _M_EXEC, _M_CANCEL = int(MsgType.L3_ADD), int(MsgType.L3_EXECUTE), int(MsgType.L3_CANCEL)
_M_DELETE, _M_REPLACE = int(MsgType.L3_DELETE), int(MsgType.L3_REPLACE)
_M_L2, _M_TRADE, _M_BBO = int(MsgType.L2_LEVEL), int(MsgType.TRADE), int(MsgType.BBO)
_M_CANDLE, _M_STATUS = int(MsgType.CANDLE), int(MsgType.STATUS)
_STOP_LIMIT = int(OrdType.STOP_LIMIT)


@dataclass(slots=True)
class _Pending:
    """The order matching as taker right now; it rests (if anything is left) when its
    matching ends: at the next ACCEPTED/REPLACED/TRIGGERED or the end of the command."""

    sb: SymbolBook
    key: tuple[int, int]
    side: int
    price: int
    leaves: int
    replacing: Order | None  # a REPLACED order not yet withdrawn publicly


class Feed:
    """Core events -> feed messages, with the state the service answers from.

    Parameters
    ----------
    replay_window : int
        Messages kept per (channel, symbol) for replay requests (bounded memory).
    """

    def __init__(self, replay_window: int = REPLAY_WINDOW_DEFAULT) -> None:
        assert replay_window > 0
        self.replay_window = replay_window
        self.symbols: dict[int, SymbolBook] = {}
        self.asset_decimals: dict[int, int] = {}
        self.core_seq = 0  # last core command whose events were applied
        self.out: list[tuple[bytes, bytes]] = []  # (topic, message) since the last take()
        self._seq = 0
        self._ts = 0
        self._pending: _Pending | None = None
        self._touched: dict[tuple[SymbolBook, int, int], tuple[int, int]] = {}
        self._traded: dict[SymbolBook, None] = {}
        self._next_close_ns = _NEVER

    # ------------------------------------------------------------------ input

    def apply_events(self, events: np.ndarray[Any, np.dtype[np.void]], last_seq: int) -> None:
        """Apply the events of commands up to ``last_seq`` (sorted by seq; commands at or
        before :attr:`core_seq` are skipped, so duplicate delivery is harmless)."""
        cur = -1
        for ev in events.tolist():
            seq = ev[0]
            if seq <= self.core_seq:
                continue
            if seq != cur:
                if cur >= 0:
                    self._end_command()
                cur = seq
                self._begin_command(seq, ev[1])
            self._event(ev)
        if cur >= 0:
            self._end_command()
        self.core_seq = max(self.core_seq, last_seq)

    def take(self) -> list[tuple[bytes, bytes]]:
        """The ``(topic, message)`` pairs produced since the last call, in order."""
        out, self.out = self.out, []
        return out

    # ---------------------------------------------------------------- commands

    def _begin_command(self, seq: int, ts: int) -> None:
        self._seq = seq
        self._ts = ts
        if ts >= self._next_close_ns:
            self._close_candles(ts)

    def _end_command(self) -> None:
        if self._pending is not None:
            self._rest_pending()
        if self._touched:
            # Books whose top may have moved: a touched level at or better than the
            # published best (or a side that was empty); others skip the O(levels) scan.
            top_books: dict[SymbolBook, None] = {}
            emit = self._emit
            for (sb, side, price), before in self._touched.items():
                lv = (sb.bids if side == 1 else sb.asks).get(price)
                after = (lv.qty, len(lv.orders)) if lv is not None else (0, 0)
                if after != before:
                    emit(sb, _M_L2, price, after[0], after[1], side)
                    best = sb.bbo[0] if side == 1 else sb.bbo[3]
                    if not best or (price >= best if side == 1 else price <= best):
                        top_books[sb] = None
            self._touched.clear()
            for sb in top_books:
                top = sb.top()
                if top != sb.bbo:
                    sb.bbo = top
                    emit(sb, _M_BBO, top[0], top[1], top[3], top[4], top[2], top[5])
        if self._traded:
            for sb in self._traded:
                for iv in CANDLE_INTERVALS_S:
                    c = sb.candles[iv]
                    assert c is not None
                    sb.candle_last_raw[iv] = self._emit_candle(sb, iv, c, closed=0)
            self._traded.clear()

    # ------------------------------------------------------------------ events

    def _event(self, ev: list[int]) -> None:
        kind = ev[14]
        if kind == _TRADE:
            self._trade(ev)
        elif kind == _ACCEPTED:
            self._rest_pending()
            sb = self.symbols.get(ev[12])
            if sb is not None and ev[17] == _LIMIT:
                self._pending = _Pending(sb, (ev[10], ev[2]), ev[15], ev[4], ev[6], None)
        elif kind == _CANCELED:
            self._canceled(ev)
        elif kind == _REDUCED:
            self._reduced(ev)
        elif kind == _REPLACED:
            self._rest_pending()
            self._replaced(ev)
        elif kind == _TRIGGERED:
            self._rest_pending()
            sb = self.symbols.get(ev[12])
            if sb is not None and ev[17] == _STOP_LIMIT:
                self._pending = _Pending(sb, (ev[10], ev[2]), ev[15], ev[4], ev[5], None)
        elif kind == EvKind.SYMBOL_ADDED:
            self._symbol_added(ev)
        elif kind == EvKind.ASSET_ADDED:
            self.asset_decimals[ev[12]] = ev[5]
        elif kind in (EvKind.SYMBOL_HALTED, EvKind.SYMBOL_RESUMED):
            sb = self.symbols.get(ev[12])
            if sb is not None:
                sb.halted = kind == EvKind.SYMBOL_HALTED
                self._emit_status(sb)

    def _trade(self, ev: list[int]) -> None:
        sb = self.symbols.get(ev[12])
        if sb is None:
            return
        price, qty, match_id, taker_side = ev[4], ev[5], ev[7], ev[15]
        p = self._pending
        if p is not None:
            if p.key == (ev[10], ev[2]):
                p.leaves = ev[6]
                if p.replacing is not None:
                    # The replaced order trades on its new price: it left the book.
                    self._withdraw(p.sb, p.replacing)
                    p.replacing = None
            else:
                self._rest_pending()
        maker = sb.orders.get((ev[11], ev[3]))
        if maker is not None:
            self._touch(sb, maker.side, maker.price)
            leaves = maker.leaves - qty
            if leaves <= 0:
                sb.remove(maker)
                leaves = 0
            else:
                sb.reduce(maker, qty)
            self._emit(sb, _M_EXEC, maker.ref, price, qty, leaves, match_id, maker.side)
        sb.trades.append(self._emit(sb, _M_TRADE, match_id, price, qty, taker_side))
        self._candle_trade(sb, price, qty)

    def _canceled(self, ev: list[int]) -> None:
        key = (ev[10], ev[2])
        p = self._pending
        if p is not None and p.key == key:
            if p.replacing is not None:
                self._withdraw(p.sb, p.replacing)
            self._pending = None
            return
        sb = self.symbols.get(ev[12])
        order = sb.orders.get(key) if sb is not None else None
        if sb is not None and order is not None:
            self._withdraw(sb, order)

    def _reduced(self, ev: list[int]) -> None:
        key = (ev[10], ev[2])
        p = self._pending
        if p is not None and p.key == key:
            p.leaves = ev[6]
            return
        sb = self.symbols.get(ev[12])
        order = sb.orders.get(key) if sb is not None else None
        if sb is None or order is None:
            return
        removed = order.leaves - ev[6]
        self._touch(sb, order.side, order.price)
        sb.reduce(order, removed)
        self._emit(sb, _M_CANCEL, order.ref, order.price, removed, order.leaves, order.side)

    def _replaced(self, ev: list[int]) -> None:
        sb = self.symbols.get(ev[12])
        key = (ev[10], ev[2])
        order = sb.orders.get(key) if sb is not None else None
        if sb is None or order is None:
            return
        price, new_leaves = ev[4], ev[6]
        if price == order.price and new_leaves < order.leaves:
            # Same price, smaller: keeps its place in the queue (docs/book.md).
            removed = order.leaves - new_leaves
            self._touch(sb, order.side, price)
            sb.reduce(order, removed)
            self._emit(sb, _M_CANCEL, order.ref, price, removed, new_leaves, order.side)
            return
        # Loses priority: off the book now, public REPLACE (or DELETE) once it rests or trades.
        self._touch(sb, order.side, order.price)
        sb.remove(order)
        self._pending = _Pending(sb, key, order.side, price, new_leaves, order)

    def _symbol_added(self, ev: list[int]) -> None:
        sid = ev[12]
        if sid in self.symbols:
            return
        sb = self.symbols[sid] = SymbolBook(sid, self.replay_window)
        steps = ev[2]
        base, quote = ev[10], ev[11]
        sb.config = (
            steps & 0xFFFFFFFF,
            steps >> 32,
            ev[3],
            ev[5],
            ev[4],
            ev[6],
            ev[8],
            ev[9],
            base,
            quote,
            self.asset_decimals.get(base, 0),
            self.asset_decimals.get(quote, 0),
        )
        self._emit_status(sb)

    # ----------------------------------------------------------------- helpers

    def _touch(self, sb: SymbolBook, side: int, price: int) -> None:
        """Remember a level's state before its first change in this command."""
        k = (sb, side, price)
        if k not in self._touched:
            self._touched[k] = sb.level_state(side, price)

    def _withdraw(self, sb: SymbolBook, order: Order) -> None:
        """Public L3_DELETE of a whole order (off the internal book if still on it)."""
        self._touch(sb, order.side, order.price)
        if sb.orders.get(order.key) is order:
            sb.remove(order)
        self._emit(sb, _M_DELETE, order.ref, order.price, order.leaves, order.side)

    def _rest_pending(self) -> None:
        p = self._pending
        if p is None:
            return
        self._pending = None
        sb = p.sb
        if p.leaves <= 0:
            return
        ref = sb.next_ref
        sb.next_ref += 1
        order = Order(ref, p.key, p.side, p.price, p.leaves)
        self._touch(sb, p.side, p.price)
        sb.add(order)
        old = p.replacing
        if old is None:
            self._emit(sb, _M_ADD, ref, p.price, p.leaves, p.side)
        else:
            self._emit(
                sb, _M_REPLACE, old.ref, ref, old.price, old.leaves, p.price, p.leaves,
                p.side,
            )  # fmt: skip

    def _emit(self, sb: SymbolBook, mtype: int, *body: int) -> bytes:
        """Number, encode, keep (replay window) and queue one message; returns its bytes."""
        pack, ch, size = _SPECS[mtype]
        seqs = sb.seqs
        seq = seqs[ch] + 1
        seqs[ch] = seq
        raw: bytes = pack(mtype, ch, sb.symbol_id, size, seq, self._seq, self._ts, *body)
        sb.windows[ch].append(raw)
        self.out.append((sb.topics[ch], raw))
        return raw

    def _emit_status(self, sb: SymbolBook) -> None:
        st = SymbolStatus.HALTED if sb.halted else SymbolStatus.TRADING
        sb.status_raw = self._emit(sb, _M_STATUS, *sb.config, int(st))

    # ----------------------------------------------------------------- candles

    def _candle_trade(self, sb: SymbolBook, price: int, qty: int) -> None:
        ts = self._ts
        for iv in CANDLE_INTERVALS_S:
            c = sb.candles[iv]
            start = ts - ts % (iv * _NS)
            if c is None or c.start_ns != start:
                if c is not None:  # only if time went backwards in the stream
                    self._close_one(sb, iv, c)
                c = sb.candles[iv] = Candle(start, price, price, price, price)
                self._next_close_ns = min(self._next_close_ns, start + iv * _NS)
            c.high = max(c.high, price)
            c.low = min(c.low, price)
            c.close = price
            c.volume = min(I64_MAX, c.volume + qty)
            c.quote_volume = min(I64_MAX, c.quote_volume + price * qty)
            c.trades += 1
        self._traded[sb] = None

    def _close_candles(self, ts: int) -> None:
        """Close every candle whose bucket ended at or before ``ts``."""
        nxt = _NEVER
        for sb in self.symbols.values():
            for iv in CANDLE_INTERVALS_S:
                c = sb.candles[iv]
                if c is None:
                    continue
                end = c.start_ns + iv * _NS
                if end <= ts:
                    self._close_one(sb, iv, c)
                else:
                    nxt = min(nxt, end)
        self._next_close_ns = nxt

    def _close_one(self, sb: SymbolBook, iv: int, c: Candle) -> None:
        raw = self._emit_candle(sb, iv, c, closed=1)
        sb.candle_history[iv].append(raw)
        sb.candle_last_raw.pop(iv, None)
        sb.candles[iv] = None

    def _emit_candle(self, sb: SymbolBook, iv: int, c: Candle, closed: int) -> bytes:
        return self._emit(
            sb, _M_CANDLE, c.start_ns, c.open, c.high, c.low, c.close, c.volume,
            c.quote_volume, c.trades, iv, closed,
        )  # fmt: skip
