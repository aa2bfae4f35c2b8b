"""A minimal signed-request helper for the API tests (HMAC or Ed25519 keys)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import keys


class Signer:
    """Signs Binance-style requests with one key of the shared key store."""

    def __init__(self, base_url: str, key: keys.ApiKey, private: bytes) -> None:
        self.base_url = base_url
        self.key = key
        self.private = private
        self.session = requests.Session()

    def signature(self, payload: str) -> str:
        """HMAC-SHA256 hex, or Ed25519 base64 (Binance's two encodings)."""
        if self.key.key_type == keys.TYPE_HMAC:
            return hmac.new(self.private, payload.encode(), hashlib.sha256).hexdigest()
        sig = Ed25519PrivateKey.from_private_bytes(self.private).sign(payload.encode())
        return base64.b64encode(sig).decode()

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: bool = False,
        ts_ms: int | None = None,
    ) -> requests.Response:
        """A signed request; parameters in the query string or (``body``) the form body."""
        params = dict(params or {})
        params["timestamp"] = ts_ms if ts_ms is not None else int(time.time() * 1000)
        q = urllib.parse.urlencode(params)
        signed = q + "&signature=" + urllib.parse.quote(self.signature(q))
        headers = {"X-MBX-APIKEY": self.key.api_key}
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return self.session.request(method, self.base_url + path, data=signed, headers=headers)
        return self.session.request(method, self.base_url + path + "?" + signed, headers=headers)
