"""Ethereum withdrawals above the hot limit on a real anvil node against a real core:
a 2-of-3 MultiSigWallet contract (wallet/contracts/MultiSigWallet.sol, compiled by solc
from npm) pays ETH and an ERC-20 once two owners signed the request with the offline
`bursa wallet sign-psbt` command; a signer refuses above its own limits or for another
contract; a non-owner's signature is refused online; a request edited online after
signing is refused by the contract and released, its contract nonce reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from embit import ec

from tests.e2e.coreproc import REPO
from tests.wallet.conftest import ROOT, CoreHandle
from tests.wallet.nodes import Anvil, compile_contracts, word
from wallet import custody, ethmultisig
from wallet.addresses import eth_address
from wallet.eth import EthAdapter
from wallet.keys import KeyFile, write_key_file
from wallet.risk import Rules
from wallet.store import Store
from wallet.withdrawals import RequestError, Withdrawals, WithdrawChain

ETH, TOK = 2, 3
GWEI = 10**9
PASS = "owners only"
SOURCES = REPO / "wallet" / "contracts" / "MultiSigWallet.sol"
TOKENS = Path(__file__).parent / "contracts" / "Tokens.sol"
OWNERS = [ec.PrivateKey(ROOT.derive(f"m/44h/60h/21h/0/{i}").key.secret) for i in range(3)]
STRANGER = ec.PrivateKey(ROOT.derive("m/44h/60h/21h/0/9").key.secret)


def dest(i: int) -> str:
    return custody.Source(
        "eth", (ROOT.derive(f"m/44h/60h/23h/0/{i}").key.get_public_key().sec().hex(),)
    ).address()


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[Anvil]:
    n = Anvil(tmp_path_factory.mktemp("anvilms"))
    try:
        yield n
    finally:
        n.stop()


class Setup:
    """A deployed 2-of-3 contract holding ETH and tokens, a hot account, the wallet."""

    def __init__(self, node: Anvil, core: CoreHandle, tmp_path: Path, account: int) -> None:
        self.node, self.tmp = node, tmp_path
        self.owners = sorted(
            (eth_address(k.get_public_key()) for k in OWNERS), key=lambda a: int(a, 16)
        )
        ms = compile_contracts(SOURCES, tmp_path / "ms")["MultiSigWallet"]
        self.contract = node.deploy(ms, 2, 64, 3, *self.owners)
        self.token = node.deploy(compile_contracts(TOKENS, tmp_path / "tok")["Token"], 10**12)
        node.send(self.contract, 20 * 10**18)
        rcpt = node.send(self.token, data="a9059cbb" + word(self.contract) + word(10**10))
        assert int(rcpt["status"], 16) == 1
        self.hot_key = ec.PrivateKey(ROOT.derive(f"m/44h/60h/22h/0/{account}").key.secret)
        hot = custody.Source("eth", (self.hot_key.get_public_key().sec().hex(),))
        node.send(hot.address(), 5 * 10**18)
        self.adapter = EthAdapter(node.url, "eth")
        self.chain_id = self.adapter.chain_id()
        common = dict(
            network="eth", hot=hot, confirmations=2, model="account", chain_id=self.chain_id,
            multisig_contract=self.contract, multisig_owners=tuple(self.owners), contract_m=2,
        )  # fmt: skip
        eth_cfg = WithdrawChain(chain="eth", asset_id=ETH, fee=100_000, scale=GWEI,
                                hot_max_tx=10**18, hot_daily=10**19, **common)  # type: ignore[arg-type]  # fmt: skip
        tok_cfg = WithdrawChain(chain="eth-tok", asset_id=TOK, fee=10, scale=1, hot_max_tx=1000,
                                hot_daily=10**6, token=self.token, node="eth", **common)  # type: ignore[arg-type]  # fmt: skip
        assert core.funding.deposit(7000 + account, 1, ETH, 10**11, 1)[0] == 1
        assert core.funding.deposit(7100 + account, 1, TOK, 10**9, 1)[0] == 1
        self.w = Withdrawals(
            Store(str(tmp_path / "w.db")),
            {"eth": (eth_cfg, self.adapter), "eth-tok": (tok_cfg, self.adapter)},  # type: ignore[dict-item]
            core.funding,
            hot_keys={"eth": self.hot_key, "eth-tok": self.hot_key},
            rules=Rules(tier_limits={1: 10**13}, medium=10**13, large=10**13),
        )
        self.w.set_kyc(1, 1)
        for c in ("eth", "eth-tok"):
            for i in range(3):
                self.w.whitelist(1, c, dest(i), at_ns=0)

    def key_file(self, key: ec.PrivateKey, name: str, **kw: int | str) -> Path:
        path = self.tmp / f"{name}.key"
        kf = KeyFile(key, "eth", contract=kw.pop("contract", self.contract),  # type: ignore[arg-type]
                     chain_id=self.chain_id, **kw)  # type: ignore[arg-type]  # fmt: skip
        write_key_file(path, kf, PASS)
        return path

    def sign(self, key: Path, wid: int, tag: str) -> subprocess.CompletedProcess[str]:
        """The offline signer command on this withdrawal's request."""
        req = self.tmp / f"{tag}.json"
        req.write_text(self.w.signing_payload(wid))
        return subprocess.run(
            [sys.executable, "-m", "bursa", "wallet", "sign-psbt", "--key", str(key),
             "--in", str(req), "--out", str(self.tmp / f"{tag}.sig")],
            capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
            env=dict(os.environ, PYTHONPATH=str(REPO), BURSA_KEY_PASSPHRASE=PASS),
        )  # fmt: skip

    def submit(self, wid: int, tag: str) -> int:
        return self.w.add_signatures(wid, (self.tmp / f"{tag}.sig").read_text())

    def settle(self) -> None:
        for _ in range(4):
            self.w.step()
            self.node.mine(1)
        self.w.step()

    def contract_nonce(self) -> int:
        return int.from_bytes(self.adapter.call(self.contract, ethmultisig.NONCE), "big")


