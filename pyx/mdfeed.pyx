# cython: language_level=3
"""The market-data feed state machine in Cython: core events in, feed messages out.

Same behaviour and the same bytes as the pure-Python reference
(tests/marketdata/reffeed.py, compared over random flows by
tests/marketdata/test_differential.py); see marketdata/feed.py for what the feed
does.  The hot path reads the core's ``EvRec`` records straight from the numpy
frame (no ``tolist``), keeps candles and sequence numbers in C arrays and writes
each message once, into a fresh ``bytes`` object through a packed C struct (the
replay window and the PUB part hold that same object).  Books stay Python dicts
of :class:`Level` objects, so the service and the tests read them as before.
"""

from collections import deque

cimport cython

import numpy as np
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport INT64_MAX, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from bursa_wire.layout import EV_DTYPE
from bursa_wire.md_codec import BODY_STRUCTS, FULL_STRUCTS, HEADER_SIZE
from bursa_wire.md_layout import CANDLE_INTERVALS_S, Channel, MsgType, SymbolStatus, topic
from pyx.enums import EvKind, OrdType
from pyx.records cimport EvRec

cnp.import_array()

REPLAY_WINDOW_DEFAULT = 100_000
# Closed candles kept per interval, recent trades kept per symbol (answers of the service).
CANDLE_HISTORY_MAX = 1000
RECENT_TRADES_MAX = 1000
BUY = 1
SELL = 2

cdef uint64_t NS = 1_000_000_000
cdef uint64_t NEVER = 0xFFFFFFFFFFFFFFFF
cdef enum:
    N_IV = 7
    N_CH = 7  # channels 1..6, index 0 unused

cdef uint64_t IV_S[N_IV]
IV_S[:] = [1, 60, 300, 900, 3600, 14400, 86400]
assert tuple(IV_S[i] for i in range(N_IV)) == tuple(CANDLE_INTERVALS_S)
assert max(int(c) for c in Channel) < N_CH

cdef uint8_t K_ACCEPTED = int(EvKind.ACCEPTED)
cdef uint8_t K_TRADE = int(EvKind.TRADE)
cdef uint8_t K_CANCELED = int(EvKind.CANCELED)
cdef uint8_t K_REDUCED = int(EvKind.REDUCED)
cdef uint8_t K_REPLACED = int(EvKind.REPLACED)
cdef uint8_t K_TRIGGERED = int(EvKind.TRIGGERED)
cdef uint8_t K_SYMBOL_ADDED = int(EvKind.SYMBOL_ADDED)
cdef uint8_t K_ASSET_ADDED = int(EvKind.ASSET_ADDED)
cdef uint8_t K_HALTED = int(EvKind.SYMBOL_HALTED)
cdef uint8_t K_RESUMED = int(EvKind.SYMBOL_RESUMED)
cdef uint8_t O_LIMIT = int(OrdType.LIMIT)
cdef uint8_t O_STOP_LIMIT = int(OrdType.STOP_LIMIT)

cdef enum:
    M_ADD = 1
    M_EXEC = 2
    M_CANCEL = 3
    M_DELETE = 4
    M_REPLACE = 5
    M_L2 = 10
    M_TRADE = 20
    M_BBO = 30
    M_CANDLE = 40
    M_STATUS = 50
    CH_L3 = 1
    CH_L2 = 2
    CH_TRADES = 3
    CH_BBO = 4
    CH_CANDLES = 5
    CH_STATUS = 6

# Message layouts as packed C structs, mirroring bursa_wire/md_layout.py (the one
# definition); the size checks below and the differential test catch any drift.
cdef packed struct Hdr:
    uint8_t msg_type
    uint8_t channel
    uint16_t symbol_id
    uint32_t body_size
    uint64_t channel_seq
    uint64_t core_seq
    uint64_t ts_ns

cdef packed struct BAdd:  # L3_ADD and L3_DELETE
    uint64_t ref
    int64_t price
    int64_t qty
    uint8_t side

cdef packed struct BExec:
    uint64_t ref
    int64_t price
    int64_t qty
    int64_t leaves
    uint64_t match_id
    uint8_t side

