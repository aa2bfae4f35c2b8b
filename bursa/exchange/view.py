"""What `bursa run` shows: the plain-text summary line, the rich dashboard, the metrics.

:class:`Snapshot` is one reading of the exchange (taken by the supervisor: the
market-data feed, the core, the ledger, and the children's own Prometheus
endpoints); :func:`summary_line` formats it for logs and pipes, :func:`dashboard`
as a rich renderable for a terminal (book, trades, latency, fdatasync, ledger lag,
hot wallet, alerts, processes), :class:`Metrics` exports it to Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from bursa import run as tour
from bursa.exchange.readings import CoreRates

STATES = ("starting", "running", "backoff", "stopped")
WIDE = 110  # columns from which the dashboard puts three panels side by side


@dataclass
class ChildView:
    """One child as shown: name, state, restarts, pid, last exit status."""

    name: str
    state: str
    restarts: int
    pid: int | None
    last_exit: int | None
    doc: str = ""


@dataclass
class Money:
    """The wallet as the dashboard shows it (amounts in satoshis of the demo BTC chain)."""

    hot: int = 0  # the hot wallet (withdrawals), else every deposit address
    hot_tier: str = "hot"
    credited: int = 0  # deposits credited in the core
    deposits: int = 0  # deposits seen on the chain
    pending_withdrawals: int = 0
    withdrawals_done: int = 0
    alerts: int = 0


@dataclass
class Snapshot:
    """One reading: uptime, best bid/ask (ticks, 0 = none), trades, seqs, children,
    the book's top levels and recent trades (ticks, lots), the core's rates, money,
    recent alerts (newest first)."""

    uptime_s: int
    bid: int
    ask: int
    trades_seen: int
    core_seq: int
    ledger_seq: int
    children: list[ChildView] = field(default_factory=list)
    bids: list[tuple[int, int]] = field(default_factory=list)
    asks: list[tuple[int, int]] = field(default_factory=list)
    trades: list[tuple[int, int, int]] = field(default_factory=list)  # price, qty, aggressor
    rates: CoreRates = field(default_factory=CoreRates)
    money: Money = field(default_factory=Money)
    alerts: list[str] = field(default_factory=list)

    @property
    def ledger_lag(self) -> int:
        """Core seq minus the ledger's last applied seq (0 when caught up)."""
        return max(0, self.core_seq - self.ledger_seq)


def _px(ticks: int) -> str:
    return tour.price(ticks) if ticks else "-"


def _ms(seconds: float | None) -> str:
    """A duration as milliseconds (``-`` when unknown, ``>1000`` past the last bucket)."""
    if seconds is None:
        return "-"
    if seconds == float("inf"):
        return "> 1 s"
    return f"{seconds * 1000:.2f} ms"


def _le(seconds: float | None) -> str:
    return _ms(seconds) if seconds is None or seconds == float("inf") else "≤ " + _ms(seconds)


def _btc(sats: int) -> str:
    return f"{sats / 10**tour.BTC_DECIMALS:,.8f} BTC"


def summary_line(s: Snapshot) -> str:
    """One plain-text line: market, seqs, ledger lag, journal fdatasync (mean over the
    last interval), hot wallet, pending withdrawals, alerts, each child's state/restarts."""
    kids = " ".join(f"{c.name}={c.state}/{c.restarts}" for c in s.children)
    return (
        f"[{s.uptime_s}s] {tour.SYMBOL} bid {_px(s.bid)} ask {_px(s.ask)} | "
        f"trades seen {s.trades_seen} | core seq {s.core_seq} | ledger seq {s.ledger_seq} "
        f"lag {s.ledger_lag} | fdatasync {_ms(s.rates.fsync_mean_s)} | "
        f"hot wallet {_btc(s.money.hot)} | withdrawals pending {s.money.pending_withdrawals} | "
        f"alerts {s.money.alerts} | {kids}"
    )


def _book(s: Snapshot) -> Table:
    book = Table(title=f"{tour.SYMBOL} book", expand=True, pad_edge=False)
    for col in ("bid qty", "bid", "ask", "ask qty"):
        book.add_column(col, justify="right", no_wrap=True)
    for i in range(max(len(s.bids), len(s.asks), 1)):
        b = s.bids[i] if i < len(s.bids) else None
        a = s.asks[i] if i < len(s.asks) else None
        book.add_row(
            tour.qty(b[1]) if b else "", f"[green]{_px(b[0])}[/]" if b else "",
            f"[red]{_px(a[0])}[/]" if a else "", tour.qty(a[1]) if a else "",
        )  # fmt: skip
    return book


def _trades(s: Snapshot) -> Table:
    tr = Table(title=f"trades ({s.trades_seen:,} seen)", expand=True, pad_edge=False)
    for col in ("price", "qty", "side"):
        tr.add_column(col, justify="right", no_wrap=True)
    for px, q, side in s.trades:
        style = "green" if side == 1 else "red"
        tr.add_row(f"[{style}]{_px(px)}[/]", tour.qty(q), "buy" if side == 1 else "sell")
    return tr


