# The core's shared state declaration: the CoreState cdef class (its attributes), the
# record structs, the constants and the small inline helpers every core module uses.
# CoreState is defined in core.pyx (dispatch, capacity, snapshot glue); the command
# modules take it as their first argument and are cimported through their .pxd:
#   pyx/risk.pyx     trading commands: checks and holds before an order reaches the book
#   pyx/settle.pyx   settlement of the book's events: fills, fees, releases (conservation)
#   pyx/funding.pyx  deposits, withdrawal hold/commit/release, transfers (exactly-once refs)
#   pyx/admin.pyx    assets, symbols, users, fee tiers, halts, limits
# Semantics and field mappings: docs/commands.md, engine/wire/commands.py, engine/wire/events.py.
#
# All balances are int64 minor units in flat C arrays indexed
#   (user_slot * astride + asset_slot) * N_ACCOUNTS + account
# Order holds live in an open-addressing hash map keyed by the internal order id
# (user_id << 40 | client order id): order ids are per user (docs/commands.md, "Idempotency").
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, uint8_t, int32_t
from pyx.types cimport ticks_t, lots_t, minor_t, oid_t, seq_t, uid_t
from pyx.records cimport CmdRec, EvRec, ReplyRec
from pyx.evbuf cimport EventBuf
from pyx.book cimport Book
from pyx.enums cimport (
    SELL, PRICE_OFF_TICK, PRICE_OUT_OF_BAND, REJECTED, ADD_ASSET, SET_USER_ORDER_LIMIT,
)

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
    /* Constants beyond the range of a C enum (int). */
    #define BURSA_OID_MASK ((((uint64_t)1) << 40) - 1)
    #define BURSA_SUPPLY_MAX (((int64_t)1) << 62)
    #define BURSA_NOTIONAL_MAX ((((int64_t)1) << 62) - 1)
    #define BURSA_INT64_MAX ((int64_t)0x7FFFFFFFFFFFFFFF)
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

    # Internal order id = user_id << OID_BITS | client order id: the key of the hold map
    # and of the books, unique over users; events and replies carry the client id.
    uint64_t OID_MASK "BURSA_OID_MASK"
    # Per-asset bound on deposits - committed withdrawals: every balance, hold and fee
    # account of the asset is then below 2**62, so no sum of two of them overflows.
    int64_t SUPPLY_MAX "BURSA_SUPPLY_MAX"
    # Largest notional (quote minor units) an order or a symbol config may reach: a buy
    # hold is at most twice it (fee ppm <= 1e6), which still fits in int64.
    int64_t NOTIONAL_MAX "BURSA_NOTIONAL_MAX"
    int64_t INT64_MAX "BURSA_INT64_MAX"


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
    DEDUP_ORDERS = 32              # accepted NEWs remembered per user (any lane) for duplicates
    DEFAULT_USER_ORDER_LIMIT = 10000   # live orders per user at most (by default)

# Internal order id = user_id << OID_BITS | client order id: the key of the hold map

# Order-id lanes (also Python constants of pyx.core): bit ORDER_ID_LANE_SHIFT of a client
# order id picks its lane (0: the gateway's ids, below 2**39; 1: the Binance API's, 2**39
# and up).  Each lane of a user has its own highest accepted id and forgotten floor, so
# two order doors with their own increasing ids never refuse each other's orders
# ORDER_ID_TOO_OLD; the ring of remembered NEWs (DEDUP_ORDERS) is shared by the lanes.
cpdef enum:
    ORDER_ID_LANE_SHIFT = 39
    ORDER_ID_LANES = 2

# Funding reference kinds (CoreState.ref_floors index): the last ref_memory of each kind
# are remembered (with their content and first result); an unknown reference at or
# below the highest one forgotten is rejected REFERENCE_TOO_OLD.
cdef enum:
    REF_DEPOSIT = 0
    REF_WITHDRAWAL = 1
    REF_TRANSFER = 2


cdef struct ORec:                # hold record of one live order (oid 0 = empty map slot)
    oid_t oid
    minor_t hold                 # still held, minor units of the held asset (BUY: quote, SELL: base)
    ticks_t hold_price           # BUY: price the hold covers (limit or worst price); else 0
    uid_t user_id
    int32_t uslot
    uint32_t taker_ppm           # fee rates captured at submission, ppm of notional
    uint32_t maker_ppm
    uint16_t sslot
    uint8_t side
    uint8_t ord_type
    uint8_t tif
    uint8_t stp
    uint8_t flags
    uint8_t pending_stop         # 1 while a stop order waits in the stop set


cdef struct DRec:                # one remembered accepted NEW (duplicate detection)
    oid_t oid                    # client order id
    uint64_t fp                  # fingerprint of the NEW's fields
    int64_t value                # the first reply's value


cdef struct URec:                # one user
    uid_t user_id
    uint32_t tier
    uint32_t taker_ppm
    uint32_t maker_ppm
    uint8_t suspended
    uint32_t n_open              # live orders (resting + stop)
    # per order-id lane (oid >> ORDER_ID_LANE_SHIFT):
    oid_t hwm[ORDER_ID_LANES]    # highest accepted client order id (above it: new for sure)
    oid_t floor[ORDER_ID_LANES]  # highest id forgotten from the ring (at or below: too old)
    uint64_t dcount              # accepted NEWs remembered so far (ring position)
    DRec* ring                   # the last DEDUP_ORDERS accepted NEWs of any lane (NULL
                                 # until the first): one ring, shared by the lanes


cdef struct ARec:                # one asset
    uint16_t asset_id
    uint8_t decimals             # display only
    minor_t fee_minor            # the fee account of this asset
    minor_t outstanding_minor    # deposits - committed withdrawals (bounded by SUPPLY_MAX)


