"""The withdrawal state machine (UTXO chains): request to core commit, every step persisted.

States (each transition is one database transaction with a timestamped row in
``withdrawal_steps``; a restart resumes at the stored state)::

    requested --hold--> held --risk--> approved | review | rejected
    review --reviewer--> approved | rejected
    approved --sign--> signed (hot key)  |  awaiting_signatures (multisig PSBT)
    awaiting_signatures --m signatures--> signed
    signed --broadcast--> broadcast  |  failed (the node refused it)
    broadcast --confirmations--> committed (core WITHDRAW_COMMIT)
    rejected | failed --core WITHDRAW_RELEASE--> released
    requested --core refuses the hold--> refused

Never paid twice: the inputs of a withdrawal are chosen once and reserved in
``spent_outpoints`` (a coin belongs to at most one withdrawal) in the same
transaction that stores its signed transaction; every later attempt (a
re-broadcast, an RBF fee bump) spends exactly those inputs, so at most one of
its transactions can ever confirm. A withdrawal is followed by its inputs and its
attempts' txids, not by one txid. Core commands are keyed by the withdrawal id
(a hash of the client reference), so a retry after a crash is a core duplicate.

A stuck multisig withdrawal is bumped by a replacement PSBT on the same inputs that
the offline signers sign again (``multisig_bumps``). On account chains a withdrawal
above the hot limits is a request to an M-of-N contract (:mod:`wallet.ethmultisig`)
with its own contract nonce, executed by the hot account once M owners signed.
Coins from a tainted source (a reorg, a blacklisted address) are quarantined
(:meth:`Withdrawals.screen`) and never selected until an operator releases them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from embit import ec
from embit.psbt import PSBT

from wallet import custody, ethmultisig, ethtx, keyevents, risk
from wallet.chain import BroadcastRejectedError, ChainAdapter, NodeUnavailableError
from wallet.scanner import APPLIED, DUPLICATE, FundingCore, reason_name
from wallet.store import Store

log = logging.getLogger("bursa.wallet.withdrawals")

TERMINAL = ("committed", "released", "refused")
DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9
# Live withdrawals count against limits; released/refused ones do not.
LIVE = (
    "requested",
    "held",
    "review",
    "approved",
    "awaiting_signatures",
    "signed",
    "broadcast",
    "committed",
    "failed",
)


class CoinSource(ChainAdapter, Protocol):
    """A UTXO adapter that also lists an address's coins and who spent a coin."""

    def unspent(self, address: str) -> list[tuple[str, int]]:
        """Confirmed coins of ``address`` not spent on chain or in the mempool."""
        ...

    def spent_by(self, outpoint: str) -> str | None:
        """The transaction spending ``outpoint`` (chain or mempool), None if unspent."""
        ...


@dataclass(frozen=True)
class WithdrawChain:
    """One chain's withdrawal settings (amounts of limits in chain base units).

    ``fee`` is what the user pays per withdrawal (core minor units, held with the
    amount); the network fee actually spent comes out of the exchange's change.
    ``hot_max_tx`` / ``hot_daily``: above either, a withdrawal goes to ``multisig``.
    """

    chain: str
    asset_id: int
    network: str
    hot: custody.Source
    multisig: custody.Source | None = None
    fee: int = 1000
    scale: int = 1
    confirmations: int = 3
    hot_max_tx: int = 10**6
    hot_daily: int = 10**7
    bump_after_blocks: int = 3
    account: int = 1
    hot_floor: int = 0
    hot_ceiling: int = 0
    min_fee_rate: int = 1
    model: str = "utxo"  # "account": Ethereum (hot custody only, nonce-tracked)
    chain_id: int = 1
    token: str = ""  # account model: the ERC-20 contract ("" = the native coin)
    node: str = ""  # the [wallet.chains] entry whose node this uses ("" = ``chain``)
    # Deposit sweeps (UTXO): a deposit address holding at least this much is swept to
    # the hot wallet by a PSBT the offline deposit signer signs (0 = off).
    deposit_sweep_threshold: int = 0
    deposit_xpub: str = ""  # the deposit account's xpub (filled from [wallet.chains])
    # Account chains above the hot limits: an M-of-N MultiSigWallet contract
    # (wallet/contracts/MultiSigWallet.sol), its owners' addresses and M.
    multisig_contract: str = ""
    multisig_owners: tuple[str, ...] = ()
    contract_m: int = 0

    @property
    def gas(self) -> int:
        """Gas limit of one withdrawal transaction (account model)."""
        return ethtx.TOKEN_GAS if self.token else ethtx.TRANSFER_GAS

    def fee_rate(self, adapter: ChainAdapter) -> int:
        """The node's estimate, never under ``min_fee_rate`` (sat/vB)."""
        return max(self.min_fee_rate, adapter.fee_estimate())


@dataclass(frozen=True)
class Withdrawal:
    """One row of the withdrawals table."""

    wid: int
    client_ref: str
    user_id: int
    chain: str
    asset_id: int
    address: str
    amount: int
    fee: int
    state: str
    score: int
    rules: str
    custody: str
    psbt: str
    txid: str
    sent_height: int
    reviewer: str
    review_reason: str
    reviewed_ns: int
    error: str
    created_ns: int
    updated_ns: int


def withdrawal_id(client_ref: str) -> int:
    """The core withdrawal id of a client reference (63-bit hash, never 0)."""
    d = hashlib.blake2b(f"withdraw|{client_ref}".encode(), digest_size=8).digest()
    return (int.from_bytes(d, "little") & (2**63 - 1)) or 1


class RequestError(ValueError):
    """A withdrawal request refused before anything happened (message = reason)."""


