# cython: language_level=3
"""Event records -> ledger rows, compiled: the fast path of ``clearing.ledger.Ledger``.

:func:`apply_events` does for a whole frame of ``EV_DTYPE`` records what the
pure-Python path of the ledger does one event at a time (``Ledger._apply``:
``clearing.rules.post`` for the entries, then the balance updates and the query
rows), reading the packed ``EvRec`` structs directly instead of building an
``Ev`` tuple, a ``Posting`` and ``Entry`` objects per event.  The pure-Python
path stays the oracle: tests/clearing/test_ledgermap.py (hypothesis) checks that
both produce identical rows, balances, holds and orders on core streams.

Amounts stay Python ints (as in the oracle: a notional that overflows 64 bits
fails the same way, at the database).  Every rule mirrors clearing/rules.py;
change both together.
"""

cimport numpy as cnp
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

from pyx.records cimport EvRec
from pyx.enums cimport EvKind, Side

import gc

import numpy as np

from bursa_wire.layout import EV_DTYPE
from pyx import enums as _enums

cnp.import_array()

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)


cdef inline object _atomic(object t):
    """Take a tuple of ints and strs out of the cyclic GC's sight (it cannot be in
    a cycle; CPython untracks such tuples itself, but only when a collection
    reaches them): the queued rows and account keys would otherwise be traversed
    by every collection their allocation triggers."""
    PyObject_GC_UnTrack(<PyObject*>t)
    return t

# Buckets (clearing.rules): checked at import so the two can never drift.
cdef enum:
    _AVAILABLE = 0
    _HELD = 1
    _FEE = 2
    _EXTERNAL = 3
    TAKER_DONE = 1
    MAKER_DONE = 2
    YIELD_MASK = 63  # release the GIL every 64 events

# The causes, hold and symbol types and the error of clearing.rules, handed in by
# clearing.ledger through bind_rules(): pyx imports nothing above it (tests/test_layering.py).
cdef object HOLD = None
cdef object RELEASE = None
cdef object TRADE = None
cdef object FEE_CAUSE = None
cdef object DEPOSIT = None
cdef object WITHDRAW_HOLD = None
cdef object WITHDRAW_COMMIT = None
cdef object WITHDRAW_RELEASE = None
cdef object TRANSFER = None
cdef object UnknownReferenceError = None
cdef object Hold = None
cdef object Symbol = None
cdef bint _bound = False
cdef object _tuple_new = tuple.__new__


def bind_rules(rules):
    """Take the constants and types of ``rules`` (the module clearing.rules), checking
    that its buckets and flags are the ones compiled in here, so the two cannot drift.
    clearing.ledger calls it once, at import."""
    global HOLD, RELEASE, TRADE, FEE_CAUSE, DEPOSIT, WITHDRAW_HOLD, WITHDRAW_COMMIT
    global WITHDRAW_RELEASE, TRANSFER, UnknownReferenceError, Hold, Symbol, _bound
    assert (rules.AVAILABLE, rules.HELD, rules.FEE, rules.EXTERNAL) == (0, 1, 2, 3)
    assert rules.SYSTEM_USER == 0
    assert (rules.TAKER_DONE, rules.MAKER_DONE) == (TAKER_DONE, MAKER_DONE)
    HOLD, RELEASE, TRADE, FEE_CAUSE = rules.HOLD, rules.RELEASE, rules.TRADE, rules.FEE_CAUSE
    DEPOSIT, WITHDRAW_HOLD = rules.DEPOSIT, rules.WITHDRAW_HOLD
    WITHDRAW_COMMIT, WITHDRAW_RELEASE = rules.WITHDRAW_COMMIT, rules.WITHDRAW_RELEASE
    TRANSFER = rules.TRANSFER
    UnknownReferenceError, Hold, Symbol = rules.UnknownReferenceError, rules.Hold, rules.Symbol
    _bound = True

# Order statuses and kind names (clearing.ledger; strings passed in by it).
cdef object LIVE = "live"
cdef object FILLED = "filled"
cdef object CANCELED_S = "canceled"
cdef object HELD_S = "held"
cdef object COMMITTED_S = "committed"
cdef object RELEASED_S = "released"
cdef dict KIND_NAMES = {int(k): k.name for k in _enums.EvKind}
cdef object ZERO = 0
cdef dict NO_HOLDS = {}  # the hold updates of an event that changes no hold (never written)