def test_eth_above_hot_limit_two_owners(node: Anvil, core: CoreHandle, tmp_path: Path) -> None:
    s = Setup(node, core, tmp_path, 0)
    x = s.w.request("ms-eth", 1, "eth", dest(0), 3 * GWEI)  # 3 ETH > hot_max_tx 1 ETH
    s.w.step()
    row = s.w.get(x.wid)
    assert row is not None and (row.state, row.custody) == ("awaiting_signatures", "contract")
    req = json.loads(s.w.signing_payload(x.wid))
    assert (req["destination"].lower(), req["value"], req["nonce"]) == (
        dest(0).lower(), 3 * 10**18, 0
    )  # fmt: skip
    k0 = s.key_file(OWNERS[0], "o0", max_tx=5 * 10**18, max_daily=5 * 10**18)
    k2 = s.key_file(OWNERS[2], "o2")
    low = s.key_file(OWNERS[1], "o1low", max_tx=10**18)
    other = s.key_file(OWNERS[1], "o1other", contract=dest(2))
    stranger = s.key_file(STRANGER, "stranger")
    # the signers' own checks: over its max_tx, a request for another contract
    r = s.sign(low, x.wid, "low")
    assert r.returncode == 2 and "max_tx" in r.stderr
    r = s.sign(other, x.wid, "other")
    assert r.returncode == 2 and "not this key's" in r.stderr
    # a stranger's signature is refused online; one owner is not enough
    assert s.sign(stranger, x.wid, "st").returncode == 0
    with pytest.raises(RequestError, match="not an owner"):
        s.submit(x.wid, "st")
    assert s.sign(k0, x.wid, "s0").returncode == 0, "owner 0"
    assert s.submit(x.wid, "s0") == 1
    s.settle()
    row = s.w.get(x.wid)
    assert row is not None and row.state == "awaiting_signatures" and not s.w.attempts(x.wid)
    res = s.sign(k2, x.wid, "s2")
    assert res.returncode == 0, res.stderr
    assert s.submit(x.wid, "s2") == 2
    s.settle()
    done = s.w.get(x.wid)
    assert done is not None and done.state == "committed", done
    assert s.adapter.balance(dest(0)) == 3 * 10**18
    assert s.adapter.balance(s.contract) == 17 * 10**18
    assert s.contract_nonce() == 1
    assert core.balance(1, ETH) == (10**11 - 3 * GWEI - 100_000, 0)
    assert core.conservation_ok()
    # signing the executed request again does not use owner 0's daily limit twice
    assert s.sign(k0, x.wid, "again").returncode == 0
    rep = {r["chain"]: r for r in s.w.treasury()}
    assert rep["eth"]["cold"] == 17 * 10**18


