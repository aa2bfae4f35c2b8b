"""A market maker on the order-entry gateway: quote a ladder, requote on fills.

It logs in with an API key file (cancel-on-disconnect on), quotes ``--levels``
bids and asks ``--step`` ticks apart around ``--ref-price``, and each time a
quote is filled completely it enters a new one at the same price.  If the
connection drops, the client logs in again from the next expected sequence
number, so fills that happened meanwhile are replayed and requoted.

Usage against a running gateway::

    bursa admin apikey create 7 --out mm.key
    python -m examples.market_maker --port 7100 --key mm.key --duration 60

``python -m examples.market_maker --demo`` (``make mm-demo``) starts a core and a
gateway in a temporary directory, runs the market maker and a taker that lifts
its offers, and prints what happened.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bindings.gateway_client import GatewayClient
from pyx.enums import Side


@dataclass
class MarketMaker:
    """Quoting state: which client order id rests at which (side, price)."""

    client: GatewayClient
    symbol_id: int
    ref_price: int
    levels: int = 3
    step: int = 1
    qty: int = 1
    quotes: dict[int, tuple[int, int]] = field(default_factory=dict)  # cl_ord_id -> (side, px)
    fills: int = 0
    requotes: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(int(time.time())))

    def quote(self, side: int, price: int) -> None:
        """Enter one post-only quote."""
        cl = next(self._ids)
        self.quotes[cl] = (side, price)
        self.client.enter_order(
            cl, symbol_id=self.symbol_id, side=side, price_ticks=price, qty_lots=self.qty,
            post_only=True,
        )  # fmt: skip

    def start(self) -> None:
        """Quote the whole ladder."""
        for i in range(1, self.levels + 1):
            self.quote(Side.BUY, self.ref_price - i * self.step)
            self.quote(Side.SELL, self.ref_price + i * self.step)

    def run(self, duration: float) -> None:
        """Handle execution reports for ``duration`` seconds, requoting filled levels."""
        end = time.monotonic() + duration
        while time.monotonic() < end:
            try:
                m = self.client.recv(timeout=max(0.05, min(1.0, end - time.monotonic())))
            except TimeoutError:
                continue
            if m.name == "EXECUTED":
                self.fills += 1
                if m.leaves_lots == 0 and m.cl_ord_id in self.quotes:
                    side, price = self.quotes.pop(m.cl_ord_id)
                    self.requotes += 1
                    self.quote(side, price)
            elif m.name in ("CANCELED", "REJECTED") and m.cl_ord_id in self.quotes:
                self.quotes.pop(m.cl_ord_id)


def demo(seconds: float = 3.0) -> dict[str, int]:
    """Core + gateway in a temporary directory, the market maker and a taker."""
    from tests.e2e.coreproc import CoreProcess
    from tests.gateway.gwproc import GatewayProcess, make_key, setup_market

    tmp = Path(tempfile.mkdtemp(prefix="bursa-mm-"))
    (tmp / "logs").mkdir()
    core = CoreProcess(tmp / "core", tmp / "logs", "fsync")
    core.start()
    gw: GatewayProcess | None = None
    try:
        setup_market(core)
        gw = GatewayProcess(core, tmp / "gw.db", tmp / "logs")
        gw.start(port=0)
        mm_key = make_key(gw.db, tmp / "mm.key", 1)
        taker_key = make_key(gw.db, tmp / "taker.key", 2)
        mm = MarketMaker(
            GatewayClient("127.0.0.1", gw.port, key_file=str(mm_key), cancel_on_disconnect=True),
            symbol_id=1, ref_price=10_000, levels=3, step=5, qty=2,
        )  # fmt: skip
        mm.client.login()
        mm.start()
        taker = GatewayClient("127.0.0.1", gw.port, key_file=str(taker_key))
        taker.login()
        stop = threading.Event()

        def lift() -> None:
            for cl in itertools.count(1):
                if stop.is_set():
                    return
                taker.enter_order(
                    cl, symbol_id=1, side=Side.BUY, price_ticks=10_005, qty_lots=1, tif=2
                )
                list(taker.messages(timeout=0.1))
                time.sleep(0.1)

        t = threading.Thread(target=lift, daemon=True)
        t.start()
        mm.run(seconds)
        stop.set()
        t.join(timeout=5)
        mm.client.logout()
        return {"fills": mm.fills, "requotes": mm.requotes, "open_quotes": len(mm.quotes)}
    finally:
        if gw is not None:
            gw.cleanup()
        core.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Run the market maker (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m examples.market_maker")
    ap.add_argument("--demo", action="store_true", help="start a core and a gateway too")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7100)
    ap.add_argument("--key", help="API key file")
    ap.add_argument("--symbol", type=int, default=1)
    ap.add_argument("--ref-price", type=int, default=10_000, help="ticks")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--step", type=int, default=5, help="ticks between levels")
    ap.add_argument("--qty", type=int, default=1, help="lots per quote")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds")
    a = ap.parse_args(argv)
    if a.demo:
        print(json.dumps(demo(a.duration)))
        return 0
    if not a.key:
        ap.error("--key is required (or --demo)")
    c = GatewayClient(a.host, a.port, key_file=a.key, cancel_on_disconnect=True)
    c.login()
    mm = MarketMaker(c, a.symbol, a.ref_price, a.levels, a.step, a.qty)
    mm.start()
    mm.run(a.duration)
    c.logout()
    print(json.dumps({"fills": mm.fills, "requotes": mm.requotes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
