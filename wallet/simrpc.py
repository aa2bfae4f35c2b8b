"""Serve a :class:`wallet.simchain.SimChain` over HTTP JSON so a `bursa wallet` process
(or anything else) can watch it: :class:`SimServer` and its client :class:`SimRpcAdapter`.

The test (or demo) that owns the simulated chain keeps driving it in-process
(send, mine, reorg, stop/start) while the wallet process reads it through the
adapter, exactly as it would read a real node. Loopback only.

``python -m wallet.simrpc --seed 1 --block-ms 2000`` serves a chain that mines a
block every 2 s (a demo node); it prints one JSON ready line with its URL.  With
``--state FILE`` the chain is kept in that file (written after every block and every
``faucet`` payment, before anyone can read them), so a restarted node serves the same
chain: a wallet that credited its deposits sees no reorg.  The ``faucet`` method
(``params``: ``[[address, amount], ...]``) puts a payment from outside the exchange
in the mempool, as a user's own wallet would (the demo deposits of `bursa run`).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Collection
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from wallet.chain import (
    BlockRef,
    BroadcastRejectedError,
    NodeUnavailableError,
    Payment,
    TxStatus,
)
from wallet.simchain import SimChain

MAX_REQUEST_BYTES = 1 << 20


class SimServer:
    """An HTTP server answering adapter calls from one SimChain (thread-safe with :attr:`lock`)."""

    def __init__(
        self, sim: SimChain, host: str = "127.0.0.1", port: int = 0, state: str = ""
    ) -> None:
        self.sim = sim
        self.state = state  # where the chain is kept ("" = in memory only)
        self.lock = threading.RLock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                if not 0 < n <= MAX_REQUEST_BYTES:
                    self.send_error(413)
                    return
                try:
                    req = json.loads(self.rfile.read(n))
                    body = {"result": outer.call(str(req["method"]), list(req.get("params", [])))}
                except NodeUnavailableError as exc:
                    body = {"error": "unavailable", "message": str(exc)}
                except BroadcastRejectedError as exc:
                    body = {"error": "rejected", "message": str(exc)}
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    body = {"error": "bad_request", "message": str(exc)}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    METHODS = (
        "tip",
        "block_at",
        "block_by_hash",
        "payments_in_block",
        "mempool_payments",
        "balance",
        "fee_estimate",
        "tx_status",
        "unspent",
        "spent_by",
        "sources",
    )

    def call(self, method: str, params: list[Any]) -> Any:
        """Run one adapter method on the chain; dataclasses become dicts."""
        with self.lock:
            if method == "broadcast":
                txid = self.sim.broadcast(bytes.fromhex(str(params[0])))
                self.save()
                return txid
            if method == "faucet":
                outputs = [(str(a), int(v)) for a, v in params[0]]
                if not outputs or any(v <= 0 for _, v in outputs):
                    raise ValueError("faucet needs [[address, amount > 0], ...]")
                txid = self.sim.send(outputs)
                self.save()
                return txid
            if method not in self.METHODS:
                raise ValueError(f"unknown method {method!r}")
            out = getattr(self.sim, method)(*params)
        if isinstance(out, list):
            return [x if isinstance(x, tuple | str) else asdict(x) for x in out]
        if out is None or isinstance(out, int | str):
            return out
        return asdict(out)

    def mine(self) -> None:
        """Mine one block and keep the chain (before anyone can read the block)."""
        with self.lock:
            self.sim.mine()
            self.save()

    def save(self) -> None:
        """Write the chain to ``state`` atomically (nothing without a state file)."""
        if not self.state:
            return
        tmp = f"{self.state}.tmp"
        with open(tmp, "wb") as fh:
            pickle.dump(self.sim, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state)

    @staticmethod
    def load(state: str, **new: Any) -> SimChain:
        """The chain kept in ``state``, or a new ``SimChain(**new)`` when there is none."""
        if state and os.path.exists(state):
            with open(state, "rb") as fh:
                sim = pickle.load(fh)  # our own file, written by save()
            if not isinstance(sim, SimChain):
                raise ValueError(f"{state}: not a simulated chain")
            return sim
        return SimChain(**new)

    def start(self) -> SimServer:
        """Serve in a daemon thread."""
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()


class SimRpcAdapter:
    """A :class:`wallet.chain.ChainAdapter` reading a :class:`SimServer`."""

    def __init__(self, url: str, chain: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.chain = chain
        self.timeout_s = timeout_s

    def _call(self, method: str, *params: Any) -> Any:
        data = json.dumps({"method": method, "params": list(params)}).encode()
        req = urllib.request.Request(self.url, data, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                body = json.loads(resp.read())
        except (OSError, urllib.error.URLError) as exc:
            raise NodeUnavailableError(f"{self.chain}: {exc}") from exc
        if "error" in body:
            if body["error"] == "unavailable":
                raise NodeUnavailableError(body.get("message", "unavailable"))
            if body["error"] == "rejected":
                raise BroadcastRejectedError(body.get("message", "rejected"))
            raise ValueError(body.get("message", body["error"]))
        return body["result"]

    def tip(self) -> BlockRef:
        """The tip."""
        return BlockRef(**self._call("tip"))

    def block_at(self, height: int) -> BlockRef | None:
        """Best-chain block at a height."""
        r = self._call("block_at", height)
        return None if r is None else BlockRef(**r)

    def block_by_hash(self, block_hash: str) -> BlockRef | None:
        """A block by hash."""
        r = self._call("block_by_hash", block_hash)
        return None if r is None else BlockRef(**r)

    def payments_in_block(self, block_hash: str, addresses: Collection[str]) -> list[Payment]:
        """Payments to addresses in a block."""
        return [Payment(**p) for p in self._call("payments_in_block", block_hash, list(addresses))]

    def mempool_payments(self, addresses: Collection[str]) -> list[Payment]:
        """Unconfirmed payments."""
        return [Payment(**p) for p in self._call("mempool_payments", list(addresses))]

    def balance(self, address: str, token: str = "") -> int:
        """Confirmed balance."""
        return int(self._call("balance", address, token))

    def broadcast(self, raw_tx: bytes) -> str:
        """Send raw bytes."""
        return str(self._call("broadcast", raw_tx.hex()))

    def fee_estimate(self) -> int:
        """Fee rate."""
        return int(self._call("fee_estimate"))

    def tx_status(self, txid: str) -> TxStatus:
        """Where a transaction is."""
        return TxStatus(**self._call("tx_status", txid))

    def unspent(self, address: str) -> list[tuple[str, int]]:
        """Confirmed coins of an address not spent anywhere."""
        return [(str(o), int(v)) for o, v in self._call("unspent", address)]

    def spent_by(self, outpoint: str) -> str | None:
        """Who spent a coin (None: nobody)."""
        r = self._call("spent_by", outpoint)
        return None if r is None else str(r)

    def sources(self, txid: str) -> list[str]:
        """The addresses whose coins a transaction spends."""
        return [str(a) for a in self._call("sources", txid)]


def main(argv: list[str] | None = None) -> int:
    """Serve a demo simulated chain that mines every ``--block-ms`` until SIGTERM."""
    p = argparse.ArgumentParser(prog="python -m wallet.simrpc", description=__doc__)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", choices=("utxo", "account"), default="utxo")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--block-ms", type=int, default=2000)
    p.add_argument("--state", default="", help="keep the chain in this file across restarts")
    args = p.parse_args(argv)
    sim = SimServer.load(args.state, model=args.model, seed=args.seed)
    server = SimServer(sim, port=args.port, state=args.state).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    height = sim.tip().height
    print(json.dumps({"ready": True, "url": server.url, "height": height}), flush=True)
    try:
        while not stop.wait(args.block_ms / 1000):
            server.mine()
    except KeyboardInterrupt:
        pass
    server.close()
    time.sleep(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
