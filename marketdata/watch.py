"""`bursa watch SYMBOL`: a live terminal view of one symbol's feed (book, trades, candles).

Uses :class:`bindings.marketdata.MarketDataClient`, so what it shows is the exact
local book of the feed.  Prices and quantities stay integers (ticks, lots) until
this display code turns them into decimals with the symbol's STATUS message:
one base unit costs ``ticks * price_multiplier * 10**base_dec / (base_per_lot *
10**quote_dec)`` quote units.  ``--once`` prints one frame and exits (scripts, tests).
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from decimal import Decimal
from typing import Any

import zmq
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bindings.marketdata import BUY, LocalBook, MarketDataClient, MarketDataError
from bursa_wire.md_layout import CANDLE_INTERVALS_S, SymbolStatus
from marketdata.server import DEFAULT_PUB_ENDPOINT, DEFAULT_SERVICE_ENDPOINT

TRADES_SHOWN = 12
_IV_NAMES = {1: "1s", 60: "1m", 300: "5m", 900: "15m", 3600: "1h", 14400: "4h", 86400: "1d"}


class Units:
    """Display conversion of ticks and lots (decimals only here)."""

    def __init__(self, book: LocalBook) -> None:
        st = book.status
        if st is None:
            self.px = Decimal(1)
            self.qty = Decimal(1)
            return
        b = st.body
        self.px = (
            Decimal(b["price_multiplier"])
            * Decimal(10) ** b["base_decimals"]
            / (Decimal(b["base_per_lot"]) * Decimal(10) ** b["quote_decimals"])
        )
        self.qty = Decimal(b["base_per_lot"]) / Decimal(10) ** b["base_decimals"]

    def price(self, ticks: int) -> str:
        """A price in ticks as a decimal string."""
        return f"{(ticks * self.px).normalize():f}"

    def size(self, lots: int) -> str:
        """A quantity in lots as a decimal string of base units."""
        return f"{(lots * self.qty).normalize():f}"


def _book_table(book: LocalBook, u: Units, depth: int) -> Table:
    t = Table(title="book", expand=True)
    for col in ("orders", "bid qty", "bid", "ask", "ask qty", "orders"):
        t.add_column(col, justify="right")
    bids, asks = book.bids(depth), book.asks(depth)
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else None
        a = asks[i] if i < len(asks) else None
        t.add_row(
            str(b[2]) if b else "",
            u.size(b[1]) if b else "",
            Text(u.price(b[0]), style="green") if b else "",
            Text(u.price(a[0]), style="red") if a else "",
            u.size(a[1]) if a else "",
            str(a[2]) if a else "",
        )
    return t


def _trades_table(book: LocalBook, u: Units) -> Table:
    t = Table(title="trades", expand=True)
    for col in ("time (UTC)", "price", "qty", "aggressor", "match"):
        t.add_column(col, justify="right")
    for m in list(book.trades)[-TRADES_SHOWN:][::-1]:
        side = m["aggressor_side"]
        style = "green" if side == BUY else "red"
        t.add_row(
            time.strftime("%H:%M:%S", time.gmtime(m.ts_ns // 10**9)),
            Text(u.price(m["price_ticks"]), style=style),
            u.size(m["qty_lots"]),
            Text("buy" if side == BUY else "sell", style=style),
            str(m["match_id"]),
        )
    return t


def _candles_table(book: LocalBook, u: Units) -> Table:
    t = Table(title="candles (latest)", expand=True)
    for col in ("interval", "open", "high", "low", "close", "volume", "trades", "state"):
        t.add_column(col, justify="right")
    for iv in CANDLE_INTERVALS_S:
        m = book.candles.get(iv)
        if m is None:
            continue
        b = m.body
        t.add_row(
            _IV_NAMES[iv],
            u.price(b["open_ticks"]),
            u.price(b["high_ticks"]),
            u.price(b["low_ticks"]),
            u.price(b["close_ticks"]),
            u.size(b["volume_lots"]),
            str(b["trades"]),
            "closed" if b["closed"] else "open",
        )
    return t


def render(book: LocalBook, depth: int = 10) -> Group:
    """One frame of the view of ``book``."""
    u = Units(book)
    bp, bq, _bn, ap, aq, _an = book.bbo
    halted = book.status is not None and book.status["status"] == SymbolStatus.HALTED
    head = Text(f"symbol {book.symbol_id}  ")
    head.append("HALTED" if halted else "trading", style="bold red" if halted else "bold green")
    if bp:
        head.append(f"   bid {u.price(bp)} x {u.size(bq)}", style="green")
    if ap:
        head.append(f"   ask {u.price(ap)} x {u.size(aq)}", style="red")
    if bp and ap:
        head.append(f"   spread {u.price(ap - bp)}")
    return Group(
        Panel(head),
        _book_table(book, u, depth),
        _trades_table(book, u),
        _candles_table(book, u),
    )


def _endpoints(args: argparse.Namespace) -> tuple[str, str]:
    pub, service = DEFAULT_PUB_ENDPOINT, DEFAULT_SERVICE_ENDPOINT
    if args.config:
        with open(args.config, "rb") as f:
            section: dict[str, Any] = tomllib.load(f).get("marketdata", {})
        pub = section.get("pub_endpoint", pub)
        service = section.get("service_endpoint", service)
    return args.pub or pub, args.service or service


def main(argv: list[str] | None = None) -> int:
    """Show the live view until Ctrl-C (or one frame with ``--once``)."""
    p = argparse.ArgumentParser(prog="bursa watch", description=__doc__.splitlines()[0])
    p.add_argument("symbol", type=int, help="symbol id")
    p.add_argument("--pub", help=f"feed PUB endpoint (default {DEFAULT_PUB_ENDPOINT})")
    p.add_argument("--service", help=f"service endpoint (default {DEFAULT_SERVICE_ENDPOINT})")
    p.add_argument("--config", help="TOML file: pub/service endpoints from [marketdata]")
    p.add_argument("--depth", type=int, default=10, help="levels shown per side")
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.add_argument("--timeout-ms", type=int, default=5000, help="service answer timeout")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    pub, service = _endpoints(args)
    console = Console()
    try:
        client = MarketDataClient(pub, service, [args.symbol], timeout_ms=args.timeout_ms)
    except (TimeoutError, MarketDataError, zmq.ZMQError) as e:
        print(f"bursa watch: {e}", file=sys.stderr)
        return 1
    try:
        book = client.books[args.symbol]
        if args.once:
            client.poll(50)
            console.print(render(book, args.depth))
            return 0
        with Live(render(book, args.depth), console=console, refresh_per_second=10) as live:
            while True:
                if client.poll(100):
                    live.update(render(book, args.depth))
    except KeyboardInterrupt:
        return 0
    except (TimeoutError, MarketDataError) as e:
        print(f"bursa watch: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