# Order row indexes (clearing.ledger.ORDER_COLUMNS).
cdef enum:
    O_PRICE = 5
    O_LEAVES = 7
    O_FILLED = 8
    O_STATUS = 9
    O_REASON = 10
    O_HOLD = 12
    O_UPDATED = 14


cdef inline object _hold(object asset, object amount):
    return _tuple_new(Hold, (asset, amount))


cdef class _Mapper:
    """The ledger's state and queues for one frame, and the current event."""

    cdef dict bal, symbols, holds, orders, q_orders
    cdef set qb
    cdef list qe, q_oev, q_trades, q_dep, q_wd_new, q_wd_done, q_sym, q_assets, q_users
    cdef Py_ssize_t applied
    # current event
    cdef object seq, idx, ts
    cdef int line
    # hold updates of the current event (the oracle's Posting.holds, in order); set
    # by the kinds that read it
    cdef dict ph

    cdef inline int entry(self, tuple acct, object amount, object cause,
                          uint64_t oid, uint64_t mid, uint64_t ref) except -1:
        """One ledger line: the balance after it, the row, the dirty account."""
        cdef object after = self.bal.get(acct, ZERO) + amount
        self.bal[acct] = after
        self.qb.add(acct)
        # ids are stored as the signed 64-bit integer with the same bits (ledger.i64)
        self.qe.append(_atomic((self.seq, self.idx, self.line, self.ts, cause, acct[0],
                                acct[1], acct[2], acct[3], amount, after, <int64_t>oid,
                                <int64_t>mid, <int64_t>ref)))
        self.line += 1
        return 0

    cdef inline int pair(self, tuple debit, tuple credit, object amount, object cause,
                         uint64_t oid=0, uint64_t mid=0, uint64_t ref=0) except -1:
        """rules._pair: debit ``amount`` to ``debit``, credit it to ``credit``."""
        if amount == 0:
            return 0
        self.entry(debit, amount, cause, oid, mid, ref)
        self.entry(credit, -amount, cause, oid, mid, ref)
        return 0

    cdef int hold_move(self, object user, object asset, object delta, uint64_t oid) except -1:
        """rules._hold_move: available -> held (delta > 0) or back (delta < 0)."""
        cdef tuple av = _atomic((user, 0, _AVAILABLE, asset))
        cdef tuple hd = _atomic((user, 0, _HELD, asset))
        if delta > 0:
            self.pair(hd, av, delta, HOLD, oid)
        elif delta < 0:
            self.pair(av, hd, -delta, RELEASE, oid)
        return 0

    cdef object symbol(self, const EvRec* e):
        s = self.symbols.get(e.symbol_id)
        if s is None:
            raise UnknownReferenceError(f"seq {e.seq}: unknown symbol {e.symbol_id}")
        return s

    cdef object live_hold(self, const EvRec* e, tuple key):
        h = self.holds.get(key)
        if h is None:
            raise UnknownReferenceError(
                f"seq {e.seq}: unknown live order (user, order) = {key}")
        return h

    cdef list row(self, const EvRec* e, tuple key):
        """ledger._row: the order's current row, marked updated and queued."""
        row = self.orders.get(key)
        if row is None:
            raise UnknownReferenceError(f"seq {e.seq}: event for unknown order {key}")
        (<list>row)[O_UPDATED] = self.seq
        self.q_orders[key] = row
        return <list>row

    cdef int set_hold(self, tuple key, list row) except -1:
        """ledger._set_hold: the order's hold after the event (None: it ended)."""
        if key not in self.ph:
            return 0
        h = self.ph[key]
        if h is None:
            row[O_HOLD] = 0
            if row[O_STATUS] == LIVE:
                row[O_STATUS] = FILLED
            self.holds.pop(key, None)
            self.orders.pop(key, None)
        else:
            row[O_HOLD] = (<tuple>h)[1]
            self.holds[key] = h
        return 0

    cdef int fill(self, const EvRec* e, tuple key, object leaves) except -1:
        """ledger._fill."""
        cdef list row = self.row(e, key)
        row[O_FILLED] = row[O_FILLED] + e.qty_lots
        row[O_LEAVES] = leaves
        if key in self.ph and self.ph[key] is None:
            row[O_STATUS] = FILLED
            row[O_LEAVES] = 0
        self.set_hold(key, row)
        return 0

    cdef int order_event(self, const EvRec* e, object kind) except -1:
        self.q_oev.append(_atomic((self.seq, self.idx, 0, self.ts, e.user_id,
                                   <int64_t>e.order_id, kind, e.symbol_id, e.side,
                                   e.price_ticks, e.qty_lots, e.leaves_lots, e.reason)))
        return 0

    cdef int trade(self, const EvRec* e) except -1:
        """rules._trade, then ledger._order_rows of a TRADE."""
        sym = self.symbol(e)
        cdef object q = (<tuple>sym)[1]
        cdef object b = (<tuple>sym)[0]
        cdef object price = e.price_ticks
        cdef object qty = e.qty_lots
        cdef object n = price * qty * (<tuple>sym)[2]
        cdef object base_amt = qty * (<tuple>sym)[3]
        cdef tuple taker = (e.user_id, e.order_id)
        cdef tuple maker = (e.maker_user_id, e.maker_order_id)
        cdef tuple buyer, seller
        cdef object fee_b, fee_s
        if e.side == Side.BUY:
            buyer, seller, fee_b, fee_s = taker, maker, e.taker_fee, e.maker_fee
        else:
            buyer, seller, fee_b, fee_s = maker, taker, e.maker_fee, e.taker_fee
        bh = self.live_hold(e, buyer)
        sh = self.live_hold(e, seller)
        cdef uint64_t mid = e.match_id
        cdef uint64_t b_oid = buyer[1]
        cdef uint64_t s_oid = seller[1]
        cdef tuple b_held_q = _atomic((buyer[0], 0, _HELD, q))
        cdef tuple s_avail_q = _atomic((seller[0], 0, _AVAILABLE, q))
        cdef tuple fee_q = _atomic((0, 0, _FEE, q))
        self.pair(s_avail_q, b_held_q, n, TRADE, b_oid, mid)
        self.pair(_atomic((buyer[0], 0, _AVAILABLE, b)), _atomic((seller[0], 0, _HELD, b)),
                  base_amt, TRADE, s_oid, mid)
        self.pair(fee_q, b_held_q, fee_b, FEE_CAUSE, b_oid, mid)
        self.pair(fee_q, s_avail_q, fee_s, FEE_CAUSE, s_oid, mid)
        if buyer == seller:
            raise UnknownReferenceError(f"seq {e.seq}: order {buyer} trades with itself")
        cdef object b_left = (<tuple>bh)[1] - n - fee_b
        cdef object s_left = (<tuple>sh)[1] - base_amt
        cdef bint taker_done = (e.flags & TAKER_DONE) != 0
        cdef bint maker_done = (e.flags & MAKER_DONE) != 0
        cdef bint b_done = taker_done if e.side == Side.BUY else maker_done
        cdef bint s_done = maker_done if e.side == Side.BUY else taker_done
        if b_done:
            self.hold_move(buyer[0], (<tuple>bh)[0], -b_left, b_oid)
            self.ph[buyer] = None
        else:
            self.ph[buyer] = _hold((<tuple>bh)[0], b_left)
        if s_done:
            self.hold_move(seller[0], (<tuple>sh)[0], -s_left, s_oid)
            self.ph[seller] = None
        else:
            self.ph[seller] = _hold((<tuple>sh)[0], s_left)
        # query rows (ledger._order_rows)
        kind = KIND_NAMES[e.kind]
        self.order_event(e, kind)
        self.q_trades.append((self.seq, self.idx, self.ts, e.symbol_id, <int64_t>e.match_id,
                              price, qty, n, base_amt, e.side, e.user_id,
                              <int64_t>e.order_id, e.taker_fee, e.maker_user_id,
                              <int64_t>e.maker_order_id, e.maker_fee, q))
        cdef int maker_side = Side.SELL if e.side == Side.BUY else Side.BUY
        self.q_oev.append((self.seq, self.idx, 1, self.ts, e.maker_user_id,
                           <int64_t>e.maker_order_id, kind, e.symbol_id, maker_side, price,
                           qty, -1, 0))
        self.fill(e, taker, e.leaves_lots)
        mrow = self.orders.get(maker)
        mleaves = ((<list>mrow)[O_LEAVES] - qty) if mrow is not None else 0
        self.fill(e, maker, mleaves)
        return 0

    cdef int event(self, const EvRec* e) except -1:
        """One event: rules.post and ledger._apply."""
        cdef int k = e.kind
        cdef tuple key, acc, av, hd
        cdef list row
        if k == EvKind.ACCEPTED:
            sym = self.symbol(e)
            asset = (<tuple>sym)[1] if e.side == Side.BUY else (<tuple>sym)[0]
            self.hold_move(e.user_id, asset, e.maker_fee, e.order_id)
            h = _hold(asset, e.taker_fee)
            key = (e.user_id, e.order_id)
            self.order_event(e, KIND_NAMES[k])
            row = [e.user_id, <int64_t>e.order_id, e.symbol_id, e.side, e.ord_type,
                   e.price_ticks, e.qty_lots, e.leaves_lots, 0, LIVE, 0, asset,
                   (<tuple>h)[1], self.seq, self.seq]
            self.orders[key] = row
            self.holds[key] = h
            self.q_orders[key] = row
        elif k == EvKind.CANCELED or k == EvKind.REDUCED or k == EvKind.REPLACED:
            self.ph = {}
            key = (e.user_id, e.order_id)
            h = self.live_hold(e, key)
            self.hold_move(e.user_id, (<tuple>h)[0], e.maker_fee, e.order_id)
            self.ph[key] = None if k == EvKind.CANCELED else _hold((<tuple>h)[0], e.taker_fee)
            self.order_event(e, KIND_NAMES[k])
            row = self.row(e, key)
            if k == EvKind.CANCELED:
                row[O_LEAVES] = 0
                row[O_STATUS] = CANCELED_S
                row[O_REASON] = e.reason
            else:
                row[O_LEAVES] = e.leaves_lots
                if k == EvKind.REPLACED:
                    row[O_PRICE] = e.price_ticks
            self.set_hold(key, row)
        elif k == EvKind.TRADE:
            self.ph = {}
            self.trade(e)
        elif k == EvKind.REJECTED:
            self.order_event(e, KIND_NAMES[k])
        elif k == EvKind.TRIGGERED:
            self.ph = NO_HOLDS
            self.order_event(e, KIND_NAMES[k])
            key = (e.user_id, e.order_id)
            row = self.row(e, key)
            row[O_LEAVES] = e.leaves_lots
            self.set_hold(key, row)
        elif k == EvKind.DEPOSITED:
            acc = (e.user_id, e.price_ticks, _AVAILABLE, e.symbol_id)
            self.pair(acc, (0, 0, _EXTERNAL, e.symbol_id), e.qty_lots, DEPOSIT, 0, 0, e.order_id)
            self.q_dep.append((self.seq, self.idx, self.ts, e.user_id, e.price_ticks,
                               e.symbol_id, <int64_t>e.order_id, e.qty_lots))
        elif k == EvKind.WITHDRAW_HELD:
            av = (e.user_id, e.price_ticks, _AVAILABLE, e.symbol_id)
            hd = (e.user_id, e.price_ticks, _HELD, e.symbol_id)
            self.pair(hd, av, e.qty_lots, WITHDRAW_HOLD, 0, 0, e.order_id)
            self.q_wd_new.append((<int64_t>e.order_id, e.user_id, e.price_ticks, e.symbol_id,
                                  e.qty_lots, HELD_S, self.seq, 0))
        elif k == EvKind.WITHDRAW_COMMITTED:
            hd = (e.user_id, e.price_ticks, _HELD, e.symbol_id)
            self.pair((0, 0, _EXTERNAL, e.symbol_id), hd, e.qty_lots, WITHDRAW_COMMIT,
                                      0, 0, e.order_id)
            self.q_wd_done.append((COMMITTED_S, self.seq, <int64_t>e.order_id))
        elif k == EvKind.WITHDRAW_RELEASED:
            av = (e.user_id, e.price_ticks, _AVAILABLE, e.symbol_id)
            hd = (e.user_id, e.price_ticks, _HELD, e.symbol_id)
            self.pair(av, hd, e.qty_lots, WITHDRAW_RELEASE, 0, 0, e.order_id)
            self.q_wd_done.append((RELEASED_S, self.seq, <int64_t>e.order_id))
        elif k == EvKind.TRANSFERRED:
            acc = (e.user_id, e.price_ticks, _AVAILABLE, e.symbol_id)
            self.pair((e.user_id, e.maker_order_id, _AVAILABLE, e.symbol_id), acc, e.qty_lots,
                      TRANSFER, 0, 0, e.order_id)
        elif k == EvKind.SYMBOL_ADDED:
            sym = _tuple_new(Symbol, (e.user_id, e.maker_user_id, e.taker_fee, e.maker_fee))
            self.symbols[e.symbol_id] = sym
            self.q_sym.append((e.symbol_id, *sym, self.seq))
        elif k == EvKind.ASSET_ADDED:
            self.q_assets.append((e.symbol_id, e.qty_lots, self.seq))
        elif k == EvKind.USER_ADDED:
            self.q_users.append((e.user_id, self.seq))
        return 0


