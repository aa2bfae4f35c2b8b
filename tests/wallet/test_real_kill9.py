"""kill -9 of the real `bursa wallet run` process at each withdrawal step on the real
nodes (litecoind regtest, anvil): after the core's hold, after signing, after the
broadcast, before the core's commit. After each kill the process restarts; every
withdrawal completes once (one signed transaction, the destination paid once), the
core's hold is committed once, and conservation holds. A 2-of-3 P2WSH withdrawal and an
Ethereum multisig (contract) withdrawal, driven through the operator commands, are
killed right after their transaction is signed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from embit import ec

from tests.wallet.conftest import ROOT, XPUB_BIP44_ETH, XPUB_BIP84, CoreHandle
from tests.wallet.nodes import Anvil, Litecoind
from tests.wallet.walletproc import WalletProcess, bursa_wallet, cli, state_of
from wallet import custody
from wallet.eth import EthAdapter
from wallet.keys import KeyFile, write_key_file
from wallet.ltc import BitcoinAdapter
from wallet.store import Store

POINTS = ("after_hold", "after_sign", "after_broadcast", "before_commit")
PASS = "kill nine"
ASSET = 1
DEPOSIT = 10**10


@pytest.fixture(scope="module")
def ltc(tmp_path_factory) -> Iterator[Litecoind]:
    n = Litecoind(tmp_path_factory.mktemp("ltck9"))
    try:
        yield n
    finally:
        n.stop()


@pytest.fixture(scope="module")
def anvil(tmp_path_factory) -> Iterator[Anvil]:
    n = Anvil(tmp_path_factory.mktemp("anvilk9"))
    try:
        yield n
    finally:
        n.stop()


def write(path: Path, core: CoreHandle, db: Path, chain: str, fault: str) -> Path:
    """The wallet config: one chain table, its withdraw table, lenient risk rules."""
    lines = [
        "[wallet]",
        f"db = {json.dumps(str(db))}",
        f"core_fund_endpoint = {json.dumps(core.fund_ep)}",
        f"core_admin_endpoint = {json.dumps(core.admin_ep)}",
        "poll_ms = 50",
        f"fault_kill_at = {json.dumps(fault)}",
        chain,
        "[wallet.risk]",
        "whitelist_delay_s = 0",
        "tier_limits = { 1 = 100000000000 }",
        "medium = 100000000000",
        "large = 100000000000",
        "max_per_hour = 100",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def ltc_chain(
    url: str, key: Path, src: custody.Source, start: int, hot: tuple[int, int], *extra: str
) -> str:
    """The ``[wallet.chains.ltc]`` and ``[wallet.withdraw.ltc]`` tables (regtest, hot key
    ``key`` of ``src``, ``hot`` = its (per-transaction, daily) limits) plus ``extra``
    lines."""
    net = "ltc-regtest"
    return "\n".join([
        "[wallet.chains.ltc]", 'kind = "ltc"', f'network = "{net}"', f'url = "{url}"',
        f'xpub = "{XPUB_BIP84}"', "credit_confirmations = 2", f"start_height = {start}",
        "pool_size = 2", f"assets = [{{ asset_id = {ASSET}, min_deposit = 1000 }}]",
        "[wallet.withdraw.ltc]", f"asset_id = {ASSET}", f'network = "{net}"',
        f'hot_pubkey = "{src.pubkeys[0]}"', f"hot_key_file = {json.dumps(str(key))}",
        "fee = 10000", "confirmations = 2", f"hot_max_tx = {hot[0]}", f"hot_daily = {hot[1]}",
        "min_fee_rate = 2", *extra,
    ])  # fmt: skip


def eth_chain(url: str, key: Path, src: custody.Source, hot: tuple[int, int], *extra: str) -> str:
    """The ``[wallet.chains.eth]`` and ``[wallet.withdraw.eth]`` tables (from the node's
    tip, hot key ``key`` of ``src``, ``hot`` = its (per-transaction, daily) limits in wei)
    plus ``extra`` lines."""
    adapter = EthAdapter(url, "eth")
    return "\n".join([
        "[wallet.chains.eth]", 'kind = "eth"', 'network = "eth"', f'url = "{url}"',
        f'xpub = "{XPUB_BIP44_ETH}"', "credit_confirmations = 2",
        f"start_height = {adapter.tip().height}", "pool_size = 2",
        f"assets = [{{ asset_id = {ASSET}, min_deposit = 1000000000, scale = 1000000000 }}]",
        "[wallet.withdraw.eth]", f"asset_id = {ASSET}", 'network = "eth"', 'model = "account"',
        f"chain_id = {adapter.chain_id()}", "scale = 1000000000",
        f'hot_pubkey = "{src.pubkeys[0]}"', f"hot_key_file = {json.dumps(str(key))}",
        "fee = 100000", "confirmations = 2", f"hot_max_tx = {hot[0]}", f"hot_daily = {hot[1]}",
        *extra,
    ])  # fmt: skip


def hot_wallet(tmp_path: Path, net: str, coin: str, index: int) -> tuple[Path, custody.Source, str]:
    """The hot key file (``m/<coin>/17h/0/<index>``), its source and the user's destination
    address (``m/<coin>/18h/0/<index>``) on ``net``."""
    hot = ec.PrivateKey(ROOT.derive(f"m/{coin}/17h/0/{index}").key.secret)
    key = tmp_path / "hot.key"
    write_key_file(key, KeyFile(hot, net), PASS)
    src = custody.Source(net, (hot.get_public_key().sec().hex(),))
    dest = ROOT.derive(f"m/{coin}/18h/0/{index}").key.get_public_key().sec().hex()
    return key, src, custody.Source(net, (dest,)).address()


def open_account(
    tmp_path: Path, core: CoreHandle, db: Path, chain: str, name: str, to: str, deposit_ref: int
) -> Callable[[str], Path]:
    """User 1 funded with ``DEPOSIT``, KYC tier 1, ``to`` whitelisted on chain ``name``;
    returns the config for a fault point ("" for none)."""

    def conf_for(point: str) -> Path:
        return write(tmp_path / f"wallet-{point or 'ok'}.toml", core, db, chain, point)

    assert core.funding.deposit(deposit_ref, 1, ASSET, DEPOSIT, 1)[0] == 1
    cli(conf_for(""), "kyc", "--user", "1", "--tier", "1")
    cli(conf_for(""), "whitelist", "--user", "1", "--chain", name, "--address", to)
    return conf_for


def run_until(
    tmp_path: Path, conf: Path, db: Path, ref: str, state: str,
    mine: Callable[[], object] = lambda: None,
) -> None:  # fmt: skip
    """Run the process normally (mining meanwhile) until withdrawal ``ref`` is in
    ``state``; then stop it (exit status 0)."""
    proc = WalletProcess(conf, tmp_path)
    proc.start()
    try:
        deadline = time.monotonic() + 120
        while state_of(db, ref) != state:
            assert time.monotonic() < deadline, f"{ref}: stuck in {state_of(db, ref)}"
            mine()
            time.sleep(0.3)
    finally:
        assert proc.stop() == 0


def sign_offline(
    tmp_path: Path, conf: Path, db: Path, ref: str, wid: int, keys: list[KeyFile]
) -> str:
    """The operator path of a withdrawal above the hot limit: the process prepares it
    (``awaiting_signatures``), `psbt` exports the request, each of ``keys`` signs it
    (`sign-psbt`), `submit-psbt` brings the signatures back.  Returns the request."""
    run_until(tmp_path, conf, db, ref, "awaiting_signatures")
    req = bursa_wallet("psbt", "--wid", str(wid), "--config", str(conf))
    assert req.returncode == 0, req.stderr
    (tmp_path / "req").write_text(req.stdout)
    for i, kf in enumerate(keys):
        key, sig = tmp_path / f"signer{i}.key", tmp_path / f"sig{i}"
        write_key_file(key, kf, PASS)
        r = bursa_wallet("sign-psbt", "--key", str(key), "--in", str(tmp_path / "req"),
                         "--out", str(sig))  # fmt: skip
        assert r.returncode == 0, r.stderr
        (sub,) = cli(conf, "submit-psbt", "--wid", str(wid), "--in", str(sig))
    assert sub["signatures"] == len(keys)
    return req.stdout


def tx_count(db: Path) -> int:
    """Signed transactions stored (one per withdrawal: restarts re-send, never re-sign)."""
    st = Store(str(db))
    try:
        return int(st.db.execute("SELECT COUNT(*) FROM withdrawal_txs").fetchone()[0])
    finally:
        st.close()


def kill_and_restart(
    tmp_path: Path,
    conf_for: Callable[[str], Path],
    db: Path,
    chain: str,
    to: str,
    amount: int,
    mine: Callable[[], object],
) -> None:
    """One withdrawal per fault point: killed there, restarted, driven to committed."""
    for point in POINTS:
        ref = f"k9-{point}"
        (row,) = cli(conf_for(""), "withdraw", "--client-ref", ref, "--user", "1", "--chain",
                     chain, "--address", to, "--amount", str(amount))  # fmt: skip
        assert row["state"] == "requested"
        kill_and_restart_one(tmp_path, conf_for, db, ref, point, mine)


def check_once(db: Path, core: CoreHandle, paid: int, amount: int, fee: int) -> None:
    st = Store(str(db))
    try:
        rows = st.db.execute("SELECT wid, state FROM withdrawals WHERE user_id = 1").fetchall()
        n_tx = st.db.execute("SELECT COUNT(*) FROM withdrawal_txs").fetchone()[0]
        commits = st.db.execute(
            "SELECT COUNT(*) FROM withdrawal_steps WHERE state = 'committed'"
        ).fetchone()[0]
    finally:
        st.close()
    assert [s for _, s in rows] == ["committed"] * len(POINTS)
    assert n_tx == len(POINTS)  # one signed transaction each: restarts re-sent, never re-signed
    assert commits == len(POINTS)  # each hold committed once
    assert paid == len(POINTS) * amount
    assert core.balance(1, ASSET) == (DEPOSIT - len(POINTS) * (amount + fee), 0)
    assert core.conservation_ok()


def test_kill9_at_each_step_on_litecoind(
    ltc: Litecoind, core: CoreHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BURSA_KEY_PASSPHRASE", PASS)
    net = "ltc-regtest"
    key, src, to = hot_wallet(tmp_path, net, "84h/1h", 0)
    for _ in range(len(POINTS)):
        ltc.rpc.call("sendtoaddress", src.address(), "0.5")
    ltc.mine(1)
    tip = int(ltc.rpc.call("getblockcount"))
    db = tmp_path / "wallet.db"
    chain = ltc_chain(ltc.url, key, src, tip, (10**8, 10**9))
    conf_for = open_account(tmp_path, core, db, chain, "ltc", to, 4242)
    kill_and_restart(tmp_path, conf_for, db, "ltc", to, 1_000_000, lambda: ltc.mine(1))
    check_once(db, core, BitcoinAdapter(ltc.url, "ltc").balance(to), 1_000_000, 10_000)


def test_kill9_at_each_step_on_anvil(
    anvil: Anvil, core: CoreHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BURSA_KEY_PASSPHRASE", PASS)
    key, src, to = hot_wallet(tmp_path, "eth", "44h/60h", 0)
    anvil.send(src.address(), 10 * 10**18)
    adapter = EthAdapter(anvil.url, "eth")
    db = tmp_path / "wallet.db"
    chain = eth_chain(anvil.url, key, src, (5 * 10**18, 50 * 10**18))
    conf_for = open_account(tmp_path, core, db, chain, "eth", to, 4343)
    start = adapter.nonce(src.address())
    kill_and_restart(tmp_path, conf_for, db, "eth", to, 10**8, lambda: anvil.mine(1))
    check_once(db, core, adapter.balance(to) // 10**9, 10**8, 100_000)
    assert adapter.nonce(src.address()) == start + len(POINTS)  # no nonce reused or skipped
    assert os.path.exists(db)


def test_kill9_contract_withdrawal_through_the_cli_on_anvil(
    anvil: Anvil, core: CoreHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ETH withdrawal above the hot limit through the real process and the operator
    commands: the request (`psbt`), two owners' `sign-psbt`, `submit-psbt`; the process
    killed right after signing the execute() call, restarted: paid once."""
    from tests.wallet.nodes import compile_contracts
    from tests.wallet.test_eth_multisig import OWNERS, SOURCES
    from wallet import ethmultisig
    from wallet.addresses import eth_address

    monkeypatch.setenv("BURSA_KEY_PASSPHRASE", PASS)
    owners = sorted((eth_address(k.get_public_key()) for k in OWNERS), key=lambda a: int(a, 16))
    ms = compile_contracts(SOURCES, tmp_path / "ms")["MultiSigWallet"]
    contract = anvil.deploy(ms, 2, 64, 3, *owners)
    anvil.send(contract, 10 * 10**18)
    key, src, to = hot_wallet(tmp_path, "eth", "44h/60h", 5)
    anvil.send(src.address(), 10**18)
    adapter = EthAdapter(anvil.url, "eth")
    db = tmp_path / "wallet.db"
    multisig = (f'multisig_contract = "{contract}"', f"multisig_owners = {json.dumps(owners)}")
    chain = eth_chain(anvil.url, key, src, (10**18, 5 * 10**18), *multisig, "multisig_m = 2")
    conf_for = open_account(tmp_path, core, db, chain, "eth", to, 4444)
    # 4 ETH: above the 1 ETH hot limit
    (row,) = cli(conf_for(""), "withdraw", "--client-ref", "big", "--user", "1", "--chain",
                 "eth", "--address", to, "--amount", str(4 * 10**9))  # fmt: skip
    owners_keys = [
        KeyFile(OWNERS[i], "eth", contract=contract, chain_id=adapter.chain_id()) for i in (0, 2)
    ]
    req = sign_offline(tmp_path, conf_for(""), db, "big", row["wid"], owners_keys)
    assert json.loads(req)["value"] == 4 * 10**18
    kill_and_restart_one(tmp_path, conf_for, db, "big", "after_sign", lambda: anvil.mine(1))
    assert adapter.balance(to) == 4 * 10**18
    assert adapter.balance(contract) == 6 * 10**18
    nonce = int.from_bytes(adapter.call(contract, ethmultisig.NONCE), "big")
    assert nonce == 1
    assert core.balance(1, ASSET) == (DEPOSIT - 4 * 10**9 - 100_000, 0)
    assert core.conservation_ok()
    assert tx_count(db) == 1


