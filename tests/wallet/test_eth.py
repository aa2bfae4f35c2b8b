"""The Ethereum adapter against a real anvil node: ETH and ERC-20 deposits to derived
BIP44 addresses, a token we do not list, a token whose transfer() returns false,
a reverted transaction's logs, an internal transfer from a reverted call, and
reorgs (evm_snapshot / evm_revert) before and after the credit threshold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.wallet.conftest import XPUB_BIP44_ETH
from tests.wallet.nodes import Anvil, compile_contracts, word
from wallet.addresses import keccak256
from wallet.config import AssetConfig, ChainConfig
from wallet.eth import EthAdapter
from wallet.scanner import ChainRuntime, Wallet
from wallet.store import Store

ETH, TOK, LIAR = 1, 2, 3
GWEI = 10**9
TRANSFER = keccak256(b"transfer(address,uint256)")[:4].hex()
LOG_THEN_REVERT = keccak256(b"logThenRevert(address,uint256)")[:4].hex()
FORWARD_THEN_REVERT = keccak256(b"forwardThenRevert(address)")[:4].hex()


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Iterator[tuple[Anvil, dict[str, str]]]:
    work = tmp_path_factory.mktemp("anvil")
    node = Anvil(work)
    try:
        bins = compile_contracts(Path(__file__).parent / "contracts" / "Tokens.sol", work / "sol")
        addrs = {
            "token": node.deploy(bins["Token"], 10**12),
            "fake": node.deploy(bins["Token"], 10**12),
            "liar": node.deploy(bins["FalseToken"]),
            "reverter": node.deploy(bins["Reverter"]),
        }
        yield node, addrs
    finally:
        node.stop()


def make(tmp_path, core, node: Anvil, addrs: dict[str, str]) -> Wallet:
    tip = int(node.rpc.call("eth_blockNumber"), 16)
    cfg = ChainConfig(
        name="eth",
        kind="eth",
        network="eth",
        xpub=XPUB_BIP44_ETH,
        url=node.url,
        assets=(
            AssetConfig(ETH, min_deposit=10**15, scale=GWEI),
            AssetConfig(TOK, token=addrs["token"], min_deposit=100),
            AssetConfig(LIAR, token=addrs["liar"], min_deposit=100),
        ),
        pending_confirmations=1,
        credit_confirmations=4,
        pool_size=5,
        start_height=tip + 1,
    )
    return Wallet(
        Store(str(tmp_path / "w.db")),
        [ChainRuntime(cfg, EthAdapter(node.url, "eth"))],
        core.funding,
    )


def mine_and_scan(node: Anvil, w: Wallet, n: int) -> None:
    for _ in range(n):
        node.mine()
        w.step_all()


def rows(w: Wallet, user: int) -> list[tuple[str, str, str]]:
    return [(h["kind"], h["status"], h["reason"].split(" ")[0]) for h in w.history(user)]


def test_eth_token_and_adversarial_deposits(core, chain, tmp_path):
    node, addrs = chain
    w = make(tmp_path, core, node, addrs)
    u1, u2 = w.deposit_address("eth", 1), w.deposit_address("eth", 2)
    r = node.send(u1, value=2 * 10**18 + 5)  # 5 wei below a gwei: not credited
    assert int(r["status"], 16) == 1
    node.send(addrs["token"], data=TRANSFER + word(u1) + word(5_000))
    node.send(addrs["fake"], data=TRANSFER + word(u1) + word(10**9))
    node.send(addrs["liar"], data=TRANSFER + word(u2) + word(9_999))
    bad = node.send(addrs["reverter"], data=LOG_THEN_REVERT + word(u2) + word(777))
    assert int(bad["status"], 16) == 0 and bad["logs"] == []
    fwd = node.send(addrs["reverter"], value=10**18, data=FORWARD_THEN_REVERT + word(u2))
    assert int(fwd["status"], 16) == 0
    mine_and_scan(node, w, 5)
    assert sorted(rows(w, 1)) == [
        ("native", "credited", ""),
        ("token", "credited", ""),
        ("token", "rejected", "unknown"),
    ]
    assert core.balance(1, ETH) == (2 * 10**9, 0)
    assert core.balance(1, TOK) == (5_000, 0)
    assert core.balance(2, LIAR) == (0, 0)
    assert core.balance(2, ETH) == (0, 0)
    assert rows(w, 2) == [("token", "rejected", "on-chain")]  # the lying transfer
    assert EthAdapter(node.url, "eth").balance(u2) == 0  # the reverted forward moved nothing
    assert core.conservation_ok()


def test_reorgs_before_and_after_the_threshold(core, chain, tmp_path):
    node, addrs = chain
    w = make(tmp_path, core, node, addrs)
    u3 = w.deposit_address("eth", 3)
    # Before the threshold: the deposit vanishes, never credited.
    snap = node.rpc.call("evm_snapshot")
    node.send(addrs["token"], data=TRANSFER + word(u3) + word(1_000))
    mine_and_scan(node, w, 1)
    assert [h["status"] for h in w.history(3)] == ["confirming"]
    assert node.rpc.call("evm_revert", snap) is True
    mine_and_scan(node, w, 6)
    assert [h["status"] for h in w.history(3)] == ["orphaned"]
    assert core.balance(3, TOK) == (0, 0)
    # After the threshold: credited, then reorged away: an incident, the amount held.
    snap = node.rpc.call("evm_snapshot")
    node.send(addrs["token"], data=TRANSFER + word(u3) + word(2_000))
    mine_and_scan(node, w, 4)
    assert core.balance(3, TOK) == (2_000, 0)
    assert node.rpc.call("evm_revert", snap) is True
    mine_and_scan(node, w, 6)
    statuses = sorted(h["status"] for h in w.history(3))
    assert statuses == ["orphaned", "reversed"]
    assert w.store.halted("eth")
    assert core.balance(3, TOK) == (0, 2_000)
    assert core.conservation_ok()


def test_adapter_basics(chain):
    node, addrs = chain
    ad = EthAdapter(node.url, "eth")
    tip = ad.tip()
    assert ad.block_at(tip.height) == tip and ad.block_at(tip.height + 5) is None
    assert ad.block_by_hash(tip.hash) == tip
    assert ad.fee_estimate() > 0
    r: dict[str, Any] = node.send(node.accounts[1], value=1)
    st = ad.tx_status(r["transactionHash"])
    assert st.state == "confirmed" and st.confirmations == 1 and st.success
    assert ad.tx_status("0x" + "ab" * 32).state == "unknown"
    assert ad.balance(node.accounts[0], addrs["token"]) > 0
