# cython: language_level=3
"""The Cython order book of one symbol: price-time priority matching.

The semantics are the contract in docs/book.md; tests/refbook.py implements the
same contract in pure Python and the differential tests compare the two.

Memory layout (no Python object and no malloc per order):

- ``orders``: a pool of ``Order`` structs, grown by doubling (realloc) up to
  ``max_orders``; free slots form a LIFO free list through ``Order.next``; slots
  above a high-water mark were never used (and cost no memory).
- ``levels``: a pool of ``Level`` structs (twice the order pool) holding the
  intrusive FIFO (head/tail slot) of its orders.
- per side a sorted array of levels, key = price for bids and -price for asks,
  ascending, so the BEST level is the LAST entry: the best price is O(1), a level
  created near the top costs a short memmove, and far-away levels cost nothing
  but a step of binary search.  A level that empties below the best stays in
  the array ("dormant"): its price can come back without a memmove, and a new
  price next to a dormant entry takes that entry over in place.  The last
  entry is never dormant.  A direct-mapped price -> level cache per side skips
  the binary search for prices in use.
- ``htab``: order_id -> slot, open addressing with linear probing and
  backward-shift deletion; load factor <= 1/2; it grows with the live orders.
- stop orders use the same pool, outside the levels: per side an array sorted by
  trigger key (the first to trigger last) and one arrival-ordered list.
"""

import hashlib
import sys

import numpy as np
cimport cython
cimport numpy as cnp
from libc.stdint cimport INT64_MAX
from libc.stdlib cimport malloc, realloc, free, qsort
from libc.string cimport memmove, memset, memcpy
from cpython.bytearray cimport PyByteArray_AS_STRING

from pyx.enums cimport (
    BUY, SELL, LIMIT, MARKET, MARKET_QUOTE, STOP_LIMIT, STOP_MARKET, GTC, IOC, FOK,
    STP_NONE, CANCEL_NEWEST, CANCEL_OLDEST, CANCEL_BOTH, DECREMENT,
    NEW, CANCEL, REDUCE, REPLACE, MASS_CANCEL, POST_ONLY, MASS_ALL_USERS,
    ACCEPTED, REJECTED, TRADE, CANCELED, REDUCED, REPLACED, TRIGGERED,
    TAKER_DONE, MAKER_DONE,
    OK, USER_CANCELED, IOC_REMAINDER, NO_LIQUIDITY, SELF_TRADE, MASS_CANCELED,
    BUDGET_EXHAUSTED, DUPLICATE_ORDER_ID, UNKNOWN_ORDER_ID, INVALID_QTY, QTY_OFF_LOT,
    QTY_OUT_OF_RANGE, PRICE_OFF_TICK, PRICE_OUT_OF_BAND, NOTIONAL_OVERFLOW,
    POST_ONLY_WOULD_TAKE, FOK_NOT_FILLABLE, INVALID_SIDE, INVALID_ORDER_TYPE, INVALID_TIF,
    INVALID_STP, BOOK_FULL, REDUCE_NOT_SMALLER, STOP_WOULD_TRIGGER, NOT_REPLACEABLE,
    REPLACE_NO_CHANGE, INVALID_FLAGS, UNKNOWN_COMMAND, LEVEL_OVERFLOW,
)

from bursa_wire.layout import CMD_DTYPE

cnp.import_array()

# The canonical dump writes native int64 bytes; it is defined as little-endian.
assert sys.byteorder == "little", "bursa's book dumps assume a little-endian machine"

cdef extern from *:
    """
    #ifndef BURSA_DEBUG
    #define BURSA_DEBUG 0
    #endif
    """
    int BURSA_DEBUG

# Whole-book invariant check after every command (expensive): debug build only.
cdef bint DEBUG = BURSA_DEBUG

cdef enum:
    # Order.state
    ST_FREE = 0
    ST_REST = 1          # resting in a level, in the id map, counted in n_orders
    ST_STOP = 2          # in the stop set, in the id map, counted
    ST_TAKER_NEW = 3     # a new order being matched: not in the map, not counted
    ST_TAKER_LIVE = 4    # a live order being matched (replaced / triggered): in map, counted
    ST_PENDING = 5       # triggered, waiting in the FIFO: in map, counted
    ST_DEAD = 6          # mass-canceled stop awaiting removal from its stop array
    # _match results
    END_FILLED = 1
    END_STP = 2          # the taker was ended by self-trade prevention
    END_NOLIQ = 3        # no maker left within the limit / band
    END_BUDGET = 4       # MARKET_QUOTE: the next lot does not fit in the budget
    # The last NEAR_SCAN levels are scanned linearly before binary search: new
    # orders cluster near the top of the book.
    NEAR_SCAN = 8
    # An emptied level below the best stays in its side's array ("dormant", count
    # 0): re-using its price costs no memmove, and a new price next to a dormant
    # entry takes that entry over in place.  A side is compacted when its dormant
    # levels exceed DORMANT_RATIO x its active ones + DORMANT_SLACK (amortised O(1);
    # measured on the exchange-core workload: 2 and 1024 keep about 3 dormant
    # entries per active one and make level inserts almost memmove-free).
    DORMANT_SLACK = 1024
    DORMANT_RATIO = 2
    # Initial size of the id map (entries); it doubles at load 1/2, so its size
    # follows the live orders, not the pool: a small map stays in cache.
    HMAP_MIN = 1024
    # Bounds of the pool (slots are int32; the id map holds at most 2x the pool).
    MAX_ORDERS_LIMIT = 1073741824    # 2**30 (a literal: overflowcheck cannot fold enum shifts)


cdef inline ticks_t lkey(int si, ticks_t price) noexcept nogil:
    """Sort key of a price on side index si (0 bids, 1 asks): the best is largest."""
    return price if si == 0 else -price


cdef inline ticks_t skey(int si, ticks_t stop_price) noexcept nogil:
    """Sort key of a stop on side index si: the first to trigger is largest.

    BUY stops (si 0) trigger when last >= stop: the lowest stop first.
    SELL stops (si 1) trigger when last <= stop: the highest stop first.
    """
    return -stop_price if si == 0 else stop_price


@cython.overflowcheck(False)   # wraps on purpose (hashing)
cdef inline uint32_t lcache_slot(ticks_t price) noexcept nogil:
    # Fibonacci hashing: consecutive multiples of any tick step spread out
    return <uint32_t> ((<uint64_t> price * <uint64_t>0x9E3779B97F4A7C15ULL) >> (64 - LCACHE_BITS))


@cython.overflowcheck(False)   # wraps on purpose (hashing)
cdef inline uint64_t mix64(uint64_t x) noexcept nogil:
    # murmur3 fmix64: sequential order ids spread over the whole table
    x ^= x >> 33
    x *= <uint64_t>0xff51afd7ed558ccdULL
    x ^= x >> 33
    x *= <uint64_t>0xc4ceb9fe1a85ec53ULL
    x ^= x >> 33
    return x


cdef inline int32_t lower_bound(const ticks_t* keys, int32_t n, ticks_t key) noexcept nogil:
    """First index i in [0, n] with keys[i] >= key (keys ascending)."""
    cdef int32_t i = n
    cdef int32_t stop = n - NEAR_SCAN if n > NEAR_SCAN else 0
    while i > stop and keys[i - 1] >= key:
        i -= 1
    if i > stop or stop == 0:
        return i
    # every key in [stop, n) is >= key: branch-free binary search of [0, stop)
    # (indices, not pointers: Cython's overflowcheck mis-scales pointer differences)
    cdef int32_t lo = 0
    cdef int32_t length = stop
    cdef int32_t half
    while length > 1:
        half = length >> 1
        lo = lo + half if keys[lo + half] < key else lo
        length -= half
    return lo + (keys[lo] < key)


cdef EvRec EV_ZERO    # all fields 0 (static storage)


cdef inline EvRec* ev_push(Book b) except NULL:
    """``b.evbuf.push()`` with its common case inlined: the next record, zeroed."""
    cdef EvRec* r
    if b.evbuf.n < b.evbuf.cap:
        r = &b.evbuf.recs[b.evbuf.n]
        b.evbuf.n += 1
        r[0] = EV_ZERO    # a fixed-size struct copy: vector stores, not "rep stos"
        return r
    return b.evbuf.push()


cdef int cmp_arrival(const void* a, const void* b) noexcept nogil:
    cdef uint64_t x = (<const ArrSlot*> a).arrival
    cdef uint64_t y = (<const ArrSlot*> b).arrival
    return (x > y) - (x < y)


cdef void* xrealloc(void* p, size_t nbytes) except NULL:
    cdef void* q = realloc(p, nbytes)
    if q == NULL:
        raise MemoryError(f"order book: cannot allocate {nbytes} bytes")
    return q