cdef packed struct BCancel:
    uint64_t ref
    int64_t price
    int64_t qty
    int64_t leaves
    uint8_t side

cdef packed struct BReplace:
    uint64_t old_ref
    uint64_t ref
    int64_t old_price
    int64_t old_qty
    int64_t price
    int64_t qty
    uint8_t side

cdef packed struct BL2:
    int64_t price
    int64_t qty
    uint32_t n_orders
    uint8_t side

cdef packed struct BTrade:
    uint64_t match_id
    int64_t price
    int64_t qty
    uint8_t side

cdef packed struct BBbo:
    int64_t bid_price
    int64_t bid_qty
    int64_t ask_price
    int64_t ask_qty
    uint32_t bid_orders
    uint32_t ask_orders

cdef packed struct BCandle:
    uint64_t start_ns
    int64_t open
    int64_t high
    int64_t low
    int64_t close
    int64_t volume
    int64_t quote_volume
    uint64_t trades
    uint32_t interval_s
    uint8_t closed

assert sizeof(Hdr) == HEADER_SIZE
for _t, _n in ((MsgType.L3_ADD, sizeof(BAdd)), (MsgType.L3_DELETE, sizeof(BAdd)),
               (MsgType.L3_EXECUTE, sizeof(BExec)), (MsgType.L3_CANCEL, sizeof(BCancel)),
               (MsgType.L3_REPLACE, sizeof(BReplace)), (MsgType.L2_LEVEL, sizeof(BL2)),
               (MsgType.TRADE, sizeof(BTrade)), (MsgType.BBO, sizeof(BBbo)),
               (MsgType.CANDLE, sizeof(BCandle))):
    assert BODY_STRUCTS[_t].size == _n, (_t, _n)
_STATUS_PACK = FULL_STRUCTS[MsgType.STATUS].pack
_STATUS_SIZE = BODY_STRUCTS[MsgType.STATUS].size


# Orders and levels are never part of a reference cycle (ints, a tuple of ints, a dict of
# orders): untracked by the cyclic GC, whose full passes over every resting order were
# latency spikes.
@cython.no_gc
cdef class Order:
    """A resting order: public ``ref``, core key ``(user_id, order_id)``, side, price, open lots."""

    def __init__(self, int64_t ref, tuple key, int side, int64_t price, int64_t leaves):
        self.ref = ref
        self.key = key
        self.side = side
        self.price = price
        self.leaves = leaves


@cython.no_gc
cdef class Level:
    """One price level: total open lots and its orders by ref in priority order."""

    def __init__(self):
        self.qty = 0
        self.orders = {}


cdef class Candle:
    """An in-progress candle (prices in ticks, volume in lots, quote volume ticks x lots)."""

    def __init__(self, uint64_t start_ns, int64_t open, int64_t high, int64_t low,
                 int64_t close, int64_t volume=0, int64_t quote_volume=0, uint64_t trades=0):
        self.start_ns = start_ns
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.quote_volume = quote_volume
        self.trades = trades


