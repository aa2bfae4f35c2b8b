# cython: language_level=3
"""The gateway's hot event -> execution-report path in Cython (and the reply loop).

:func:`apply_events` does for a frame of core events exactly what calling
``Gateway.on_event`` on each ``events.tolist()`` row does (that Python method is the
oracle: tests/gateway/test_gwreport.py compares the two over random event flows,
report bytes and order state), but reads the ``EvRec`` records straight from the
numpy frame and packs ACCEPTED, EXECUTED and CANCELED reports through packed C
structs.  Only those kinds (ACCEPTED, TRADE and CANCELED: almost every event of a busy
gateway, market makers cancel most of their quotes) are handled here; every other kind
is handed, in order, to ``gw.on_event`` as the same tuple ``tolist`` would give.  Orders stay the Python objects of ``gateway.store``.

:func:`apply_replies` is ``Gateway.on_replies_py`` (its oracle,
tests/gateway/test_reply_ack.py) for a frame of the core's replies: the NEWs applied
get their ACCEPTED from the reply (:func:`accept_from_replies`), the rare rest goes
back to Python.
"""

cimport cython

import numpy as np
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from bursa_wire.gw_layout import (
    FRAME_HEAD,
    SEQ_HEAD,
    SEQUENCED,
    BY_NAME,
    LIQUIDITY_MAKER,
    LIQUIDITY_TAKER,
    STATE_CANCELED,
    STATE_FILLED,
    STATE_OPEN,
    STATE_PENDING,
)
from bursa_wire.layout import EV_DTYPE, REPLY_DTYPE, STATUS_APPLIED, STATUS_DUPLICATE
from pyx.enums import EvFlag, EvKind, OrdType, Reason
from pyx.records cimport EvRec, ReplyRec
from pyx.gworders cimport Order, order_key_c

cnp.import_array()

cdef packed struct AcceptedMsg:
    uint8_t code
    uint64_t cl_ord_id
    uint64_t ts_ns
    int64_t price_ticks
    int64_t qty_lots
    int64_t leaves_lots
    uint16_t symbol_id
    uint8_t side
    uint8_t ord_type

cdef packed struct SHead:
    uint16_t length              # bytes after this field: type + seq + payload
    uint8_t ftype                # b"S"
    uint64_t seq

cdef packed struct CanceledMsg:
    uint8_t code
    uint64_t cl_ord_id
    uint64_t ts_ns
    int64_t qty_lots
    uint16_t reason

cdef packed struct ExecutedMsg:
    uint8_t code
    uint64_t cl_ord_id
    uint64_t ts_ns
    uint64_t match_id
    int64_t price_ticks
    int64_t qty_lots
    int64_t leaves_lots
    int64_t fee_minor
    uint16_t fee_asset_id
    uint16_t symbol_id
    uint8_t side
    uint8_t liquidity


def _check_layout(str name, tuple names, Py_ssize_t size):
    """Fail at import if the layout no longer matches the C struct above."""
    spec = BY_NAME[name]
    if spec.names != names or 1 + spec.struct.size != size:
        raise RuntimeError(f"{name} layout changed: update pyx/gwreport.pyx")


_check_layout(
    "ACCEPTED",
    ("cl_ord_id", "ts_ns", "price_ticks", "qty_lots", "leaves_lots", "symbol_id", "side",
     "ord_type"),
    sizeof(AcceptedMsg),
)
_check_layout("CANCELED", ("cl_ord_id", "ts_ns", "qty_lots", "reason"), sizeof(CanceledMsg))
_check_layout(
    "EXECUTED",
    ("cl_ord_id", "ts_ns", "match_id", "price_ticks", "qty_lots", "leaves_lots", "fee_minor",
     "fee_asset_id", "symbol_id", "side", "liquidity"),
    sizeof(ExecutedMsg),
)

