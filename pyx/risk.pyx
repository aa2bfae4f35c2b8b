# cython: language_level=3
"""Trading commands: risk checks and holds before an order reaches its book.

NEW, CANCEL, REDUCE, REPLACE and MASS_CANCEL of one :class:`pyx.core.CoreState`.  A NEW
is checked (ids, user, symbol, order fields, prices on the grid and in the band,
notional bounds), its worst-case cost is held (docs/commands.md, "Risk and
settlement"), then the symbol's :class:`pyx.book.Book` is called through its ``c_*``
fast path and the events it appended are settled (:mod:`pyx.settle`).  A book reject
undoes the hold, so a rejected command changes nothing.  Exactly-once NEWs: each
user's accepted order ids are remembered (``remember_order``) so that a retry is
answered DUPLICATE with the first outcome; ids are judged "too old" per order-id lane
(bit ORDER_ID_LANE_SHIFT), so the gateway's and the API's ids never block each other.
"""

from cpython.mem cimport PyMem_Malloc
from libc.stdint cimport int64_t, uint64_t, uint16_t, uint8_t, int32_t

from pyx.types cimport ticks_t, lots_t, minor_t, oid_t
from pyx.records cimport CmdRec, EvRec
from pyx.book cimport Book
from pyx.enums cimport (
    BUY, SELL, LIMIT, MARKET, MARKET_QUOTE, STOP_LIMIT, STOP_MARKET, MASS_ALL_USERS, NEW,
    ACCEPTED, REJECTED, REPLACED,
    UNKNOWN_ORDER_ID, INVALID_QTY, NOTIONAL_OVERFLOW, INVALID_SIDE, INVALID_ORDER_TYPE,
    NOT_REPLACEABLE, INVALID_FLAGS, UNKNOWN_USER, USER_NOT_ACTIVE, UNKNOWN_SYMBOL,
    SYMBOL_NOT_TRADING, INSUFFICIENT_FUNDS, NOT_ORDER_OWNER, BELOW_MIN_NOTIONAL,
    INVALID_ORDER_ID, TOO_MANY_ORDERS, ORDER_ID_TOO_OLD, USER_ORDER_LIMIT,
    EXISTS_WITH_DIFFERENT_FIELDS,
)
from pyx.core cimport (
    CoreState, ReplyRec, ORec, URec, SRec, DRec,
    ST_APPLIED, ST_REJECTED, ST_DUPLICATE, MAX_LIVE_ORDERS, DEDUP_ORDERS,
    ORDER_ID_LANE_SHIFT, OID_MASK, NOTIONAL_MAX,
    bursa_notional, bursa_fee_ceil, bursa_budget_net,
    _uslot, _sslot, _bi, _oslot, _px_reason, _band_price, _iid, _uslot_oid, _order_fp, _reply,
    _stamped_book,
)
from pyx.settle cimport settle_events


cdef int _order_seen(CoreState self, const CmdRec* c, ReplyRec* r, URec* u,
                     int lane) except -1:
    """A NEW whose id is not above its lane's highest accepted id: 1 if it was answered
    here (a remembered exact retry gets the first outcome; a remembered id with other
    fields, or an id at or below its lane's forgotten floor, a reject), 0 if it is new.
    The ring is shared by the lanes; ids differ between lanes (the lane is an id bit)."""
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
    if c.order_id <= u.floor[lane]:
        self._reject(c, r, ORDER_ID_TOO_OLD)
        return 1
    return 0


cdef int remember_order(CoreState self, int32_t us, oid_t oid, uint64_t fp,
                        int64_t value) except -1:
    """Record an accepted NEW: raise its lane's mark, keep it in the user's ring (the
    last DEDUP_ORDERS NEWs of any lane); the NEW it pushes out raises the floor of the
    pushed-out id's own lane."""
    cdef URec* u = &self.users[us]
    if u.ring == NULL:
        u.ring = <DRec*> PyMem_Malloc(DEDUP_ORDERS * sizeof(DRec))
        if u.ring == NULL:
            raise MemoryError()
    cdef DRec* d = &u.ring[u.dcount % DEDUP_ORDERS]
    cdef int lane
    if u.dcount >= DEDUP_ORDERS:
        lane = <int> (d.oid >> ORDER_ID_LANE_SHIFT)
        if d.oid > u.floor[lane]:
            u.floor[lane] = d.oid      # forgotten: from now on too old to tell
    d.oid = oid
    d.fp = fp
    d.value = value
    u.dcount += 1
    lane = <int> (oid >> ORDER_ID_LANE_SHIFT)
    if oid > u.hwm[lane]:
        u.hwm[lane] = oid
    return 0


