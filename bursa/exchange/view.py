"""What `bursa run` shows: the plain-text summary line, the rich dashboard, the metrics.

:class:`Snapshot` is one reading of the exchange (taken by the supervisor);
:func:`summary_line` formats it for logs and pipes, :func:`dashboard` as a rich
renderable for a terminal, :class:`Metrics` exports it to Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from bursa import run as tour

STATES = ("starting", "running", "backoff", "stopped")


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
class Snapshot:
    """One reading: uptime, best bid/ask (ticks, 0 = none), trades, seqs, children."""

    uptime_s: int
    bid: int
    ask: int
    trades_seen: int
    core_seq: int
    ledger_seq: int
    children: list[ChildView] = field(default_factory=list)

    @property
    def ledger_lag(self) -> int:
        """Core seq minus the ledger's last applied seq (0 when caught up)."""
        return max(0, self.core_seq - self.ledger_seq)


def _px(ticks: int) -> str:
    return tour.price(ticks) if ticks else "-"


def summary_line(s: Snapshot) -> str:
    """One plain-text line: market, seqs, ledger lag, each child's state/restarts."""
    kids = " ".join(f"{c.name}={c.state}/{c.restarts}" for c in s.children)
    return (
        f"[{s.uptime_s}s] {tour.SYMBOL} bid {_px(s.bid)} ask {_px(s.ask)} | "
        f"trades seen {s.trades_seen} | core seq {s.core_seq} | ledger seq {s.ledger_seq} "
        f"lag {s.ledger_lag} | {kids}"
    )


def dashboard(s: Snapshot, data_dir: str) -> Group:
    """The terminal view: market panel and the process table."""
    market = Table.grid(padding=(0, 2))
    market.add_row("symbol", tour.SYMBOL, "best bid", _px(s.bid), "best ask", _px(s.ask))
    market.add_row(
        "trades seen", f"{s.trades_seen:,}", "core seq", f"{s.core_seq:,}",
        "ledger lag", f"{s.ledger_lag:,}",
    )  # fmt: skip
    procs = Table(title="processes", expand=True)
    widths = {"process": 10, "state": 8, "restarts": 8, "pid": 7, "last exit": 9}
    for col, width in widths.items():
        procs.add_column(col, no_wrap=True, min_width=width)
    # One line per process (cut with an ellipsis): the whole view fits an 80x24 terminal.
    procs.add_column("what", no_wrap=True, overflow="ellipsis")
    for c in s.children:
        style = "green" if c.state == "running" else "yellow"
        procs.add_row(
            c.name, f"[{style}]{c.state}[/]", str(c.restarts), str(c.pid or "-"),
            "-" if c.last_exit is None else str(c.last_exit), c.doc,
        )  # fmt: skip
    title = f"bursa run - up {s.uptime_s}s - data {data_dir} - Ctrl-C stops"
    return Group(Panel(market, title=title), procs)


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
