"""A raw protocol speaker for session conformance tests (frames by hand, no client logic)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from bindings.gateway_client import login_frame, order_frame
from gateway import keys
from gateway.wire import codec
from gateway.wire.codes import GwReason


class Raw:
    """One TCP connection speaking frames directly."""

    def __init__(self, port: int, key_file: Path | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = codec.FrameReader()
        self.buf: list[codec.Msg] = []
        self.eof = False
        if key_file is not None:
            self.key_id, self.priv = keys.read_key_file(key_file)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def login(self, next_seq: int = 1, cod: bool = False, **kw: int) -> None:
        self.send(login_frame(self.key_id, self.priv, next_seq, cod, **kw))

    def order(self, cl: int, side: int = 1, price: int = 100, qty: int = 1, **kw: Any) -> None:
        self.send(order_frame(cl, symbol_id=1, side=side, price_ticks=price, qty_lots=qty, **kw))

    def read(self, timeout: float = 10.0) -> codec.Msg | None:
        """Next message (heartbeats included); None at EOF."""
        deadline = time.monotonic() + timeout
        while not self.buf:
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("nothing from the gateway")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                continue
            for t, b in self.reader.feed(data):
                self.buf.append(codec.decode(t, b, inbound=False))
        return self.buf.pop(0)

    def expect(self, name: str, timeout: float = 10.0, skip_heartbeats: bool = True) -> codec.Msg:
        """The next non-heartbeat message, which must be ``name``."""
        while True:
            m = self.read(timeout)
            assert m is not None, f"EOF while expecting {name}"
            if skip_heartbeats and m.name == "SERVER_HEARTBEAT":
                continue
            assert m.name == name, f"expected {name}, got {m.name} {m.values}"
            return m

    def expect_end(self, reason: GwReason, timeout: float = 10.0) -> None:
        """END_OF_SESSION with ``reason``, then EOF."""
        m = self.expect("END_OF_SESSION", timeout)
        assert m.reason == reason, GwReason(int(m.reason)).name
        self.expect_eof(timeout)

    def expect_reject(self, reason: int, timeout: float = 10.0) -> None:
        """LOGIN_REJECTED with ``reason``, then EOF."""
        m = self.expect("LOGIN_REJECTED", timeout)
        assert m.reason == reason, m.reason
        self.expect_eof(timeout)

    def expect_eof(self, timeout: float = 10.0) -> None:
        """The gateway closes the connection (heartbeats may come first)."""
        while True:
            m = self.read(timeout)
            if m is None:
                return
            assert m.name == "SERVER_HEARTBEAT", m.name

    def app(self, n: int, timeout: float = 10.0) -> list[codec.Msg]:
        """The next ``n`` sequenced messages."""
        out: list[codec.Msg] = []
        while len(out) < n:
            m = self.read(timeout)
            assert m is not None, f"EOF after {len(out)} of {n}"
            if m.spec.layer == "app":
                out.append(m)
        return out

    def close(self) -> None:
        self.sock.close()
