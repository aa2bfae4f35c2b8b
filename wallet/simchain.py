"""A deterministic, seeded simulated chain: the default chain of tests and demos.

It implements :class:`wallet.chain.ChainAdapter` and adds the controls a test needs:
sending transactions (UTXO outputs, account-model value transfers, ERC-20-like
logs, reverted transactions), a mempool with conflicts and replace-by-fee,
mining on demand, reorganizations of any depth and competing branches (longest
chain wins, the first seen wins a tie), and a node that goes down and comes back.

Everything is derived from ``seed`` and a counter, and time comes from an
injected :class:`engine.clock.Clock` (``ManualClock`` by default, advanced one
block interval per block), so the same calls give the same hashes and txids.

A transaction's ``spends`` are its conflict keys: UTXO outpoints (``"txid:vout"``),
or an account's ``"from:nonce"`` in the account model. Two transactions with a
common key are a double-spend: the mempool keeps one (the newer one only if the
older signalled RBF) and a branch never confirms both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from engine.clock import Clock, ManualClock
from wallet.chain import (
    NATIVE,
    TOKEN,
    UTXO,
    BlockRef,
    BroadcastRejectedError,
    NodeUnavailableError,
    Payment,
    TxStatus,
)

BLOCK_INTERVAL_NS = 600 * 10**9


@dataclass(frozen=True)
class SimLog:
    """An ERC-20-like ``Transfer(to, amount)`` log emitted by ``contract``.

    ``moves`` false models a lying token: the log is emitted but no balance moves
    (a ``transfer`` that returns false after emitting the event).
    """

    contract: str
    to: str
    amount: int
    moves: bool = True


@dataclass(frozen=True)
class SimTx:
    """A simulated transaction (see the module doc for ``spends``)."""

    txid: str
    spends: tuple[str, ...]
    outputs: tuple[tuple[str, int], ...]
    logs: tuple[SimLog, ...] = ()
    success: bool = True
    rbf: bool = False


@dataclass
class SimBlock:
    """A block: its place and its transactions."""

    height: int
    hash: str
    parent: str
    txids: tuple[str, ...]
    ts_ns: int


@dataclass
class SimChain:
    """The simulated node. ``model`` is "utxo" or "account"."""

    chain: str = "sim"
    model: str = "utxo"
    seed: int = 0
    clock: Clock = field(default_factory=ManualClock)
    fee_rate: int = 10
    down: bool = False
    # Address encoding of outputs of broadcast (parsed) transactions.
    network: str = "btc-regtest"
    # The next N broadcasts are refused (test control: a node rejecting a transaction).
    reject_broadcasts: int = 0

    def __post_init__(self) -> None:
        if self.model not in ("utxo", "account"):
            raise ValueError(f"model must be utxo or account, not {self.model!r}")
        self._n = 0
        genesis = SimBlock(0, self._hash("genesis"), "0" * 64, (), self.clock.now_ns())
        self.blocks: dict[str, SimBlock] = {genesis.hash: genesis}
        self.best: list[str] = [genesis.hash]
        self.txs: dict[str, SimTx] = {}
        self.mempool: dict[str, SimTx] = {}
        self.broadcasts: list[bytes] = []

    # -- determinism -------------------------------------------------------------------

    def _hash(self, *parts: object) -> str:
        self._n += 1
        text = "|".join([str(self.seed), str(self._n), *map(str, parts)])
        return hashlib.sha256(text.encode()).hexdigest()

    def _check_up(self) -> None:
        if self.down:
            raise NodeUnavailableError(f"{self.chain}: simulated node is down")

    # -- test controls -----------------------------------------------------------------

    def stop(self) -> None:
        """The node goes away: every adapter call raises NodeUnavailableError."""
        self.down = True

    def start(self) -> None:
        """The node is back."""
        self.down = False

    def send(
        self,
        outputs: Iterable[tuple[str, int]] = (),
        logs: Iterable[SimLog] = (),
        spends: Iterable[str] | None = None,
        success: bool = True,
        rbf: bool = False,
    ) -> str:
        """Put a transaction in the mempool; returns its txid.

        ``spends`` defaults to a fresh coin nobody else spends. A conflict with a
        mempool transaction replaces it only if every conflicting one signalled RBF;
        a conflict with the best chain is refused (ValueError).
        """
        txid = self._hash("tx")
        keys = tuple(spends) if spends is not None else (f"{self._hash('coin')}:0",)
        return self._accept(SimTx(txid, keys, tuple(outputs), tuple(logs), success, rbf))

    def _accept(self, tx: SimTx) -> str:
        txid, keys = tx.txid, tx.spends
        if set(keys) & self._spent_on_best():
            raise ValueError("transaction spends a coin the best chain already spent")
        clash = [t for t in self.mempool.values() if set(t.spends) & set(keys)]
        if clash and not all(t.rbf for t in clash):
            raise ValueError("conflicts with a mempool transaction that did not signal RBF")
        for t in clash:
            del self.mempool[t.txid]
        self.txs[txid] = tx
        self.mempool[txid] = tx
        return txid

    def make_tx(
        self,
        outputs: Iterable[tuple[str, int]] = (),
        logs: Iterable[SimLog] = (),
        spends: Iterable[str] | None = None,
        success: bool = True,
    ) -> str:
        """A transaction known to the node but NOT in its mempool (for a competing branch)."""
        txid = self._hash("tx")
        keys = tuple(spends) if spends is not None else (f"{self._hash('coin')}:0",)
        self.txs[txid] = SimTx(txid, keys, tuple(outputs), tuple(logs), success)
        return txid

    def mine(self, n: int = 1) -> list[str]:
        """Mine ``n`` blocks on the tip, the first taking every valid mempool transaction."""
        out = []
        for _ in range(n):
            out.append(self.mine_on(self.best[-1], with_mempool=True))
        return out

    def mine_on(self, parent: str, txids: Iterable[str] = (), with_mempool: bool = False) -> str:
        """Mine one block on any known block (a competing branch if not the tip).

        The branch becomes the best chain once it is longer than the current one;
        blocks it disconnects give their transactions back to the mempool unless
        the new branch confirmed them or spent their coins.
        """
        p = self.blocks[parent]
        chosen = [self.txs[t] for t in txids]
        if with_mempool:
            chosen += list(self.mempool.values())
        spent = self._spent_on_branch(parent)
        ok: list[SimTx] = []
        for tx in chosen:
            if set(tx.spends) & spent or tx in ok:
                continue
            spent |= set(tx.spends)
            ok.append(tx)
        if isinstance(self.clock, ManualClock):
            self.clock.advance(BLOCK_INTERVAL_NS)
        blk = SimBlock(
            p.height + 1,
            self._hash("block", parent),
            parent,
            tuple(t.txid for t in ok),
            self.clock.now_ns(),
        )
        self.blocks[blk.hash] = blk
        if blk.height > len(self.best) - 1:
            self._set_best(blk.hash)
        return blk.hash

    def reorg(
        self, depth: int, length: int | None = None, txids: Iterable[str] = (), keep: bool = True
    ) -> list[str]:
        """Replace the top ``depth`` blocks with a longer branch of ``length`` blocks.

        ``length`` defaults to ``depth + 1``. The branch's first block holds
        ``txids``; if ``keep`` is false the disconnected transactions are dropped
        instead of going back to the mempool (they vanish from the chain's view).
        """
        if not 0 < depth < len(self.best):
            raise ValueError(f"depth must be 1..{len(self.best) - 1}")
        length = depth + 1 if length is None else length
        if length <= depth:
            raise ValueError("a reorg needs a longer branch")
        gone = [t for h in self.best[-depth:] for t in self.blocks[h].txids]
        parent = self.best[-depth - 1]
        new = [self.mine_on(parent, txids)]
        for _ in range(length - 1):
            new.append(self.mine_on(new[-1]))
        if not keep:
            for t in gone:
                self.mempool.pop(t, None)
        return new

    # -- chain state -------------------------------------------------------------------

    def _branch(self, tip: str) -> list[str]:
        out = []
        h: str | None = tip
        while h is not None and h in self.blocks:
            out.append(h)
            h = self.blocks[h].parent
        out.reverse()
        return out

    def _spent_on_branch(self, tip: str) -> set[str]:
        return {
            k for h in self._branch(tip) for t in self.blocks[h].txids for k in self.txs[t].spends
        }

    def _spent_on_best(self) -> set[str]:
        return self._spent_on_branch(self.best[-1])

    def _set_best(self, tip: str) -> None:
        old = self.best
        new = self._branch(tip)
        common = 0
        while common < min(len(old), len(new)) and old[common] == new[common]:
            common += 1
        disconnected = [t for h in old[common:] for t in self.blocks[h].txids]
        self.best = new
        confirmed = {t for h in new for t in self.blocks[h].txids}
        spent = self._spent_on_best()
        for t in confirmed:
            self.mempool.pop(t, None)
        for t in disconnected:
            tx = self.txs[t]
            if t not in confirmed and not set(tx.spends) & spent:
                self.mempool[t] = tx
        # Mempool transactions the new branch double-spent are gone.
        for t in [t for t, tx in self.mempool.items() if set(tx.spends) & spent]:
            del self.mempool[t]

    def _ref(self, blk: SimBlock) -> BlockRef:
        return BlockRef(blk.height, blk.hash, blk.parent)

    def _payments(
        self, txids: Iterable[str], addresses: Collection[str], height: int, bhash: str
    ) -> list[Payment]:
        want = {a.lower() for a in addresses}
        out: list[Payment] = []
        log_index = 0
        for t in txids:
            tx = self.txs[t]
            for vout, (addr, amount) in enumerate(tx.outputs):
                if addr.lower() in want:
                    kind, idx = (UTXO, vout) if self.model == "utxo" else (NATIVE, 0)
                    out.append(Payment(t, kind, idx, addr, amount, "", tx.success, height, bhash))
            for log in tx.logs:
                if log.to.lower() in want:
                    out.append(
                        Payment(
                            t,
                            TOKEN,
                            log_index,
                            log.to,
                            log.amount,
                            log.contract,
                            tx.success,
                            height,
                            bhash,
                        )
                    )
                log_index += 1
        return out

    def _log_moves(self, p: Payment) -> bool:
        logs = [lg for t in self.blocks[p.block_hash].txids for lg in self.txs[t].logs]
        return logs[p.index].moves

    # -- ChainAdapter ------------------------------------------------------------------

    def tip(self) -> BlockRef:
        """The best chain's tip."""
        self._check_up()
        return self._ref(self.blocks[self.best[-1]])

    def block_at(self, height: int) -> BlockRef | None:
        """The best chain's block at ``height``."""
        self._check_up()
        if not 0 <= height < len(self.best):
            return None
        return self._ref(self.blocks[self.best[height]])

    def block_by_hash(self, block_hash: str) -> BlockRef | None:
        """Any block ever mined, on the best chain or not."""
        self._check_up()
        blk = self.blocks.get(block_hash)
        return None if blk is None else self._ref(blk)

    def payments_in_block(self, block_hash: str, addresses: Collection[str]) -> list[Payment]:
        """Outputs, value transfers and logs paying ``addresses`` in one block."""
        self._check_up()
        blk = self.blocks[block_hash]
        return self._payments(blk.txids, addresses, blk.height, blk.hash)

    def mempool_payments(self, addresses: Collection[str]) -> list[Payment]:
        """Unconfirmed payments to ``addresses``."""
        self._check_up()
        return self._payments(list(self.mempool), addresses, -1, "")

    def balance(self, address: str, token: str = "") -> int:
        """Confirmed balance: unspent outputs (UTXO) or successful transfers (account)."""
        self._check_up()
        total = 0
        spent = self._spent_on_best()
        for h in self.best:
            blk = self.blocks[h]
            for p in self._payments(blk.txids, [address], blk.height, blk.hash):
                if not p.success or p.token.lower() != token.lower():
                    continue
                if p.kind == TOKEN and not self._log_moves(p):
                    continue
                if p.kind == UTXO and f"{p.txid}:{p.index}" in spent:
                    continue
                total += p.amount
        return total

    def broadcast(self, raw_tx: bytes) -> str:
        """Accept a transaction; returns its txid.

        A raw Bitcoin transaction (embit-parsable) enters the mempool with its real
        txid, inputs as conflict keys and decoded outputs (RBF per BIP125 sequence);
        a re-broadcast of a known transaction is a no-op. Other bytes are only
        recorded (their txid is their SHA-256). Conflicts raise BroadcastRejectedError.
        """
        self._check_up()
        self.broadcasts.append(raw_tx)
        if self.reject_broadcasts > 0:
            self.reject_broadcasts -= 1
            raise BroadcastRejectedError(f"{self.chain}: simulated node refused the transaction")
        tx = self._parse(raw_tx)
        if tx is None:
            return hashlib.sha256(raw_tx).hexdigest()
        if tx.txid in self.txs and (
            tx.txid in self.mempool or self.tx_status(tx.txid).state == "confirmed"
        ):
            return tx.txid
        try:
            return self._accept(tx)
        except ValueError as exc:
            raise BroadcastRejectedError(str(exc)) from exc

    def _parse(self, raw_tx: bytes) -> SimTx | None:
        from embit.script import Script
        from embit.transaction import Transaction

        from wallet.addresses import UTXO_NETWORKS

        try:
            tx = Transaction.parse(raw_tx)
            params = UTXO_NETWORKS[self.network]
            outs = []
            for o in tx.vout:
                sc: Script = o.script_pubkey
                outs.append((str(sc.address(params)), int(o.value)))
        except Exception:
            return None
        spends = tuple(f"{i.txid.hex()}:{i.vout}" for i in tx.vin)
        rbf = any(i.sequence < 0xFFFFFFFE for i in tx.vin)
        return SimTx(tx.txid().hex(), spends, tuple(outs), (), True, rbf)

    def unspent(self, address: str) -> list[tuple[str, int]]:
        """Confirmed unspent outputs of ``address`` (``"txid:vout"``, amount), no mempool spends."""
        self._check_up()
        spent = self._spent_on_best() | {k for t in self.mempool.values() for k in t.spends}
        out = []
        for h in self.best:
            for t in self.blocks[h].txids:
                for vout, (addr, amount) in enumerate(self.txs[t].outputs):
                    key = f"{t}:{vout}"
                    if addr.lower() == address.lower() and key not in spent:
                        out.append((key, amount))
        return out

    def spent_by(self, outpoint: str) -> str | None:
        """The txid on the best chain or in the mempool that spends ``outpoint`` (None: unspent)."""
        self._check_up()
        for h in self.best:
            for t in self.blocks[h].txids:
                if outpoint in self.txs[t].spends:
                    return t
        for t, tx in self.mempool.items():
            if outpoint in tx.spends:
                return t
        return None

    def sources(self, txid: str) -> list[str]:
        """The addresses whose outputs ``txid`` spends (UTXO model)."""
        self._check_up()
        out = []
        for key in self.txs[txid].spends if txid in self.txs else ():
            prev, _, vout = key.partition(":")
            if prev in self.txs and vout.isdigit() and int(vout) < len(self.txs[prev].outputs):
                out.append(self.txs[prev].outputs[int(vout)][0])
        return out

    def fee_estimate(self) -> int:
        """The configured fee rate."""
        self._check_up()
        return self.fee_rate

    def tx_status(self, txid: str) -> TxStatus:
        """Mempool, confirmed (with confirmations) or unknown."""
        self._check_up()
        if txid in self.mempool:
            return TxStatus(txid, "mempool", 0, "", self.mempool[txid].success)
        for height, h in enumerate(self.best):
            if txid in self.blocks[h].txids:
                return TxStatus(
                    txid, "confirmed", len(self.best) - height, h, self.txs[txid].success
                )
        return TxStatus(txid, "unknown")
