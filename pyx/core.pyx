# cython: language_level=3
"""The deterministic core state machine: dispatch, tables, and snapshot glue.

Everything between "a sequenced batch of command records" and "events + replies",
with no I/O.  :class:`CoreState` (declared in ``core.pxd``, the state every core
module shares) holds the flat C balance arrays, the order hold map, the user, asset
and symbol tables and one :class:`pyx.book.Book` per symbol.  :meth:`CoreState.apply`
loops over a ``CMD_DTYPE`` array in C and dispatches each command to the module that
does its one job (each a C call through its ``.pxd``):

- :mod:`pyx.risk`: trading commands, checked and held before they reach the book;
- :mod:`pyx.settle`: the book's events settled (fills, fees, releases);
- :mod:`pyx.funding`: deposits, withdrawals, transfers, exactly once per reference;
- :mod:`pyx.admin`: assets, symbols, users, fee tiers, halts, limits.

This module keeps the dispatcher, the tables' capacity, the read helpers and the
state export/import (``_dump``/``_load``/``_arrays``).

Money rules (docs/commands.md, "Risk and settlement"):

- every amount is an int64 count of an asset's minor units; no float anywhere;
- a fill of ``q`` lots at the maker's price ``p`` moves ``n = p * q * mult`` quote
  minor units and ``q * base_per_lot`` base minor units;
- fees are ``floor(n * ppm / 1e6)`` per fill and side; the buyer pays on top of
  ``n`` (out of its hold), the seller receives ``n - fee``; the fee account of the
  quote asset receives exactly what both paid;
- a BUY holds ``n_max + ceil(n_max * max(taker, maker) ppm / 1e6)`` at its limit
  (or worst) price, which covers every fill: ``sum(floor) <= ceil(sum)``;
- a SELL holds ``qty * base_per_lot`` base minor units.

The engine/core.py ``Core`` class subclasses :class:`CoreState` and adds the
snapshot format, the state hash and the conservation check.
"""


from collections import OrderedDict

import numpy as np
cimport numpy as cnp
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.string cimport memset
from libc.stdint cimport int64_t, uint64_t, int32_t

from pyx.types cimport seq_t
from pyx.records cimport CmdRec, EvRec
from pyx.evbuf cimport EventBuf
from pyx.book cimport Book
from pyx.enums cimport (
    BUY, NEW, CANCEL, REDUCE, REPLACE, MASS_CANCEL,
    ADD_ASSET, ADD_SYMBOL, SET_MIN_NOTIONAL, ADD_USER, ADD_FEE_TIER, SET_FEE_TIER,
    HALT_SYMBOL, RESUME_SYMBOL, SUSPEND_USER, RESUME_USER, CANCEL_ALL_SYMBOL,
    DEPOSIT, WITHDRAW_HOLD, WITHDRAW_COMMIT, WITHDRAW_RELEASE, TRANSFER, SET_USER_ORDER_LIMIT,
    REJECTED, UNKNOWN_COMMAND,
)
from pyx cimport risk, funding, admin

from bursa_wire.layout import CMD_DTYPE, REPLY_DTYPE

cnp.import_array()

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF

cdef extern from "numpy/arrayobject.h":
    # Declared here with raw pointers: it steals a reference to ``descr`` (numpy's
    # own .pxd leaves it out for that reason); the caller increments it first.
    object _new_from_descr "PyArray_NewFromDescr" (
        PyTypeObject* subtype, void* descr, int nd, cnp.npy_intp* dims,
        cnp.npy_intp* strides, void* data, int flags, PyObject* obj)

cdef object _REPLY_DESCR = REPLY_DTYPE


cdef object _zeroed_replies(Py_ssize_t n):
    """``np.zeros(n, REPLY_DTYPE)`` without the Python call and numpy's zero-fill
    dispatch for structured dtypes (both cost more than a one-command batch's apply)."""
    cdef cnp.npy_intp dims = n
    Py_INCREF(_REPLY_DESCR)
    arr = _new_from_descr(<PyTypeObject*> cnp.ndarray, <void*> _REPLY_DESCR, 1, &dims,
                          NULL, NULL, 0, NULL)
    memset(cnp.PyArray_DATA(<cnp.ndarray> arr), 0, n * sizeof(ReplyRec))
    return arr

# Funding references (deposit refs, withdrawal ids, transfer refs): the last REF_MEMORY
# of each kind are remembered (with their content and first result); an unknown
# reference at or below the highest one forgotten is rejected REFERENCE_TOO_OLD.
REF_MEMORY = 1_000_000
# reserve() refuses a users x assets table beyond this many balance cells (4 GiB):
# a configuration typo must be a clear error, not an out-of-memory at start.
RESERVE_BALANCE_CELLS_MAX = 1 << 28

# The deliberately broken variants exist only in a build made with BURSA_VARIANTS=1
# (the debug build, `make debug`, which the simulator's self-tests use): in the
# production build the branches below are constant-false and compiled out, and the
# constructor knows no variant names.
VARIANTS_BUILT = bool(BURSA_VARIANTS)
VARIANTS = frozenset({"double_release", "dup_deposit"}) if BURSA_VARIANTS else frozenset()


