# cython: language_level=3
"""The gateway's hot event -> execution-report path in Cython.

:func:`apply_events` does for a frame of core events exactly what calling
``Gateway.on_event`` on each ``events.tolist()`` row does (that Python method is the
oracle: tests/gateway/test_gwreport.py compares the two over random event flows,
report bytes and order state), but reads the ``EvRec`` records straight from the
numpy frame and packs ACCEPTED and EXECUTED reports through packed C structs.  Only
those two kinds (ACCEPTED and TRADE: almost every event of a busy gateway) are
handled here; every other kind is handed, in order, to ``gw.on_event`` as the same
tuple ``tolist`` would give.  Orders stay the Python objects of ``gateway.store``.
"""

cimport cython

import numpy as np
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from bursa_wire.gw_layout import (
    FRAME_HEAD,
    SEQ_HEAD,
    SEQUENCED,
    BY_NAME,
    LIQUIDITY_MAKER,
    LIQUIDITY_TAKER,
    STATE_FILLED,
    STATE_OPEN,
    STATE_PENDING,
)
from bursa_wire.layout import EV_DTYPE
from pyx.enums import EvFlag, EvKind, OrdType
from pyx.records cimport EvRec
from pyx.gworders cimport Order

cnp.import_array()

cdef packed struct AcceptedMsg:
    uint8_t code
    uint64_t cl_ord_id
    uint64_t ts_ns
    int64_t price_ticks
    int64_t qty_lots
    int64_t leaves_lots
    uint16_t symbol_id
    uint8_t side
    uint8_t ord_type

cdef packed struct SHead:
    uint16_t length              # bytes after this field: type + seq + payload
    uint8_t ftype                # b"S"
    uint64_t seq

cdef packed struct ExecutedMsg:
    uint8_t code
    uint64_t cl_ord_id
    uint64_t ts_ns
    uint64_t match_id
    int64_t price_ticks
    int64_t qty_lots
    int64_t leaves_lots
    int64_t fee_minor
    uint16_t fee_asset_id
    uint16_t symbol_id
    uint8_t side
    uint8_t liquidity


def _check_layout(str name, tuple names, Py_ssize_t size):
    """Fail at import if the layout no longer matches the C struct above."""
    spec = BY_NAME[name]
    if spec.names != names or 1 + spec.struct.size != size:
        raise RuntimeError(f"{name} layout changed: update pyx/gwreport.pyx")


_check_layout(
    "ACCEPTED",
    ("cl_ord_id", "ts_ns", "price_ticks", "qty_lots", "leaves_lots", "symbol_id", "side",
     "ord_type"),
    sizeof(AcceptedMsg),
)
_check_layout(
    "EXECUTED",
    ("cl_ord_id", "ts_ns", "match_id", "price_ticks", "qty_lots", "leaves_lots", "fee_minor",
     "fee_asset_id", "symbol_id", "side", "liquidity"),
    sizeof(ExecutedMsg),
)

if (FRAME_HEAD.format, SEQ_HEAD.format) != ("<HB", "<Q") or len(SEQUENCED) != 1:
    raise RuntimeError("S frame layout changed: update pyx/gwreport.pyx")
cdef uint8_t S_TYPE = SEQUENCED[0]
cdef Py_ssize_t S_OVERHEAD = 1 + 8  # the length counts the type byte and the seq

cdef uint8_t ACCEPTED_CODE = BY_NAME["ACCEPTED"].code[0]
cdef uint8_t EXECUTED_CODE = BY_NAME["EXECUTED"].code[0]
cdef uint8_t K_ACCEPTED = int(EvKind.ACCEPTED)
cdef uint8_t K_TRADE = int(EvKind.TRADE)
cdef uint8_t F_MAKER_DONE = int(EvFlag.MAKER_DONE)
cdef uint8_t F_TAKER_DONE = int(EvFlag.TAKER_DONE)
cdef int I_STATE_OPEN = STATE_OPEN
cdef int I_STATE_PENDING = STATE_PENDING
cdef int I_STATE_FILLED = STATE_FILLED
cdef uint8_t LIQ_MAKER = LIQUIDITY_MAKER
cdef uint8_t LIQ_TAKER = LIQUIDITY_TAKER
cdef int T_LIMIT = OrdType.LIMIT
cdef int T_STOP_LIMIT = OrdType.STOP_LIMIT


