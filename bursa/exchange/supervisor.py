"""`bursa run`: start the whole local exchange, keep it running, stop it cleanly.

    bursa run [--config FILE] [--data-dir DIR] [--for SECONDS] [--fresh]

Starts the children of :data:`bursa.exchange.children.CHILDREN` in order (core in
``fsync`` mode, simulated chain, market data, clearing, wallet, order-entry gateway,
demo traders trading through the gateway with API keys, demo payments on the
simulated chain: deposits and a withdrawal through the wallet), each
waited for until its JSON ready line, wired over ipc:// sockets under ``DIR/run/``.
Every child serves Prometheus metrics (the ports are assigned here, listed in the
ready line) and logs JSON lines to ``DIR/logs/<child>.log``.
On the first start it creates the demo market and the demo users' gateway API keys
(:mod:`bursa.exchange.market`; private keys in ``DIR/gateway/keys/``, mode 0600);
later starts resume the same state (journal, snapshots, SQLite ledger, wallet DB,
gateway DB and keys).
A crashed child is started again after a delay doubling from ``backoff_initial_ms``
up to ``backoff_max_ms``.  SIGINT/SIGTERM (or ``--for``) stop the children in
reverse order, so the core stops last and writes its snapshot.

It prints one JSON ready line (``{"ready": true, "data_dir": ..., "metrics": URL,
"children": {...}}``) and then, every ``summary_every_s``, a plain-text summary line:
best bid/ask from the market-data feed, trades seen on the feed, core seq, ledger lag
(core seq minus the ledger's last applied seq), journal fdatasync time, hot wallet,
pending withdrawals, alerts and each child's state and restarts.  On a terminal a rich
dashboard shows more (book, trades, latency), refreshed every second; Prometheus gauges
of the same readings are served on 127.0.0.1 (:mod:`bursa.exchange.view`).
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import zmq
from rich.console import Console
from rich.live import Live

from bindings.client import CoreClient
from bindings.marketdata import MarketDataClient
from bursa import run as tour
from bursa.exchange import config as config_mod
from bursa.exchange import market, payments, readings, view
from bursa.exchange.children import CHILDREN, Child, ChildError, Wiring
from engine import logs
from wallet.demo import DEMO_XPUB
from wallet.keys import KeyFile, write_key_file

LOCK_FILE = "bursa-run.lock"  # one supervisor per data directory (its sockets are fixed)
STATE_FILE = "state.json"  # in run/: setup done, the chain's port
CONTROL_TIMEOUT_MS = 2_000
MD_TIMEOUT_MS = 2_000
LOOP_S = 0.1
BOOK_DEPTH = 5  # levels per side on the dashboard
TRADES_SHOWN = 5
SCREENSHOT_WIDTH = 120  # columns of the --screenshot image

log = logging.getLogger("bursa.run")


def free_port() -> int:
    """A free loopback TCP port (kept for the simulated chain across restarts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def child_config(
    cfg: dict[str, Any], chain_port: int, hot_key_file: Path | None = None
) -> dict[str, Any]:
    """The children's config file: each section passed through, the wallet's chain added
    (and, with ``hot_key_file``, the demo's withdrawal table: :mod:`.payments`)."""
    wallet = dict(cfg["wallet"])
    chains = dict(wallet.get("chains", {}))
    chains.setdefault(
        "sbtc",
        {
            "kind": "sim-rpc",
            "network": "btc-regtest",
            "url": f"http://127.0.0.1:{chain_port}",
            "xpub": DEMO_XPUB,
            "credit_confirmations": 3,
            "pool_size": 4,
            "assets": [{"asset_id": tour.BTC, "min_deposit": 10_000}],
        },
    )
    wallet["chains"] = chains
    if hot_key_file is not None:
        for key, table in payments.withdraw_table(hot_key_file).items():
            wallet.setdefault(key, table)
    return {
        "core_server": cfg["core"],
        "marketdata": cfg["marketdata"],
        "clearing": cfg["clearing"],
        "wallet": wallet,
        "gateway": cfg["gateway"],
        "api": cfg["api"],
    }


def demo_hot_key(key_file: Path, pass_file: Path) -> None:
    """Write the demo hot wallet's key file and its passphrase file (mode 0600), once."""
    if key_file.exists() and pass_file.exists():
        return
    key_file.parent.mkdir(parents=True, exist_ok=True)
    passphrase = secrets.token_hex(16)
    fd = os.open(pass_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(passphrase + "\n")
    write_key_file(key_file, KeyFile(payments.HOT_KEY, payments.NETWORK), passphrase)


def fresh(data_dir: Path) -> None:
    """Remove what `bursa run` keeps under ``data_dir`` (and nothing else)."""
    for sub in (
        "core",
        "clearing",
        "wallet",
        "marketdata",
        "gateway",
        "api",
        "run",
        "chain",
        "logs",
    ):
        shutil.rmtree(data_dir / sub, ignore_errors=True)


class Monitor:
    """What the summary shows: the feed (BBO, trades), core seq, ledger seq."""

    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self.md: MarketDataClient | None = None
        self.admin: CoreClient | None = None
        self.trades_seen = 0
        self.core_seq = 0
        self.ledger_seq = 0
        self.ledger_db = wiring.data_dir / "clearing" / "ledger.db"
        self.wallet_db = wiring.data_dir / "wallet" / "wallet.db"
        self.rates = readings.Rates()
        self.last_money = view.Money()

    def _count(self, _msg: Any) -> None:
        self.trades_seen += 1

    def poll(self, md_running: bool) -> None:
        """Apply feed messages (reconnect after a market-data restart)."""
        if not md_running:
            self.close_md()
            return
        try:
            if self.md is None:
                r = self.wiring.ready["marketdata"]
                self.md = MarketDataClient(
                    str(r["pub"]), str(r["service"]), symbols=[tour.SYMBOL_ID],
                    channels=("bbo", "trades", "l2"), timeout_ms=MD_TIMEOUT_MS,
                )  # fmt: skip
                self.md.on("trades", self._count)
            self.md.poll(0)
        except (TimeoutError, zmq.ZMQError, RuntimeError):
            self.close_md()

    def close_md(self) -> None:
        """Drop the feed client (made again at the next poll)."""
        if self.md is not None:
            self.md.close()
            self.md = None

    def refresh(self, core_running: bool) -> None:
        """Core seq (admin ``status``) and the ledger's last seq (its SQLite file)."""
        if core_running:
            try:
                if self.admin is None:
                    self.admin = CoreClient(str(self.wiring.ready["core"]["admin"]))
                self.core_seq = int(self.admin.control("status", CONTROL_TIMEOUT_MS)["last_seq"])
            except (TimeoutError, zmq.ZMQError, RuntimeError):
                self.close_admin()
        if self.ledger_db.exists():
            try:
                con = sqlite3.connect(f"file:{self.ledger_db}?mode=ro", uri=True, timeout=1)
                try:
                    row = con.execute("SELECT last_seq FROM clearing_state WHERE id = 1").fetchone()
                finally:
                    con.close()
                self.ledger_seq = int(row[0]) if row else 0
            except sqlite3.Error:
                pass  # the follower is creating its schema; next time

    def close_admin(self) -> None:
        """Drop the admin client (a core restart)."""
        if self.admin is not None:
            self.admin.close()
            self.admin = None

    def bbo(self) -> tuple[int, int]:
        """(best bid, best ask) in price ticks, 0 for an empty side."""
        if self.md is None:
            return 0, 0
        b = self.md.books[tour.SYMBOL_ID].bbo
        return b[0], b[3]

    def book(self, depth: int = BOOK_DEPTH) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The top ``depth`` levels (price ticks, qty lots) of each side, best first."""
        if self.md is None:
            return [], []
        bk = self.md.books[tour.SYMBOL_ID]
        return [(p, q) for p, q, _ in bk.bids(depth)], [(p, q) for p, q, _ in bk.asks(depth)]

    def last_trades(self, n: int = TRADES_SHOWN) -> list[tuple[int, int, int]]:
        """The latest ``n`` trades (price ticks, qty lots, aggressor side), newest first."""
        if self.md is None:
            return []
        trades = list(self.md.books[tour.SYMBOL_ID].trades)[-n:]
        return [(t["price_ticks"], t["qty_lots"], t["aggressor_side"]) for t in reversed(trades)]

    def money(self) -> view.Money:
        """The wallet's reading from its metrics endpoint (zeros while it is away)."""
        w = readings.scrape(self.wiring.ready.get("wallet", {}).get("metrics"))
        if not w:
            return self.last_money
        tot = readings.total
        hot = tot(w, "bursa_wallet_balance", tier="hot")
        tiers = {lab.get("tier") for lab, _ in w.get("bursa_wallet_balance", [])}
        tier = "hot" if "hot" in tiers else "deposit"
        if tier == "deposit":
            hot = tot(w, "bursa_wallet_balance", tier="deposit")
        done = tot(w, "bursa_wallet_withdrawals", state="committed")
        self.last_money = view.Money(
            hot=int(hot),
            hot_tier=tier,
            credited=int(tot(w, "bursa_wallet_credited", asset=str(tour.BTC))),
            deposits=int(tot(w, "bursa_wallet_deposits")),
            pending_withdrawals=int(tot(w, "bursa_wallet_withdrawals_pending")),
            withdrawals_done=int(done),
            alerts=int(tot(w, "bursa_wallet_alerts_total")),
        )
        return self.last_money

    def close(self) -> None:
        """Close every socket."""
        self.close_md()
        self.close_admin()


class Supervisor:
    """The children, their restarts with backoff, the summary and the clean stop."""

    def __init__(self, cfg: dict[str, Any], data_dir: Path) -> None:
        run = cfg["run"]
        self.cfg = cfg
        self.run = run
        self.data_dir = data_dir
        self.run_dir = data_dir / "run"
        for sub in ("core", "clearing", "wallet", "run/logs", "logs", "chain"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.log_dir = data_dir / "logs"
        self.events: list[str] = []  # recent supervisor warnings, newest first
        self.state = self._load_state()
        self.wiring = Wiring(
            data_dir,
            self.run_dir / "children.toml",
            cfg,
            chain_port=int(self.state["chain_port"]),
            gateway_port=int(self.state["gateway_port"]),
        )
        hot_key = None
        if run["demo"]:
            hot_key = self.wiring.hot_key_file
            demo_hot_key(hot_key, self.wiring.hot_pass_file)
        self.wiring.config_file.write_text(
            config_mod.dumps(child_config(cfg, self.wiring.chain_port, hot_key))
        )
        specs = [s for s in CHILDREN if run["demo"] or not s.demo]
        initial = run["backoff_initial_ms"] / 1000
        self.children = [Child(s, self.run_dir / "logs", initial, self.log_dir) for s in specs]
        self.by_name = {c.name: c for c in self.children}
        self.monitor = Monitor(self.wiring)
        self.metrics = view.Metrics()
        self.stopping = False
        self.t0 = time.monotonic()

    def _load_state(self) -> dict[str, Any]:
        path = self.run_dir / STATE_FILE
        if path.exists():
            state: dict[str, Any] = json.loads(path.read_text())
        else:
            state = {"setup_done": False, "chain_port": free_port()}
        if "gateway_port" not in state:  # a data directory from before the gateway child
            state["gateway_port"] = free_port()
        path.write_text(json.dumps(state))
        return state

    def _save_state(self) -> None:
        (self.run_dir / STATE_FILE).write_text(json.dumps(self.state))

    def request_stop(self, *_: Any) -> None:
        """Signal handler: stop at the next loop turn."""
        self.stopping = True

    def start_child(self, child: Child) -> None:
        """Start one child and wait for its ready line (raises :class:`ChildError`)."""
        if child.name == "gateway":
            gw = self.wiring.gateway_dir
            market.api_keys(gw / "gateway.db", gw / "keys")
        ready = child.start(child.spec.argv(self.wiring), self.run["ready_timeout_s"])
        self.wiring.ready[child.name] = ready
        if child.name == "core" and not self.state["setup_done"]:
            seq = market.create(ready)
            self.state["setup_done"] = True
            self._save_state()
            print(f"created the demo market {tour.SYMBOL} (seq 1..{seq})", flush=True)

    def start_all(self) -> None:
        """Start every child in table order (a failure here stops everything)."""
        for child in self.children:
            if self.stopping:
                return
            self.start_child(child)

    def supervise(self, now: float) -> None:
        """Notice exits, schedule restarts with backoff, start children that are due."""
        run = self.run
        for child in self.children:
            if child.state == "running":
                rc = child.exited()
                if rc is not None:
                    child.last_exit = rc
                    child.state = "backoff"
                    child.next_start = now + child.backoff_s
                    self.event(
                        f"{child.name} exited with status {rc}; restart in {child.backoff_s:.1f} s",
                        "warning",
                    )
                    child.backoff_s = min(child.backoff_s * 2, run["backoff_max_ms"] / 1000)
                elif now - child.started_at > run["healthy_after_s"]:
                    child.backoff_s = run["backoff_initial_ms"] / 1000
            elif child.state == "backoff" and now >= child.next_start and not self.stopping:
                try:
                    self.start_child(child)
                    child.restarts += 1
                    self.event(
                        f"{child.name} restarted (pid {child.proc.pid if child.proc else '?'})"
                    )
                except (ChildError, OSError, TimeoutError, zmq.ZMQError, RuntimeError) as e:
                    child.state = "backoff"
                    child.next_start = time.monotonic() + child.backoff_s
                    child.backoff_s = min(child.backoff_s * 2, run["backoff_max_ms"] / 1000)
                    self.event(f"{child.name}: {e}; next try in {child.backoff_s:.1f} s", "error")

    def reading(self) -> view.Snapshot:
        """One reading of the exchange for the summary, the dashboard and the metrics."""
        m = self.monitor
        m.refresh(self.by_name["core"].state == "running")
        bid, ask = m.bbo()
        kids = [
            view.ChildView(
                c.name,
                c.state,
                c.restarts,
                c.proc.pid if c.proc else None,
                c.last_exit,
                c.spec.doc,
            )
            for c in self.children
        ]
        up = int(time.monotonic() - self.t0)
        bids, asks = m.book()
        core_metrics = readings.scrape(self.wiring.ready.get("core", {}).get("metrics"))
        return view.Snapshot(
            up, bid, ask, m.trades_seen, m.core_seq, m.ledger_seq, kids,
            bids=bids, asks=asks, trades=m.last_trades(), rates=m.rates.update(core_metrics),
            money=m.money(), alerts=[*self.events, *readings.recent_alerts(m.wallet_db)][:5],
        )  # fmt: skip

    def event(self, msg: str, level: str = "info") -> None:
        """A supervisor event: printed, logged (JSON, ``DATA/logs/run.log``), and shown
        among the dashboard's recent alerts when it is a warning."""
        print(msg, flush=True)
        getattr(log, level)(msg)
        if level != "info":
            self.events.insert(0, f"{time.strftime('%H:%M:%S', time.gmtime())} {msg}")
            del self.events[5:]

    def loop(self, duration_s: float | None, live: Live | None = None) -> None:
        """Supervise and report until stopped or ``duration_s`` elapsed: a summary line
        every ``summary_every_s``, or the dashboard every second on a terminal."""
        every = 1 if live is not None else self.run["summary_every_s"]
        next_report = time.monotonic() + (0 if live is not None else every)
        end = None if duration_s is None else time.monotonic() + duration_s
        while not self.stopping and (end is None or time.monotonic() < end):
            now = time.monotonic()
            self.supervise(now)
            self.monitor.poll(self.by_name["marketdata"].state == "running")
            if now >= next_report:
                snap = self.reading()
                self.metrics.update(snap)
                if live is not None:
                    dash = view.dashboard(snap, str(self.data_dir), live.console.width)
                    live.update(dash, refresh=True)
                else:
                    print(view.summary_line(snap), flush=True)
                next_report = now + every
            time.sleep(LOOP_S)

    def stop_all(self) -> dict[str, int | None]:
        """Stop in reverse table order (the core last, after its snapshot)."""
        self.monitor.close()
        codes = {}
        for child in reversed(self.children):
            codes[child.name] = child.stop(self.run["stop_timeout_s"])
        return codes


def screenshot(sup: Supervisor, path: str, width: int = SCREENSHOT_WIDTH) -> None:
    """Render the dashboard of a reading taken now into an SVG file (rich's recorder)."""
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True)
    console.print(view.dashboard(sup.reading(), sup.data_dir.name, width))
    console.save_svg(path, title="bursa run")
    print(f"dashboard saved to {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the exchange; 0 after a clean stop, 1 if it could not start, 2 on bad config."""
    p = argparse.ArgumentParser(prog="bursa run", description=__doc__.splitlines()[0])
    p.add_argument("--config", help=f"TOML file (default ./{config_mod.DEFAULT_FILE} if present)")
    p.add_argument("--data-dir", help="data directory (default [run] data_dir = data)")
    p.add_argument(
        "--for", dest="duration", type=float, metavar="SECONDS", help="stop after SECONDS"
    )
    p.add_argument("--fresh", action="store_true", help="delete the previous state first")
    p.add_argument("--no-demo", action="store_true", help="no demo traders")
    p.add_argument(
        "--screenshot",
        metavar="PATH",
        help="at the end (--for), save the dashboard as an SVG image (docs/img/dashboard.svg)",
    )
    p.add_argument(
        "--script", action="store_true", help="the scripted tour instead (bursa tour; exits)"
    )
    args, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.script:
        return tour.main(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as e:
        print(f"bursa run: {e}", file=sys.stderr)
        return 2
    if args.data_dir:
        cfg["run"]["data_dir"] = args.data_dir
    if args.no_demo:
        cfg["run"]["demo"] = False
    data_dir = Path(cfg["run"]["data_dir"]).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(data_dir / LOCK_FILE, "a")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"bursa run: another bursa run uses {data_dir}", file=sys.stderr)
        return 2
    if args.fresh:
        fresh(data_dir)
    sup = Supervisor(cfg, data_dir)
    logs.setup("run", "json", stream=open(sup.log_dir / "run.log", "a"))  # noqa: SIM115
    signal.signal(signal.SIGINT, sup.request_stop)
    signal.signal(signal.SIGTERM, sup.request_stop)
    ok = True
    try:
        sup.start_all()
        ready: dict[str, Any] = {"ready": True, "data_dir": str(data_dir)}
        if cfg["run"]["metrics_port"] >= 0:
            port = sup.metrics.serve(cfg["run"]["metrics_port"])
            ready["metrics"] = f"http://127.0.0.1:{port}/metrics"
        ready["process_metrics"] = {
            c.name: c.ready["metrics"] for c in sup.children if c.ready.get("metrics")
        }
        ready["logs"] = str(sup.log_dir)
        ready["children"] = {c.name: c.ready for c in sup.children}
        print(json.dumps(ready), flush=True)
        log.info("ready; process metrics %s", json.dumps(ready["process_metrics"]))
        mode = cfg["run"]["dashboard"]
        if mode == "on" or (mode == "auto" and sys.stdout.isatty()):
            with Live(console=Console(), auto_refresh=False, screen=False) as live:
                sup.loop(args.duration, live)
        else:
            sup.loop(args.duration)
        if args.screenshot:
            screenshot(sup, args.screenshot)
    except (ChildError, OSError, TimeoutError, zmq.ZMQError, RuntimeError) as e:
        print(f"bursa run: could not start: {e} (logs in {sup.run_dir / 'logs'})", file=sys.stderr)
        ok = False
    finally:
        codes = sup.stop_all()
    print(f"stopped: {json.dumps(codes)}", flush=True)
    log.info("stopped: %s", json.dumps(codes))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