@cython.final
cdef class Book:
    """Order book of one symbol: integer ticks and lots, price-time priority.

    Parameters
    ----------
    symbol_id : int
        Stamped into every event.
    tick_step : int
        Prices must be multiples of it, ticks (>= 1).
    lot_step : int
        Quantities must be multiples of it, lots (>= 1).
    min_qty_lots, max_qty_lots : int
        Accepted order quantity range, lots, inclusive.
    min_price_ticks, max_price_ticks : int
        Price band, ticks, inclusive (min >= 1).
    protection_ticks : int
        Market orders trade at most this many ticks from the best opposite price.
    capacity_orders : int
        Initial pool size, orders; doubles when full, up to ``max_orders``.
    max_orders : int
        Bound on live orders (resting + stop); beyond it new orders get BOOK_FULL.
    events : EventBuf or None
        Buffer the events are appended to; a new one if None.

    Raises
    ------
    ValueError
        On an inconsistent configuration (see docs/book.md, Clarifications).
    """

    def __init__(self, int symbol_id=1, *, ticks_t tick_step=1, lots_t lot_step=1,
                 lots_t min_qty_lots=1, lots_t max_qty_lots=10**12,
                 ticks_t min_price_ticks=1, ticks_t max_price_ticks=10**12,
                 ticks_t protection_ticks=10**12, int64_t capacity_orders=1 << 16,
                 int64_t max_orders=1 << 24, EventBuf events=None):
        if self.orders != NULL:
            raise RuntimeError("Book.__init__ called twice")
        if not 0 <= symbol_id <= 0xFFFF:
            raise ValueError(f"symbol_id {symbol_id} does not fit uint16")
        if tick_step < 1 or lot_step < 1:
            raise ValueError("tick_step and lot_step must be >= 1")
        if not 1 <= min_qty_lots <= max_qty_lots:
            raise ValueError("need 1 <= min_qty_lots <= max_qty_lots")
        if not 1 <= min_price_ticks <= max_price_ticks:
            raise ValueError("need 1 <= min_price_ticks <= max_price_ticks")
        if protection_ticks < 0:
            raise ValueError("protection_ticks must be >= 0")
        if not 1 <= max_orders <= MAX_ORDERS_LIMIT:
            raise ValueError(f"max_orders must be in [1, {MAX_ORDERS_LIMIT}]")
        if capacity_orders < 1:
            raise ValueError("capacity_orders must be >= 1")
        self.symbol_id = symbol_id
        self.tick_step = tick_step
        self.lot_step = lot_step
        self.min_qty_lots = min_qty_lots
        self.max_qty_lots = max_qty_lots
        self.min_price_ticks = min_price_ticks
        self.max_price_ticks = max_price_ticks
        self.protection_ticks = protection_ticks
        self.notional_fits = max_price_ticks <= INT64_MAX // max_qty_lots
        self.max_orders = <int32_t> max_orders
        # no level can pass int64 when max_orders orders of max_qty_lots fit
        self.level_fits = max_qty_lots <= INT64_MAX // max_orders
        self.next_match_id = 1
        self.free_head = -1
        self.lfree_head = -1
        self.stop_head = -1
        self.stop_tail = -1
        self.trade_lo = INT64_MAX
        self.trade_hi = 0
        self.evbuf = events if events is not None else EventBuf()
        self.capacity = 0
        memset(self.lcache, 0xFF, sizeof(self.lcache))
        self._grow_to(<int32_t> min(capacity_orders, max_orders))

    def __dealloc__(self):
        cdef int i
        free(self.orders)
        free(self.levels)
        for i in range(2):
            free(self.lkeys[i])
            free(self.lidx[i])
            free(self.stop_arr[i])
        free(self.trig_q)
        free(self.scratch)
        free(self.htab)

    # ------------------------------------------------------------------ pool

    cdef int _grow(self) except -1:
        """Double the pool (bounded by max_orders); called only when it is full."""
        assert self.free_head < 0 and self.ohw == self.capacity < self.max_orders
        cdef int64_t new_cap = min(<int64_t> self.capacity * 2, <int64_t> self.max_orders)
        self.grows += 1
        return self._grow_to(<int32_t> new_cap)

    def reserve(self, int64_t orders):
        """Size the order pool and the id map for ``orders`` live orders now (capped at
        ``max_orders``), so that no command up to that many grows them; growth beyond
        stays as a fallback, counted in :attr:`grows`."""
        if orders < 1:
            raise ValueError("orders must be >= 1")
        cdef int64_t n = min(orders, <int64_t> self.max_orders)
        cdef uint64_t size = self.hmask + 1
        if n > self.capacity:
            self._grow_to(<int32_t> n)
        while size < <uint64_t> (2 * n):
            size *= 2
        if size > self.hmask + 1:
            self._rehash(size)

    cdef int _grow_to(self, int32_t new_cap) except -1:
        """Resize every pool-sized array to ``new_cap`` orders and rebuild the id map."""
        cdef int32_t old = self.capacity
        cdef int32_t i
        cdef size_t n = <size_t> new_cap
        assert new_cap > old
        self.orders = <Order*> xrealloc(self.orders, n * sizeof(Order))
        # levels: active ones <= resting orders <= capacity; dormant ones are
        # compacted away when the pool of 2 x capacity runs out
        self.levels = <Level*> xrealloc(self.levels, 2 * n * sizeof(Level))
        for i in range(2):
            self.lkeys[i] = <ticks_t*> xrealloc(self.lkeys[i], 2 * n * sizeof(ticks_t))
            self.lidx[i] = <slot_t*> xrealloc(self.lidx[i], 2 * n * sizeof(slot_t))
            self.stop_arr[i] = <slot_t*> xrealloc(self.stop_arr[i], n * sizeof(slot_t))
        self.trig_q = <slot_t*> xrealloc(self.trig_q, n * sizeof(slot_t))
        self.scratch = <ArrSlot*> xrealloc(self.scratch, n * sizeof(ArrSlot))
        if self.htab == NULL:
            self._rehash(HMAP_MIN)
        # Slots at and above the high-water marks (ohw, lhw) were never used and are
        # not initialised: a large pool costs no memory until it is reached.
        self.capacity = new_cap
        return 0

    cdef int _rehash(self, uint64_t new_size) except -1:
        cdef HEnt* old = self.htab
        cdef uint64_t old_size = self.hmask + 1 if old != NULL else 0
        cdef uint64_t i
        cdef HEnt* tab = <HEnt*> malloc(new_size * sizeof(HEnt))
        if tab == NULL:
            raise MemoryError("order book: cannot allocate the id map")
        memset(tab, 0xFF, new_size * sizeof(HEnt))    # slot -1 = empty
        self.htab = tab
        self.hmask = new_size - 1
        for i in range(old_size):
            if old[i].slot >= 0:
                self._hput(old[i].key, old[i].slot)
        free(old)
        return 0

    cdef slot_t _alloc(self) except -1:
        """A free order slot: the free list first, then the never-used ones."""
        cdef slot_t s = self.free_head
        if s >= 0:
            assert self.orders[s].state == ST_FREE
            self.free_head = self.orders[s].next
            return s
        if self.ohw == self.capacity:
            self._grow()
        s = self.ohw
        self.ohw += 1
        return s

    cdef slot_t _alloc_order(self, oid_t order_id, uid_t user_id, int side, int ord_type,
                             int tif, ticks_t price_ticks, lots_t open_lots,
                             ticks_t stop_price_ticks, int stp, int flags) except -1:
        """A free slot holding a fresh, unlinked order with these fields (state to be set)."""
        assert open_lots > 0
        cdef slot_t s = self._alloc()
        cdef Order* o = &self.orders[s]
        o.order_id = order_id
        o.user_id = user_id
        o.price = price_ticks
        o.open_lots = open_lots
        o.stop_price = stop_price_ticks
        o.arrival = 0
        o.prev = -1
        o.next = -1
        o.level = -1
        o.side = <uint8_t> side
        o.ord_type = <uint8_t> ord_type
        o.tif = <uint8_t> tif
        o.stp = <uint8_t> stp
        o.flags = <uint8_t> flags
        return s

    cdef void _free(self, slot_t s) noexcept:
        self.orders[s].state = ST_FREE
        self.orders[s].level = -1
        self.orders[s].next = self.free_head
        self.free_head = s

    # ---------------------------------------------------------- id -> slot

    cdef slot_t _hfind(self, oid_t key) noexcept:
        cdef uint64_t mask = self.hmask
        cdef uint64_t i = mix64(key) & mask
        cdef HEnt* tab = self.htab
        cdef uint64_t probes
        for probes in range(mask + 1):
            if tab[i].slot < 0:
                return -1
            if tab[i].key == key:
                return tab[i].slot
            i = (i + 1) & mask
        return -1

    cdef int _hins(self, oid_t key, slot_t s) except -1:
        """Map a new live order id to slot s (the map doubles at load 1/2)."""
        if 2 * (self.hcount + 1) > self.hmask + 1:
            self.grows += 1
            self._rehash(2 * (self.hmask + 1))
        self._hput(key, s)
        self.hcount += 1
        return 0

    cdef int _hput(self, oid_t key, slot_t s) except -1:
        cdef uint64_t mask = self.hmask
        cdef uint64_t i = mix64(key) & mask
        cdef HEnt* tab = self.htab
        cdef uint64_t probes
        for probes in range(mask + 1):
            if tab[i].slot < 0:
                tab[i].key = key
                tab[i].slot = s
                return 0
            assert tab[i].key != key, "order id inserted twice"
            i = (i + 1) & mask
        raise AssertionError("id map full")

    @cython.overflowcheck(False)   # probe distances are modular (unsigned wrap)
    cdef int _hdel(self, oid_t key) except -1:
        cdef uint64_t mask = self.hmask
        cdef uint64_t i = mix64(key) & mask
        cdef uint64_t j, home
        cdef HEnt* tab = self.htab
        cdef uint64_t probes
        for probes in range(mask + 1):
            assert tab[i].slot >= 0, "deleting an order id that is not in the map"
            if tab[i].key == key:
                break
            i = (i + 1) & mask
        # backward-shift deletion: pull later entries of the probe run into the hole
        j = i
        for probes in range(mask + 1):
            j = (j + 1) & mask
            if tab[j].slot < 0:
                break
            home = mix64(tab[j].key) & mask
            if ((j - home) & mask) >= ((j - i) & mask):
                tab[i] = tab[j]
                i = j
        tab[i].slot = -1
        self.hcount -= 1
        return 0

    # -------------------------------------------------------------- levels

    cdef slot_t _level_at(self, int si, ticks_t price) except -1:
        """Slot of the level at ``price`` on side index si, created if absent."""
        cdef uint32_t h = lcache_slot(price)
        cdef slot_t lv = self.lcache[si][h]
        if lv >= 0 and self.levels[lv].next_free == LEVEL_IN_SIDE - si \
                and self.levels[lv].price == price:
            if self.levels[lv].count == 0:
                self.ndorm[si] -= 1
            return lv
        cdef ticks_t key = lkey(si, price)
        cdef ticks_t* keys = self.lkeys[si]
        cdef slot_t* idx = self.lidx[si]
        cdef int32_t n = self.nlev[si]
        cdef int32_t pos = lower_bound(keys, n, key)
        if pos < n and keys[pos] == key:
            lv = idx[pos]
            self.lcache[si][h] = lv
            if self.levels[lv].count == 0:
                self.ndorm[si] -= 1
            return lv
        # A dormant neighbour of the insertion point takes the new price in place:
        # the array stays sorted (keys[pos-1] < key < keys[pos]) and nothing moves.
        if pos < n and self.levels[idx[pos]].count == 0:
            return self._level_recycle(si, pos, price, h)
        if pos > 0 and self.levels[idx[pos - 1]].count == 0:
            return self._level_recycle(si, pos - 1, price, h)
        if self.lfree_head < 0 and self.lhw == 2 * self.capacity:
            # active levels <= resting orders <= capacity: at least half are dormant
            self._level_compact(0)
            self._level_compact(1)
            n = self.nlev[si]
            pos = lower_bound(keys, n, key)
        lv = self.lfree_head
        if lv >= 0:
            self.lfree_head = self.levels[lv].next_free
        else:
            lv = self.lhw
            self.lhw += 1
        assert 0 <= lv < 2 * self.capacity and n < 2 * self.capacity, "level pool exhausted"
        self.lcache[si][h] = lv
        cdef Level* L = &self.levels[lv]
        L.next_free = LEVEL_IN_SIDE - si
        L.price = price
        L.total_lots = 0
        L.head = -1
        L.tail = -1
        L.count = 0
        if pos < n:
            memmove(&keys[pos + 1], &keys[pos], (n - pos) * sizeof(ticks_t))
            memmove(&idx[pos + 1], &idx[pos], (n - pos) * sizeof(slot_t))
        keys[pos] = key
        idx[pos] = lv
        self.nlev[si] = n + 1
        return lv

    cdef slot_t _level_find(self, int si, ticks_t price) noexcept:
        """Slot of the level at ``price`` on side index si (dormant included), else -1."""
        cdef ticks_t key = lkey(si, price)
        cdef int32_t n = self.nlev[si]
        cdef int32_t pos = lower_bound(self.lkeys[si], n, key)
        if pos < n and self.lkeys[si][pos] == key:
            return self.lidx[si][pos]
        return -1

    cdef slot_t _level_recycle(self, int si, int32_t pos, ticks_t price, uint32_t h) except -1:
        """Give the dormant level at array position ``pos`` the new ``price``."""
        cdef slot_t lv = self.lidx[si][pos]
        cdef Level* L = &self.levels[lv]
        assert L.count == 0 and L.total_lots == 0 and L.head == -1 and pos < self.nlev[si] - 1
        L.price = price
        self.lkeys[si][pos] = lkey(si, price)
        self.lcache[si][h] = lv
        self.ndorm[si] -= 1
        return lv

    cdef int _level_drop(self, int si, slot_t lv) except -1:
        """Level lv of side index si just emptied: pop it if best, else leave it dormant.

        Popping also pops the dormant levels under it, so the last level of a
        side is never empty: the best price stays O(1).
        """
        cdef slot_t* idx = self.lidx[si]
        cdef int32_t n = self.nlev[si]
        cdef int32_t it
        assert self.levels[lv].count == 0 and self.levels[lv].total_lots == 0 and n > 0
        if idx[n - 1] != lv:
            self.ndorm[si] += 1
            if self.ndorm[si] > DORMANT_RATIO * (n - self.ndorm[si]) + DORMANT_SLACK:
                self._level_compact(si)
            return 0
        for it in range(n):
            lv = idx[n - 1]
            if self.levels[lv].count != 0:
                break
            self.levels[lv].next_free = self.lfree_head
            self.lfree_head = lv
            n -= 1
            if it > 0:
                self.ndorm[si] -= 1
        self.nlev[si] = n
        assert self.ndorm[si] >= 0
        return 0

    cdef int _level_compact(self, int si) except -1:
        """Free the dormant levels of side index si (one pass, order kept)."""
        cdef ticks_t* keys = self.lkeys[si]
        cdef slot_t* idx = self.lidx[si]
        cdef int32_t i, w = 0
        cdef slot_t lv
        for i in range(self.nlev[si]):
            lv = idx[i]
            if self.levels[lv].count == 0:
                self.levels[lv].next_free = self.lfree_head
                self.lfree_head = lv
            else:
                keys[w] = keys[i]
                idx[w] = lv
                w += 1
        self.nlev[si] = w
        self.ndorm[si] = 0
        return 0

    cdef int _append(self, slot_t s, slot_t lv) except -1:
        """Put order s at the back of level lv."""
        cdef Order* o = &self.orders[s]
        cdef Level* L = &self.levels[lv]
        assert o.open_lots > 0 and L.price == o.price
        assert L.total_lots <= INT64_MAX - o.open_lots, "level total overflows int64"
        o.level = lv
        o.next = -1
        o.prev = L.tail
        if L.tail >= 0:
            self.orders[L.tail].next = s
        else:
            L.head = s
        L.tail = s
        L.count += 1
        L.total_lots += o.open_lots
        o.state = ST_REST
        return 0

    cdef int _unlink(self, slot_t s, bint drop_level) except -1:
        """Take resting order s out of its level (dropping the level if it empties)."""
        cdef Order* o = &self.orders[s]
        cdef slot_t lv = o.level
        cdef Level* L = &self.levels[lv]
        assert o.state == ST_REST and lv >= 0
        if o.prev >= 0:
            self.orders[o.prev].next = o.next
        else:
            L.head = o.next
        if o.next >= 0:
            self.orders[o.next].prev = o.prev
        else:
            L.tail = o.prev
        L.count -= 1
        L.total_lots -= o.open_lots
        assert L.count >= 0 and L.total_lots >= 0
        o.level = -1
        if drop_level and L.count == 0:
            self._level_drop(o.side - 1, lv)
        return 0

    cdef int _remove_resting(self, slot_t s) except -1:
        """Remove resting order s from the book entirely."""
        self._unlink(s, True)
        self._hdel(self.orders[s].order_id)
        self._free(s)
        self.n_orders -= 1
        return 0

    # --------------------------------------------------------------- stops

    cdef int _stop_pos(self, int si, slot_t s) except -1:
        """Index in stop_arr[si] where stop s is (or goes): sorted by (key, arrival)."""
        cdef slot_t* arr = self.stop_arr[si]
        cdef Order* o = &self.orders[s]
        cdef ticks_t key = skey(si, o.stop_price)
        cdef int32_t lo = 0
        cdef int32_t hi = self.nstop[si]
        cdef int32_t mid
        cdef Order* m
        cdef ticks_t mk
        while lo < hi:
            mid = (lo + hi) >> 1
            m = &self.orders[arr[mid]]
            mk = skey(si, m.stop_price)
            if mk < key or (mk == key and m.arrival < o.arrival):
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef int _stop_insert(self, slot_t s) except -1:
        """Put stop s in its side's sorted array and at the end of the arrival list."""
        cdef Order* o = &self.orders[s]
        cdef int si = o.side - 1
        cdef int32_t n = self.nstop[si]
        cdef slot_t* arr = self.stop_arr[si]
        o.arrival = self.next_arrival
        self.next_arrival += 1
        cdef int32_t pos = self._stop_pos(si, s)
        assert n < self.capacity
        if pos < n:
            memmove(&arr[pos + 1], &arr[pos], (n - pos) * sizeof(slot_t))
        arr[pos] = s
        self.nstop[si] = n + 1
        # arrival list
        o.next = -1
        o.prev = self.stop_tail
        if self.stop_tail >= 0:
            self.orders[self.stop_tail].next = s
        else:
            self.stop_head = s
        self.stop_tail = s
        o.state = ST_STOP
        return 0

    cdef int _stop_remove(self, slot_t s) except -1:
        """Remove stop s from its sorted array and the arrival list (not from the map)."""
        cdef Order* o = &self.orders[s]
        cdef int si = o.side - 1
        cdef int32_t n = self.nstop[si]
        cdef slot_t* arr = self.stop_arr[si]
        cdef int32_t pos = self._stop_pos(si, s)
        assert o.state == ST_STOP and pos < n and arr[pos] == s, "stop not in its array"
        memmove(&arr[pos], &arr[pos + 1], (n - 1 - pos) * sizeof(slot_t))
        self.nstop[si] = n - 1
        _list_unlink(self, s)
        return 0

    # -------------------------------------------------------------- events

    cdef EvRec* _ev(self, int kind, const Order* o, int reason) except NULL:
        """Append an event about order o (caller fills qty / leaves / extras)."""
        cdef EvRec* e = ev_push(self)
        e.seq = self.seq
        e.ts_ns = self.ts_ns
        e.symbol_id = self.symbol_id
        e.kind = kind
        e.reason = reason
        e.order_id = o.order_id
        e.user_id = o.user_id
        e.side = o.side
        e.ord_type = o.ord_type
        e.price_ticks = o.price
        return e

    cdef int _ev_cancel(self, const Order* o, lots_t qty, int reason) except -1:
        """Append a CANCELED event: ``qty`` lots of order o canceled for ``reason``."""
        cdef EvRec* e = self._ev(CANCELED, o, reason)
        e.qty_lots = qty
        return 0

    cdef int _reject(self, oid_t order_id, uid_t user_id, int side, int ord_type,
                     ticks_t price_ticks, lots_t qty_lots, int reason) except -1:
        """Append a REJECTED event carrying the command's fields; returns 1 (events)."""
        cdef EvRec* e = ev_push(self)
        e.seq = self.seq
        e.ts_ns = self.ts_ns
        e.symbol_id = self.symbol_id
        e.kind = REJECTED
        e.reason = reason
        e.order_id = order_id
        e.user_id = user_id
        e.side = <uint8_t> side
        e.ord_type = <uint8_t> ord_type
        e.price_ticks = price_ticks
        e.qty_lots = qty_lots
        return 1

    # ---------------------------------------------------------- validation

    cdef int _check_price(self, ticks_t price, lots_t qty) noexcept:
        """Tick, band, then notional overflow of price * qty (qty > 0)."""
        if self.tick_step != 1 and price % self.tick_step != 0:
            return PRICE_OFF_TICK
        if price < self.min_price_ticks or price > self.max_price_ticks:
            return PRICE_OUT_OF_BAND
        # price and qty are positive here; a 64-bit division costs ~40 cycles, so
        # skip it when the band and the quantity limit cannot overflow together
        if not self.notional_fits and price > INT64_MAX // qty:
            return NOTIONAL_OVERFLOW
        return OK

    cdef int _check_new(self, oid_t order_id, uid_t user_id, int side, int ord_type, int tif,
                        ticks_t price_ticks, lots_t qty_lots, ticks_t stop_price_ticks,
                        int stp, int flags) noexcept:
        """Reason of the first failing new-order check (docs/book.md order), or OK."""
        cdef int r
        cdef bint is_stop = ord_type == STOP_LIMIT or ord_type == STOP_MARKET
        if side != BUY and side != SELL:
            return INVALID_SIDE
        if ord_type < LIMIT or ord_type > STOP_MARKET:
            return INVALID_ORDER_TYPE
        if ord_type == MARKET_QUOTE and side == SELL:
            return INVALID_SIDE
        if ord_type == LIMIT or ord_type == STOP_LIMIT:
            if tif != GTC and tif != IOC and tif != FOK:
                return INVALID_TIF
        elif tif != IOC:
            return INVALID_TIF
        if stp < STP_NONE or stp > DECREMENT:
            return INVALID_STP
        if (flags & ~POST_ONLY) != 0:
            return INVALID_FLAGS
        if (flags & POST_ONLY) and not (ord_type == LIMIT and tif == GTC):
            return INVALID_FLAGS
        if self._hfind(order_id) >= 0:
            return DUPLICATE_ORDER_ID
        if qty_lots <= 0:
            return INVALID_QTY
        if ord_type != MARKET_QUOTE:
            if self.lot_step != 1 and qty_lots % self.lot_step != 0:
                return QTY_OFF_LOT
            if qty_lots < self.min_qty_lots or qty_lots > self.max_qty_lots:
                return QTY_OUT_OF_RANGE
            if ord_type == LIMIT or ord_type == STOP_LIMIT or price_ticks != 0:
                r = self._check_price(price_ticks, qty_lots)
                if r != OK:
                    return r
        if is_stop:
            if self.tick_step != 1 and stop_price_ticks % self.tick_step != 0:
                return PRICE_OFF_TICK
            if stop_price_ticks < self.min_price_ticks or stop_price_ticks > self.max_price_ticks:
                return PRICE_OUT_OF_BAND
            if self.last_price_ticks != 0:
                if side == BUY and self.last_price_ticks >= stop_price_ticks:
                    return STOP_WOULD_TRIGGER
                if side == SELL and self.last_price_ticks <= stop_price_ticks:
                    return STOP_WOULD_TRIGGER
        if self.n_orders >= self.max_orders:
            return BOOK_FULL
        if (flags & POST_ONLY) and self._crosses(side, price_ticks):
            return POST_ONLY_WOULD_TAKE
        if ord_type == LIMIT and tif == FOK:
            if not self._fok_fillable(side, price_ticks, qty_lots, user_id, stp):
                return FOK_NOT_FILLABLE
        if ord_type == LIMIT and tif == GTC and \
                self._level_would_overflow(side, price_ticks, qty_lots, -1):
            return LEVEL_OVERFLOW
        return OK

    cdef bint _level_would_overflow(self, int side, ticks_t price, lots_t add,
                                    slot_t self_slot) noexcept:
        """Would ``add`` more lots at ``price`` on ``side`` pass the int64 level total?

        ``self_slot`` (or -1) is an order already in that level that leaves it
        first (a replace), so its open quantity does not count.
        """
        cdef slot_t lv
        cdef lots_t total
        if self.level_fits:
            return False
        lv = self._level_find(side - 1, price)
        if lv < 0:
            return False
        total = self.levels[lv].total_lots
        if self_slot >= 0 and self.orders[self_slot].level == lv:
            total -= self.orders[self_slot].open_lots
        return total > INT64_MAX - add

    cdef bint _crosses(self, int side, ticks_t price) noexcept:
        """Would a limit at ``price`` on ``side`` meet the best opposite price?"""
        cdef int oi = 2 - side
        cdef int32_t n = self.nlev[oi]
        if n == 0:
            return False
        return self.lkeys[oi][n - 1] >= lkey(oi, price)

    cdef bint _fok_fillable(self, int side, ticks_t price, lots_t qty, uid_t user_id,
                            int stp) noexcept:
        """FOK walk: can ``qty`` lots fill within ``price`` (docs/book.md, FOK)?"""
        cdef int oi = 2 - side
        cdef ticks_t lim_key = lkey(oi, price)
        cdef ticks_t* keys = self.lkeys[oi]
        cdef slot_t* idx = self.lidx[oi]
        cdef int32_t i, k
        cdef slot_t m
        cdef Order* M
        cdef lots_t total = 0
        for i in range(self.nlev[oi] - 1, -1, -1):
            if keys[i] < lim_key:
                return False
            m = self.levels[idx[i]].head
            for k in range(self.levels[idx[i]].count):
                M = &self.orders[m]
                if M.user_id == user_id and stp != STP_NONE:
                    if stp == CANCEL_NEWEST or stp == CANCEL_BOTH:
                        return False
                else:
                    # compare before adding: total < qty, so qty - total cannot wrap
                    if M.open_lots >= qty - total:
                        return True
                    total += M.open_lots
                m = M.next
        return False

    # ------------------------------------------------------------ matching

    cdef ticks_t _limit_key(self, const Order* t) noexcept:
        """Key on the opposite side that a maker must reach (>=) to match taker t."""
        cdef int oi = 2 - t.side
        cdef int32_t n = self.nlev[oi]
        cdef ticks_t best, band
        if t.ord_type == LIMIT or t.ord_type == STOP_LIMIT:
            return lkey(oi, t.price)
        if n == 0:
            return INT64_MAX    # empty at arrival: stays empty while this taker matches
        best = self.levels[self.lidx[oi][n - 1]].price
        if t.side == BUY:
            band = INT64_MAX if self.protection_ticks > INT64_MAX - best \
                else best + self.protection_ticks
            if t.price != 0 and t.price < band:
                band = t.price
        else:
            band = best - self.protection_ticks
            if t.price != 0 and t.price > band:
                band = t.price
        return lkey(oi, band)

    cdef int _stp(self, slot_t s, slot_t m, int mode) except -1:
        """Self-trade prevention between taker s and maker m; 1 if the taker ended."""
        cdef Order* t = &self.orders[s]
        cdef Order* M = &self.orders[m]
        cdef lots_t d
        cdef EvRec* e
        if mode == DECREMENT and t.ord_type == MARKET_QUOTE:
            mode = CANCEL_NEWEST    # a budget cannot be decremented by lots
        if mode == CANCEL_NEWEST:
            self._ev_cancel(t, t.open_lots, SELF_TRADE)
            return 1
        if mode == CANCEL_OLDEST or mode == CANCEL_BOTH:
            self._ev_cancel(M, M.open_lots, SELF_TRADE)
            self._remove_resting(m)
            if mode == CANCEL_OLDEST:
                return 0
            self._ev_cancel(t, t.open_lots, SELF_TRADE)
            return 1
        assert mode == DECREMENT
        d = min(t.open_lots, M.open_lots)
        assert d > 0
        M.open_lots -= d
        self.levels[M.level].total_lots -= d
        t.open_lots -= d
        if M.open_lots == 0:
            self._ev_cancel(M, d, SELF_TRADE)
            self._remove_resting(m)
        else:
            e = self._ev(REDUCED, M, SELF_TRADE)
            e.qty_lots = d
            e.leaves_lots = M.open_lots
        if t.open_lots == 0:
            self._ev_cancel(t, d, SELF_TRADE)
            return 1
        e = self._ev(REDUCED, t, SELF_TRADE)
        e.qty_lots = d
        e.leaves_lots = t.open_lots
        return 0

    cdef int _match(self, slot_t s, ticks_t lim_key) except -1:
        """Match taker s against the opposite side while makers reach lim_key.

        One loop for both sides: the opposite side's keys are ascending with the
        best last, so "within the limit" is always ``key >= lim_key``.
        """
        cdef Order* t = &self.orders[s]
        cdef int oi = 2 - t.side
        cdef bint quote = t.ord_type == MARKET_QUOTE
        cdef int stp = t.stp
        cdef uid_t uid = t.user_id
        cdef ticks_t* keys = self.lkeys[oi]
        cdef slot_t* idx = self.lidx[oi]
        cdef int32_t n
        cdef int32_t it
        cdef slot_t lv, m
        cdef Level* L
        cdef Order* M
        cdef ticks_t price
        cdef lots_t q
        cdef EvRec* e
        # every iteration removes a maker or ends the taker: bounded by the pool
        for it in range(self.capacity + 1):
            n = self.nlev[oi]
            if n == 0 or keys[n - 1] < lim_key:
                return END_NOLIQ
            lv = idx[n - 1]
            L = &self.levels[lv]
            m = L.head
            M = &self.orders[m]
            if M.user_id == uid and stp != STP_NONE:
                if self._stp(s, m, stp):
                    return END_STP
                if t.open_lots == 0:
                    return END_FILLED
                continue
            price = L.price
            assert M.open_lots > 0 and lkey(oi, price) >= lim_key
            if quote:
                q = (t.open_lots // price) // self.lot_step * self.lot_step
                if q == 0:
                    return END_BUDGET
                if q > M.open_lots:
                    q = M.open_lots
                assert q * price <= t.open_lots, "fill beyond the quote budget"
                t.open_lots -= q * price
            else:
                q = M.open_lots if M.open_lots < t.open_lots else t.open_lots
                t.open_lots -= q
            assert 0 < q <= M.open_lots and t.open_lots >= 0
            M.open_lots -= q
            L.total_lots -= q
            self.last_price_ticks = price
            # every trade price counts for the stops, not only the last (docs/book.md)
            if price < self.trade_lo:
                self.trade_lo = price
            if price > self.trade_hi:
                self.trade_hi = price
            e = ev_push(self)
            e.seq = self.seq
            e.ts_ns = self.ts_ns
            e.symbol_id = self.symbol_id
            e.kind = TRADE
            e.order_id = t.order_id
            e.maker_order_id = M.order_id
            e.user_id = uid
            e.maker_user_id = M.user_id
            e.price_ticks = price
            e.qty_lots = q
            e.leaves_lots = t.open_lots
            e.match_id = self.next_match_id
            e.side = t.side
            e.ord_type = t.ord_type
            e.flags = (TAKER_DONE if t.open_lots == 0 else 0) | \
                (MAKER_DONE if M.open_lots == 0 else 0)
            self.next_match_id += 1
            if M.open_lots == 0:
                self._remove_resting(m)
            if t.open_lots == 0:
                return END_FILLED
        raise AssertionError("matching loop exceeded the pool size")

    cdef int _take(self, slot_t s) except -1:
        """Match taker s, then rest (GTC) or cancel its remainder."""
        cdef Order* t = &self.orders[s]
        cdef int end = self._match(s, self._limit_key(t))
        cdef int reason
        if end == END_STP or t.open_lots == 0:
            return self._drop_taker(s)
        if t.tif == GTC:
            assert t.ord_type == LIMIT or t.ord_type == STOP_LIMIT
            return self._rest(s)
        if t.ord_type == LIMIT or t.ord_type == STOP_LIMIT:
            reason = IOC_REMAINDER
        elif t.ord_type == MARKET_QUOTE and end == END_BUDGET:
            reason = BUDGET_EXHAUSTED
        else:
            reason = NO_LIQUIDITY
        self._ev_cancel(t, t.open_lots, reason)
        return self._drop_taker(s)

    cdef int _rest(self, slot_t s) except -1:
        """Rest the GTC remainder of taker s at the back of its price level."""
        cdef Order* o = &self.orders[s]
        if o.state == ST_TAKER_NEW:
            self._hins(o.order_id, s)
            self.n_orders += 1
        else:
            assert o.state == ST_TAKER_LIVE
        self._append(s, self._level_at(o.side - 1, o.price))
        return 0

    cdef int _drop_taker(self, slot_t s) except -1:
        """Forget taker s (filled, canceled or rejected): id map, count, slot."""
        cdef Order* o = &self.orders[s]
        if o.state == ST_TAKER_LIVE:
            self._hdel(o.order_id)
            self.n_orders -= 1
        else:
            assert o.state == ST_TAKER_NEW
        self._free(s)
        return 0

    # ------------------------------------------------------------ triggers

    cdef int _collect_triggered(self, int32_t qt) except -1:
        """Move every stop a trade since the last collection reached to the FIFO.

        A BUY stop is reached when the highest of those trade prices is at or above
        its stop price, a SELL stop when the lowest is at or below: the market
        traded at or through it.  They enter in arrival order.
        """
        cdef int si
        cdef int32_t n, k = 0, i
        cdef slot_t s
        cdef slot_t* arr
        cdef ticks_t lim
        cdef ticks_t lo = self.trade_lo, hi = self.trade_hi
        self.trade_lo = INT64_MAX
        self.trade_hi = 0
        if hi == 0:
            return qt    # no trade since the last collection
        for si in range(2):
            arr = self.stop_arr[si]
            n = self.nstop[si]
            lim = skey(si, hi if si == 0 else lo)
            while n > 0 and skey(si, self.orders[arr[n - 1]].stop_price) >= lim:
                n -= 1
                self.scratch[k].slot = arr[n]
                self.scratch[k].arrival = self.orders[arr[n]].arrival
                k += 1
            self.nstop[si] = n
        if k > 1:
            qsort(self.scratch, k, sizeof(ArrSlot), cmp_arrival)
        assert qt + k <= self.capacity, "trigger FIFO exceeds the pool"
        for i in range(k):
            s = self.scratch[i].slot
            _list_unlink(self, s)
            self.orders[s].state = ST_PENDING
            self.trig_q[qt] = s
            qt += 1
        return qt

    cdef int _run_triggers(self) except -1:
        """Trigger and process stops until no stop is reached (docs/book.md)."""
        cdef int32_t qh = 0, qt, it
        cdef slot_t s
        cdef Order* o
        cdef EvRec* e
        if self.trade_hi == 0 or (self.nstop[0] == 0 and self.nstop[1] == 0):
            self.trade_lo = INT64_MAX    # this command's trades reach no stop
            self.trade_hi = 0
            return 0
        qt = self._collect_triggered(0)
        # each stop enters the FIFO at most once per command
        for it in range(self.capacity + 1):
            if qh == qt:
                return 0
            s = self.trig_q[qh]
            qh += 1
            o = &self.orders[s]
            assert o.state == ST_PENDING
            e = self._ev(TRIGGERED, o, OK)
            e.qty_lots = o.open_lots
            e.leaves_lots = o.open_lots
            o.state = ST_TAKER_LIVE
            if o.tif == FOK and not self._fok_fillable(o.side, o.price, o.open_lots,
                                                         o.user_id, o.stp):
                self._ev_cancel(o, o.open_lots, FOK_NOT_FILLABLE)
                self._drop_taker(s)
                continue
            if o.tif == GTC and self._level_would_overflow(o.side, o.price, o.open_lots, -1):
                self._ev_cancel(o, o.open_lots, LEVEL_OVERFLOW)
                self._drop_taker(s)
                continue
            self._take(s)
            qt = self._collect_triggered(qt)
        raise AssertionError("trigger loop exceeded the pool size")

    # ------------------------------------------------------ command fast paths

    cdef int c_new_order(self, oid_t order_id, uid_t user_id, int side, int ord_type, int tif,
                         ticks_t price_ticks, lots_t qty_lots, ticks_t stop_price_ticks,
                         int stp, int flags) except -1:
        """Submit a new order; returns the number of events appended."""
        cdef Py_ssize_t n0 = self.evbuf.n
        cdef int reason = self._check_new(order_id, user_id, side, ord_type, tif, price_ticks,
                                          qty_lots, stop_price_ticks, stp, flags)
        if reason != OK:
            return self._reject(order_id, user_id, side, ord_type, price_ticks, qty_lots,
                                reason)
        if ord_type == MARKET_QUOTE:
            price_ticks = 0
        cdef slot_t s = self._alloc_order(order_id, user_id, side, ord_type, tif, price_ticks,
                                          qty_lots, stop_price_ticks, stp, flags)
        cdef Order* o = &self.orders[s]
        o.state = ST_TAKER_NEW
        cdef EvRec* e = self._ev(ACCEPTED, o, OK)
        e.qty_lots = qty_lots
        e.leaves_lots = qty_lots
        if ord_type == STOP_LIMIT or ord_type == STOP_MARKET:
            self._hins(order_id, s)
            self.n_orders += 1
            self._stop_insert(s)
        else:
            self._take(s)
            self._run_triggers()
        return self._post(n0)

    cdef int c_cancel(self, oid_t order_id) except -1:
        """Cancel an order (resting or stop); returns the number of events appended."""
        cdef Py_ssize_t n0 = self.evbuf.n
        cdef slot_t s = self._hfind(order_id)
        if s < 0:
            return self._reject(order_id, 0, 0, 0, 0, 0, UNKNOWN_ORDER_ID)
        cdef Order* o = &self.orders[s]
        self._ev_cancel(o, o.open_lots, USER_CANCELED)
        if o.state == ST_STOP:
            self._stop_remove(s)
            self._hdel(order_id)
            self._free(s)
            self.n_orders -= 1
        else:
            self._remove_resting(s)
        return self._post(n0)

    cdef int c_reduce(self, oid_t order_id, lots_t new_leaves_lots) except -1:
        """Cut a resting order's open quantity, keeping its priority."""
        cdef Py_ssize_t n0 = self.evbuf.n
        cdef slot_t s = self._hfind(order_id)
        cdef int reason = OK
        cdef Order* o
        cdef lots_t removed
        cdef EvRec* e
        if s < 0:
            reason = UNKNOWN_ORDER_ID
        else:
            o = &self.orders[s]
            if o.state == ST_STOP:
                reason = NOT_REPLACEABLE
            elif new_leaves_lots < 0:
                reason = INVALID_QTY
            elif new_leaves_lots >= o.open_lots:
                reason = REDUCE_NOT_SMALLER
            elif self.lot_step != 1 and new_leaves_lots % self.lot_step != 0:
                reason = QTY_OFF_LOT
        if reason != OK:
            return self._reject(order_id, 0, 0, 0, 0, new_leaves_lots, reason)
        if new_leaves_lots == 0:
            self._ev_cancel(o, o.open_lots, USER_CANCELED)
            self._remove_resting(s)
            return self._post(n0)
        removed = o.open_lots - new_leaves_lots
        o.open_lots = new_leaves_lots
        self.levels[o.level].total_lots -= removed
        e = self._ev(REDUCED, o, OK)
        e.qty_lots = removed
        e.leaves_lots = new_leaves_lots
        return self._post(n0)

    cdef int c_replace(self, oid_t order_id, ticks_t price_ticks, lots_t qty_lots) except -1:
        """New price and/or open quantity for a resting order (docs/book.md rules)."""
        cdef Py_ssize_t n0 = self.evbuf.n
        cdef slot_t s = self._hfind(order_id)
        cdef int reason = OK
        cdef Order* o
        cdef bint crosses = False
        cdef EvRec* e
        if s < 0:
            reason = UNKNOWN_ORDER_ID
        else:
            o = &self.orders[s]
            if o.state == ST_STOP:
                reason = NOT_REPLACEABLE
            elif qty_lots <= 0:
                reason = INVALID_QTY
            elif self.lot_step != 1 and qty_lots % self.lot_step != 0:
                reason = QTY_OFF_LOT
            elif qty_lots < self.min_qty_lots or qty_lots > self.max_qty_lots:
                reason = QTY_OUT_OF_RANGE
            else:
                reason = self._check_price(price_ticks, qty_lots)
            if reason == OK:
                if price_ticks == o.price and qty_lots == o.open_lots:
                    reason = REPLACE_NO_CHANGE
                else:
                    crosses = self._crosses(o.side, price_ticks)
                    if crosses and (o.flags & POST_ONLY):
                        reason = POST_ONLY_WOULD_TAKE
                    elif not (price_ticks == o.price and qty_lots < o.open_lots) and \
                            self._level_would_overflow(o.side, price_ticks, qty_lots, s):
                        reason = LEVEL_OVERFLOW
        if reason != OK:
            return self._reject(order_id, 0, 0, 0, price_ticks, qty_lots, reason)
        e = self._ev(REPLACED, o, OK)
        e.price_ticks = price_ticks
        e.qty_lots = qty_lots
        e.leaves_lots = qty_lots
        if price_ticks == o.price and qty_lots < o.open_lots:
            # quantity down at the same price keeps priority
            self.levels[o.level].total_lots -= o.open_lots - qty_lots
            o.open_lots = qty_lots
            return self._post(n0)
        self._unlink(s, True)
        o.price = price_ticks
        o.open_lots = qty_lots
        if crosses:
            o.state = ST_TAKER_LIVE
            self._take(s)
            self._run_triggers()
        else:
            self._append(s, self._level_at(o.side - 1, price_ticks))
        return self._post(n0)

    cdef int c_mass_cancel(self, uid_t user_id, int side, bint all_users) except -1:
        """Cancel every matching order: bids, asks (best first, FIFO), then stops."""
        cdef Py_ssize_t n0 = self.evbuf.n
        if side != 0 and side != BUY and side != SELL:
            return self._reject(0, user_id, side, 0, 0, 0, INVALID_SIDE)
        if side != SELL:
            self._mass_cancel_side(0, user_id, all_users)
        if side != BUY:
            self._mass_cancel_side(1, user_id, all_users)
        self._mass_cancel_stops(user_id, side, all_users)
        return self._post(n0)

    cdef int _mass_cancel_side(self, int si, uid_t user_id, bint all_users) except -1:
        """Mass cancel on one side in one pass, compacting the level array."""
        cdef ticks_t* keys = self.lkeys[si]
        cdef slot_t* idx = self.lidx[si]
        cdef int32_t n = self.nlev[si]
        cdef int32_t i, w = n, k, cnt
        cdef slot_t lv, s, nxt
        cdef Level* L
        cdef Order* o
        for i in range(n - 1, -1, -1):
            lv = idx[i]
            L = &self.levels[lv]
            s = L.head
            cnt = L.count
            for k in range(cnt):
                o = &self.orders[s]
                nxt = o.next
                if all_users or o.user_id == user_id:
                    self._ev_cancel(o, o.open_lots, MASS_CANCELED)
                    self._unlink(s, False)
                    self._hdel(o.order_id)
                    self._free(s)
                    self.n_orders -= 1
                s = nxt
            if L.count == 0:
                L.next_free = self.lfree_head
                self.lfree_head = lv
            else:
                w -= 1
                keys[w] = keys[i]
                idx[w] = lv
        if w > 0 and w < n:
            memmove(&keys[0], &keys[w], (n - w) * sizeof(ticks_t))
            memmove(&idx[0], &idx[w], (n - w) * sizeof(slot_t))
        self.nlev[si] = n - w
        self.ndorm[si] = 0
        return 0

    cdef int _mass_cancel_stops(self, uid_t user_id, int side, bint all_users) except -1:
        cdef slot_t s = self.stop_head, nxt
        cdef Order* o
        cdef int32_t it, i, w, si
        cdef int32_t canceled = 0
        cdef slot_t* arr
        for it in range(self.capacity):
            if s < 0:
                break
            o = &self.orders[s]
            nxt = o.next
            if (all_users or o.user_id == user_id) and (side == 0 or o.side == side):
                self._ev_cancel(o, o.open_lots, MASS_CANCELED)
                _list_unlink(self, s)
                self._hdel(o.order_id)
                o.state = ST_DEAD
                self.n_orders -= 1
                canceled += 1
            s = nxt
        if canceled == 0:
            return 0
        for si in range(2):
            arr = self.stop_arr[si]
            w = 0
            for i in range(self.nstop[si]):
                if self.orders[arr[i]].state == ST_DEAD:
                    self._free(arr[i])
                else:
                    arr[w] = arr[i]
                    w += 1
            self.nstop[si] = w
        return 0

    cdef int c_process_one(self, const CmdRec* c) except -1:
        """Apply one command record, stamping its seq / ts_ns into the events."""
        self.seq = c.seq
        self.ts_ns = c.ts_ns
        cdef int kind = c.kind
        if kind == NEW:
            return self.c_new_order(c.order_id, c.user_id, c.side, c.ord_type, c.tif,
                                    c.price_ticks, c.qty_lots, c.stop_price_ticks, c.stp,
                                    c.flags)
        if kind == REPLACE:
            return self.c_replace(c.order_id, c.price_ticks, c.qty_lots)
        if kind == CANCEL:
            return self.c_cancel(c.order_id)
        if kind == REDUCE:
            return self.c_reduce(c.order_id, c.qty_lots)
        if kind == MASS_CANCEL:
            return self.c_mass_cancel(c.user_id, c.side, (c.flags & MASS_ALL_USERS) != 0)
        return self._reject(c.order_id, c.user_id, c.side, c.ord_type, c.price_ticks,
                            c.qty_lots, UNKNOWN_COMMAND)

    cdef bint c_has_order(self, oid_t order_id) noexcept:
        return self._hfind(order_id) >= 0

    # ------------------------------------------------------------ restore

    cdef int c_restore_order(self, oid_t order_id, uid_t user_id, int side, int ord_type,
                             int tif, ticks_t price_ticks, lots_t open_lots,
                             ticks_t stop_price_ticks, int stp, int flags,
                             bint is_stop) except -1:
        """Put one dumped order back with exactly the given fields; no event, no matching.

        A resting order (``is_stop`` false) goes to the BACK of its price level, a
        stop order to the END of the arrival order: restoring the ``l3_full()`` rows
        and then the ``stops()`` rows in their order rebuilds every priority.  Only
        what the book's structure relies on is checked (docs/book.md, "Restore"); a
        row that fails is corrupt and raises ValueError with the book unchanged.
        """
        cdef int si = side - 1
        cdef slot_t lv
        cdef str bad = None
        if side != BUY and side != SELL:
            bad = f"side {side}"
        elif self._hfind(order_id) >= 0:
            bad = "id already live"
        elif open_lots <= 0:
            bad = f"open_lots {open_lots} <= 0"
        elif stp < STP_NONE or stp > DECREMENT:
            bad = f"stp {stp}"
        elif self.n_orders >= self.max_orders:
            bad = f"book full ({self.max_orders} orders)"
        elif is_stop:
            if ord_type == STOP_LIMIT:
                if tif != GTC and tif != IOC and tif != FOK:
                    bad = f"tif {tif} of a STOP_LIMIT"
                elif price_ticks < 1:
                    bad = f"limit price {price_ticks}"
            elif ord_type == STOP_MARKET:
                if tif != IOC:
                    bad = f"tif {tif} of a STOP_MARKET"
                elif price_ticks < 0:
                    bad = f"worst price {price_ticks}"
            else:
                bad = f"ord_type {ord_type} of a stop order"
            if bad is None:
                if flags != 0:
                    bad = f"flags {flags} on a stop order"
                elif stop_price_ticks < 1:
                    bad = f"stop price {stop_price_ticks}"
                elif self.last_price_ticks != 0 and \
                        skey(si, stop_price_ticks) >= skey(si, self.last_price_ticks):
                    bad = f"stop price {stop_price_ticks} reached by the last price"
        else:
            if ord_type != LIMIT and ord_type != STOP_LIMIT:
                bad = f"ord_type {ord_type} of a resting order"
            elif tif != GTC:
                bad = f"tif {tif} of a resting order (only GTC rests)"
            elif (flags & ~POST_ONLY) != 0 or ((flags & POST_ONLY) and ord_type != LIMIT):
                bad = f"flags {flags}"
            elif price_ticks < 1:
                bad = f"price {price_ticks}"
            elif self._crosses(side, price_ticks):
                bad = f"price {price_ticks} crosses the opposite side"
            else:
                lv = self._level_find(si, price_ticks)
                if lv >= 0 and self.levels[lv].total_lots > INT64_MAX - open_lots:
                    bad = "level total overflows int64"
        if bad is not None:
            raise ValueError(f"restore of order {order_id}: {bad}")
        cdef slot_t s = self._alloc_order(order_id, user_id, side, ord_type, tif, price_ticks,
                                          open_lots, stop_price_ticks, stp, flags)
        cdef Order* o = &self.orders[s]
        self._hins(order_id, s)
        self.n_orders += 1
        if open_lots > self.max_qty_lots:
            self.level_fits = False    # a dumped order above this book's maximum
        if is_stop:
            # arrival numbers are only compared with each other: restoring in arrival
            # order gives increasing ones, so the original counter need not be known
            self._stop_insert(s)
        else:
            self._append(s, self._level_at(si, price_ticks))
        assert self._hfind(order_id) == s and self.n_orders <= self.max_orders
        return 0

    cdef int c_restore_counters(self, ticks_t last_price_ticks,
                                uint64_t next_match_id) except -1:
        """Set the last trade price (ticks) and the next match id of a restored book.

        Raises ValueError (book unchanged) on a negative price, a match id of 0, or a
        last price that already reaches a stop order in the book.
        """
        cdef int si
        cdef int32_t n
        if last_price_ticks < 0:
            raise ValueError(f"restore: last price {last_price_ticks} < 0")
        if next_match_id < 1:
            raise ValueError("restore: next match id 0 (match ids start at 1)")
        if last_price_ticks != 0:
            for si in range(2):
                n = self.nstop[si]
                if n > 0 and skey(si, self.orders[self.stop_arr[si][n - 1]].stop_price) \
                        >= skey(si, last_price_ticks):
                    raise ValueError(
                        f"restore: last price {last_price_ticks} reaches stop order "
                        f"{self.orders[self.stop_arr[si][n - 1]].order_id}")
        self.last_price_ticks = last_price_ticks
        self.next_match_id = next_match_id
        if DEBUG:
            self._check()
        return 0

    cdef ticks_t c_best_bid(self) noexcept:
        cdef int32_t n = self.nlev[0]
        return self.levels[self.lidx[0][n - 1]].price if n > 0 else 0

    cdef ticks_t c_best_ask(self) noexcept:
        cdef int32_t n = self.nlev[1]
        return self.levels[self.lidx[1][n - 1]].price if n > 0 else 0

    cdef int _post(self, Py_ssize_t n0) except -1:
        """End of a command: cheap invariants always, the whole book in debug."""
        cdef int32_t nb = self.nlev[0], na = self.nlev[1]
        assert nb == 0 or na == 0 or self.lkeys[0][nb - 1] < -self.lkeys[1][na - 1], \
            "crossed book at rest"
        assert 0 <= self.n_orders <= self.max_orders
        if DEBUG:
            self._check()
        return <int> (self.evbuf.n - n0)

    # ------------------------------------------------------ per-command API

    cpdef int new_order(self, oid_t order_id, uid_t user_id, uint8_t side, uint8_t ord_type,
                        uint8_t tif, ticks_t price_ticks, lots_t qty_lots,
                        ticks_t stop_price_ticks=0, uint8_t stp=0,
                        uint8_t flags=0) except -1:
        """Submit a new order of any type.

        Parameters
        ----------
        order_id : int
            Unique among live orders (uint64).
        user_id : int
            Owner (uint32); self-trade prevention compares it.
        side, ord_type, tif, stp : int
            ``Side``, ``OrdType``, ``Tif``, ``Stp`` values.
        price_ticks : int
            Limit price, ticks (market: worst price or 0; MARKET_QUOTE: ignored).
        qty_lots : int
            Quantity, lots (MARKET_QUOTE: the budget, ticks x lots).
        stop_price_ticks : int
            Stop trigger price, ticks (stop orders only).
        flags : int
            ``CmdFlag`` bits (POST_ONLY).

        Returns
        -------
        int
            Number of events appended.
        """
        return self.c_new_order(order_id, user_id, side, ord_type, tif, price_ticks, qty_lots,
                                stop_price_ticks, stp, flags)

    cpdef int new_limit(self, oid_t order_id, uid_t user_id, uint8_t side, ticks_t price_ticks,
                        lots_t qty_lots, uint8_t tif=GTC, uint8_t stp=0,
                        bint post_only=False) except -1:
        """Limit order at ``price_ticks`` for ``qty_lots``; returns events appended."""
        return self.c_new_order(order_id, user_id, side, LIMIT, tif, price_ticks, qty_lots, 0,
                                stp, POST_ONLY if post_only else 0)

    cpdef int new_market(self, oid_t order_id, uid_t user_id, uint8_t side, lots_t qty_lots,
                         uint8_t stp=0, ticks_t price_ticks=0) except -1:
        """Market order for ``qty_lots`` (IOC); ``price_ticks`` = worst price, 0 = none."""
        return self.c_new_order(order_id, user_id, side, MARKET, IOC, price_ticks, qty_lots, 0,
                                stp, 0)

    cpdef int new_market_quote(self, oid_t order_id, uid_t user_id, lots_t budget,
                               uint8_t stp=0) except -1:
        """Market buy spending at most ``budget`` (sum of price_ticks x qty_lots)."""
        return self.c_new_order(order_id, user_id, BUY, MARKET_QUOTE, IOC, 0, budget, 0, stp,
                                0)

    cpdef int new_stop(self, oid_t order_id, uid_t user_id, uint8_t side, uint8_t ord_type,
                       ticks_t stop_price_ticks, ticks_t price_ticks, lots_t qty_lots,
                       uint8_t tif=GTC, uint8_t stp=0) except -1:
        """STOP_LIMIT / STOP_MARKET order triggered by the last trade price, ticks."""
        return self.c_new_order(order_id, user_id, side, ord_type, tif, price_ticks, qty_lots,
                                stop_price_ticks, stp, 0)

    cpdef int cancel(self, oid_t order_id) except -1:
        """Cancel a live order (resting or stop); returns events appended."""
        return self.c_cancel(order_id)

    cpdef int reduce(self, oid_t order_id, lots_t new_leaves_lots) except -1:
        """Reduce a resting order to ``new_leaves_lots`` open lots (0 cancels)."""
        return self.c_reduce(order_id, new_leaves_lots)

    cpdef int replace(self, oid_t order_id, ticks_t price_ticks, lots_t qty_lots) except -1:
        """Give a resting order a new price (ticks) and open quantity (lots)."""
        return self.c_replace(order_id, price_ticks, qty_lots)

    cpdef int mass_cancel(self, uid_t user_id=0, uint8_t side=0,
                          bint all_users=False) except -1:
        """Cancel all orders of ``user_id`` (or of everyone), one side (1/2) or both (0)."""
        return self.c_mass_cancel(user_id, side, all_users)

    def restore_order(self, oid_t order_id, uid_t user_id, int side, int ord_type, int tif,
                      ticks_t price_ticks, lots_t open_lots, ticks_t stop_price_ticks=0,
                      int stp=0, int flags=0, bint is_stop=False):
        """Put a dumped order back into the book, exactly as given, without events.

        Restore a book by calling this for every ``l3_full()`` row in order, then
        for every ``stops()`` row in order (``is_stop=True``), then
        :meth:`restore_counters`; the result has the same ``state_hash()`` and
        behaves identically afterwards (docs/book.md, "Restore").

        Parameters
        ----------
        order_id : int
            Not live in the book (uint64).
        user_id : int
            Owner (uint32).
        side, ord_type, tif, stp : int
            ``Side``, ``OrdType`` (as submitted), ``Tif``, ``Stp`` values.
        price_ticks : int
            Limit price, ticks (STOP_MARKET: worst price or 0).
        open_lots : int
            Open quantity, lots (> 0; no step or minimum applies).
        stop_price_ticks : int
            Stop price, ticks (kept by a triggered STOP_LIMIT that rests).
        flags : int
            ``CmdFlag`` bits of the order (POST_ONLY).
        is_stop : bool
            True: the order waits in the stop set (appended in arrival order);
            False: it rests at the back of its price level.

        Raises
        ------
        ValueError
            The row cannot be part of a valid book (id live, bad side or enum,
            ``open_lots <= 0``, pool at ``max_orders``, a crossing price, a stop
            already reached by the last price...); the book is unchanged.
        """
        self.c_restore_order(order_id, user_id, side, ord_type, tif, price_ticks, open_lots,
                             stop_price_ticks, stp, flags, is_stop)

    def restore_counters(self, ticks_t last_price_ticks, uint64_t next_match_id):
        """Set the last trade price (ticks, 0 = none) and the next match id (>= 1).

        The last step of a restore (after :meth:`restore_order`); the debug build
        checks the whole book here.

        Raises
        ------
        ValueError
            Negative price, match id 0, or a last price that reaches a stop order
            already in the book; nothing is changed.
        """
        self.c_restore_counters(last_price_ticks, next_match_id)

    cpdef ticks_t best_bid(self):
        """Best bid price, ticks; 0 if there is no bid."""
        return self.c_best_bid()

    cpdef ticks_t best_ask(self):
        """Best ask price, ticks; 0 if there is no ask."""
        return self.c_best_ask()

    cpdef ticks_t last_price(self):
        """Price of the last fill, ticks; 0 before the first."""
        return self.last_price_ticks

    def process(self, cnp.ndarray cmds not None):
        """Clear the events, apply every command of ``cmds``, return the events.

        Parameters
        ----------
        cmds : numpy.ndarray
            1-D array of ``CMD_DTYPE`` records; each command's ``seq`` and
            ``ts_ns`` are stamped into its events.

        Returns
        -------
        numpy.ndarray
            View of the ``EV_DTYPE`` events (valid until the next clear).
        """
        if cmds.dtype != CMD_DTYPE:
            raise TypeError(f"process() needs a CMD_DTYPE array, got {cmds.dtype}")
        if cmds.ndim != 1:
            raise ValueError("process() needs a 1-D array")
        cmds = np.ascontiguousarray(cmds)
        cdef const CmdRec* c = <const CmdRec*> cnp.PyArray_DATA(cmds)
        cdef Py_ssize_t i, n = cmds.shape[0]
        self.evbuf.clear()
        for i in range(n):
            self.c_process_one(&c[i])
        return self.evbuf.view()

    def events(self):
        """View of the events appended since the last clear (EV_DTYPE, no copy)."""
        return self.evbuf.view()

    def clear_events(self):
        """Forget the buffered events."""
        self.evbuf.clear()

    # ------------------------------------------------------------- dumps

    def order(self, oid_t order_id):
        """``(user_id, side, ord_type, price_ticks, open_lots, stop_price_ticks)`` or None."""
        cdef slot_t s = self._hfind(order_id)
        if s < 0:
            return None
        cdef Order* o = &self.orders[s]
        return (o.user_id, o.side, o.ord_type, o.price, o.open_lots, o.stop_price)

    def l2(self, int side, Py_ssize_t depth=2**31):
        """Levels of one side, best first: ``[(price_ticks, total_lots, n_orders)]``."""
        if side != BUY and side != SELL:
            raise ValueError(f"side must be BUY (1) or SELL (2), got {side}")
        cdef int si = side - 1
        cdef int32_t i
        cdef Level* L
        out = []
        for i in range(self.nlev[si] - 1, -1, -1):
            if len(out) >= depth:
                break
            L = &self.levels[self.lidx[si][i]]
            if L.count > 0:
                out.append((L.price, L.total_lots, L.count))
        return out

    def l3(self):
        """Resting orders in priority order, bids then asks.

        Rows ``(order_id, user_id, side, price_ticks, open_lots, flags)``.
        """
        cdef int si
        cdef int32_t i, k
        cdef slot_t s
        cdef Order* o
        out = []
        for si in range(2):
            for i in range(self.nlev[si] - 1, -1, -1):
                s = self.levels[self.lidx[si][i]].head
                for k in range(self.levels[self.lidx[si][i]].count):
                    o = &self.orders[s]
                    out.append((o.order_id, o.user_id, o.side, o.price, o.open_lots, o.flags))
                    s = o.next
        return out

    def l3_full(self):
        """Resting orders in ``l3()`` order with every field a restore needs.

        Rows ``(order_id, user_id, side, price_ticks, open_lots, flags, ord_type, tif,
        stop_price_ticks, stp)``: an ``l3()`` row followed by the order's submitted
        type, its time in force (always GTC), its stop price (a triggered STOP_LIMIT
        keeps it; 0 otherwise unless the command carried one) and its STP mode.
        """
        cdef int si
        cdef int32_t i, k
        cdef slot_t s
        cdef Order* o
        out = []
        for si in range(2):
            for i in range(self.nlev[si] - 1, -1, -1):
                s = self.levels[self.lidx[si][i]].head
                for k in range(self.levels[self.lidx[si][i]].count):
                    o = &self.orders[s]
                    out.append((o.order_id, o.user_id, o.side, o.price, o.open_lots, o.flags,
                                o.ord_type, o.tif, o.stop_price, o.stp))
                    s = o.next
        return out

    def stops(self):
        """Stop orders in arrival order.

        Rows ``(order_id, user_id, side, ord_type, tif, stop_price_ticks, price_ticks,
        open_lots, stp)``.
        """
        cdef slot_t s = self.stop_head
        cdef Order* o
        cdef int32_t it
        out = []
        for it in range(self.capacity):
            if s < 0:
                break
            o = &self.orders[s]
            out.append((o.order_id, o.user_id, o.side, o.ord_type, o.tif, o.stop_price,
                        o.price, o.open_lots, o.stp))
            s = o.next
        return out

    def state_hash(self):
        """16-byte blake2b over the canonical dump (docs/book.md): counters,
        ``l3_full()`` rows, ``stops()`` rows."""
        cdef int64_t n_rest = 0
        cdef int si
        cdef int32_t i
        for si in range(2):
            for i in range(self.nlev[si]):
                n_rest += self.levels[self.lidx[si][i]].count
        cdef int64_t n_stop = self.nstop[0] + self.nstop[1]
        cdef Py_ssize_t nwords = 3 + 10 * n_rest + 9 * n_stop
        buf = bytearray(8 * nwords)
        cdef int64_t* w = <int64_t*> PyByteArray_AS_STRING(buf)
        cdef Py_ssize_t p = 0
        cdef int32_t k
        cdef slot_t s
        cdef Order* o
        w[0] = self.symbol_id
        w[1] = self.last_price_ticks
        w[2] = <int64_t> self.next_match_id
        p = 3
        for si in range(2):
            for i in range(self.nlev[si] - 1, -1, -1):
                s = self.levels[self.lidx[si][i]].head
                for k in range(self.levels[self.lidx[si][i]].count):
                    o = &self.orders[s]
                    w[p] = <int64_t> o.order_id
                    w[p + 1] = o.user_id
                    w[p + 2] = o.side
                    w[p + 3] = o.price
                    w[p + 4] = o.open_lots
                    w[p + 5] = o.flags
                    w[p + 6] = o.ord_type
                    w[p + 7] = o.tif
                    w[p + 8] = o.stop_price
                    w[p + 9] = o.stp
                    p += 10
                    s = o.next
        s = self.stop_head
        for k in range(<int32_t> n_stop):
            o = &self.orders[s]
            w[p] = <int64_t> o.order_id
            w[p + 1] = o.user_id
            w[p + 2] = o.side
            w[p + 3] = o.ord_type
            w[p + 4] = o.tif
            w[p + 5] = o.stop_price
            w[p + 6] = o.price
            w[p + 7] = o.open_lots
            w[p + 8] = o.stp
            p += 9
            s = o.next
        assert p == nwords and s == -1
        return hashlib.blake2b(bytes(buf), digest_size=16).digest()

    def _level_stats(self):
        """``((entries, dormant), (entries, dormant))`` of the bid and ask level arrays."""
        return ((self.nlev[0], self.ndorm[0]), (self.nlev[1], self.ndorm[1]))

    # -------------------------------------------------------- invariants

    def check_invariants(self):
        """Check the whole book; raises AssertionError describing the first violation."""
        self._check()

    cdef int _check(self) except -1:
        cdef int si
        cdef int32_t i, k, n_rest = 0, n_stop_list = 0, n_dorm
        cdef slot_t lv, s, prev
        cdef Level* L
        cdef Order* o
        cdef lots_t total
        for si in range(2):
            n_dorm = 0
            for i in range(self.nlev[si]):
                lv = self.lidx[si][i]
                L = &self.levels[lv]
                if i > 0 and not self.lkeys[si][i - 1] < self.lkeys[si][i]:
                    raise AssertionError(f"side {si}: level keys not ascending at {i}")
                if self.lkeys[si][i] != lkey(si, L.price):
                    raise AssertionError(f"side {si}: key of level {L.price} is wrong")
                if L.count < 0 or (L.count == 0 and i == self.nlev[si] - 1):
                    raise AssertionError(f"empty best level {L.price} on side {si}")
                if L.count == 0:
                    n_dorm += 1
                total = 0
                prev = -1
                s = L.head
                for k in range(L.count):
                    if s < 0:
                        raise AssertionError(f"level {L.price}: FIFO shorter than count")
                    o = &self.orders[s]
                    if o.state != ST_REST or o.level != lv or o.side != si + 1:
                        raise AssertionError(f"order {o.order_id}: bad state/level/side")
                    if o.prev != prev or o.price != L.price or o.open_lots <= 0:
                        raise AssertionError(f"order {o.order_id}: bad link/price/open")
                    if self._hfind(o.order_id) != s:
                        raise AssertionError(f"order {o.order_id} missing from the id map")
                    total += o.open_lots
                    prev = s
                    s = o.next
                if s != -1 or L.tail != prev:
                    raise AssertionError(f"level {L.price}: FIFO longer than count / bad tail")
                if total != L.total_lots:
                    raise AssertionError(
                        f"level {L.price}: total {L.total_lots} != sum of orders {total}")
                n_rest += L.count
            if n_dorm != self.ndorm[si]:
                raise AssertionError(f"side {si}: {n_dorm} dormant levels, ndorm {self.ndorm[si]}")
        if self.nlev[0] and self.nlev[1] and self.c_best_bid() >= self.c_best_ask():
            raise AssertionError(f"crossed book: {self.c_best_bid()} >= {self.c_best_ask()}")
        self._check_stops()
        n_stop_list = self.nstop[0] + self.nstop[1]
        if n_rest + n_stop_list != self.n_orders:
            raise AssertionError(
                f"n_orders {self.n_orders} != resting {n_rest} + stops {n_stop_list}")
        self._check_pool()
        return 0

    def _check_stops(self):
        cdef int si
        cdef int32_t i, n_list = 0
        cdef slot_t s, prev = -1
        cdef Order* o
        cdef Order* p
        for si in range(2):
            for i in range(self.nstop[si]):
                o = &self.orders[self.stop_arr[si][i]]
                if o.state != ST_STOP or o.side != si + 1:
                    raise AssertionError(f"stop {o.order_id}: bad state or side")
                if self._hfind(o.order_id) != self.stop_arr[si][i]:
                    raise AssertionError(f"stop {o.order_id} missing from the id map")
                if self.last_price_ticks != 0 and \
                        skey(si, o.stop_price) >= skey(si, self.last_price_ticks):
                    raise AssertionError(f"stop {o.order_id} should have triggered")
                if i > 0:
                    p = &self.orders[self.stop_arr[si][i - 1]]
                    if (skey(si, p.stop_price), p.arrival) >= (skey(si, o.stop_price),
                                                               o.arrival):
                        raise AssertionError(f"stop array {si} not sorted at {i}")
        s = self.stop_head
        for i in range(self.capacity + 1):
            if s < 0:
                break
            o = &self.orders[s]
            if o.state != ST_STOP or o.prev != prev:
                raise AssertionError(f"stop list broken at order {o.order_id}")
            if prev >= 0 and self.orders[prev].arrival >= o.arrival:
                raise AssertionError("stop list not in arrival order")
            n_list += 1
            prev = s
            s = o.next
        if prev != self.stop_tail or n_list != self.nstop[0] + self.nstop[1]:
            raise AssertionError("stop list and stop arrays disagree")

    def _check_pool(self):
        cdef int32_t i, n_free = 0, n_live = 0, n_lfree = 0
        cdef slot_t s = self.free_head
        cdef uint64_t h, n_map = 0
        for i in range(self.capacity + 1):
            if s < 0:
                break
            if self.orders[s].state != ST_FREE:
                raise AssertionError(f"slot {s} on the free list is not free")
            n_free += 1
            s = self.orders[s].next
        for i in range(self.ohw):
            if self.orders[i].state != ST_FREE:
                n_live += 1
        if n_free + n_live != self.ohw or n_live != self.n_orders or self.ohw > self.capacity:
            raise AssertionError(
                f"pool: free {n_free} + live {n_live} != used {self.ohw}"
                f" or live != n_orders {self.n_orders}")
        for h in range(self.hmask + 1):
            if self.htab[h].slot >= 0:
                n_map += 1
                if self.orders[self.htab[h].slot].order_id != self.htab[h].key:
                    raise AssertionError(f"id map entry {h} points at the wrong order")
        if n_map != <uint64_t> self.n_orders or n_map != self.hcount:
            raise AssertionError(f"id map holds {n_map} ids, n_orders {self.n_orders}")
        s = self.lfree_head
        for i in range(2 * self.capacity + 1):
            if s < 0:
                break
            n_lfree += 1
            s = self.levels[s].next_free
        if n_lfree + self.nlev[0] + self.nlev[1] != self.lhw or self.lhw > 2 * self.capacity:
            raise AssertionError("level pool: free + in the arrays != used")


cdef inline void _list_unlink(Book b, slot_t s) noexcept:
    """Take stop s out of the arrival-ordered stop list."""
    cdef Order* o = &b.orders[s]
    if o.prev >= 0:
        b.orders[o.prev].next = o.next
    else:
        b.stop_head = o.next
    if o.next >= 0:
        b.orders[o.next].prev = o.prev
    else:
        b.stop_tail = o.prev
    o.prev = -1
    o.next = -1


def _layout_offsets():
    """Offsets and sizes of the C records, for tests/pyx/test_layout.py.

    Returns
    -------
    dict
        ``{"CmdRec": {field: offset, ..., "__size__": n}, "EvRec": {...}}`` in bytes.
    """
    cdef CmdRec c
    cdef EvRec e
    cdef char* cb = <char*> &c
    cdef char* eb = <char*> &e
    cmd = {
        "seq": <char*> &c.seq - cb, "ts_ns": <char*> &c.ts_ns - cb,
        "client_ref": <char*> &c.client_ref - cb, "order_id": <char*> &c.order_id - cb,
        "price_ticks": <char*> &c.price_ticks - cb, "qty_lots": <char*> &c.qty_lots - cb,
        "stop_price_ticks": <char*> &c.stop_price_ticks - cb, "a0": <char*> &c.a0 - cb,
        "a1": <char*> &c.a1 - cb, "a2": <char*> &c.a2 - cb,
        "user_id": <char*> &c.user_id - cb, "symbol_id": <char*> &c.symbol_id - cb,
        "kind": <char*> &c.kind - cb, "side": <char*> &c.side - cb,
        "ord_type": <char*> &c.ord_type - cb, "tif": <char*> &c.tif - cb,
        "stp": <char*> &c.stp - cb, "flags": <char*> &c.flags - cb,
        "a3": <char*> &c.a3 - cb, "__size__": sizeof(CmdRec),
    }
    ev = {
        "seq": <char*> &e.seq - eb, "ts_ns": <char*> &e.ts_ns - eb,
        "order_id": <char*> &e.order_id - eb, "maker_order_id": <char*> &e.maker_order_id - eb,
        "price_ticks": <char*> &e.price_ticks - eb, "qty_lots": <char*> &e.qty_lots - eb,
        "leaves_lots": <char*> &e.leaves_lots - eb, "match_id": <char*> &e.match_id - eb,
        "taker_fee": <char*> &e.taker_fee - eb, "maker_fee": <char*> &e.maker_fee - eb,
        "user_id": <char*> &e.user_id - eb, "maker_user_id": <char*> &e.maker_user_id - eb,
        "symbol_id": <char*> &e.symbol_id - eb, "reason": <char*> &e.reason - eb,
        "kind": <char*> &e.kind - eb, "side": <char*> &e.side - eb,
        "flags": <char*> &e.flags - eb, "ord_type": <char*> &e.ord_type - eb,
        "__size__": sizeof(EvRec),
    }
    return {"CmdRec": cmd, "EvRec": ev}


BUILD_DEBUG = bool(DEBUG)
"""True in the debug build (BURSA_DEBUG=1): whole-book checks after every command."""
