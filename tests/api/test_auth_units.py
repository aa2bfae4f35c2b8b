"""Authenticator units: the signature check against :mod:`hmac` (the oracle of the
OpenSSL HMAC objects it copies per request) and :meth:`signed_key` = :meth:`signed_raw`."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

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


class _Counted(Authenticator):
    """An authenticator that counts the requests its Python check handles."""

    def __init__(self) -> None:
        super().__init__(_Keys(), 60_000)  # type: ignore[arg-type]
        self.py_calls = 0

    def signed_key_py(
        self, header: str, peer: str, params: dict[str, str], payload: str, trade: bool = False
    ) -> keys.ApiKey:
        self.py_calls += 1
        return super().signed_key_py(header, peer, params, payload, trade)


def _outcome(f: Callable[..., keys.ApiKey], *args: object) -> object:
    try:
        return f(*args)
    except ApiError as e:
        return (e.http_status, e.body())


_REQUESTS = st.lists(
    st.tuples(
        st.sampled_from(["K1", "K2", "RO", "NOPE", "", "K 1", "K" * 130]),  # header
        st.sampled_from(["K1", "K2", "RO"]),  # the secret that signs
        st.sampled_from(["127.0.0.1", "10.0.0.9"]),  # peer
        st.booleans(),  # trade
        st.sampled_from([0, -4_000, -6_000, 900, 2_000, None, "x"]),  # timestamp offset
        st.sampled_from([None, "", "5000", "100", "70000", "0", "1e3"]),  # recvWindow
        st.sampled_from(["ok", "upper", "flip", "none", "empty"]),  # signature
        st.text(max_size=20),  # extra payload
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(requests=_REQUESTS)
def test_compiled_signed_key_is_python(
    requests: list[tuple[str, str, str, bool, int | str | None, str | None, str, str]],
) -> None:
    """``signed_key`` (the compiled ``pyx.apiauth.Signer``'s: cache, HMAC, timestamp
    in C) and ``signed_key_py`` give the same key or the same refusal for every
    request, in any cache state (each request is checked twice on one
    authenticator: the first fills the cache the second reads)."""
    auth = _Counted()
    now = time.time_ns() // 1_000_000
    for header, signer, peer, trade, ts_off, rw, sig_kind, extra in requests:
        params = {"symbol": "BTCUSDT", "x": extra}
        if ts_off is not None:
            params["timestamp"] = str(now + ts_off) if isinstance(ts_off, int) else ts_off
        if rw is not None:
            params["recvWindow"] = rw
        payload = "&".join(f"{k}={v}" for k, v in params.items())
        sig = hmac.new(SECRETS[signer], payload.encode(), "sha256").hexdigest()
        if sig_kind == "upper":
            sig = sig.upper()
        elif sig_kind == "flip":
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        elif sig_kind == "empty":
            sig = ""
        if sig_kind != "none":
            params["signature"] = sig
        args = (header, peer, params, payload, trade)
        for _ in range(2):
            assert _outcome(auth.signed_key, *args) == _outcome(auth.signed_key_py, *args)


def test_compiled_signed_key_takes_the_usual_request() -> None:
    """A valid request of a cached HMAC key never reaches the Python check."""
    auth = _Counted()
    params, payload = _signed("K1")
    auth.signed_key("K1", "127.0.0.1", params, payload, trade=True)  # fills the cache
    calls = auth.py_calls
    for _ in range(3):
        params, payload = _signed("K1")
        assert auth.signed_key("K1", "127.0.0.1", params, payload, trade=True).api_key == "K1"
    assert auth.py_calls == calls
