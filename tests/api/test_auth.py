"""Signed requests: HMAC and Ed25519 keys, every reject code, secrets at rest."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway import keys
from gateway.wire.codes import GwReason
from tests.api.apiproc import ApiProcess
from tests.api.fixtures import api, core, key1  # noqa: F401  (fixtures)
from tests.api.signing import Signer

pytestmark = pytest.mark.timeout(300)
ORDER: dict[str, str | int] = {
    "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
    "price": "10.00", "quantity": "0.010",
}  # fmt: skip


def _signer(api: ApiProcess, key: keys.ApiKey) -> Signer:  # noqa: F811
    return Signer(api.url, key, api.secrets[key.api_key])


def test_hmac_and_ed25519_keys_trade(api: ApiProcess) -> None:  # noqa: F811
    """Both key types sign orders; DELETE with a form body is accepted."""
    for kt in (keys.TYPE_HMAC, keys.TYPE_ED25519):
        s = _signer(api, api.make_key(1, kt))
        r = s.request("POST", "/api/v3/order", ORDER, body=True)
        assert r.status_code == 200, r.text
        oid = r.json()["orderId"]
        r = s.request("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": oid}, body=True)
        assert r.status_code == 200 and r.json()["status"] == "CANCELED", r.text


def test_rejects_change_nothing(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """Each refused request gets Binance's code and leaves no order behind."""
    s = _signer(api, key1)
    now = int(time.time() * 1000)
    cases = [
        (s.request("POST", "/api/v3/order", ORDER, ts_ms=now - 6_000), 400, -1021),
        (s.request("POST", "/api/v3/order", ORDER, ts_ms=now + 5_000), 400, -1021),
        (s.request("POST", "/api/v3/order", {**ORDER, "recvWindow": 70_000}), 400, -1131),
    ]
    bad = Signer(api.url, key1, b"wrong secret")
    cases.append((bad.request("POST", "/api/v3/order", ORDER), 400, -1022))
    r = requests.post(api.url + "/api/v3/order", params={**ORDER, "timestamp": now})
    cases.append((r, 401, -2014))
    r = requests.post(api.url + "/api/v3/order", params={**ORDER, "timestamp": now},
                      headers={"X-MBX-APIKEY": "A" * 64})  # fmt: skip
    cases.append((r, 401, -2015))
    ro = api.make_key(1, perm=keys.PERM_READ)
    cases.append((_signer(api, ro).request("POST", "/api/v3/order", ORDER), 401, -2015))
    unsigned = requests.post(api.url + "/api/v3/order", params={**ORDER, "timestamp": now},
                             headers={"X-MBX-APIKEY": key1.api_key})  # fmt: skip
    cases.append((unsigned, 400, -1102))
    for r, status, code in cases:
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
        assert "X-MBX-USED-WEIGHT-1M" in r.headers
    # The read-only key may read.
    assert _signer(api, ro).request("GET", "/api/v3/openOrders").json() == []
    assert s.request("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"}).json() == []


def test_revoked_key_refused(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """A revoked key stops working (within the key cache's 1 s)."""
    s = _signer(api, key1)
    assert s.request("GET", "/api/v3/openOrders").status_code == 200
    store = keys.KeyStore(keys.connect(api.keys_db))
    assert store.revoke(key1.key_id)
    store.con.close()
    time.sleep(1.2)
    r = s.request("GET", "/api/v3/openOrders")
    assert (r.status_code, r.json()["code"]) == (401, -2015)


def test_hmac_secret_encrypted_at_rest(tmp_path: object) -> None:
    """The database holds no HMAC secret in clear; the master key file is 0600; the
    gateway refuses an HMAC key at login; the secret decrypts only under its key."""
    db = Path(str(tmp_path)) / "gw.db"
    store = keys.KeyStore(keys.connect(db))
    key, secret = store.create(5, key_type=keys.TYPE_HMAC)
    assert len(secret) == 64 and key.api_key and key.key_type == keys.TYPE_HMAC
    assert store.hmac_secret(key) == secret
    raw = db.read_bytes() + (db.parent / "gw.db-wal").read_bytes()
    assert secret not in raw
    mk = db.parent / keys.MASTER_KEY_FILE
    assert stat.S_IMODE(os.stat(mk).st_mode) == 0o600
    assert store.by_api_key(key.api_key) == key
    with pytest.raises(keys.LoginError) as e:
        store.verify_login(b"\x00" * 200, {"key_id": key.key_id}, "127.0.0.1", time.time_ns())
    assert e.value.reason == GwReason.BAD_SIGNATURE
    store.con.close()
    # Another master key cannot decrypt it.
    other = keys.KeyStore(keys.connect(db), master_key_path=db.parent / "other.key")
    with pytest.raises(ValueError):
        other.hmac_secret(key)
    other.con.close()
    # A database of the gateway before this change gets the new columns; its keys
    # stay Ed25519 keys (with no api_key string until one is created).
    old_db = db.parent / "old.db"
    con = sqlite3.connect(str(old_db))
    con.executescript(keys.SCHEMA)
    con.execute("INSERT INTO api_keys (user_id, public_key, perm, allow_ips, created_ns)"
                " VALUES (3, x'00', 'trade', '', 0)")  # fmt: skip
    con.commit()
    con.close()
    migrated = keys.KeyStore(keys.connect(old_db))
    old = migrated.get(1)
    assert old is not None and old.key_type == keys.TYPE_ED25519 and old.api_key == ""
    migrated.con.close()


def test_order_count_limit(core: Any, tmp_path: Path) -> None:  # noqa: F811
    """Past ``orders_per_10s`` new orders of a key: 429 / -1015, and nothing entered."""
    api = ApiProcess(core, tmp_path / "api", tmp_path / "logs", "--orders-per-10s", "3")  # noqa: F811
    api.start()
    try:
        s = _signer(api, api.make_key(1))
        answers = []
        for _ in range(8):  # 3 per 10 s window: a 429 comes by the 7th even across windows
            answers.append(s.request("POST", "/api/v3/order", ORDER))
            if answers[-1].status_code == 429:
                break
        assert answers[-1].status_code == 429 and answers[-1].json()["code"] == -1015
        accepted = [a for a in answers if a.status_code == 200]
        assert 3 <= len(accepted) <= 6 and len(accepted) == len(answers) - 1
        opened = s.request("GET", "/api/v3/openOrders").json()
        assert sorted(o["orderId"] for o in opened) == sorted(a.json()["orderId"] for a in accepted)
    finally:
        api.cleanup()
