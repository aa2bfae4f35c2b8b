"""One interface for every chain the wallet watches (simulated, Bitcoin-family, Ethereum).

The scanner (:mod:`wallet.scanner`) only talks to a :class:`ChainAdapter`; it never
knows which node answers.  Amounts are integers in the chain's base unit (satoshi,
litoshi, wei, a token's smallest unit); hashes and txids are lowercase hex strings
(Ethereum addresses are EIP-55 checksummed, compared case-insensitively).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

# Kinds of payment an adapter reports (the third part of a deposit's key).
UTXO = "utxo"  # a transaction output (index = vout)
NATIVE = "native"  # an account-model value transfer (index 0: the transaction's value)
TOKEN = "token"  # an ERC-20 Transfer log (index = the log's index in its block)


class NodeUnavailableError(RuntimeError):
    """The node did not answer (down, restarting, unreachable); retry later."""


@dataclass(frozen=True)
class BlockRef:
    """A block's place in the chain: height, own hash, parent's hash."""

    height: int
    hash: str
    parent: str


@dataclass(frozen=True)
class Payment:
    """One transfer to a watched address, as the chain reports it (not yet judged).

    ``token`` is the emitting contract for :data:`TOKEN` payments, "" otherwise.
    ``success`` is the transaction's execution status (account model: a reverted
    transaction's logs and value are reported with ``success=False`` when a node
    shows them at all). ``block_height``/``block_hash`` are -1/"" in the mempool.
    """

    txid: str
    kind: str
    index: int
    address: str
    amount: int
    token: str = ""
    success: bool = True
    block_height: int = -1
    block_hash: str = ""


@dataclass(frozen=True)
class TxStatus:
    """Where a transaction is: ``state`` is "mempool", "confirmed" or "unknown"."""

    txid: str
    state: str
    confirmations: int = 0
    block_hash: str = ""
    success: bool = True


class ChainAdapter(Protocol):
    """What the wallet needs from a node. Every method may raise :class:`NodeUnavailableError`."""

    chain: str

    def tip(self) -> BlockRef:
        """The best chain's tip."""
        ...

    def block_at(self, height: int) -> BlockRef | None:
        """The best chain's block at ``height`` (None above the tip)."""
        ...

    def block_by_hash(self, block_hash: str) -> BlockRef | None:
        """Any known block by hash (None if the node has never seen it)."""
        ...

    def payments_in_block(self, block_hash: str, addresses: Collection[str]) -> list[Payment]:
        """Transfers to ``addresses`` in one block: UTXO outputs, value transfers, ERC-20 logs."""
        ...

    def mempool_payments(self, addresses: Collection[str]) -> list[Payment]:
        """Unconfirmed transfers to ``addresses`` (an adapter without a mempool view: [])."""
        ...

    def balance(self, address: str, token: str = "") -> int:
        """Confirmed balance of ``address`` at the tip (of ``token`` if given)."""
        ...

    def broadcast(self, raw_tx: bytes) -> str:
        """Send a signed transaction; returns its txid."""
        ...

    def fee_estimate(self) -> int:
        """A fee rate for prompt inclusion (sat/vbyte or wei/gas)."""
        ...

    def tx_status(self, txid: str) -> TxStatus:
        """Where a transaction is now."""
        ...
