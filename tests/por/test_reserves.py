"""Reserves: BIP-137 message signatures (Bitcoin Core's own test vector), the control
message bound to root + height + address, and the per-asset shortfall report."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from embit import ec
from embit.networks import NETWORKS

from por import reserves as res
from por.tree import BalanceRow, PorError, build, liabilities

REPO = Path(__file__).resolve().parents[2]
# Bitcoin Core test/functional/rpc_signmessage.py (signmessagewithprivkey).
CORE_WIF = "cUeKHd5orzT3mz8P9pxyREHfsWtVfgsfDjiZZBcjUBAaGk1BTj7N"
CORE_ADDR = "mpLQjfK79b7CCV4VMJWEWAj5Mpx8Up5zxB"
CORE_MSG = "This is just a test message"
CORE_SIG = (
    "INbVnW4e6PeRmsv2Qgu8NuopvrVjkcxob+sX8OcZG0SALhWybUjzMLPdAsXI46YZGb0KQTRii+wWIQzRpG/U+S0="
)


def _wif(n: int) -> str:
    return str(ec.PrivateKey(bytes([n]) * 32).wif(NETWORKS["regtest"]))


def test_bitcoin_core_vector():
    assert res.sign_message(CORE_WIF, CORE_MSG, kind="p2pkh", network="regtest") == (
        CORE_ADDR,
        CORE_SIG,
    )
    assert res.verify_message(CORE_ADDR, CORE_MSG, CORE_SIG, "regtest") is None
    assert res.verify_message(CORE_ADDR, CORE_MSG + ".", CORE_SIG, "regtest") is not None


@pytest.mark.parametrize("kind", ["p2pkh", "p2sh-p2wpkh", "p2wpkh"])
def test_sign_verify_each_address_kind(kind):
    addr, sig = res.sign_message(_wif(3), "m", kind=kind, network="regtest")
    assert addr == res.address_of(_wif(3), kind=kind, network="regtest")
    assert res.verify_message(addr, "m", sig, "regtest") is None
    other = res.address_of(_wif(4), kind=kind, network="regtest")
    assert "does not own" in str(res.verify_message(other, "m", sig, "regtest"))
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 1
    assert res.verify_message(addr, "m", base64.b64encode(raw).decode(), "regtest") is not None
    assert res.verify_message(addr, "m", "!!", "regtest") == "signature is not base64"
    assert "65-byte" in str(res.verify_message(addr, "m", base64.b64encode(b"x").decode(), "x"))


def _root() -> dict[str, Any]:
    rows = [BalanceRow(1, 1, 0, 70_000, 0), BalanceRow(2, 1, 0, 30_000, 500),
            BalanceRow(2, 2, 0, 9_000, 0)]  # fmt: skip
    return build(liabilities(77, rows)).root_json()


def _entry(
    root: dict[str, Any], n: int, asset: int, balance: int, height: int = 500
) -> dict[str, Any]:
    addr = res.address_of(_wif(n), network="regtest")
    msg = res.control_message(root["root"], height, addr)
    _, sig = res.sign_message(_wif(n), msg, network="regtest")
    return {"address": addr, "asset": asset, "balance": balance, "sig": sig}


def test_report_ok_and_shortfall():
    root = _root()
    entries = [_entry(root, 1, 1, 60_000), _entry(root, 2, 1, 40_500), _entry(root, 3, 2, 8_999)]
    rep = res.report(root, {"height": 500, "network": "regtest", "addresses": entries})
    want = {"liabilities": 100_500, "reserves_verified": 100_500, "reserves_unverified": 0}
    assert rep["assets"]["1"] == {**want, "shortfall": 0, "status": "OK"}
    assert rep["assets"]["2"]["status"] == "SHORTFALL" and rep["assets"]["2"]["shortfall"] == 1
    assert rep["shortfall"] is True
    assert all(a["control"] == "verified" for a in rep["addresses"])


def test_unverified_addresses_do_not_count():
    root = _root()
    stale = _entry(root, 1, 1, 100_500, height=499)  # signed for another height
    wrong = _entry(root, 2, 2, 9_000)
    wrong["address"] = res.address_of(_wif(5), network="regtest")  # not the signer's
    rep = res.report(root, {"height": 500, "network": "regtest", "addresses": [stale, wrong]})
    assert rep["assets"]["1"]["reserves_verified"] == 0
    assert rep["assets"]["1"]["reserves_unverified"] == 100_500
    assert rep["assets"]["1"]["status"] == rep["assets"]["2"]["status"] == "SHORTFALL"
    assert all(a["control"] != "verified" for a in rep["addresses"])


@pytest.mark.parametrize(
    "doc, match",
    [
        ({"addresses": []}, "height"),
        ({"height": 1, "addresses": [1]}, "not an object"),
        ({"height": 1, "addresses": [{"address": "a", "asset": 1, "balance": -1, "sig": ""}]},
         "balance"),
        ({"height": 1, "addresses": [{"address": "a", "asset": 1, "balance": 1}]}, "needs"),
    ],
)  # fmt: skip
def test_malformed_reserves_rejected(doc, match):
    with pytest.raises(PorError, match=match):
        res.report(_root(), doc)


def test_duplicate_address_rejected():
    root = _root()
    e = _entry(root, 1, 1, 5)
    with pytest.raises(PorError, match="twice"):
        res.report(root, {"height": 500, "network": "regtest", "addresses": [e, e]})


def _bursa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bursa", "por", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_cli_sign_and_reserves(tmp_path):
    root = _root()
    (tmp_path / "root.json").write_text(json.dumps(root))
    (tmp_path / "key.wif").write_text(_wif(9) + "\n")
    key, rootf = str(tmp_path / "key.wif"), str(tmp_path / "root.json")
    out = _bursa("sign", "--wif-file", key, "--root", rootf, "--height", "500", "--network",
                 "regtest")  # fmt: skip
    assert out.returncode == 0, out.stderr
    signed = json.loads(out.stdout)
    reserves: Any = {"height": 500, "network": "regtest", "addresses": [
        {"address": signed["address"], "asset": 1, "balance": 100_500, "sig": signed["sig"]},
        _entry(root, 3, 2, 9_000)]}  # fmt: skip
    (tmp_path / "reserves.json").write_text(json.dumps(reserves))
    args = ["reserves", "--root", str(tmp_path / "root.json"), "--reserves"]
    ok = _bursa(*args, str(tmp_path / "reserves.json"), "--out", str(tmp_path / "rep.json"))
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "rep.json").read_text())["shortfall"] is False
    reserves["addresses"][1]["balance"] = 8_000
    (tmp_path / "reserves.json").write_text(json.dumps(reserves))
    short = _bursa(*args, str(tmp_path / "reserves.json"))
    assert short.returncode == 1 and json.loads(short.stdout)["assets"]["2"]["shortfall"] == 1000
