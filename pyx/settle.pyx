# cython: language_level=3
"""Settlement: the money side of the events a book call appended (one symbol).

For each TRADE the buyer's hold pays the notional plus its fee, the seller's hold
gives the base amount, the seller receives the notional minus its fee and the quote
asset's fee account both fees (docs/commands.md, "Risk and settlement"); an order
that ended (TAKER_DONE / MAKER_DONE, CANCELED) releases what it still holds; a
REDUCED order keeps only its new worst case.  Every step moves amounts between
``held`` and ``avail`` (or the fee account) and asserts that no hold goes negative
and no fill exceeds its hold, so the per-asset sum is conserved.
"""

from libc.stdint cimport int64_t, int32_t

from pyx.types cimport ticks_t, lots_t, minor_t, oid_t
from pyx.records cimport EvRec
from pyx.enums cimport (
    BUY, SELL, MARKET_QUOTE, TRADE, CANCELED, REDUCED, TRIGGERED, TAKER_DONE, MAKER_DONE,
)
from pyx.core cimport (
    CoreState, ORec, SRec, NOTIONAL_MAX, BURSA_VARIANTS,
    bursa_notional, bursa_fee_ceil, bursa_fee_floor, _bi, _oslot,
)


cdef int settle_events(CoreState self, Py_ssize_t e0, int32_t ss) except -1:
    """Settle the events ``[e0, n)`` a book call appended (one symbol)."""
    cdef const SRec* sym = &self.syms[ss]
    cdef Py_ssize_t k = e0
    cdef EvRec* e
    cdef int64_t i
    # bounded by the events of one command; settlement itself appends none
    while k < self.evbuf.n:
        e = &self.evbuf.recs[k]
        if e.kind == TRADE:
            _fill(self, e, sym)
        elif e.kind == CANCELED:
            _release(self, e.order_id, e, True)
        elif e.kind == REDUCED:
            _rehold(self, e, sym)
        elif e.kind == TRIGGERED:
            i = _oslot(self, e.order_id)
            assert i >= 0
            self.otab[i].pending_stop = 0
        k += 1
    return 0


cdef int _fill(CoreState self, EvRec* e, const SRec* sym) except -1:
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
    bq = _bi(self, b.uslot, sym.quote_k, 0)
    bb = _bi(self, b.uslot, sym.base_k, 0)
    sq = _bi(self, s.uslot, sym.quote_k, 0)
    sb = _bi(self, s.uslot, sym.base_k, 0)
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
        _release(self, e.order_id, NULL, False)
    if e.flags & MAKER_DONE:
        _release(self, e.maker_order_id, NULL, False)
    return 0


cdef minor_t _release(CoreState self, oid_t oid, EvRec* e, bint canceled) except -1:
    """Release what an ended order still holds and drop its record; returns it."""
    cdef int64_t i = _oslot(self, oid), bi
    cdef ORec* o
    cdef const SRec* sym
    cdef minor_t amt
    assert i >= 0, "end of an order without a hold record"
    o = &self.otab[i]
    sym = &self.syms[o.sslot]
    bi = _bi(self, o.uslot, sym.quote_k if o.side == BUY else sym.base_k, 0)
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


cdef minor_t _required(CoreState self, const ORec* o, const SRec* sym, ticks_t price,
                       lots_t open_lots) noexcept:
    """Worst-case hold of ``open_lots`` lots at ``price`` for order ``o``."""
    cdef minor_t n
    if o.side == SELL:
        return open_lots * sym.base_per_lot
    if o.ord_type == MARKET_QUOTE or price == 0:
        return o.hold if o.ord_type == MARKET_QUOTE else 0
    n = price * open_lots * sym.mult   # <= the notional checked at submission
    return n + bursa_fee_ceil(n, o.taker_ppm if o.taker_ppm > o.maker_ppm else o.maker_ppm)


cdef int _rehold(CoreState self, EvRec* e, const SRec* sym) except -1:
    """An order's open quantity went down (REDUCED): keep only its worst case."""
    cdef int64_t i = _oslot(self, e.order_id), bi
    cdef ORec* o
    cdef minor_t need, rel
    assert i >= 0
    o = &self.otab[i]
    need = _required(self, o, sym, o.hold_price, e.leaves_lots)
    assert 0 <= need <= o.hold, "reduced order needs more than it holds"
    rel = o.hold - need
    bi = _bi(self, o.uslot, sym.quote_k if o.side == BUY else sym.base_k, 0)
    self.held[bi] -= rel
    self.avail[bi] += rel
    o.hold = need
    e.taker_fee = need
    e.maker_fee = -rel
    return 0
