"""Ethereum adapter (ETH and ERC-20) over the standard JSON-RPC of any node (geth, anvil...).

* ETH deposits: top-level transactions whose ``to`` is a deposit address, with a
  non-zero value; ``success`` is the receipt's status (a reverted transaction
  moves no value). Value sent by a contract's internal call is not seen here
  (part 1 does not trace); it stays on the address, uncredited (docs/wallet.md).
* Token deposits: every ERC-20 ``Transfer(address,address,uint256)`` log of the
  block whose ``to`` is a deposit address, from ANY contract (the scanner rejects
  contracts it is not configured for, with the reason). ERC-721 transfers (4
  topics) and logs flagged ``removed`` are ignored; each log's ``success`` comes
  from its transaction's receipt.
* No mempool view: ``pending_confirmations`` should be >= 1 for this adapter.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from wallet.addresses import keccak256, to_checksum_address
from wallet.chain import (
    NATIVE,
    TOKEN,
    BlockRef,
    BroadcastRejectedError,
    NodeUnavailableError,
    Payment,
    TxStatus,
)
from wallet.jsonrpc import JsonRpc, RpcError

TRANSFER_TOPIC = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
BALANCE_OF = keccak256(b"balanceOf(address)")[:4].hex()


def _int(x: Any) -> int:
    return int(str(x), 16)


def _topic_address(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


class EthAdapter:
    """:class:`wallet.chain.ChainAdapter` of an Ethereum JSON-RPC node."""

    def __init__(self, url: str, chain: str, timeout_s: float = 30.0) -> None:
        self.rpc = JsonRpc(url, timeout_s)
        self.chain = chain

    @staticmethod
    def _ref(blk: dict[str, Any] | None) -> BlockRef | None:
        if blk is None:
            return None
        return BlockRef(_int(blk["number"]), str(blk["hash"]), str(blk["parentHash"]))

    def tip(self) -> BlockRef:
        """The latest block."""
        ref = self._ref(self.rpc.call("eth_getBlockByNumber", "latest", False))
        if ref is None:
            raise NodeUnavailableError(f"{self.chain}: no latest block")
        return ref

    def block_at(self, height: int) -> BlockRef | None:
        """The canonical block at ``height``."""
        return self._ref(self.rpc.call("eth_getBlockByNumber", hex(height), False))

    def block_by_hash(self, block_hash: str) -> BlockRef | None:
        """A block by hash."""
        return self._ref(self.rpc.call("eth_getBlockByHash", block_hash, False))

    def _success(self, txid: str, cache: dict[str, bool]) -> bool:
        if txid not in cache:
            rcpt = self.rpc.call("eth_getTransactionReceipt", txid)
            cache[txid] = rcpt is not None and _int(rcpt.get("status", "0x0")) == 1
        return cache[txid]

    def payments_in_block(self, block_hash: str, addresses: Collection[str]) -> list[Payment]:
        """ETH value transfers and ERC-20 Transfer logs to ``addresses`` in one block."""
        want = {a.lower() for a in addresses}
        blk = self.rpc.call("eth_getBlockByHash", block_hash, True)
        if blk is None:
            return []
        height, bhash = _int(blk["number"]), str(blk["hash"])
        receipts: dict[str, bool] = {}
        out: list[Payment] = []
        for tx in blk["transactions"]:
            to = tx.get("to")
            value = _int(tx.get("value", "0x0"))
            if to and to.lower() in want and value > 0:
                txid = str(tx["hash"])
                out.append(
                    Payment(
                        txid,
                        NATIVE,
                        0,
                        to_checksum_address(to),
                        value,
                        "",
                        self._success(txid, receipts),
                        height,
                        bhash,
                    )
                )
        logs = self.rpc.call("eth_getLogs", {"blockHash": block_hash, "topics": [TRANSFER_TOPIC]})
        for lg in logs:
            topics = lg.get("topics", [])
            data = str(lg.get("data", "0x"))
            if lg.get("removed") or len(topics) != 3 or len(data) != 66:
                continue
            to = _topic_address(topics[2])
            if to.lower() not in want:
                continue
            txid = str(lg["transactionHash"])
            out.append(
                Payment(
                    txid,
                    TOKEN,
                    _int(lg["logIndex"]),
                    to,
                    int(data, 16),
                    to_checksum_address(str(lg["address"])),
                    self._success(txid, receipts),
                    height,
                    bhash,
                )
            )
        return out

    def mempool_payments(self, addresses: Collection[str]) -> list[Payment]:
        """Not provided for Ethereum in part 1 (see the module doc)."""
        return []

    def balance(self, address: str, token: str = "") -> int:
        """ETH (wei) or a token's balance of ``address`` at the latest block."""
        if not token:
            return _int(self.rpc.call("eth_getBalance", address, "latest"))
        data = "0x" + BALANCE_OF + address.lower().removeprefix("0x").rjust(64, "0")
        ans = str(self.rpc.call("eth_call", {"to": token, "data": data}, "latest"))
        return int(ans, 16) if ans not in ("0x", "") else 0

    def broadcast(self, raw_tx: bytes) -> str:
        """eth_sendRawTransaction (a refusal: BroadcastRejectedError; already known: ok)."""
        from wallet.ethtx import tx_hash

        try:
            return str(self.rpc.call("eth_sendRawTransaction", "0x" + raw_tx.hex()))
        except RpcError as exc:
            if "already" in str(exc).lower() or "known" in str(exc).lower():
                return tx_hash(raw_tx)
            raise BroadcastRejectedError(f"{self.chain}: {exc}") from exc

    def call(self, to: str, data: bytes) -> bytes:
        """eth_call at the latest block: a view function's raw answer."""
        ans = str(self.rpc.call("eth_call", {"to": to, "data": "0x" + data.hex()}, "latest"))
        return bytes.fromhex(ans.removeprefix("0x"))

    def nonce(self, address: str) -> int:
        """The account's confirmed transaction count (its next nonce on chain)."""
        return _int(self.rpc.call("eth_getTransactionCount", address, "latest"))

    def chain_id(self) -> int:
        """eth_chainId."""
        return _int(self.rpc.call("eth_chainId"))

    def fee_estimate(self) -> int:
        """eth_gasPrice (wei per gas)."""
        return _int(self.rpc.call("eth_gasPrice"))

    def tx_status(self, txid: str) -> TxStatus:
        """Confirmed (with the receipt's status), pending, or unknown."""
        rcpt = self.rpc.call("eth_getTransactionReceipt", txid)
        if rcpt is not None and rcpt.get("blockNumber"):
            tip = self.tip().height
            return TxStatus(
                txid,
                "confirmed",
                tip - _int(rcpt["blockNumber"]) + 1,
                str(rcpt["blockHash"]),
                _int(rcpt.get("status", "0x0")) == 1,
            )
        if self.rpc.call("eth_getTransactionByHash", txid) is not None:
            return TxStatus(txid, "mempool")
        return TxStatus(txid, "unknown")