if (REPLY_DTYPE.itemsize != sizeof(ReplyRec)
        or REPLY_DTYPE.names != ("seq", "client_ref", "order_id", "value", "user_id", "reason",
                                 "kind", "status")
        or REPLY_DTYPE.fields["client_ref"][1] != 8 or REPLY_DTYPE.fields["status"][1] != 39):
    raise RuntimeError("reply layout changed: update pyx/gwreport.pyx")

FRAME_SHIFT = 16
"""A command's ``client_ref`` is ``frame number << FRAME_SHIFT | index in the frame``
(``gateway.server`` numbers its frames to the core with it)."""
cdef int C_FRAME_SHIFT = FRAME_SHIFT
cdef uint64_t C_INDEX_MASK = (1 << FRAME_SHIFT) - 1
cdef uint8_t ST_APPLIED = STATUS_APPLIED
cdef uint8_t ST_DUPLICATE = STATUS_DUPLICATE

if (FRAME_HEAD.format, SEQ_HEAD.format) != ("<HB", "<Q") or len(SEQUENCED) != 1:
    raise RuntimeError("S frame layout changed: update pyx/gwreport.pyx")
cdef uint8_t S_TYPE = SEQUENCED[0]
cdef Py_ssize_t S_OVERHEAD = 1 + 8  # the length counts the type byte and the seq

cdef uint8_t ACCEPTED_CODE = BY_NAME["ACCEPTED"].code[0]
cdef uint8_t EXECUTED_CODE = BY_NAME["EXECUTED"].code[0]
cdef uint8_t CANCELED_CODE = BY_NAME["CANCELED"].code[0]
cdef uint8_t K_ACCEPTED = int(EvKind.ACCEPTED)
cdef uint8_t K_TRADE = int(EvKind.TRADE)
cdef uint8_t K_CANCELED = int(EvKind.CANCELED)
cdef int R_USER_CANCELED = int(Reason.USER_CANCELED)
cdef uint8_t F_MAKER_DONE = int(EvFlag.MAKER_DONE)
cdef uint8_t F_TAKER_DONE = int(EvFlag.TAKER_DONE)
cdef int I_STATE_OPEN = STATE_OPEN
cdef int I_STATE_PENDING = STATE_PENDING
cdef int I_STATE_FILLED = STATE_FILLED
cdef int I_STATE_CANCELED = STATE_CANCELED
cdef uint8_t LIQ_MAKER = LIQUIDITY_MAKER
cdef uint8_t LIQ_TAKER = LIQUIDITY_TAKER
cdef int T_LIMIT = OrdType.LIMIT
cdef int T_STOP_LIMIT = OrdType.STOP_LIMIT


cdef inline bytes _accepted(Order o, uint64_t ts_ns, int64_t price_ticks, int64_t qty_lots,
                            int64_t leaves_lots):
    """The ACCEPTED payload of order ``o`` (from its event or from the core's reply)."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, sizeof(AcceptedMsg))
    cdef AcceptedMsg* a = <AcceptedMsg*> PyBytes_AS_STRING(out)
    a.code = ACCEPTED_CODE
    a.cl_ord_id = o.cl_ord_id
    a.ts_ns = ts_ns
    a.price_ticks = price_ticks
    a.qty_lots = qty_lots
    a.leaves_lots = leaves_lots
    a.symbol_id = o.symbol_id
    a.side = o.side
    a.ord_type = o.ord_type
    return out


cdef inline bytes _canceled(uint64_t cl_ord_id, const EvRec* ev):
    """The CANCELED payload of a CANCELED event of the order ``cl_ord_id``."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, sizeof(CanceledMsg))
    cdef CanceledMsg* c = <CanceledMsg*> PyBytes_AS_STRING(out)
    c.code = CANCELED_CODE
    c.cl_ord_id = cl_ord_id
    c.ts_ns = ev.ts_ns
    c.qty_lots = ev.qty_lots
    c.reason = ev.reason
    return out


