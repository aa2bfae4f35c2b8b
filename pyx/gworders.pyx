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

import operator
import struct

from bursa_wire.gw_layout import (
    STATE_CANCELED,
    STATE_FILLED,
    STATE_OPEN,
    STATE_PENDING,
    STATE_REJECTED,
)

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
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
cdef int S_PENDING = STATE_PENDING
cdef int S_OPEN = STATE_OPEN
cdef int S_FILLED = STATE_FILLED
cdef int S_REJECTED = STATE_REJECTED
if (STATE_FILLED, STATE_CANCELED, STATE_REJECTED) != (S_FILLED, S_FILLED + 1, S_FILLED + 2):
    raise RuntimeError("order states changed: update pyx/gworders.pyx")

if ORDER_REC.size != sizeof(OrderRec):
    raise RuntimeError("ORDER_REC and OrderRec disagree: update pyx/gworders.pyx")


ORDER_KEY_SHIFT = ORDER_KEY_SHIFT_C
MAX_KEY_USER_ID = 2**(64 - ORDER_KEY_SHIFT) - 1  # the core's user ids: 1..2**24-1
MAX_KEY_ORDER_ID = 2**ORDER_KEY_SHIFT - 1  # the core's order ids: 1..2**40-1


def order_key(user_id, order_id):
    """The order map's key of the order ``(user_id, order_id)``: ``user_id << 40 |
    order_id`` (see ``pyx/gworders.pxd``); the ids must be in the core's ranges (user
    1..2**24-1, order 1..2**40-1), where the key is unique."""
    return (user_id << ORDER_KEY_SHIFT) | order_id


def split_key(key):
    """The ``(user_id, order_id)`` of an order map key (:func:`order_key`)."""
    return key >> ORDER_KEY_SHIFT, key & MAX_KEY_ORDER_ID


ORDER_FIELDS = ("user_id", "order_id", "key_id", "cl_ord_id", "symbol_id", "side", "ord_type",
                "price", "qty", "leaves", "filled", "state", "reason", "pending")


# Not tracked by the cyclic GC: an Order refers only to ints and its ``pending`` list
# of one-letter strings, so it can never be part of a reference cycle, and the map of
# up to a million of them was traversed by every collection of their generation.
@cython.no_gc
cdef class Order:
    """One order the gateway entered (mirror of its stored row; fields in
    ``pyx/gworders.pxd``).  A compiled class rather than a dataclass: the compiled paths
    (``pyx.gwreport``, ``pyx.gwentry``, this module) read and write its fields as C
    struct members instead of through Python's generic attribute lookup.  Setting a
    field beyond its C type raises ``OverflowError``."""

    def __init__(self, user_id, order_id, key_id, cl_ord_id, symbol_id, side, ord_type,
                 price, qty, leaves, filled=0, state=STATE_PENDING, reason=0, pending=None):
        self.user_id = user_id
        self.order_id = order_id
        self.key_id = key_id
        self.cl_ord_id = cl_ord_id
        self.symbol_id = symbol_id
        self.side = side
        self.ord_type = ord_type
        self.price = price
        self.qty = qty
        self.leaves = leaves
        self.filled = filled
        self.state = state
        self.reason = reason
        self.pending = [] if pending is None else pending
        self.stored = False
        self.log_id = 0

    @property
    def key(self):
        """Its order map key, :func:`order_key` ``(user_id, order_id)``."""
        return order_key_c(self.user_id, self.order_id)

    @property
    def is_open(self):
        """Pending or resting (counts against the open-order limits)."""
        return self.state == S_PENDING or self.state == S_OPEN

    def astuple(self):
        """The fields in :data:`ORDER_FIELDS` order (``pending`` a copy)."""
        return (self.user_id, self.order_id, self.key_id, self.cl_ord_id, self.symbol_id,
                self.side, self.ord_type, self.price, self.qty, self.leaves, self.filled,
                self.state, self.reason, list(self.pending))

    def __eq__(self, other):
        if not isinstance(other, Order):
            return NotImplemented
        return self.astuple() == (<Order> other).astuple()

    def __repr__(self):
        return "Order(" + ", ".join(
            f"{n}={v!r}" for n, v in zip(ORDER_FIELDS, self.astuple())) + ")"


