# cython: language_level=3
"""The API store's order-entry side in Cython: one call for the usual new order.

``api.orders.open_order`` was a dozen Python frames between the compiled pieces
(``parse_new_order``, ``Order(...)``, ``Store.new_order_id``, ``ClientIds.of`` and
``digest``, ``now_ms``, ``Store.add``, ``_index``, ``ClientIdFilter.add``,
``pack_new``) with their tuples and dicts.  :meth:`OrderEntry.open_usual` does the
usual case (a known symbol, the orders ``pyx.apihttp.new_order_values`` takes, a valid
``newOrderRespType``, a client id never seen) in one C call: validation, the order
rate limit, the next id, the generated client id, the ``Order``, the store's indexes
and the 96-byte NEW record.  Anything else returns None before changing anything, and
``api.orders`` runs its Python code (the oracle: ``tests/api/test_fold.py`` holds the
two to the same ids, indexes, intents, meta, orders and records over random runs).

:class:`OrderEntry` is ``api.store.Store``'s ``entry`` (it shares the store's dicts,
list and set, and holds the id counter); :class:`ClientIdFilter` is the client-id Bloom
filter (``api.store.ClientIdFilterPy`` its oracle).  Nothing here imports bursa (pyx
sits below ``api``): the ``Order`` class and the NEW record's layout are handed in
by :func:`configure` (``api.orders`` at import).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.string cimport memset
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    object PyType_GenericAlloc(PyTypeObject* t, Py_ssize_t n)
    PyTypeObject PyMemberDescr_Type

from pyx.apihttp import client_id as _client_id
from pyx.apihttp import new_order_values as _new_order_values

# gateway.store.ID_EPOCH_NS (2025-01-01T00:00:00Z): api.store's clock_order_id.
cdef int64_t _ID_EPOCH_NS = 1_735_689_600 * 1_000_000_000
cdef str _PENDING_NEW = "PENDING_NEW"
# api.store.Order's fields (a slotted dataclass), in its order: configure() checks
# them, and open_usual writes each slot directly (no __init__ frame per order).
_ORDER_SLOTS = ("user_id", "order_id", "symbol_id", "client_order_id", "side", "type", "tif",
                "price", "qty", "quote_qty", "stop", "executed", "cum_quote", "status",
                "time_ms", "update_ms", "api", "fills", "reject")
cdef Py_ssize_t _SLOT[19]

# configure(): the Order class, PENDING_NEW, the record size and each NEW field's
# (offset, size) in pack_new's order, the NEW kind, api.orders' _ORDER_CONSTS.
cdef object _Order = None
cdef Py_ssize_t _REC_SIZE = 0
cdef Py_ssize_t _OFF[12]
cdef Py_ssize_t _SIZE[12]
cdef int64_t _KIND = 0
cdef tuple _CONSTS = None
cdef int _NEW_FIELDS = 12


def configure(order_cls, Py_ssize_t rec_size, tuple layout, int64_t kind, tuple consts):
    """Hand in what :meth:`OrderEntry.open_usual` builds: the ``Order`` class, the NEW
    record's size and its fields' ``(offset, size)`` in ``api.core.pack_new``'s
    argument order with ``kind`` after ``symbol_id`` (``order_id``, ``price_ticks``,
    ``qty_lots``, ``stop_price_ticks``, ``user_id``, ``symbol_id``, ``kind``,
    ``side``, ``ord_type``, ``tif``, ``stp``, ``flags``), the NEW kind and
    ``pyx.apihttp.new_order_values``'s ``consts``."""
    global _Order, _REC_SIZE, _KIND, _CONSTS
    cdef Py_ssize_t i, off, size
    if getattr(order_cls, "__slots__", None) != _ORDER_SLOTS or hasattr(order_cls,
                                                                        "__post_init__"):
        raise ValueError(f"{order_cls!r} is not the Order this module builds")
    for i in range(len(_ORDER_SLOTS)):
        d = order_cls.__dict__[_ORDER_SLOTS[i]]
        if type(d) is not <object>&PyMemberDescr_Type:
            raise ValueError(f"{order_cls!r}.{_ORDER_SLOTS[i]} is not a slot")
        _SLOT[i] = (<PyMemberDescrObject*>d).d_member.offset
    if len(layout) != _NEW_FIELDS:
        raise ValueError(f"a NEW has {_NEW_FIELDS} fields, not {len(layout)}")
    for i in range(_NEW_FIELDS):
        off, size = layout[i]
        if size not in (1, 2, 4, 8) or off < 0 or off + size > rec_size:
            raise ValueError(f"field {i} at {off} of {size} bytes does not fit")
        _OFF[i] = off
        _SIZE[i] = size
    _Order, _REC_SIZE, _KIND, _CONSTS = order_cls, rec_size, kind, consts


cdef inline void _set(object o, Py_ssize_t i, object v) noexcept:
    """Slot ``i`` of a new ``Order`` (empty: nothing to release)."""
    Py_INCREF(v)
    (<PyObject**>((<char*><PyObject*>o) + _SLOT[i]))[0] = <PyObject*>v


cdef object _new_order(object uid, object oid, object sid, str cl, object side, object typ,
                       object tif, object price, object qty, object t):
    """``Order(uid, oid, sid, cl, side, typ, tif, price, qty, 0, 0, time_ms=t,
    update_ms=t)``, its slots written directly (the dataclass's defaults for the
    rest; the oracle test compares every field)."""
    o = PyType_GenericAlloc(<PyTypeObject*>_Order, 0)
    _set(o, 0, uid)
    _set(o, 1, oid)
    _set(o, 2, sid)
    _set(o, 3, cl)
    _set(o, 4, side)
    _set(o, 5, typ)
    _set(o, 6, tif)
    _set(o, 7, price)
    _set(o, 8, qty)
    _set(o, 9, 0)
    _set(o, 10, 0)
    _set(o, 11, 0)
    _set(o, 12, 0)
    _set(o, 13, _PENDING_NEW)
    _set(o, 14, t)
    _set(o, 15, t)
    _set(o, 16, True)
    _set(o, 17, [])
    _set(o, 18, 0)
    return o


cdef bytes _pair(uint64_t a, uint64_t b):
    """``struct.pack("<QQ", a, b)`` (``api.clientids._PAIR``)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 16)
    cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
    cdef int k
    for k in range(8):
        p[k] = <uint8_t>(a >> (8 * k))
        p[8 + k] = <uint8_t>(b >> (8 * k))
    return out


cdef inline void _put(char* rec, int i, int64_t v) noexcept:
    """Field ``i`` of the record, little-endian (the values are the validated order's:
    they fit, as ``struct.pack`` would insist)."""
    cdef uint64_t u = <uint64_t>v
    cdef Py_ssize_t k
    cdef uint8_t* p = <uint8_t*>rec + _OFF[i]
    for k in range(_SIZE[i]):
        p[k] = <uint8_t>(u & 0xFF)
        u >>= 8


cdef bytes _new_record(int64_t order_id, int64_t price, int64_t qty, int64_t user_id,
                       int64_t symbol_id, int64_t side, int64_t ord_type, int64_t tif,
                       int64_t stp, int64_t flags):
    """``api.core.pack_new(order_id, price, qty, 0, user_id, ...)``'s bytes."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, _REC_SIZE)
    cdef char* rec = PyBytes_AS_STRING(out)
    cdef int64_t[12] v = [order_id, price, qty, 0, user_id, symbol_id, _KIND, side, ord_type,
                          tif, stp, flags]
    cdef int i
    memset(rec, 0, _REC_SIZE)
    for i in range(_NEW_FIELDS):
        _put(rec, i, v[i])
    return out


def new_record(int64_t order_id, int64_t price, int64_t qty, int64_t user_id,
               int64_t symbol_id, int64_t side, int64_t ord_type, int64_t tif, int64_t stp,
               int64_t flags):
    """The NEW record :meth:`OrderEntry.open_usual` builds (tests compare it with
    ``api.core.pack_new``; a stop price is never part of the usual order)."""
    if _Order is None:
        raise RuntimeError("pyx.apistore.configure was not called")
    return _new_record(order_id, price, qty, user_id, symbol_id, side, ord_type, tif, stp,
                       flags)


@cython.final
cdef class ClientIdFilter:
    """The ``(user, clientOrderId)`` pairs the store may hold, as a Bloom filter
    (``api.store.ClientIdFilterPy``, its oracle, says why): two probes from one
    64-bit ``hash`` of the pair."""

    cdef public bytearray _bits
    cdef public uint64_t _mask
    cdef public Py_ssize_t count

    def __init__(self, int bits_log2=24):
        if not 3 <= bits_log2 <= 40:
            raise ValueError("bits_log2 must be 3..40")
        self._bits = bytearray(1 << (bits_log2 - 3))
        self._mask = (<uint64_t>1 << bits_log2) - 1
        self.count = 0

    # Python's ``h & mask`` and ``(h >> 32) & mask`` of a negative hash: two's
    # complement and an arithmetic shift, as int64 in C.
    cdef inline void _add_hash(self, Py_hash_t h) noexcept:
        cdef uint64_t a = <uint64_t>h & self._mask
        cdef uint64_t b = <uint64_t>((<int64_t>h) >> 32) & self._mask
        cdef uint8_t* bits = <uint8_t*>(<char*>self._bits)
        bits[a >> 3] |= <uint8_t>(1 << (a & 7))
        bits[b >> 3] |= <uint8_t>(1 << (b & 7))
        self.count += 1

    cdef inline bint _may_hold_hash(self, Py_hash_t h) noexcept:
        cdef uint64_t a = <uint64_t>h & self._mask
        cdef uint64_t b = <uint64_t>((<int64_t>h) >> 32) & self._mask
        cdef const uint8_t* bits = <const uint8_t*>(<char*>self._bits)
        return (bits[a >> 3] & (1 << (a & 7))) != 0 and (bits[b >> 3] & (1 << (b & 7))) != 0

    def add(self, user_id, client_order_id):
        """Remember a pair."""
        self._add_hash(hash((user_id, client_order_id)))

    def may_hold(self, user_id, client_order_id):
        """False: the pair was never added; True: it may have been."""
        return self._may_hold_hash(hash((user_id, client_order_id)))


cdef class OrderEntry:
    """The order-entry side of ``api.store.Store`` (its ``entry``): the store's open
    orders, client-id filter, buffered new orders and meta (the same objects), the id
    counter, and :meth:`open_usual`."""

    cdef dict open
    cdef dict open_by_cl
    cdef dict intents
    cdef dict meta
    cdef set new
    cdef list unlogged
    cdef ClientIdFilter cl_filter
    cdef public object client_ids
    cdef public int64_t next_order_id
    cdef public int64_t reserved_order_id
    # api.store's API_ID_BASE, MAX_ORDER_ID and ID_RESERVE.
    cdef int64_t id_base
    cdef int64_t max_order_id
    cdef int64_t id_reserve

    def __init__(self, dict open, dict open_by_cl, dict intents, dict meta, set new,
                 list unlogged, ClientIdFilter cl_filter, int64_t id_base,
                 int64_t max_order_id, int64_t id_reserve):
        self.open, self.open_by_cl, self.intents, self.meta = open, open_by_cl, intents, meta
        self.new, self.unlogged, self.cl_filter = new, unlogged, cl_filter
        self.id_base, self.max_order_id, self.id_reserve = id_base, max_order_id, id_reserve
        self.client_ids = None
        self.next_order_id = self.reserved_order_id = 0

    def open_usual(self, dict params, dict by_name, object uid, str key, object limits,
                   int64_t now_ns=-1):
        """The usual new order of ``uid`` (module docstring) entered in the store:
        ``(spec, order, NEW record, newOrderRespType, client's own id)``; None (nothing
        changed) for anything else.  ``by_name`` is the symbol registry's name ->
        ``SymbolSpec``; ``limits`` counts the order (``order(key)``, which raises past
        a limit); ``now_ns`` the wall clock (-1: read it).

        Raises
        ------
        OverflowError
            The API's order ids are exhausted (after the order was counted, as
            ``api.orders.open_order_py``).
        """
        cdef timespec ts
        cdef int64_t n, clock, now_ms, oid, price, qty
        cdef bint retryable
        cdef tuple r, k, kc
        spec = by_name.get(params.get("symbol"))
        if spec is None:
            return None
        r = _new_order_values(params, spec.order_grid, _CONSTS)
        if r is None:
            return None
        try:
            price, qty = r[4], r[5]
        except OverflowError:
            return None  # beyond int64: the Python path refuses it
        typ = r[1]
        resp_type = params.get("newOrderRespType") or (
            "FULL" if typ == "LIMIT" or typ == "MARKET" else "ACK")
        if not (resp_type == "ACK" or resp_type == "RESULT" or resp_type == "FULL"):
            return None
        cl = r[3]
        retryable = len(<str>cl) > 0
        if retryable:
            kc = (uid, cl)
            if kc in self.open_by_cl or self.cl_filter._may_hold_hash(hash(kc)):
                return None  # a retry, or SQLite must say: the Python path
        limits.order(key)
        if now_ns < 0:
            clock_gettime(CLOCK_REALTIME, &ts)
            now_ns = <int64_t>ts.tv_sec * 1_000_000_000 + ts.tv_nsec
        # api.store.Store.new_order_id (its oracle): the counter or the clock.
        clock = (now_ns - _ID_EPOCH_NS) // 1_000_000
        n = self.next_order_id + 1
        if clock > n:
            n = clock
        if n > self.max_order_id - self.id_base:
            raise OverflowError("API order ids exhausted")
        oid = self.id_base + n
        if not retryable:
            h = self.client_ids._base.copy()
            h.update(_pair(<uint64_t>uid, <uint64_t>oid))
            cl = _client_id(<uint64_t>oid, h.digest(), 0)
            kc = (uid, cl)
        rec = _new_record(oid, price, qty, uid, spec.symbol_id, r[6], r[7], r[8], r[9], r[10])
        now_ms = now_ns // 1_000_000
        o = _new_order(uid, oid, spec.symbol_id, cl, r[0], typ, r[2], r[4], r[5], now_ms)
        self.next_order_id = n
        if n > self.reserved_order_id:
            # Committed by the turn's commit, before this id leaves (api.core.flush).
            self.reserved_order_id = min(n + self.id_reserve, self.max_order_id - self.id_base)
            self.meta["next_order_id"] = self.reserved_order_id
        # Store.add(o) and Store._index(o).
        k = (uid, oid)
        self.open[k] = o
        self.open_by_cl[kc] = o
        self.cl_filter._add_hash(hash(kc))
        self.intents[k] = o
        self.unlogged.append(o)
        self.new.add(k)
        return spec, o, rec, resp_type, retryable