cdef inline bytes _accepted(Order o, uint64_t ts_ns, int64_t price_ticks, int64_t qty_lots,
                            int64_t leaves_lots):
    """The ACCEPTED payload of order ``o`` (from its event or from the core's reply)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, sizeof(AcceptedMsg))
    cdef AcceptedMsg* a = <AcceptedMsg*> PyBytes_AS_STRING(out)
    a.code = ACCEPTED_CODE
    a.cl_ord_id = o.cl_ord_id
    a.ts_ns = ts_ns
    a.price_ticks = price_ticks
    a.qty_lots = qty_lots
    a.leaves_lots = leaves_lots
    a.symbol_id = o.symbol_id
    a.side = o.side
    a.ord_type = o.ord_type
    return out


cdef class _Sink:
    """Where reports and order changes go: the session streams (``Store.append``,
    inlined), the outbox, the rows to write back (``Store.save_order``, inlined) and
    the open-order counts (``Gateway._set_state``, inlined).  The dicts are the
    gateway's and store's own (never rebound while events are applied)."""

    cdef dict last_seq
    cdef dict out
    cdef dict dirty
    cdef dict open_by_key
    cdef dict open_by_user
    cdef object outbox_append
    cdef dict quote_asset
    cdef Py_ssize_t emitted

    def __init__(self, gw):
        store = gw.store
        self.last_seq = store.last_seq
        self.out = store._out
        self.dirty = store._dirty
        self.open_by_key = gw.open_by_key
        self.open_by_user = gw.open_by_user
        self.outbox_append = gw.outbox.append
        self.quote_asset = store.quote_asset
        self.emitted = 0

    cdef void emit(self, object key_id, bytes payload) except *:
        """Store.append + outbox (= Gateway.emit_payload without the flush scheduling)."""
        seq = self.last_seq.get(key_id, 0) + 1
        self.last_seq[key_id] = seq
        chunk = self.out.get(key_id)
        if chunk is None:
            self.out[key_id] = (seq, [payload])
        else:
            (<list> (<tuple> chunk)[1]).append(payload)
        self.outbox_append((key_id, seq, payload))
        self.emitted += 1

    cdef inline void save(self, Order o) except *:
        self.dirty[(o.user_id, o.order_id)] = o

    cdef void filled(self, Order o) except *:
        """Gateway._set_state(o, STATE_FILLED): an open order leaves the open counts."""
        cdef int state = o.state
        o.state = STATE_FILLED
        if state == I_STATE_PENDING or state == I_STATE_OPEN:
            key_id, user_id = o.key_id, o.user_id
            self.open_by_key[key_id] = self.open_by_key.get(key_id, 0) - 1
            self.open_by_user[user_id] = self.open_by_user.get(user_id, 0) - 1

    cdef void executed(self, Order o, const EvRec* ev, uint8_t liq, int64_t fee, bint done,
                       int64_t leaves) except *:
        """One side of a TRADE: the order's fill and its EXECUTED report."""
        cdef int64_t qty = ev.qty_lots
        o.filled = o.filled + qty
        o.leaves = leaves
        if done:
            o.leaves = 0
            self.filled(o)
        self.save(o)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, sizeof(ExecutedMsg))
        cdef ExecutedMsg* m = <ExecutedMsg*> PyBytes_AS_STRING(out)
        symbol = o.symbol_id
        m.code = EXECUTED_CODE
        m.cl_ord_id = o.cl_ord_id
        m.ts_ns = ev.ts_ns
        m.match_id = ev.match_id
        m.price_ticks = ev.price_ticks
        m.qty_lots = qty
        m.leaves_lots = o.leaves
        m.fee_minor = fee
        m.fee_asset_id = self.quote_asset.get(symbol, 0)
        m.symbol_id = symbol
        m.side = o.side
        m.liquidity = liq
        self.emit(o.key_id, out)


