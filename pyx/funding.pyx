# cython: language_level=3
"""Funding commands: deposits, withdrawal hold / commit / release, transfers.

Rare commands over Python containers.  Each validates fully before it changes
anything, so a reject leaves the state untouched.  Every command carries a reference
(deposit ref, withdrawal id, transfer ref) applied exactly once: an exact retry is
answered DUPLICATE with the first result, a reused reference with other fields is
rejected, and references older than the last ``ref_memory`` of their kind are
rejected REFERENCE_TOO_OLD (a held withdrawal is never forgotten).  Deposits minus
committed withdrawals of an asset stay below ``SUPPLY_MAX``.
"""

from libc.stdint cimport int64_t, uint64_t, int32_t

from pyx.records cimport CmdRec, EvRec
from pyx.enums cimport (
    WITHDRAW_COMMIT,
    DEPOSITED, WITHDRAW_HELD, WITHDRAW_COMMITTED, WITHDRAW_RELEASED, TRANSFERRED,
    USER_NOT_ACTIVE, UNKNOWN_USER, INSUFFICIENT_FUNDS, EXISTS_WITH_DIFFERENT_FIELDS,
    REFERENCE_TOO_OLD, UNKNOWN_ASSET, INVALID_AMOUNT, INVALID_ACCOUNT, AMOUNT_OVERFLOW,
    UNKNOWN_WITHDRAWAL, WITHDRAWAL_RELEASED, WITHDRAWAL_COMMITTED, INVALID_ID,
)
from pyx.core cimport (
    CoreState, ReplyRec, ARec, ST_APPLIED, ST_DUPLICATE, WD_HELD, WD_COMMITTED, WD_RELEASED,
    N_ACCOUNTS, REF_DEPOSIT, REF_WITHDRAWAL, REF_TRANSFER, SUPPLY_MAX, BURSA_VARIANTS,
    _uslot, _aslot, _bi, _reply, _push,
)


cdef int _ref_check(CoreState self, int which, uint64_t ref) except -1:
    """0 if an unknown ``ref`` may be new, else REFERENCE_TOO_OLD: at or below the highest
    reference of its kind already forgotten (a caller looks up remembered ones first)."""
    if ref <= self.ref_floors[which]:
        return REFERENCE_TOO_OLD
    return 0


cdef _ref_seen(CoreState self, int which):
    """A reference was just recorded: forget the oldest while more than ``ref_memory``
    are kept, raising the kind's floor to the highest forgotten.  A held withdrawal
    holds money: it is never forgotten (moved behind the newest instead)."""
    table = (self.deposit_refs, self.withdrawals, self.transfers)[which]
    cdef Py_ssize_t spins = len(table)
    while len(table) > self.ref_memory and spins > 0:
        spins -= 1
        k, v = table.popitem(last=False)
        if which == REF_WITHDRAWAL and v[4] == WD_HELD:
            table[k] = v
            continue
        if k > self.ref_floors[which]:
            self.ref_floors[which] = k


cdef inline bint _same_fields(prev, const CmdRec* c, bint to_account):
    """Whether a remembered reference's record ``prev`` (user, asset, account[, to
    account], amount, ...) has the fields of the retry ``c``."""
    if to_account:
        return (prev[0], prev[1], prev[2], prev[3], prev[4]) == (
            c.user_id, c.symbol_id, c.a0, c.a1, c.qty_lots)
    return (prev[0], prev[1], prev[2], prev[3]) == (c.user_id, c.symbol_id, c.a0, c.qty_lots)


cdef inline int _funding_checks(CoreState self, int which, const CmdRec* c, int32_t* us,
                                int32_t* ak) except -1:
    """0 or the reject reason of a new DEPOSIT / WITHDRAW_HOLD / TRANSFER (reference kind
    ``which``), in this order: unknown user, unknown asset, suspended user (withdrawal and
    transfer only: a deposit always lands), bad account(s), amount not positive.  The
    user's and asset's slots go to ``us`` and ``ak``."""
    us[0] = _uslot(self, c.user_id)
    if us[0] < 0:
        return UNKNOWN_USER
    ak[0] = _aslot(self, c.symbol_id)
    if ak[0] < 0:
        return UNKNOWN_ASSET
    if which != REF_DEPOSIT and self.users[us[0]].suspended:
        return USER_NOT_ACTIVE
    if not 0 <= c.a0 < N_ACCOUNTS:
        return INVALID_ACCOUNT
    if which == REF_TRANSFER and not (0 <= c.a1 < N_ACCOUNTS and c.a1 != c.a0):
        return INVALID_ACCOUNT
    if c.qty_lots <= 0:
        return INVALID_AMOUNT
    return 0


cdef inline int _ref_open(CoreState self, int which, const CmdRec* c, ReplyRec* r,
                          int32_t* us, int32_t* ak) except -1:
    """The exactly-once gate of DEPOSIT / WITHDRAW_HOLD / TRANSFER (reference
    ``c.order_id`` of kind ``which``), then their common checks.

    Returns 1 when the command is answered here: an exact retry of a remembered reference
    is answered DUPLICATE with the balance the first one replied; reference 0, a reference
    reused with other fields, a forgotten (too old) one or a failed check
    (``_funding_checks``) is rejected.  Returns 0 for a new, valid reference, with the
    user's and asset's slots in ``us`` and ``ak``.
    """
    cdef int reason
    if c.order_id == 0:
        self._reject(c, r, INVALID_ID)
        return 1
    if which == REF_DEPOSIT:
        prev = self.deposit_refs.get(c.order_id)
    elif which == REF_WITHDRAWAL:
        prev = self.withdrawals.get(c.order_id)
    else:
        prev = self.transfers.get(c.order_id)
    if prev is not None and not (BURSA_VARIANTS and which == REF_DEPOSIT
                                 and self.v_dup_deposit):
        if not _same_fields(prev, c, which == REF_TRANSFER):
            self._reject(c, r, EXISTS_WITH_DIFFERENT_FIELDS)
        else:   # the balance after the first: a deposit record has no state field
            _reply(r, c, ST_DUPLICATE, 0, prev[4 if which == REF_DEPOSIT else 5])
        return 1
    reason = 0 if prev is not None else _ref_check(self, which, c.order_id)
    if not reason:
        reason = _funding_checks(self, which, c, us, ak)
    if reason:
        self._reject(c, r, reason)
        return 1
    return 0


