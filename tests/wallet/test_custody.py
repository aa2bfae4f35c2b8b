"""Unit and property tests of the custody pieces: risk scoring bands and rules, coin
selection and fee arithmetic, encrypted key files (wrong passphrase, tampering), the
offline signer's checks, EIP-155 signing against the EIP's own test vector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from embit import ec
from hypothesis import given
from hypothesis import strategies as st

from tests.wallet.conftest import ROOT
from wallet import custody, ethtx, risk, signer
from wallet.keys import KeyFile, read_key_file, write_key_file

NET = "btc-regtest"
KEYS = [ec.PrivateKey(ROOT.derive(f"m/48h/1h/9h/2h/0/{i}").key.secret) for i in range(4)]
DEST = custody.Source(NET, (KEYS[3].get_public_key().sec().hex(),)).address()


def facts(**kw: object) -> risk.Facts:
    base: dict[str, object] = dict(
        amount=1000, kyc_tier=1, withdrawn_24h=0, count_1h=0, blacklisted=False,
        whitelisted_ns=0, paid_before=True, last_security_change_ns=None, now_ns=10**18,
    )  # fmt: skip
    base.update(kw)
    return risk.Facts(**base)  # type: ignore[arg-type]


def test_risk_rules_and_bands() -> None:
    r = risk.Rules()
    assert risk.score(facts(), r) == (0, [])
    assert risk.decision(risk.score(facts(paid_before=False), r)[0]) == "approve"  # 15
    assert risk.score(facts(whitelisted_ns=None, paid_before=False), r)[0] == 35
    assert risk.decision(35) == "review"
    assert risk.score(facts(whitelisted_ns=10**18 - 1), r)[1] == ["whitelist_pending"]
    assert risk.score(facts(blacklisted=True), r)[0] == 100
    assert "over_tier_limit" in risk.score(facts(withdrawn_24h=r.tier_limits[1]), r)[1]
    assert "over_tier_limit" in risk.score(facts(kyc_tier=0), r)[1]
    assert risk.score(facts(count_1h=r.max_per_hour), r)[1] == ["velocity"]
    assert risk.score(facts(amount=r.large, kyc_tier=2), r)[1] == ["amount_large"]
    assert risk.score(facts(amount=r.medium), r)[1] == ["amount_medium"]
    sec = facts(last_security_change_ns=10**18 - r.security_window_ns + 1)
    assert risk.score(sec, r)[1] == ["security_change"]
    old = facts(last_security_change_ns=10**18 - r.security_window_ns)
    assert risk.score(old, r)[1] == []
    assert [risk.decision(v) for v in (0, 30, 31, 70, 71, 100)] == [
        "approve", "approve", "review", "review", "reject", "reject",
    ]  # fmt: skip


@given(
    st.integers(1, 10**12), st.integers(0, 3), st.integers(0, 10**12), st.integers(0, 50),
    st.booleans(), st.booleans(), st.booleans(), st.booleans(),
)  # fmt: skip
def test_risk_score_bounded_and_monotone(
    amount: int, tier: int, day: int, hour: int, black: bool, book: bool, paid: bool, sec: bool
) -> None:
    f = facts(amount=amount, kyc_tier=tier, withdrawn_24h=day, count_1h=hour, blacklisted=black,
              whitelisted_ns=0 if book else None, paid_before=paid,
              last_security_change_ns=10**18 if sec else None)  # fmt: skip
    value, fired = risk.score(f, risk.Rules())
    assert 0 <= value <= 100
    assert value == min(100, sum(risk.WEIGHTS[x] for x in fired))
    if black:
        assert risk.decision(value) == "reject"


def test_plan_pays_amount_fee_and_change_exactly() -> None:
    src = custody.Source(NET, (KEYS[0].get_public_key().sec().hex(),))
    coins = [("aa" * 32 + ":0", 50_000), ("bb" * 32 + ":1", 30_000)]
    p = custody.plan(src, coins, 60_000, 10)
    assert p is not None and len(p.inputs) == 2
    assert sum(v for _, v in p.inputs) == 60_000 + p.fee + p.change
    assert custody.plan(src, coins, 80_000, 10) is None
    dusty = custody.plan(src, coins, 50_000 - 1650, 10)  # change under dust goes to the fee
    assert dusty is not None and dusty.change == 0
    with pytest.raises(ValueError):
        custody.check_address("ltc1qxyz", NET)


def test_key_file_encrypted_and_tamper_evident(tmp_path: Path) -> None:
    f = tmp_path / "k.key"
    write_key_file(f, KeyFile(KEYS[0], NET, 5, 6), "pw")
    assert KEYS[0].secret.hex() not in f.read_text()
    kf = read_key_file(f, "pw")
    assert (kf.key.secret, kf.max_tx, kf.max_daily) == (KEYS[0].secret, 5, 6)
    with pytest.raises(ValueError, match="wrong passphrase"):
        read_key_file(f, "nope")
    doc = json.loads(f.read_text())
    c = bytearray(bytes.fromhex(doc["ciphertext"]))
    c[3] ^= 1
    doc["ciphertext"] = c.hex()
    f.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="tampered"):
        read_key_file(f, "pw")
    with pytest.raises(ValueError):
        write_key_file(tmp_path / "e.key", KeyFile(KEYS[0], NET), "")


def test_signer_refuses_foreign_inputs_and_counts_its_day(tmp_path: Path) -> None:
    ms = custody.Source(NET, tuple(k.get_public_key().sec().hex() for k in KEYS[:3]), 2)
    psbt = custody.build_psbt(ms, (("cc" * 32 + ":0", 1_000_000),), DEST, 400_000, 590_000)
    outsider = KeyFile(KEYS[3], NET)
    with pytest.raises(signer.SignerRefusedError, match="not a multisig of this key"):
        signer.sign(psbt.to_string(), outsider, tmp_path / "l")
    kf = KeyFile(KEYS[0], NET, max_tx=500_000, max_daily=700_000)
    ledger = tmp_path / "ledger"
    signer.sign(psbt.to_string(), kf, ledger, now_ns=10**18)
    signer.sign(psbt.to_string(), kf, ledger, now_ns=10**18)  # the same tx again: not counted twice
    other = custody.build_psbt(ms, (("dd" * 32 + ":0", 1_000_000),), DEST, 400_000, 590_000)
    with pytest.raises(signer.SignerRefusedError, match="max_daily"):
        signer.sign(other.to_string(), kf, ledger, now_ns=10**18 + 1)
    signer.sign(other.to_string(), kf, ledger, now_ns=10**18 + signer.DAY_NS)  # a day later
    with pytest.raises(signer.SignerRefusedError, match="not a PSBT"):
        signer.sign("garbage", kf, ledger)


def test_eip155_test_vector() -> None:
    # The example of EIP-155 itself: nonce 9, 20 gwei, 21000 gas, 1 ether, chain 1.
    raw = ethtx.sign_transfer(
        ec.PrivateKey(bytes.fromhex("46" * 32)), 1, 9, 20 * 10**9, "0x" + "35" * 20, 10**18
    )
    assert raw.hex() == (
        "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a7640000"
        "8025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f"
        "761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
    )
    assert ethtx.tx_hash(raw).startswith("0x") and len(ethtx.tx_hash(raw)) == 66