cdef class _Sink:
    """Where reports and order changes go: the session streams (``Store.append``,
    inlined), the outbox, the rows to write back (``Store.save_order``, inlined) and
    the open-order counts (``Gateway._set_state``, inlined).  The dicts are the
    gateway's and store's own (never rebound while events are applied)."""

    cdef dict last_seq
    cdef dict out
    cdef list dirty
    cdef dict open_by_key
    cdef dict open_by_user
    cdef list outbox
    cdef dict quote_asset
    cdef Py_ssize_t emitted
    # Open-count decrements not applied yet, all of one (key_id, user_id): consecutive
    # fills of one session's orders update the two dicts once (flush_open).
    cdef uint64_t open_key_id
    cdef uint64_t open_user_id
    cdef Py_ssize_t open_drop
    # The session being emitted to (consecutive reports of one session, the common
    # case, look up its stream once): its key as an int object, its last seq (written
    # back to ``last_seq`` by :meth:`sync`) and this turn's chunk list.
    cdef bint has_cur
    cdef uint64_t cur_key_id
    cdef object cur_key
    cdef uint64_t cur_seq
    cdef list cur_list

    def __init__(self, gw):
        store = gw.store
        self.last_seq = store.last_seq
        self.out = store._out
        self.dirty = store._dirty
        self.open_by_key = gw.open_by_key
        self.open_by_user = gw.open_by_user
        self.outbox = store.outbox  # a list: appended in C, not through a bound method
        self.quote_asset = store.quote_asset
        self.emitted = 0
        self.open_drop = 0
        self.has_cur = False

    cdef void emit(self, uint64_t key_id, bytes payload) except *:
        """Store.append (= Gateway.emit_payload without the flush scheduling): the
        payload joins the session's chunk of this turn, which a new chunk lists in the
        store's outbox (nothing per message there); the session's seq reaches
        ``last_seq`` at :meth:`sync`."""
        if not self.has_cur or key_id != self.cur_key_id:
            self.sync()
            key = key_id
            seq = self.last_seq.get(key, 0)
            chunk = self.out.get(key)
            if chunk is None:
                self.cur_list = []
                self.out[key] = (seq + 1, self.cur_list)
                self.outbox.append((key, seq + 1, self.cur_list))
            else:
                self.cur_list = <list> (<tuple> chunk)[1]
            self.cur_key_id = key_id
            self.cur_key = key
            self.cur_seq = seq
            self.has_cur = True
        self.cur_seq += 1
        self.cur_list.append(payload)
        self.emitted += 1

    cdef void sync(self) except *:
        """Write the current session's last seq back to ``last_seq`` (before anything
        else reads or appends to the streams: ``gw.on_event``, the caller)."""
        if self.has_cur:
            self.last_seq[self.cur_key] = self.cur_seq
            self.has_cur = False

    cdef inline void save(self, object key, Order o) except *:
        """Store.save_order(o); ``key`` is ``o.key`` (the caller's)."""
        self.dirty.append(o)

    cdef void ended(self, Order o, int new_state) except *:
        """Gateway._set_state(o, new_state) for an ended state (filled, canceled): an open
        order leaves the open counts (applied to the dicts by :meth:`flush_open`, before
        anything reads them)."""
        cdef int state = o.state
        o.state = new_state
        if state == I_STATE_PENDING or state == I_STATE_OPEN:
            if self.open_drop and (o.key_id != self.open_key_id
                                   or o.user_id != self.open_user_id):
                self.flush_open()
            self.open_key_id = o.key_id
            self.open_user_id = o.user_id
            self.open_drop += 1

    cdef void flush_open(self) except *:
        """Apply the open-count decrements :meth:`filled` gathered."""
        cdef Py_ssize_t d = self.open_drop
        if not d:
            return
        self.open_drop = 0
        key_id, user_id = self.open_key_id, self.open_user_id
        self.open_by_key[key_id] = self.open_by_key.get(key_id, 0) - d
        self.open_by_user[user_id] = self.open_by_user.get(user_id, 0) - d

    cdef void executed(self, object key, Order o, const EvRec* ev, uint8_t liq, int64_t fee,
                       bint done, int64_t leaves) except *:
        """One side of a TRADE: the order's fill and its EXECUTED report."""
        cdef int64_t qty = ev.qty_lots
        o.filled = o.filled + qty
        o.leaves = leaves
        if done:
            o.leaves = 0
            self.ended(o, I_STATE_FILLED)
        self.save(key, o)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, sizeof(ExecutedMsg))
        cdef ExecutedMsg* m = <ExecutedMsg*> PyBytes_AS_STRING(out)
        symbol = o.symbol_id
        m.code = EXECUTED_CODE
        m.cl_ord_id = o.cl_ord_id
        m.ts_ns = ev.ts_ns
        m.match_id = ev.match_id
        m.price_ticks = ev.price_ticks
        m.qty_lots = qty
        m.leaves_lots = o.leaves
        m.fee_minor = fee
        m.fee_asset_id = self.quote_asset.get(symbol, 0)
        m.symbol_id = symbol
        m.side = o.side
        m.liquidity = liq
        self.emit(o.key_id, out)


