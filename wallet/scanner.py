"""The deposit scanner: follows each chain, judges payments, credits them once.

One :meth:`Wallet.step` per chain does, in order:

1. pending incident holds (even while the chain is halted);
2. reorg detection: the stored hash at the cursor is compared with the node's
   block at that height, walking down until they agree (every height seen is
   stored); blocks above the fork are rolled back in one transaction: deposits
   not yet credited become ``orphaned`` (they come back if a block or the
   mempool shows them again); a deposit credited (or whose credit was sent)
   becomes ``reversed``: an incident (log line, event row, counter), its amount
   held in the core by ``WITHDRAW_HOLD`` and the chain halted until an operator
   resumes it;
3. new blocks up to the tip, one transaction per block (block row = cursor,
   payments recorded and judged: unknown token contract, reverted transaction,
   below the minimum are ``rejected`` with a reason);
4. the mempool (when ``pending_confirmations`` is 0): new payments ``pending``,
   ones the node no longer knows ``orphaned`` (replaced or double-spent);
5. confirmations: ``pending`` -> ``confirming`` -> credit. A credit records
   ``credit_state = 'intent'`` and commits BEFORE the DEPOSIT is sent, keyed by
   :func:`deposit_ref`; intents are resent until the core answers APPLIED or
   DUPLICATE, so a crash anywhere credits exactly once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bindings.client import CoreError
from pyx.enums import Reason
from wallet.addresses import derive_address
from wallet.chain import TOKEN, BlockRef, ChainAdapter, NodeUnavailableError, Payment
from wallet.config import ChainConfig
from wallet.store import Deposit, Store

log = logging.getLogger("bursa.wallet")

APPLIED, REJECTED, DUPLICATE = 1, 2, 3
OPEN = ("pending", "confirming")


def reason_name(code: int) -> str:
    """The core's name of a reject reason code."""
    try:
        return Reason(code).name
    except ValueError:
        return f"reason {code}"


def _ref(tag: str, chain: str, txid: str, kind: str, idx: int) -> int:
    digest = hashlib.blake2b(
        f"{tag}|{chain}|{txid.lower()}|{kind}|{idx}".encode(), digest_size=8
    ).digest()
    # 63 bits: fits SQLite's signed INTEGER and the core's u64 reference; never 0.
    return (int.from_bytes(digest, "little") & (2**63 - 1)) or 1


def deposit_ref(chain: str, txid: str, kind: str, idx: int) -> int:
    """The core DEPOSIT reference of a payment: a 63-bit hash of its chain-wide key."""
    return _ref("deposit", chain, txid, kind, idx)


def hold_ref(chain: str, txid: str, kind: str, idx: int) -> int:
    """The WITHDRAW_HOLD id that quarantines a reversed deposit (distinct from its ref)."""
    return _ref("hold", chain, txid, kind, idx)


class FundingCore(Protocol):
    """The core's funding commands, as the wallet uses them (see :mod:`wallet.corelink`)."""

    def deposit(
        self, ref: int, user_id: int, asset_id: int, amount: int, account: int
    ) -> tuple[int, int]:
        """DEPOSIT: (status, reason). Raises TimeoutError if the core did not answer."""
        ...

    def withdraw_hold(
        self, wid: int, user_id: int, asset_id: int, amount: int, account: int
    ) -> tuple[int, int]:
        """WITHDRAW_HOLD: (status, reason)."""
        ...

    def withdraw_release(self, wid: int) -> tuple[int, int]:
        """WITHDRAW_RELEASE: (status, reason)."""
        ...

    def withdraw_commit(self, wid: int) -> tuple[int, int]:
        """WITHDRAW_COMMIT: (status, reason)."""
        ...

    def available(self, user_id: int, asset_id: int, account: int) -> int:
        """The balance's available amount."""
        ...


@dataclass
class ChainRuntime:
    """A chain's configuration and adapter."""

    cfg: ChainConfig
    adapter: ChainAdapter