cdef class SymbolBook:
    """State the feed keeps for one symbol: book, sequence numbers, status, candles."""

    def __init__(self, int symbol_id, Py_ssize_t replay_window):
        cdef int i
        self.symbol_id = symbol_id
        self.orders = {}
        self.bids = {}
        self.asks = {}
        self.next_ref = 1
        self._topics = [b""] * N_CH
        self._windows = [None] * N_CH
        self.windows = {}
        for ch in Channel:
            self._topics[int(ch)] = topic(ch, symbol_id)
            self.windows[int(ch)] = self._windows[int(ch)] = deque(maxlen=replay_window)
        for i in range(N_CH):
            self._seq[i] = 0
        for i in range(6):
            self._bbo[i] = 0
        for i in range(N_IV):
            self._c_live[i] = 0
        self.config = ()
        self.halted = False
        self.status_raw = b""
        self.candle_last_raw = {}
        self.candle_history = {iv: deque(maxlen=CANDLE_HISTORY_MAX) for iv in CANDLE_INTERVALS_S}
        self.trades = deque(maxlen=RECENT_TRADES_MAX)

    @property
    def seqs(self):
        """Last ``channel_seq`` by channel value."""
        return {int(ch): self._seq[int(ch)] for ch in Channel}

    @property
    def topics(self):
        """ZeroMQ topic by channel value."""
        return {int(ch): self._topics[int(ch)] for ch in Channel}

    @property
    def bbo(self):
        """(bid price, bid lots, bid orders, ask price, ask lots, ask orders) as published."""
        return tuple(self._bbo[i] for i in range(6))

    @property
    def candles(self):
        """The in-progress candle of each interval (None: no trade in the current bucket)."""
        cdef int i
        out = {}
        for i in range(N_IV):
            out[IV_S[i]] = (
                Candle(self._c_start[i], self._c_open[i], self._c_high[i], self._c_low[i],
                       self._c_close[i], self._c_vol[i], self._c_qv[i], self._c_trades[i])
                if self._c_live[i] else None
            )
        return out

    def side_levels(self, int side):
        """The levels of a side, by price."""
        return self.bids if side == BUY else self.asks

    def level_state(self, int side, int64_t price):
        """(total lots, order count) of a level; (0, 0) when it does not exist."""
        cdef Level lv = (self.bids if side == BUY else self.asks).get(price)
        if lv is None:
            return (0, 0)
        return (lv.qty, len(lv.orders))

    cdef void add(self, Order order) except *:
        cdef dict levels = self.bids if order.side == BUY else self.asks
        cdef Level lv = levels.get(order.price)
        if lv is None:
            lv = Level()
            levels[order.price] = lv
        lv.orders[order.ref] = order
        lv.qty += order.leaves
        self.orders[order.key] = order

    cdef void remove(self, Order order) except *:
        cdef dict levels = self.bids if order.side == BUY else self.asks
        cdef Level lv = levels[order.price]
        del lv.orders[order.ref]
        lv.qty -= order.leaves
        if not lv.orders:
            assert lv.qty == 0, lv.qty
            del levels[order.price]
        del self.orders[order.key]

    cdef void reduce(self, Order order, int64_t lots) except *:
        assert 0 < lots < order.leaves, (lots, order.leaves)
        cdef Level lv = (self.bids if order.side == BUY else self.asks)[order.price]
        lv.qty -= lots
        order.leaves -= lots

    def top(self):
        """(bid price, bid lots, bid orders, ask price, ask lots, ask orders); 0s when empty."""
        cdef int64_t t[6]
        self._top(t)
        return tuple(t[i] for i in range(6))

    cdef void _top(self, int64_t* t) except *:
        cdef Level bl = None, al = None
        cdef int64_t bp = max(self.bids) if self.bids else 0
        cdef int64_t ap = min(self.asks) if self.asks else 0
        if self.bids:
            bl = self.bids[bp]
        if self.asks:
            al = self.asks[ap]
        t[0] = bp
        t[1] = bl.qty if bl is not None else 0
        t[2] = len(bl.orders) if bl is not None else 0
        t[3] = ap
        t[4] = al.qty if al is not None else 0
        t[5] = len(al.orders) if al is not None else 0

    def l2(self, int depth=0):
        """Bids and asks as ``[price, lots, orders]`` best first (depth 0 = all)."""
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        if depth > 0:
            bids, asks = bids[:depth], asks[:depth]
        return (
            [[p, (<Level>lv).qty, len((<Level>lv).orders)] for p, lv in bids],
            [[p, (<Level>lv).qty, len((<Level>lv).orders)] for p, lv in asks],
        )

    def l3(self):
        """Every resting order ``[ref, side, price, lots]``: bids best first, then asks."""
        out = []
        for levels, rev in ((self.bids, True), (self.asks, False)):
            for p in sorted(levels, reverse=rev):
                out += [[(<Order>o).ref, (<Order>o).side, p, (<Order>o).leaves]
                        for o in (<Level>levels[p]).orders.values()]
        return out


