# cython: language_level=3
"""The deterministic core state machine: accounts, risk, routing to books, settlement.

Everything between "a sequenced batch of command records" and "events + replies",
with no I/O.  :meth:`CoreState.apply` loops over a ``CMD_DTYPE`` array in C: trading
commands are risk-checked against flat C balance arrays, their worst-case cost is
held, they are routed to the symbol's Cython :class:`pyx.book.Book` through its
``c_*`` fast paths, and the events the book appended to the shared
:class:`pyx.evbuf.EventBuf` are walked to settle every fill (fees included) and to
release what is no longer needed.  Admin and funding commands are rare; they run
here too, touching Python containers.

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
from libc.string cimport memset, memcpy
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, uint8_t, int32_t

from pyx.types cimport ticks_t, lots_t, minor_t, oid_t, seq_t, uid_t
from pyx.records cimport CmdRec, EvRec
from pyx.evbuf cimport EventBuf
from pyx.book cimport Book
from pyx.enums cimport (
    BUY, SELL, LIMIT, MARKET, MARKET_QUOTE, STOP_LIMIT, STOP_MARKET, MASS_ALL_USERS,
    NEW, CANCEL, REDUCE, REPLACE, MASS_CANCEL,
    ADD_ASSET, ADD_SYMBOL, SET_MIN_NOTIONAL, ADD_USER, ADD_FEE_TIER, SET_FEE_TIER,
    HALT_SYMBOL, RESUME_SYMBOL, SUSPEND_USER, RESUME_USER, CANCEL_ALL_SYMBOL,
    DEPOSIT, WITHDRAW_HOLD, WITHDRAW_COMMIT, WITHDRAW_RELEASE, TRANSFER, SET_USER_ORDER_LIMIT,
    USER_ORDER_LIMIT_SET,
    ACCEPTED, REJECTED, TRADE, CANCELED, REDUCED, REPLACED, TRIGGERED,
    ASSET_ADDED, SYMBOL_ADDED, MIN_NOTIONAL_SET, USER_ADDED, FEE_TIER_ADDED, FEE_TIER_SET,
    SYMBOL_HALTED, SYMBOL_RESUMED, USER_SUSPENDED, USER_RESUMED,
    DEPOSITED, WITHDRAW_HELD, WITHDRAW_COMMITTED, WITHDRAW_RELEASED, TRANSFERRED,
    TAKER_DONE, MAKER_DONE,
    DUPLICATE_ORDER_ID, UNKNOWN_ORDER_ID, INVALID_QTY, PRICE_OFF_TICK, PRICE_OUT_OF_BAND,
    NOTIONAL_OVERFLOW, INVALID_SIDE, INVALID_ORDER_TYPE, NOT_REPLACEABLE, INVALID_FLAGS,
    UNKNOWN_COMMAND,
    UNKNOWN_USER, USER_NOT_ACTIVE, UNKNOWN_SYMBOL, SYMBOL_NOT_TRADING, INSUFFICIENT_FUNDS,
    NOT_ORDER_OWNER, BELOW_MIN_NOTIONAL, INVALID_ORDER_ID, TOO_MANY_ORDERS,
    ORDER_ID_TOO_OLD, USER_ORDER_LIMIT, EXISTS_WITH_DIFFERENT_FIELDS, REFERENCE_TOO_OLD,
    UNKNOWN_ASSET, ASSET_EXISTS, SYMBOL_EXISTS, USER_EXISTS, UNKNOWN_FEE_TIER, FEE_TIER_EXISTS,
    INVALID_CONFIG, INVALID_AMOUNT, INVALID_ACCOUNT, AMOUNT_OVERFLOW, UNKNOWN_WITHDRAWAL,
    WITHDRAWAL_RELEASED, WITHDRAWAL_COMMITTED, INVALID_ID, ALREADY_IN_STATE,
)

from bursa_wire.layout import CMD_DTYPE, REPLY_DTYPE

cnp.import_array()

cdef extern from *:
    """
    #ifndef BURSA_VARIANTS
    #define BURSA_VARIANTS 0
    #endif
    """
    int BURSA_VARIANTS

cdef extern from *:
    """
    #include <stdint.h>
    #define BURSA_PPM 1000000
    /* price * qty * mult as an exact int64, or -1 if an operand is negative or the
       product exceeds cap (no wrap: checked with the compiler's overflow builtins). */
    static inline int64_t bursa_notional(int64_t price, int64_t qty, int64_t mult, int64_t cap) {
        int64_t a, b;
        if (price < 0 || qty < 0 || mult < 0) return -1;
        if (__builtin_mul_overflow(price, qty, &a)) return -1;
        if (__builtin_mul_overflow(a, mult, &b)) return -1;
        return b > cap ? -1 : b;
    }
    /* ceil(n * ppm / 1e6) and floor(n * ppm / 1e6) for 0 <= n, 0 <= ppm <= 1e6.  Below
       2**43 the product fits in 64 bits and the division by a constant compiles to a
       multiply; larger notionals take the exact 128-bit path (a library call). */
    #define BURSA_FAST_N ((int64_t)1 << 43)
    static inline int64_t bursa_fee_ceil(int64_t n, int64_t ppm) {
        if (n < BURSA_FAST_N)
            return (int64_t)(((uint64_t)n * (uint64_t)ppm + (BURSA_PPM - 1)) / BURSA_PPM);
        return (int64_t)(((__int128)n * ppm + (BURSA_PPM - 1)) / BURSA_PPM);
    }
    static inline int64_t bursa_fee_floor(int64_t n, int64_t ppm) {
        if (n < BURSA_FAST_N)
            return (int64_t)(((uint64_t)n * (uint64_t)ppm) / BURSA_PPM);
        return (int64_t)(((__int128)n * ppm) / BURSA_PPM);
    }
    /* Largest x with x + x * ppm / 1e6 <= budget: the notional a quote budget can buy
       with its fee on top. */
    static inline int64_t bursa_budget_net(int64_t budget, int64_t ppm) {
        return (int64_t)(((__int128)budget * BURSA_PPM) / (BURSA_PPM + ppm));
    }
    static inline uint64_t bursa_ohash(uint64_t oid, int bits) {
        return (oid * 0x9E3779B97F4A7C15ULL) >> (64 - bits);
    }
    /* splitmix64 step: the fingerprint of a NEW folds its fields through it. */
    static inline uint64_t bursa_mix(uint64_t h, uint64_t x) {
        uint64_t z = h ^ (x + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2));
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    """
    int64_t bursa_notional(int64_t price, int64_t qty, int64_t mult, int64_t cap) noexcept nogil
    int64_t bursa_fee_ceil(int64_t n, int64_t ppm) noexcept nogil
    int64_t bursa_fee_floor(int64_t n, int64_t ppm) noexcept nogil
    int64_t bursa_budget_net(int64_t budget, int64_t ppm) noexcept nogil
    uint64_t bursa_ohash(uint64_t oid, int bits) noexcept nogil
    uint64_t bursa_mix(uint64_t h, uint64_t x) noexcept nogil

# Reply status values (engine/wire/commands.py ReplyStatus).
cdef enum:
    ST_APPLIED = 1
    ST_REJECTED = 2
    ST_DUPLICATE = 3

# Withdrawal states.
cdef enum:
    WD_HELD = 1
    WD_COMMITTED = 2
    WD_RELEASED = 3

cdef enum:
    N_ACCOUNTS = 2                 # 0 = trading (orders), 1 = funding
    ASSET_IDS = 65536              # asset and symbol ids are uint16
    OMAP_BITS_MIN = 10
    OMAP_BITS_MAX = 26             # 2**26 slots at load <= 1/2 holds MAX_LIVE_ORDERS
    MAX_LIVE_ORDERS = 16777216     # live orders (resting + stop) over all books
    MAX_USER_ID = 16777215         # user ids index an array directly
    MAX_DECIMALS = 30
    BOOK_CAPACITY = 1024           # initial pool of each book (it grows by doubling)
    PPM_MAX = 1000000
    OID_BITS = 40                  # client order ids are 1..2**40-1, per user
    DEDUP_ORDERS = 32              # accepted NEWs remembered per user for duplicates
    DEFAULT_USER_ORDER_LIMIT = 10000   # live orders per user at most (by default)

# Internal order id = user_id << OID_BITS | client order id: the key of the hold map
# and of the books, unique over users; events and replies carry the client id.
cdef uint64_t OID_MASK = ((<uint64_t>1) << OID_BITS) - 1
# Funding references (deposit refs, withdrawal ids, transfer refs): the last REF_MEMORY
# of each kind are remembered (with their content and first result); an unknown
# reference at or below the highest one forgotten is rejected REFERENCE_TOO_OLD.
REF_MEMORY = 1_000_000
# reserve() refuses a users x assets table beyond this many balance cells (4 GiB):
# a configuration typo must be a clear error, not an out-of-memory at start.
RESERVE_BALANCE_CELLS_MAX = 1 << 28
REF_DEPOSIT = 0
REF_WITHDRAWAL = 1
REF_TRANSFER = 2

# Per-asset bound on deposits - committed withdrawals: every balance, hold and fee
# account of the asset is then below 2**62, so no sum of two of them overflows.
cdef int64_t SUPPLY_MAX = (<int64_t>1) << 62
# Largest notional (quote minor units) an order or a symbol config may reach: a buy
# hold is at most twice it (fee ppm <= 1e6), which still fits in int64.
cdef int64_t NOTIONAL_MAX = ((<int64_t>1) << 62) - 1
cdef int64_t INT64_MAX = 0x7FFFFFFFFFFFFFFF

# The deliberately broken variants exist only in a build made with BURSA_VARIANTS=1
# (the debug build, `make debug`, which the simulator's self-tests use): in the
# production build the branches below are constant-false and compiled out, and the
# constructor knows no variant names.
VARIANTS_BUILT = bool(BURSA_VARIANTS)
VARIANTS = frozenset({"double_release", "dup_deposit"}) if BURSA_VARIANTS else frozenset()


cdef inline int64_t _ofind_in(const ORec* tab, uint64_t mask, int bits, oid_t oid) noexcept:
    """Slot of ``oid`` in a linear-probing table, -1 if absent (oid 0 is never stored)."""
    cdef uint64_t i = bursa_ohash(oid, bits)
    cdef uint64_t probes = 0
    while tab[i].oid != 0:
        if tab[i].oid == oid:
            return <int64_t> i
        i = (i + 1) & mask
        probes += 1
        if probes > mask:              # bound: never reached (load <= 1/2)
            return -1
    return -1


cdef inline int64_t _oslot(CoreState s, oid_t oid) noexcept:
    """Slot of ``oid`` in the core's hold map, -1 if absent (inlined on the hot path)."""
    return _ofind_in(s.otab, s.omask, s.obits, oid)


cdef inline int _px_reason(const SRec* sym, ticks_t px) noexcept:
    """The book's price checks (tick grid, then band) for a price the hold depends on."""
    if px % sym.tick_step != 0:
        return PRICE_OFF_TICK
    if px < sym.min_price_ticks or px > sym.max_price_ticks:
        return PRICE_OUT_OF_BAND
    return 0


cdef inline ticks_t _band_price(const SRec* sym, ticks_t base) noexcept:
    """``base + protection`` clamped to the band and floored to the tick grid; 0 if no base."""
    cdef ticks_t x
    if base <= 0:
        return 0
    if base > sym.max_price_ticks - sym.protection_ticks:
        x = sym.max_price_ticks
    else:
        x = base + sym.protection_ticks
    x -= x % sym.tick_step
    if x < base:                   # base itself off the grid (rejected by the book anyway)
        x = base
    return x


cdef inline oid_t _iid(uint64_t uid, oid_t oid) noexcept:
    """The internal (core and book) id of a user's client order id."""
    return (uid << OID_BITS) | oid


cdef inline int64_t _uslot_oid(CoreState s, const CmdRec* c) noexcept:
    """Hold-map slot of the command's (user, order id), -1 if none."""
    if c.order_id == 0 or c.order_id > OID_MASK:
        return -1
    return _oslot(s, _iid(c.user_id, c.order_id))


cdef inline uint64_t _order_fp(const CmdRec* c) noexcept:
    """Fingerprint of every field of a NEW that shapes the order (not client_ref)."""
    cdef uint64_t h = 0x243F6A8885A308D3ULL
    h = bursa_mix(h, c.symbol_id)
    h = bursa_mix(h, <uint64_t> c.side | (<uint64_t> c.ord_type << 8) | (<uint64_t> c.tif << 16)
                  | (<uint64_t> c.stp << 24) | (<uint64_t> c.flags << 32))
    h = bursa_mix(h, <uint64_t> c.price_ticks)
    h = bursa_mix(h, <uint64_t> c.qty_lots)
    h = bursa_mix(h, <uint64_t> c.stop_price_ticks)
    return h


