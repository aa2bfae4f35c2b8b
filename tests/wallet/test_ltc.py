"""The Bitcoin-family adapter against a real litecoind regtest node: deposits to derived
bech32 addresses credited after N blocks, an RBF replacement, invalidateblock reorgs
(before the threshold: credited once after re-mining; after it: an incident)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.wallet.conftest import XPUB_BIP84
from tests.wallet.nodes import Litecoind
from wallet.config import AssetConfig, ChainConfig
from wallet.ltc import BitcoinAdapter, to_units
from wallet.scanner import ChainRuntime, Wallet
from wallet.store import Store

LTC = 1


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[Litecoind]:
    n = Litecoind(tmp_path_factory.mktemp("ltc"))
    try:
        yield n
    finally:
        n.stop()


def make(tmp_path, core, node, **kw) -> Wallet:
    tip = int(node.rpc.call("getblockcount"))
    cfg = ChainConfig(
        name="ltc",
        kind="ltc",
        network="ltc-regtest",
        xpub=XPUB_BIP84,
        url=node.url,
        assets=(AssetConfig(LTC, min_deposit=100_000),),
        start_height=tip,
        **{"pending_confirmations": 0, "credit_confirmations": 3, "pool_size": 5, **kw},
    )
    return Wallet(
        Store(str(tmp_path / "w.db")),
        [ChainRuntime(cfg, BitcoinAdapter(node.url, "ltc"))],
        core.funding,
    )


def by_txid(w: Wallet, user: int) -> dict[str, dict[str, Any]]:
    return {h["txid"]: h for h in w.history(user)}


def test_adapter_basics(node):
    ad = BitcoinAdapter(node.url, "ltc")
    tip = ad.tip()
    assert tip.height >= 101 and ad.block_at(tip.height) == tip
    assert ad.block_at(tip.height + 1) is None
    assert ad.block_by_hash("00" * 32) is None
    assert ad.fee_estimate() >= 1
    assert ad.tx_status("11" * 32).state == "unknown"
    assert to_units(Decimal("1.23456789")) == 123_456_789
    with pytest.raises(ValueError):
        to_units(Decimal("0.000000001"))
    dead = BitcoinAdapter("http://u:p@127.0.0.1:1", "x")
    from wallet.chain import NodeUnavailableError

    with pytest.raises(NodeUnavailableError):
        dead.tip()


def test_deposit_rbf_and_threshold(core, node, tmp_path):
    w = make(tmp_path, core, node)
    addr = w.deposit_address("ltc", 1)
    assert addr.startswith("rltc1q")
    small = w.deposit_address("ltc", 2)
    # replaceable=true (BIP125): then bumped, which replaces it in the mempool.
    first = str(node.rpc.call("sendtoaddress", addr, "1.5", "", "", False, True))
    w.step_all()
    assert by_txid(w, 1)[first]["status"] == "pending"
    second = str(node.rpc.call("bumpfee", first)["txid"])
    node.rpc.call("sendtoaddress", small, "0.0005")  # below the minimum
    w.step_all()
    h = by_txid(w, 1)
    assert h[first]["status"] == "orphaned" and "replaced" in h[first]["reason"]
    assert h[second]["status"] == "pending"
    node.mine(1)
    w.step_all()
    assert by_txid(w, 1)[second]["display"] == "confirming 1/3"
    node.mine(1)
    w.step_all()
    assert core.balance(1, LTC) == (0, 0)
    node.mine(1)
    w.step_all()
    assert core.balance(1, LTC) == (150_000_000, 0)
    assert by_txid(w, 1)[first]["status"] == "orphaned"
    (rej,) = w.history(2)
    assert rej["status"] == "rejected" and "minimum" in rej["reason"]
    assert core.balance(2, LTC) == (0, 0)
    node.mine(3)
    w.step_all()
    assert core.balance(1, LTC) == (150_000_000, 0)
    assert core.conservation_ok()


def test_invalidateblock_reorgs(core, node, tmp_path):
    w = make(tmp_path, core, node)
    addr = w.deposit_address("ltc", 3)
    # Before the threshold: the block goes, the tx returns to the mempool, is mined again.
    txid = str(node.rpc.call("sendtoaddress", addr, "2"))
    (blk,) = node.mine(1)
    w.step_all()
    assert by_txid(w, 3)[txid]["status"] == "confirming"
    node.rpc.call("invalidateblock", blk)
    w.step_all()
    assert by_txid(w, 3)[txid]["status"] == "pending"  # seen again in the mempool
    node.mine(3)
    w.step_all()
    assert core.balance(3, LTC) == (200_000_000, 0)
    assert w.store.counters()["ltc.reorgs"] == 1
    # After the threshold: a credited deposit's block is invalidated: an incident.
    txid2 = str(node.rpc.call("sendtoaddress", addr, "0.5"))
    (blk2,) = node.mine(1)
    node.mine(2)
    w.step_all()
    assert core.balance(3, LTC) == (250_000_000, 0)
    node.rpc.call("invalidateblock", blk2)
    w.step_all()
    assert by_txid(w, 3)[txid2]["status"] == "reversed"
    assert w.store.halted("ltc")
    assert core.balance(3, LTC) == (200_000_000, 50_000_000)
    assert core.conservation_ok()
    node.rpc.call("reconsiderblock", blk2)