cdef int _book_reject(CoreState self, const CmdRec* c, ReplyRec* r, Py_ssize_t e0) except -1:
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


cdef struct NewHold:              # what a NEW holds, and how it enters its book
    int32_t ak                    # asset slot of the hold (BUY: quote, SELL: base)
    minor_t hold                  # minor units held
    ticks_t hold_px               # BUY: price the hold covers (limit or worst price); else 0
    ticks_t book_px               # price given to the book
    lots_t book_qty               # quantity given to the book


cdef inline int _order_fields(const CmdRec* c, const SRec* sym) noexcept:
    """0 if a NEW's side, type, quantity and the prices its hold depends on pass the
    book's checks (tick grid, then band); else the reject reason."""
    cdef int side = c.side, ot = c.ord_type, reason
    if side != BUY and side != SELL:
        return INVALID_SIDE
    if ot < LIMIT or ot > STOP_MARKET:
        return INVALID_ORDER_TYPE
    if ot == MARKET_QUOTE and side == SELL:
        return INVALID_SIDE
    if c.qty_lots <= 0:
        return INVALID_QTY
    if ot == LIMIT or ot == STOP_LIMIT or c.price_ticks != 0 and ot != MARKET_QUOTE:
        reason = _px_reason(sym, c.price_ticks)
        if reason:
            return reason
    if ot == STOP_MARKET and side == BUY:
        return _px_reason(sym, c.stop_price_ticks)
    return 0


cdef inline int _sell_hold(const CmdRec* c, const SRec* sym, NewHold* h) noexcept:
    """A SELL holds its quantity in base minor units: 0, or the reject reason."""
    cdef minor_t n
    cdef int ot = c.ord_type
    h.ak = sym.base_k
    h.hold = bursa_notional(c.qty_lots, sym.base_per_lot, 1, NOTIONAL_MAX)
    if h.hold < 0:
        return NOTIONAL_OVERFLOW
    if ot == LIMIT or ot == STOP_LIMIT:
        n = bursa_notional(c.price_ticks, c.qty_lots, sym.mult, NOTIONAL_MAX)
        if n < 0:
            return NOTIONAL_OVERFLOW
        if n < sym.min_notional_minor:
            return BELOW_MIN_NOTIONAL
    return 0


cdef int _buy_hold(const CmdRec* c, const SRec* sym, Book bk, int64_t max_ppm,
                   NewHold* h) except -1:
    """A BUY holds the notional at its limit (or worst) price plus the fee at the higher
    of its rates; a MARKET_QUOTE holds its budget: 0, or the reject reason."""
    cdef int ot = c.ord_type
    cdef ticks_t w
    cdef minor_t n
    h.ak = sym.quote_k
    if ot == MARKET_QUOTE:
        # qty_lots is a budget in quote minor units, fee included; the book
        # spends price_ticks * lots units: floor(net / mult) of them
        if c.qty_lots < sym.min_notional_minor:
            return BELOW_MIN_NOTIONAL
        h.hold = c.qty_lots
        h.book_qty = bursa_budget_net(c.qty_lots, max_ppm) // sym.mult
        h.book_px = 0
        return 0
    if ot == LIMIT or ot == STOP_LIMIT:
        h.hold_px = c.price_ticks
    else:
        if ot == MARKET:
            w = _band_price(sym, bk.c_best_ask())
            if c.price_ticks != 0 and (w == 0 or c.price_ticks < w):
                w = c.price_ticks
        else:                          # STOP_MARKET: worst price from the stop price
            w = _band_price(sym, c.stop_price_ticks)
            if c.price_ticks != 0 and c.price_ticks < w:
                w = c.price_ticks
        h.hold_px = w
        h.book_px = w
    h.hold = 0
    if h.hold_px != 0:
        n = bursa_notional(h.hold_px, c.qty_lots, sym.mult, NOTIONAL_MAX)
        if n < 0:
            return NOTIONAL_OVERFLOW
        if (ot == LIMIT or ot == STOP_LIMIT) and n < sym.min_notional_minor:
            return BELOW_MIN_NOTIONAL
        h.hold = n + bursa_fee_ceil(n, max_ppm)
    return 0