@cython.boundscheck(False)
@cython.wraparound(False)
def apply_events(gw, events):
    """Apply one frame of core events to the gateway ``gw`` (see the module docstring).

    Returns the number of reports this function emitted itself (the ones from
    ``gw.on_event`` are not counted); schedules the gateway's flush if any.
    """
    cdef cnp.ndarray arr = events
    if arr.dtype != EV_DTYPE or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(events, dtype=EV_DTYPE)
    cdef const EvRec* recs = <const EvRec*> cnp.PyArray_DATA(arr)
    cdef const EvRec* ev
    cdef Py_ssize_t i, n = arr.shape[0]
    cdef _Sink sink = _Sink(gw)
    cdef dict orders = gw.store.orders
    cdef set retried = gw.retried
    cdef list pending
    cdef int64_t leaves
    cdef uint8_t kind
    cdef bint changed
    cdef Order o, maker
    on_event = gw.on_event
    try:
        for i in range(n):
            ev = &recs[i]
            kind = ev.kind
            if kind == K_ACCEPTED:
                key = order_key_c(ev.user_id, ev.order_id)  # one int: look-up and save
                o = orders.get(key)
                if o is None:
                    continue
                if retried:
                    retried.discard(key)
                pending = o.pending
                changed = o.state == I_STATE_PENDING or o.leaves != ev.leaves_lots
                if o.state == I_STATE_PENDING:
                    o.state = STATE_OPEN  # open either way: the open counts do not change
                o.leaves = ev.leaves_lots
                if not (pending and pending[0] == "N"):
                    # Already reported from the core's reply (Gateway._accepted_by_reply):
                    # the N left ``pending`` in the same transaction as that report.  An
                    # order this event does not change is stored as it is: not logged.
                    if changed:
                        sink.save(key, o)
                    continue
                pending.pop(0)
                sink.emit(o.key_id, _accepted(o, ev.ts_ns, ev.price_ticks, ev.qty_lots,
                                              ev.leaves_lots))
                sink.save(key, o)
            elif kind == K_TRADE:
                key = order_key_c(ev.user_id, ev.order_id)
                o = orders.get(key)
                if o is not None:
                    sink.executed(key, o, ev, LIQ_TAKER, ev.taker_fee, ev.flags & F_TAKER_DONE,
                                  ev.leaves_lots)
                key = order_key_c(ev.maker_user_id, ev.maker_order_id)
                maker = orders.get(key)
                if maker is not None:
                    leaves = maker.leaves - ev.qty_lots
                    sink.executed(key, maker, ev, LIQ_MAKER, ev.maker_fee, ev.flags & F_MAKER_DONE,
                                  leaves if leaves > 0 else 0)
            elif kind == K_CANCELED:
                key = order_key_c(ev.user_id, ev.order_id)
                o = orders.get(key)
                if o is None:
                    continue
                pending = o.pending
                if ev.reason == R_USER_CANCELED and pending and pending[0] in "CDR":
                    pending.pop(0)
                sink.ended(o, I_STATE_CANCELED)
                o.reason = ev.reason
                o.leaves = 0
                sink.emit(o.key_id, _canceled(o.cl_ord_id, ev))
                sink.save(key, o)
            else:
                sink.flush_open()  # on_event reads and changes the open counts
                sink.sync()  # ... and the streams
                on_event(arr[i : i + 1].tolist()[0])
    finally:
        sink.flush_open()  # also if an event raised: the counts stay right
        sink.sync()
    if sink.emitted:
        gw.schedule_flush()
    return sink.emitted