def _core(s: Snapshot) -> Table:
    r = s.rates
    t = Table(title="core", expand=True, show_header=False, pad_edge=False)
    t.add_column("what", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    t.add_row("commands/s", f"{r.commands_per_s:,.0f}")
    # Percentiles are histogram bucket bounds (readings.quantile_bound): "at most".
    t.add_row("ack latency p50", _le(r.ack_p50_s))
    t.add_row("ack latency p99", _le(r.ack_p99_s))
    t.add_row("fdatasync mean", _ms(r.fsync_mean_s))
    t.add_row("fdatasync p99", _le(r.fsync_p99_s))
    t.add_row("core seq", f"{s.core_seq:,}")
    t.add_row("ledger lag", f"{s.ledger_lag:,}")
    return t


def _wallet(s: Snapshot) -> Table:
    m = s.money
    t = Table(title="wallet (BTC chain)", expand=True, show_header=False, pad_edge=False)
    t.add_column("what", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    t.add_row(f"hot wallet ({m.hot_tier})", _btc(m.hot))
    t.add_row("credited deposits", f"{_btc(m.credited)} ({m.deposits})")
    t.add_row("pending withdrawals", f"{m.pending_withdrawals:,}")
    t.add_row("withdrawals done", f"{m.withdrawals_done:,}")
    t.add_row("alerts", f"{m.alerts:,}")
    return t


def _alerts(s: Snapshot) -> Panel:
    lines = "\n".join(s.alerts[:5]) if s.alerts else "[dim]none[/]"
    return Panel(lines, title="recent alerts", title_align="left")


def _row(*cells: Any, ratios: tuple[int, ...]) -> Table:
    grid = Table.grid(expand=True, padding=(0, 1))
    for ratio in ratios:
        grid.add_column(ratio=ratio)
    grid.add_row(*cells)
    return grid


def dashboard(s: Snapshot, data_dir: str, width: int = WIDE) -> Group:
    """The terminal view: book, trades, core rates, wallet, alerts, processes.

    From ``WIDE`` columns the book, trades and core sit side by side; narrower
    terminals (80 columns) get two panels per row.
    """
    market = Table.grid(padding=(0, 2))
    market.add_row("symbol", tour.SYMBOL, "best bid", _px(s.bid), "best ask", _px(s.ask))
    market.add_row(
        "trades seen", f"{s.trades_seen:,}", "core seq", f"{s.core_seq:,}",
        "ledger lag", f"{s.ledger_lag:,}",
    )  # fmt: skip
    rows: list[Table | Panel]
    if width >= WIDE:  # the book needs four price/size columns: the widest share
        rows = [
            _row(_book(s), _trades(s), _core(s), ratios=(4, 3, 3)),
            _row(_wallet(s), _alerts(s), ratios=(2, 3)),
        ]
    else:
        rows = [
            _row(_book(s), _trades(s), ratios=(4, 3)),
            _row(_core(s), _wallet(s), ratios=(4, 5)),
            _alerts(s),
        ]
    procs = Table(title="processes", expand=True)
    widths = {"process": 10, "state": 8, "restarts": 8, "pid": 7, "last exit": 9}
    for col, width in widths.items():
        procs.add_column(col, no_wrap=True, min_width=width)
    # One line per process (cut with an ellipsis).
    procs.add_column("what", no_wrap=True, overflow="ellipsis")
    for c in s.children:
        style = "green" if c.state == "running" else "yellow"
        procs.add_row(
            c.name, f"[{style}]{c.state}[/]", str(c.restarts), str(c.pid or "-"),
            "-" if c.last_exit is None else str(c.last_exit), c.doc,
        )  # fmt: skip
    title = f"bursa run - up {s.uptime_s}s - data {data_dir} - Ctrl-C stops"
    return Group(Panel(market, title=title), *rows, procs)


class Metrics:
    """Prometheus gauges of the supervisor, served on 127.0.0.1 (``/metrics``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.up = Gauge("bursa_child_up", "1 if the child is running", ["child"], registry=r)
        self.state = Gauge(
            "bursa_child_state", "1 for the child's current state", ["child", "state"], registry=r
        )
        self.restarts = Gauge(
            "bursa_child_restarts", "restarts since the supervisor started", ["child"], registry=r
        )
        self.core_seq = Gauge("bursa_core_seq", "the core's last sequence number", registry=r)
        self.ledger_seq = Gauge("bursa_ledger_seq", "the ledger's last applied seq", registry=r)
        self.ledger_lag = Gauge("bursa_ledger_lag", "core seq minus ledger seq", registry=r)
        self.trades = Gauge("bursa_feed_trades_seen", "trades seen on the feed", registry=r)
        self.port = 0

    def serve(self, port: int) -> int:
        """Start the HTTP endpoint on 127.0.0.1 (port 0: a free one); returns the port."""
        server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self.port = int(server.server_address[1])
        return self.port

    def update(self, s: Snapshot) -> None:
        """Set every gauge from a reading."""
        for c in s.children:
            self.up.labels(c.name).set(1 if c.state == "running" else 0)
            self.restarts.labels(c.name).set(c.restarts)
            for st in STATES:
                self.state.labels(c.name, st).set(1 if c.state == st else 0)
        self.core_seq.set(s.core_seq)
        self.ledger_seq.set(s.ledger_seq)
        self.ledger_lag.set(s.ledger_lag)
        self.trades.set(s.trades_seen)