cdef Py_ssize_t _pack(Order o, char* w) except -1:
    """Write the image of order ``o`` at ``w`` (room for ``_size(o)`` bytes); returns
    the bytes written."""
    cdef OrderRec* r = <OrderRec*> w
    cdef list pend = <list> o.pending
    cdef Py_ssize_t k, np_ = len(pend)
    cdef str op
    cdef Py_UCS4 ch
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
    r.npending = <uint32_t> np_
    w += sizeof(OrderRec)
    for k in range(np_):
        op = <str> pend[k]
        if len(op) != 1:
            raise ValueError(f"pending request {op!r} is not one letter")
        ch = op[0]
        if ch > 127:
            raise ValueError(f"pending request {op!r} is not ASCII")
        w[k] = <char> ch
    return sizeof(OrderRec) + np_


@cython.boundscheck(False)
@cython.wraparound(False)
def pack_orders(list orders, log_id=None, ended=None):
    """The order log blob of ``orders`` (``gateway.store.Order``s), in order.

    With ``log_id`` (a new log row's id: no order has it yet), also sets each order's
    ``log_id`` to it (the log row holding its latest image, until folded), and an
    order listed more than once is packed once, at its first place (a turn's new
    orders and its changed orders may overlap: ``Store.commit``); with ``ended`` (a
    list), appends each order packed that ended (filled, canceled or rejected) with
    no request pending (eviction candidates: the order itself, no key tuple).

    Raises ``OverflowError`` for a field out of its record range (as ``struct.pack``
    does) and ``ValueError`` for a pending request that is not one ASCII letter.
    """
    cdef Py_ssize_t total = 0, pos = 0
    cdef int state
    cdef int64_t lid = 0 if log_id is None else log_id
    cdef Order o
    cdef list todo = orders
    # Ended orders gathered here (the list made at the first) and added to ``ended``
    # with one call (a method call on the deque per order cost more than packing it).
    cdef list done = None
    cdef bint want_ended = ended is not None
    # One pass marks the orders and sums their sizes, one packs them.
    if lid:
        todo = []
        for o in orders:
            if o.log_id != lid:  # not listed before in this call
                o.log_id = lid
                todo.append(o)
                total += sizeof(OrderRec) + len(<list> o.pending)
    else:
        for o in orders:
            total += sizeof(OrderRec) + len(<list> o.pending)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* w = PyBytes_AS_STRING(out)
    for o in todo:
        if pos + sizeof(OrderRec) + len(<list> o.pending) > total:
            raise RuntimeError("an order changed while it was packed")
        pos += _pack(o, w + pos)
        if want_ended:
            state = o.state
            if not o.pending and S_FILLED <= state <= S_REJECTED:
                if done is None:
                    done = [o]
                else:
                    done.append(o)
    if done is not None:
        ended.extend(done)
    return out


cdef tuple _row(Order o):
    """The ``orders`` table row of ``o`` (``gateway.store.Store._row``).

    The image is a ``bytearray``, not ``bytes``: the sqlite3 module binds a bytearray
    as a blob directly, while a ``bytes`` parameter first goes through its adapter
    look-up (``__adapt__``/``__conform__``, two AttributeErrors built and dropped),
    about 15% of the cost of writing the row (docs/gateway.md, "Measured")."""
    cdef list pend = <list> o.pending
    cdef bytearray rec = PyByteArray_FromStringAndSize(NULL, sizeof(OrderRec) + len(pend))
    _pack(o, PyByteArray_AS_STRING(rec))
    cdef int state = o.state
    live = 1 if pend or state == S_PENDING or state == S_OPEN else 0
    return (o.key_id, o.cl_ord_id - I64, live, rec)