def apply_events(led, events, uint64_t applied_seq):
    """Apply the events of ``events`` (``EV_DTYPE`` records, sorted by seq) whose
    seq is above ``applied_seq`` to the state and queues of ``led`` (a
    ``clearing.ledger.Ledger``), exactly as its pure-Python path does; returns
    ``(events applied, entries written)``.

    Raises
    ------
    clearing.rules.UnknownReferenceError
        An event names a symbol or a live order never seen (message starts with
        ``seq N:``); the ledger's state is then partly updated and must be reloaded.
    """
    if not _bound:
        raise RuntimeError("pyx.ledgermap: bind_rules(clearing.rules) was not called")
    if events.dtype != EV_DTYPE:
        raise TypeError(f"events must be EV_DTYPE records, not {events.dtype}")
    cdef cnp.ndarray arr = np.ascontiguousarray(events)
    cdef const EvRec* recs = <const EvRec*> cnp.PyArray_DATA(arr)
    cdef Py_ssize_t n = arr.shape[0]
    cdef _Mapper m = _Mapper()
    m.bal = led.balances
    m.symbols = led.symbols
    m.holds = led.holds
    m.orders = led.orders
    m.q_orders = led.q_orders
    m.qb = led.q_balances
    m.qe = led.q_entries
    m.q_oev = led.q_order_events
    m.q_trades = led.q_trades
    m.q_dep = led.q_deposits
    m.q_wd_new = led.q_wd_new
    m.q_wd_done = led.q_wd_done
    m.q_sym = led.q_symbols
    m.q_assets = led.q_assets
    m.q_users = led.q_users
    cdef Py_ssize_t entries0 = len(m.qe)
    # No cyclic collection while mapping: nothing created here can be in a cycle,
    # and the collections the allocations would trigger traverse the whole queue.
    cdef bint gc_was_on = gc.isenabled()
    gc.disable()
    try:
        _run(m, recs, n, applied_seq)
    finally:
        if gc_was_on:
            gc.enable()
    return m.applied, len(m.qe) - entries0


cdef int _run(_Mapper m, const EvRec* recs, Py_ssize_t n, uint64_t applied_seq) except -1:
    cdef Py_ssize_t i
    cdef uint64_t cur_seq = 0
    cdef long idx = 0
    cdef bint first = True
    cdef const EvRec* e
    for i in range(n):
        e = &recs[i]
        if e.seq <= applied_seq:
            continue
        if first or e.seq != cur_seq:
            cur_seq, idx, first = e.seq, 0, False
            m.seq = e.seq
        else:
            idx += 1
        m.ts = e.ts_ns
        m.idx = idx
        m.line = 0
        m.event(e)
        m.applied += 1
        if (m.applied & YIELD_MASK) == 0:
            # Let the ledger's background writer take the GIL (it needs it between
            # its database calls): without this it waits for the whole frame.
            with nogil:
                pass
    return 0
