# The Cython order book of one symbol (semantics: docs/book.md).
#
# Orders live in a malloc'd pool of C structs linked by int32 slot indices; price
# levels in a second pool; each side keeps a sorted array of its active levels
# with the BEST at the END.  Other Cython modules (the core) cimport Book and call
# the c_* fast paths; Python uses the cpdef/def API.
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, uint8_t, int32_t
from pyx.types cimport ticks_t, lots_t, oid_t, seq_t, uid_t, slot_t
from pyx.records cimport EvRec, CmdRec
from pyx.evbuf cimport EventBuf


cdef struct Order:
    oid_t order_id
    ticks_t price            # limit price, market worst price, or 0
    lots_t open_lots         # open quantity (MARKET_QUOTE taker: budget left)
    ticks_t stop_price       # stop trigger price (stop orders; kept after trigger)
    uint64_t arrival         # stop arrival number (orders stops among equal prices)
    slot_t prev              # FIFO neighbours in the level, or in the stop arrival list
    slot_t next              # ... also the free-list link of a free slot
    slot_t level             # level slot while resting, else -1
    uid_t user_id
    uint8_t side             # Side
    uint8_t ord_type         # OrdType as submitted
    uint8_t tif              # Tif
    uint8_t stp              # Stp
    uint8_t flags            # CmdFlag bits (POST_ONLY)
    uint8_t state            # ST_* in book.pyx


cdef struct Level:
    ticks_t price
    lots_t total_lots        # sum of the open lots of its orders
    slot_t head              # oldest order (first to match)
    slot_t tail              # newest order
    int32_t count            # orders in the level (0: dormant, see book.pyx)
    slot_t next_free         # free: next free level (-1 ends the list);
                             # in use: LEVEL_IN_SIDE - side index (-2 bids, -3 asks)


cdef enum:
    LEVEL_IN_SIDE = -2
    # direct-mapped price -> level cache per side (a hit skips the binary search)
    LCACHE_BITS = 12
    LCACHE_SIZE = 4096


cdef struct HEnt:            # order_id -> slot map entry (slot -1 = empty)
    oid_t key
    slot_t slot


cdef struct ArrSlot:         # scratch for sorting newly triggered stops by arrival
    uint64_t arrival
    slot_t slot


