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


cdef int _funding_ids(CoreState self, const CmdRec* c, int32_t* us, int32_t* ak) except -1:
    """Common checks of DEPOSIT / WITHDRAW_HOLD / TRANSFER: 0 or a reason."""
    us[0] = _uslot(self, c.user_id)
    if us[0] < 0:
        return UNKNOWN_USER
    ak[0] = _aslot(self, c.symbol_id)
    if ak[0] < 0:
        return UNKNOWN_ASSET
    return 0


cdef int deposit(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t us, ak
    cdef int reason
    cdef int64_t bi
    cdef ARec* a
    cdef EvRec* e
    if c.order_id == 0:
        return self._reject(c, r, INVALID_ID)
    prev = self.deposit_refs.get(c.order_id)
    if prev is not None and not (BURSA_VARIANTS and self.v_dup_deposit):
        if prev[:4] != (c.user_id, c.symbol_id, c.a0, c.qty_lots):
            return self._reject(c, r, EXISTS_WITH_DIFFERENT_FIELDS)
        _reply(r, c, ST_DUPLICATE, 0, prev[4])
        return 0
    if prev is None:
        reason = _ref_check(self, REF_DEPOSIT, c.order_id)
        if reason:
            return self._reject(c, r, reason)
    reason = _funding_ids(self, c, &us, &ak)
    if reason:
        return self._reject(c, r, reason)
    if c.a0 < 0 or c.a0 >= N_ACCOUNTS:
        return self._reject(c, r, INVALID_ACCOUNT)
    if c.qty_lots <= 0:
        return self._reject(c, r, INVALID_AMOUNT)
    a = &self.assets_c[ak]
    if c.qty_lots >= SUPPLY_MAX - a.outstanding_minor:   # the supply stays below 2**62
        return self._reject(c, r, AMOUNT_OVERFLOW)
    bi = _bi(self, us, ak, c.a0)
    self.avail[bi] += c.qty_lots
    a.outstanding_minor += c.qty_lots
    self.deposited[ak] += c.qty_lots
    self.deposit_refs[c.order_id] = (c.user_id, c.symbol_id, c.a0, c.qty_lots, self.avail[bi])
    _ref_seen(self, REF_DEPOSIT)
    e = _push(self, c, DEPOSITED)
    e.order_id = c.order_id
    e.qty_lots = c.qty_lots
    e.price_ticks = c.a0
    e.leaves_lots = self.avail[bi]
    _reply(r, c, ST_APPLIED, 0, self.avail[bi])
    return 0


cdef int withdraw_hold(CoreState self, const CmdRec* c, ReplyRec* r) except -1:
    cdef int32_t us, ak
    cdef int reason
    cdef int64_t bi
    cdef EvRec* e
    if c.order_id == 0:
        return self._reject(c, r, INVALID_ID)
    w = self.withdrawals.get(c.order_id)
    if w is not None:
        if (w[0], w[1], w[2], w[3]) != (c.user_id, c.symbol_id, c.a0, c.qty_lots):
            return self._reject(c, r, EXISTS_WITH_DIFFERENT_FIELDS)
        _reply(r, c, ST_DUPLICATE, 0, w[5])
        return 0
    reason = _ref_check(self, REF_WITHDRAWAL, c.order_id)
    if reason:
        return self._reject(c, r, reason)
    reason = _funding_ids(self, c, &us, &ak)
    if reason:
        return self._reject(c, r, reason)
    if self.users[us].suspended:
        return self._reject(c, r, USER_NOT_ACTIVE)
    if c.a0 < 0 or c.a0 >= N_ACCOUNTS:
        return self._reject(c, r, INVALID_ACCOUNT)
    if c.qty_lots <= 0:
        return self._reject(c, r, INVALID_AMOUNT)
    bi = _bi(self, us, ak, c.a0)
    if c.qty_lots > self.avail[bi]:
        return self._reject(c, r, INSUFFICIENT_FUNDS)
    self.avail[bi] -= c.qty_lots
    self.held[bi] += c.qty_lots
    self.withdrawals[c.order_id] = [c.user_id, c.symbol_id, c.a0, c.qty_lots, WD_HELD,
                                    self.avail[bi], 0]
    _ref_seen(self, REF_WITHDRAWAL)
    e = _push(self, c, WITHDRAW_HELD)
    e.order_id = c.order_id
    e.qty_lots = c.qty_lots
    e.price_ticks = c.a0
    e.leaves_lots = self.avail[bi]
    _reply(r, c, ST_APPLIED, 0, self.avail[bi])
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
    cdef int reason
    cdef int64_t src, dst
    cdef EvRec* e
    if c.order_id == 0:
        return self._reject(c, r, INVALID_ID)
    prev = self.transfers.get(c.order_id)
    if prev is not None:
        if prev[:5] != (c.user_id, c.symbol_id, c.a0, c.a1, c.qty_lots):
            return self._reject(c, r, EXISTS_WITH_DIFFERENT_FIELDS)
        _reply(r, c, ST_DUPLICATE, 0, prev[5])
        return 0
    reason = _ref_check(self, REF_TRANSFER, c.order_id)
    if reason:
        return self._reject(c, r, reason)
    reason = _funding_ids(self, c, &us, &ak)
    if reason:
        return self._reject(c, r, reason)
    if self.users[us].suspended:
        return self._reject(c, r, USER_NOT_ACTIVE)
    if not (0 <= c.a0 < N_ACCOUNTS and 0 <= c.a1 < N_ACCOUNTS) or c.a0 == c.a1:
        return self._reject(c, r, INVALID_ACCOUNT)
    if c.qty_lots <= 0:
        return self._reject(c, r, INVALID_AMOUNT)
    src = _bi(self, us, ak, c.a0)
    dst = _bi(self, us, ak, c.a1)
    if c.qty_lots > self.avail[src]:
        return self._reject(c, r, INSUFFICIENT_FUNDS)
    self.avail[src] -= c.qty_lots
    self.avail[dst] += c.qty_lots
    self.transfers[c.order_id] = (c.user_id, c.symbol_id, c.a0, c.a1, c.qty_lots,
                                  self.avail[src])
    _ref_seen(self, REF_TRANSFER)
    e = _push(self, c, TRANSFERRED)
    e.order_id = c.order_id
    e.qty_lots = c.qty_lots
    e.price_ticks = c.a0
    e.maker_order_id = <uint64_t> c.a1
    e.leaves_lots = self.avail[src]
    _reply(r, c, ST_APPLIED, 0, self.avail[src])
    return 0