@cython.boundscheck(False)
@cython.wraparound(False)
def accept_from_replies(gw, list keys, uint64_t ts_ns):
    """``Gateway._accepted_by_reply`` (the oracle, tests/gateway/test_reply_ack.py) for
    every order map key (``pyx.gworders.order_key``) in ``keys``, all with ``ts_ns``: the NEWs the core's
    reply says APPLIED get their ACCEPTED now unless their ACCEPTED event came first.

    Returns the number of reports emitted; schedules the gateway's flush if any.
    """
    cdef _Sink sink = _Sink(gw)
    cdef dict orders = gw.store.orders
    cdef set retried = gw.retried
    try:
        _accept_all(sink, keys, orders, retried, ts_ns)
    finally:
        sink.sync()
    if sink.emitted:
        gw.schedule_flush()
    return sink.emitted


cdef void _accept_all(_Sink sink, list keys, dict orders, set retried, uint64_t ts_ns) except *:
    """The loop of :func:`accept_from_replies`."""
    cdef list pending
    cdef int ord_type
    cdef Order o
    for k in keys:
        o = orders.get(k)
        if o is None:
            continue
        ord_type = o.ord_type
        if ord_type != T_LIMIT and ord_type != T_STOP_LIMIT:
            continue
        pending = o.pending
        if not pending or pending[0] != "N":
            continue
        if retried:
            retried.discard(k)
        pending.pop(0)
        if o.state == I_STATE_PENDING:
            o.state = STATE_OPEN  # open either way: the open counts do not change
        sink.emit(o.key_id, _accepted(o, ts_ns, o.price, o.qty, o.leaves))
        sink.save(k, o)


@cython.wraparound(False)
def apply_replies(gw, replies, uint64_t ts_ns):
    """``Gateway.on_replies_py`` (the oracle, tests/gateway/test_reply_ack.py) in C: one
    reply frame of the core (``REPLY_DTYPE`` records, read in place).

    Each reply finds its command by its ``client_ref`` (frame number, index): the
    frame's entry leaves ``gw.inflight`` at its first reply (a frame given up on after
    the timeout is gone: its replies are ignored), its tag ``(user_id, order_id, op)``
    says what the command was.  The NEWs the core APPLIED (``op`` N, or n for a resend)
    get their ACCEPTED after the loop, all stamped ``ts_ns``, as
    :func:`accept_from_replies` does; a mass cancel's answer or a resend answered
    DUPLICATE goes to ``gw._reply_other`` (Python, rare); every other reply is for
    the events to tell.

    Returns the number of ACCEPTED reports emitted; schedules the gateway's flush if
    any.
    """
    cdef cnp.ndarray arr = replies
    if arr.dtype != REPLY_DTYPE or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(replies, dtype=REPLY_DTYPE)
    cdef const ReplyRec* recs = <const ReplyRec*> cnp.PyArray_DATA(arr)
    cdef const ReplyRec* r
    cdef Py_ssize_t i, n = arr.shape[0]
    cdef Py_ssize_t ntags = 0
    cdef uint64_t no, cur = 0, idx
    cdef bint have_cur = False
    cdef dict inflight = gw.inflight
    cdef list tags = None
    cdef list acked = []
    cdef tuple tag
    for i in range(n):
        r = &recs[i]
        no = r.client_ref >> C_FRAME_SHIFT
        if not have_cur or no != cur:
            have_cur = True
            cur = no
            entry = inflight.pop(no, None)  # None: given up on after the timeout
            if entry is None:
                tags = None
                ntags = 0
            else:
                tags = <list> (<tuple> entry)[1]
                ntags = len(tags)
        idx = r.client_ref & C_INDEX_MASK
        if <Py_ssize_t> idx >= ntags:
            continue
        tag = <tuple> tags[idx]
        op = tag[2]
        if r.status == ST_APPLIED and (op == "N" or op == "n"):
            acked.append(order_key_c(tag[0], tag[1]))
        elif op == "M" or (op == "n" and r.status == ST_DUPLICATE):
            gw._reply_other(tag[0], tag[1], op, r.status, r.value, r.reason)
    if not acked:
        return 0
    return accept_from_replies(gw, acked, ts_ns)