cdef inline EvRec* _ref_applied(CoreState self, int which, const CmdRec* c, ReplyRec* r,
                                int kind, int64_t avail) except NULL:
    """A new reference of kind ``which`` was applied and recorded: forget the oldest
    references, publish event ``kind`` (reference, amount, account, the balance ``avail``
    after it) and reply APPLIED with ``avail``.  Returns the event for extra fields."""
    cdef EvRec* e
    _ref_seen(self, which)
    e = _push(self, c, kind)
    e.order_id = c.order_id
    e.qty_lots = c.qty_lots
    e.price_ticks = c.a0
    e.leaves_lots = avail
    _reply(r, c, ST_APPLIED, 0, avail)
    return e


cdef int deposit(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t us, ak
    cdef int64_t bi
    cdef ARec* a
    if _ref_open(self, REF_DEPOSIT, c, r, &us, &ak):
        return 0
    a = &self.assets_c[ak]
    if c.qty_lots >= SUPPLY_MAX - a.outstanding_minor:   # the supply stays below 2**62
        return self._reject(c, r, AMOUNT_OVERFLOW)
    bi = _bi(self, us, ak, c.a0)
    self.avail[bi] += c.qty_lots
    a.outstanding_minor += c.qty_lots
    self.deposited[ak] += c.qty_lots
    self.deposit_refs[c.order_id] = (c.user_id, c.symbol_id, c.a0, c.qty_lots, self.avail[bi])
    _ref_applied(self, REF_DEPOSIT, c, r, DEPOSITED, self.avail[bi])
    return 0


cdef int withdraw_hold(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t us, ak
    cdef int64_t bi
    if _ref_open(self, REF_WITHDRAWAL, c, r, &us, &ak):
        return 0
    bi = _bi(self, us, ak, c.a0)
    if c.qty_lots > self.avail[bi]:
        return self._reject(c, r, INSUFFICIENT_FUNDS)
    self.avail[bi] -= c.qty_lots
    self.held[bi] += c.qty_lots
    self.withdrawals[c.order_id] = [c.user_id, c.symbol_id, c.a0, c.qty_lots, WD_HELD,
                                    self.avail[bi], 0]
    _ref_applied(self, REF_WITHDRAWAL, c, r, WITHDRAW_HELD, self.avail[bi])
    return 0


cdef int withdraw_end(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    """WITHDRAW_COMMIT (the held amount leaves) or WITHDRAW_RELEASE (back to available)."""
    cdef bint commit = c.kind == WITHDRAW_COMMIT
    cdef int64_t bi, amt
    cdef int32_t ak
    cdef EvRec* e
    w = self.withdrawals.get(c.order_id)
    if w is None:
        if c.order_id != 0 and _ref_check(self, REF_WITHDRAWAL, c.order_id):
            return self._reject(c, r, REFERENCE_TOO_OLD)
        return self._reject(c, r, UNKNOWN_WITHDRAWAL)
    uid, asset_id, acc, amt, state = w[:5]
    ak = self.aid_slot[<int> asset_id]
    bi = _bi(self, self.uid_slot[<int64_t> uid], ak, acc)
    if state == (WD_COMMITTED if commit else WD_RELEASED):
        _reply(r, c, ST_DUPLICATE, 0, w[6])
        return 0
    if state != WD_HELD:
        return self._reject(c, r, WITHDRAWAL_RELEASED if commit else WITHDRAWAL_COMMITTED)
    assert self.held[bi] >= amt
    self.held[bi] -= amt
    if commit:
        self.assets_c[ak].outstanding_minor -= amt
        self.withdrawn[ak] += amt
        w[4] = WD_COMMITTED
    else:
        self.avail[bi] += amt
        w[4] = WD_RELEASED
    w[6] = self.avail[bi]
    e = _push(self, c, WITHDRAW_COMMITTED if commit else WITHDRAW_RELEASED)
    e.user_id = uid
    e.symbol_id = asset_id
    e.order_id = c.order_id
    e.qty_lots = amt
    e.price_ticks = acc
    e.leaves_lots = self.avail[bi]
    _reply(r, c, ST_APPLIED, 0, self.avail[bi])
    return 0


cdef int transfer(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t us, ak
    cdef int64_t src, dst
    if _ref_open(self, REF_TRANSFER, c, r, &us, &ak):
        return 0
    src = _bi(self, us, ak, c.a0)
    dst = _bi(self, us, ak, c.a1)
    if c.qty_lots > self.avail[src]:
        return self._reject(c, r, INSUFFICIENT_FUNDS)
    self.avail[src] -= c.qty_lots
    self.avail[dst] += c.qty_lots
    self.transfers[c.order_id] = (c.user_id, c.symbol_id, c.a0, c.a1, c.qty_lots,
                                  self.avail[src])
    _ref_applied(self, REF_TRANSFER, c, r, TRANSFERRED, self.avail[src]).maker_order_id = (
        <uint64_t> c.a1)
    return 0