def test_erc20_above_hot_limit_and_hot_eth_share_the_nonces(
    node: Anvil, core: CoreHandle, tmp_path: Path
) -> None:
    s = Setup(node, core, tmp_path, 1)
    hot = s.w.chains["eth"][0].hot.address()
    start = s.adapter.nonce(hot)
    t = s.w.request("ms-tok", 1, "eth-tok", dest(1), 5_000)  # > hot_max_tx 1000
    e = s.w.request("hot-eth", 1, "eth", dest(1), GWEI // 10)  # 0.1 ETH, hot
    s.w.step()
    row = s.w.get(t.wid)
    assert row is not None and row.custody == "contract" and row.state == "awaiting_signatures"
    for i in (0, 1):
        k = s.key_file(OWNERS[i], f"t{i}", max_tx=10_000)
        res = s.sign(k, t.wid, f"t{i}")
        assert res.returncode == 0, res.stderr
        s.submit(t.wid, f"t{i}")
    s.settle()
    rows = [s.w.get(x.wid) for x in (t, e)]
    assert [r.state for r in rows if r] == ["committed", "committed"]
    assert s.adapter.balance(dest(1), s.token) == 5_000
    assert s.adapter.balance(s.contract, s.token) == 10**10 - 5_000
    assert s.adapter.balance(dest(1)) == 10**17
    # the hot account sent the ETH transfer and the execute() call: two nonces, no gap
    assert s.adapter.nonce(hot) == start + 2
    assert core.balance(1, TOK) == (10**9 - 5_010, 0)
    assert core.conservation_ok()


def test_request_edited_online_is_refused_by_the_contract(
    node: Anvil, core: CoreHandle, tmp_path: Path
) -> None:
    s = Setup(node, core, tmp_path, 2)
    x = s.w.request("ms-edit", 1, "eth", dest(2), 2 * GWEI)
    s.w.step()
    for i in (0, 1):
        assert s.sign(s.key_file(OWNERS[i], f"e{i}"), x.wid, f"e{i}").returncode == 0
        s.submit(x.wid, f"e{i}")
    # an attacker on the online host redirects the signed request to their address
    row = s.w.get(x.wid)
    assert row is not None
    spec = json.loads(row.psbt)
    thief = eth_address(STRANGER.get_public_key())
    spec["request"]["destination"] = thief
    s.w.store.db.execute("UPDATE withdrawals SET psbt = ? WHERE wid = ?", (json.dumps(spec), x.wid))
    s.settle()
    bad = s.w.get(x.wid)
    assert bad is not None and bad.state == "released" and "reverted" in bad.error
    assert s.adapter.balance(thief) == 0 and s.adapter.balance(dest(2)) == 0
    assert s.contract_nonce() == 0
    assert core.balance(1, ETH) == (10**11, 0)
    # the freed contract nonce is the next request's: nothing is stuck behind a gap
    y = s.w.request("ms-next", 1, "eth", dest(2), 2 * GWEI)
    s.w.step()
    assert json.loads(s.w.signing_payload(y.wid))["nonce"] == 0
    for i in (1, 2):
        assert s.sign(s.key_file(OWNERS[i], f"n{i}"), y.wid, f"n{i}").returncode == 0
        s.submit(y.wid, f"n{i}")
    s.settle()
    ok = s.w.get(y.wid)
    assert ok is not None and ok.state == "committed"
    assert s.adapter.balance(dest(2)) == 2 * 10**18 and s.contract_nonce() == 1
    assert core.conservation_ok()


def test_config_and_keygen_of_contract_owners(tmp_path: Path) -> None:
    from wallet.keys import read_key_file
    from wallet.withdraw_config import parse_chain

    hot = OWNERS[0].get_public_key().sec().hex()
    owners = [eth_address(k.get_public_key()) for k in OWNERS]
    base = {"asset_id": ETH, "network": "eth", "hot_pubkey": hot, "model": "account"}
    cfg, _ = parse_chain("eth", {**base, "multisig_contract": dest(0),
                                 "multisig_owners": owners, "multisig_m": 2})  # fmt: skip
    assert (cfg.multisig_contract, cfg.contract_m, len(cfg.multisig_owners)) == (dest(0), 2, 3)
    for bad in (
        {"multisig_contract": dest(0), "multisig_owners": owners, "multisig_m": 4},
        {"multisig_contract": dest(0), "multisig_owners": ["0x1234"], "multisig_m": 1},
        {"multisig_contract": "0xnothex", "multisig_owners": owners, "multisig_m": 2},
    ):
        with pytest.raises(ValueError):
            parse_chain("eth", {**base, **bad})
    with pytest.raises(ValueError, match="model = account"):
        parse_chain("utxo", {**base, "model": "utxo", "multisig_contract": dest(0),
                             "multisig_owners": owners, "multisig_m": 2})  # fmt: skip
    key = tmp_path / "owner.key"
    res = subprocess.run(
        [sys.executable, "-m", "bursa", "wallet", "keygen", "--key", str(key), "--network",
         "eth", "--contract", dest(0), "--chain-id", "31337", "--max-tx", "5"],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO), BURSA_KEY_PASSPHRASE=PASS),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    kf = read_key_file(key, PASS)
    assert (kf.contract, kf.chain_id, kf.max_tx) == (dest(0), 31337, 5)
    assert json.loads(res.stdout)["address"] == eth_address(kf.key.get_public_key())


