"""Bitcoin-family adapter: Litecoin Core, Bitcoin Core (and forks) over JSON-RPC.

One adapter for every Bitcoin Core descendant: the node decodes addresses, so the
only per-network parameter the wallet itself needs is the address encoding used to
derive deposit addresses (``network`` in the chain config: ``ltc``, ``ltc-regtest``,
``btc``, ``btc-regtest``, ...; see :mod:`wallet.addresses`). To watch Bitcoin, run
bitcoind with ``-txindex=1`` and its RPC on loopback, and configure
``kind = "ltc"``, ``network = "btc"``, ``url = "http://user:pass@127.0.0.1:8332"``.

Amounts come from the node as decimal coins; they are parsed as :class:`Decimal`
(never float) and turned into integer base units (10**8 per coin).
"""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal
from typing import Any

from wallet.chain import (
    UTXO,
    BlockRef,
    BroadcastRejectedError,
    NodeUnavailableError,
    Payment,
    TxStatus,
)
from wallet.jsonrpc import JsonRpc, RpcError

COIN = 10**8
MAX_MEMPOOL_TXS = 5000  # bound the mempool view (a flooded mempool is not scanned whole)
RPC_INVALID_PARAMETER = -8
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_VERIFY_ALREADY_IN_CHAIN = -27
SPENT_SEARCH_BLOCKS = 100


def to_units(value: Decimal | int, per_coin: int = COIN) -> int:
    """Decimal coins -> integer base units (exact; refuses sub-unit precision)."""
    units = Decimal(value) * per_coin
    if units != units.to_integral_value():
        raise ValueError(f"amount {value} has more precision than the base unit")
    return int(units)


def _addresses(spk: dict[str, Any]) -> list[str]:
    if "address" in spk:  # Bitcoin Core >= 22
        return [str(spk["address"])]
    return [str(a) for a in spk.get("addresses", [])]  # older (Litecoin 0.21)