cdef struct SRec:                # one symbol
    uint16_t symbol_id
    uint16_t base_id
    uint16_t quote_id
    uint8_t halted
    int32_t base_k               # asset slots
    int32_t quote_k
    ticks_t tick_step
    lots_t lot_step
    minor_t mult                 # quote minor units per (tick x lot)
    minor_t base_per_lot         # base minor units per lot
    lots_t min_qty_lots
    lots_t max_qty_lots
    ticks_t min_price_ticks
    ticks_t max_price_ticks
    ticks_t protection_ticks
    minor_t min_notional_minor   # quote minor units


cdef class CoreState:
    cdef readonly seq_t last_seq         # seq of the last applied command (0 = none)
    cdef readonly EventBuf evbuf         # shared by every book: the events of one apply()
    cdef bint v_double_release           # broken variant: release a canceled order's hold twice
    cdef bint v_dup_deposit              # broken variant: a duplicate deposit reference credits again
    cdef readonly object variants
    cdef int64_t growths                 # tables grown mid-run (the fallback of reserve())
    cdef int64_t book_reserve            # orders each new book is sized for (0: default)

    # users: dense slots, uid -> slot index array
    cdef URec* users
    cdef int32_t n_users
    cdef int32_t ucap
    cdef int32_t* uid_slot
    cdef int64_t uid_len
    # assets: dense slots, id -> slot
    cdef ARec* assets_c
    cdef int32_t n_assets
    cdef int32_t astride                 # asset capacity of a balance row
    cdef int32_t* aid_slot               # 65536 entries
    # balances
    cdef minor_t* avail
    cdef minor_t* held
    # symbols
    cdef SRec* syms
    cdef int32_t n_syms
    cdef int32_t scap
    cdef int32_t* sid_slot               # 65536 entries
    cdef list books                      # Book per symbol slot
    # order hold map
    cdef ORec* otab
    cdef uint64_t omask
    cdef int obits
    cdef int64_t n_live
    # funding and admin state (Python objects: touched by rare commands only)
    cdef dict fee_tiers                  # tier -> (maker_ppm, taker_ppm)
    # funding references, OrderedDicts in arrival order (the oldest is forgotten first)
    cdef object deposit_refs             # ref -> (user_id, asset_id, account, amount, reply value)
    cdef object withdrawals              # id -> [user, asset, account, amount, state, hold value, end value]
    cdef object transfers                # ref -> (user_id, asset_id, from, to, amount, reply value)
    cdef list ref_floors                 # per kind: highest reference forgotten (at or below: too old)
    cdef readonly int64_t ref_memory     # references remembered per kind at most
    cdef int64_t user_order_limit        # live orders per user at most
    cdef list deposited                  # per asset slot, total credited (Python int)
    cdef list withdrawn                  # per asset slot, total committed (Python int)

    # tables (lookups: the inline functions _uslot, _aslot, _sslot, _bi below)
    cdef int _grow_users(self) except -1
    cdef int _grow_assets(self) except -1
    cdef int _size_users(self, int32_t cap, bint counted) except -1
    cdef int _size_assets(self, int32_t stride, bint counted) except -1
    # order map (lookup: the inline function _oslot below)
    cdef ORec* _oins(self, oid_t oid) except NULL
    cdef void _odel(self, int64_t i) noexcept
    cdef int _orehash(self, int bits) except -1
    # dispatch (core.pyx) and the reply/event glue every command module uses
    cdef int _apply_one(self, const CmdRec* c, ReplyRec* r) except -1
    cdef int _admin(self, const CmdRec* c, ReplyRec* r) except -1
    cdef int _reject(self, const CmdRec* c, ReplyRec* r, int reason) except -1
    cdef void _client_ids(self, Py_ssize_t e0) noexcept


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


cdef inline int32_t _uslot(CoreState s, uint64_t uid) noexcept:
    """Slot of a user id, -1 if unknown."""
    if uid >= <uint64_t> s.uid_len:
        return -1
    return s.uid_slot[uid]


cdef inline int32_t _aslot(CoreState s, int64_t aid) noexcept:
    """Slot of an asset id, -1 if unknown."""
    if aid <= 0 or aid >= ASSET_IDS:
        return -1
    return s.aid_slot[aid]


cdef inline int32_t _sslot(CoreState s, int64_t sid) noexcept:
    """Slot of a symbol id, -1 if unknown."""
    if sid <= 0 or sid >= ASSET_IDS:
        return -1
    return s.sid_slot[sid]


cdef inline int64_t _bi(CoreState s, int32_t us, int32_t ak, int acc) noexcept:
    """Index of a (user slot, asset slot, account) balance cell."""
    return (<int64_t> us * s.astride + ak) * N_ACCOUNTS + acc


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


cdef inline Book _stamped_book(CoreState s, int32_t ss, const CmdRec* c):
    """The book of symbol slot ``ss`` with the command's seq and time set: the events
    the book pushes for this command carry them."""
    cdef Book bk = <Book> s.books[ss]
    bk.seq = c.seq
    bk.ts_ns = c.ts_ns
    return bk


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
    """Fill the reply of command ``c``."""
    r.seq = c.seq
    r.client_ref = c.client_ref
    r.order_id = c.order_id
    r.value = value
    r.user_id = c.user_id
    r.reason = reason
    r.kind = c.kind
    r.status = status


cdef inline EvRec* _push(CoreState self, const CmdRec* c, int kind) except NULL:
    """Append an event of ``kind`` stamped with the command's seq, time, user and symbol."""
    cdef EvRec* e = self.evbuf.push()
    e.seq = c.seq
    e.ts_ns = c.ts_ns
    e.kind = kind
    e.user_id = c.user_id
    e.symbol_id = c.symbol_id
    return e