# final: internal calls are direct C calls (inlinable), not vtable calls
@cython.final
cdef class Book:
    cdef public seq_t seq                 # stamped into events (per-command API)
    cdef public uint64_t ts_ns            # stamped into events, ns since the epoch
    cdef public uint16_t symbol_id        # stamped into events
    cdef public ticks_t protection_ticks  # market band width, ticks
    cdef readonly ticks_t last_price_ticks  # price of the last fill, 0 before the first
    cdef readonly uint64_t next_match_id    # match id of the next TRADE (starts at 1)
    cdef readonly ticks_t tick_step
    cdef readonly lots_t lot_step
    cdef readonly lots_t min_qty_lots
    cdef readonly lots_t max_qty_lots
    cdef readonly ticks_t min_price_ticks
    cdef readonly ticks_t max_price_ticks
    cdef bint notional_fits               # max_price_ticks * max_qty_lots fits int64
    cdef bint level_fits                  # max_orders * max_qty_lots fits int64
    cdef readonly int32_t capacity        # current pool size, orders
    cdef readonly int32_t max_orders      # hard bound on live orders
    cdef readonly int32_t n_orders        # live orders: resting + stop
    cdef readonly int64_t grows           # pool or id-map growths after reserve() (fallback)
    cdef readonly EventBuf evbuf

    # order pool
    cdef Order* orders
    cdef slot_t free_head
    cdef slot_t ohw                 # slots [ohw, capacity) were never used
    # level pool and the per-side sorted level arrays (index 0 bids, 1 asks);
    # lkeys[i] = price for bids, -price for asks, ascending: the best is last
    cdef Level* levels              # 2 x capacity
    cdef slot_t lfree_head
    cdef slot_t lhw                 # levels [lhw, 2 x capacity) were never used
    cdef ticks_t* lkeys[2]
    cdef slot_t* lidx[2]
    cdef int32_t nlev[2]            # entries, dormant (empty) levels included
    cdef int32_t ndorm[2]           # dormant levels per side (never the last entry)
    cdef slot_t lcache[2][LCACHE_SIZE]
    # stop orders: per side sorted by (trigger key, arrival), the first to trigger
    # last; plus a doubly linked arrival list through Order.prev/next
    cdef slot_t* stop_arr[2]
    cdef int32_t nstop[2]
    cdef slot_t stop_head
    cdef slot_t stop_tail
    cdef uint64_t next_arrival
    # lowest / highest trade price since the last trigger collection (hi 0 = no
    # trade): a stop triggers when any trade reached it, not only the last one
    cdef ticks_t trade_lo
    cdef ticks_t trade_hi
    # triggered-stop FIFO and sort scratch (both bounded by the pool size)
    cdef slot_t* trig_q
    cdef ArrSlot* scratch
    # order_id -> slot, open addressing
    cdef HEnt* htab
    cdef uint64_t hmask
    cdef uint64_t hcount            # live entries

    # fast paths for Cython callers: each returns the number of events appended
    cdef int c_new_order(self, oid_t order_id, uid_t user_id, int side, int ord_type, int tif,
                         ticks_t price_ticks, lots_t qty_lots, ticks_t stop_price_ticks,
                         int stp, int flags) except -1
    cdef int c_cancel(self, oid_t order_id) except -1
    cdef int c_reduce(self, oid_t order_id, lots_t new_leaves_lots) except -1
    cdef int c_replace(self, oid_t order_id, ticks_t price_ticks, lots_t qty_lots) except -1
    cdef int c_mass_cancel(self, uid_t user_id, int side, bint all_users) except -1
    cdef int c_process_one(self, const CmdRec* c) except -1
    cdef bint c_has_order(self, oid_t order_id) noexcept
    # snapshot restore (no events): orders in dump order, then the counters
    cdef int c_restore_order(self, oid_t order_id, uid_t user_id, int side, int ord_type,
                             int tif, ticks_t price_ticks, lots_t open_lots,
                             ticks_t stop_price_ticks, int stp, int flags,
                             bint is_stop) except -1
    cdef int c_restore_counters(self, ticks_t last_price_ticks,
                                uint64_t next_match_id) except -1
    cdef ticks_t c_best_bid(self) noexcept
    cdef ticks_t c_best_ask(self) noexcept

    # internals
    cdef int _grow(self) except -1
    cdef int _grow_to(self, int32_t new_cap) except -1
    cdef int _rehash(self, uint64_t new_size) except -1
    cdef slot_t _hfind(self, oid_t key) noexcept
    cdef int _hins(self, oid_t key, slot_t s) except -1
    cdef int _hput(self, oid_t key, slot_t s) except -1
    cdef int _hdel(self, oid_t key) except -1
    cdef slot_t _alloc(self) except -1
    cdef slot_t _alloc_order(self, oid_t order_id, uid_t user_id, int side, int ord_type,
                             int tif, ticks_t price_ticks, lots_t open_lots,
                             ticks_t stop_price_ticks, int stp, int flags) except -1
    cdef void _free(self, slot_t s) noexcept
    cdef slot_t _level_at(self, int si, ticks_t price) except -1
    cdef slot_t _level_find(self, int si, ticks_t price) noexcept
    cdef slot_t _level_recycle(self, int si, int32_t pos, ticks_t price, uint32_t h) except -1
    cdef int _level_drop(self, int si, slot_t lv) except -1
    cdef int _level_compact(self, int si) except -1
    cdef int _append(self, slot_t s, slot_t lv) except -1
    cdef int _unlink(self, slot_t s, bint drop_level) except -1
    cdef int _remove_resting(self, slot_t s) except -1
    cdef int _stop_insert(self, slot_t s) except -1
    cdef int _stop_remove(self, slot_t s) except -1
    cdef int _stop_pos(self, int si, slot_t s) except -1
    cdef EvRec* _ev(self, int kind, const Order* o, int reason) except NULL
    cdef int _ev_cancel(self, const Order* o, lots_t qty, int reason) except -1
    cdef int _reject(self, oid_t order_id, uid_t user_id, int side, int ord_type,
                     ticks_t price_ticks, lots_t qty_lots, int reason) except -1
    cdef int _check_price(self, ticks_t price, lots_t qty) noexcept
    cdef int _check_new(self, oid_t order_id, uid_t user_id, int side, int ord_type, int tif,
                        ticks_t price_ticks, lots_t qty_lots, ticks_t stop_price_ticks,
                        int stp, int flags) noexcept
    cdef bint _crosses(self, int side, ticks_t price) noexcept
    cdef bint _fok_fillable(self, int side, ticks_t price, lots_t qty, uid_t user_id,
                            int stp) noexcept
    cdef ticks_t _limit_key(self, const Order* t) noexcept
    cdef int _stp(self, slot_t s, slot_t m, int mode) except -1
    cdef int _match(self, slot_t s, ticks_t lim_key) except -1
    cdef int _take(self, slot_t s) except -1
    cdef int _rest(self, slot_t s) except -1
    cdef bint _level_would_overflow(self, int side, ticks_t price, lots_t add, slot_t self_slot) noexcept
    cdef int _drop_taker(self, slot_t s) except -1
    cdef int _collect_triggered(self, int32_t qt) except -1
    cdef int _run_triggers(self) except -1
    cdef int _mass_cancel_side(self, int si, uid_t user_id, bint all_users) except -1
    cdef int _mass_cancel_stops(self, uid_t user_id, int side, bint all_users) except -1
    cdef int _post(self, Py_ssize_t n0) except -1
    cdef int _check(self) except -1

    # per-command Python API
    cpdef int new_order(self, oid_t order_id, uid_t user_id, uint8_t side, uint8_t ord_type,
                        uint8_t tif, ticks_t price_ticks, lots_t qty_lots,
                        ticks_t stop_price_ticks=*, uint8_t stp=*,
                        uint8_t flags=*) except -1
    cpdef int new_limit(self, oid_t order_id, uid_t user_id, uint8_t side, ticks_t price_ticks,
                        lots_t qty_lots, uint8_t tif=*, uint8_t stp=*, bint post_only=*) except -1
    cpdef int new_market(self, oid_t order_id, uid_t user_id, uint8_t side, lots_t qty_lots,
                         uint8_t stp=*, ticks_t price_ticks=*) except -1
    cpdef int new_market_quote(self, oid_t order_id, uid_t user_id, lots_t budget,
                               uint8_t stp=*) except -1
    cpdef int new_stop(self, oid_t order_id, uid_t user_id, uint8_t side, uint8_t ord_type,
                       ticks_t stop_price_ticks, ticks_t price_ticks, lots_t qty_lots,
                       uint8_t tif=*, uint8_t stp=*) except -1
    cpdef int cancel(self, oid_t order_id) except -1
    cpdef int reduce(self, oid_t order_id, lots_t new_leaves_lots) except -1
    cpdef int replace(self, oid_t order_id, ticks_t price_ticks, lots_t qty_lots) except -1
    cpdef int mass_cancel(self, uid_t user_id=*, uint8_t side=*, bint all_users=*) except -1
    cpdef ticks_t best_bid(self)
    cpdef ticks_t best_ask(self)
    cpdef ticks_t last_price(self)