cdef class CoreState:
    """Accounts, risk, books and settlement of one core (no I/O).

    Parameters
    ----------
    variants : frozenset of str
        Deliberately broken behaviours for the simulator's tests only:
        ``"double_release"`` (a canceled order's remaining hold is released twice)
        and ``"dup_deposit"`` (a duplicate deposit reference credits again).
    """

    def __cinit__(self, *args, **kwargs):
        self.evbuf = EventBuf(1 << 14)
        self.books = []
        self.fee_tiers = {}
        self.deposit_refs = OrderedDict()
        self.withdrawals = OrderedDict()
        self.transfers = OrderedDict()
        self.ref_floors = [0, 0, 0]
        self.ref_memory = REF_MEMORY
        self.user_order_limit = DEFAULT_USER_ORDER_LIMIT
        self.deposited = []
        self.withdrawn = []
        self.ucap = 16
        self.users = <URec*> PyMem_Malloc(self.ucap * sizeof(URec))
        self.uid_len = 1024
        self.uid_slot = <int32_t*> PyMem_Malloc(self.uid_len * sizeof(int32_t))
        self.astride = 4
        self.assets_c = <ARec*> PyMem_Malloc(self.astride * sizeof(ARec))
        self.aid_slot = <int32_t*> PyMem_Malloc(ASSET_IDS * sizeof(int32_t))
        self.sid_slot = <int32_t*> PyMem_Malloc(ASSET_IDS * sizeof(int32_t))
        self.scap = 4
        self.syms = <SRec*> PyMem_Malloc(self.scap * sizeof(SRec))
        self.avail = <minor_t*> PyMem_Malloc(self.ucap * self.astride * N_ACCOUNTS * sizeof(minor_t))
        self.held = <minor_t*> PyMem_Malloc(self.ucap * self.astride * N_ACCOUNTS * sizeof(minor_t))
        self.obits = OMAP_BITS_MIN
        self.omask = ((<uint64_t>1) << self.obits) - 1
        self.otab = <ORec*> PyMem_Malloc((self.omask + 1) * sizeof(ORec))
        if (self.users == NULL or self.uid_slot == NULL or self.assets_c == NULL
                or self.aid_slot == NULL or self.sid_slot == NULL or self.syms == NULL
                or self.avail == NULL or self.held == NULL or self.otab == NULL):
            raise MemoryError()
        memset(self.uid_slot, 0xFF, self.uid_len * sizeof(int32_t))
        memset(self.aid_slot, 0xFF, ASSET_IDS * sizeof(int32_t))
        memset(self.sid_slot, 0xFF, ASSET_IDS * sizeof(int32_t))
        memset(self.avail, 0, self.ucap * self.astride * N_ACCOUNTS * sizeof(minor_t))
        memset(self.held, 0, self.ucap * self.astride * N_ACCOUNTS * sizeof(minor_t))
        memset(self.otab, 0, (self.omask + 1) * sizeof(ORec))

    def __init__(self, variants=frozenset(), ref_memory=REF_MEMORY):
        if not 0 < ref_memory <= REF_MEMORY:
            raise ValueError(f"ref_memory must be in 1..{REF_MEMORY}")
        self.ref_memory = ref_memory
        variants = frozenset(variants)
        unknown = variants - VARIANTS
        if unknown:
            raise ValueError(
                f"unknown core variants: {sorted(unknown)}"
                + ("" if BURSA_VARIANTS else " (not in this build: the production build "
                   "compiles the broken variants out; `make debug` builds them)"))
        self.variants = variants
        # Read once: the hot path tests a C flag, never a Python set.
        self.v_double_release = "double_release" in variants
        self.v_dup_deposit = "dup_deposit" in variants

    def __dealloc__(self):
        cdef int32_t k
        if self.users != NULL:
            for k in range(self.n_users):
                PyMem_Free(self.users[k].ring)
        PyMem_Free(self.users)
        PyMem_Free(self.uid_slot)
        PyMem_Free(self.assets_c)
        PyMem_Free(self.aid_slot)
        PyMem_Free(self.sid_slot)
        PyMem_Free(self.syms)
        PyMem_Free(self.avail)
        PyMem_Free(self.held)
        PyMem_Free(self.otab)

    # ---------------------------------------------------------------- capacity

    def reserve(self, *, int64_t users=0, int64_t assets=0, int64_t symbols=0,
                int64_t orders=0, int64_t book_orders=0, int64_t events=0):
        """Size the hot path's tables now, from configuration, so that no command grows
        them while the workload stays within these sizes (0 leaves a table as it is).

        ``users``: user slots and the user id map (ids 1..users); ``assets`` and
        ``symbols``: table slots; ``orders``: live orders in the hold map (all
        symbols); ``book_orders``: live orders of each book (existing and new ones);
        ``events``: event records of one batch.  Growth beyond stays as a fallback,
        counted in :attr:`growth_count`.  Not part of the state (snapshots and the
        state hash do not depend on it).
        """
        cdef int bits = self.obits
        if min(users, assets, symbols, orders, book_orders, events) < 0:
            raise ValueError("capacities must be >= 0")
        if users > MAX_USER_ID or assets >= ASSET_IDS or symbols >= ASSET_IDS:
            raise ValueError("capacity beyond the id space")
        if orders > MAX_LIVE_ORDERS:
            raise ValueError(f"orders capacity beyond {MAX_LIVE_ORDERS}")
        if (max(users, self.ucap) * max(assets, self.astride) * N_ACCOUNTS
                > RESERVE_BALANCE_CELLS_MAX):
            raise ValueError(
                f"users x assets capacity needs more than {RESERVE_BALANCE_CELLS_MAX} "
                "balance cells (16 bytes each)")
        if users + 1 > self.uid_len:
            admin.size_uid_map(self, users + 1)
        if users > self.ucap:
            self._size_users(<int32_t> users, False)
        if assets > self.astride:
            self._size_assets(<int32_t> assets, False)
        if symbols > self.scap:
            admin.size_symbols(self, <int32_t> symbols)
        while bits < OMAP_BITS_MAX and ((<int64_t> 1) << bits) < 2 * orders:
            bits += 1
        if bits > self.obits:
            self._orehash(bits)
        if book_orders > 0:
            self.book_reserve = book_orders
            for book in self.books:
                (<Book> book).reserve(book_orders)
        if events > 0:
            self.evbuf.reserve(events)

    @property
    def growth_count(self):
        """Times a table of the hot path grew while serving (users, assets, symbols,
        hold map, books' pools and id maps, event buffer): 0 when :meth:`reserve` sized
        them for the workload.  Exported in the core's status."""
        cdef int64_t n = self.growths + self.evbuf.grows
        for book in self.books:
            n += (<Book> book).grows
        return n

    # ------------------------------------------------------------------ tables

    cdef int _grow_users(self) except -1:
        """Double the user capacity; balance rows are appended (layout unchanged)."""
        return self._size_users(self.ucap * 2, True)

    cdef int _size_users(self, int32_t cap, bint counted) except -1:
        """Grow the user capacity to ``cap``; balance rows are appended (layout unchanged)."""
        assert cap > self.ucap
        if counted:
            self.growths += 1
        cdef int64_t old_n = <int64_t> self.ucap * self.astride * N_ACCOUNTS
        cdef int64_t new_n = <int64_t> cap * self.astride * N_ACCOUNTS
        cdef URec* u = <URec*> PyMem_Realloc(self.users, cap * sizeof(URec))
        if u == NULL:
            raise MemoryError()
        self.users = u
        cdef minor_t* a = <minor_t*> PyMem_Realloc(self.avail, new_n * sizeof(minor_t))
        if a == NULL:
            raise MemoryError()
        self.avail = a
        cdef minor_t* h = <minor_t*> PyMem_Realloc(self.held, new_n * sizeof(minor_t))
        if h == NULL:
            raise MemoryError()
        self.held = h
        memset(self.avail + old_n, 0, (new_n - old_n) * sizeof(minor_t))
        memset(self.held + old_n, 0, (new_n - old_n) * sizeof(minor_t))
        self.ucap = cap
        return 0

    cdef int _grow_assets(self) except -1:
        """Double the asset stride of the balance rows (re-lays every row out)."""
        return self._size_assets(self.astride * 2, True)

    cdef int _size_assets(self, int32_t stride, bint counted) except -1:
        """Widen the balance rows to ``stride`` assets (re-lays every row out)."""
        assert stride > self.astride
        if counted:
            self.growths += 1
        cdef int64_t n = <int64_t> self.ucap * stride * N_ACCOUNTS
        cdef minor_t* a = <minor_t*> PyMem_Malloc(n * sizeof(minor_t))
        cdef minor_t* h = <minor_t*> PyMem_Malloc(n * sizeof(minor_t))
        cdef ARec* ar = <ARec*> PyMem_Realloc(self.assets_c, stride * sizeof(ARec))
        cdef int64_t us, k
        if a == NULL or h == NULL or ar == NULL:
            PyMem_Free(a)
            PyMem_Free(h)
            if ar != NULL:
                self.assets_c = ar
            raise MemoryError()
        self.assets_c = ar
        memset(a, 0, n * sizeof(minor_t))
        memset(h, 0, n * sizeof(minor_t))
        for us in range(self.n_users):
            for k in range(self.n_assets * N_ACCOUNTS):
                a[us * stride * N_ACCOUNTS + k] = self.avail[us * self.astride * N_ACCOUNTS + k]
                h[us * stride * N_ACCOUNTS + k] = self.held[us * self.astride * N_ACCOUNTS + k]
        PyMem_Free(self.avail)
        PyMem_Free(self.held)
        self.avail = a
        self.held = h
        self.astride = stride
        return 0

    # --------------------------------------------------------------- order map

    cdef ORec* _oins(self, oid_t oid) except NULL:
        """A zeroed record for a new ``oid`` (absent, non-zero); grows at load 1/2."""
        assert oid != 0
        if (self.n_live + 1) * 2 > <int64_t> (self.omask + 1):
            self.growths += 1
            self._orehash(self.obits + 1)
        cdef uint64_t i = bursa_ohash(oid, self.obits)
        while self.otab[i].oid != 0:
            assert self.otab[i].oid != oid
            i = (i + 1) & self.omask
        memset(&self.otab[i], 0, sizeof(ORec))
        self.otab[i].oid = oid
        self.n_live += 1
        return &self.otab[i]

    cdef void _odel(self, int64_t i) noexcept:
        """Delete slot ``i`` by backward shift (linear probing keeps no tombstones)."""
        cdef uint64_t hole = <uint64_t> i, j = <uint64_t> i, home
        cdef uint64_t probes = 0
        self.users[self.otab[i].uslot].n_open -= 1
        while probes <= self.omask:
            j = (j + 1) & self.omask
            probes += 1
            if self.otab[j].oid == 0:
                break
            home = bursa_ohash(self.otab[j].oid, self.obits)
            # leave j where it is if its home lies cyclically in (hole, j]
            if hole <= j:
                if hole < home and home <= j:
                    continue
            else:
                if hole < home or home <= j:
                    continue
            self.otab[hole] = self.otab[j]
            hole = j
        self.otab[hole].oid = 0
        self.n_live -= 1

    cdef int _orehash(self, int bits) except -1:
        if bits > OMAP_BITS_MAX:
            raise MemoryError("core order map at its bound")
        cdef uint64_t old_size = self.omask + 1, k, i
        cdef uint64_t size = (<uint64_t>1) << bits
        cdef ORec* old = self.otab
        cdef ORec* t = <ORec*> PyMem_Malloc(size * sizeof(ORec))
        if t == NULL:
            raise MemoryError()
        memset(t, 0, size * sizeof(ORec))
        for k in range(old_size):
            if old[k].oid != 0:
                i = bursa_ohash(old[k].oid, bits)
                while t[i].oid != 0:
                    i = (i + 1) & (size - 1)
                t[i] = old[k]
        self.otab = t
        self.obits = bits
        self.omask = size - 1
        PyMem_Free(old)
        return 0

    # ------------------------------------------------------------------- apply

    def apply(self, cnp.ndarray cmds not None):
        """Apply a sequenced batch of commands.

        Parameters
        ----------
        cmds : numpy.ndarray
            ``CMD_DTYPE`` records whose ``seq`` are ``last_seq + 1, last_seq + 2, ...``
            (``ts_ns`` set by the sequencer).

        Returns
        -------
        (events, replies) : tuple of numpy.ndarray
            ``EV_DTYPE`` view of the events of the batch (valid until the next
            ``apply``) and one ``REPLY_DTYPE`` record per command, in order.

        Raises
        ------
        TypeError
            ``cmds`` is not a ``CMD_DTYPE`` array.
        ValueError
            The ``seq`` numbers are not consecutive from ``last_seq + 1`` (a sequencer
            bug, not bad input); nothing is applied.
        """
        # Identity first, and the C flag test: both run once per batch on the ack path.
        if <object> cnp.PyArray_DESCR(cmds) is not CMD_DTYPE and cmds.dtype != CMD_DTYPE:
            raise TypeError("cmds must be a CMD_DTYPE array")
        if cmds.ndim != 1:
            raise TypeError("cmds must be one-dimensional")
        if not cnp.PyArray_IS_C_CONTIGUOUS(cmds):
            cmds = np.ascontiguousarray(cmds)
        cdef Py_ssize_t n = cmds.shape[0], i
        cdef const CmdRec* c = <const CmdRec*> cnp.PyArray_DATA(cmds)
        for i in range(n):
            if c[i].seq != self.last_seq + 1 + <seq_t> i:
                raise ValueError(
                    f"command {i} has seq {c[i].seq}, expected {self.last_seq + 1 + i}")
        replies = _zeroed_replies(n)
        cdef ReplyRec* r = <ReplyRec*> cnp.PyArray_DATA(replies)
        self.evbuf.clear()
        for i in range(n):
            self._apply_one(&c[i], &r[i])
            self.last_seq = c[i].seq
        return self.evbuf.view(), replies

    cdef int _apply_one(self, const CmdRec* c, ReplyRec* r) except -1:
        cdef int k = c.kind
        if k == REPLACE:
            return risk.replace_order(self, c, r)
        if k == NEW:
            return risk.new_order(self, c, r)
        if k == CANCEL:
            return risk.cancel_order(self, c, r)
        if k == REDUCE:
            return risk.reduce_order(self, c, r)
        if k == MASS_CANCEL:
            return risk.mass_cancel(self, c, r)
        if ADD_ASSET <= k <= SET_USER_ORDER_LIMIT:
            return self._admin(c, r)
        return self._reject(c, r, UNKNOWN_COMMAND)

    cdef int _reject(self, const CmdRec* c, ReplyRec* r, int reason) except -1:
        """Reject a command: reply, plus a REJECTED event for trading and unknown kinds."""
        cdef int k = c.kind
        cdef EvRec* e
        _reply(r, c, ST_REJECTED, reason, 0)
        if ADD_ASSET <= k <= SET_USER_ORDER_LIMIT:
            return 0                       # admin/funding rejects live in the reply only
        e = self.evbuf.push()
        e.seq = c.seq
        e.ts_ns = c.ts_ns
        e.order_id = c.order_id
        e.user_id = c.user_id
        e.symbol_id = c.symbol_id
        e.reason = reason
        e.kind = REJECTED
        if k == CANCEL:
            pass
        elif k == REDUCE:
            e.qty_lots = c.qty_lots
        elif k == REPLACE:
            e.price_ticks = c.price_ticks
            e.qty_lots = c.qty_lots
        elif k == MASS_CANCEL:
            e.side = c.side
        else:                              # NEW and unknown kinds: the fields of a new order
            e.side = c.side
            e.ord_type = c.ord_type
            e.price_ticks = c.price_ticks
            e.qty_lots = c.qty_lots
        return 0

    cdef void _client_ids(self, Py_ssize_t e0) noexcept:
        """Book events ``[e0, n)`` carry internal order ids: give them the client ids."""
        cdef Py_ssize_t k
        for k in range(e0, self.evbuf.n):
            self.evbuf.recs[k].order_id &= OID_MASK
            self.evbuf.recs[k].maker_order_id &= OID_MASK


    def _symbol_ids(self):
        return [self.syms[k].symbol_id for k in range(self.n_syms)]


    # ------------------------------------------------------- admin, funding

    cdef int _admin(self, const CmdRec* c, ReplyRec* r) except -1:
        cdef int k = c.kind
        if k == DEPOSIT:
            return funding.deposit(self, c, r)
        if k == WITHDRAW_HOLD:
            return funding.withdraw_hold(self, c, r)
        if k == WITHDRAW_COMMIT or k == WITHDRAW_RELEASE:
            return funding.withdraw_end(self, c, r)
        if k == TRANSFER:
            return funding.transfer(self, c, r)
        if k == ADD_ASSET:
            return admin.add_asset(self, c, r)
        if k == ADD_SYMBOL:
            return admin.add_symbol(self, c, r)
        if k == SET_MIN_NOTIONAL:
            return admin.set_min_notional(self, c, r)
        if k == ADD_USER or k == SET_FEE_TIER:
            return admin.user_tier(self, c, r)
        if k == ADD_FEE_TIER:
            return admin.add_fee_tier(self, c, r)
        if k == HALT_SYMBOL or k == RESUME_SYMBOL:
            return admin.halt(self, c, r)
        if k == SUSPEND_USER or k == RESUME_USER:
            return admin.suspend(self, c, r)
        if k == CANCEL_ALL_SYMBOL:
            return admin.cancel_all(self, c, r)
        if k == SET_USER_ORDER_LIMIT:
            return admin.set_user_order_limit(self, c, r)
        return self._reject(c, r, UNKNOWN_COMMAND)

    # ------------------------------------------------------------ read helpers

    def balance(self, user_id, asset_id, account=0):
        """(available, held) of a user's balance, minor units; (0, 0) if unknown (any
        id out of range included: this never raises on an integer)."""
        if not (0 <= user_id < self.uid_len and 0 < asset_id < ASSET_IDS
                and account in (0, 1)):
            return (0, 0)
        cdef int32_t us = _uslot(self, user_id)
        cdef int32_t ak = _aslot(self, asset_id)
        if us < 0 or ak < 0:
            return (0, 0)
        cdef int64_t bi = _bi(self, us, ak, account)
        return (self.avail[bi], self.held[bi])

    def fee_balance(self, asset_id):
        """The fee account of an asset, minor units (0 if unknown)."""
        cdef int32_t ak = _aslot(self, asset_id)
        return self.assets_c[ak].fee_minor if ak >= 0 else 0

    def book(self, symbol_id):
        """The :class:`pyx.book.Book` of a symbol, or None."""
        cdef int32_t ss = _sslot(self, symbol_id)
        return self.books[ss] if ss >= 0 else None

    def order_hold(self, order_id, user_id=None):
        """Hold record of a user's live order as a dict, or None (amounts in minor units).

        Order ids are per user; without ``user_id`` the first live order with this
        client id is returned (tests with ids unique over users)."""
        cdef int64_t i
        if not 0 < order_id <= OID_MASK:
            return None
        if user_id is None:
            for d in self.open_orders():
                if d["order_id"] == order_id:
                    return d
            return None
        i = _oslot(self, _iid(user_id, order_id)) if 0 <= user_id <= MAX_USER_ID else -1
        if i < 0:
            return None
        return _orec_dict(self, &self.otab[i])

    def open_orders(self, user_id=None):
        """Hold records of the live orders (of one user if given), sorted by order id."""
        cdef uint64_t k
        out = []
        for k in range(self.omask + 1):
            if self.otab[k].oid != 0 and (user_id is None or self.otab[k].user_id == user_id):
                out.append(_orec_dict(self, &self.otab[k]))
        out.sort(key=lambda d: (d["order_id"], d["user_id"]))
        return out

    def order_marks(self, int lane=0):
        """user id -> (highest accepted order id of ``lane``, the lane's forgotten floor,
        remembered (order id, fingerprint, value) of every lane, oldest first) of every
        user that has had an order accepted in ``lane`` (0 or 1: ORDER_ID_LANE_SHIFT)."""
        cdef int32_t us
        cdef URec* u
        if not 0 <= lane < ORDER_ID_LANES:
            raise ValueError(f"lane must be in 0..{ORDER_ID_LANES - 1}")
        out = {}
        for us in range(self.n_users):
            u = &self.users[us]
            if u.hwm[lane]:
                out[u.user_id] = (u.hwm[lane], u.floor[lane], _ring_rows(u))
        return out

    @property
    def n_live_orders(self):
        """Live orders (resting + stop) over all books, per the core's hold map."""
        return self.n_live

    # ------------------------------------------------------- state export/import

    def _dump(self, bint with_books=True):
        """Every piece of state as plain Python data, canonically ordered (see engine/core.py);
        ``with_books=False`` leaves the (large) book dumps out."""
        cdef int32_t us, ak, acc, k
        cdef int64_t bi
        cdef uint64_t j
        cdef ARec* a
        cdef URec* u
        cdef SRec* s
        cdef ORec* o
        assets = []
        for k in range(self.n_assets):
            a = &self.assets_c[k]
            assets.append((a.asset_id, a.decimals, a.fee_minor, a.outstanding_minor,
                           self.deposited[k], self.withdrawn[k]))
        assets.sort()
        users = []
        balances = []
        dedup = []
        lanes = []
        for us in range(self.n_users):
            u = &self.users[us]
            # the user row carries lane 0's marks; ``order_lanes`` the other lanes' (if used)
            users.append((u.user_id, u.tier, u.taker_ppm, u.maker_ppm, u.suspended,
                          u.hwm[0], u.floor[0]))
            for k in range(1, ORDER_ID_LANES):
                if u.hwm[k]:
                    lanes.append((u.user_id, k, u.hwm[k], u.floor[k]))
            if u.ring != NULL:
                dedup.extend((u.user_id, *row) for row in _ring_rows(u))
            for ak in range(self.n_assets):
                for acc in range(N_ACCOUNTS):
                    bi = _bi(self, us, ak, acc)
                    if self.avail[bi] != 0 or self.held[bi] != 0:
                        balances.append((u.user_id, self.assets_c[ak].asset_id, acc,
                                         self.avail[bi], self.held[bi]))
        users.sort()
        lanes.sort()
        balances.sort()
        dedup.sort(key=lambda row: row[0])    # stable: each user's rows stay oldest first
        symbols = []
        books = []
        for k in range(self.n_syms):
            s = &self.syms[k]
            symbols.append((s.symbol_id, s.base_id, s.quote_id, s.halted, s.tick_step,
                            s.lot_step, s.mult, s.base_per_lot, s.min_qty_lots, s.max_qty_lots,
                            s.min_price_ticks, s.max_price_ticks, s.protection_ticks,
                            s.min_notional_minor))
            if with_books:
                books.append((s.symbol_id, _book_dump(self.books[k])))
        symbols.sort()
        books.sort()
        orders = []
        for j in range(self.omask + 1):
            o = &self.otab[j]
            if o.oid != 0:
                orders.append((o.oid, o.user_id, self.syms[o.sslot].symbol_id, o.side,
                               o.ord_type, o.tif, o.stp, o.flags, o.pending_stop, o.hold,
                               o.hold_price, o.taker_ppm, o.maker_ppm))
        orders.sort()
        return {
            "last_seq": self.last_seq,
            "assets": assets,
            "fee_tiers": sorted((t, m, tk) for t, (m, tk) in self.fee_tiers.items()),
            "users": users,
            "balances": balances,
            "symbols": symbols,
            "orders": orders,
            "books": books,
            "order_dedup": dedup,
            "order_lanes": lanes,          # (user, lane >= 1, highest accepted id, floor)
            # arrival order: it decides which reference is forgotten next
            # (``ref``, not ``k``: a comprehension over the C int32 ``k`` of this
            # function would overflow on 64-bit references, e.g. the wallet's)
            "deposit_refs": [(ref, *v) for ref, v in self.deposit_refs.items()],
            "withdrawals": [(w, *v) for w, v in self.withdrawals.items()],
            "transfers": [(ref, *v) for ref, v in self.transfers.items()],
            "marks": (*self.ref_floors, self.ref_memory, self.user_order_limit),
        }

    def _load(self, d):
        """Rebuild an empty core from :meth:`_dump` data (the inverse of ``_dump``)."""
        cdef ORec* o
        cdef int32_t us, ak
        cdef int64_t bi
        cdef Book bk
        assert self.n_users == 0 and self.n_assets == 0 and self.n_syms == 0
        for tier, maker, taker in d["fee_tiers"]:
            self.fee_tiers[tier] = (maker, taker)
        for asset_id, decimals, fee, outstanding, deposited, withdrawn in d["assets"]:
            ak = admin.new_asset(self, asset_id, decimals)
            self.assets_c[ak].fee_minor = fee
            self.assets_c[ak].outstanding_minor = outstanding
            self.deposited[ak] = deposited
            self.withdrawn[ak] = withdrawn
        for uid, tier, taker, maker, suspended, hwm, floor in d["users"]:
            us = admin.new_user(self, uid, tier)
            self.users[us].taker_ppm = taker
            self.users[us].maker_ppm = maker
            self.users[us].suspended = suspended
        for uid, oid, fp, value in d["order_dedup"]:
            risk.remember_order(self, self.uid_slot[uid], oid, fp, value)
        for row in d["users"]:
            if "order_lanes" in d:
                self.users[self.uid_slot[row[0]]].hwm[0] = row[5]
                self.users[self.uid_slot[row[0]]].floor[0] = row[6]
            else:                          # from before lanes: one pair of marks for all ids
                _split_marks(&self.users[self.uid_slot[row[0]]], row[5], row[6])
        for uid, lane, hwm, floor in d.get("order_lanes", ()):
            us = _uslot(self, uid)
            if us < 0 or not 0 < lane < ORDER_ID_LANES:
                raise ValueError(f"order-id marks of user {uid}, lane {lane}: no such lane")
            self.users[us].hwm[lane] = hwm
            self.users[us].floor[lane] = floor
        for uid, asset_id, acc, av, hd in d["balances"]:
            bi = _bi(self, self.uid_slot[uid], self.aid_slot[asset_id], acc)
            self.avail[bi] = av
            self.held[bi] = hd
        bookdump = dict(d["books"])
        for row in d["symbols"]:
            ss = admin.new_symbol(self, row[0], row[1], row[2], row[4], row[5], row[6], row[7],
                             row[8], row[9], row[10], row[11], row[12])
            self.syms[ss].halted = row[3]
            self.syms[ss].min_notional_minor = row[13]
            _book_load(self.books[ss], bookdump[row[0]])
        for (oid, uid, sid, side, ot, tif, stp, flags, pending, hold, hold_px, taker,
             maker) in d["orders"]:
            o = self._oins(oid)
            o.user_id = uid
            o.uslot = self.uid_slot[uid]
            self.users[o.uslot].n_open += 1
            o.sslot = self.sid_slot[sid]
            o.side = side
            o.ord_type = ot
            o.tif = tif
            o.stp = stp
            o.flags = flags
            o.pending_stop = pending
            o.hold = hold
            o.hold_price = hold_px
            o.taker_ppm = taker
            o.maker_ppm = maker
        # the books hold exactly the orders the core holds funds for
        n_book = 0
        for bk in self.books:
            n_book += bk.n_orders
        if n_book != len(d["orders"]):
            raise ValueError(f"books hold {n_book} orders, the hold records {len(d['orders'])}")
        for row in d["orders"]:
            info = self.books[self.sid_slot[row[2]]].order(row[0])
            if info is None or info[:3] != (row[1], row[3], row[4]):
                raise ValueError(f"order {row[0]}: book and hold record disagree")
        self.deposit_refs = OrderedDict((row[0], tuple(row[1:])) for row in d["deposit_refs"])
        self.withdrawals = OrderedDict((w[0], list(w[1:])) for w in d["withdrawals"])
        self.transfers = OrderedDict((row[0], tuple(row[1:])) for row in d["transfers"])
        marks = d["marks"]
        self.ref_floors = list(marks[0:3])
        self.ref_memory = marks[3]
        self.user_order_limit = marks[4]
        self.last_seq = d["last_seq"]
        self.evbuf.clear()

    def _arrays(self):
        """(available, held, live holds) as int64 arrays [user slot, asset slot, account],
        user ids, asset ids and fee accounts, for the conservation check."""
        cdef int64_t n = <int64_t> self.n_users * self.astride * N_ACCOUNTS, k, bi
        cdef uint64_t j
        cdef ORec* o
        cdef const SRec* s
        av = np.empty(n, dtype=np.int64)
        hd = np.empty(n, dtype=np.int64)
        lv = np.zeros(n, dtype=np.int64)
        cdef int64_t[::1] avv = av, hdv = hd, lvv = lv
        for k in range(n):
            avv[k] = self.avail[k]
            hdv[k] = self.held[k]
        for j in range(self.omask + 1):
            o = &self.otab[j]
            if o.oid != 0:
                s = &self.syms[o.sslot]
                bi = _bi(self, o.uslot, s.quote_k if o.side == BUY else s.base_k, 0)
                lvv[bi] += o.hold
        for uid, asset_id, acc, amount, state, _, _ in self.withdrawals.values():
            if state == WD_HELD:
                lvv[_bi(self, self.uid_slot[uid], self.aid_slot[asset_id], acc)] += amount
        shape = (self.n_users, self.astride, N_ACCOUNTS)
        uids = [self.users[k].user_id for k in range(self.n_users)]
        aids = [self.assets_c[k].asset_id for k in range(self.n_assets)]
        fees = [self.assets_c[k].fee_minor for k in range(self.n_assets)]
        net = [self.deposited[k] - self.withdrawn[k] for k in range(self.n_assets)]
        outstanding = [self.assets_c[k].outstanding_minor for k in range(self.n_assets)]
        return (av.reshape(shape)[:, : self.n_assets], hd.reshape(shape)[:, : self.n_assets],
                lv.reshape(shape)[:, : self.n_assets], uids, aids, fees, net, outstanding)





