"""Request parameters and Binance's request signing (``SIGNED`` and ``USER_STREAM``).

A signed request names its key in the ``X-MBX-APIKEY`` header and carries
``timestamp`` (ms), optional ``recvWindow`` (ms, default 5,000, at most the configured
maximum) and ``signature``:

- HMAC keys: hex HMAC-SHA256 under the key's secret;
- Ed25519 keys: base64 Ed25519 signature with the key's private key;

over the *total params*: the raw query string followed by the raw form body, with
the ``signature`` parameter itself taken out (Binance's rule; any method, DELETE
with a form body included).  Checks, each with Binance's code: key header present
and well formed (-2014), key known, not revoked, peer IP allowed and, for trading
endpoints, a trading key (-2015, HTTP 401); ``timestamp`` within ``recvWindow`` and
not more than 1 s ahead (-1021); signature (-1022).  The user of the request is the
key's user; a client never names a user.
"""

from __future__ import annotations

import _hashlib
import base64
import binascii
import hmac
import sqlite3
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from api.errors import (
    BAD_API_KEY_FMT,
    BAD_RECV_WINDOW,
    ILLEGAL_CHARS,
    INVALID_SIGNATURE,
    INVALID_TIMESTAMP,
    MANDATORY_PARAM_EMPTY_OR_MALFORMED,
    REJECTED_MBX_KEY,
    TOO_MANY_PARAMETERS,
    ApiError,
    bad_request,
)
from gateway import keys
from pyx.apiauth import Signer
from pyx.apihttp import request_params as compiled_request_params
from pyx.apihttp import timestamp_ok

DEFAULT_RECV_WINDOW_MS = 5_000
FUTURE_TOLERANCE_MS = 1_000  # a timestamp this far ahead of the server is accepted
KEY_CACHE_TTL_S = 1.0  # a revoked key stops working within this time
MAX_PARAMS = 64
MAX_PAYLOAD = 16_384  # bytes of query + body


@dataclass(frozen=True)
class Caller:
    """An authenticated request's key and user."""

    key: keys.ApiKey

    @property
    def user_id(self) -> int:
        """The key's user: every order and balance of the request is this user's."""
        return self.key.user_id