cdef int _hold_order(CoreState self, const CmdRec* c, int32_t us, int32_t ss, oid_t iid,
                     const NewHold* h) except -1:
    """Record a checked NEW's hold and move it from available to held."""
    cdef int64_t bi = _bi(self, us, h.ak, 0)
    cdef URec* u = &self.users[us]
    cdef minor_t before = self.held[bi]
    assert 0 <= h.hold <= self.avail[bi], "hold beyond the available balance"
    cdef ORec* o = self._oins(iid)
    o.hold = h.hold
    o.hold_price = h.hold_px
    o.user_id = c.user_id
    o.uslot = us
    u.n_open += 1
    o.taker_ppm = u.taker_ppm
    o.maker_ppm = u.maker_ppm
    o.sslot = <uint16_t> ss
    o.side = c.side
    o.ord_type = c.ord_type
    o.tif = c.tif
    o.stp = c.stp
    o.flags = c.flags
    o.pending_stop = c.ord_type == STOP_LIMIT or c.ord_type == STOP_MARKET
    self.avail[bi] -= h.hold
    self.held[bi] += h.hold
    assert self.avail[bi] >= 0 and self.held[bi] == before + h.hold
    return 0


cdef int _enter_book(CoreState self, const CmdRec* c, ReplyRec* r, int32_t us, int32_t ss,
                     oid_t iid, const NewHold* h) except -1:
    """Give a held NEW to its book; a book reject undoes the hold (nothing changes),
    an accepted order's fills are settled and its id remembered for retries."""
    cdef Book bk = _stamped_book(self, ss, c)
    cdef int64_t bi = _bi(self, us, h.ak, 0), i
    cdef Py_ssize_t e0 = self.evbuf.n
    cdef EvRec* e
    bk.c_new_order(iid, c.user_id, c.side, c.ord_type, c.tif, h.book_px, h.book_qty,
                   c.stop_price_ticks, c.stp, c.flags)
    e = &self.evbuf.recs[e0]
    if e.kind == REJECTED:             # undo the hold: nothing changes
        i = _oslot(self, iid)
        assert i >= 0
        self._odel(i)
        self.avail[bi] += h.hold
        self.held[bi] -= h.hold
        assert self.held[bi] >= 0
        return _book_reject(self, c, r, e0)
    assert e.kind == ACCEPTED
    e.taker_fee = h.hold               # hold after the event
    e.maker_fee = h.hold               # change of the hold
    settle_events(self, e0 + 1, ss)
    self._client_ids(e0)
    i = _oslot(self, iid)
    _reply(r, c, ST_APPLIED, 0, self.otab[i].hold if i >= 0 else 0)
    remember_order(self, us, c.order_id, _order_fp(c), r.value)
    return 0