cdef int _split_marks(URec* u, oid_t hwm, oid_t floor) except -1:
    """Per-lane marks from the one (highest id, forgotten floor) pair of a core from
    before lanes (snapshot version 3), never below what a lane may have used: an id of
    lane 1 (2**39 and up) lies above every id of lane 0, so a mark in lane 1 caps lane 0's
    at the lane's top, and a mark below 2**39 leaves lane 1 empty.  A user whose floor had
    reached lane 1 (32 API orders forgotten) therefore keeps lane 0 refused ORDER_ID_TOO_OLD,
    as before: which lane-0 ids were forgotten is unknown (docs/commands.md)."""
    cdef oid_t top0 = (<oid_t> 1 << ORDER_ID_LANE_SHIFT) - 1
    u.hwm[0] = hwm if hwm <= top0 else top0
    u.floor[0] = floor if floor <= top0 else top0
    u.hwm[1] = hwm if hwm > top0 else 0
    u.floor[1] = floor if floor > top0 else 0
    return 0


cdef list _ring_rows(const URec* u):
    """The remembered NEWs of a user, oldest first: (order id, fingerprint, value)."""
    cdef uint64_t n = u.dcount if u.dcount < DEDUP_ORDERS else DEDUP_ORDERS
    cdef uint64_t start = u.dcount - n, k
    cdef const DRec* d
    out = []
    for k in range(start, u.dcount):
        d = &u.ring[k % DEDUP_ORDERS]
        out.append((d.oid, d.fp, d.value))
    return out



