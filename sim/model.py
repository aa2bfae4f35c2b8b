"""An independent model of funding, to judge the core's deposits and withdrawals.

The simulator feeds it every command that the core applied (acknowledged, or
recovered from the journal) with its reply.  It knows nothing of the core's code:
from the references and withdrawal ids alone it decides what each funding reply
must be, and keeps, per asset, deposits minus committed withdrawals (minor units),
which the core's balances plus fee accounts must add up to.  A duplicated input
(a retried deposit, a replayed commit) that has a second effect is caught here.
It also checks order ids: a ``NEW`` is applied at most once per ``(user, order id)``
(ids are per user and never reused), a duplicate answer names an applied one, and
``ORDER_ID_TOO_OLD`` names an id at or below the highest one applied in its own lane
(bit ``ORDER_ID_LANE_SHIFT``: the gateway's and the API's ids never make each other
too old).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.wire.commands import ReplyStatus
from engine.wire.views import CMD_VIEWS
from pyx.core import ORDER_ID_LANE_SHIFT
from pyx.enums import CmdKind, Reason

_DEPOSIT = CMD_VIEWS[CmdKind.DEPOSIT]
_WITHDRAW_HOLD = CMD_VIEWS[CmdKind.WITHDRAW_HOLD]

HELD, COMMITTED, RELEASED = 1, 2, 3
"""Withdrawal states (same numbering as ``engine.core.Core.withdrawals``)."""


@dataclass
class Withdrawal:
    """One withdrawal the core applied a hold for."""

    user_id: int
    asset_id: int
    account: int
    amount_minor: int
    state: int


class FundingModel:
    """Deposits by reference, withdrawals by id, and the net amount per asset."""

    def __init__(self) -> None:
        self.deposits: dict[int, tuple[int, int, int, int]] = {}
        self.withdrawals: dict[int, Withdrawal] = {}
        self.net_minor: dict[int, int] = {}
        self.duplicates_seen = 0
        self.checks = 0
        self.orders_applied: set[tuple[int, int]] = set()  # (user, order id) of applied NEWs
        self.lane_highest: dict[tuple[int, int], int] = {}  # (user, lane) -> highest applied id

    def observe(self, cmds: npt.NDArray[np.void], replies: npt.NDArray[np.void]) -> str | None:
        """Fold in an applied batch; return the first inconsistency found, else None.

        Parameters
        ----------
        cmds : ndarray of CMD_DTYPE
            The batch as sequenced.
        replies : ndarray of REPLY_DTYPE
            The core's reply to each command.
        """
        kinds = cmds["kind"]
        for i in np.flatnonzero(kinds == CmdKind.NEW):
            problem = self._new(cmds[i], replies[i])
            if problem is not None:
                return f"command seq {int(cmds[i]['seq'])}: {problem}"
        funding = np.flatnonzero((kinds >= CmdKind.DEPOSIT) & (kinds <= CmdKind.WITHDRAW_RELEASE))
        for i in funding:
            problem = self._one(cmds[i], replies[i])
            if problem is not None:
                return f"command seq {int(cmds[i]['seq'])}: {problem}"
        return None

    def _new(self, c: np.void, r: np.void) -> str | None:
        self.checks += 1
        key = (int(c["user_id"]), int(c["order_id"]))
        status = int(r["status"])
        lane = (key[0], key[1] >> ORDER_ID_LANE_SHIFT)
        if status == ReplyStatus.APPLIED:
            if key in self.orders_applied:
                return f"order id {key[1]} of user {key[0]} applied a second time"
            self.orders_applied.add(key)
            self.lane_highest[lane] = max(self.lane_highest.get(lane, 0), key[1])
        elif status == ReplyStatus.REJECTED and int(r["reason"]) == Reason.ORDER_ID_TOO_OLD:
            if key[1] > self.lane_highest.get(lane, 0):
                return (
                    f"order id {key[1]} of user {key[0]} refused too old above the highest "
                    f"applied id {self.lane_highest.get(lane, 0)} of its lane {lane[1]}"
                )
        elif status == ReplyStatus.DUPLICATE:
            self.duplicates_seen += 1
            if key not in self.orders_applied:
                return f"order id {key[1]} of user {key[0]} called a duplicate but never applied"
        return None

    def _one(self, c: np.void, r: np.void) -> str | None:
        self.checks += 1
        kind, status = int(c["kind"]), int(r["status"])
        named = CMD_VIEWS[CmdKind(kind)].one(c)
        ref = int(named["ref"] if kind == CmdKind.DEPOSIT else named["withdrawal_id"])
        if status == ReplyStatus.DUPLICATE:
            self.duplicates_seen += 1
        if kind == CmdKind.DEPOSIT:
            return self._deposit(c, status, ref)
        if kind == CmdKind.WITHDRAW_HOLD:
            return self._hold(c, status, ref)
        return self._settle(kind, status, ref)

    def _deposit(self, c: np.void, status: int, ref: int) -> str | None:
        seen = ref in self.deposits
        if status == ReplyStatus.APPLIED:
            if seen:
                return f"deposit reference {ref} credited a second time"
            d = _DEPOSIT.one(c)
            user, asset, account = int(d["user_id"]), int(d["asset_id"]), int(d["account"])
            amount = int(d["amount_minor"])
            self.deposits[ref] = (user, asset, account, amount)
            self.net_minor[asset] = self.net_minor.get(asset, 0) + amount
        elif status == ReplyStatus.DUPLICATE and not seen:
            return f"deposit reference {ref} called a duplicate but never credited"
        return None

    def _hold(self, c: np.void, status: int, wid: int) -> str | None:
        seen = wid in self.withdrawals
        if status == ReplyStatus.APPLIED:
            if seen:
                return f"withdrawal id {wid} held a second time"
            w = _WITHDRAW_HOLD.one(c)
            self.withdrawals[wid] = Withdrawal(
                int(w["user_id"]),
                int(w["asset_id"]),
                int(w["account"]),
                int(w["amount_minor"]),
                HELD,
            )
        elif status == ReplyStatus.DUPLICATE and not seen:
            return f"withdrawal id {wid} called a duplicate but never held"
        return None

    def _settle(self, kind: int, status: int, wid: int) -> str | None:
        w = self.withdrawals.get(wid)
        target = COMMITTED if kind == CmdKind.WITHDRAW_COMMIT else RELEASED
        verb = "committed" if target == COMMITTED else "released"
        if status == ReplyStatus.APPLIED:
            if w is None:
                return f"withdrawal id {wid} {verb} but never held"
            if w.state != HELD:
                return f"withdrawal id {wid} {verb} while in state {w.state} (second effect)"
            w.state = target
            if target == COMMITTED:
                self.net_minor[w.asset_id] = self.net_minor.get(w.asset_id, 0) - w.amount_minor
        elif status == ReplyStatus.DUPLICATE and (w is None or w.state != target):
            state = None if w is None else w.state
            return f"{verb} of withdrawal id {wid} called a duplicate in state {state}"
        elif status == ReplyStatus.REJECTED and w is not None and w.state == HELD:
            return f"{verb} of held withdrawal id {wid} rejected"
        return None

    def check_core_withdrawals(self, core_withdrawals: Mapping[int, tuple[int, ...]]) -> str | None:
        """Compare with the core's withdrawal table ``id -> (user, asset, account, amount,
        state)``; return the first difference, else None."""
        self.checks += 1
        mine = {
            wid: (w.user_id, w.asset_id, w.account, w.amount_minor, w.state)
            for wid, w in self.withdrawals.items()
        }
        if mine == core_withdrawals:
            return None
        for wid in sorted(set(mine) | set(core_withdrawals)):
            if mine.get(wid) != core_withdrawals.get(wid):
                return (
                    f"withdrawal {wid}: model {mine.get(wid)} != core {core_withdrawals.get(wid)}"
                )
        return None  # pragma: no cover - the dicts differ, so some id differs

    def clone(self) -> FundingModel:
        """An independent copy."""
        other = FundingModel()
        other.deposits = dict(self.deposits)
        other.withdrawals = {
            k: Withdrawal(w.user_id, w.asset_id, w.account, w.amount_minor, w.state)
            for k, w in self.withdrawals.items()
        }
        other.net_minor = dict(self.net_minor)
        other.duplicates_seen = self.duplicates_seen
        other.checks = self.checks
        other.orders_applied = set(self.orders_applied)
        other.lane_highest = dict(self.lane_highest)
        return other