cdef class Feed:
    """Core events -> feed messages, with the state the service answers from.

    Parameters
    ----------
    replay_window : int
        Messages kept per (channel, symbol) for replay requests (bounded memory).
    """

    def __init__(self, Py_ssize_t replay_window=REPLAY_WINDOW_DEFAULT):
        assert replay_window > 0
        self.replay_window = replay_window
        self.symbols = {}
        self._by_id = [None] * 65536
        self.asset_decimals = {}
        self.core_seq = 0
        self.out = []
        self._seq = 0
        self._ts = 0
        self._p_sb = None
        self._touched = {}
        self._traded = {}
        self._next_close_ns = NEVER

    # ------------------------------------------------------------------ input

    def apply_events(self, events, uint64_t last_seq):
        """Apply the events of commands up to ``last_seq`` (sorted by seq; commands at or
        before :attr:`core_seq` are skipped, so duplicate delivery is harmless)."""
        cdef cnp.ndarray arr = events
        if arr.dtype != EV_DTYPE or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(events, dtype=EV_DTYPE)
        cdef const EvRec* recs = <const EvRec*> cnp.PyArray_DATA(arr)
        cdef Py_ssize_t i, n = arr.shape[0]
        cdef uint64_t seq, core_seq = self.core_seq
        cdef bint started = False
        cdef uint64_t cur = 0
        for i in range(n):
            seq = recs[i].seq
            if seq <= core_seq:
                continue
            if not started or seq != cur:
                if started:
                    self._end_command()
                started = True
                cur = seq
                self._begin_command(seq, recs[i].ts_ns)
            self._event(&recs[i])
        if started:
            self._end_command()
        if last_seq > self.core_seq:
            self.core_seq = last_seq

    def take(self):
        """The ``(topic, message)`` pairs produced since the last call, in order."""
        out = self.out
        self.out = []
        return out

    # ---------------------------------------------------------------- commands

    cdef void _begin_command(self, uint64_t seq, uint64_t ts) except *:
        self._seq = seq
        self._ts = ts
        if ts >= self._next_close_ns:
            self._close_candles(ts)

    cdef void _end_command(self) except *:
        cdef SymbolBook sb
        cdef Level lv
        cdef int side, i
        cdef int64_t price, best, q
        cdef Py_ssize_t cnt
        cdef tuple k, before
        cdef dict top_books
        cdef int64_t t[6]
        cdef bint changed
        if self._p_sb is not None:
            self._rest_pending()
        if self._touched:
            # Books whose top may have moved: a touched level at or better than the
            # published best (or a side that was empty); others skip the O(levels) scan.
            top_books = {}
            for k, before in self._touched.items():
                sb = <SymbolBook>k[0]
                side = k[1]
                price = k[2]
                lv = (sb.bids if side == BUY else sb.asks).get(price)
                if lv is not None:
                    q = lv.qty
                    cnt = len(lv.orders)
                else:
                    q = 0
                    cnt = 0
                if q != <int64_t>before[0] or cnt != <Py_ssize_t>before[1]:
                    self._emit_l2(sb, price, q, cnt, side)
                    best = sb._bbo[0] if side == BUY else sb._bbo[3]
                    if not best or (price >= best if side == BUY else price <= best):
                        top_books[sb] = None
            self._touched.clear()
            for sb in top_books:
                sb._top(t)
                changed = False
                for i in range(6):
                    if t[i] != sb._bbo[i]:
                        changed = True
                if changed:
                    for i in range(6):
                        sb._bbo[i] = t[i]
                    self._emit_bbo(sb)
        if self._traded:
            for sb in self._traded:
                for i in range(N_IV):
                    assert sb._c_live[i]
                    sb.candle_last_raw[IV_S[i]] = self._emit_candle(sb, i, 0)
            self._traded.clear()

    # ------------------------------------------------------------------ events

    cdef inline SymbolBook _sym(self, uint16_t sid):
        return <SymbolBook>self._by_id[sid]

    cdef void _event(self, const EvRec* ev) except *:
        cdef uint8_t kind = ev.kind
        cdef SymbolBook sb
        if kind == K_TRADE:
            self._trade(ev)
        elif kind == K_ACCEPTED:
            self._rest_pending()
            sb = self._sym(ev.symbol_id)
            if sb is not None and ev.ord_type == O_LIMIT:
                self._set_pending(sb, (ev.user_id, ev.order_id), ev.side, ev.price_ticks,
                                  ev.leaves_lots, None)
        elif kind == K_CANCELED:
            self._canceled(ev)
        elif kind == K_REDUCED:
            self._reduced(ev)
        elif kind == K_REPLACED:
            self._rest_pending()
            self._replaced(ev)
        elif kind == K_TRIGGERED:
            self._rest_pending()
            sb = self._sym(ev.symbol_id)
            if sb is not None and ev.ord_type == O_STOP_LIMIT:
                self._set_pending(sb, (ev.user_id, ev.order_id), ev.side, ev.price_ticks,
                                  ev.qty_lots, None)
        elif kind == K_SYMBOL_ADDED:
            self._symbol_added(ev)
        elif kind == K_ASSET_ADDED:
            self.asset_decimals[ev.symbol_id] = ev.qty_lots
        elif kind == K_HALTED or kind == K_RESUMED:
            sb = self._sym(ev.symbol_id)
            if sb is not None:
                sb.halted = kind == K_HALTED
                self._emit_status(sb)

    cdef inline void _set_pending(self, SymbolBook sb, tuple key, int side, int64_t price,
                                  int64_t leaves, Order replacing) except *:
        self._p_sb = sb
        self._p_key = key
        self._p_side = side
        self._p_price = price
        self._p_leaves = leaves
        self._p_replacing = replacing

    cdef void _trade(self, const EvRec* ev) except *:
        cdef SymbolBook sb = self._sym(ev.symbol_id)
        cdef Order maker
        cdef int64_t leaves
        cdef int64_t price = ev.price_ticks, qty = ev.qty_lots
        if sb is None:
            return
        if self._p_sb is not None:
            if self._p_key == (ev.user_id, ev.order_id):
                self._p_leaves = ev.leaves_lots
                if self._p_replacing is not None:
                    # The replaced order trades on its new price: it left the book.
                    self._withdraw(self._p_sb, self._p_replacing)
                    self._p_replacing = None
            else:
                self._rest_pending()
        maker = sb.orders.get((ev.maker_user_id, ev.maker_order_id))
        if maker is not None:
            self._touch(sb, maker.side, maker.price)
            leaves = maker.leaves - qty
            if leaves <= 0:
                sb.remove(maker)
                leaves = 0
            else:
                sb.reduce(maker, qty)
            self._emit_exec(sb, maker.ref, price, qty, leaves, ev.match_id, maker.side)
        sb.trades.append(self._emit_trade(sb, ev.match_id, price, qty, ev.side))
        self._candle_trade(sb, price, qty)

    cdef void _canceled(self, const EvRec* ev) except *:
        cdef tuple key = (ev.user_id, ev.order_id)
        cdef SymbolBook sb
        cdef Order order
        if self._p_sb is not None and self._p_key == key:
            if self._p_replacing is not None:
                self._withdraw(self._p_sb, self._p_replacing)
            self._p_sb = None
            self._p_replacing = None
            return
        sb = self._sym(ev.symbol_id)
        if sb is None:
            return
        order = sb.orders.get(key)
        if order is not None:
            self._withdraw(sb, order)

    cdef void _reduced(self, const EvRec* ev) except *:
        cdef tuple key = (ev.user_id, ev.order_id)
        cdef SymbolBook sb
        cdef Order order
        cdef int64_t removed
        if self._p_sb is not None and self._p_key == key:
            self._p_leaves = ev.leaves_lots
            return
        sb = self._sym(ev.symbol_id)
        if sb is None:
            return
        order = sb.orders.get(key)
        if order is None:
            return
        removed = order.leaves - ev.leaves_lots
        self._touch(sb, order.side, order.price)
        sb.reduce(order, removed)
        self._emit_cancel(sb, order.ref, order.price, removed, order.leaves, order.side)

    cdef void _replaced(self, const EvRec* ev) except *:
        cdef SymbolBook sb = self._sym(ev.symbol_id)
        cdef tuple key = (ev.user_id, ev.order_id)
        cdef Order order
        cdef int64_t price = ev.price_ticks, new_leaves = ev.leaves_lots, removed
        if sb is None:
            return
        order = sb.orders.get(key)
        if order is None:
            return
        if price == order.price and new_leaves < order.leaves:
            # Same price, smaller: keeps its place in the queue (docs/book.md).
            removed = order.leaves - new_leaves
            self._touch(sb, order.side, price)
            sb.reduce(order, removed)
            self._emit_cancel(sb, order.ref, price, removed, new_leaves, order.side)
            return
        # Loses priority: off the book now, public REPLACE (or DELETE) once it rests or trades.
        self._touch(sb, order.side, order.price)
        sb.remove(order)
        self._set_pending(sb, key, order.side, price, new_leaves, order)

    cdef void _symbol_added(self, const EvRec* ev) except *:
        cdef uint16_t sid = ev.symbol_id
        cdef SymbolBook sb
        if sid in self.symbols:
            return
        sb = SymbolBook(sid, self.replay_window)
        self.symbols[sid] = sb
        self._by_id[sid] = sb
        steps = ev.order_id
        base, quote = ev.user_id, ev.maker_user_id
        sb.config = (
            steps & 0xFFFFFFFF,
            steps >> 32,
            ev.maker_order_id,
            ev.qty_lots,
            ev.price_ticks,
            ev.leaves_lots,
            ev.taker_fee,
            ev.maker_fee,
            base,
            quote,
            self.asset_decimals.get(base, 0),
            self.asset_decimals.get(quote, 0),
        )
        self._emit_status(sb)

    # ----------------------------------------------------------------- helpers

    cdef inline void _touch(self, SymbolBook sb, int side, int64_t price) except *:
        """Remember a level's state before its first change in this command."""
        cdef tuple k = (sb, side, price)
        cdef Level lv
        if k not in self._touched:
            lv = (sb.bids if side == BUY else sb.asks).get(price)
            if lv is None:
                self._touched[k] = (0, 0)
            else:
                self._touched[k] = (lv.qty, len(lv.orders))

    cdef void _withdraw(self, SymbolBook sb, Order order) except *:
        """Public L3_DELETE of a whole order (off the internal book if still on it)."""
        self._touch(sb, order.side, order.price)
        if sb.orders.get(order.key) is order:
            sb.remove(order)
        self._emit_add(sb, M_DELETE, order.ref, order.price, order.leaves, order.side)

    cdef void _rest_pending(self) except *:
        cdef SymbolBook sb = self._p_sb
        cdef Order order, old
        cdef int64_t ref
        if sb is None:
            return
        self._p_sb = None
        old = self._p_replacing
        self._p_replacing = None
        if self._p_leaves <= 0:
            return
        ref = sb.next_ref
        sb.next_ref += 1
        order = Order(ref, self._p_key, self._p_side, self._p_price, self._p_leaves)
        self._touch(sb, order.side, order.price)
        sb.add(order)
        if old is None:
            self._emit_add(sb, M_ADD, ref, order.price, order.leaves, order.side)
        else:
            self._emit_replace(sb, old, order)

    # ---------------------------------------------------------------- encoding

    cdef inline bytes _new(self, SymbolBook sb, uint8_t mtype, int ch, uint32_t size, char** body):
        """A message of ``size`` body bytes with its header filled and the next seq."""
        cdef bytes raw = PyBytes_FromStringAndSize(NULL, sizeof(Hdr) + size)
        cdef char* p = PyBytes_AS_STRING(raw)
        cdef Hdr* h = <Hdr*> p
        sb._seq[ch] += 1
        h.msg_type = mtype
        h.channel = ch
        h.symbol_id = sb.symbol_id
        h.body_size = size
        h.channel_seq = sb._seq[ch]
        h.core_seq = self._seq
        h.ts_ns = self._ts
        body[0] = p + sizeof(Hdr)
        return raw

    cdef inline void _queue(self, SymbolBook sb, int ch, bytes raw) except *:
        """Keep (replay window) and queue one message."""
        sb._windows[ch].append(raw)
        self.out.append((sb._topics[ch], raw))

    cdef void _emit_add(self, SymbolBook sb, uint8_t mtype, int64_t ref, int64_t price,
                        int64_t qty, int side) except *:
        cdef char* p
        cdef bytes raw = self._new(sb, mtype, CH_L3, sizeof(BAdd), &p)
        cdef BAdd* b = <BAdd*> p
        b.ref = ref
        b.price = price
        b.qty = qty
        b.side = side
        self._queue(sb, CH_L3, raw)

    cdef void _emit_exec(self, SymbolBook sb, int64_t ref, int64_t price, int64_t qty,
                         int64_t leaves, uint64_t match_id, int side) except *:
        cdef char* p
        cdef bytes raw = self._new(sb, M_EXEC, CH_L3, sizeof(BExec), &p)
        cdef BExec* b = <BExec*> p
        b.ref = ref
        b.price = price
        b.qty = qty
        b.leaves = leaves
        b.match_id = match_id
        b.side = side
        self._queue(sb, CH_L3, raw)

    cdef void _emit_cancel(self, SymbolBook sb, int64_t ref, int64_t price, int64_t qty,
                           int64_t leaves, int side) except *:
        cdef char* p
        cdef bytes raw = self._new(sb, M_CANCEL, CH_L3, sizeof(BCancel), &p)
        cdef BCancel* b = <BCancel*> p
        b.ref = ref
        b.price = price
        b.qty = qty
        b.leaves = leaves
        b.side = side
        self._queue(sb, CH_L3, raw)

    cdef void _emit_replace(self, SymbolBook sb, Order old, Order new) except *:
        cdef char* p
        cdef bytes raw = self._new(sb, M_REPLACE, CH_L3, sizeof(BReplace), &p)
        cdef BReplace* b = <BReplace*> p
        b.old_ref = old.ref
        b.ref = new.ref
        b.old_price = old.price
        b.old_qty = old.leaves
        b.price = new.price
        b.qty = new.leaves
        b.side = new.side
        self._queue(sb, CH_L3, raw)

    cdef void _emit_l2(self, SymbolBook sb, int64_t price, int64_t qty, Py_ssize_t n,
                       int side) except *:
        cdef char* p
        cdef bytes raw = self._new(sb, M_L2, CH_L2, sizeof(BL2), &p)
        cdef BL2* b = <BL2*> p
        b.price = price
        b.qty = qty
        b.n_orders = <uint32_t> n
        b.side = side
        self._queue(sb, CH_L2, raw)

    cdef bytes _emit_trade(self, SymbolBook sb, uint64_t match_id, int64_t price, int64_t qty,
                           int side):
        cdef char* p
        cdef bytes raw = self._new(sb, M_TRADE, CH_TRADES, sizeof(BTrade), &p)
        cdef BTrade* b = <BTrade*> p
        b.match_id = match_id
        b.price = price
        b.qty = qty
        b.side = side
        self._queue(sb, CH_TRADES, raw)
        return raw

    cdef void _emit_bbo(self, SymbolBook sb) except *:
        cdef char* p
        cdef bytes raw = self._new(sb, M_BBO, CH_BBO, sizeof(BBbo), &p)
        cdef BBbo* b = <BBbo*> p
        b.bid_price = sb._bbo[0]
        b.bid_qty = sb._bbo[1]
        b.ask_price = sb._bbo[3]
        b.ask_qty = sb._bbo[4]
        b.bid_orders = <uint32_t> sb._bbo[2]
        b.ask_orders = <uint32_t> sb._bbo[5]
        self._queue(sb, CH_BBO, raw)

    cdef bytes _emit_candle(self, SymbolBook sb, int i, uint8_t closed):
        cdef char* p
        cdef bytes raw = self._new(sb, M_CANDLE, CH_CANDLES, sizeof(BCandle), &p)
        cdef BCandle* b = <BCandle*> p
        b.start_ns = sb._c_start[i]
        b.open = sb._c_open[i]
        b.high = sb._c_high[i]
        b.low = sb._c_low[i]
        b.close = sb._c_close[i]
        b.volume = sb._c_vol[i]
        b.quote_volume = sb._c_qv[i]
        b.trades = sb._c_trades[i]
        b.interval_s = <uint32_t> IV_S[i]
        b.closed = closed
        self._queue(sb, CH_CANDLES, raw)
        return raw

    cdef void _emit_status(self, SymbolBook sb) except *:
        # Rare (symbol added, halted, resumed): the struct codec is fast enough.
        st = SymbolStatus.HALTED if sb.halted else SymbolStatus.TRADING
        sb._seq[CH_STATUS] += 1
        raw = _STATUS_PACK(M_STATUS, CH_STATUS, sb.symbol_id, _STATUS_SIZE, sb._seq[CH_STATUS],
                           self._seq, self._ts, *sb.config, int(st))
        self._queue(sb, CH_STATUS, raw)
        sb.status_raw = raw

    # ----------------------------------------------------------------- candles

    cdef void _candle_trade(self, SymbolBook sb, int64_t price, int64_t qty) except *:
        cdef uint64_t ts = self._ts, span, start
        cdef int64_t pq
        cdef int i
        for i in range(N_IV):
            span = IV_S[i] * NS
            start = ts - ts % span
            if not sb._c_live[i] or sb._c_start[i] != start:
                if sb._c_live[i]:  # only if time went backwards in the stream
                    self._close_one(sb, i)
                sb._c_live[i] = 1
                sb._c_start[i] = start
                sb._c_open[i] = price
                sb._c_high[i] = price
                sb._c_low[i] = price
                sb._c_close[i] = price
                sb._c_vol[i] = 0
                sb._c_qv[i] = 0
                sb._c_trades[i] = 0
                if start + span < self._next_close_ns:
                    self._next_close_ns = start + span
            if price > sb._c_high[i]:
                sb._c_high[i] = price
            if price < sb._c_low[i]:
                sb._c_low[i] = price
            sb._c_close[i] = price
            # Both sums saturate at the i64 field's maximum instead of wrapping: one
            # trade's price x qty fits (the core refuses a notional that would not), a
            # day of them may not.  docs/marketdata.md states the rule.
            sb._c_vol[i] = INT64_MAX if sb._c_vol[i] > INT64_MAX - qty else sb._c_vol[i] + qty
            pq = price * qty
            sb._c_qv[i] = INT64_MAX if sb._c_qv[i] > INT64_MAX - pq else sb._c_qv[i] + pq
            sb._c_trades[i] += 1
        self._traded[sb] = None

    cdef void _close_candles(self, uint64_t ts) except *:
        """Close every candle whose bucket ended at or before ``ts``."""
        cdef uint64_t nxt = NEVER, end
        cdef SymbolBook sb
        cdef int i
        for sb in self.symbols.values():
            for i in range(N_IV):
                if not sb._c_live[i]:
                    continue
                end = sb._c_start[i] + IV_S[i] * NS
                if end <= ts:
                    self._close_one(sb, i)
                elif end < nxt:
                    nxt = end
        self._next_close_ns = nxt

    cdef void _close_one(self, SymbolBook sb, int i) except *:
        raw = self._emit_candle(sb, i, 1)
        sb.candle_history[IV_S[i]].append(raw)
        sb.candle_last_raw.pop(IV_S[i], None)
        sb._c_live[i] = 0


