# cython: language_level=3
"""The API's event follower in Cython: a frame of core events applied from its bytes.

:meth:`Applier.apply` does for one frame of ``EV_DTYPE`` records exactly what
``api.follow.Follower.apply_events_py`` does (``events.tolist()``, then
``Follower.apply`` on each tuple: that Python code is the oracle, and
tests/api/test_apifollow.py holds the two to the same store state, the same
``Update`` objects and the same SQL writes over random event sequences with
hypothesis), but reads each record's fields straight from the frame's bytes, without
a tuple per event, and applies the common kinds here:

- ``ACCEPTED`` (an order entered here, or elsewhere: the gateway's orders are
  created as ``core.<orderId>`` as in Python);
- ``TRADE`` (both sides: a ``Fill`` each, the store's trade row, the orders' fills);
- ``CANCELED`` of any reason.

Every other kind (rejects, amends, funding, assets, symbols, anything unknown) is
handed, in order, to ``follower.apply`` as the same tuple ``tolist`` gives.  Orders,
fills and updates stay the Python objects of ``api.store`` / ``api.follow`` (their
classes and name tables are given to :class:`Applier`: pyx sits below ``api`` in the
layering and imports nothing of it); the store is changed only through its methods
(``add``, ``save``, ``add_trade``), so what it writes is what Python's calls write.

The record layout is ``bursa_wire.layout.EV_DTYPE``'s: every offset below is read
from the dtype at import, and the C type each field is read as is checked against
the dtype's type there (a layout change fails the import, never misreads).
"""

cimport cython
cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from pyx.core cimport ORDER_ID_LANE_SHIFT

import sys

import numpy as np

from bursa_wire.layout import EV_DTYPE
from pyx.enums import EvFlag, EvKind, OrdType, Reason, Side

cnp.import_array()

# The fields read here and the C type each is read as (numpy's code without the byte
# order): the offsets come from EV_DTYPE itself.
_READ_AS = {
    "ts_ns": "u8", "order_id": "u8", "maker_order_id": "u8", "price_ticks": "i8",
    "qty_lots": "i8", "match_id": "u8", "taker_fee": "i8", "maker_fee": "i8",
    "user_id": "u4", "maker_user_id": "u4", "symbol_id": "u2", "reason": "u2",
    "kind": "u1", "side": "u1", "flags": "u1", "ord_type": "u1",
}


def _offset(str name):
    """The byte offset of ``name`` in an ``EV_DTYPE`` record; ImportError if its type
    is not the one this module reads it as (little-endian)."""
    dt, off = EV_DTYPE.fields[name][:2]
    code = _READ_AS[name]
    if dt.str[1:] != code or (dt.itemsize > 1 and dt.str[0] != "<"):
        raise ImportError(f"EV_DTYPE field {name!r} is {dt.str}, read as {code}: "
                          "update pyx/apifollow.pyx")
    return off


if sys.byteorder != "little":
    raise ImportError("pyx.apifollow reads little-endian records in place")

cdef Py_ssize_t EV_SIZE = EV_DTYPE.itemsize
cdef Py_ssize_t O_TS = _offset("ts_ns")
cdef Py_ssize_t O_OID = _offset("order_id")
cdef Py_ssize_t O_MOID = _offset("maker_order_id")
cdef Py_ssize_t O_PRICE = _offset("price_ticks")
cdef Py_ssize_t O_QTY = _offset("qty_lots")
cdef Py_ssize_t O_MATCH = _offset("match_id")
cdef Py_ssize_t O_TFEE = _offset("taker_fee")
cdef Py_ssize_t O_MFEE = _offset("maker_fee")
cdef Py_ssize_t O_USER = _offset("user_id")
cdef Py_ssize_t O_MUSER = _offset("maker_user_id")
cdef Py_ssize_t O_SYM = _offset("symbol_id")
cdef Py_ssize_t O_REASON = _offset("reason")
cdef Py_ssize_t O_KIND = _offset("kind")
cdef Py_ssize_t O_SIDE = _offset("side")
cdef Py_ssize_t O_FLAGS = _offset("flags")
cdef Py_ssize_t O_OTYPE = _offset("ord_type")

# Bit 39 of an order id: the Binance API's lane (api.store.API_ID_BASE).
cdef uint64_t API_LANE_BIT = (<uint64_t>1) << ORDER_ID_LANE_SHIFT
cdef uint8_t K_ACCEPTED = int(EvKind.ACCEPTED)
cdef uint8_t K_TRADE = int(EvKind.TRADE)
cdef uint8_t K_CANCELED = int(EvKind.CANCELED)
cdef uint8_t F_TAKER_DONE = int(EvFlag.TAKER_DONE)
cdef uint8_t F_MAKER_DONE = int(EvFlag.MAKER_DONE)
cdef uint8_t T_MARKET_QUOTE = int(OrdType.MARKET_QUOTE)
cdef uint8_t S_BUY = int(Side.BUY)
cdef uint16_t R_BUDGET_EXHAUSTED = int(Reason.BUDGET_EXHAUSTED)
cdef uint16_t R_SELF_TRADE = int(Reason.SELF_TRADE)


