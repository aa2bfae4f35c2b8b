"""ETH and ERC-20 withdrawals on a real anvil node against a real core: hot-signed EIP-155
transfers confirmed and committed; a refused broadcast released and its nonce reused
by the next withdrawal (no gap, none reused); a transaction from the hot account the
wallet did not sign halts withdrawals (nonce-based circuit breaker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from embit import ec

from tests.wallet.conftest import ROOT, CoreHandle
from tests.wallet.nodes import Anvil, compile_contracts, word
from wallet import custody, ethtx
from wallet.chain import BroadcastRejectedError
from wallet.eth import EthAdapter
from wallet.risk import Rules
from wallet.store import Store
from wallet.withdrawals import Withdrawals, WithdrawChain

ETH = 2
TOK = 3
GWEI = 10**9


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[Anvil]:
    n = Anvil(tmp_path_factory.mktemp("anvilw"))
    try:
        yield n
    finally:
        n.stop()


class Refusing(EthAdapter):
    """An anvil adapter whose next ``refuse`` broadcasts are refused (a node's no)."""

    refuse = 0

    def broadcast(self, raw_tx: bytes) -> str:
        if self.refuse:
            self.refuse -= 1
            raise BroadcastRejectedError("test: node refused")
        return super().broadcast(raw_tx)


def dest(i: int) -> str:
    return custody.Source(
        "eth", (ROOT.derive(f"m/44h/60h/3h/0/{i}").key.get_public_key().sec().hex(),)
    ).address()


def setup(
    node: Anvil, core: CoreHandle, db: Path, account: int
) -> tuple[Withdrawals, Refusing, ec.PrivateKey]:
    hot_key = ec.PrivateKey(ROOT.derive(f"m/44h/60h/2h/0/{account}").key.secret)
    hot = custody.Source("eth", (hot_key.get_public_key().sec().hex(),))
    node.send(hot.address(), 10 * 10**18)
    adapter = Refusing(node.url, "eth")
    cfg = WithdrawChain(
        chain="eth", asset_id=ETH, network="eth", hot=hot, fee=100_000, scale=GWEI,
        confirmations=2, hot_max_tx=5 * 10**18, hot_daily=20 * 10**18, model="account",
        chain_id=adapter.chain_id(),
    )  # fmt: skip
    assert core.funding.deposit(900 + account, 1, ETH, 10**10, 1)[0] == 1
    rules = Rules(tier_limits={1: 10**12}, medium=10**12, large=10**12)
    w = Withdrawals(
        Store(str(db)), {"eth": (cfg, adapter)}, core.funding,  # type: ignore[dict-item]
        hot_keys={"eth": hot_key}, rules=rules,
    )  # fmt: skip
    w.set_kyc(1, 1)
    for i in range(3):
        w.whitelist(1, "eth", dest(i), at_ns=0)
    return w, adapter, hot_key


def settle(node: Anvil, w: Withdrawals) -> None:
    for _ in range(4):
        w.step()
        node.mine(1)
    w.step()


def test_eth_withdrawal_and_refused_nonce_reused(
    node: Anvil, core: CoreHandle, tmp_path: Path
) -> None:
    w, adapter, _key = setup(node, core, tmp_path / "w.db", 0)
    hot = w.chains["eth"][0].hot.address()
    start = adapter.nonce(hot)
    a = w.request("e1", 1, "eth", dest(0), 5 * 10**8)  # 0.5 ETH in gwei
    settle(node, w)
    ra = w.get(a.wid)
    assert ra is not None and ra.state == "committed", ra
    assert adapter.balance(dest(0)) == 5 * 10**17
    adapter.refuse = 1
    b = w.request("e2", 1, "eth", dest(1), 10**8)
    settle(node, w)
    rb = w.get(b.wid)
    assert rb is not None and rb.state == "released" and "refused" in rb.error
    c = w.request("e3", 1, "eth", dest(1), 2 * 10**8)
    settle(node, w)
    rc = w.get(c.wid)
    assert rc is not None and rc.state == "committed", rc
    # c took b's freed nonce: the account's nonces are start, start+1 with no gap
    assert [s["nonce"] for st, _, s in w.steps(c.wid) if st == "signed"] == [start + 1]
    assert adapter.nonce(hot) == start + 2
    assert adapter.balance(dest(1)) == 2 * 10**17
    assert core.balance(1, ETH)[1] == 0
    assert core.conservation_ok()
    assert not w.halted("eth")


def test_unsigned_outflow_from_hot_account_halts(
    node: Anvil, core: CoreHandle, tmp_path: Path
) -> None:
    w, adapter, key = setup(node, core, tmp_path / "w.db", 1)
    a = w.request("t1", 1, "eth", dest(2), 10**8)
    settle(node, w)
    assert w.get(a.wid).state == "committed"  # type: ignore[union-attr]
    hot = w.chains["eth"][0].hot.address()
    # a thief with the hot key sends from the account
    raw = ethtx.sign_transfer(
        key, adapter.chain_id(), adapter.nonce(hot), adapter.fee_estimate() * 2, dest(2), 10**18
    )
    adapter.broadcast(raw)
    node.mine(1)
    w.step()
    assert w.halted("eth") and "did not sign" in str(w.halted("eth"))
    b = w.request("t2", 1, "eth", dest(2), 10**8)
    settle(node, w)
    assert w.get(b.wid).state == "approved"  # type: ignore[union-attr]


def test_erc20_and_eth_share_one_nonce_sequence(
    node: Anvil, core: CoreHandle, tmp_path: Path
) -> None:
    w, adapter, key = setup(node, core, tmp_path / "w.db", 2)
    bins = compile_contracts(Path(__file__).parent / "contracts" / "Tokens.sol", tmp_path / "sol")
    token = node.deploy(bins["Token"], 10**12)
    eth_cfg, _ = w.chains["eth"]
    hot = eth_cfg.hot.address()
    rcpt = node.send(token, data="a9059cbb" + word(hot) + word(10**9))  # 1e9 units to hot
    assert int(rcpt["status"], 16) == 1
    tok_cfg = WithdrawChain(
        chain="eth-tok", asset_id=TOK, network="eth", hot=eth_cfg.hot, fee=10, scale=1,
        confirmations=2, hot_max_tx=10**9, hot_daily=10**10, model="account",
        chain_id=eth_cfg.chain_id, token=token, node="eth",
    )  # fmt: skip
    w.chains["eth-tok"] = (tok_cfg, adapter)  # type: ignore[assignment]
    w.hot_keys["eth-tok"] = key
    assert core.funding.deposit(990, 1, TOK, 10**8, 1)[0] == 1
    for i in range(3):
        w.whitelist(1, "eth-tok", dest(i), at_ns=0)
    start = adapter.nonce(hot)
    t = w.request("tok1", 1, "eth-tok", dest(2), 12_345)
    e = w.request("eth1", 1, "eth", dest(2), 10**7)
    t2 = w.request("tok2", 1, "eth-tok", dest(1), 1_000)
    settle(node, w)
    rows = [w.get(x.wid) for x in (t, e, t2)]
    assert [r.state for r in rows if r] == ["committed"] * 3
    nonces = sorted(s["nonce"] for x in (t, e, t2) for st, _, s in w.steps(x.wid) if st == "signed")
    assert nonces == [start, start + 1, start + 2] and adapter.nonce(hot) == start + 3
    assert adapter.balance(dest(2), token) == 12_345 and adapter.balance(dest(1), token) == 1_000
    assert core.balance(1, TOK) == (10**8 - 12_345 - 1_000 - 20, 0)
    assert core.conservation_ok()
    rep = {r["chain"]: r for r in w.treasury()}
    assert rep["eth-tok"]["hot"] == 10**9 - 13_345


def test_stuck_eth_transaction_bumped_same_nonce(
    node: Anvil, core: CoreHandle, tmp_path: Path
) -> None:
    w, adapter, _key = setup(node, core, tmp_path / "w.db", 3)
    cfg = w.chains["eth"][0]
    w.chains["eth"] = (
        WithdrawChain(**{**cfg.__dict__, "bump_after_blocks": 2}),
        adapter,
    )  # type: ignore[assignment]
    hot = cfg.hot.address()
    node.rpc.call("evm_setAutomine", False)
    try:
        x = w.request("stuck", 1, "eth", dest(1), 10**8)
        w.step()
        (first,) = w.attempts(x.wid)
        # the base fee jumps above the gas price it was signed with: it cannot be mined
        node.rpc.call("anvil_setNextBlockBaseFeePerGas", hex(adapter.fee_estimate() * 20))
        for _ in range(2):
            node.mine(1)
        # anvil drops a transaction it cannot include (a real node keeps it pending):
        # either way it is stuck and, after bump_after_blocks, replaced
        assert adapter.tx_status(first[0]).state in ("mempool", "unknown")
        w.step()
        tries = w.attempts(x.wid)
        assert len(tries) == 2 and tries[1][2] > tries[0][2]
        for _ in range(3):
            node.mine(1)
            w.step()
        node.mine(1)
        w.step()
    finally:
        node.rpc.call("evm_setAutomine", True)
    done = w.get(x.wid)
    assert done is not None and done.state == "committed" and done.txid == tries[1][0]
    assert adapter.tx_status(first[0]).state == "unknown"
    assert adapter.balance(dest(1)) >= 10**17
    nonces = {s["nonce"] for st, _, s in w.steps(x.wid) if st == "signed"}
    assert len(nonces) == 1 and adapter.nonce(hot) == nonces.pop() + 1
