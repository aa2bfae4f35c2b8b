# The deterministic core state machine: accounts, risk, settlement, routing to books.
# Semantics and field mappings: docs/commands.md, engine/wire/commands.py, engine/wire/events.py.
#
# All balances are int64 minor units in flat C arrays indexed
#   (user_slot * astride + asset_slot) * N_ACCOUNTS + account
# Order holds live in an open-addressing hash map keyed by the internal order id
# (user_id << 40 | client order id): order ids are per user (docs/commands.md, "Idempotency").
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, uint8_t, int32_t
from pyx.types cimport ticks_t, lots_t, minor_t, oid_t, seq_t, uid_t
from pyx.records cimport CmdRec, EvRec
from pyx.evbuf cimport EventBuf
from pyx.book cimport Book


cdef packed struct ReplyRec:     # 40 bytes, mirrors REPLY_DTYPE in bursa_wire/layout.py
    uint64_t seq
    uint64_t client_ref
    uint64_t order_id
    int64_t value
    uint32_t user_id
    uint16_t reason
    uint8_t kind
    uint8_t status


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
    oid_t hwm                    # highest accepted client order id (above it: new for sure)
    oid_t floor                  # highest id forgotten from the ring (at or below: too old)
    uint64_t dcount              # accepted NEWs remembered so far (ring position)
    DRec* ring                   # the last DEDUP_ORDERS accepted NEWs (NULL until the first)


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

    # tables
    cdef int32_t _uslot(self, uint64_t uid) noexcept
    cdef int32_t _aslot(self, int64_t aid) noexcept
    cdef int32_t _sslot(self, int64_t sid) noexcept
    cdef inline int64_t _bi(self, int32_t us, int32_t ak, int acc) noexcept
    cdef int _grow_users(self) except -1
    cdef int _grow_assets(self) except -1
    cdef int _size_users(self, int32_t cap, bint counted) except -1
    cdef int _size_assets(self, int32_t stride, bint counted) except -1
    # order map
    cdef int64_t _ofind(self, oid_t oid) noexcept
    cdef ORec* _oins(self, oid_t oid) except NULL
    cdef void _odel(self, int64_t i) noexcept
    cdef int _orehash(self, int bits) except -1
    # commands
    cdef int _apply_one(self, const CmdRec* c, ReplyRec* r) except -1
    cdef int _reject(self, const CmdRec* c, ReplyRec* r, int reason) except -1
    cdef int _new(self, const CmdRec* c, ReplyRec* r) except -1
    cdef int _cancel(self, const CmdRec* c, ReplyRec* r) except -1
    cdef int _reduce(self, const CmdRec* c, ReplyRec* r) except -1
    cdef int _replace(self, const CmdRec* c, ReplyRec* r) except -1
    cdef int _mass_cancel(self, const CmdRec* c, ReplyRec* r) except -1
    cdef void _client_ids(self, Py_ssize_t e0) noexcept
    cdef int _book_reject(self, const CmdRec* c, ReplyRec* r, Py_ssize_t e0) except -1
    # settlement
    cdef int _settle(self, Py_ssize_t e0, int32_t ss) except -1
    cdef int _fill(self, EvRec* e, const SRec* sym) except -1
    cdef minor_t _release(self, oid_t oid, EvRec* e, bint canceled) except -1
    cdef int _rehold(self, EvRec* e, const SRec* sym) except -1
    cdef minor_t _required(self, const ORec* o, const SRec* sym, ticks_t price, lots_t open_lots) noexcept
    # admin / funding (Python speed)
    cdef int _admin(self, const CmdRec* c, ReplyRec* r) except -1