def session_frames(list outbox, dict sessions):
    """This turn's live output: ``{conn: bytes}``, the S frames of every message in
    ``outbox`` (``gateway.store.Store.outbox``: ``(key_id, first seq, payloads)`` per
    stream chunk, in order; the n-th payload has seq first + n) that goes out live, back
    to back.

    A message goes out live when its session's connection is logged in
    (``sessions[key_id]``), not replaying and has sent exactly the message before it;
    ``conn.sent_seq`` advances.  The rest is left to the replay, and a message listed
    twice (a chunk's list merged into an earlier one of its session) is sent once (as
    in the Python loop this replaces, ``gateway.server.session_frames_py``, the oracle
    of tests/gateway/test_gwreport.py).
    """
    cdef dict per = {}
    cdef list lst, cur = None, payloads
    cdef Py_ssize_t total, i, n, plen, k, m
    cdef uint64_t seq, first, sent = 0
    cdef bytes payload, buf
    cdef char* w
    cdef SHead* h
    # Consecutive chunks of one session look its connection up once; its sent_seq is
    # kept here and written back when the session changes.
    cdef bint have_key = False, live = False, moved = False
    last_key = None
    conn = None
    for item in outbox:
        key_id, first_obj, payloads_obj = <tuple> item
        if not have_key or (key_id is not last_key and key_id != last_key):
            if moved:
                conn.sent_seq = sent
                moved = False
            have_key = True
            last_key = key_id
            conn = sessions.get(key_id)
            live = conn is not None and not conn.replaying
            if live:
                sent = conn.sent_seq
                cur = per.get(conn)
        if not live:
            continue
        first = first_obj
        payloads = <list> payloads_obj
        m = len(payloads)
        # The messages after the one sent last: from index sent + 1 - first on, while
        # the seqs run on without a gap (a list's seqs always do).
        if sent + 1 < first or sent + 1 >= first + <uint64_t> m:
            continue
        k = <Py_ssize_t> (sent + 1 - first)
        if cur is None:
            cur = [sent + 1]
            per[conn] = cur
        for i in range(k, m):
            cur.append(payloads[i])
        sent = first + <uint64_t> m - 1
        moved = True
    if moved:
        conn.sent_seq = sent
    out = {}
    for conn, lst_obj in per.items():
        lst = <list> lst_obj
        n = len(lst)
        total = 0
        for i in range(1, n):
            total += sizeof(SHead) + PyBytes_GET_SIZE(lst[i])
        buf = PyBytes_FromStringAndSize(NULL, total)
        w = PyBytes_AS_STRING(buf)
        seq = lst[0]
        for i in range(1, n):
            payload = <bytes> lst[i]
            plen = PyBytes_GET_SIZE(payload)
            h = <SHead*> w
            h.length = <uint16_t> (plen + S_OVERHEAD)
            h.ftype = S_TYPE
            h.seq = seq
            memcpy(w + sizeof(SHead), PyBytes_AS_STRING(payload), plen)
            w += sizeof(SHead) + plen
            seq += 1
        out[conn] = buf
    return out