@dataclass
class Withdrawals:
    """Runs every withdrawal of the configured chains one step at a time (:meth:`step`)."""

    store: Store
    chains: dict[str, tuple[WithdrawChain, CoinSource]]
    core: FundingCore
    hot_keys: dict[str, ec.PrivateKey] = field(default_factory=dict)
    rules: risk.Rules = field(default_factory=risk.Rules)
    now: Callable[[], int] = time.time_ns
    # Test fault injection: called with a point name after an external effect and
    # before it is recorded (raise to emulate a crash there); "after_sign" follows the
    # commit of a signed transaction, "before_commit" precedes the core's commit.
    fault: Callable[[str], None] = lambda _point: None

    # -- requests and reads ----------------------------------------------------------

    def request(
        self, client_ref: str, user_id: int, chain: str, address: str, amount: int
    ) -> Withdrawal:
        """Create (or return the existing) withdrawal of ``client_ref``."""
        if not client_ref or len(client_ref) > 128:
            raise RequestError("client_ref must be 1..128 characters")
        old = self.get_ref(client_ref)
        if old is not None:
            if (old.user_id, old.chain, old.address, old.amount) != (
                user_id,
                chain,
                address,
                amount,
            ):
                raise RequestError(f"client_ref {client_ref!r} was used for another withdrawal")
            return old
        if chain not in self.chains:
            raise RequestError(f"unknown chain {chain!r}")
        cfg, _ = self.chains[chain]
        if not 0 < amount < 2**62 or amount * cfg.scale <= custody.DUST:
            raise RequestError(f"amount must exceed the dust limit ({custody.DUST})")
        custody.check_address(address, cfg.network)  # ValueError: RequestError's parent
        wid = withdrawal_id(client_ref)
        now = self.now()
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO withdrawals (wid, client_ref, user_id, chain, asset_id, address, "
                "amount, fee, state, created_ns, updated_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'requested', ?, ?)",
                (
                    wid,
                    client_ref,
                    user_id,
                    chain,
                    cfg.asset_id,
                    address.lower(),
                    amount,
                    cfg.fee,
                    now,
                    now,
                ),
            )
            self._log(wid, "requested", amount=amount, address=address)
        got = self.get(wid)
        assert got is not None
        return got

    def get(self, wid: int) -> Withdrawal | None:
        """One withdrawal by id."""
        rows = self.query("wid = ?", (wid,))
        return rows[0] if rows else None

    def get_ref(self, client_ref: str) -> Withdrawal | None:
        """One withdrawal by client reference."""
        rows = self.query("client_ref = ?", (client_ref,))
        return rows[0] if rows else None

    def query(self, where: str = "1=1", args: tuple[Any, ...] = ()) -> list[Withdrawal]:
        """Withdrawals matching an SQL condition, oldest first."""
        rows = self.store.db.execute(
            f"SELECT * FROM withdrawals WHERE {where} ORDER BY created_ns, wid", args
        )
        return [Withdrawal(*r) for r in rows]

    def steps(self, wid: int) -> list[tuple[str, int, dict[str, Any]]]:
        """The persisted history of one withdrawal: (state, ts_ns, detail)."""
        rows = self.store.db.execute(
            "SELECT state, ts_ns, detail FROM withdrawal_steps WHERE wid = ? ORDER BY id", (wid,)
        )
        return [(str(s), int(t), json.loads(d)) for s, t, d in rows]

    def attempts(self, wid: int) -> list[tuple[str, str, int]]:
        """(txid, raw hex, network fee) of every transaction signed for ``wid``, oldest first."""
        rows = self.store.db.execute(
            "SELECT txid, raw, fee FROM withdrawal_txs WHERE wid = ? ORDER BY created_ns, txid",
            (wid,),
        )
        return [(str(t), str(r), int(f)) for t, r, f in rows]

    # -- risk inputs the operators maintain --------------------------------------------

    def whitelist(self, user_id: int, chain: str, address: str, at_ns: int | None = None) -> None:
        """Add an address to a user's book (the delay runs from now)."""
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO address_book (user_id, chain, address, added_ns) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (user_id, chain, address.lower(), self.now() if at_ns is None else at_ns),
            )

    def blacklist(self, chain: str, address: str) -> None:
        """Refuse every withdrawal to ``address``."""
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO blacklist (chain, address) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (chain, address.lower()),
            )

    def set_kyc(self, user_id: int, tier: int) -> None:
        """A user's KYC tier."""
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO kyc (user_id, tier) VALUES (?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET tier = excluded.tier",
                (user_id, tier),
            )

    def security_change(self, user_id: int, kind: str) -> None:
        """Record a security change (new API key, key revoked, password, 2FA)."""
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO security_changes (user_id, kind, ts_ns) VALUES (?, ?, ?)",
                (user_id, kind, self.now()),
            )

    # -- review -------------------------------------------------------------------------

    def review(self, wid: int, approve: bool, reviewer: str, reason: str) -> Withdrawal:
        """A reviewer's decision on a withdrawal in the review queue (who, when, why)."""
        if not reviewer or not reason:
            raise RequestError("a review needs a reviewer name and a reason")
        w = self.get(wid)
        if w is None:
            raise RequestError(f"no withdrawal {wid}")
        if w.state != "review":
            raise RequestError(f"withdrawal {wid} is {w.state}, not in review")
        new = "approved" if approve else "rejected"
        now = self.now()
        with self.store.tx() as db:
            db.execute(
                "UPDATE withdrawals SET reviewer = ?, review_reason = ?, reviewed_ns = ? "
                "WHERE wid = ?",
                (reviewer, reason, now, wid),
            )
            self._move(wid, new, reviewer=reviewer, reason=reason)
        got = self.get(wid)
        assert got is not None
        return got

    def add_signatures(self, wid: int, psbt_text: str) -> int:
        """Merge a signer's PSBT into a multisig withdrawal's; the signatures it now has."""
        w = self.get(wid)
        if w is not None and w.custody == "contract" and w.state == "awaiting_signatures":
            return self._add_owner_signature(w, psbt_text)
        bump = self.pending_bump(wid) if w is not None and w.state == "broadcast" else ""
        if w is None or (w.state != "awaiting_signatures" and not bump):
            raise RequestError(f"withdrawal {wid} is not awaiting signatures")
        try:
            theirs = PSBT.from_string(psbt_text.strip())
        except Exception as exc:
            raise RequestError(f"not a PSBT: {exc}") from None
        merged = custody.combine(PSBT.from_string(bump or w.psbt), theirs)
        with self.store.tx() as db:
            if bump:  # signatures of a stuck multisig transaction's replacement
                db.execute(
                    "UPDATE multisig_bumps SET psbt = ? WHERE wid = ?", (merged.to_string(), wid)
                )
            else:
                db.execute(
                    "UPDATE withdrawals SET psbt = ?, updated_ns = ? WHERE wid = ?",
                    (merged.to_string(), self.now(), wid),
                )
            n = custody.signatures(merged)
            self._log(wid, "signature_added", signatures=n, bump=bool(bump))
        return custody.signatures(merged)

    def _add_owner_signature(self, w: Withdrawal, text: str) -> int:
        """Add one owner's signature (``{"signer", "signature"}`` JSON) of an Ethereum
        multisig request; only a signature that recovers to a configured owner counts."""
        cfg = self.chains[w.chain][0]
        spec = json.loads(w.psbt)
        req = ethmultisig.Request.from_json(json.dumps(spec["request"]))
        try:
            signature = str(json.loads(text)["signature"])
            who = ethmultisig.recover(req, signature)
        except (ValueError, KeyError, TypeError) as exc:
            raise RequestError(f"not a signature of this request: {exc}") from None
        if who.lower() not in {o.lower() for o in cfg.multisig_owners}:
            raise RequestError(f"{who} is not an owner of {cfg.multisig_contract}")
        spec["signatures"][who] = signature
        with self.store.tx() as db:
            db.execute(
                "UPDATE withdrawals SET psbt = ?, updated_ns = ? WHERE wid = ?",
                (json.dumps(spec), self.now(), w.wid),
            )
            self._log(w.wid, "signature_added", signer=who, signatures=len(spec["signatures"]))
        return len(spec["signatures"])

    def signing_payload(self, wid: int) -> str:
        """What the offline signers sign next for ``wid``: a stuck multisig withdrawal's
        replacement PSBT, an Ethereum multisig request (JSON) or the PSBT ("": none)."""
        w = self.get(wid)
        if w is None or not w.psbt:
            return ""
        if w.custody == "contract":
            return json.dumps(json.loads(w.psbt)["request"], sort_keys=True)
        return self.pending_bump(wid) or w.psbt

    # -- halts (the circuit breaker) ----------------------------------------------------

    def halted(self, chain: str) -> str | None:
        """Why ``chain``'s withdrawals are halted (None: running)."""
        row = self.store.db.execute(
            "SELECT reason FROM withdraw_halts WHERE chain = ?", (chain,)
        ).fetchone()
        return None if row is None else str(row[0])

    def halt(self, chain: str, reason: str) -> None:
        """Stop signing and broadcasting on ``chain``; an alert event."""
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO withdraw_halts (chain, reason, ts_ns) VALUES (?, ?, ?) "
                "ON CONFLICT (chain) DO NOTHING",
                (chain, reason, self.now()),
            )
            self.store.event(chain, "alert", what="withdrawals halted", reason=reason)
            self.store.bump(f"wallet.{chain}.withdraw_halts")
        log.error("ALERT %s: withdrawals halted: %s", chain, reason)

    def unhalt(self, chain: str, operator: str) -> None:
        """An operator resumes ``chain``'s withdrawals."""
        with self.store.tx() as db:
            db.execute("DELETE FROM withdraw_halts WHERE chain = ?", (chain,))
            self.store.event(chain, "withdrawals_resumed", operator=operator)

    # -- the machine --------------------------------------------------------------------

    def step(self) -> None:
        """Advance every open withdrawal as far as it can go now, then watch the wallets."""
        for name in self.chains:
            try:
                self.watch(name)
                self.screen(name)
                self.sweep(name)
                self.sweep_deposits(name)
            except NodeUnavailableError:
                continue
        open_states = ",".join(f"'{s}'" for s in TERMINAL)
        for w in self.query(f"state NOT IN ({open_states})"):
            for _ in range(10):
                before = self.get(w.wid)
                if before is None:
                    break
                try:
                    self._advance(before)
                except NodeUnavailableError:
                    break
                after = self.get(w.wid)
                if after is None or after.state == before.state:
                    break

    def _advance(self, w: Withdrawal) -> None:
        handler = {
            "requested": self._hold,
            "held": self._score,
            "approved": self._sign,
            "awaiting_signatures": self._finalize,
            "signed": self._broadcast,
            "broadcast": self._follow,
            "rejected": self._release,
            "failed": self._release,
        }.get(w.state)
        if handler is not None:
            handler(w)

    def _hold(self, w: Withdrawal) -> None:
        st, reason = self.core.withdraw_hold(
            w.wid, w.user_id, w.asset_id, w.amount + w.fee, self.chains[w.chain][0].account
        )
        self.fault("after_hold")
        if st in (APPLIED, DUPLICATE):
            self._move(w.wid, "held", held=w.amount + w.fee)
        else:
            self._move(w.wid, "refused", error=reason_name(reason))

    def facts(self, w: Withdrawal) -> risk.Facts:
        """The risk inputs of a withdrawal, from the store."""
        db = self.store.db
        now = self.now()
        live = ",".join(f"'{s}'" for s in LIVE)
        tier = db.execute("SELECT tier FROM kyc WHERE user_id = ?", (w.user_id,)).fetchone()
        day = db.execute(
            f"SELECT COALESCE(SUM(amount), 0) FROM withdrawals WHERE user_id = ? AND asset_id = ? "
            f"AND wid <> ? AND created_ns > ? AND state IN ({live})",
            (w.user_id, w.asset_id, w.wid, now - DAY_NS),
        ).fetchone()
        hour = db.execute(
            "SELECT COUNT(*) FROM withdrawals WHERE user_id = ? AND wid <> ? AND created_ns > ?",
            (w.user_id, w.wid, now - HOUR_NS),
        ).fetchone()
        black = db.execute(
            "SELECT 1 FROM blacklist WHERE chain = ? AND address = ?", (w.chain, w.address)
        ).fetchone()
        book = db.execute(
            "SELECT added_ns FROM address_book WHERE user_id = ? AND chain = ? AND address = ?",
            (w.user_id, w.chain, w.address),
        ).fetchone()
        paid = db.execute(
            "SELECT 1 FROM withdrawals WHERE user_id = ? AND chain = ? AND address = ? "
            "AND state = 'committed' AND wid <> ?",
            (w.user_id, w.chain, w.address, w.wid),
        ).fetchone()
        sec = db.execute(
            "SELECT MAX(ts_ns) FROM security_changes WHERE user_id = ?", (w.user_id,)
        ).fetchone()
        changes = [int(sec[0])] if sec and sec[0] is not None else []
        if self.rules.gateway_db:  # API keys created/revoked, from the gateway's database
            key_ns = keyevents.last_key_change_ns(self.rules.gateway_db, w.user_id)
            changes += [key_ns] if key_ns is not None else []
        return risk.Facts(
            amount=w.amount,
            kyc_tier=int(tier[0]) if tier else 0,
            withdrawn_24h=int(day[0]),
            count_1h=int(hour[0]),
            blacklisted=black is not None,
            whitelisted_ns=int(book[0]) if book else None,
            paid_before=paid is not None,
            last_security_change_ns=max(changes) if changes else None,
            now_ns=now,
        )

    def _score(self, w: Withdrawal) -> None:
        try:
            facts = self.facts(w)
        except keyevents.KeyEventsUnavailableError as exc:
            # Never score without an input: the withdrawal waits in ``held`` (retried
            # every step) rather than be approved blind to a fresh API key.
            self._note(w.wid, f"risk input unavailable: {exc}")
            self.store.bump("wallet.risk_input_unavailable")
            return
        value, fired = risk.score(facts, self.rules)
        decision = risk.decision(value)
        new = {"approve": "approved", "review": "review", "reject": "rejected"}[decision]
        with self.store.tx() as db:
            db.execute(
                "UPDATE withdrawals SET score = ?, rules = ? WHERE wid = ?",
                (value, ",".join(fired), w.wid),
            )
            self._move(w.wid, new, score=value, rules=fired)

    def hot_spent_24h(self, chain: str) -> int:
        """Chain units the hot wallet signed for in the last 24 hours (by the time of each
        withdrawal's ``signed`` step; a signed transaction counts even if it later failed,
        since it exists and could still be sent)."""
        cfg = self.chains[chain][0]
        row = self.store.db.execute(
            "SELECT COALESCE(SUM(w.amount), 0) FROM withdrawals w WHERE w.chain = ? "
            "AND w.custody = 'hot' AND EXISTS (SELECT 1 FROM withdrawal_steps s "
            "WHERE s.wid = w.wid AND s.state = 'signed' AND s.ts_ns > ?)",
            (chain, self.now() - DAY_NS),
        ).fetchone()
        return int(row[0]) * cfg.scale

    def _coins(self, chain: str, src: custody.Source) -> list[tuple[str, int]]:
        adapter = self.chains[chain][1]
        reserved = {
            str(r[0])
            for r in self.store.db.execute(
                "SELECT outpoint FROM spent_outpoints WHERE chain = ?", (chain,)
            )
        }
        reserved |= self.quarantined(chain)
        return [c for c in adapter.unspent(src.address()) if c[0] not in reserved]

    def _sign(self, w: Withdrawal) -> None:
        cfg, adapter = self.chains[w.chain]
        if self.halted(w.chain):
            return
        amount = w.amount * cfg.scale
        hot = (
            w.chain in self.hot_keys  # no hot key loaded: the hot wallet cannot sign
            and amount <= cfg.hot_max_tx
            and self.hot_spent_24h(w.chain) + amount <= cfg.hot_daily
        )
        if cfg.model == "account":
            if hot:
                self._sign_account(w, cfg, adapter, amount)
            elif cfg.multisig_contract:
                self._contract_request(w, cfg, adapter, amount)
            else:
                self._note(w.wid, "over the hot wallet's limits and no multisig contract")
            return
        src = cfg.hot if hot or cfg.multisig is None else cfg.multisig
        if not hot and cfg.multisig is None:
            self._note(w.wid, "over the hot wallet's limits and no multisig configured")
            return
        fee_rate = cfg.fee_rate(adapter)
        pl = custody.plan(src, self._coins(w.chain, src), amount, fee_rate)
        if pl is None:
            self._note(w.wid, f"{'hot' if hot else 'multisig'} wallet cannot cover {amount}")
            self.store.event(w.chain, "alert", what="wallet short", wid=w.wid, amount=amount)
            return
        psbt = custody.build_psbt(src, pl.inputs, w.address, amount, pl.change)
        kind = "hot" if src is cfg.hot else "multisig"
        with self.store.tx() as db:
            db.executemany(
                "INSERT INTO spent_outpoints (chain, outpoint, wid) VALUES (?, ?, ?)",
                [(w.chain, op, w.wid) for op, _ in pl.inputs],
            )
            db.execute(
                "UPDATE withdrawals SET custody = ?, psbt = ? WHERE wid = ?",
                (kind, psbt.to_string(), w.wid),
            )
            if kind == "hot":
                raw = custody.sign_hot(psbt, self.hot_keys[w.chain])
                self._attempt(w.wid, raw, pl.fee)
                self._move(w.wid, "signed", custody=kind, fee=pl.fee, inputs=len(pl.inputs))
            else:
                self._move(w.wid, "awaiting_signatures", custody=kind, inputs=len(pl.inputs))
        if kind == "hot":
            self.fault("after_sign")

    def _next_nonce(self, chain: str, cfg: WithdrawChain, adapter: ChainAdapter) -> int:
        """Allocate a nonce (inside the caller's transaction): a freed one first, so none
        is skipped; else the next after the last allocated (the node's count at first).
        Nonces are kept per hot account, shared by every asset (ETH, tokens) it sends."""
        hot = cfg.hot.address()
        return self._alloc_nonce(hot.lower(), lambda: int(adapter.nonce(hot)))  # type: ignore[attr-defined]

    def _alloc_nonce(self, account: str, on_chain: Callable[[], int]) -> int:
        """A freed nonce of ``account`` first, else the next after the last allocated
        (``on_chain()`` the first time); inside the caller's transaction."""
        db = self.store.db
        row = db.execute(
            "SELECT MIN(nonce) FROM free_nonces WHERE chain = ?", (account,)
        ).fetchone()
        if row is not None and row[0] is not None:
            db.execute("DELETE FROM free_nonces WHERE chain = ? AND nonce = ?", (account, row[0]))
            return int(row[0])
        nxt = db.execute("SELECT next FROM eth_nonces WHERE chain = ?", (account,)).fetchone()
        nonce = int(nxt[0]) if nxt else on_chain()
        db.execute(
            "INSERT INTO eth_nonces (chain, next) VALUES (?, ?) "
            "ON CONFLICT (chain) DO UPDATE SET next = excluded.next",
            (account, nonce + 1),
        )
        return nonce

    def _contract_nonce(self, cfg: WithdrawChain, adapter: ChainAdapter) -> int:
        """The multisig contract's next nonce on chain (its ``nonce()`` view)."""
        raw = adapter.call(cfg.multisig_contract, ethmultisig.NONCE)  # type: ignore[attr-defined]
        return int.from_bytes(raw, "big") if raw else 0

    def _contract_request(
        self, w: Withdrawal, cfg: WithdrawChain, adapter: ChainAdapter, amount: int
    ) -> None:
        """Above the hot limits on an account chain: a request to the M-of-N contract at
        a contract nonce allocated for this withdrawal, waiting for the owners' offline
        signatures (``bursa wallet psbt`` shows it, ``sign-psbt`` signs it)."""
        contract = cfg.multisig_contract.lower()
        with self.store.tx() as db:
            cnonce = self._alloc_nonce(contract, lambda: self._contract_nonce(cfg, adapter))
            req = ethmultisig.request_for(
                cfg.chain_id, cfg.multisig_contract, cnonce, w.address, amount, cfg.token,
                cfg.hot.address(),
            )  # fmt: skip
            db.execute(
                "INSERT INTO spent_outpoints (chain, outpoint, wid) VALUES (?, ?, ?)",
                (w.chain, f"{contract}:{cnonce}", w.wid),
            )
            spec = {"request": json.loads(req.to_json()), "signatures": {}}
            db.execute(
                "UPDATE withdrawals SET custody = 'contract', psbt = ? WHERE wid = ?",
                (json.dumps(spec), w.wid),
            )
            self._move(w.wid, "awaiting_signatures", custody="contract", contract_nonce=cnonce)

    def _finalize_contract(self, w: Withdrawal) -> None:
        """With M owner signatures and the contract at this request's nonce, the hot
        account sends ``execute(...)`` (it pays the gas; the contract pays the amount)."""
        cfg, adapter = self.chains[w.chain]
        spec = json.loads(w.psbt)
        if len(spec["signatures"]) < cfg.contract_m or self.halted(w.chain):
            return
        if w.chain not in self.hot_keys:
            self._note(w.wid, "no hot key loaded: cannot send the multisig execution")
            return
        req = ethmultisig.Request.from_json(json.dumps(spec["request"]))
        on_chain = self._contract_nonce(cfg, adapter)
        if on_chain < req.nonce:  # an earlier request executes first (nonces in order)
            self._note(w.wid, f"waiting for contract nonce {req.nonce} (at {on_chain})")
            return
        if on_chain > req.nonce:
            self.halt(w.chain, f"contract nonce {req.nonce} used by an execution the wallet "
                      "did not send")  # fmt: skip
            return
        sigs = sorted(spec["signatures"].items())[: cfg.contract_m]
        calldata = ethmultisig.execute_calldata(req, [sig for _, sig in sigs])
        gas = ethmultisig.OUTER_GAS + req.gas_limit
        gas_price = cfg.fee_rate(adapter)
        with self.store.tx() as db:
            nonce = self._next_nonce(w.chain, cfg, adapter)
            db.execute(
                "INSERT INTO spent_outpoints (chain, outpoint, wid) VALUES (?, ?, ?)",
                (w.chain, f"{cfg.hot.address().lower()}:{nonce}", w.wid),
            )
            raw = ethtx.sign_call(
                self.hot_keys[w.chain], cfg.chain_id, nonce, gas_price, gas,
                cfg.multisig_contract, 0, calldata,
            )  # fmt: skip
            spec.update(nonce=nonce, gas_price=gas_price, gas=gas, calldata=calldata.hex())
            db.execute("UPDATE withdrawals SET psbt = ? WHERE wid = ?", (json.dumps(spec), w.wid))
            self._attempt(w.wid, raw, gas_price * gas, ethtx.tx_hash(raw))
            signers = [a for a, _ in sigs]
            self._move(w.wid, "signed", custody="contract", nonce=nonce, signers=signers)
        self.fault("after_sign")

    def _free_contract_nonce(self, w: Withdrawal) -> None:
        """A contract withdrawal that will never execute gives its contract nonce back (the
        next request takes it, so later ones are not stuck behind a gap). Its signatures
        name the hot account as the only executor, and the wallet never sends them."""
        if w.custody != "contract":
            return
        req = json.loads(w.psbt)["request"]
        contract = str(req["contract"]).lower()
        self.store.db.execute(
            "DELETE FROM spent_outpoints WHERE chain = ? AND outpoint = ?",
            (w.chain, f"{contract}:{int(req['nonce'])}"),
        )
        self.store.db.execute(
            "INSERT INTO free_nonces (chain, nonce) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (contract, int(req["nonce"])),
        )

    def _sign_account(
        self, w: Withdrawal, cfg: WithdrawChain, adapter: ChainAdapter, amount: int
    ) -> None:
        gas_price = cfg.fee_rate(adapter)
        with self.store.tx() as db:
            nonce = self._next_nonce(w.chain, cfg, adapter)
            key = f"{cfg.hot.address().lower()}:{nonce}"
            db.execute(
                "INSERT INTO spent_outpoints (chain, outpoint, wid) VALUES (?, ?, ?)",
                (w.chain, key, w.wid),
            )
            raw = ethtx.sign_transfer(
                self.hot_keys[w.chain], cfg.chain_id, nonce, gas_price, w.address, amount,
                cfg.token,
            )  # fmt: skip
            db.execute(
                "UPDATE withdrawals SET custody = 'hot', psbt = ? WHERE wid = ?",
                (json.dumps({"nonce": nonce, "gas_price": gas_price}), w.wid),
            )
            fee = gas_price * cfg.gas
            self._attempt(w.wid, raw, fee, ethtx.tx_hash(raw))
            self._move(w.wid, "signed", custody="hot", nonce=nonce, fee=fee)
        self.fault("after_sign")

    def _attempt(self, wid: int, raw: bytes, fee: int, txid: str = "") -> str:
        txid = txid or custody.txid_of(raw)
        last = self.store.db.execute(
            "SELECT MAX(created_ns) FROM withdrawal_txs WHERE wid = ?", (wid,)
        ).fetchone()
        # Attempts are ordered by this time: strictly after the last one, even if the
        # clock has not moved (a coarse clock), so the newest is always last.
        ts = self.now() if last is None or last[0] is None else max(self.now(), int(last[0]) + 1)
        self.store.db.execute(
            "INSERT INTO withdrawal_txs (wid, txid, raw, fee, created_ns) VALUES (?, ?, ?, ?, ?)",
            (wid, txid, raw.hex(), fee, ts),
        )
        self.store.db.execute("UPDATE withdrawals SET txid = ? WHERE wid = ?", (txid, wid))
        return txid

    def _finalize(self, w: Withdrawal) -> None:
        if w.custody == "contract":
            self._finalize_contract(w)
            return
        cfg = self.chains[w.chain][0]
        psbt = PSBT.from_string(w.psbt)
        need = 1 if w.custody == "deposit-sweep" else cfg.multisig.m if cfg.multisig else 0
        if not need or custody.signatures(psbt) < need:
            return
        raw = custody.finalize(psbt)
        paid_in = sum(int(i.witness_utxo.value) for i in psbt.inputs)
        fee = paid_in - sum(int(o.value) for o in psbt.tx.vout)
        with self.store.tx():
            self._attempt(w.wid, raw, fee)
            self._move(w.wid, "signed", fee=fee)
        self.fault("after_sign")

    def _broadcast(self, w: Withdrawal) -> None:
        adapter = self.chains[w.chain][1]
        if self.halted(w.chain):
            return
        txid, raw, _fee = self.attempts(w.wid)[-1]
        try:
            adapter.broadcast(bytes.fromhex(raw))
        except BroadcastRejectedError as exc:
            if adapter.tx_status(txid).state == "unknown":
                self.fault("after_refused_broadcast")
                with self.store.tx() as db:
                    if self.chains[w.chain][0].model == "account":
                        # The nonce goes back to the pool: the next withdrawal takes it,
                        # so the account never has a gap that would stall it.
                        nonce = int(json.loads(w.psbt)["nonce"])
                        db.execute("DELETE FROM spent_outpoints WHERE wid = ?", (w.wid,))
                        db.execute(
                            "INSERT INTO free_nonces (chain, nonce) VALUES (?, ?)",
                            (self.chains[w.chain][0].hot.address().lower(), nonce),
                        )
                        self._free_contract_nonce(w)
                    self._move(w.wid, "failed", error=str(exc))
                return
        self.fault("after_broadcast")
        height = adapter.tip().height
        with self.store.tx() as db:
            db.execute("UPDATE withdrawals SET sent_height = ? WHERE wid = ?", (height, w.wid))
            self._move(w.wid, "broadcast", txid=txid, height=height)

    def _follow(self, w: Withdrawal) -> None:
        cfg, adapter = self.chains[w.chain]
        attempts = self.attempts(w.wid)
        statuses = [(t, adapter.tx_status(t)) for t, _, _ in attempts]
        done = [(t, s) for t, s in statuses if s.state == "confirmed"]
        if done:
            txid, s = done[0]
            if s.confirmations < cfg.confirmations:
                return
            if not s.success:  # an account-model transaction that reverted: nothing paid
                with self.store.tx():
                    self._free_contract_nonce(w)  # a reverted execute() used no contract nonce
                    self._move(w.wid, "failed", error=f"transaction {txid} reverted")
                return
            if w.custody in ("sweep", "deposit-sweep"):  # internal: nothing to commit at the core
                self._move(w.wid, "committed", txid=txid, confirmations=s.confirmations)
                return
            self.fault("before_commit")
            st, reason = self.core.withdraw_commit(w.wid)
            self.fault("after_commit")
            if st in (APPLIED, DUPLICATE):
                with self.store.tx() as db:
                    db.execute("UPDATE withdrawals SET txid = ? WHERE wid = ?", (txid, w.wid))
                    db.execute("DELETE FROM multisig_bumps WHERE wid = ?", (w.wid,))
                    self._move(w.wid, "committed", txid=txid, confirmations=s.confirmations)
            else:
                self._note(w.wid, f"core refused the commit: {reason_name(reason)}")
            return
        if any(s.state == "mempool" for _, s in statuses):
            if adapter.tip().height - w.sent_height >= cfg.bump_after_blocks:
                self.bump(w)
            return
        # No attempt is known: dropped from the mempool (eviction, a reorg). Its inputs
        # are still ours (the breaker halts the chain if anyone else spent them), so
        # sending the latest attempt again can only pay once.
        # Dropped again and again (an eviction for a low fee, a node that will not keep
        # it): after bump_after_blocks it is replaced at a higher fee instead.
        if self.halted(w.chain):
            return
        if adapter.tip().height - w.sent_height >= cfg.bump_after_blocks:
            self.bump(w)
            return
        try:
            adapter.broadcast(bytes.fromhex(attempts[-1][1]))
        except BroadcastRejectedError as exc:
            self._note(w.wid, f"re-broadcast refused: {exc}")

    def bump(self, w: Withdrawal) -> str | None:
        """Replace a stuck transaction by one spending the SAME inputs at a higher fee.

        Hot: signed and sent at once. Multisig: the replacement PSBT waits for the
        offline signers (:meth:`pending_bump`); the txid once it is sent, else None.
        """
        cfg, adapter = self.chains[w.chain]
        if cfg.model == "account" and w.custody in ("hot", "contract"):
            return self._bump_account(w, cfg, adapter)
        if w.custody == "multisig" and cfg.multisig is not None:
            return self._bump_multisig(w, cfg, adapter)
        if w.custody != "hot":
            self._note(w.wid, f"stuck {w.custody} transaction: not bumped")
            return None
        built = self._replacement(w, cfg, adapter, cfg.hot)
        if built is None:
            return None
        new, fee = built
        raw = custody.sign_hot(new, self.hot_keys[w.chain])
        return self._send_bump(w, adapter, new, raw, fee)

    def _replacement(
        self, w: Withdrawal, cfg: WithdrawChain, adapter: ChainAdapter, src: custody.Source
    ) -> tuple[PSBT, int] | None:
        """An unsigned PSBT spending exactly ``w``'s inputs, paying the same amount to the
        same address, at a fee >= 1.5x the last attempt's (BIP125: and >= last + vsize)."""
        psbt = PSBT.from_string(w.psbt)
        inputs = tuple(
            (f"{v.txid.hex()}:{v.vout}", int(i.witness_utxo.value))
            for v, i in zip(psbt.tx.vin, psbt.inputs, strict=True)
        )
        amount = w.amount * cfg.scale
        last_fee = self.attempts(w.wid)[-1][2]
        vbytes = custody.TX_OVERHEAD_VB + len(inputs) * src.input_vb() + 2 * custody.OUTPUT_VB
        fee = max(last_fee * 3 // 2, cfg.fee_rate(adapter) * vbytes, last_fee + vbytes)
        change = sum(v for _, v in inputs) - amount - fee
        if change < 0:
            self._note(w.wid, "cannot bump: the inputs do not cover a higher fee")
            return None
        if change < custody.DUST:
            fee, change = fee + change, 0
        return custody.build_psbt(src, inputs, w.address, amount, change), fee

    def _send_bump(
        self, w: Withdrawal, adapter: ChainAdapter, new: PSBT, raw: bytes, fee: int
    ) -> str:
        """Record a signed replacement as the withdrawal's latest attempt, then send it."""
        with self.store.tx() as db:
            txid = self._attempt(w.wid, raw, fee)
            db.execute(
                "UPDATE withdrawals SET psbt = ?, sent_height = ? WHERE wid = ?",
                (new.to_string(), adapter.tip().height, w.wid),
            )
            db.execute("DELETE FROM multisig_bumps WHERE wid = ?", (w.wid,))
            self._log(w.wid, "bumped", txid=txid, fee=fee)
        try:
            adapter.broadcast(raw)
        except BroadcastRejectedError as exc:
            # The replacement stays recorded; the original (same inputs or nonce) may
            # still confirm, else the next step re-sends the latest attempt.
            self._note(w.wid, f"fee bump refused: {exc}")
        return txid

    def pending_bump(self, wid: int) -> str:
        """The replacement PSBT of a stuck multisig withdrawal awaiting signatures ("": none)."""
        row = self.store.db.execute(
            "SELECT psbt FROM multisig_bumps WHERE wid = ?", (wid,)
        ).fetchone()
        return "" if row is None else str(row[0])

    def _bump_multisig(
        self, w: Withdrawal, cfg: WithdrawChain, adapter: ChainAdapter
    ) -> str | None:
        """A stuck M-of-N withdrawal: build the replacement PSBT once (same inputs, higher
        fee, change lower) and wait for the offline signers to sign it like any PSBT
        (`bursa wallet psbt` shows it, `submit-psbt` adds signatures); with m signatures
        it is finalized, recorded as the newest attempt and sent. Either transaction may
        confirm; they spend the same coins, so the withdrawal pays once."""
        assert cfg.multisig is not None
        pending = self.pending_bump(w.wid)
        if pending:
            psbt = PSBT.from_string(pending)
            if custody.signatures(psbt) < cfg.multisig.m:
                return None
            paid_in = sum(int(i.witness_utxo.value) for i in psbt.inputs)
            fee = paid_in - sum(int(o.value) for o in psbt.tx.vout)
            return self._send_bump(w, adapter, psbt, custody.finalize(psbt), fee)
        built = self._replacement(w, cfg, adapter, cfg.multisig)
        if built is None:
            return None
        new, fee = built
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO multisig_bumps (wid, psbt, fee, created_ns) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (wid) DO NOTHING",
                (w.wid, new.to_string(), fee, self.now()),
            )
            self._log(w.wid, "bump_awaiting_signatures", fee=fee)
            self.store.event(w.chain, "alert", what="multisig fee bump needs signatures",
                             wid=w.wid, fee=fee)  # fmt: skip
        return None

    def _bump_account(self, w: Withdrawal, cfg: WithdrawChain, adapter: ChainAdapter) -> str:
        """The same nonce at a gas price at least 1.5x the last (nodes want +10%)."""
        spec = json.loads(w.psbt)
        price = max(int(spec["gas_price"]) * 3 // 2 + 1, cfg.fee_rate(adapter))
        gas = int(spec.get("gas", cfg.gas))
        if "calldata" in spec:  # a multisig execution: the same signed call, a higher price
            raw = ethtx.sign_call(
                self.hot_keys[w.chain], cfg.chain_id, int(spec["nonce"]), price, gas,
                cfg.multisig_contract, 0, bytes.fromhex(spec["calldata"]),
            )  # fmt: skip
        else:
            raw = ethtx.sign_transfer(
                self.hot_keys[w.chain], cfg.chain_id, int(spec["nonce"]), price, w.address,
                w.amount * cfg.scale, cfg.token,
            )  # fmt: skip
        with self.store.tx() as db:
            txid = self._attempt(w.wid, raw, price * gas, ethtx.tx_hash(raw))
            db.execute(
                "UPDATE withdrawals SET psbt = ?, sent_height = ? WHERE wid = ?",
                (json.dumps({**spec, "gas_price": price}), adapter.tip().height, w.wid),
            )
            self._log(w.wid, "bumped", txid=txid, gas_price=price)
        try:
            adapter.broadcast(raw)
        except BroadcastRejectedError as exc:
            # The replacement stays recorded; the original (same inputs or nonce) may
            # still confirm, else the next step re-sends the latest attempt.
            self._note(w.wid, f"fee bump refused: {exc}")
        return txid

    def _release(self, w: Withdrawal) -> None:
        if w.custody in (
            "sweep",
            "deposit-sweep",
        ):  # an internal move never held anything at the core
            self._move(w.wid, "released", after=w.state)
            return
        st, reason = self.core.withdraw_release(w.wid)
        self.fault("after_release")
        if st in (APPLIED, DUPLICATE):
            self._move(w.wid, "released", after=w.state)
        else:
            self._note(w.wid, f"core refused the release: {reason_name(reason)}")

    # -- the circuit breaker ------------------------------------------------------------

    def watch(self, chain: str) -> None:
        """Halt ``chain`` if a coin of an exchange wallet was spent by no withdrawal of ours.

        Every poll compares the wallets' coins with the last poll's: a coin that is
        gone must be reserved by a withdrawal and spent by one of its attempts.
        """
        cfg, adapter = self.chains[chain]
        if cfg.model == "account":
            self._watch_account(chain, cfg, adapter)
            return
        sources = [cfg.hot] + ([cfg.multisig] if cfg.multisig else [])
        now = {op: v for s in sources for op, v in adapter.unspent(s.address())}
        db = self.store.db
        known = {
            str(o): int(a)
            for o, a in db.execute(
                "SELECT outpoint, amount FROM known_coins WHERE chain = ?", (chain,)
            )
        }
        for op in sorted(set(known) - set(now)):
            spender = adapter.spent_by(op)
            if spender is None:
                # The coin's own transaction left the chain (a reorg): if it comes back
                # it stays out of coin selection until an operator releases it (our own
                # change is not tainted: the withdrawal follows its transaction).
                if not db.execute(
                    "SELECT 1 FROM withdrawal_txs WHERE txid = ?", (op.split(":")[0],)
                ).fetchone():
                    why = "its transaction left the chain (reorg)"
                    self.quarantine(chain, op, known[op], why)
                continue
            row = db.execute(
                "SELECT wid FROM spent_outpoints WHERE chain = ? AND outpoint = ?", (chain, op)
            ).fetchone()
            ours = row is not None and spender in {t for t, _, _ in self.attempts(int(row[0]))}
            if not ours:
                self.halt(chain, f"coin {op} ({known[op]}) spent by {spender}: no withdrawal")
                continue
            owner = self.get(int(row[0]))
            if owner is not None and owner.state in ("failed", "released"):
                # The transaction of a withdrawal the core already released went out.
                self.halt(chain, f"released withdrawal {owner.wid} was paid by {spender}")
        for op in sorted(set(now) - set(known)):
            txid = op.split(":")[0]
            if db.execute("SELECT 1 FROM withdrawal_txs WHERE txid = ?", (txid,)).fetchone():
                continue  # change of our own transaction
            self._record_sources(chain, adapter, txid)
        with self.store.tx() as tx:
            tx.execute("DELETE FROM known_coins WHERE chain = ?", (chain,))
            tx.executemany(
                "INSERT INTO known_coins (chain, outpoint, amount) VALUES (?, ?, ?)",
                [(chain, op, v) for op, v in now.items()],
            )
        hot = sum(v for _, v in adapter.unspent(cfg.hot.address()))
        if cfg.hot_floor and hot < cfg.hot_floor:
            # Refill alert: a metric every poll; an event once per halt-free episode.
            self.store.bump(f"wallet.{chain}.hot_under_floor")

    def _watch_account(self, chain: str, cfg: WithdrawChain, adapter: ChainAdapter) -> None:
        """Account chains: the hot account's confirmed nonce may never pass the nonces the
        wallet allocated, nor cover a freed one (someone else sent from the account)."""
        db = self.store.db
        account = cfg.hot.address().lower()
        nxt = db.execute("SELECT next FROM eth_nonces WHERE chain = ?", (account,)).fetchone()
        node = int(adapter.nonce(cfg.hot.address()))  # type: ignore[attr-defined]
        allocated = int(nxt[0]) if nxt else None
        if allocated is None:
            return  # nothing sent yet: the first allocation starts at the node's count
        free = db.execute(
            "SELECT MIN(nonce) FROM free_nonces WHERE chain = ?", (account,)
        ).fetchone()
        if node > allocated or (free is not None and free[0] is not None and node > int(free[0])):
            self.halt(chain, f"hot account nonce {node}: transactions the wallet did not sign")

    # -- quarantined coins --------------------------------------------------------------

    def quarantine(self, chain: str, outpoint: str, amount: int, reason: str) -> bool:
        """Keep a coin out of every withdrawal and sweep until an operator releases it;
        an alert the first time (True). A released coin is not quarantined again."""
        with self.store.tx() as db:
            cur = db.execute(
                "INSERT INTO quarantine (chain, outpoint, amount, reason, ts_ns) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chain, outpoint) DO NOTHING",
                (chain, outpoint, amount, reason, self.now()),
            )
            new = bool(cur.rowcount)
            if new:
                self.store.event(chain, "alert", what="coin quarantined", outpoint=outpoint,
                                 amount=amount, reason=reason)  # fmt: skip
                self.store.bump(f"wallet.{chain}.quarantined")
        if new:
            log.error("ALERT %s: coin %s (%d) quarantined: %s", chain, outpoint, amount, reason)
        return new

    def quarantined(self, chain: str) -> set[str]:
        """The outpoints of ``chain`` that are quarantined and not released."""
        rows = self.store.db.execute(
            "SELECT outpoint FROM quarantine WHERE chain = ? AND released_ns = 0", (chain,)
        )
        return {str(r[0]) for r in rows}

    def quarantine_rows(self, chain: str | None = None) -> list[dict[str, Any]]:
        """Every quarantined coin (released ones too, with who, when and why)."""
        cols = ("chain", "outpoint", "amount", "reason", "ts_ns", "released_by",
                "release_reason", "released_ns")  # fmt: skip
        where, args = ("WHERE chain = ?", (chain,)) if chain else ("", ())
        rows = self.store.db.execute(
            f"SELECT {', '.join(cols)} FROM quarantine {where} ORDER BY ts_ns, outpoint", args
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def release_coin(self, chain: str, outpoint: str, operator: str, reason: str) -> None:
        """An operator releases a quarantined coin (who, when, why): it may be spent again."""
        if not operator or not reason:
            raise RequestError("release needs an operator name and a reason")
        with self.store.tx() as db:
            cur = db.execute(
                "UPDATE quarantine SET released_by = ?, release_reason = ?, released_ns = ? "
                "WHERE chain = ? AND outpoint = ? AND released_ns = 0",
                (operator, reason, self.now(), chain, outpoint),
            )
            if not cur.rowcount:
                raise RequestError(f"{chain} {outpoint} is not a quarantined coin")
            self.store.event(chain, "coin_released", outpoint=outpoint, operator=operator,
                             reason=reason)  # fmt: skip

    def _record_sources(self, chain: str, adapter: ChainAdapter, txid: str) -> None:
        """Remember once which addresses funded ``txid`` (adapters with ``sources``)."""
        db = self.store.db
        if (
            not hasattr(adapter, "sources")
            or db.execute(
                "SELECT 1 FROM sources_checked WHERE chain = ? AND txid = ?", (chain, txid)
            ).fetchone()
        ):
            return
        try:
            found = adapter.sources(txid)
        except NodeUnavailableError:
            raise
        except Exception as exc:
            # Never block the withdrawals on it: counted, logged, tried again next poll.
            self.store.bump(f"wallet.{chain}.sources_unavailable")
            log.warning("%s: cannot read the sources of %s: %s", chain, txid, exc)
            return
        addrs = sorted({str(a).lower() for a in found})
        with self.store.tx() as tx:
            tx.executemany(
                "INSERT INTO tx_sources (chain, txid, address) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [(chain, txid, a) for a in addrs],
            )
            tx.execute("INSERT INTO sources_checked (chain, txid) VALUES (?, ?)", (chain, txid))

    def screen(self, chain: str) -> None:
        """Quarantine the coins received from a tainted source (UTXO chains): a deposit a
        reorg reversed, and any coin of a deposit address or exchange wallet whose
        transaction spent coins of a blacklisted address (checked again every poll, so
        blacklisting an address later still catches its unspent coins)."""
        cfg, adapter = self.chains[chain]
        if cfg.model != "utxo":
            return
        db = self.store.db
        node = cfg.node or chain
        for txid, idx, amount in list(db.execute(
            "SELECT txid, idx, amount FROM deposits WHERE chain = ? AND kind = 'utxo' "
            "AND status = 'reversed'", (node,),
        )):  # fmt: skip
            self.quarantine(chain, f"{txid}:{idx}", int(amount), "deposit reversed by a reorg")
        fresh = db.execute(
            "SELECT DISTINCT d.txid FROM deposits d WHERE d.chain = ? AND d.kind = 'utxo' "
            "AND NOT EXISTS (SELECT 1 FROM sources_checked c WHERE c.chain = ? "
            "AND c.txid = d.txid)",
            (node, chain),
        )
        for (txid,) in list(fresh):
            self._record_sources(chain, adapter, str(txid))
        tainted = list(db.execute(
            "SELECT d.txid, d.idx, d.amount, s.address FROM deposits d "
            "JOIN tx_sources s ON s.chain = ? AND s.txid = d.txid "
            "JOIN blacklist b ON b.chain = ? AND b.address = s.address "
            "WHERE d.chain = ? AND d.kind = 'utxo'", (chain, chain, node),
        ))  # fmt: skip
        for txid, idx, amount, src in tainted:
            self.quarantine(chain, f"{txid}:{idx}", int(amount), f"received from blacklisted {src}")
        # the exchange wallets' own coins (hot, multisig) received from outside
        black = {
            (str(t), str(a))
            for t, a in db.execute(
                "SELECT s.txid, s.address FROM tx_sources s JOIN blacklist b "
                "ON b.chain = s.chain AND b.address = s.address WHERE s.chain = ?", (chain,),
            )
        }  # fmt: skip
        if black:
            for op, amount in list(db.execute(
                "SELECT outpoint, amount FROM known_coins WHERE chain = ?", (chain,)
            )):  # fmt: skip
                for t, a in black:
                    if str(op).split(":")[0] == t:
                        why = f"received from blacklisted {a}"
                        self.quarantine(chain, str(op), int(amount), why)

    # -- treasury -----------------------------------------------------------------------

    def sweep(self, chain: str) -> int | None:
        """Hot surplus above ``hot_ceiling`` -> the multisig (cold), down to the midpoint of
        floor and ceiling; the sweep's id, None if nothing to do. A sweep is a withdrawal
        row (custody ``sweep``, user 0) that starts signed and never touches the core, so
        the breaker and the pay-once tracking treat it like any other outflow."""
        cfg, adapter = self.chains[chain]
        if not cfg.hot_ceiling or cfg.multisig is None or self.halted(chain) or cfg.model != "utxo":
            return None
        busy = self.query(
            "chain = ? AND custody = 'sweep' AND state NOT IN ('committed', 'released')", (chain,)
        )
        if busy:
            return None
        coins = self._coins(chain, cfg.hot)
        hot = sum(v for _, v in coins)
        if hot <= cfg.hot_ceiling:
            return None
        amount = hot - (cfg.hot_floor + cfg.hot_ceiling) // 2
        pl = custody.plan(cfg.hot, coins, amount, cfg.fee_rate(adapter))
        if pl is None:
            return None
        psbt = custody.build_psbt(cfg.hot, pl.inputs, cfg.multisig.address(), amount, pl.change)
        raw = custody.sign_hot(psbt, self.hot_keys[chain])
        now = self.now()
        ref = f"sweep|{chain}|{now}"
        wid = withdrawal_id(ref)
        with self.store.tx() as db:
            db.execute(
                "INSERT INTO withdrawals (wid, client_ref, user_id, chain, asset_id, address, "
                "amount, fee, state, custody, psbt, created_ns, updated_ns) "
                "VALUES (?, ?, 0, ?, ?, ?, ?, 0, 'signed', 'sweep', ?, ?, ?)",
                (
                    wid,
                    ref,
                    chain,
                    cfg.asset_id,
                    cfg.multisig.address(),
                    amount // cfg.scale,
                    psbt.to_string(),
                    now,
                    now,
                ),
            )
            db.executemany(
                "INSERT INTO spent_outpoints (chain, outpoint, wid) VALUES (?, ?, ?)",
                [(chain, op, wid) for op, _ in pl.inputs],
            )
            self._attempt(wid, raw, pl.fee)
            self._log(wid, "signed", custody="sweep", amount=amount)
            self.store.event(chain, "sweep", wid=wid, amount=amount, to="cold")
        return wid

    def sweep_deposits(self, chain: str) -> int | None:
        """Deposit addresses holding >= ``deposit_sweep_threshold`` -> one PSBT to the hot
        wallet, waiting in ``awaiting_signatures`` for the offline deposit signer (the
        online host has only the xpub). One open deposit sweep per chain at a time."""
        cfg, adapter = self.chains[chain]
        if not cfg.deposit_sweep_threshold or not cfg.deposit_xpub or cfg.model != "utxo":
            return None
        if self.halted(chain) or self.query(
            "chain = ? AND custody = 'deposit-sweep' AND state NOT IN ('committed', 'released')",
            (chain,),
        ):
            return None
        db = self.store.db
        reserved = {
            str(r[0])
            for r in db.execute("SELECT outpoint FROM spent_outpoints WHERE chain = ?", (chain,))
        } | self.quarantined(chain)
        rows = db.execute(
            "SELECT idx, address FROM addresses WHERE chain = ? AND user_id IS NOT NULL "
            "ORDER BY idx",
            (cfg.node or chain,),
        )
        inputs: list[tuple[str, int, int]] = []
        for idx, addr in list(rows):
            coins = [c for c in adapter.unspent(str(addr)) if c[0] not in reserved]
            if sum(v for _, v in coins) >= cfg.deposit_sweep_threshold:
                inputs += [(op, v, int(idx)) for op, v in coins]
        if not inputs:
            return None
        built = custody.build_sweep_psbt(
            cfg.deposit_xpub, cfg.network, inputs, cfg.hot.address(), cfg.fee_rate(adapter)
        )
        if built is None:
            return None
        psbt, fee = built
        now = self.now()
        ref = f"deposit-sweep|{chain}|{now}"
        wid = withdrawal_id(ref)
        amount = sum(v for _, v, _ in inputs) - fee
        with self.store.tx() as tx:
            tx.execute(
                "INSERT INTO withdrawals (wid, client_ref, user_id, chain, asset_id, address, "
                "amount, fee, state, custody, psbt, created_ns, updated_ns) "
                "VALUES (?, ?, 0, ?, ?, ?, ?, 0, 'awaiting_signatures', 'deposit-sweep', ?, ?, ?)",
                (wid, ref, chain, cfg.asset_id, cfg.hot.address().lower(), amount // cfg.scale,
                 psbt.to_string(), now, now),
            )  # fmt: skip
            tx.executemany(
                "INSERT INTO spent_outpoints (chain, outpoint, wid) VALUES (?, ?, ?)",
                [(chain, op, wid) for op, _, _ in inputs],
            )
            self._log(wid, "awaiting_signatures", custody="deposit-sweep", inputs=len(inputs))
            self.store.event(chain, "sweep", wid=wid, amount=amount, to="hot")
        return wid

    def treasury(self, liabilities: dict[str, int] | None = None) -> list[dict[str, Any]]:
        """Per chain: on-chain balances of every exchange wallet vs liabilities to users.

        Liabilities (chain units) default to the wallet's own ledger: credited deposits
        minus withdrawals that left (broadcast or committed, amount + fee); pass the
        core's figure in ``liabilities`` to compare against it instead. ``shortfall``
        is true when the chain holds less than is owed.
        """
        out = []
        db = self.store.db
        for chain, (cfg, adapter) in self.chains.items():
            if cfg.model == "account":
                hot = adapter.balance(cfg.hot.address(), cfg.token)
                ms = cfg.multisig_contract
                cold = adapter.balance(ms, cfg.token) if ms else 0
            else:
                hot = sum(v for _, v in adapter.unspent(cfg.hot.address()))
                cold = (
                    sum(v for _, v in adapter.unspent(cfg.multisig.address()))
                    if cfg.multisig
                    else 0
                )
            dep = sum(adapter.balance(a, cfg.token) for a in self.store.watched(cfg.node or chain))
            if liabilities is not None and chain in liabilities:
                owed = liabilities[chain]
            else:
                credited = db.execute(
                    "SELECT COALESCE(SUM(credit_amount), 0) FROM deposits WHERE chain = ? "
                    "AND asset_id = ? AND credit_state = 'credited'",
                    (chain, cfg.asset_id),
                ).fetchone()
                left = db.execute(
                    "SELECT COALESCE(SUM(amount + fee), 0) FROM withdrawals WHERE chain = ? "
                    "AND user_id <> 0 AND state IN ('broadcast', 'committed')",
                    (chain,),
                ).fetchone()
                owed = (int(credited[0]) - int(left[0])) * cfg.scale
            total = hot + cold + dep
            out.append({
                "chain": chain, "asset_id": cfg.asset_id, "hot": hot, "cold": cold,
                "deposit_addresses": dep, "on_chain": total, "liabilities": owed,
                "surplus": total - owed, "shortfall": total < owed,
                "hot_under_floor": bool(cfg.hot_floor and hot < cfg.hot_floor),
            })  # fmt: skip
        return out

    # -- persistence helpers ------------------------------------------------------------

    def _log(self, wid: int, state: str, **detail: Any) -> None:
        self.store.db.execute(
            "INSERT INTO withdrawal_steps (wid, state, ts_ns, detail) VALUES (?, ?, ?, ?)",
            (wid, state, self.now(), json.dumps(detail, sort_keys=True)),
        )

    def _move(self, wid: int, state: str, **detail: Any) -> None:
        with self.store.tx() as db:
            db.execute(
                "UPDATE withdrawals SET state = ?, updated_ns = ? WHERE wid = ?",
                (state, self.now(), wid),
            )
            if "error" in detail:  # a later step keeps the reason it failed for
                db.execute(
                    "UPDATE withdrawals SET error = ? WHERE wid = ?", (str(detail["error"]), wid)
                )
            self._log(wid, state, **detail)
        log.info("withdrawal %d -> %s %s", wid, state, detail)

    def _note(self, wid: int, error: str) -> None:
        with self.store.tx() as db:
            db.execute("UPDATE withdrawals SET error = ? WHERE wid = ?", (error, wid))