cdef dict _orec_dict(CoreState self, const ORec* o):
    return {
        "order_id": o.oid & OID_MASK, "user_id": o.user_id,
        "symbol_id": self.syms[o.sslot].symbol_id, "side": o.side, "ord_type": o.ord_type,
        "tif": o.tif, "stp": o.stp, "flags": o.flags, "pending_stop": bool(o.pending_stop),
        "hold": o.hold, "hold_price_ticks": o.hold_price,
        "taker_ppm": o.taker_ppm, "maker_ppm": o.maker_ppm,
    }


cdef tuple _book_dump(Book bk):
    """A book's full state: counters, resting orders in priority order (``l3_full()``
    rows), stop orders in arrival order (``stops()`` rows)."""
    return (bk.last_price_ticks, bk.next_match_id, tuple(bk.l3_full()), tuple(bk.stops()))


cdef int _book_load(Book bk, tuple dump) except -1:
    """Restore a dumped book into an empty one through the book's restore API (no
    events, no matching); a row the book refuses raises ValueError (corrupt dump)."""
    last, next_match, rows, stops = dump
    assert bk.n_orders == 0, "book restore needs an empty book"
    for oid, uid, side, px, open_lots, flags, ot, tif, stop_px, stp in rows:
        bk.c_restore_order(oid, uid, side, ot, tif, px, open_lots, stop_px, stp, flags, False)
    for oid, uid, side, ot, tif, stop_px, px, open_lots, stp in stops:
        bk.c_restore_order(oid, uid, side, ot, tif, px, open_lots, stop_px, stp, 0, True)
    bk.c_restore_counters(last, next_match)
    return 0