@cython.boundscheck(False)
@cython.wraparound(False)
def apply_events(gw, events):
    """Apply one frame of core events to the gateway ``gw`` (see the module docstring).

    Returns the number of reports this function emitted itself (the ones from
    ``gw.on_event`` are not counted); schedules the gateway's flush if any.
    """
    cdef cnp.ndarray arr = events
    if arr.dtype != EV_DTYPE or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(events, dtype=EV_DTYPE)
    cdef const EvRec* recs = <const EvRec*> cnp.PyArray_DATA(arr)
    cdef const EvRec* ev
    cdef Py_ssize_t i, n = arr.shape[0]
    cdef _Sink sink = _Sink(gw)
    cdef dict orders = gw.store.orders
    cdef set retried = gw.retried
    cdef list pending
    cdef int64_t leaves
    cdef uint8_t kind
    cdef bint changed
    cdef Order o, maker
    on_event = gw.on_event
    for i in range(n):
        ev = &recs[i]
        kind = ev.kind
        if kind == K_ACCEPTED:
            o = orders.get((ev.user_id, ev.order_id))
            if o is None:
                continue
            if retried:
                retried.discard((o.user_id, o.order_id))
            pending = o.pending
            changed = o.state == I_STATE_PENDING or o.leaves != ev.leaves_lots
            if o.state == I_STATE_PENDING:
                o.state = STATE_OPEN  # open either way: the open counts do not change
            o.leaves = ev.leaves_lots
            if not (pending and pending[0] == "N"):
                # Already reported from the core's reply (Gateway._accepted_by_reply):
                # the N left ``pending`` in the same transaction as that report.
                # Stored again only if the event changed it (Store.set_core_seq).
                if changed:
                    sink.save(o)
                continue
            pending.pop(0)
            sink.emit(o.key_id, _accepted(o, ev.ts_ns, ev.price_ticks, ev.qty_lots,
                                          ev.leaves_lots))
            sink.save(o)
        elif kind == K_TRADE:
            o = orders.get((ev.user_id, ev.order_id))
            if o is not None:
                sink.executed(o, ev, LIQ_TAKER, ev.taker_fee, ev.flags & F_TAKER_DONE,
                              ev.leaves_lots)
            maker = orders.get((ev.maker_user_id, ev.maker_order_id))
            if maker is not None:
                leaves = maker.leaves - ev.qty_lots
                sink.executed(maker, ev, LIQ_MAKER, ev.maker_fee, ev.flags & F_MAKER_DONE,
                              leaves if leaves > 0 else 0)
        else:
            on_event(arr[i : i + 1].tolist()[0])
    if sink.emitted:
        gw.schedule_flush()
    return sink.emitted


@cython.boundscheck(False)
@cython.wraparound(False)
def accept_from_replies(gw, list keys, uint64_t ts_ns):
    """``Gateway._accepted_by_reply`` (the oracle, tests/gateway/test_reply_ack.py) for
    every ``(user_id, order_id)`` in ``keys``, all with ``ts_ns``: the NEWs the core's
    reply says APPLIED get their ACCEPTED now unless their ACCEPTED event came first.

    Returns the number of reports emitted; schedules the gateway's flush if any.
    """
    cdef _Sink sink = _Sink(gw)
    cdef dict orders = gw.store.orders
    cdef set retried = gw.retried
    cdef list pending
    cdef int ord_type
    cdef Order o
    for k in keys:
        o = orders.get(k)
        if o is None:
            continue
        ord_type = o.ord_type
        if ord_type != T_LIMIT and ord_type != T_STOP_LIMIT:
            continue
        pending = o.pending
        if not pending or pending[0] != "N":
            continue
        if retried:
            retried.discard(k)
        pending.pop(0)
        if o.state == I_STATE_PENDING:
            o.state = STATE_OPEN  # open either way: the open counts do not change
        sink.emit(o.key_id, _accepted(o, ts_ns, o.price, o.qty, o.leaves))
        sink.save(o)
    if sink.emitted:
        gw.schedule_flush()
    return sink.emitted


def session_frames(list outbox, dict sessions):
    """This turn's live output: ``{conn: bytes}``, the S frames of every message in
    ``outbox`` (``(key_id, seq, payload)``, in order) that goes out live, back to back.

    A message goes out live when its session's connection is logged in
    (``sessions[key_id]``), not replaying and has sent exactly the message before it;
    ``conn.sent_seq`` advances.  The rest is left to the replay (as in the Python loop
    this replaces, the oracle of tests/gateway/test_gwreport.py).
    """
    cdef dict per = {}
    cdef list lst
    cdef Py_ssize_t total, i, n, plen
    cdef uint64_t seq
    cdef bytes payload, buf
    cdef char* w
    cdef SHead* h
    for item in outbox:
        key_id, seq_obj, payload = <tuple> item
        conn = sessions.get(key_id)
        if conn is None or conn.replaying or conn.sent_seq != seq_obj - 1:
            continue
        lst = per.get(conn)
        if lst is None:
            per[conn] = [seq_obj, payload]
        else:
            lst.append(payload)
        conn.sent_seq = seq_obj
    out = {}
    for conn, lst_obj in per.items():
        lst = <list> lst_obj
        n = len(lst)
        total = 0
        for i in range(1, n):
            total += sizeof(SHead) + PyBytes_GET_SIZE(lst[i])
        buf = PyBytes_FromStringAndSize(NULL, total)
        w = PyBytes_AS_STRING(buf)
        seq = lst[0]
        for i in range(1, n):
            payload = <bytes> lst[i]
            plen = PyBytes_GET_SIZE(payload)
            h = <SHead*> w
            h.length = <uint16_t> (plen + S_OVERHEAD)
            h.ftype = S_TYPE
            h.seq = seq
            memcpy(w + sizeof(SHead), PyBytes_AS_STRING(payload), plen)
            w += sizeof(SHead) + plen
            seq += 1
        out[conn] = buf
    return out