cdef int new_order(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    """NEW: ids, user, symbol and order checks, the worst-case hold, then the book."""
    cdef int32_t us, ss
    cdef int reason, lane
    cdef int64_t max_ppm
    cdef URec* u
    cdef SRec* sym
    cdef NewHold h
    if c.order_id == 0 or c.order_id > OID_MASK:
        return self._reject(c, r, INVALID_ORDER_ID)
    us = _uslot(self, c.user_id)
    if us < 0:
        return self._reject(c, r, UNKNOWN_USER)
    u = &self.users[us]
    lane = <int> (c.order_id >> ORDER_ID_LANE_SHIFT)    # 0 or 1: the id is <= OID_MASK
    if c.order_id <= u.hwm[lane] and _order_seen(self, c, r, u, lane):
        return 0                       # a retry (answered as the first) or a stale id
    if u.suspended:
        return self._reject(c, r, USER_NOT_ACTIVE)
    ss = _sslot(self, c.symbol_id)
    if ss < 0:
        return self._reject(c, r, UNKNOWN_SYMBOL)
    sym = &self.syms[ss]
    if sym.halted:
        return self._reject(c, r, SYMBOL_NOT_TRADING)
    reason = _order_fields(c, sym)
    if reason:
        return self._reject(c, r, reason)
    h.hold_px = 0
    h.book_px = c.price_ticks
    h.book_qty = c.qty_lots
    if c.side == SELL:
        reason = _sell_hold(c, sym, &h)
    else:
        max_ppm = u.taker_ppm if u.taker_ppm > u.maker_ppm else u.maker_ppm
        reason = _buy_hold(c, sym, <Book> self.books[ss], max_ppm, &h)
    if reason:
        return self._reject(c, r, reason)
    if h.hold > self.avail[_bi(self, us, h.ak, 0)]:
        return self._reject(c, r, INSUFFICIENT_FUNDS)
    if u.n_open >= self.user_order_limit:
        return self._reject(c, r, USER_ORDER_LIMIT)
    if self.n_live >= MAX_LIVE_ORDERS:
        return self._reject(c, r, TOO_MANY_ORDERS)
    _hold_order(self, c, us, ss, _iid(c.user_id, c.order_id), &h)
    return _enter_book(self, c, r, us, ss, _iid(c.user_id, c.order_id), &h)


cdef inline int _owner_reason(CoreState self, const CmdRec* c, int64_t i) noexcept:
    """Why the command may not act on hold-map slot ``i`` (its order), 0 if it may."""
    if i < 0:
        return UNKNOWN_ORDER_ID
    if self.otab[i].user_id != c.user_id:
        return NOT_ORDER_OWNER
    return 0


cdef int cancel_order(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int64_t i = _uslot_oid(self, c)
    cdef int32_t ss
    cdef Py_ssize_t e0
    cdef Book bk
    cdef int reason = _owner_reason(self, c, i)
    if reason:
        return self._reject(c, r, reason)
    ss = self.otab[i].sslot
    bk = _stamped_book(self, ss, c)
    e0 = self.evbuf.n
    bk.c_cancel(self.otab[i].oid)
    if self.evbuf.recs[e0].kind == REJECTED:
        return _book_reject(self, c, r, e0)
    settle_events(self, e0, ss)
    self._client_ids(e0)
    _reply(r, c, ST_APPLIED, 0, 0)
    return 0


cdef int reduce_order(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int64_t i = _uslot_oid(self, c)
    cdef oid_t iid
    cdef int32_t ss
    cdef Py_ssize_t e0
    cdef Book bk
    cdef int reason = _owner_reason(self, c, i)
    if reason:
        return self._reject(c, r, reason)
    ss = self.otab[i].sslot
    bk = _stamped_book(self, ss, c)
    e0 = self.evbuf.n
    iid = self.otab[i].oid
    bk.c_reduce(iid, c.qty_lots)
    if self.evbuf.recs[e0].kind == REJECTED:
        return _book_reject(self, c, r, e0)
    settle_events(self, e0, ss)
    self._client_ids(e0)
    i = _oslot(self, iid)
    _reply(r, c, ST_APPLIED, 0, self.otab[i].hold if i >= 0 else 0)
    return 0


cdef int replace_order(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
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
    reason = _owner_reason(self, c, i)
    if reason:
        return self._reject(c, r, reason)
    o = &self.otab[i]
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
    bi = _bi(self, o.uslot, ak, 0)
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
    bk = _stamped_book(self, ss, c)
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
        return _book_reject(self, c, r, e0)
    assert e.kind == REPLACED
    e.taker_fee = need
    e.maker_fee = delta
    settle_events(self, e0 + 1, ss)
    self._client_ids(e0)
    i = _oslot(self, iid)
    _reply(r, c, ST_APPLIED, 0, self.otab[i].hold if i >= 0 else 0)
    return 0


cdef int mass_cancel(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t ss
    cdef Py_ssize_t e0, ncanceled = 0, first = self.evbuf.n
    cdef Book bk
    if _uslot(self, c.user_id) < 0:
        return self._reject(c, r, UNKNOWN_USER)
    if c.flags & MASS_ALL_USERS:
        return self._reject(c, r, INVALID_FLAGS)   # whole book: CANCEL_ALL_SYMBOL (admin)
    if c.side != 0 and c.side != BUY and c.side != SELL:
        return self._reject(c, r, INVALID_SIDE)
    if c.symbol_id != 0 and _sslot(self, c.symbol_id) < 0:
        return self._reject(c, r, UNKNOWN_SYMBOL)
    for sid in (sorted(self._symbol_ids()) if c.symbol_id == 0 else (c.symbol_id,)):
        ss = self.sid_slot[<int> sid]
        bk = _stamped_book(self, ss, c)
        e0 = self.evbuf.n
        bk.c_mass_cancel(c.user_id, c.side, False)
        ncanceled += self.evbuf.n - e0
        settle_events(self, e0, ss)
    self._client_ids(first)
    _reply(r, c, ST_APPLIED, 0, ncanceled)
    return 0
