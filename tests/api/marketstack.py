"""A real core + a real `bursa marketdata` + MarketState and the market routes on a real
aiohttp server (in a thread with its own event loop), for the market tests and bench.

Two symbols with distinct Binance names: BTCUSDT (id 1) and ETHUSDT (id 2), on the
random order flow of tests/marketdata/flow.py (prices 95..107 ticks of 10 USDT,
lots of 0.000001).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from aiohttp import web

from api.market import MarketState, add_routes
from api.market.hub import DEFAULT_SEND_BUFFER_BYTES
from api.symbols import SymbolRegistry
from bindings.client import RoutedClient
from engine.wire import commands as wc
from tests.e2e.coreproc import CoreProcess
from tests.marketdata.flow import N_USERS, OID0, USER0, Flow
from tests.marketdata.mdproc import MarketDataProcess, core_from_journal

T = TypeVar("T")
BTC, USDT, ETH = 1, 2, 3
NAMES = {BTC: "BTC", USDT: "USDT", ETH: "ETH"}
SYMBOL_NAMES = {1: "BTCUSDT", 2: "ETHUSDT"}
WAIT_S = 60.0


def setup_cmds() -> np.ndarray:
    """Assets, two symbols (same grid as the feed tests), a fee tier, funded users."""
    b = wc.CmdBatch()
    b.add(wc.add_asset(BTC, 8)).add(wc.add_asset(USDT, 6)).add(wc.add_asset(ETH, 8))
    b.add(wc.add_fee_tier(0, 1_000, 2_000))
    for sid, base in ((1, BTC), (2, ETH)):
        b.add(
            wc.add_symbol(
                sid, base, USDT, price_multiplier=10, base_per_lot=100, protection_ticks=50
            )
        )
    ref = 0
    for i in range(N_USERS):
        u = USER0 + i
        b.add(wc.add_user(u))
        for asset, amount in ((BTC, 10**13), (USDT, 10**15), (ETH, 10**13)):
            ref += 1
            b.add(wc.deposit(ref, u, asset, amount))
    return b.to_array()


_flows = 0


def new_flow(seed: int) -> Flow:
    """A random flow whose order ids no earlier flow of this process used (a reused
    id would be a DUPLICATE, and the flow would trade little)."""
    global _flows
    _flows += 1
    f = Flow(seed)
    f.next_oid = OID0 + _flows * 10**8
    return f


def book_from_core(root: Path, sid: int) -> dict[str, list[tuple[int, int]]]:
    """The core's L2 book of ``sid`` (rebuilt from its journal): price/qty ticks, lots."""
    core = core_from_journal(root / "core")
    book = core.book(sid)
    assert book is not None
    return {
        "bids": [(int(p), int(q)) for p, q, _n in book.l2(1)],
        "asks": [(int(p), int(q)) for p, q, _n in book.l2(2)],
    }


class ServerThread:
    """An event loop in a thread running MarketState + add_routes on 127.0.0.1."""

    def __init__(
        self,
        pub: str,
        service: str,
        send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES,
        extra: Callable[[web.Application, MarketState], None] | None = None,
        names: dict[int, str] | None = None,
    ) -> None:
        self.names = NAMES if names is None else names
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.state: MarketState
        self.runner: web.AppRunner
        self.port = 0
        self.call(self._start(pub, service, send_buffer_bytes, extra))

    async def _start(
        self,
        pub: str,
        service: str,
        send_buffer_bytes: int,
        extra: Callable[[web.Application, MarketState], None] | None,
    ) -> None:
        self.state = MarketState(
            pub, service, SymbolRegistry(self.names), send_buffer_bytes=send_buffer_bytes
        )
        await self.state.start()
        app = web.Application()
        add_routes(app, self.state)
        if extra is not None:
            extra(app, self.state)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    @property
    def http(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:1234``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        """WebSocket base URL."""
        return f"ws://127.0.0.1:{self.port}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT_S) -> T:
        """Run ``coro`` on the server's loop and wait for its result."""
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def close(self) -> None:
        """Stop the server and the state, then the loop."""

        async def _stop() -> None:
            await self.runner.cleanup()
            await self.state.stop()

        try:
            self.call(_stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


class Stack:
    """Core + marketdata processes (ipc endpoints) and a command sender."""

    def __init__(
        self, setup: np.ndarray | None = None, mode: str = "async", md_args: tuple[str, ...] = ()
    ) -> None:
        # Short path: ipc:// socket paths are limited to ~100 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="apim", dir="/tmp"))
        (self.root / "core").mkdir()
        self.core = CoreProcess(self.root / "core", self.root, mode)
        try:
            ready = self.core.start()
            self.sender = RoutedClient.from_ready(ready)
            self.sender.request(setup_cmds() if setup is None else setup)
            self.pub = f"ipc://{self.root}/md.pub"
            self.service = f"ipc://{self.root}/md.svc"
            self.md = MarketDataProcess(self.root, ready, *md_args)
            self.md.start(self.pub, self.service)
        except BaseException:
            self.core.cleanup()
            raise

    def server(self, **kw: Any) -> ServerThread:
        """A market server following this stack's feed."""
        return ServerThread(self.pub, self.service, **kw)

    def send(self, cmds: np.ndarray) -> None:
        """Send commands to the core (waits for the replies)."""
        self.sender.request(cmds)

    def core_book(self, sid: int) -> dict[str, list[tuple[int, int]]]:
        """The core's book of ``sid`` now."""
        return book_from_core(self.root, sid)

    def settle(self, server: ServerThread, sid: int) -> dict[str, list[tuple[int, int]]]:
        """Wait until the server's book of ``sid`` equals the core's; return it."""
        want = self.core_book(sid)
        deadline = time.monotonic() + WAIT_S

        async def local() -> dict[str, list[tuple[int, int]]]:
            b = server.state.symbols[sid].book
            return {
                "bids": [(p, q) for p, q, _n in b.bids()],
                "asks": [(p, q) for p, q, _n in b.asks()],
            }

        while True:
            got = server.call(local())
            if got == want:
                return want
            assert time.monotonic() < deadline, "the API's book never matched the core's"
            time.sleep(0.05)

    def close(self) -> None:
        """Stop both processes and remove the directory."""
        self.sender.close()
        self.md.cleanup()
        self.core.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)