class Wallet:
    """Deposit addresses and the deposit scanner of every configured chain.

    Parameters
    ----------
    store : Store
        The persisted state.
    chains : list of ChainRuntime
    core : FundingCore
        Where credits and holds go.
    after_credit : callable, optional
        Called right after each DEPOSIT reply, before it is recorded (fault injection).
    """

    def __init__(
        self,
        store: Store,
        chains: list[ChainRuntime],
        core: FundingCore,
        after_credit: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.chains = {c.cfg.name: c for c in chains}
        self.core = core
        self.after_credit = after_credit
        for name in self.chains:
            self.ensure_pool(name)

    # -- addresses ---------------------------------------------------------------------

    def ensure_pool(self, chain: str) -> None:
        """Derive addresses until ``pool_size`` are unassigned (persisted)."""
        cfg = self.chains[chain].cfg
        derived, free = self.store.pool_size(chain)
        need = cfg.pool_size - free
        if need > 0:
            rows = [
                (i, derive_address(cfg.xpub, cfg.network, i))
                for i in range(derived, derived + need)
            ]
            self.store.add_addresses(chain, rows)

    def deposit_address(self, chain: str, user_id: int) -> str:
        """The user's deposit address on ``chain`` (assigned from the pool on first use)."""
        if chain not in self.chains:
            raise ValueError(f"unknown chain {chain!r}")
        if not 0 < user_id < 2**24:
            raise ValueError("user_id must be 1..2**24-1")
        addr = self.store.assign(chain, user_id)
        if addr is None:
            self.ensure_pool(chain)
            addr = self.store.assign(chain, user_id)
        self.ensure_pool(chain)
        assert addr is not None
        return addr

    # -- the scan ----------------------------------------------------------------------

    def step_all(self) -> None:
        """One step of every chain."""
        for name in self.chains:
            self.step(name)

    def step(self, chain: str) -> None:
        """One scanning step of ``chain`` (see the module doc); never raises on node trouble."""
        rt = self.chains[chain]
        try:
            self._holds(rt)
            if self.store.halted(chain):
                return
            mempool = (
                rt.adapter.mempool_payments(list(self.store.watched(chain)))
                if rt.cfg.pending_confirmations == 0
                else None
            )
            tip = rt.adapter.tip()
            if self._detect_reorg(rt):
                return
            self._scan_blocks(rt, tip)
            if mempool is not None:
                self._scan_mempool(rt, mempool)
            self._confirm(rt)
        except NodeUnavailableError as exc:
            log.warning("chain %s: node unavailable: %s", chain, exc)
            self.store.bump(f"{chain}.node_unavailable")
        except TimeoutError as exc:
            log.warning("chain %s: core did not answer: %s", chain, exc)
            self.store.bump(f"{chain}.core_timeout")
        except CoreError as exc:
            log.error("chain %s: core refused a request: %s", chain, exc)
            self.store.bump(f"{chain}.core_errors")

    def _detect_reorg(self, rt: ChainRuntime) -> bool:
        """Roll back blocks the node no longer has; True if the chain got halted."""
        name = rt.cfg.name
        last = self.store.last_block(name)
        if last is None:
            return False
        low = self.store.lowest_block(name)
        assert low is not None
        height = last[0]
        while height >= low:
            node = rt.adapter.block_at(height)
            if node is not None and node.hash == self.store.block_hash(name, height):
                break
            height -= 1
        if height == last[0]:
            return False
        if height < low and low <= self._start(rt):
            # The fork is below the first block ever scanned: roll all of it back.
            return self._rollback(rt, low - 1)
        if height < low:
            self._incident(rt, [], f"reorg deeper than the {rt.cfg.keep_blocks} kept blocks")
            return True
        return self._rollback(rt, height)

    def _start(self, rt: ChainRuntime) -> int:
        """First height to scan: the configured start, or an operator's rescan height."""
        again = self.store.rescan_from(rt.cfg.name)
        return rt.cfg.start_height if again is None else again

    def _rollback(self, rt: ChainRuntime, fork: int) -> bool:
        name = rt.cfg.name
        now = time.time_ns()
        with self.store.tx() as db:
            top = self.store.last_block(name)
            depth = (top[0] if top else fork) - fork
            # Reversed deposits are out of the chain view already (block_height -1).
            hit = self.store.deposits("chain = ? AND block_height > ?", (name, fork))
            reversed_: list[Deposit] = []
            for d in hit:
                if d.credit_state in ("intent", "credited"):
                    reversed_.append(d)
                    db.execute(
                        "UPDATE deposits SET status = 'reversed', reason = ?, "
                        "credit_state = 'hold_pending', hold_id = ?, block_height = -1, "
                        "block_hash = '', updated_ns = ? WHERE ref = ?",
                        (
                            f"credited, then removed by a {depth}-block reorg",
                            hold_ref(d.chain, d.txid, d.kind, d.idx),
                            now,
                            d.ref,
                        ),
                    )
                else:
                    status = d.status if d.status == "rejected" else "orphaned"
                    reason = (
                        d.reason if d.status == "rejected" else f"removed by a {depth}-block reorg"
                    )
                    db.execute(
                        "UPDATE deposits SET status = ?, reason = ?, block_height = -1, "
                        "block_hash = '', updated_ns = ? WHERE ref = ?",
                        (status, reason, now, d.ref),
                    )
            db.execute("DELETE FROM blocks WHERE chain = ? AND height > ?", (name, fork))
            self.store.event(name, "reorg", fork_height=fork, depth=depth, deposits=len(hit))
            self.store.bump(f"{name}.reorgs")
        log.warning(
            "chain %s: reorg of depth %d at height %d (%d deposits)", name, depth, fork, len(hit)
        )
        if reversed_:
            self._incident(
                rt,
                reversed_,
                f"{len(reversed_)} credited deposit(s) removed by a {depth}-block reorg",
            )
            return True
        return False

    def _incident(self, rt: ChainRuntime, deps: list[Deposit], why: str) -> None:
        name = rt.cfg.name
        with self.store.tx():
            self.store.set_halt(name, why)
            self.store.event(name, "incident", reason=why, refs=[d.ref for d in deps])
            self.store.bump(f"{name}.incidents")
        log.error("INCIDENT chain %s: %s; deposits halted until an operator resumes", name, why)
        self._holds(rt)

    def _holds(self, rt: ChainRuntime) -> None:
        """Quarantine every reversed deposit whose hold is not yet in the core."""
        for d in self.store.deposits("chain = ? AND credit_state = 'hold_pending'", (rt.cfg.name,)):
            # The credit may only have been intended: resend it (DUPLICATE if it was
            # applied), so the hold below never takes other funds of the user.
            st, reason = self.core.deposit(
                d.ref, d.user_id, d.asset_id, d.credit_amount, rt.cfg.account
            )
            if st not in (APPLIED, DUPLICATE):
                log.error(
                    "chain %s: re-sending reversed deposit %d rejected: %s",
                    d.chain,
                    d.ref,
                    reason_name(reason),
                )
            amount = d.credit_amount
            st, reason = self.core.withdraw_hold(
                d.hold_id, d.user_id, d.asset_id, amount, rt.cfg.account
            )
            if st == REJECTED:
                # The user already spent part of it: hold what is there, alert the rest.
                amount = min(amount, self.core.available(d.user_id, d.asset_id, rt.cfg.account))
                if amount > 0:
                    st, reason = self.core.withdraw_hold(
                        d.hold_id, d.user_id, d.asset_id, amount, rt.cfg.account
                    )
            held = amount if st in (APPLIED, DUPLICATE) else 0
            short = d.credit_amount - held
            with self.store.tx() as db:
                db.execute(
                    "UPDATE deposits SET credit_state = 'held', held_amount = ?, updated_ns = ? "
                    "WHERE ref = ?",
                    (held, time.time_ns(), d.ref),
                )
                self.store.event(
                    d.chain,
                    "hold",
                    ref=d.ref,
                    user_id=d.user_id,
                    asset_id=d.asset_id,
                    held=held,
                    shortfall=short,
                    hold_id=d.hold_id,
                )
            log.error(
                "INCIDENT chain %s: user %d asset %d: held %d of reversed deposit %d "
                "(shortfall %d)",
                d.chain,
                d.user_id,
                d.asset_id,
                held,
                d.ref,
                short,
            )

    def _scan_blocks(self, rt: ChainRuntime, tip: BlockRef) -> None:
        name = rt.cfg.name
        last = self.store.last_block(name)
        height = last[0] + 1 if last else self._start(rt)
        watched = self.store.watched(name)
        for _ in range(rt.cfg.max_blocks_per_step):
            if height > tip.height:
                return
            blk = rt.adapter.block_at(height)
            if blk is None or (last is not None and blk.parent != last[1]):
                return  # the chain moved under us: the next step sees the reorg
            pays = rt.adapter.payments_in_block(blk.hash, list(watched))
            with self.store.tx() as db:
                db.execute(
                    "INSERT INTO blocks (chain, height, hash, parent) VALUES (?, ?, ?, ?)",
                    (name, blk.height, blk.hash, blk.parent),
                )
                for p in pays:
                    self._record(rt, p, watched)
                db.execute(
                    "DELETE FROM blocks WHERE chain = ? AND height <= ?",
                    (name, blk.height - rt.cfg.keep_blocks),
                )
            last = (blk.height, blk.hash)
            height += 1

    def _judge(self, cfg: ChainConfig, p: Payment) -> tuple[int, int, str]:
        """(asset id, credit amount, reject reason or "") of a payment."""
        asset = cfg.asset_for(p.token if p.kind == TOKEN else "")
        if asset is None:
            return 0, 0, f"unknown token contract {p.token}"
        if not p.success:
            return asset.asset_id, 0, "transaction reverted"
        credit = p.amount // asset.scale
        if p.amount < asset.min_deposit or credit == 0:
            return asset.asset_id, 0, f"below minimum deposit {asset.min_deposit}"
        if credit >= 2**62:
            return asset.asset_id, 0, "amount too large for the core"
        return asset.asset_id, credit, ""

    def _record(self, rt: ChainRuntime, p: Payment, watched: dict[str, int]) -> None:
        name = rt.cfg.name
        user = watched.get(p.address.lower())
        if user is None:
            return
        now = time.time_ns()
        old = self.store.deposit(name, p.txid, p.kind, p.index)
        if old is not None:
            if old.status in ("orphaned", "pending", "confirming"):
                self.store.db.execute(
                    "UPDATE deposits SET status = 'pending', reason = '', block_height = ?, "
                    "block_hash = ?, updated_ns = ? WHERE ref = ?",
                    (p.block_height, p.block_hash, now, old.ref),
                )
            elif old.status == "rejected":
                self.store.db.execute(
                    "UPDATE deposits SET block_height = ?, block_hash = ?, updated_ns = ? "
                    "WHERE ref = ?",
                    (p.block_height, p.block_hash, now, old.ref),
                )
            return
        asset_id, credit, reason = self._judge(rt.cfg, p)
        self.store.db.execute(
            "INSERT INTO deposits (chain, txid, kind, idx, ref, user_id, asset_id, address, token,"
            " amount, credit_amount, block_height, block_hash, status, reason, first_seen_ns,"
            " updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                p.txid,
                p.kind,
                p.index,
                deposit_ref(name, p.txid, p.kind, p.index),
                user,
                asset_id,
                p.address,
                p.token,
                str(p.amount),
                credit,
                p.block_height,
                p.block_hash,
                "rejected" if reason else "pending",
                reason,
                now,
                now,
            ),
        )
        if reason:
            self.store.bump(f"{name}.rejected")
            log.warning(
                "chain %s: deposit %s:%s:%d rejected: %s", name, p.txid, p.kind, p.index, reason
            )

    def _scan_mempool(self, rt: ChainRuntime, mempool: list[Payment]) -> None:
        name = rt.cfg.name
        watched = self.store.watched(name)
        seen = set()
        with self.store.tx():
            for p in mempool:
                seen.add((p.txid, p.kind, p.index))
                self._record(rt, p, watched)
        for d in self.store.deposits(
            "chain = ? AND block_height = -1 AND status IN ('pending', 'confirming')", (name,)
        ):
            if (d.txid, d.kind, d.idx) in seen:
                continue
            if rt.adapter.tx_status(d.txid).state == "unknown":
                with self.store.tx() as db:
                    db.execute(
                        "UPDATE deposits SET status = 'orphaned', reason = ?, updated_ns = ? "
                        "WHERE ref = ?",
                        (
                            "left the mempool unconfirmed (replaced or double-spent)",
                            time.time_ns(),
                            d.ref,
                        ),
                    )

    def _confirm(self, rt: ChainRuntime) -> None:
        name, cfg = rt.cfg.name, rt.cfg
        last = self.store.last_block(name)
        tip_h = last[0] if last else -1
        for d in self.store.deposits(
            "chain = ? AND (status IN ('pending', 'confirming') OR credit_state = 'intent')",
            (name,),
        ):
            if d.block_height < 0:
                continue
            confs = tip_h - d.block_height + 1
            if confs >= cfg.credit_confirmations or d.credit_state == "intent":
                if not self._credit(rt, d):
                    continue
            else:
                status = "confirming" if confs >= max(cfg.pending_confirmations, 1) else "pending"
                if status != d.status:
                    with self.store.tx() as db:
                        db.execute(
                            "UPDATE deposits SET status = ?, updated_ns = ? WHERE ref = ?",
                            (status, time.time_ns(), d.ref),
                        )

    def _credit(self, rt: ChainRuntime, d: Deposit) -> bool:
        """Credit one deposit exactly once; False if it was rejected instead."""
        name = rt.cfg.name
        if d.kind == TOKEN and d.credit_state != "intent":
            # A token contract's log is only a claim: the address must really hold
            # every token credited so far plus this one (a lying transfer() is caught).
            held = rt.adapter.balance(d.address, d.token)
            credited = sum(
                x.amount
                for x in self.store.deposits(
                    "chain = ? AND address = ? AND token = ? AND ref != ? "
                    "AND credit_state IN ('intent', 'credited')",
                    (name, d.address, d.token, d.ref),
                )
            )
            if held < credited + d.amount:
                self._reject(
                    d, f"on-chain balance {held} does not cover credited {credited} + {d.amount}"
                )
                return False
        with self.store.tx() as db:
            db.execute(
                "UPDATE deposits SET credit_state = 'intent', updated_ns = ? WHERE ref = ?",
                (time.time_ns(), d.ref),
            )
        st, reason = self.core.deposit(
            d.ref, d.user_id, d.asset_id, d.credit_amount, rt.cfg.account
        )
        if self.after_credit is not None:
            self.after_credit()
        if st in (APPLIED, DUPLICATE):
            with self.store.tx() as db:
                db.execute(
                    "UPDATE deposits SET status = 'credited', credit_state = 'credited', "
                    "updated_ns = ? WHERE ref = ?",
                    (time.time_ns(), d.ref),
                )
                self.store.bump(f"{name}.credited")
                if st == DUPLICATE:
                    self.store.bump(f"{name}.credit_duplicates")
            log.info(
                "chain %s: credited deposit %d: user %d asset %d amount %d (%s)",
                name,
                d.ref,
                d.user_id,
                d.asset_id,
                d.credit_amount,
                "applied" if st == APPLIED else "duplicate",
            )
            return True
        self._reject(d, f"core rejected the deposit: {reason_name(reason)}", credit_state="none")
        return False

    def _reject(self, d: Deposit, reason: str, credit_state: str = "none") -> None:
        with self.store.tx() as db:
            db.execute(
                "UPDATE deposits SET status = 'rejected', reason = ?, credit_state = ?, "
                "updated_ns = ? WHERE ref = ?",
                (reason, credit_state, time.time_ns(), d.ref),
            )
            self.store.event(d.chain, "rejected", ref=d.ref, user_id=d.user_id, reason=reason)
            self.store.bump(f"{d.chain}.rejected")
        log.warning("chain %s: deposit %d rejected: %s", d.chain, d.ref, reason)

    # -- operators and users -----------------------------------------------------------

    def resume(self, chain: str, operator: str = "", rescan_from: int | None = None) -> None:
        """Lift a chain's halt after an incident (the operator has looked at it).

        ``rescan_from`` (after a reorg deeper than the kept history) forgets the
        blocks from that height on and scans them again: uncredited deposits there
        become ``orphaned`` until seen again; credited ones keep their status (their
        references make a re-credit a DUPLICATE), so the operator checks them.
        """
        with self.store.tx() as db:
            if rescan_from is not None:
                db.execute(
                    "DELETE FROM blocks WHERE chain = ? AND height >= ?", (chain, rescan_from)
                )
                db.execute(
                    "UPDATE deposits SET status = 'orphaned', reason = 'operator rescan', "
                    "block_height = -1, block_hash = '' WHERE chain = ? AND block_height >= ? "
                    "AND status IN ('pending', 'confirming')",
                    (chain, rescan_from),
                )
                self.store.set_rescan_from(chain, rescan_from)
            self.store.set_halt(chain, None)
            self.store.event(chain, "resumed", operator=operator, rescan_from=rescan_from)
        log.warning("chain %s: deposits resumed by operator %r", chain, operator)

    def settle(self, ref: int, action: str) -> dict[str, Any]:
        """Resolve a reversed deposit's hold: "release" (it re-confirmed) or "commit" (gone)."""
        rows = self.store.deposits("ref = ? AND status = 'reversed'", (ref,))
        if not rows:
            raise ValueError(f"no reversed deposit with reference {ref}")
        d = rows[0]
        if d.credit_state != "held":
            raise ValueError(f"deposit {ref}: hold not in the core yet ({d.credit_state})")
        if action == "release":
            st, reason = self.core.withdraw_release(d.hold_id)
        elif action == "commit":
            st, reason = self.core.withdraw_commit(d.hold_id)
        else:
            raise ValueError("action is release or commit")
        if st not in (APPLIED, DUPLICATE) and d.held_amount > 0:
            raise RuntimeError(f"core rejected {action} of hold {d.hold_id} (reason {reason})")
        with self.store.tx() as db:
            db.execute(
                "UPDATE deposits SET credit_state = ?, updated_ns = ? WHERE ref = ?",
                ("released" if action == "release" else "written_off", time.time_ns(), ref),
            )
            self.store.event(d.chain, "settled", ref=ref, action=action)
        return {"ref": ref, "action": action, "held": d.held_amount}

    def history(self, user_id: int) -> list[dict[str, Any]]:
        """A user's deposits: status, confirmations n/N, reason."""
        out = []
        for d in self.store.deposits("user_id = ?", (user_id,)):
            rt = self.chains.get(d.chain)
            need = rt.cfg.credit_confirmations if rt else 0
            last = self.store.last_block(d.chain)
            confs = (
                0 if d.block_height < 0 or last is None else max(last[0] - d.block_height + 1, 0)
            )
            out.append(
                {
                    "chain": d.chain,
                    "txid": d.txid,
                    "kind": d.kind,
                    "index": d.idx,
                    "ref": d.ref,
                    "asset_id": d.asset_id,
                    "address": d.address,
                    "amount": d.amount,
                    "credit_amount": d.credit_amount,
                    "status": d.status,
                    "confirmations": confs,
                    "required": need,
                    "reason": d.reason,
                    "block_height": d.block_height,
                    "display": f"confirming {confs}/{need}"
                    if d.status == "confirming"
                    else d.status,
                }
            )
        return out


def kill_after(n: int) -> Callable[[], None]:
    """A fault hook: SIGKILL this process after the ``n``-th call (tests only)."""
    calls = [0]

    def hook() -> None:
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook
