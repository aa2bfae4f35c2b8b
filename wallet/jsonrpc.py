"""A minimal JSON-RPC client over HTTP for chain nodes (Bitcoin Core family, Ethereum).

Connection trouble (refused, timeout, HTTP 401/403/503, unreadable body, a node still
warming up) raises :class:`wallet.chain.NodeUnavailableError`; an error the node
answered raises :class:`RpcError`. Numbers with a fraction are parsed as Decimal.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from typing import Any

from wallet.chain import NodeUnavailableError

RPC_IN_WARMUP = -28


class RpcError(RuntimeError):
    """The node answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"rpc error {code}: {message}")
        self.code = code


class JsonRpc:
    """A minimal JSON-RPC 1.0/2.0 client over HTTP (basic auth from the URL)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.headers = {"Content-Type": "application/json"}
        if parts.username:
            user = urllib.parse.unquote(parts.username)
            cred = f"{user}:{urllib.parse.unquote(parts.password or '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self.url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
        self.timeout_s = timeout_s
        self._id = 0

    def call(self, method: str, *params: Any) -> Any:
        """One call; node trouble raises NodeUnavailableError, an RPC error RpcError."""
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        req = urllib.request.Request(self.url, body.encode(), self.headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()  # Bitcoin Core answers RPC errors with HTTP 404/500 and a body
            if not raw or exc.code in (401, 403, 503):
                raise NodeUnavailableError(f"{self.url}: HTTP {exc.code}") from exc
        except (OSError, urllib.error.URLError) as exc:
            raise NodeUnavailableError(f"{self.url}: {exc}") from exc
        try:
            ans = json.loads(raw, parse_float=Decimal)
        except ValueError as exc:
            raise NodeUnavailableError(f"{self.url}: unreadable answer") from exc
        err = ans.get("error")
        if err:
            if int(err.get("code", 0)) == RPC_IN_WARMUP:
                raise NodeUnavailableError(f"{self.url}: {err.get('message')}")
            raise RpcError(int(err.get("code", 0)), str(err.get("message", "")))
        return ans.get("result")