def kill_and_restart_one(
    tmp_path: Path, conf_for: Callable[[str], Path], db: Path, ref: str, point: str,
    mine: Callable[[], object],
) -> None:  # fmt: skip
    """Run with a kill at ``point`` until it dies, then normally until ``ref`` commits."""
    proc = WalletProcess(conf_for(point), tmp_path)
    proc.start(wait=False)
    deadline = time.monotonic() + 120
    try:
        while proc.proc is not None and proc.proc.poll() is None:
            assert time.monotonic() < deadline, f"no kill at {point}: {state_of(db, ref)}"
            mine()
            time.sleep(0.3)
        assert proc.wait_exit() == -signal.SIGKILL, proc.err_path.read_text()[-2000:]
    finally:
        proc.cleanup()
    run_until(tmp_path, conf_for(""), db, ref, "committed", mine)


def test_kill9_multisig_withdrawal_through_the_cli_on_litecoind(
    ltc: Litecoind, core: CoreHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2-of-3 P2WSH withdrawal through the real process and the operator commands,
    killed right after the finalized transaction is stored, restarted: paid once."""
    monkeypatch.setenv("BURSA_KEY_PASSPHRASE", PASS)
    net = "ltc-regtest"
    key, src, to = hot_wallet(tmp_path, net, "84h/1h", 7)
    cos = [ec.PrivateKey(ROOT.derive(f"m/48h/1h/17h/2h/0/{i}").key.secret) for i in range(3)]
    pubs = [k.get_public_key().sec().hex() for k in cos]
    ms = custody.Source(net, tuple(pubs), 2)
    ltc.rpc.call("sendtoaddress", ms.address(), "2")
    ltc.mine(1)
    db = tmp_path / "wallet.db"
    start = int(ltc.rpc.call("getblockcount"))
    chain = ltc_chain(ltc.url, key, src, start, (10**7, 10**8),
                      f"multisig_pubkeys = {json.dumps(pubs)}", "multisig_m = 2")  # fmt: skip
    conf_for = open_account(tmp_path, core, db, chain, "ltc", to, 4545)
    (row,) = cli(conf_for(""), "withdraw", "--client-ref", "ms", "--user", "1", "--chain",
                 "ltc", "--address", to, "--amount", "50000000")  # fmt: skip
    cosigners = [KeyFile(cos[i], net, max_tx=100_000_000) for i in (1, 2)]
    sign_offline(tmp_path, conf_for(""), db, "ms", row["wid"], cosigners)
    kill_and_restart_one(tmp_path, conf_for, db, "ms", "after_sign", lambda: ltc.mine(1))
    assert BitcoinAdapter(ltc.url, "ltc").balance(to) == 50_000_000
    assert core.balance(1, ASSET) == (DEPOSIT - 50_010_000, 0)
    assert core.conservation_ok()
    assert tx_count(db) == 1