def _reply_layout():
    """(size, {field: offset}) of the C ReplyRec, for the layout drift test."""
    cdef ReplyRec r
    cdef char* base = <char*> &r
    return sizeof(ReplyRec), {
        "seq": <char*> &r.seq - base,
        "client_ref": <char*> &r.client_ref - base,
        "order_id": <char*> &r.order_id - base,
        "value": <char*> &r.value - base,
        "user_id": <char*> &r.user_id - base,
        "reason": <char*> &r.reason - base,
        "kind": <char*> &r.kind - base,
        "status": <char*> &r.status - base,
    }


def internal_order_id(user_id, order_id):
    """The id under which the books and the hold map know a user's order (snapshots and
    ``Book`` views show it; events and replies show the client's ``order_id``)."""
    if not (0 <= user_id <= MAX_USER_ID and 0 < order_id <= OID_MASK):
        raise ValueError("user id or order id out of range")
    return _iid(user_id, order_id)


def client_order_id(internal_id):
    """(user id, client order id) of an internal order id."""
    return (internal_id >> OID_BITS, internal_id & OID_MASK)


def stamp_batch(cnp.ndarray cmds not None, uint64_t first_seq, uint64_t ts_ns):
    """Number a batch in place: record ``i`` gets ``seq = first_seq + i`` and ``ts_ns``.

    The sequencer's stamp in one C loop (two numpy field assignments cost more than
    the rest of a one-command turn's array work).

    Parameters
    ----------
    cmds : numpy.ndarray
        A writable, C-contiguous, one-dimensional ``CMD_DTYPE`` array.

    Raises
    ------
    TypeError
        ``cmds`` is not such an array (nothing written).
    """
    if <object> cnp.PyArray_DESCR(cmds) is not CMD_DTYPE and cmds.dtype != CMD_DTYPE:
        raise TypeError("cmds must be a CMD_DTYPE array")
    if cmds.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(cmds) or not cnp.PyArray_ISWRITEABLE(cmds):
        raise TypeError("cmds must be a writable, contiguous, one-dimensional array")
    cdef Py_ssize_t n = cmds.shape[0], i
    cdef CmdRec* c = <CmdRec*> cnp.PyArray_DATA(cmds)
    for i in range(n):
        c[i].seq = first_seq + <uint64_t> i
        c[i].ts_ns = ts_ns
