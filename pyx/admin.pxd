# Admin commands: assets, symbols (and their books), users, fee tiers, halts, suspensions,
# limits; plus the table constructors snapshot loading (core.pyx) reuses.
from libc.stdint cimport int64_t, int32_t
from pyx.records cimport CmdRec
from pyx.core cimport CoreState, ReplyRec

cdef int add_asset(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int add_symbol(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int set_min_notional(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int set_user_order_limit(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int add_fee_tier(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int user_tier(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int halt(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int suspend(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int cancel_all(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int32_t new_asset(CoreState self, int64_t asset_id, int64_t decimals) except -1
cdef int32_t new_user(CoreState self, int64_t uid, object tier) except -1
cdef int32_t new_symbol(CoreState self, int64_t sid, int64_t base, int64_t quote,
                        int64_t tick, int64_t lot, int64_t mult, int64_t bpl,
                        int64_t min_qty, int64_t max_qty, int64_t min_px, int64_t max_px,
                        int64_t prot) except -1
cdef int size_uid_map(CoreState self, int64_t n) except -1
cdef int size_symbols(CoreState self, int32_t cap) except -1
