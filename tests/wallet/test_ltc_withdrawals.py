"""Withdrawals on a real litecoind regtest node against a real core: a 2-of-3 multisig
withdrawal signed by two offline `bursa wallet sign-psbt` commands and confirmed; a
hot withdrawal stuck behind empty blocks, RBF-bumped on the same inputs, paid once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from embit import ec

from tests.e2e.coreproc import REPO
from tests.wallet.conftest import ROOT, CoreHandle
from tests.wallet.nodes import Litecoind
from wallet import custody
from wallet.keys import KeyFile, write_key_file
from wallet.ltc import BitcoinAdapter
from wallet.risk import Rules
from wallet.store import Store
from wallet.withdrawals import Withdrawals, WithdrawChain

LTC = 1
NET = "ltc-regtest"
HOT = ec.PrivateKey(ROOT.derive("m/84h/1h/7h/0/0").key.secret)
COSIGNERS = [ec.PrivateKey(ROOT.derive(f"m/48h/1h/7h/2h/0/{i}").key.secret) for i in range(3)]
PASS = "correct horse"


def dest(i: int) -> str:
    pub = ROOT.derive(f"m/84h/1h/8h/0/{i}").key.get_public_key().sec().hex()
    return custody.Source(NET, (pub,)).address()


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[Litecoind]:
    n = Litecoind(tmp_path_factory.mktemp("ltcw"))
    try:
        yield n
    finally:
        n.stop()


def setup(node: Litecoind, core: CoreHandle, db: Path) -> tuple[Withdrawals, WithdrawChain]:
    cfg = WithdrawChain(
        chain="ltc",
        asset_id=LTC,
        network=NET,
        hot=custody.Source(NET, (HOT.get_public_key().sec().hex(),)),
        multisig=custody.Source(NET, tuple(k.get_public_key().sec().hex() for k in COSIGNERS), 2),
        fee=10_000,
        confirmations=2,
        hot_max_tx=20_000_000,
        hot_daily=100_000_000,
        bump_after_blocks=2,
        min_fee_rate=2,
    )
    for addr, coins in ((cfg.hot.address(), "1"), (cfg.multisig.address(), "5")):  # type: ignore[union-attr]
        node.rpc.call("sendtoaddress", addr, coins)
    node.mine(1)
    assert core.funding.deposit(77, 1, LTC, 10**9, 1)[0] == 1
    w = Withdrawals(
        Store(str(db)),
        {"ltc": (cfg, BitcoinAdapter(node.url, "ltc"))},
        core.funding,
        hot_keys={"ltc": HOT},
        rules=Rules(tier_limits={1: 10**10}, large=10**10, medium=10**10),
    )
    w.set_kyc(1, 1)
    return w, cfg


def sign_cmd(key: Path, src: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bursa", "wallet", "sign-psbt", "--key", str(key),
         "--in", str(src), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO), BURSA_KEY_PASSPHRASE=PASS),
    )  # fmt: skip


def settle(node: Litecoind, w: Withdrawals, blocks: int = 3) -> None:
    for _ in range(blocks):
        w.step()
        node.mine(1)
    w.step()


def test_multisig_2_of_3_signed_offline(node: Litecoind, core: CoreHandle, tmp_path: Path) -> None:
    w, _cfg = setup(node, core, tmp_path / "w.db")
    to = dest(0)
    w.whitelist(1, "ltc", to, at_ns=0)
    big = w.request("ms1", 1, "ltc", to, 150_000_000)  # 1.5 LTC > hot_max_tx
    w.step()
    row = w.get(big.wid)
    assert row is not None and row.state == "awaiting_signatures" and row.custody == "multisig"
    keys = []
    for i in (0, 2):
        k = tmp_path / f"cosigner{i}.key"
        write_key_file(k, KeyFile(COSIGNERS[i], NET, max_tx=200_000_000), PASS)
        keys.append(k)
    unsigned = tmp_path / "unsigned.psbt"
    unsigned.write_text(row.psbt)
    # a signer whose own limit is lower refuses, whatever the online side says
    low = tmp_path / "low.key"
    write_key_file(low, KeyFile(COSIGNERS[1], NET, max_tx=100_000_000), PASS)
    refused = sign_cmd(low, unsigned, tmp_path / "x.psbt")
    assert refused.returncode == 2 and "max_tx" in refused.stderr
    for i, k in enumerate(keys):
        out = tmp_path / f"signed{i}.psbt"
        res = sign_cmd(k, unsigned, out)
        assert res.returncode == 0, res.stderr
        w.add_signatures(big.wid, out.read_text())
    settle(node, w)
    done = w.get(big.wid)
    assert done is not None and done.state == "committed", done
    assert BitcoinAdapter(node.url, "ltc").balance(to) == 150_000_000
    assert core.balance(1, LTC) == (10**9 - 150_010_000, 0)
    assert core.conservation_ok()


def test_rbf_bump_pays_once(node: Litecoind, core: CoreHandle, tmp_path: Path) -> None:
    w, _cfg = setup(node, core, tmp_path / "w.db")
    to = dest(1)
    w.whitelist(1, "ltc", to, at_ns=0)
    x = w.request("rbf1", 1, "ltc", to, 15_000_000)
    w.step()
    first = w.attempts(x.wid)
    assert len(first) == 1, (w.get(x.wid).state, w.get(x.wid).rules)  # type: ignore[union-attr]
    miner = str(node.rpc.call("getnewaddress", "", "bech32"))
    for _ in range(2):  # empty blocks: the withdrawal is stuck in the mempool
        node.rpc.call("generateblock", miner, [])
    w.step()
    tries = w.attempts(x.wid)
    assert len(tries) == 2 and tries[1][2] > tries[0][2]
    mempool = set(node.rpc.call("getrawmempool"))
    assert tries[1][0] in mempool and tries[0][0] not in mempool
    settle(node, w)
    done = w.get(x.wid)
    assert done is not None and done.state == "committed" and done.txid == tries[1][0]
    ad = BitcoinAdapter(node.url, "ltc")
    assert ad.balance(to) == 15_000_000
    assert ad.tx_status(tries[0][0]).state == "unknown"
    assert core.balance(1, LTC) == (10**9 - 15_010_000, 0)


def test_deposit_sweep_signed_offline_confirms(
    node: Litecoind, core: CoreHandle, tmp_path: Path
) -> None:
    """The sim does not check signatures: litecoind does. Deposit coins at xpub-derived
    addresses are swept to hot by the deposit signer command holding the xprv."""
    import dataclasses

    from tests.wallet.conftest import XPUB_BIP84
    from wallet.addresses import derive_address

    w, cfg = setup(node, core, tmp_path / "w.db")
    cfg = dataclasses.replace(cfg, deposit_sweep_threshold=1_000_000, deposit_xpub=XPUB_BIP84)
    w.chains["ltc"] = (cfg, w.chains["ltc"][1])
    w.store.add_addresses(
        "ltc", [(40 + i, derive_address(XPUB_BIP84, NET, 40 + i)) for i in range(2)]
    )
    a, b = w.store.assign("ltc", 5), w.store.assign("ltc", 6)
    node.rpc.call("sendtoaddress", a, "0.2")
    node.rpc.call("sendtoaddress", b, "0.3")
    node.mine(1)
    ad = BitcoinAdapter(node.url, "ltc")
    hot_before = ad.balance(cfg.hot.address())
    w.step()
    (sw,) = w.query("custody = 'deposit-sweep'")
    account = ROOT.derive("m/84h/1h/0h")
    key = tmp_path / "deposit.key"
    kf = KeyFile(account.key, NET, xprv=account.to_base58(), sweep_to=(cfg.hot.address(),))
    write_key_file(key, kf, PASS)
    (tmp_path / "sweep.psbt").write_text(sw.psbt)
    res = sign_cmd(key, tmp_path / "sweep.psbt", tmp_path / "signed.psbt")
    assert res.returncode == 0, res.stderr
    w.add_signatures(sw.wid, (tmp_path / "signed.psbt").read_text())
    settle(node, w)
    done = w.get(sw.wid)
    assert done is not None and done.state == "committed", done
    assert ad.balance(str(a)) == 0 and ad.balance(str(b)) == 0
    assert ad.balance(cfg.hot.address()) == hot_before + done.amount
    assert done.amount > 49_000_000


def test_multisig_rbf_bump_resigned_offline_pays_once(
    node: Litecoind, core: CoreHandle, tmp_path: Path
) -> None:
    w, _cfg = setup(node, core, tmp_path / "w.db")
    to = dest(2)
    w.whitelist(1, "ltc", to, at_ns=0)
    big = w.request("msrbf", 1, "ltc", to, 150_000_000)  # multisig
    w.step()
    row = w.get(big.wid)
    assert row is not None and row.state == "awaiting_signatures"
    keys = []
    for i in (0, 1):  # each signer's daily limit fits ONE such payment
        k = tmp_path / f"bump-cosigner{i}.key"
        write_key_file(k, KeyFile(COSIGNERS[i], NET, max_tx=200_000_000, max_daily=200_000_000),
                       PASS)  # fmt: skip
        keys.append(k)

    def sign_all(text: str, tag: str) -> None:
        src = tmp_path / f"{tag}.psbt"
        src.write_text(text)
        for i, k in enumerate(keys):
            out = tmp_path / f"{tag}-{i}.psbt"
            res = sign_cmd(k, src, out)
            assert res.returncode == 0, res.stderr
            w.add_signatures(big.wid, out.read_text())

    sign_all(row.psbt, "orig")
    w.step()
    (first,) = w.attempts(big.wid)
    assert first[0] in set(node.rpc.call("getrawmempool"))
    miner = str(node.rpc.call("getnewaddress", "", "bech32"))
    for _ in range(2):  # empty blocks: stuck
        node.rpc.call("generateblock", miner, [])
    w.step()
    pending = w.pending_bump(big.wid)
    assert pending and len(w.attempts(big.wid)) == 1  # waits for the offline signers
    sign_all(pending, "bump")  # the same two signers, their ledgers already hold the original
    w.step()
    tries = w.attempts(big.wid)
    assert len(tries) == 2 and tries[1][2] > tries[0][2]
    mempool = set(node.rpc.call("getrawmempool"))
    assert tries[1][0] in mempool and tries[0][0] not in mempool  # the node accepted the RBF
    settle(node, w)
    done = w.get(big.wid)
    assert done is not None and done.state == "committed" and done.txid == tries[1][0]
    ad = BitcoinAdapter(node.url, "ltc")
    assert ad.balance(to) == 150_000_000
    assert ad.tx_status(tries[0][0]).state == "unknown"
    assert core.balance(1, LTC) == (10**9 - 150_010_000, 0)
    assert core.conservation_ok()


def test_coin_from_a_blacklisted_source_is_quarantined(
    node: Litecoind, core: CoreHandle, tmp_path: Path
) -> None:
    w, cfg = setup(node, core, tmp_path / "w.db")
    rpc = node.rpc
    tainted = str(rpc.call("getnewaddress", "", "bech32"))
    rpc.call("sendtoaddress", tainted, "3")
    node.mine(1)
    (utxo,) = [u for u in rpc.call("listunspent", 1, 9999, [tainted])]
    # spend exactly the tainted address's coin to the hot wallet (2.9999 LTC, fee 0.0001)
    raw = rpc.call(
        "createrawtransaction",
        [{"txid": utxo["txid"], "vout": utxo["vout"]}],
        [{cfg.hot.address(): "2.9999"}],
    )
    signed = rpc.call("signrawtransactionwithwallet", raw)
    txid = str(rpc.call("sendrawtransaction", signed["hex"]))
    node.mine(1)
    ad = BitcoinAdapter(node.url, "ltc")
    assert ad.sources(txid) == [tainted]
    w.blacklist("ltc", tainted)
    to = dest(3)
    w.whitelist(1, "ltc", to, at_ns=0)
    x = w.request("bl1", 1, "ltc", to, 15_000_000)  # the 3 LTC coin would be picked first
    settle(node, w)
    done = w.get(x.wid)
    assert done is not None and done.state == "committed"
    spent = {
        str(r[0])
        for r in w.store.db.execute("SELECT outpoint FROM spent_outpoints WHERE wid = ?", (x.wid,))
    }
    assert f"{txid}:0" not in spent and w.quarantined("ltc") == {f"{txid}:0"}
    assert ad.balance(to) == 15_000_000
