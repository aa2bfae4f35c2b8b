# cython: language_level=3
"""The gateway's order log records in Cython: one packed image per changed order.

Each loop turn the gateway stores the orders it created or changed as ONE blob row
(``gateway.store``, table ``order_log``) instead of one SQLite row write per order
and change.  A blob is the orders' images back to back: :data:`ORDER_REC` (the
fixed part, the same layout as the C struct ``OrderRec`` below, checked at import)
followed by the order's ``pending`` requests, one ASCII byte each.

:func:`pack_orders` builds a blob from ``gateway.store.Order`` objects in C; its
oracle is ``gateway.store.pack_orders_py`` (tests/gateway/test_order_log.py compares
them and round-trips both through ``gateway.store.unpack_orders``).
"""

import struct

from bursa_wire.gw_layout import STATE_CANCELED, STATE_FILLED, STATE_REJECTED

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

# user_id, order_id, key_id, cl_ord_id, price, qty, leaves, filled (lots and ticks),
# symbol_id, side, ord_type, state, reason, then the number of pending bytes after it.
ORDER_REC = struct.Struct("<QQQQqqqqHBBBiI")


cdef packed struct OrderRec:
    uint64_t user_id
    uint64_t order_id
    uint64_t key_id
    uint64_t cl_ord_id
    int64_t price
    int64_t qty
    int64_t leaves
    int64_t filled
    uint16_t symbol_id
    uint8_t side
    uint8_t ord_type
    uint8_t state
    int32_t reason
    uint32_t npending


I64 = 2**63  # client order ids are stored signed (SQLite integers are 64-bit signed)
cdef int S_FILLED = STATE_FILLED
cdef int S_REJECTED = STATE_REJECTED
if (STATE_FILLED, STATE_CANCELED, STATE_REJECTED) != (S_FILLED, S_FILLED + 1, S_FILLED + 2):
    raise RuntimeError("order states changed: update pyx/gworders.pyx")

if ORDER_REC.size != sizeof(OrderRec):
    raise RuntimeError("ORDER_REC and OrderRec disagree: update pyx/gworders.pyx")


@cython.boundscheck(False)
@cython.wraparound(False)
def pack_orders(list orders, dict unfolded=None, log_id=None, ended=None):
    """The order log blob of ``orders`` (``gateway.store.Order``s), in order.

    With ``unfolded``, also sets ``unfolded[(o.key_id, o.cl_ord_id)] = log_id`` for
    each order (the store's index of which log row holds an order's latest image);
    with ``ended`` (a deque), appends ``(o.key_id, o.cl_ord_id)`` of each order that
    ended (filled, canceled or rejected) with no request pending (eviction candidates).

    Raises ``OverflowError`` for a field out of its record range (as ``struct.pack``
    does) and ``ValueError`` for a pending request that is not one ASCII letter.
    """
    cdef Py_ssize_t total = 0, pos = 0, k, np_
    cdef list pend
    cdef str op
    cdef OrderRec* r
    cdef char* w
    cdef Py_UCS4 ch
    for o in orders:
        total += sizeof(OrderRec) + len(<list> o.pending)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    w = PyBytes_AS_STRING(out)
    for o in orders:
        r = <OrderRec*> (w + pos)
        r.user_id = o.user_id
        r.order_id = o.order_id
        r.key_id = o.key_id
        r.cl_ord_id = o.cl_ord_id
        r.price = o.price
        r.qty = o.qty
        r.leaves = o.leaves
        r.filled = o.filled
        r.symbol_id = o.symbol_id
        r.side = o.side
        r.ord_type = o.ord_type
        r.state = o.state
        r.reason = o.reason
        pend = <list> o.pending
        np_ = len(pend)
        r.npending = <uint32_t> np_
        pos += sizeof(OrderRec)
        for k in range(np_):
            op = <str> pend[k]
            if len(op) != 1:
                raise ValueError(f"pending request {op!r} is not one letter")
            ch = op[0]
            if ch > 127:
                raise ValueError(f"pending request {op!r} is not ASCII")
            w[pos] = <char> ch
            pos += 1
        if unfolded is not None or ended is not None:
            key = (o.key_id, o.cl_ord_id)
            if unfolded is not None:
                unfolded[key] = log_id
            if ended is not None and np_ == 0 and r.state >= S_FILLED and r.state <= S_REJECTED:
                ended.append(key)
    return out


@cython.boundscheck(False)
@cython.wraparound(False)
def fold_rows(list orders, dict unfolded, log_id, list rows):
    """The fold of one order log row (``gateway.store.Store._fold``): for each of its
    ``orders`` whose latest image is that row (``unfolded[key] == log_id``), drop the key
    from ``unfolded`` and append its ``orders`` table row (``Store._row``) to ``rows``."""
    cdef object k, lid
    for o in orders:
        k = (o.key_id, o.cl_ord_id)
        lid = unfolded.get(k)
        if lid is None or lid != log_id:
            continue  # changed again since: a later row holds its image
        del unfolded[k]
        rows.append((o.user_id, o.order_id, o.key_id, o.cl_ord_id - I64, o.symbol_id, o.side,
                     o.ord_type, o.price, o.qty, o.leaves, o.filled, o.state, o.reason,
                     "".join(o.pending)))