def order_row(Order o):
    """The ``orders`` table row of ``o`` (``gateway.store.Store._row``, compiled)."""
    return _row(o)


@cython.boundscheck(False)
@cython.wraparound(False)
def fold_rows(list orders, int64_t log_id, list rows, dict runs=None):
    """The fold of one order log row (``gateway.store.Store._fold``; reference
    ``Store.fold_py``): for each of its ``orders`` whose latest image is that row
    (``o.log_id == log_id``), clear ``log_id``, mark the order ``stored`` and append
    its ``orders`` table row (``Store._row``) to ``rows``.

    With ``runs``, an order that ended (filled, canceled, rejected) with no request
    pending and was never stored before is instead appended to ``runs[key_id]`` (a
    list of orders, for the archive: one row per session and fold)."""
    cdef Order o
    cdef int state
    cdef list run = None
    # Consecutive orders of one session (the common case) find its run once.
    cdef uint64_t run_key = 0
    for o in orders:
        if o.log_id != log_id:
            continue  # changed again since: a later row holds its image
        o.log_id = 0
        state = o.state
        if (runs is not None and not o.stored and not o.pending
                and S_FILLED <= state <= S_REJECTED):
            if run is None or o.key_id != run_key:
                run_key = o.key_id
                run = runs.get(run_key)
                if run is None:
                    run = []
                    runs[run_key] = run
            run.append(o)
        else:
            rows.append(_row(o))
        o.stored = True


_BY_CL = operator.attrgetter("cl_ord_id")


@cython.boundscheck(False)
@cython.wraparound(False)
def sort_by_cl(list run):
    """Sort ``run`` (``Order``s) by client id in place (``gateway.store.Store._archive_row``):
    a run already in order (a client numbering its orders upwards: the common case) is
    only checked, in C, instead of calling a key function per order."""
    cdef Py_ssize_t i, n = len(run)
    cdef uint64_t prev = 0, cl
    for i in range(n):
        cl = (<Order> run[i]).cl_ord_id
        if i and cl < prev:
            run.sort(key=_BY_CL)
            return
        prev = cl


@cython.boundscheck(False)
@cython.wraparound(False)
def evict_ended(list ended, Py_ssize_t head, dict orders, dict by_cl, Py_ssize_t bound):
    """Drop ended orders from the order map (``gateway.store.Store._evict``; reference
    ``Store.evict_py``): take ``ended[head:]`` (eviction candidates, oldest-ended
    first) while ``orders`` holds more than ``bound``; an entry whose order is no
    longer in the map (evicted, or listed again) or is active again (a request pending,
    or not ended) is skipped; an ended one is removed from ``orders`` and from its
    session's map in ``by_cl``.

    Taken entries are set to None (the caller drops them from the list in bulk: an
    evicted order must not stay alive there).  Stops at an order whose latest image
    is still only in the order log (``log_id``, not taken: the caller folds that row
    first and calls again).
    Returns ``(new head, orders evicted, that log_id or 0)``.

    In C rather than a Python loop: once the map is full, every order the gateway
    takes in evicts one (docs/gateway.md, "tenth pass")."""
    cdef Py_ssize_t i = head, n = len(ended), evicted = 0
    cdef Order o
    cdef int state
    cdef object key, have
    while i < n and len(orders) > bound:
        o = <Order> ended[i]
        key = order_key_c(o.user_id, o.order_id)
        have = orders.get(key)
        if have is not o:
            ended[i] = None  # taken: the list must not keep an evicted order alive
            i += 1  # already gone (listed more than once)
            continue
        if o.log_id:
            return i, evicted, o.log_id
        ended[i] = None
        i += 1
        state = o.state
        if (<list> o.pending) or not (S_FILLED <= state <= S_REJECTED):
            continue  # active again: listed anew when it ends
        del (<dict> by_cl[o.key_id])[o.cl_ord_id]
        del orders[key]
        evicted += 1
    return i, evicted, 0