class BitcoinAdapter:
    """:class:`wallet.chain.ChainAdapter` of a Bitcoin Core-family node (needs -txindex)."""

    def __init__(self, url: str, chain: str, timeout_s: float = 30.0) -> None:
        self.rpc = JsonRpc(url, timeout_s)
        self.chain = chain

    def _header(self, block_hash: str) -> BlockRef | None:
        try:
            h = self.rpc.call("getblockheader", block_hash)
        except RpcError as exc:
            if exc.code in (RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER):
                return None
            raise
        return BlockRef(int(h["height"]), str(h["hash"]), str(h.get("previousblockhash", "0" * 64)))

    def tip(self) -> BlockRef:
        """The best chain's tip."""
        ref = self._header(str(self.rpc.call("getbestblockhash")))
        if ref is None:
            raise NodeUnavailableError(f"{self.chain}: tip vanished while reading it")
        return ref

    def block_at(self, height: int) -> BlockRef | None:
        """The best chain's block at ``height``."""
        try:
            block_hash = str(self.rpc.call("getblockhash", height))
        except RpcError as exc:
            if exc.code == RPC_INVALID_PARAMETER:
                return None
            raise
        return self._header(block_hash)

    def block_by_hash(self, block_hash: str) -> BlockRef | None:
        """Any block the node knows."""
        return self._header(block_hash)

    def _outputs(
        self, tx: dict[str, Any], want: set[str], height: int, bhash: str
    ) -> list[Payment]:
        out = []
        for vout in tx.get("vout", []):
            for addr in _addresses(vout.get("scriptPubKey", {})):
                if addr.lower() in want:
                    out.append(
                        Payment(
                            str(tx["txid"]),
                            UTXO,
                            int(vout["n"]),
                            addr,
                            to_units(vout["value"]),
                            "",
                            True,
                            height,
                            bhash,
                        )
                    )
        return out

    def payments_in_block(self, block_hash: str, addresses: Collection[str]) -> list[Payment]:
        """Outputs paying ``addresses`` in one block."""
        want = {a.lower() for a in addresses}
        blk = self.rpc.call("getblock", block_hash, 2)
        out: list[Payment] = []
        for tx in blk["tx"]:
            out += self._outputs(tx, want, int(blk["height"]), str(blk["hash"]))
        return out

    def mempool_payments(self, addresses: Collection[str]) -> list[Payment]:
        """Unconfirmed outputs paying ``addresses`` (the first MAX_MEMPOOL_TXS transactions)."""
        want = {a.lower() for a in addresses}
        out: list[Payment] = []
        for txid in list(self.rpc.call("getrawmempool"))[:MAX_MEMPOOL_TXS]:
            try:
                tx = self.rpc.call("getrawtransaction", txid, True)
            except RpcError:
                continue  # left the mempool meanwhile
            out += self._outputs(tx, want, -1, "")
        return out

    def balance(self, address: str, token: str = "") -> int:
        """Unspent outputs of ``address`` at the tip (scantxoutset)."""
        if token:
            raise ValueError("a Bitcoin-family chain has no tokens")
        ans = self.rpc.call("scantxoutset", "start", [f"addr({address})"])
        return to_units(ans["total_amount"])

    def broadcast(self, raw_tx: bytes) -> str:
        """sendrawtransaction (a node's refusal: BroadcastRejectedError; already known: ok)."""
        try:
            return str(self.rpc.call("sendrawtransaction", raw_tx.hex()))
        except RpcError as exc:
            if exc.code == RPC_VERIFY_ALREADY_IN_CHAIN or "already" in str(exc).lower():
                from wallet.custody import txid_of

                return txid_of(raw_tx)
            raise BroadcastRejectedError(f"{self.chain}: {exc}") from exc

    def unspent(self, address: str) -> list[tuple[str, int]]:
        """Confirmed coins of ``address`` (scantxoutset) not spent in the mempool either."""
        ans = self.rpc.call("scantxoutset", "start", [f"addr({address})"])
        out = []
        for u in ans.get("unspents", []):
            if self.rpc.call("gettxout", u["txid"], int(u["vout"]), True) is None:
                continue  # spent by a mempool transaction
            out.append((f"{u['txid']}:{int(u['vout'])}", to_units(u["amount"])))
        return out

    def spent_by(self, outpoint: str) -> str | None:
        """The transaction spending a coin: searched in the mempool, then recent blocks.

        None if the coin is unspent or its own transaction is no longer on the chain;
        "?" if it is spent but the spender was not found within SPENT_SEARCH_BLOCKS.
        """
        txid, vout = outpoint.split(":")
        if self.rpc.call("gettxout", txid, int(vout), True) is not None:
            return None
        if self.tx_status(txid).state != "confirmed":
            return None

        def spends(tx: dict[str, Any]) -> bool:
            return any(
                i.get("txid") == txid and int(i.get("vout", -1)) == int(vout)
                for i in tx.get("vin", [])
            )

        for t in list(self.rpc.call("getrawmempool"))[:MAX_MEMPOOL_TXS]:
            try:
                tx = self.rpc.call("getrawtransaction", t, True)
            except RpcError:
                continue
            if spends(tx):
                return str(t)
        h = str(self.rpc.call("getbestblockhash"))
        for _ in range(SPENT_SEARCH_BLOCKS):
            blk = self.rpc.call("getblock", h, 2)
            for tx in blk["tx"]:
                if spends(tx):
                    return str(tx["txid"])
            if "previousblockhash" not in blk:
                break
            h = str(blk["previousblockhash"])
        return "?"

    def sources(self, txid: str) -> list[str]:
        """The addresses whose coins ``txid`` spends (needs -txindex for old inputs)."""
        out: list[str] = []
        for i in self.rpc.call("getrawtransaction", txid, True).get("vin", []):
            if "txid" not in i:
                continue  # a coinbase input has no source
            prev = self.rpc.call("getrawtransaction", i["txid"], True)
            out += _addresses(prev["vout"][int(i["vout"])].get("scriptPubKey", {}))
        return out

    def fee_estimate(self) -> int:
        """estimatesmartfee for 6 blocks in sat/vbyte (1 when the node has no estimate)."""
        ans = self.rpc.call("estimatesmartfee", 6)
        rate = ans.get("feerate")
        if rate is None:
            return 1
        return max(1, int(Decimal(rate) * COIN / 1000))

    def tx_status(self, txid: str) -> TxStatus:
        """Mempool, confirmed (needs -txindex for old transactions) or unknown."""
        try:
            self.rpc.call("getmempoolentry", txid)
            return TxStatus(txid, "mempool")
        except RpcError:
            pass
        try:
            tx = self.rpc.call("getrawtransaction", txid, True)
        except RpcError:
            return TxStatus(txid, "unknown")
        confs = int(tx.get("confirmations", 0))
        if confs > 0:
            return TxStatus(txid, "confirmed", confs, str(tx.get("blockhash", "")))
        return TxStatus(txid, "unknown")