def group_parts(list out, Py_ssize_t part_max, int64_t drop_every=0, int64_t sent=0):
    """Cut ``(topic, message)`` pairs into PUB parts: per topic (first-seen order), its
    messages back to back in order, at most ``part_max`` bytes a part (a longer message
    gets a part of its own).  TESTS ONLY ``drop_every``: every N-th message counted from
    ``sent`` is left out.  Returns ``(parts, sent, dropped)``, parts as ``(topic, bytes)``."""
    cdef dict groups = {}
    cdef list g, part, parts = []
    cdef tuple item
    cdef bytes raw
    cdef Py_ssize_t size
    cdef int64_t dropped = 0
    for item in out:
        sent += 1
        if drop_every and sent % drop_every == 0:
            dropped += 1
            continue
        g = groups.get(item[0])
        if g is None:
            groups[item[0]] = [item[1]]
        else:
            g.append(item[1])
    for tp, g in groups.items():
        if len(g) == 1:
            parts.append((tp, g[0]))
            continue
        part = []
        size = 0
        for raw in g:
            if size + len(raw) > part_max and part:
                parts.append((tp, b"".join(part)))
                part = []
                size = 0
            part.append(raw)
            size += len(raw)
        parts.append((tp, b"".join(part)))
    return parts, sent, dropped
