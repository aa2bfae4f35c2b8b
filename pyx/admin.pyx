# cython: language_level=3
"""Admin commands: assets, symbols and their books, users, fee tiers, halts, limits.

Rare commands, plain Cython over Python containers and the core's C tables.  Each
validates fully before it changes anything, so a reject leaves the state untouched.
A symbol's configuration is refused unless its largest order's notional and base
amount, and a price level's total with every live order at one price, fit in int64.
The table constructors (``new_asset``, ``new_user``, ``new_symbol``) are shared with
snapshot loading in :mod:`pyx.core`.
"""

from cpython.mem cimport PyMem_Realloc
from libc.string cimport memset
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, uint8_t, int32_t

from pyx.types cimport uid_t
from pyx.records cimport CmdRec, EvRec
from pyx.book cimport Book
from pyx.enums cimport (
    ADD_USER, HALT_SYMBOL, SUSPEND_USER,
    ASSET_ADDED, SYMBOL_ADDED, MIN_NOTIONAL_SET, USER_ADDED, FEE_TIER_ADDED, FEE_TIER_SET,
    SYMBOL_HALTED, SYMBOL_RESUMED, USER_SUSPENDED, USER_RESUMED, USER_ORDER_LIMIT_SET,
    UNKNOWN_USER, UNKNOWN_SYMBOL, UNKNOWN_ASSET, ASSET_EXISTS, SYMBOL_EXISTS, USER_EXISTS,
    UNKNOWN_FEE_TIER, FEE_TIER_EXISTS, INVALID_CONFIG, INVALID_ID, ALREADY_IN_STATE,
)
from pyx.core cimport (
    CoreState, ReplyRec, SRec, ARec, URec, ST_APPLIED, ASSET_IDS, MAX_USER_ID, MAX_DECIMALS,
    BOOK_CAPACITY, PPM_MAX, MAX_LIVE_ORDERS, NOTIONAL_MAX, INT64_MAX,
    bursa_notional, _uslot, _aslot, _sslot, _reply, _push, _stamped_book,
)
from pyx.settle cimport settle_events


cdef int32_t new_asset(CoreState self, int64_t asset_id, int64_t decimals) except -1:
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


cdef int size_uid_map(CoreState self, int64_t n) except -1:
    """Grow the user id -> slot map to ``n`` entries (new entries: no user)."""
    assert self.uid_len < n <= MAX_USER_ID + 1
    cdef int32_t* grown = <int32_t*> PyMem_Realloc(self.uid_slot, n * sizeof(int32_t))
    if grown == NULL:
        raise MemoryError()
    memset(grown + self.uid_len, 0xFF, (n - self.uid_len) * sizeof(int32_t))
    self.uid_slot = grown
    self.uid_len = n
    return 0


cdef int size_symbols(CoreState self, int32_t cap) except -1:
    """Grow the symbol table to ``cap`` entries."""
    assert cap > self.scap
    cdef SRec* grown = <SRec*> PyMem_Realloc(self.syms, cap * sizeof(SRec))
    if grown == NULL:
        raise MemoryError()
    self.syms = grown
    self.scap = cap
    return 0


cdef int32_t new_user(CoreState self, int64_t uid, object tier) except -1:
    cdef int64_t n
    assert 0 < uid <= MAX_USER_ID and _uslot(self, uid) < 0
    if uid >= self.uid_len:
        n = self.uid_len
        while n <= uid:
            n *= 2
        if n > MAX_USER_ID + 1:
            n = MAX_USER_ID + 1
        self.growths += 1
        size_uid_map(self, n)
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


cdef int32_t new_symbol(CoreState self, int64_t sid, int64_t base, int64_t quote,
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
        size_symbols(self, 2 * self.scap)
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


cdef int add_asset(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    if c.symbol_id == 0:
        return self._reject(c, r, INVALID_ID)
    if _aslot(self, c.symbol_id) >= 0:
        return self._reject(c, r, ASSET_EXISTS)
    if c.a3 > MAX_DECIMALS:
        return self._reject(c, r, INVALID_CONFIG)
    new_asset(self, c.symbol_id, c.a3)
    _push(self, c, ASSET_ADDED).qty_lots = c.a3
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int add_symbol(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int64_t base = c.a3 & 0xFFFF, quote = c.a3 >> 16
    cdef int64_t tick = c.order_id & 0xFFFFFFFF, lot = c.order_id >> 32
    cdef int64_t min_qty = c.user_id, max_qty = c.qty_lots
    cdef int64_t min_px = c.price_ticks, max_px = c.stop_price_ticks
    cdef int64_t mult = c.a0, bpl = c.a1, prot = c.a2
    cdef EvRec* e
    if c.symbol_id == 0:
        return self._reject(c, r, INVALID_ID)
    if _sslot(self, c.symbol_id) >= 0:
        return self._reject(c, r, SYMBOL_EXISTS)
    if _aslot(self, base) < 0 or _aslot(self, quote) < 0:
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
        new_symbol(self, c.symbol_id, base, quote, tick, lot, mult, bpl, min_qty, max_qty,
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


cdef int set_min_notional(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t ss = _sslot(self, c.symbol_id)
    if ss < 0:
        return self._reject(c, r, UNKNOWN_SYMBOL)
    if c.a0 < 0:
        return self._reject(c, r, INVALID_CONFIG)
    self.syms[ss].min_notional_minor = c.a0
    _push(self, c, MIN_NOTIONAL_SET).qty_lots = c.a0
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int set_user_order_limit(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
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


cdef int add_fee_tier(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
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


cdef int user_tier(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    """ADD_USER and SET_FEE_TIER: a user with the rates of a fee tier."""
    cdef int32_t us = _uslot(self, c.user_id)
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
        new_user(self, c.user_id, c.a3)
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


cdef int halt(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t ss = _sslot(self, c.symbol_id)
    cdef uint8_t want = c.kind == HALT_SYMBOL
    if ss < 0:
        return self._reject(c, r, UNKNOWN_SYMBOL)
    if self.syms[ss].halted == want:
        return self._reject(c, r, ALREADY_IN_STATE)
    self.syms[ss].halted = want
    _push(self, c, SYMBOL_HALTED if want else SYMBOL_RESUMED)
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int suspend(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t us = _uslot(self, c.user_id)
    cdef uint8_t want = c.kind == SUSPEND_USER
    if us < 0:
        return self._reject(c, r, UNKNOWN_USER)
    if self.users[us].suspended == want:
        return self._reject(c, r, ALREADY_IN_STATE)
    self.users[us].suspended = want
    _push(self, c, USER_SUSPENDED if want else USER_RESUMED)
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int cancel_all(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t ss = _sslot(self, c.symbol_id)
    cdef Py_ssize_t e0
    cdef Book bk
    if ss < 0:
        return self._reject(c, r, UNKNOWN_SYMBOL)
    bk = _stamped_book(self, ss, c)
    e0 = self.evbuf.n
    bk.c_mass_cancel(0, 0, True)
    settle_events(self, e0, ss)
    self._client_ids(e0)
    _reply(r, c, ST_APPLIED, 0, self.evbuf.n - e0)
    return 0