def _missing(name: str) -> ApiError:
    return bad_request(
        MANDATORY_PARAM_EMPTY_OR_MALFORMED,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def _reject_key() -> ApiError:
    return ApiError(401, REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action.")


def parse_params(query: str, body: str) -> dict[str, str]:
    """Query and form parameters as one dict (a name given twice is refused: -1101)."""
    if len(query) + len(body) > MAX_PAYLOAD:
        raise bad_request(TOO_MANY_PARAMETERS, "Too many parameters sent for this endpoint.")
    out: dict[str, str] = {}
    for part in (query, body):
        if not part:
            continue
        pairs = _split_params(part)
        for k, v in pairs:
            if k in out:
                raise bad_request(TOO_MANY_PARAMETERS, "Duplicate values for a parameter detected.")
            out[k] = v
    if len(out) > MAX_PARAMS:
        raise bad_request(TOO_MANY_PARAMETERS, "Too many parameters sent for this endpoint.")
    return out


def _split_params(part: str) -> list[tuple[str, str]]:
    """``parse_qsl(part, keep_blank_values=True, errors="strict")``; without ``%`` or
    ``+`` there is nothing to decode and a plain split gives the same pairs, cheaper.

    Raises
    ------
    ApiError
        -1100 for undecodable escapes.
    """
    if "%" not in part and "+" not in part:
        out = []
        for item in part.split("&"):
            if item:
                k, _, v = item.partition("=")
                out.append((k, v))
        return out
    try:
        return parse_qsl(part, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise bad_request(ILLEGAL_CHARS, "Illegal characters found in a parameter.") from None


async def read_request(request: web.Request) -> tuple[dict[str, str], str]:
    """(parameters, total params string as signed) of a request."""
    query = request.rel_url.raw_query_string
    raw = await request.read() if request.can_read_body else b""
    return request_params(query, raw)


def request_params(query: str, raw: bytes) -> tuple[dict[str, str], str]:
    """(parameters, total params string as signed) of a raw query string and body
    (:func:`read_request` of an aiohttp request, :mod:`api.fasthttp` of its own):
    the compiled :func:`pyx.apihttp.request_params` for the usual request, else
    :func:`request_params_py` (percent-decoding, and every refusal)."""
    got = compiled_request_params(query, raw, MAX_PAYLOAD, MAX_PARAMS)
    if got is not None:
        return got
    return request_params_py(query, raw)


def request_params_py(query: str, raw: bytes) -> tuple[dict[str, str], str]:
    """:func:`request_params` in Python (the oracle of the compiled one)."""
    if len(raw) > MAX_PAYLOAD:
        raise bad_request(TOO_MANY_PARAMETERS, "Too many parameters sent for this endpoint.")
    try:
        body = raw.decode("ascii")
    except UnicodeDecodeError:
        raise bad_request(ILLEGAL_CHARS, "Illegal characters found in a parameter.") from None
    params = parse_params(query, body)
    return params, _strip_signature(query) + _strip_signature(body)


def _strip_signature(part: str) -> str:
    """``part`` without its ``signature=...`` item (the rest byte for byte)."""
    at = part.find("signature=")
    if at < 0:
        return part
    if (at == 0 or part[at - 1] == "&") and part.find("signature=", at + 1) < 0:
        end = part.find("&", at)
        if end < 0:  # the usual case: one signature, the last parameter
            return part[: max(at - 1, 0)]
    return "&".join(p for p in part.split("&") if not p.startswith("signature="))


class Authenticator(Signer):
    """API keys of the shared key store (cached for ``KEY_CACHE_TTL_S``) and the checks
    of the module docstring.  ``signed_key`` is the compiled
    :meth:`pyx.apiauth.Signer.signed_key` (the usual request in one C call), which
    hands everything else to :meth:`signed_key_py`, its oracle.

    ``_cache`` (api key -> (monotonic time, key or None, HMAC secret)) and ``_macs``
    (HMAC-SHA256 keyed with each cached secret: a copy per request costs half of
    ``hmac.digest``, which looks SHA-256 up in OpenSSL and keys it every time; OpenSSL's
    own object, ``_hashlib``, what ``hmac.HMAC`` wraps) live in the compiled base."""

    _cache: dict[str, tuple[float, keys.ApiKey | None, bytes]]
    _macs: dict[bytes, _hashlib.HMAC]

    def __init__(self, keystore: keys.KeyStore, recv_window_max_ms: int) -> None:
        super().__init__(recv_window_max_ms, KEY_CACHE_TTL_S, keys.TYPE_HMAC,
                         DEFAULT_RECV_WINDOW_MS, FUTURE_TOLERANCE_MS)  # fmt: skip
        self.keystore = keystore

    def lookup(self, api_key: str) -> tuple[keys.ApiKey | None, bytes]:
        """(key, decrypted HMAC secret or b"") of an ``api_key`` string, cached."""
        now = time.monotonic()
        hit = self._cache.get(api_key)
        if hit is not None and now - hit[0] < KEY_CACHE_TTL_S:
            return hit[1], hit[2]
        try:
            key = self.keystore.by_api_key(api_key)
            secret = b""
            if key is not None and key.key_type == keys.TYPE_HMAC and not key.revoked:
                secret = self.keystore.hmac_secret(key)
        except (sqlite3.Error, ValueError):
            key, secret = None, b""
        if len(self._cache) >= 10_000:
            self._cache.clear()  # bounded: unknown keys sent in bulk cannot grow it
            self._macs.clear()
        self._cache[api_key] = (now, key, secret)
        return key, secret

    def caller(self, request: web.Request, trade: bool = False) -> Caller:
        """The request's key from ``X-MBX-APIKEY`` (no signature: USER_STREAM endpoints).

        Raises
        ------
        ApiError
            -2014 missing or malformed header, -2015 unknown, revoked, IP not allowed,
            or a read-only key on a trading endpoint.
        """
        return self.caller_of(request.headers.get("X-MBX-APIKEY", ""), request.remote or "", trade)

    def caller_of(self, header: str, peer: str, trade: bool = False) -> Caller:
        """:meth:`caller` of an ``X-MBX-APIKEY`` value and a peer IP."""
        return Caller(self._key_secret(header, peer, trade)[0])

    def _key_secret(self, header: str, peer: str, trade: bool) -> tuple[keys.ApiKey, bytes]:
        """:meth:`caller_of`'s key and its HMAC secret (b"" if none)."""
        if not header or len(header) > 128 or not header.isalnum() or not header.isascii():
            raise ApiError(401, BAD_API_KEY_FMT, "API-key format invalid.")
        key, secret = self.lookup(header)
        if key is None or key.revoked:
            raise _reject_key()
        if key.allow_ips and peer not in key.allow_ips:
            raise _reject_key()
        if trade and not key.can_trade:
            raise _reject_key()
        return key, secret

    def signed(
        self, request: web.Request, params: dict[str, str], payload: str, trade: bool = False
    ) -> Caller:
        """Check a SIGNED request (module docstring); return its caller."""
        header = request.headers.get("X-MBX-APIKEY", "")
        return self.signed_raw(header, request.remote or "", params, payload, trade)

    def signed_raw(
        self, header: str, peer: str, params: dict[str, str], payload: str, trade: bool = False
    ) -> Caller:
        """:meth:`signed` of an ``X-MBX-APIKEY`` value and a peer IP."""
        return Caller(self.signed_key(header, peer, params, payload, trade))

    def signed_key_py(
        self, header: str, peer: str, params: dict[str, str], payload: str, trade: bool = False
    ) -> keys.ApiKey:
        """:meth:`signed_raw`'s key, no :class:`Caller` built: the compiled
        ``signed_key``'s oracle, and what it calls for anything but the usual request
        (a cache miss, an Ed25519 key, every refusal).  One key look-up; the usual
        timestamp checked by :func:`pyx.apihttp.timestamp_ok`, anything else by
        :meth:`check_timestamp`."""
        key, secret = self._key_secret(header, peer, trade)
        g = params.get
        if not timestamp_ok(g("timestamp"), g("recvWindow"), self.recv_window_max_ms,
                            DEFAULT_RECV_WINDOW_MS, FUTURE_TOLERANCE_MS,
                            time.time_ns() // 1_000_000):  # fmt: skip
            self.check_timestamp(params)
        sig = g("signature")
        if not sig:
            raise _missing("signature")
        self._verify(key, secret, payload, sig)
        return key

    def check_timestamp(self, params: dict[str, str]) -> None:
        """``timestamp`` within ``recvWindow`` of the server clock (-1021, -1131, -1102)."""
        ts_s = params.get("timestamp")
        if not ts_s:
            raise _missing("timestamp")
        if not ts_s.isdecimal() or len(ts_s) > 16:
            raise bad_request(ILLEGAL_CHARS, "Illegal characters found in parameter 'timestamp'.")
        rw_s = params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS))
        if not rw_s.isdecimal() or len(rw_s) > 10:
            raise bad_request(BAD_RECV_WINDOW, "recvWindow must be less than 60000")
        rw = int(rw_s)
        if rw > self.recv_window_max_ms or rw <= 0:
            raise bad_request(
                BAD_RECV_WINDOW, f"recvWindow must be less than {self.recv_window_max_ms}"
            )
        now_ms = time.time_ns() // 1_000_000
        ts = int(ts_s)
        if ts >= now_ms + FUTURE_TOLERANCE_MS or now_ms - ts > rw:
            raise bad_request(
                INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow."
            )

    def verify(self, key: keys.ApiKey, payload: str, sig: str) -> None:
        """The signature of ``payload`` by ``key`` (-1022 if it does not verify)."""
        secret = self.lookup(key.api_key)[1] if key.key_type == keys.TYPE_HMAC else b""
        self._verify(key, secret, payload, sig)

    def _verify(self, key: keys.ApiKey, secret: bytes, payload: str, sig: str) -> None:
        """:meth:`verify` with the key's HMAC secret (b"" if none) already looked up."""
        if key.key_type == keys.TYPE_HMAC:
            if not secret:
                raise _bad_signature()
            proto = self._macs.get(secret)
            if proto is None:
                proto = self._macs[secret] = _hashlib.hmac_new(secret, digestmod="sha256")
            mac = proto.copy()
            mac.update(payload.encode())
            if not hmac.compare_digest(mac.hexdigest(), sig.lower()):
                raise _bad_signature()
            return
        try:
            raw = base64.b64decode(sig, validate=True)
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw, payload.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            raise _bad_signature() from None


def _bad_signature() -> ApiError:
    return bad_request(INVALID_SIGNATURE, "Signature for this request is not valid.")