cdef inline void _reply(ReplyRec* r, const CmdRec* c, int status, int reason,
                        int64_t value) noexcept:
    r.seq = c.seq
    r.client_ref = c.client_ref
    r.order_id = c.order_id
    r.value = value
    r.user_id = c.user_id
    r.reason = reason
    r.kind = c.kind
    r.status = status


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
            _size_uid_map(self, users + 1)
        if users > self.ucap:
            self._size_users(<int32_t> users, False)
        if assets > self.astride:
            self._size_assets(<int32_t> assets, False)
        if symbols > self.scap:
            _size_symbols(self, <int32_t> symbols)
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

    cdef int32_t _uslot(self, uint64_t uid) noexcept:
        if uid >= <uint64_t> self.uid_len:
            return -1
        return self.uid_slot[uid]

    cdef int32_t _aslot(self, int64_t aid) noexcept:
        if aid <= 0 or aid >= ASSET_IDS:
            return -1
        return self.aid_slot[aid]

    cdef int32_t _sslot(self, int64_t sid) noexcept:
        if sid <= 0 or sid >= ASSET_IDS:
            return -1
        return self.sid_slot[sid]

    cdef inline int64_t _bi(self, int32_t us, int32_t ak, int acc) noexcept:
        return (<int64_t> us * self.astride + ak) * N_ACCOUNTS + acc

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

    cdef int64_t _ofind(self, oid_t oid) noexcept:
        """Slot of ``oid`` in the hold map, -1 if absent."""
        return _ofind_in(self.otab, self.omask, self.obits, oid)

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
        if cmds.dtype != CMD_DTYPE:
            raise TypeError("cmds must be a CMD_DTYPE array")
        if cmds.ndim != 1:
            raise TypeError("cmds must be one-dimensional")
        if not cmds.flags.c_contiguous:
            cmds = np.ascontiguousarray(cmds)
        cdef Py_ssize_t n = cmds.shape[0], i
        cdef const CmdRec* c = <const CmdRec*> cnp.PyArray_DATA(cmds)
        for i in range(n):
            if c[i].seq != self.last_seq + 1 + <seq_t> i:
                raise ValueError(
                    f"command {i} has seq {c[i].seq}, expected {self.last_seq + 1 + i}")
        replies = np.zeros(n, dtype=REPLY_DTYPE)
        cdef ReplyRec* r = <ReplyRec*> cnp.PyArray_DATA(replies)
        self.evbuf.clear()
        for i in range(n):
            self._apply_one(&c[i], &r[i])
            self.last_seq = c[i].seq
        return self.evbuf.view(), replies

    cdef int _apply_one(self, const CmdRec* c, ReplyRec* r) except -1:
        cdef int k = c.kind
        if k == REPLACE:
            return self._replace(c, r)
        if k == NEW:
            return self._new(c, r)
        if k == CANCEL:
            return self._cancel(c, r)
        if k == REDUCE:
            return self._reduce(c, r)
        if k == MASS_CANCEL:
            return self._mass_cancel(c, r)
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

    cdef int _book_reject(self, const CmdRec* c, ReplyRec* r, Py_ssize_t e0) except -1:
        """The book rejected the command with the REJECTED event at ``e0``."""
        cdef EvRec* e = &self.evbuf.recs[e0]
        assert e.kind == REJECTED and self.evbuf.n == e0 + 1
        e.order_id = c.order_id            # the client's id, not the internal one
        e.user_id = c.user_id              # so order entry can route it like any event
        if c.kind == NEW:                  # the command's values, not the core's conversions
            e.price_ticks = c.price_ticks
            e.qty_lots = c.qty_lots
        _reply(r, c, ST_REJECTED, e.reason, 0)
        return 0

    # ---------------------------------------------------------------- trading

    cdef int _new(self, const CmdRec* c, ReplyRec* r) except -1:
        cdef int32_t us, ss, ak
        cdef int side = c.side, ot = c.ord_type, reason
        cdef ticks_t book_px = c.price_ticks, hold_px = 0, w
        cdef lots_t qty = c.qty_lots, book_qty = c.qty_lots
        cdef minor_t hold, n
        cdef int64_t bi, max_ppm, i
        cdef Py_ssize_t e0
        cdef URec* u
        cdef SRec* sym
        cdef ORec* o
        cdef EvRec* e
        cdef Book bk
        cdef oid_t iid
        if c.order_id == 0 or c.order_id > OID_MASK:
            return self._reject(c, r, INVALID_ORDER_ID)
        us = self._uslot(c.user_id)
        if us < 0:
            return self._reject(c, r, UNKNOWN_USER)
        u = &self.users[us]
        if c.order_id <= u.hwm and _order_seen(self, c, r, u):
            return 0                       # a retry (answered as the first) or a stale id
        iid = _iid(c.user_id, c.order_id)
        if u.suspended:
            return self._reject(c, r, USER_NOT_ACTIVE)
        ss = self._sslot(c.symbol_id)
        if ss < 0:
            return self._reject(c, r, UNKNOWN_SYMBOL)
        sym = &self.syms[ss]
        if sym.halted:
            return self._reject(c, r, SYMBOL_NOT_TRADING)
        if side != BUY and side != SELL:
            return self._reject(c, r, INVALID_SIDE)
        if ot < LIMIT or ot > STOP_MARKET:
            return self._reject(c, r, INVALID_ORDER_TYPE)
        if ot == MARKET_QUOTE and side == SELL:
            return self._reject(c, r, INVALID_SIDE)
        if qty <= 0:
            return self._reject(c, r, INVALID_QTY)
        # prices the hold or the notional depend on: the book's tick and band checks first
        if ot == LIMIT or ot == STOP_LIMIT or c.price_ticks != 0 and ot != MARKET_QUOTE:
            reason = _px_reason(sym, c.price_ticks)
            if reason:
                return self._reject(c, r, reason)
        if ot == STOP_MARKET and side == BUY:
            reason = _px_reason(sym, c.stop_price_ticks)
            if reason:
                return self._reject(c, r, reason)
        bk = <Book> self.books[ss]
        max_ppm = u.taker_ppm if u.taker_ppm > u.maker_ppm else u.maker_ppm
        if side == SELL:
            ak = sym.base_k
            hold = bursa_notional(qty, sym.base_per_lot, 1, NOTIONAL_MAX)
            if hold < 0:
                return self._reject(c, r, NOTIONAL_OVERFLOW)
            if ot == LIMIT or ot == STOP_LIMIT:
                n = bursa_notional(c.price_ticks, qty, sym.mult, NOTIONAL_MAX)
                if n < 0:
                    return self._reject(c, r, NOTIONAL_OVERFLOW)
                if n < sym.min_notional_minor:
                    return self._reject(c, r, BELOW_MIN_NOTIONAL)
        else:
            ak = sym.quote_k
            if ot == MARKET_QUOTE:
                # qty_lots is a budget in quote minor units, fee included; the book
                # spends price_ticks * lots units: floor(net / mult) of them
                if qty < sym.min_notional_minor:
                    return self._reject(c, r, BELOW_MIN_NOTIONAL)
                hold = qty
                book_qty = bursa_budget_net(qty, max_ppm) // sym.mult
                book_px = 0
            else:
                if ot == LIMIT or ot == STOP_LIMIT:
                    hold_px = c.price_ticks
                elif ot == MARKET:
                    w = _band_price(sym, bk.c_best_ask())
                    if c.price_ticks != 0 and (w == 0 or c.price_ticks < w):
                        w = c.price_ticks
                    hold_px = w
                    book_px = w
                else:                      # STOP_MARKET: worst price from the stop price
                    w = _band_price(sym, c.stop_price_ticks)
                    if c.price_ticks != 0 and c.price_ticks < w:
                        w = c.price_ticks
                    hold_px = w
                    book_px = w
                hold = 0
                if hold_px != 0:
                    n = bursa_notional(hold_px, qty, sym.mult, NOTIONAL_MAX)
                    if n < 0:
                        return self._reject(c, r, NOTIONAL_OVERFLOW)
                    if (ot == LIMIT or ot == STOP_LIMIT) and n < sym.min_notional_minor:
                        return self._reject(c, r, BELOW_MIN_NOTIONAL)
                    hold = n + bursa_fee_ceil(n, max_ppm)
        bi = self._bi(us, ak, 0)
        if hold > self.avail[bi]:
            return self._reject(c, r, INSUFFICIENT_FUNDS)
        if u.n_open >= self.user_order_limit:
            return self._reject(c, r, USER_ORDER_LIMIT)
        if self.n_live >= MAX_LIVE_ORDERS:
            return self._reject(c, r, TOO_MANY_ORDERS)
        o = self._oins(iid)
        o.hold = hold
        o.hold_price = hold_px
        o.user_id = c.user_id
        o.uslot = us
        u.n_open += 1
        o.taker_ppm = u.taker_ppm
        o.maker_ppm = u.maker_ppm
        o.sslot = <uint16_t> ss
        o.side = <uint8_t> side
        o.ord_type = <uint8_t> ot
        o.tif = c.tif
        o.stp = c.stp
        o.flags = c.flags
        o.pending_stop = ot == STOP_LIMIT or ot == STOP_MARKET
        self.avail[bi] -= hold
        self.held[bi] += hold
        bk.seq = c.seq
        bk.ts_ns = c.ts_ns
        e0 = self.evbuf.n
        bk.c_new_order(iid, c.user_id, side, ot, c.tif, book_px, book_qty,
                       c.stop_price_ticks, c.stp, c.flags)
        e = &self.evbuf.recs[e0]
        if e.kind == REJECTED:             # undo the hold: nothing changes
            i = _oslot(self, iid)
            assert i >= 0
            self._odel(i)
            self.avail[bi] += hold
            self.held[bi] -= hold
            return self._book_reject(c, r, e0)
        assert e.kind == ACCEPTED
        e.taker_fee = hold                 # hold after the event
        e.maker_fee = hold                 # change of the hold
        self._settle(e0 + 1, ss)
        self._client_ids(e0)
        i = _oslot(self, iid)
        _reply(r, c, ST_APPLIED, 0, self.otab[i].hold if i >= 0 else 0)
        _remember_order(self, us, c.order_id, _order_fp(c), r.value)
        return 0

    cdef int _cancel(self, const CmdRec* c, ReplyRec* r) except -1:
        cdef int64_t i = _uslot_oid(self, c)
        cdef int32_t ss
        cdef Py_ssize_t e0
        cdef Book bk
        if i < 0:
            return self._reject(c, r, UNKNOWN_ORDER_ID)
        if self.otab[i].user_id != c.user_id:
            return self._reject(c, r, NOT_ORDER_OWNER)
        ss = self.otab[i].sslot
        bk = <Book> self.books[ss]
        bk.seq = c.seq
        bk.ts_ns = c.ts_ns
        e0 = self.evbuf.n
        bk.c_cancel(self.otab[i].oid)
        if self.evbuf.recs[e0].kind == REJECTED:
            return self._book_reject(c, r, e0)
        self._settle(e0, ss)
        self._client_ids(e0)
        _reply(r, c, ST_APPLIED, 0, 0)
        return 0

    cdef int _reduce(self, const CmdRec* c, ReplyRec* r) except -1:
        cdef int64_t i = _uslot_oid(self, c)
        cdef oid_t iid
        cdef int32_t ss
        cdef Py_ssize_t e0
        cdef Book bk
        if i < 0:
            return self._reject(c, r, UNKNOWN_ORDER_ID)
        if self.otab[i].user_id != c.user_id:
            return self._reject(c, r, NOT_ORDER_OWNER)
        ss = self.otab[i].sslot
        bk = <Book> self.books[ss]
        bk.seq = c.seq
        bk.ts_ns = c.ts_ns
        e0 = self.evbuf.n
        iid = self.otab[i].oid
        bk.c_reduce(iid, c.qty_lots)
        if self.evbuf.recs[e0].kind == REJECTED:
            return self._book_reject(c, r, e0)
        self._settle(e0, ss)
        self._client_ids(e0)
        i = _oslot(self, iid)
        _reply(r, c, ST_APPLIED, 0, self.otab[i].hold if i >= 0 else 0)
        return 0

    cdef int _replace(self, const CmdRec* c, ReplyRec* r) except -1:
        cdef int64_t i = _uslot_oid(self, c)
        cdef oid_t iid
        cdef int32_t ss, ak
        cdef int reason
        cdef ORec* o
        cdef SRec* sym
        cdef minor_t n, need, old_hold, delta
        cdef ticks_t old_px
        cdef int64_t bi
        cdef Py_ssize_t e0
        cdef EvRec* e
        cdef Book bk
        if i < 0:
            return self._reject(c, r, UNKNOWN_ORDER_ID)
        o = &self.otab[i]
        if o.user_id != c.user_id:
            return self._reject(c, r, NOT_ORDER_OWNER)
        if self.users[o.uslot].suspended:
            return self._reject(c, r, USER_NOT_ACTIVE)
        ss = o.sslot
        sym = &self.syms[ss]
        if sym.halted:
            return self._reject(c, r, SYMBOL_NOT_TRADING)
        if o.pending_stop:
            return self._reject(c, r, NOT_REPLACEABLE)
        if c.qty_lots <= 0:
            return self._reject(c, r, INVALID_QTY)
        reason = _px_reason(sym, c.price_ticks)
        if reason:
            return self._reject(c, r, reason)
        n = bursa_notional(c.price_ticks, c.qty_lots, sym.mult, NOTIONAL_MAX)
        if n < 0:
            return self._reject(c, r, NOTIONAL_OVERFLOW)
        if n < sym.min_notional_minor:
            return self._reject(c, r, BELOW_MIN_NOTIONAL)
        if o.side == BUY:
            ak = sym.quote_k
            need = n + bursa_fee_ceil(n, o.taker_ppm if o.taker_ppm > o.maker_ppm else o.maker_ppm)
        else:
            ak = sym.base_k
            need = bursa_notional(c.qty_lots, sym.base_per_lot, 1, NOTIONAL_MAX)
            if need < 0:
                return self._reject(c, r, NOTIONAL_OVERFLOW)
        bi = self._bi(o.uslot, ak, 0)
        old_hold = o.hold
        old_px = o.hold_price
        delta = need - old_hold
        if delta > self.avail[bi]:
            return self._reject(c, r, INSUFFICIENT_FUNDS)
        # re-hold for the new worst case before the book moves the order
        self.avail[bi] -= delta
        self.held[bi] += delta
        o.hold = need
        if o.side == BUY:
            o.hold_price = c.price_ticks
        bk = <Book> self.books[ss]
        bk.seq = c.seq
        bk.ts_ns = c.ts_ns
        e0 = self.evbuf.n
        iid = o.oid
        bk.c_replace(iid, c.price_ticks, c.qty_lots)
        e = &self.evbuf.recs[e0]
        if e.kind == REJECTED:
            o = &self.otab[i]              # no insert happened: the slot is unchanged
            o.hold = old_hold
            o.hold_price = old_px
            self.avail[bi] += delta
            self.held[bi] -= delta
            return self._book_reject(c, r, e0)
        assert e.kind == REPLACED
        e.taker_fee = need
        e.maker_fee = delta
        self._settle(e0 + 1, ss)
        self._client_ids(e0)
        i = _oslot(self, iid)
        _reply(r, c, ST_APPLIED, 0, self.otab[i].hold if i >= 0 else 0)
        return 0

    cdef int _mass_cancel(self, const CmdRec* c, ReplyRec* r) except -1:
        cdef int32_t ss
        cdef Py_ssize_t e0, ncanceled = 0, first = self.evbuf.n
        cdef Book bk
        if self._uslot(c.user_id) < 0:
            return self._reject(c, r, UNKNOWN_USER)
        if c.flags & MASS_ALL_USERS:
            return self._reject(c, r, INVALID_FLAGS)   # whole book: CANCEL_ALL_SYMBOL (admin)
        if c.side != 0 and c.side != BUY and c.side != SELL:
            return self._reject(c, r, INVALID_SIDE)
        if c.symbol_id != 0 and self._sslot(c.symbol_id) < 0:
            return self._reject(c, r, UNKNOWN_SYMBOL)
        for sid in (sorted(self._symbol_ids()) if c.symbol_id == 0 else (c.symbol_id,)):
            ss = self.sid_slot[<int> sid]
            bk = <Book> self.books[ss]
            bk.seq = c.seq
            bk.ts_ns = c.ts_ns
            e0 = self.evbuf.n
            bk.c_mass_cancel(c.user_id, c.side, False)
            ncanceled += self.evbuf.n - e0
            self._settle(e0, ss)
        self._client_ids(first)
        _reply(r, c, ST_APPLIED, 0, ncanceled)
        return 0

    def _symbol_ids(self):
        return [self.syms[k].symbol_id for k in range(self.n_syms)]

    # ------------------------------------------------------------- settlement

    cdef int _settle(self, Py_ssize_t e0, int32_t ss) except -1:
        """Settle the events ``[e0, n)`` a book call appended (one symbol)."""
        cdef const SRec* sym = &self.syms[ss]
        cdef Py_ssize_t k = e0
        cdef EvRec* e
        cdef int64_t i
        # bounded by the events of one command; settlement itself appends none
        while k < self.evbuf.n:
            e = &self.evbuf.recs[k]
            if e.kind == TRADE:
                self._fill(e, sym)
            elif e.kind == CANCELED:
                self._release(e.order_id, e, True)
            elif e.kind == REDUCED:
                self._rehold(e, sym)
            elif e.kind == TRIGGERED:
                i = _oslot(self, e.order_id)
                assert i >= 0
                self.otab[i].pending_stop = 0
            k += 1
        return 0

    cdef int _fill(self, EvRec* e, const SRec* sym) except -1:
        """Move held funds of one fill to the counterparties; fees to the fee account."""
        cdef int64_t ti = _oslot(self, e.order_id), mi = _oslot(self, e.maker_order_id)
        cdef ORec* t
        cdef ORec* m
        cdef ORec* b
        cdef ORec* s
        cdef minor_t n, base_amt, fee_b, fee_s, cost
        cdef int64_t bq, bb, sq, sb
        assert ti >= 0 and mi >= 0, "fill of an order without a hold record"
        t = &self.otab[ti]
        m = &self.otab[mi]
        n = bursa_notional(e.price_ticks, e.qty_lots, sym.mult, NOTIONAL_MAX)
        base_amt = bursa_notional(e.qty_lots, sym.base_per_lot, 1, NOTIONAL_MAX)
        assert n >= 0 and base_amt >= 0
        if e.side == BUY:
            b = t
            s = m
            fee_b = bursa_fee_floor(n, t.taker_ppm)
            fee_s = bursa_fee_floor(n, m.maker_ppm)
            e.taker_fee = fee_b
            e.maker_fee = fee_s
        else:
            b = m
            s = t
            fee_b = bursa_fee_floor(n, m.maker_ppm)
            fee_s = bursa_fee_floor(n, t.taker_ppm)
            e.taker_fee = fee_s
            e.maker_fee = fee_b
        cost = n + fee_b
        assert b.hold >= cost, "buy hold does not cover the fill"
        assert s.hold >= base_amt, "sell hold does not cover the fill"
        bq = self._bi(b.uslot, sym.quote_k, 0)
        bb = self._bi(b.uslot, sym.base_k, 0)
        sq = self._bi(s.uslot, sym.quote_k, 0)
        sb = self._bi(s.uslot, sym.base_k, 0)
        b.hold -= cost
        self.held[bq] -= cost
        self.avail[bb] += base_amt
        s.hold -= base_amt
        self.held[sb] -= base_amt
        self.avail[sq] += n - fee_s
        self.assets_c[sym.quote_k].fee_minor += fee_b + fee_s
        assert self.held[bq] >= 0 and self.held[sb] >= 0
        # releasing deletes map slots (backward shift): look both up again by id
        if e.flags & TAKER_DONE:
            self._release(e.order_id, NULL, False)
        if e.flags & MAKER_DONE:
            self._release(e.maker_order_id, NULL, False)
        return 0

    cdef minor_t _release(self, oid_t oid, EvRec* e, bint canceled) except -1:
        """Release what an ended order still holds and drop its record; returns it."""
        cdef int64_t i = _oslot(self, oid), bi
        cdef ORec* o
        cdef const SRec* sym
        cdef minor_t amt
        assert i >= 0, "end of an order without a hold record"
        o = &self.otab[i]
        sym = &self.syms[o.sslot]
        bi = self._bi(o.uslot, sym.quote_k if o.side == BUY else sym.base_k, 0)
        amt = o.hold
        if BURSA_VARIANTS and canceled and self.v_double_release:
            # broken variant for the simulator's tests: the hold is released twice
            self.held[bi] -= 2 * amt
            self.avail[bi] += 2 * amt
        else:
            assert 0 <= amt <= self.held[bi]
            self.held[bi] -= amt
            self.avail[bi] += amt
        if e != NULL:
            e.taker_fee = 0
            e.maker_fee = -amt
        self._odel(i)
        return amt

    cdef minor_t _required(self, const ORec* o, const SRec* sym, ticks_t price,
                           lots_t open_lots) noexcept:
        """Worst-case hold of ``open_lots`` lots at ``price`` for order ``o``."""
        cdef minor_t n
        if o.side == SELL:
            return open_lots * sym.base_per_lot
        if o.ord_type == MARKET_QUOTE or price == 0:
            return o.hold if o.ord_type == MARKET_QUOTE else 0
        n = price * open_lots * sym.mult   # <= the notional checked at submission
        return n + bursa_fee_ceil(n, o.taker_ppm if o.taker_ppm > o.maker_ppm else o.maker_ppm)

    cdef int _rehold(self, EvRec* e, const SRec* sym) except -1:
        """An order's open quantity went down (REDUCED): keep only its worst case."""
        cdef int64_t i = _oslot(self, e.order_id), bi
        cdef ORec* o
        cdef minor_t need, rel
        assert i >= 0
        o = &self.otab[i]
        need = self._required(o, sym, o.hold_price, e.leaves_lots)
        assert 0 <= need <= o.hold, "reduced order needs more than it holds"
        rel = o.hold - need
        bi = self._bi(o.uslot, sym.quote_k if o.side == BUY else sym.base_k, 0)
        self.held[bi] -= rel
        self.avail[bi] += rel
        o.hold = need
        e.taker_fee = need
        e.maker_fee = -rel
        return 0

    # --------------------------------------------------------- admin, funding

    cdef int _admin(self, const CmdRec* c, ReplyRec* r) except -1:
        cdef int k = c.kind
        if k == DEPOSIT:
            return _deposit(self, c, r)
        if k == WITHDRAW_HOLD:
            return _withdraw_hold(self, c, r)
        if k == WITHDRAW_COMMIT or k == WITHDRAW_RELEASE:
            return _withdraw_end(self, c, r)
        if k == TRANSFER:
            return _transfer(self, c, r)
        if k == ADD_ASSET:
            return _add_asset(self, c, r)
        if k == ADD_SYMBOL:
            return _add_symbol(self, c, r)
        if k == SET_MIN_NOTIONAL:
            return _set_min_notional(self, c, r)
        if k == ADD_USER or k == SET_FEE_TIER:
            return _user_tier(self, c, r)
        if k == ADD_FEE_TIER:
            return _add_fee_tier(self, c, r)
        if k == HALT_SYMBOL or k == RESUME_SYMBOL:
            return _halt(self, c, r)
        if k == SUSPEND_USER or k == RESUME_USER:
            return _suspend(self, c, r)
        if k == CANCEL_ALL_SYMBOL:
            return _cancel_all(self, c, r)
        if k == SET_USER_ORDER_LIMIT:
            return _set_user_order_limit(self, c, r)
        return self._reject(c, r, UNKNOWN_COMMAND)

    # ------------------------------------------------------------ read helpers

    def balance(self, user_id, asset_id, account=0):
        """(available, held) of a user's balance, minor units; (0, 0) if unknown (any
        id out of range included: this never raises on an integer)."""
        if not (0 <= user_id < self.uid_len and 0 < asset_id < ASSET_IDS
                and account in (0, 1)):
            return (0, 0)
        cdef int32_t us = self._uslot(user_id)
        cdef int32_t ak = self._aslot(asset_id)
        if us < 0 or ak < 0:
            return (0, 0)
        cdef int64_t bi = self._bi(us, ak, account)
        return (self.avail[bi], self.held[bi])

    def fee_balance(self, asset_id):
        """The fee account of an asset, minor units (0 if unknown)."""
        cdef int32_t ak = self._aslot(asset_id)
        return self.assets_c[ak].fee_minor if ak >= 0 else 0

    def book(self, symbol_id):
        """The :class:`pyx.book.Book` of a symbol, or None."""
        cdef int32_t ss = self._sslot(symbol_id)
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

    def order_marks(self):
        """user id -> (highest accepted order id, forgotten floor, remembered (order id,
        fingerprint, value) oldest first) of every user that has had an order accepted."""
        cdef int32_t us
        cdef URec* u
        out = {}
        for us in range(self.n_users):
            u = &self.users[us]
            if u.hwm:
                out[u.user_id] = (u.hwm, u.floor, _ring_rows(u))
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
        for us in range(self.n_users):
            u = &self.users[us]
            users.append((u.user_id, u.tier, u.taker_ppm, u.maker_ppm, u.suspended, u.hwm,
                          u.floor))
            if u.ring != NULL:
                dedup.extend((u.user_id, *row) for row in _ring_rows(u))
            for ak in range(self.n_assets):
                for acc in range(N_ACCOUNTS):
                    bi = self._bi(us, ak, acc)
                    if self.avail[bi] != 0 or self.held[bi] != 0:
                        balances.append((u.user_id, self.assets_c[ak].asset_id, acc,
                                         self.avail[bi], self.held[bi]))
        users.sort()
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
            ak = _new_asset(self, asset_id, decimals)
            self.assets_c[ak].fee_minor = fee
            self.assets_c[ak].outstanding_minor = outstanding
            self.deposited[ak] = deposited
            self.withdrawn[ak] = withdrawn
        for uid, tier, taker, maker, suspended, hwm, floor in d["users"]:
            us = _new_user(self, uid, tier)
            self.users[us].taker_ppm = taker
            self.users[us].maker_ppm = maker
            self.users[us].suspended = suspended
        for uid, oid, fp, value in d["order_dedup"]:
            _remember_order(self, self.uid_slot[uid], oid, fp, value)
        for row in d["users"]:
            self.users[self.uid_slot[row[0]]].hwm = row[5]
            self.users[self.uid_slot[row[0]]].floor = row[6]
        for uid, asset_id, acc, av, hd in d["balances"]:
            bi = self._bi(self.uid_slot[uid], self.aid_slot[asset_id], acc)
            self.avail[bi] = av
            self.held[bi] = hd
        bookdump = dict(d["books"])
        for row in d["symbols"]:
            ss = _new_symbol(self, row[0], row[1], row[2], row[4], row[5], row[6], row[7],
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
                bi = self._bi(o.uslot, s.quote_k if o.side == BUY else s.base_k, 0)
                lvv[bi] += o.hold
        for uid, asset_id, acc, amount, state, _, _ in self.withdrawals.values():
            if state == WD_HELD:
                lvv[self._bi(self.uid_slot[uid], self.aid_slot[asset_id], acc)] += amount
        shape = (self.n_users, self.astride, N_ACCOUNTS)
        uids = [self.users[k].user_id for k in range(self.n_users)]
        aids = [self.assets_c[k].asset_id for k in range(self.n_assets)]
        fees = [self.assets_c[k].fee_minor for k in range(self.n_assets)]
        net = [self.deposited[k] - self.withdrawn[k] for k in range(self.n_assets)]
        outstanding = [self.assets_c[k].outstanding_minor for k in range(self.n_assets)]
        return (av.reshape(shape)[:, : self.n_assets], hd.reshape(shape)[:, : self.n_assets],
                lv.reshape(shape)[:, : self.n_assets], uids, aids, fees, net, outstanding)



# ---------------------------------------------------------------- helpers

cdef int _order_seen(CoreState self, const CmdRec* c, ReplyRec* r, URec* u) except -1:
    """A NEW whose id is not above the user's highest accepted id: 1 if it was answered
    here (a remembered exact retry gets the first outcome; a remembered id with other
    fields, or an id at or below the forgotten floor, a reject), 0 if it is new."""
    cdef uint64_t k, n = u.dcount if u.dcount < DEDUP_ORDERS else DEDUP_ORDERS
    cdef DRec* d
    if u.ring != NULL:
        for k in range(n):
            d = &u.ring[k]
            if d.oid == c.order_id:
                if d.fp != _order_fp(c):
                    self._reject(c, r, EXISTS_WITH_DIFFERENT_FIELDS)
                    return 1
                _reply(r, c, ST_DUPLICATE, 0, d.value)
                return 1
    if c.order_id <= u.floor:
        self._reject(c, r, ORDER_ID_TOO_OLD)
        return 1
    return 0


cdef int _remember_order(CoreState self, int32_t us, oid_t oid, uint64_t fp,
                         int64_t value) except -1:
    """Record an accepted NEW: raise the user's mark, keep it in the user's ring."""
    cdef URec* u = &self.users[us]
    if u.ring == NULL:
        u.ring = <DRec*> PyMem_Malloc(DEDUP_ORDERS * sizeof(DRec))
        if u.ring == NULL:
            raise MemoryError()
    cdef DRec* d = &u.ring[u.dcount % DEDUP_ORDERS]
    if u.dcount >= DEDUP_ORDERS and d.oid > u.floor:
        u.floor = d.oid                # forgotten: from now on too old to tell
    d.oid = oid
    d.fp = fp
    d.value = value
    u.dcount += 1
    if oid > u.hwm:
        u.hwm = oid
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


cdef int _ref_check(CoreState self, int which, uint64_t ref) except -1:
    """0 if an unknown ``ref`` may be new, else REFERENCE_TOO_OLD: at or below the highest
    reference of its kind already forgotten (a caller looks up remembered ones first)."""
    if ref <= self.ref_floors[which]:
        return REFERENCE_TOO_OLD
    return 0


cdef _ref_seen(CoreState self, int which):
    """A reference was just recorded: forget the oldest while more than ``ref_memory``
    are kept, raising the kind's floor to the highest forgotten.  A held withdrawal
    holds money: it is never forgotten (moved behind the newest instead)."""
    table = (self.deposit_refs, self.withdrawals, self.transfers)[which]
    cdef Py_ssize_t spins = len(table)
    while len(table) > self.ref_memory and spins > 0:
        spins -= 1
        k, v = table.popitem(last=False)
        if which == REF_WITHDRAWAL and v[4] == WD_HELD:
            table[k] = v
            continue
        if k > self.ref_floors[which]:
            self.ref_floors[which] = k


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


# ------------------------------------------------------- admin and funding
# Rare commands: plain Cython over Python containers.  Each validates fully
# before it changes anything, so a reject leaves the state untouched.

cdef EvRec* _push(CoreState self, const CmdRec* c, int kind) except NULL:
    cdef EvRec* e = self.evbuf.push()
    e.seq = c.seq
    e.ts_ns = c.ts_ns
    e.kind = kind
    e.user_id = c.user_id
    e.symbol_id = c.symbol_id
    return e


cdef int32_t _new_asset(CoreState self, int64_t asset_id, int64_t decimals) except -1:
    assert 0 < asset_id < ASSET_IDS and self.aid_slot[asset_id] < 0
    if self.n_assets == self.astride:
        self._grow_assets()
    cdef int32_t k = self.n_assets
    memset(&self.assets_c[k], 0, sizeof(ARec))
    self.assets_c[k].asset_id = <uint16_t> asset_id
    self.assets_c[k].decimals = <uint8_t> decimals
    self.aid_slot[asset_id] = k
    self.n_assets += 1
    self.deposited.append(0)
    self.withdrawn.append(0)
    return k


cdef int _size_uid_map(CoreState self, int64_t n) except -1:
    """Grow the user id -> slot map to ``n`` entries (new entries: no user)."""
    assert self.uid_len < n <= MAX_USER_ID + 1
    cdef int32_t* grown = <int32_t*> PyMem_Realloc(self.uid_slot, n * sizeof(int32_t))
    if grown == NULL:
        raise MemoryError()
    memset(grown + self.uid_len, 0xFF, (n - self.uid_len) * sizeof(int32_t))
    self.uid_slot = grown
    self.uid_len = n
    return 0


cdef int _size_symbols(CoreState self, int32_t cap) except -1:
    """Grow the symbol table to ``cap`` entries."""
    assert cap > self.scap
    cdef SRec* grown = <SRec*> PyMem_Realloc(self.syms, cap * sizeof(SRec))
    if grown == NULL:
        raise MemoryError()
    self.syms = grown
    self.scap = cap
    return 0


cdef int32_t _new_user(CoreState self, int64_t uid, object tier) except -1:
    cdef int64_t n
    assert 0 < uid <= MAX_USER_ID and self._uslot(uid) < 0
    if uid >= self.uid_len:
        n = self.uid_len
        while n <= uid:
            n *= 2
        if n > MAX_USER_ID + 1:
            n = MAX_USER_ID + 1
        self.growths += 1
        _size_uid_map(self, n)
    if self.n_users == self.ucap:
        self._grow_users()
    cdef int32_t us = self.n_users
    maker, taker = self.fee_tiers[tier]
    memset(&self.users[us], 0, sizeof(URec))
    self.users[us].user_id = <uid_t> uid
    self.users[us].tier = <uint32_t> tier
    self.users[us].maker_ppm = <uint32_t> maker
    self.users[us].taker_ppm = <uint32_t> taker
    self.uid_slot[uid] = us
    self.n_users += 1
    return us


cdef int32_t _new_symbol(CoreState self, int64_t sid, int64_t base, int64_t quote,
                         int64_t tick, int64_t lot, int64_t mult, int64_t bpl,
                         int64_t min_qty, int64_t max_qty, int64_t min_px, int64_t max_px,
                         int64_t prot) except -1:
    """Create the symbol and its book (raises ValueError if the book refuses the config)."""
    book = Book(sid, tick_step=tick, lot_step=lot, min_qty_lots=min_qty, max_qty_lots=max_qty,
                min_price_ticks=min_px, max_price_ticks=max_px, protection_ticks=prot,
                capacity_orders=BOOK_CAPACITY, events=self.evbuf)
    if self.book_reserve > 0:
        book.reserve(self.book_reserve)
    if self.n_syms == self.scap:
        self.growths += 1
        _size_symbols(self, 2 * self.scap)
    cdef int32_t ss = self.n_syms
    cdef SRec* s = &self.syms[ss]
    memset(s, 0, sizeof(SRec))
    s.symbol_id = <uint16_t> sid
    s.base_id = <uint16_t> base
    s.quote_id = <uint16_t> quote
    s.base_k = self.aid_slot[base]
    s.quote_k = self.aid_slot[quote]
    s.tick_step = tick
    s.lot_step = lot
    s.mult = mult
    s.base_per_lot = bpl
    s.min_qty_lots = min_qty
    s.max_qty_lots = max_qty
    s.min_price_ticks = min_px
    s.max_price_ticks = max_px
    s.protection_ticks = prot
    self.books.append(book)
    self.sid_slot[sid] = ss
    self.n_syms += 1
    return ss


cdef int _add_asset(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    if c.symbol_id == 0:
        return self._reject(c, r, INVALID_ID)
    if self._aslot(c.symbol_id) >= 0:
        return self._reject(c, r, ASSET_EXISTS)
    if c.a3 > MAX_DECIMALS:
        return self._reject(c, r, INVALID_CONFIG)
    _new_asset(self, c.symbol_id, c.a3)
    _push(self, c, ASSET_ADDED).qty_lots = c.a3
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int _add_symbol(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int64_t base = c.a3 & 0xFFFF, quote = c.a3 >> 16
    cdef int64_t tick = c.order_id & 0xFFFFFFFF, lot = c.order_id >> 32
    cdef int64_t min_qty = c.user_id, max_qty = c.qty_lots
    cdef int64_t min_px = c.price_ticks, max_px = c.stop_price_ticks
    cdef int64_t mult = c.a0, bpl = c.a1, prot = c.a2
    cdef EvRec* e
    if c.symbol_id == 0:
        return self._reject(c, r, INVALID_ID)
    if self._sslot(c.symbol_id) >= 0:
        return self._reject(c, r, SYMBOL_EXISTS)
    if self._aslot(base) < 0 or self._aslot(quote) < 0:
        return self._reject(c, r, UNKNOWN_ASSET)
    if (base == quote or tick < 1 or lot < 1 or min_qty < 1 or max_qty < min_qty
            or min_px < 1 or max_px < min_px or prot < 0 or mult < 1 or bpl < 1):
        return self._reject(c, r, INVALID_CONFIG)
    # overflow-safe by construction: the largest order's notional and base amount fit,
    # and so does a price level's total even if every live order rests at one price
    if (bursa_notional(max_px, max_qty, mult, NOTIONAL_MAX) < 0
            or bursa_notional(max_qty, bpl, 1, NOTIONAL_MAX) < 0
            or max_qty > INT64_MAX // MAX_LIVE_ORDERS):
        return self._reject(c, r, INVALID_CONFIG)
    try:
        _new_symbol(self, c.symbol_id, base, quote, tick, lot, mult, bpl, min_qty, max_qty,
                    min_px, max_px, prot)
    except ValueError:
        return self._reject(c, r, INVALID_CONFIG)
    e = _push(self, c, SYMBOL_ADDED)
    e.user_id = <uint32_t> base
    e.maker_user_id = <uint32_t> quote
    e.order_id = c.order_id
    e.maker_order_id = <uint64_t> min_qty
    e.price_ticks = min_px
    e.qty_lots = max_qty
    e.leaves_lots = max_px
    e.match_id = <uint64_t> prot
    e.taker_fee = mult
    e.maker_fee = bpl
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int _set_min_notional(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t ss = self._sslot(c.symbol_id)
    if ss < 0:
        return self._reject(c, r, UNKNOWN_SYMBOL)
    if c.a0 < 0:
        return self._reject(c, r, INVALID_CONFIG)
    self.syms[ss].min_notional_minor = c.a0
    _push(self, c, MIN_NOTIONAL_SET).qty_lots = c.a0
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int _set_user_order_limit(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    """Live orders per user at most (new orders beyond: USER_ORDER_LIMIT; orders
    already live stay)."""
    if not 0 < c.a0 <= MAX_LIVE_ORDERS:
        return self._reject(c, r, INVALID_CONFIG)
    if c.a0 == self.user_order_limit:
        return self._reject(c, r, ALREADY_IN_STATE)
    self.user_order_limit = c.a0
    _push(self, c, USER_ORDER_LIMIT_SET).qty_lots = c.a0
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int _add_fee_tier(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef EvRec* e
    if c.a3 in self.fee_tiers:
        return self._reject(c, r, FEE_TIER_EXISTS)
    if not (0 <= c.a0 <= PPM_MAX and 0 <= c.a1 <= PPM_MAX):
        return self._reject(c, r, INVALID_CONFIG)
    self.fee_tiers[c.a3] = (c.a0, c.a1)
    e = _push(self, c, FEE_TIER_ADDED)
    e.order_id = c.a3
    e.price_ticks = c.a0
    e.qty_lots = c.a1
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int _user_tier(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    """ADD_USER and SET_FEE_TIER: a user with the rates of a fee tier."""
    cdef int32_t us = self._uslot(c.user_id)
    cdef EvRec* e
    if c.kind == ADD_USER:
        if c.user_id == 0 or c.user_id > MAX_USER_ID:
            return self._reject(c, r, INVALID_ID)
        if us >= 0:
            return self._reject(c, r, USER_EXISTS)
    elif us < 0:
        return self._reject(c, r, UNKNOWN_USER)
    if c.a3 not in self.fee_tiers:
        return self._reject(c, r, UNKNOWN_FEE_TIER)
    maker, taker = self.fee_tiers[c.a3]
    if c.kind == ADD_USER:
        _new_user(self, c.user_id, c.a3)
        e = _push(self, c, USER_ADDED)
    else:
        if self.users[us].tier == c.a3:
            return self._reject(c, r, ALREADY_IN_STATE)
        # live orders keep the rates captured at their submission
        self.users[us].tier = c.a3
        self.users[us].maker_ppm = maker
        self.users[us].taker_ppm = taker
        e = _push(self, c, FEE_TIER_SET)
    e.order_id = c.a3
    e.price_ticks = maker
    e.qty_lots = taker
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int _halt(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t ss = self._sslot(c.symbol_id)
    cdef uint8_t want = c.kind == HALT_SYMBOL
    if ss < 0:
        return self._reject(c, r, UNKNOWN_SYMBOL)
    if self.syms[ss].halted == want:
        return self._reject(c, r, ALREADY_IN_STATE)
    self.syms[ss].halted = want
    _push(self, c, SYMBOL_HALTED if want else SYMBOL_RESUMED)
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int _suspend(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t us = self._uslot(c.user_id)
    cdef uint8_t want = c.kind == SUSPEND_USER
    if us < 0:
        return self._reject(c, r, UNKNOWN_USER)
    if self.users[us].suspended == want:
        return self._reject(c, r, ALREADY_IN_STATE)
    self.users[us].suspended = want
    _push(self, c, USER_SUSPENDED if want else USER_RESUMED)
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int _cancel_all(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t ss = self._sslot(c.symbol_id)
    cdef Py_ssize_t e0
    cdef Book bk
    if ss < 0:
        return self._reject(c, r, UNKNOWN_SYMBOL)
    bk = <Book> self.books[ss]
    bk.seq = c.seq
    bk.ts_ns = c.ts_ns
    e0 = self.evbuf.n
    bk.c_mass_cancel(0, 0, True)
    self._settle(e0, ss)
    self._client_ids(e0)
    _reply(r, c, ST_APPLIED, 0, self.evbuf.n - e0)
    return 0


cdef int _funding_ids(CoreState self, const CmdRec* c, int32_t* us, int32_t* ak) except -1:
    """Common checks of DEPOSIT / WITHDRAW_HOLD / TRANSFER: 0 or a reason."""
    us[0] = self._uslot(c.user_id)
    if us[0] < 0:
        return UNKNOWN_USER
    ak[0] = self._aslot(c.symbol_id)
    if ak[0] < 0:
        return UNKNOWN_ASSET
    return 0


cdef int _deposit(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t us, ak
    cdef int reason
    cdef int64_t bi
    cdef ARec* a
    cdef EvRec* e
    if c.order_id == 0:
        return self._reject(c, r, INVALID_ID)
    prev = self.deposit_refs.get(c.order_id)
    if prev is not None and not (BURSA_VARIANTS and self.v_dup_deposit):
        if prev[:4] != (c.user_id, c.symbol_id, c.a0, c.qty_lots):
            return self._reject(c, r, EXISTS_WITH_DIFFERENT_FIELDS)
        _reply(r, c, ST_DUPLICATE, 0, prev[4])
        return 0
    if prev is None:
        reason = _ref_check(self, REF_DEPOSIT, c.order_id)
        if reason:
            return self._reject(c, r, reason)
    reason = _funding_ids(self, c, &us, &ak)
    if reason:
        return self._reject(c, r, reason)
    if c.a0 < 0 or c.a0 >= N_ACCOUNTS:
        return self._reject(c, r, INVALID_ACCOUNT)
    if c.qty_lots <= 0:
        return self._reject(c, r, INVALID_AMOUNT)
    a = &self.assets_c[ak]
    if c.qty_lots >= SUPPLY_MAX - a.outstanding_minor:   # the supply stays below 2**62
        return self._reject(c, r, AMOUNT_OVERFLOW)
    bi = self._bi(us, ak, c.a0)
    self.avail[bi] += c.qty_lots
    a.outstanding_minor += c.qty_lots
    self.deposited[ak] += c.qty_lots
    self.deposit_refs[c.order_id] = (c.user_id, c.symbol_id, c.a0, c.qty_lots, self.avail[bi])
    _ref_seen(self, REF_DEPOSIT)
    e = _push(self, c, DEPOSITED)
    e.order_id = c.order_id
    e.qty_lots = c.qty_lots
    e.price_ticks = c.a0
    e.leaves_lots = self.avail[bi]
    _reply(r, c, ST_APPLIED, 0, self.avail[bi])
    return 0


cdef int _withdraw_hold(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t us, ak
    cdef int reason
    cdef int64_t bi
    cdef EvRec* e
    if c.order_id == 0:
        return self._reject(c, r, INVALID_ID)
    w = self.withdrawals.get(c.order_id)
    if w is not None:
        if (w[0], w[1], w[2], w[3]) != (c.user_id, c.symbol_id, c.a0, c.qty_lots):
            return self._reject(c, r, EXISTS_WITH_DIFFERENT_FIELDS)
        _reply(r, c, ST_DUPLICATE, 0, w[5])
        return 0
    reason = _ref_check(self, REF_WITHDRAWAL, c.order_id)
    if reason:
        return self._reject(c, r, reason)
    reason = _funding_ids(self, c, &us, &ak)
    if reason:
        return self._reject(c, r, reason)
    if self.users[us].suspended:
        return self._reject(c, r, USER_NOT_ACTIVE)
    if c.a0 < 0 or c.a0 >= N_ACCOUNTS:
        return self._reject(c, r, INVALID_ACCOUNT)
    if c.qty_lots <= 0:
        return self._reject(c, r, INVALID_AMOUNT)
    bi = self._bi(us, ak, c.a0)
    if c.qty_lots > self.avail[bi]:
        return self._reject(c, r, INSUFFICIENT_FUNDS)
    self.avail[bi] -= c.qty_lots
    self.held[bi] += c.qty_lots
    self.withdrawals[c.order_id] = [c.user_id, c.symbol_id, c.a0, c.qty_lots, WD_HELD,
                                    self.avail[bi], 0]
    _ref_seen(self, REF_WITHDRAWAL)
    e = _push(self, c, WITHDRAW_HELD)
    e.order_id = c.order_id
    e.qty_lots = c.qty_lots
    e.price_ticks = c.a0
    e.leaves_lots = self.avail[bi]
    _reply(r, c, ST_APPLIED, 0, self.avail[bi])
    return 0


cdef int _withdraw_end(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    """WITHDRAW_COMMIT (the held amount leaves) or WITHDRAW_RELEASE (back to available)."""
    cdef bint commit = c.kind == WITHDRAW_COMMIT
    cdef int64_t bi, amt
    cdef int32_t ak
    cdef EvRec* e
    w = self.withdrawals.get(c.order_id)
    if w is None:
        if c.order_id != 0 and _ref_check(self, REF_WITHDRAWAL, c.order_id):
            return self._reject(c, r, REFERENCE_TOO_OLD)
        return self._reject(c, r, UNKNOWN_WITHDRAWAL)
    uid, asset_id, acc, amt, state = w[:5]
    ak = self.aid_slot[<int> asset_id]
    bi = self._bi(self.uid_slot[<int64_t> uid], ak, acc)
    if state == (WD_COMMITTED if commit else WD_RELEASED):
        _reply(r, c, ST_DUPLICATE, 0, w[6])
        return 0
    if state != WD_HELD:
        return self._reject(c, r, WITHDRAWAL_RELEASED if commit else WITHDRAWAL_COMMITTED)
    assert self.held[bi] >= amt
    self.held[bi] -= amt
    if commit:
        self.assets_c[ak].outstanding_minor -= amt
        self.withdrawn[ak] += amt
        w[4] = WD_COMMITTED
    else:
        self.avail[bi] += amt
        w[4] = WD_RELEASED
    w[6] = self.avail[bi]
    e = _push(self, c, WITHDRAW_COMMITTED if commit else WITHDRAW_RELEASED)
    e.user_id = uid
    e.symbol_id = asset_id
    e.order_id = c.order_id
    e.qty_lots = amt
    e.price_ticks = acc
    e.leaves_lots = self.avail[bi]
    _reply(r, c, ST_APPLIED, 0, self.avail[bi])
    return 0


cdef int _transfer(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t us, ak
    cdef int reason
    cdef int64_t src, dst
    cdef EvRec* e
    if c.order_id == 0:
        return self._reject(c, r, INVALID_ID)
    prev = self.transfers.get(c.order_id)
    if prev is not None:
        if prev[:5] != (c.user_id, c.symbol_id, c.a0, c.a1, c.qty_lots):
            return self._reject(c, r, EXISTS_WITH_DIFFERENT_FIELDS)
        _reply(r, c, ST_DUPLICATE, 0, prev[5])
        return 0
    reason = _ref_check(self, REF_TRANSFER, c.order_id)
    if reason:
        return self._reject(c, r, reason)
    reason = _funding_ids(self, c, &us, &ak)
    if reason:
        return self._reject(c, r, reason)
    if self.users[us].suspended:
        return self._reject(c, r, USER_NOT_ACTIVE)
    if not (0 <= c.a0 < N_ACCOUNTS and 0 <= c.a1 < N_ACCOUNTS) or c.a0 == c.a1:
        return self._reject(c, r, INVALID_ACCOUNT)
    if c.qty_lots <= 0:
        return self._reject(c, r, INVALID_AMOUNT)
    src = self._bi(us, ak, c.a0)
    dst = self._bi(us, ak, c.a1)
    if c.qty_lots > self.avail[src]:
        return self._reject(c, r, INSUFFICIENT_FUNDS)
    self.avail[src] -= c.qty_lots
    self.avail[dst] += c.qty_lots
    self.transfers[c.order_id] = (c.user_id, c.symbol_id, c.a0, c.a1, c.qty_lots,
                                  self.avail[src])
    _ref_seen(self, REF_TRANSFER)
    e = _push(self, c, TRANSFERRED)
    e.order_id = c.order_id
    e.qty_lots = c.qty_lots
    e.price_ticks = c.a0
    e.maker_order_id = <uint64_t> c.a1
    e.leaves_lots = self.avail[src]
    _reply(r, c, ST_APPLIED, 0, self.avail[src])
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
