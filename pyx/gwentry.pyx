# cython: language_level=3
"""The gateway's inbound hot path in Cython: frame splitting with ENTER_ORDER runs.

:class:`EntryReader` splits a client's byte stream into frames exactly like
:class:`gateway.wire.codec.FrameReader` (the oracle: tests/gateway/test_gwentry.py
compares the two over random streams, split at random points), except that a run
of consecutive well-sized ENTER_ORDER U frames comes out as ONE item: their bodies
back to back, ready for ``numpy.frombuffer`` with ``gateway.batch.ENTER_DTYPE``.
No Python object is made per order until the gateway builds its ``Order``s, and
:func:`order_objects` builds those from the records in C.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from bursa_wire.gw_layout import BY_NAME, FRAME_HEAD, MAX_FRAME_LEN, ORDER_POST_ONLY, UNSEQUENCED
from bursa_wire.layout import CMD_DTYPE
from pyx.enums import CmdFlag, CmdKind, Side
from pyx.gworders cimport Order, order_key_c
from pyx.records cimport CmdRec

# The packed ENTER_ORDER body (code byte, then the fields): checked against the layout.
cdef packed struct EnterRec:
    uint8_t code
    uint64_t cl_ord_id
    int64_t price_ticks
    int64_t qty_lots
    int64_t stop_price_ticks
    uint16_t symbol_id
    uint8_t side
    uint8_t ord_type
    uint8_t tif
    uint8_t stp
    uint8_t flags

_ENTER = BY_NAME["ENTER_ORDER"]
if _ENTER.names != ("cl_ord_id", "price_ticks", "qty_lots", "stop_price_ticks", "symbol_id",
                    "side", "ord_type", "tif", "stp", "flags") \
        or 1 + _ENTER.struct.size != sizeof(EnterRec) or FRAME_HEAD.format != "<HB":
    raise RuntimeError("ENTER_ORDER layout changed: update pyx/gwentry.pyx")

if CMD_DTYPE.itemsize != sizeof(CmdRec):
    raise RuntimeError("CMD_DTYPE and pyx.records.CmdRec disagree")

ENTER_RUN = -1  # the type of an item holding a run of ENTER_ORDER bodies
cdef uint8_t U_TYPE = UNSEQUENCED[0]
cdef uint8_t ENTER_CODE = _ENTER.code[0]
cdef Py_ssize_t ENTER_LEN = sizeof(EnterRec)
cdef uint8_t SIDE_BUY = int(Side.BUY)
cdef uint8_t SIDE_SELL = int(Side.SELL)
cdef uint8_t KIND_NEW = int(CmdKind.NEW)
cdef uint8_t CMD_POST_ONLY = int(CmdFlag.POST_ONLY)
cdef uint8_t CLIENT_POST_ONLY = ORDER_POST_ONLY


cdef inline bint _is_enter(const uint8_t* p, Py_ssize_t length):
    """Frame at ``p`` (after its 2-byte length) is an ENTER_ORDER U frame of the right size."""
    return length == 1 + ENTER_LEN and p[0] == U_TYPE and p[1] == ENTER_CODE


cdef class EntryReader:
    """Splits a byte stream into items: ``(type, body)`` per frame, or
    ``(ENTER_RUN, bodies)`` for consecutive ENTER_ORDER frames; bounded by ``max_len``.

    A zero length or one above ``max_len`` raises ``length_error(length)`` (the
    gateway passes :func:`gateway.wire.codec.frame_length_error`: this module imports
    only ``bursa_wire``) once the whole frames before it have been returned (call
    :meth:`check` after handling them), as :class:`gateway.wire.codec.FrameReader` does.
    """

    cdef bytearray buf
    cdef Py_ssize_t max_len
    cdef public object error
    cdef object length_error

    def __init__(self, length_error, Py_ssize_t max_len=MAX_FRAME_LEN):
        self.length_error = length_error
        self.buf = bytearray()
        self.max_len = max_len
        self.error = None

    def check(self):
        """Raise the error found after the frames the last :meth:`feed` returned."""
        if self.error is not None:
            raise self.error

    def pending(self):
        """Bytes buffered that do not yet form a whole frame."""
        return len(self.buf)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def feed(self, data):
        """Append ``data``; return every whole frame now available (runs grouped)."""
        if self.error is not None:
            raise self.error
        self.buf += data
        cdef bytearray buf = self.buf
        cdef Py_ssize_t n = len(buf), pos = 0, length, end, run, k
        cdef const uint8_t* p = <const uint8_t*> (<char*> buf)
        cdef list out = []
        cdef bytes run_bytes
        cdef char* w
        while n - pos >= 2:
            length = p[pos] | (p[pos + 1] << 8)
            if length == 0 or length > self.max_len:
                err = self.length_error(length)
                if not out:
                    raise err
                self.error = err
                break
            end = pos + 2 + length
            if end > n:
                break
            if not _is_enter(p + pos + 2, length):
                out.append((p[pos + 2], PyBytes_FromStringAndSize(<char*> p + pos + 3,
                                                                  length - 1)))
                pos = end
                continue
            # A run of whole ENTER_ORDER frames: count it, then copy the bodies.
            run = 1
            k = end
            while n - k >= 2:
                length = p[k] | (p[k + 1] << 8)
                if k + 2 + length > n or not _is_enter(p + k + 2, length):
                    break
                run += 1
                k += 2 + length
            run_bytes = PyBytes_FromStringAndSize(NULL, run * ENTER_LEN)
            w = PyBytes_AS_STRING(run_bytes)
            for k in range(run):
                memcpy(w + k * ENTER_LEN, p + pos + 3 + k * (3 + ENTER_LEN), ENTER_LEN)
            out.append((ENTER_RUN, run_bytes))
            pos += run * (3 + ENTER_LEN)
        if pos:
            del buf[:pos]
        return out


@cython.boundscheck(False)
@cython.wraparound(False)
def order_objects(order_cls, bytes recs, list idx, uint64_t user_id, uint64_t key_id,
                  uint64_t first_id, int state, str pending, dict by_id=None, dict by_cl=None,
                  list tags=None):
    """``Order``s (``order_cls``, the :class:`gateway.store.Order` dataclass) for the
    ENTER_ORDER records ``recs`` at the indexes ``idx`` (None: every record), with
    consecutive core order ids from ``first_id``: the same objects the Python
    comprehension made.  With ``by_id`` and ``by_cl`` (the store's map by core id and
    the session's map by client id), each order is also put in them under its key
    (``pyx.gworders.order_key``) and its ``cl_ord_id``.  With
    ``tags`` (the gateway's command tags of this turn), each order's
    ``(user_id, order_id, pending)`` is appended to it, in order."""
    cdef const EnterRec* r
    cdef const char* base = PyBytes_AS_STRING(recs)
    cdef Py_ssize_t i, k = 0, n = PyBytes_GET_SIZE(recs) // ENTER_LEN
    cdef Py_ssize_t m = n if idx is None else len(idx)
    cdef list out = []
    cdef bint index = by_id is not None and by_cl is not None
    cdef bint tag = tags is not None
    cdef Order o
    uid = user_id  # one int object for every key and tag of the run
    if order_cls is not Order:
        raise TypeError("order_cls must be pyx.gworders.Order")
    for k in range(m):
        i = k if idx is None else idx[k]
        if i < 0 or i >= n:
            raise IndexError(i)
        r = <const EnterRec*> (base + i * ENTER_LEN)
        o = Order.__new__(Order)  # fields set here, as Order.__init__ would
        o.user_id = user_id
        o.order_id = first_id + k
        o.key_id = key_id
        o.cl_ord_id = r.cl_ord_id
        o.symbol_id = r.symbol_id
        o.side = r.side
        o.ord_type = r.ord_type
        o.price = r.price_ticks
        o.qty = r.qty_lots
        o.leaves = r.qty_lots
        o.filled = 0
        o.state = state
        o.reason = 0
        o.pending = [pending]
        out.append(o)
        if index:
            by_id[order_key_c(user_id, first_id + k)] = o
            by_cl[r.cl_ord_id] = o
        if tag:
            tags.append((uid, first_id + k, pending))
    return out


@cython.boundscheck(False)
@cython.wraparound(False)
def new_run_top(bytes recs, uint64_t top_cl):
    """The highest client id of the ENTER_ORDER run ``recs`` (its last) when every
    order of it passes the duplicate and side checks for sure: client ids strictly
    increasing from above ``top_cl`` (the session's highest so far) and every side
    BUY or SELL; else 0 (the caller checks order by order).
    :func:`gateway.batch.all_new_and_valid` (the oracle) in C, without numpy's
    per-call cost (one order in flight is a run of one)."""
    cdef const EnterRec* r = <const EnterRec*> PyBytes_AS_STRING(recs)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(recs) // ENTER_LEN
    cdef uint64_t last = top_cl
    if n == 0:
        return 0
    for i in range(n):
        if r[i].cl_ord_id <= last or (r[i].side != SIDE_BUY and r[i].side != SIDE_SELL):
            return 0
        last = r[i].cl_ord_id
    return last


@cython.boundscheck(False)
@cython.wraparound(False)
def new_records(bytes recs, list idx, uint64_t user_id, uint64_t first_id):
    """The core's NEW records (``CMD_DTYPE``, back to back) for the ENTER_ORDER records
    ``recs`` at the indexes ``idx`` (None: every record) of one user, with consecutive
    order ids from ``first_id``: :func:`gateway.batch.new_records` (the oracle) in C."""
    cdef const char* base = PyBytes_AS_STRING(recs)
    cdef Py_ssize_t i, k, n = PyBytes_GET_SIZE(recs) // ENTER_LEN
    cdef Py_ssize_t m = n if idx is None else len(idx)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, m * sizeof(CmdRec))
    cdef CmdRec* c = <CmdRec*> PyBytes_AS_STRING(out)
    cdef const EnterRec* r
    if user_id > 0xFFFFFFFF:
        raise OverflowError("user_id does not fit the command record")
    memset(c, 0, m * sizeof(CmdRec))
    for k in range(m):
        i = k if idx is None else idx[k]
        if i < 0 or i >= n:
            raise IndexError(i)
        r = <const EnterRec*> (base + i * ENTER_LEN)
        c[k].kind = KIND_NEW
        c[k].order_id = first_id + k
        c[k].user_id = <uint32_t> user_id
        c[k].symbol_id = r.symbol_id
        c[k].side = r.side
        c[k].ord_type = r.ord_type
        c[k].tif = r.tif
        c[k].price_ticks = r.price_ticks
        c[k].qty_lots = r.qty_lots
        c[k].stop_price_ticks = r.stop_price_ticks
        c[k].stp = r.stp
        c[k].flags = (CMD_POST_ONLY if r.flags & CLIENT_POST_ONLY else 0) | (
            r.flags & <uint8_t> (0xFF & ~CLIENT_POST_ONLY))
    return out
