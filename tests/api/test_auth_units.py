"""Authenticator units: the signature check against :mod:`hmac` (the oracle of the
OpenSSL HMAC objects it copies per request) and :meth:`signed_key` = :meth:`signed_raw`."""

from __future__ import annotations

import hmac
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.auth import Authenticator, Caller
from api.errors import ApiError
from gateway import keys

SECRETS = {"K1": b"s1" * 32, "K2": b"another secret", "RO": b"read only"}


class _Keys:
    """The two key-store calls the authenticator makes."""

    def by_api_key(self, api_key: str) -> keys.ApiKey | None:
        if api_key not in SECRETS:
            return None
        perm = keys.PERM_READ if api_key == "RO" else keys.PERM_TRADE
        uid = 1 + sorted(SECRETS).index(api_key)
        return keys.ApiKey(uid, uid, b"", perm, (), False, keys.TYPE_HMAC, api_key)

    def hmac_secret(self, key: keys.ApiKey) -> bytes:
        return SECRETS[key.api_key]


def _auth() -> Authenticator:
    return Authenticator(_Keys(), 60_000)  # type: ignore[arg-type]


def _signed(api_key: str, extra: str = "") -> tuple[dict[str, str], str]:
    payload = f"symbol=BTCUSDT&side=BUY{extra}&timestamp={time.time_ns() // 1_000_000}"
    sig = hmac.new(SECRETS[api_key], payload.encode(), "sha256").hexdigest()
    params = dict(p.split("=", 1) for p in payload.split("&"))
    params["signature"] = sig
    return params, payload


@settings(max_examples=200, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=100),
    payloads=st.lists(st.text(max_size=300), min_size=1, max_size=4),
    upper=st.booleans(),
    flip=st.integers(min_value=0, max_value=63),
)
def test_verify_matches_hmac(secret: bytes, payloads: list[str], upper: bool, flip: int) -> None:
    """Each payload's HMAC-SHA256 (hex, either case) verifies with the cached, copied
    MAC; the same with one hex digit changed is -1022; one payload's check leaves the
    cached MAC as it was for the next."""
    auth = _auth()
    key = keys.ApiKey(1, 1, b"", keys.PERM_TRADE, (), False, keys.TYPE_HMAC, "K")
    for payload in payloads:
        sig = hmac.new(secret, payload.encode(), "sha256").hexdigest()
        auth._verify(key, secret, payload, sig.upper() if upper else sig)
        bad = sig[:flip] + ("0" if sig[flip] != "0" else "1") + sig[flip + 1 :]
        with pytest.raises(ApiError) as e:
            auth._verify(key, secret, payload, bad)
        assert e.value.code == -1022


def test_signed_key_is_signed_raw() -> None:
    """:meth:`signed_key` checks what :meth:`signed_raw` checks and returns its key."""
    auth = _auth()
    for api_key in ("K1", "K2"):
        params, payload = _signed(api_key)
        key = auth.signed_key(api_key, "127.0.0.1", params, payload, trade=True)
        caller = auth.signed_raw(api_key, "127.0.0.1", params, payload, trade=True)
        assert isinstance(caller, Caller) and caller.key == key
        assert key.api_key == api_key and caller.user_id == key.user_id
    params, payload = _signed("RO")
    for trade, code in ((True, -2015), (False, None)):
        for f in (auth.signed_key, auth.signed_raw):
            if code is None:
                f("RO", "127.0.0.1", params, payload, trade=trade)
                continue
            with pytest.raises(ApiError) as e:
                f("RO", "127.0.0.1", params, payload, trade=trade)
            assert e.value.code == code
    params, payload = _signed("K1")
    params["signature"] = _signed("K2")[0]["signature"]
    for f in (auth.signed_key, auth.signed_raw):
        with pytest.raises(ApiError) as e:
            f("K1", "127.0.0.1", params, payload, trade=True)
        assert e.value.code == -1022
        with pytest.raises(ApiError) as e:
            f("NOPE", "127.0.0.1", params, payload, trade=True)
        assert e.value.code == -2015
