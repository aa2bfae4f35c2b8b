"""API keys: each login refusal has its own code; the admin CLI creates, lists, revokes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bursa import admin
from gateway import keys
from gateway.wire import codec
from gateway.wire.codes import GwReason


def login_body(
    key_id: int, priv: bytes, ts_ns: int, nonce: int, sig: bytes | None = None
) -> tuple[bytes, dict[str, int | bytes]]:
    signature = sig if sig is not None else keys.sign_login(priv, key_id, 1, ts_ns, nonce, 1)
    frame = codec.encode(
        "LOGIN", key_id=key_id, next_seq=1, ts_ns=ts_ns, nonce=nonce, flags=1, signature=signature
    )
    msg = codec.decode_frame(frame, inbound=True)
    return frame[3:], msg.values


def test_each_refusal_has_its_code(tmp_path: Path) -> None:
    store = keys.KeyStore(keys.connect(tmp_path / "g.db"))
    k, priv = store.create(7, allow_ips=("127.0.0.1",))
    now = time.time_ns()

    def check(
        body_values: tuple[bytes, dict[str, int | bytes]], ip: str = "127.0.0.1"
    ) -> GwReason | int:
        try:
            return store.verify_login(body_values[0], body_values[1], ip, now).key_id
        except keys.LoginError as e:
            return e.reason

    assert check(login_body(k.key_id, priv, now, 1)) == k.key_id
    assert check(login_body(k.key_id, priv, now, 1)) == GwReason.NONCE_REUSED
    assert check(login_body(k.key_id, priv, now, 2, sig=b"\x01" * 64)) == GwReason.BAD_SIGNATURE
    assert check(login_body(k.key_id + 99, priv, now, 3)) == GwReason.UNKNOWN_KEY
    assert check(login_body(k.key_id, priv, now - 10**12, 4)) == GwReason.STALE_TIMESTAMP
    assert check(login_body(k.key_id, priv, now, 5), ip="10.0.0.1") == GwReason.IP_NOT_ALLOWED
    # Another key's private key cannot sign for this key.
    _, other = store.create(8)
    assert check(login_body(k.key_id, other, now, 6)) == GwReason.BAD_SIGNATURE
    assert store.revoke(k.key_id) and not store.revoke(k.key_id)
    assert check(login_body(k.key_id, priv, now, 7)) == GwReason.KEY_REVOKED


def test_nonces_survive_reopen(tmp_path: Path) -> None:
    store = keys.KeyStore(keys.connect(tmp_path / "g.db"))
    k, priv = store.create(7)
    now = time.time_ns()
    body, vals = login_body(k.key_id, priv, now, 2**64 - 1)
    store.verify_login(body, vals, "127.0.0.1", now)
    store.con.close()
    store = keys.KeyStore(keys.connect(tmp_path / "g.db"))
    with pytest.raises(keys.LoginError) as e:
        store.verify_login(body, vals, "127.0.0.1", now)
    assert e.value.reason == GwReason.NONCE_REUSED


def test_admin_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "g.db")
    out = tmp_path / "mm.key"
    rc = admin.main(["apikey", "--db", db, "create", "7", "--perm", "read", "--out", str(out)])
    assert rc == 0
    created = json.loads(capsys.readouterr().out)
    key_id, priv = keys.read_key_file(out)
    assert created["key_id"] == key_id and len(priv) == 32
    assert out.stat().st_mode & 0o777 == 0o600
    assert admin.main(["apikey", "--db", db, "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["perm"] == "read" and not listed["revoked"] and priv.hex() not in listed.values()
    assert admin.main(["apikey", "--db", db, "revoke", str(key_id)]) == 0
    assert admin.main(["apikey", "--db", db, "revoke", str(key_id)]) == 1
    capsys.readouterr()
    assert admin.main(["apikey", "--db", db, "list"]) == 0
    assert json.loads(capsys.readouterr().out)["revoked"] is True
    assert admin.main(["apikey", "--db", db, "create", "0", "--out", str(out)]) == 2
