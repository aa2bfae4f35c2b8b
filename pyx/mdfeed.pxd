from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from pyx.records cimport EvRec


cdef class Order:
    """A resting order as the feed sees it (public ref, core key, side, price, open lots)."""
    cdef public int64_t ref
    cdef public tuple key           # (user_id, order_id) in the core
    cdef public int side
    cdef public int64_t price
    cdef public int64_t leaves


cdef class Level:
    """One price level: total open lots and its orders by ref in priority order."""
    cdef public int64_t qty
    cdef public dict orders


cdef class Candle:
    """An in-progress candle (a Python view; the feed keeps candles in C arrays)."""
    cdef public uint64_t start_ns
    cdef public int64_t open, high, low, close, volume, quote_volume
    cdef public uint64_t trades


cdef class SymbolBook:
    """Book, sequence numbers, replay windows, status and candles of one symbol."""
    cdef public int symbol_id
    cdef public dict orders         # (user_id, order_id) -> Order
    cdef public dict bids, asks     # price -> Level
    cdef public int64_t next_ref
    cdef public dict windows        # channel -> deque of messages (replay window)
    cdef public tuple config
    cdef public bint halted
    cdef public bytes status_raw
    cdef public dict candle_last_raw
    cdef public dict candle_history
    cdef public object trades
    cdef list _topics               # by channel value
    cdef list _windows              # by channel value (the deques of ``windows``)
    cdef uint64_t _seq[7]           # last channel_seq by channel value
    cdef int64_t _bbo[6]            # published top
    # In-progress candle per interval index (CANDLE_INTERVALS_S order).
    cdef uint8_t _c_live[7]
    cdef uint64_t _c_start[7]
    cdef int64_t _c_open[7]
    cdef int64_t _c_high[7]
    cdef int64_t _c_low[7]
    cdef int64_t _c_close[7]
    cdef int64_t _c_vol[7]
    cdef int64_t _c_qv[7]
    cdef uint64_t _c_trades[7]

    cdef void add(self, Order order) except *
    cdef void remove(self, Order order) except *
    cdef void reduce(self, Order order, int64_t lots) except *
    cdef void _top(self, int64_t* t) except *


cdef class Feed:
    """Core events -> feed messages, with the state the service answers from."""
    cdef public Py_ssize_t replay_window
    cdef public dict symbols
    cdef public dict asset_decimals
    cdef public uint64_t core_seq
    cdef public list out
    cdef list _by_id                # symbol id -> SymbolBook or None
    cdef uint64_t _seq, _ts, _next_close_ns
    cdef dict _touched, _traded
    # The pending taker (see marketdata/feed.py); _p_sb None when there is none.
    cdef SymbolBook _p_sb
    cdef tuple _p_key
    cdef int _p_side
    cdef int64_t _p_price, _p_leaves
    cdef Order _p_replacing

    cdef void _begin_command(self, uint64_t seq, uint64_t ts) except *
    cdef void _end_command(self) except *
    cdef SymbolBook _sym(self, uint16_t sid)
    cdef void _event(self, const EvRec* ev) except *
    cdef void _set_pending(self, SymbolBook sb, tuple key, int side, int64_t price,
                           int64_t leaves, Order replacing) except *
    cdef void _trade(self, const EvRec* ev) except *
    cdef void _canceled(self, const EvRec* ev) except *
    cdef void _reduced(self, const EvRec* ev) except *
    cdef void _replaced(self, const EvRec* ev) except *
    cdef void _symbol_added(self, const EvRec* ev) except *
    cdef void _touch(self, SymbolBook sb, int side, int64_t price) except *
    cdef void _withdraw(self, SymbolBook sb, Order order) except *
    cdef void _rest_pending(self) except *
    cdef bytes _new(self, SymbolBook sb, uint8_t mtype, int ch, uint32_t size, char** body)
    cdef void _queue(self, SymbolBook sb, int ch, bytes raw) except *
    cdef void _emit_add(self, SymbolBook sb, uint8_t mtype, int64_t ref, int64_t price,
                        int64_t qty, int side) except *
    cdef void _emit_exec(self, SymbolBook sb, int64_t ref, int64_t price, int64_t qty,
                         int64_t leaves, uint64_t match_id, int side) except *
    cdef void _emit_cancel(self, SymbolBook sb, int64_t ref, int64_t price, int64_t qty,
                           int64_t leaves, int side) except *
    cdef void _emit_replace(self, SymbolBook sb, Order old, Order new) except *
    cdef void _emit_l2(self, SymbolBook sb, int64_t price, int64_t qty, Py_ssize_t n,
                       int side) except *
    cdef bytes _emit_trade(self, SymbolBook sb, uint64_t match_id, int64_t price, int64_t qty,
                           int side)
    cdef void _emit_bbo(self, SymbolBook sb) except *
    cdef bytes _emit_candle(self, SymbolBook sb, int i, uint8_t closed)
    cdef void _emit_status(self, SymbolBook sb) except *
    cdef void _candle_trade(self, SymbolBook sb, int64_t price, int64_t qty) except *
    cdef void _close_candles(self, uint64_t ts) except *
    cdef void _close_one(self, SymbolBook sb, int i) except *