def test_request_digest_signature_and_calldata() -> None:
    req = ethmultisig.request_for(1, dest(0), 7, dest(1), 10**18, "", dest(2))
    sigs = [ethmultisig.sign(req, k) for k in OWNERS]
    assert [ethmultisig.recover(req, s) for s in sigs] == [
        eth_address(k.get_public_key()) for k in OWNERS
    ]
    other = ethmultisig.request_for(1, dest(0), 8, dest(1), 10**18, "", dest(2))
    assert ethmultisig.recover(other, sigs[0]) != eth_address(OWNERS[0].get_public_key())
    assert ethmultisig.Request.from_json(req.to_json()) == req
    with pytest.raises(ValueError):
        ethmultisig.Request.from_json('{"chain_id": 1}')
    with pytest.raises(ValueError):
        ethmultisig.recover(req, "00" * 65)
    tok = ethmultisig.request_for(1, dest(0), 7, dest(1), 5_000, dest(2), dest(2))
    assert tok.payment() == (dest(2), dest(1), 5_000)
    assert req.payment() == ("", dest(1), 10**18)
    call = ethmultisig.execute_calldata(req, sigs[:2])
    assert call[:4] == ethmultisig.EXECUTE and (len(call) - 4) % 32 == 0
    # signatures land in increasing signer order whatever order they were given in
    body = call[4 + 7 * 32 : 4 + 7 * 32 + 130]
    signers = [ethmultisig.recover(req, body[i * 65 : (i + 1) * 65].hex()) for i in (0, 1)]
    assert int(signers[0], 16) < int(signers[1], 16)