cdef inline uint64_t _u64(const char* p, Py_ssize_t off) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p + off, 8)
    return v


cdef inline int64_t _i64(const char* p, Py_ssize_t off) noexcept nogil:
    cdef int64_t v
    memcpy(&v, p + off, 8)
    return v


cdef inline uint32_t _u32(const char* p, Py_ssize_t off) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p + off, 4)
    return v


cdef inline uint16_t _u16(const char* p, Py_ssize_t off) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p + off, 2)
    return v


cdef class Applier:
    """Applies frames of core events to ``follower`` (module docstring).

    ``order_cls``, ``fill_cls`` and ``update_cls`` are ``api.store.Order``,
    ``api.store.Fill`` and ``api.follow.Update``; ``side_name`` and ``type_name``
    the follower's core -> Binance name tables; ``expired_reasons`` the cancel
    reasons Binance calls ``EXPIRED``.  ``compiled`` and ``fallback`` count the
    events applied here and those handed to ``follower.apply``.
    """

    cdef object follower, order_cls, fill_cls, update_cls, expired_reasons
    cdef dict side_name, type_name
    cdef readonly long long compiled, fallback
    # The follower's and its store's state, loaded at the start of each frame and
    # after each event handed to Python (which may change any of it; the store's
    # bound methods only when the follower has another store).
    cdef object store, watched, updates, balances, probing, save, add, add_trade
    cdef dict open, symbols

    def __init__(self, follower, order_cls, fill_cls, update_cls, dict side_name,
                 dict type_name, expired_reasons):
        self.follower = follower
        self.order_cls = order_cls
        self.fill_cls = fill_cls
        self.update_cls = update_cls
        self.side_name = side_name
        self.type_name = type_name
        self.expired_reasons = expired_reasons
        self.compiled = 0
        self.fallback = 0

    cdef int _load(self) except -1:
        f = self.follower
        st = f.store
        if st is not self.store:
            # The store's bound methods: made once per store, not once per frame.
            self.store = st
            self.save = st.save
            self.add = st.add
            self.add_trade = st.add_trade
        self.open = st.open
        self.symbols = st.symbols
        self.watched = f.watched
        self.updates = f.updates
        self.balances = f.balances
        self.probing = f.probing
        return 0

    cdef void _unload(self) noexcept:
        """Drop the references to the follower's per-batch collections (the user data
        streams swap them for new ones between batches)."""
        self.updates = None
        self.balances = None
        self.probing = None

    def apply(self, events):
        """Apply one frame's ``EV_DTYPE`` records, in order (module docstring)."""
        cdef cnp.ndarray arr = events
        # The C macro, not ``arr.flags.c_contiguous`` (a flags object per frame).
        if (arr.dtype is not EV_DTYPE and arr.dtype != EV_DTYPE
                or not cnp.PyArray_IS_C_CONTIGUOUS(arr)):
            arr = np.ascontiguousarray(events, dtype=EV_DTYPE)
        cdef Py_ssize_t i, n = arr.shape[0]
        if n == 0:
            return
        cdef const char* base = <const char*>cnp.PyArray_DATA(arr)
        cdef const char* p
        cdef uint8_t kind
        self._load()
        try:
            for i in range(n):
                p = base + i * EV_SIZE
                kind = <uint8_t>p[O_KIND]
                if kind == K_TRADE:
                    self._trade(p)
                elif kind == K_ACCEPTED:
                    self._accepted(p)
                elif kind == K_CANCELED:
                    self._canceled(p)
                else:
                    self.fallback += 1
                    self.follower.apply(arr[i].item())
                    self._load()
                    continue
                self.compiled += 1
        finally:
            self._unload()

    cdef inline bint _is_watched(self, object uid) except -1:
        w = self.watched
        return w is None or uid in w

    cdef int _touch(self, object o) except -1:
        """``Follower._touch``: both assets of the order's symbol changed for its user."""
        cfg = self.symbols.get(o.symbol_id)
        if cfg:
            b, q = cfg["base_asset_id"], cfg["quote_asset_id"]
        else:
            b, q = 0, 0
        uid = o.user_id
        self.balances.add((uid, b))
        self.balances.add((uid, q))
        return 0

    cdef int _accepted(self, const char* p) except -1:
        """``Follower._order_event`` of an ACCEPTED."""
        cdef uint8_t otype
        uid = _u32(p, O_USER)
        oid = _u64(p, O_OID)
        o = self.open.get((uid, oid))
        ts_ms = _u64(p, O_TS) // 1_000_000
        if o is None:
            otype = <uint8_t>p[O_OTYPE]
            # An order the store does not know: the gateway's (``core.<id>``) or an
            # API order whose intent image was lost (its generated id):
            # ``Store.lost_client_id``, as in Python.
            o = self.order_cls(
                uid, oid, _u16(p, O_SYM), self.store.lost_client_id(uid, oid),
                self.side_name.get(<uint8_t>p[O_SIDE], "BUY"),
                self.type_name.get(otype, "LIMIT"), "GTC", _i64(p, O_PRICE),
                0 if otype == T_MARKET_QUOTE else _i64(p, O_QTY), 0, 0,
                time_ms=ts_ms, api=bool(oid & API_LANE_BIT))
            self.add(o, durable=False)
        o.status = "NEW"
        o.time_ms = ts_ms
        o.update_ms = ts_ms
        self.save(o)
        if self._is_watched(uid):
            self._touch(o)
            self.updates.append(self.update_cls(o, "NEW", None, ts_ms))
        return 0

    cdef int _canceled(self, const char* p) except -1:
        """``Follower._order_event`` of a CANCELED (any reason)."""
        cdef uint16_t reason
        uid = _u32(p, O_USER)
        oid = _u64(p, O_OID)
        key = (uid, oid)
        o = self.open.get(key)
        if o is None:
            return 0
        ts_ms = _u64(p, O_TS) // 1_000_000
        watched = self._is_watched(uid)
        o.update_ms = ts_ms
        reason = _u16(p, O_REASON)
        if self.probing:
            self.probing.discard(key)
        if reason == R_BUDGET_EXHAUSTED and o.executed > 0:
            # A quoteOrderQty market order that spent its budget: Binance says FILLED.
            o.status = "FILLED"
            exec_type = ""
        elif reason in self.expired_reasons:
            o.status = "EXPIRED"
            exec_type = "EXPIRED"
        elif reason == R_SELF_TRADE:
            o.status = "EXPIRED_IN_MATCH"
            exec_type = "TRADE_PREVENTION"
        else:
            o.status = "CANCELED"
            exec_type = "CANCELED"
        if watched:
            self._touch(o)
            if exec_type:
                self.updates.append(self.update_cls(o, exec_type, None, ts_ms, reason))
        self.save(o)
        return 0

    cdef int _trade(self, const char* p) except -1:
        """``Follower._trade``: the taker's side, then the maker's."""
        cdef uint8_t flags = <uint8_t>p[O_FLAGS]
        cdef bint taker_buys = <uint8_t>p[O_SIDE] == S_BUY
        ts_ms = _u64(p, O_TS) // 1_000_000
        sym = _u16(p, O_SYM)
        price = _i64(p, O_PRICE)
        qty = _i64(p, O_QTY)
        match = _u64(p, O_MATCH)
        cfg = self.symbols.get(sym)
        quote = price * qty * (cfg["price_multiplier"] if cfg else 1)
        self._side(_u32(p, O_USER), _u64(p, O_OID), _i64(p, O_TFEE), False,
                   flags & F_TAKER_DONE, taker_buys, sym, price, qty, match, quote, ts_ms)
        self._side(_u32(p, O_MUSER), _u64(p, O_MOID), _i64(p, O_MFEE), True,
                   flags & F_MAKER_DONE, not taker_buys, sym, price, qty, match, quote, ts_ms)
        return 0

    cdef int _side(self, object uid, object oid, object fee, bint is_maker, bint done,
                   bint is_buyer, object sym, object price, object qty, object match,
                   object quote, object ts_ms) except -1:
        """One side of a TRADE (``Follower._trade``'s loop body)."""
        o = self.open.get((uid, oid))
        f = self.fill_cls(match, price, qty, fee, is_maker, ts_ms)
        self.add_trade(uid, sym, oid, is_buyer, f)
        watched = self._is_watched(uid)
        if watched:
            cfg = self.symbols.get(sym)
            if cfg:
                b, q = cfg["base_asset_id"], cfg["quote_asset_id"]
            else:
                b, q = 0, 0
            self.balances.add((uid, b))
            self.balances.add((uid, q))
        if o is None:
            return 0
        o.executed = o.executed + qty
        o.cum_quote = o.cum_quote + quote
        o.update_ms = ts_ms
        o.status = "FILLED" if done else "PARTIALLY_FILLED"
        if not is_maker:
            o.fills.append(f)  # the taker's fills answer its request (FULL)
        self.save(o)
        if watched:
            self.updates.append(self.update_cls(o, "TRADE", f, ts_ms))
        return 0
