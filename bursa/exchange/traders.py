"""The demo order flow of `bursa run`, a supervised child: a market maker and takers.

Every cycle the market maker (user 1) cancels its quotes and places a ladder of
:data:`LEVELS` bids and asks around a mid price that wanders (integer random walk,
pulled back to 60,000 USDT); each taker (users 2..4) sends an IOC order crossing the
spread with probability 1/2.  Everything goes through the order-entry gateway: one
session per user (:class:`bindings.gateway_client.GatewayClient`) logged in with the
user's API key file; the cycle's core command records become ENTER_ORDER and
MASS_CANCEL messages.  Execution reports are read after every cycle and counted in
``--stats-file`` (JSON, rewritten about once a second).  A lost session (gateway
restart) logs in again asking for the messages it missed (the gateway replays them);
a new process logs in live (``next_seq`` 0).

Order ids must increase per user and stay below 2**40 across restarts of this
process, so they start from the clock: ``8 * (milliseconds since 2026-01-01)`` and
count up by one (at most 8 orders per millisecond per user on average, far above
this flow's rate; room until 2030); they are the sessions' ``cl_ord_id``.  Any error
exits with status 1 and the supervisor starts the process again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bindings.gateway_client import GatewayClient, LoginRejectedError, SessionEndedError
from bursa import run as tour
from bursa.exchange.market import MAKER, TAKERS, key_file
from engine import logs
from engine.wire import commands
from gateway.wire.codes import GwReason
from pyx.enums import CmdKind, Side, Stp, Tif

log = logging.getLogger("bursa.traders")

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
IDS_PER_MS = 8
MAX_ORDER_ID = 2**40 - 1
LEVELS = 5
SPREAD_TICKS = 5 * tour.TICK_STEP  # half spread: 0.50 USDT
STEP_TICKS = 2 * tour.TICK_STEP
QUOTE_LOTS = 500  # 0.05 BTC per level
TAKER_MAX_LOTS = 300
WALK_TICKS = 3 * tour.TICK_STEP
LOGIN_TIMEOUT_S = 30.0
DRAIN_S = 0.005  # per read while emptying a session after a cycle
STATS_EVERY_S = 1.0


class OrderIds:
    """Increasing per-user order ids that keep increasing across restarts (clock based)."""

    def __init__(self, now_ms: int | None = None) -> None:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        self.next_id = max(1, (ms - EPOCH_MS) * IDS_PER_MS)
        self.per_user: dict[int, int] = {}

    def take(self, user_id: int) -> int:
        """The next order id of ``user_id``."""
        oid = self.per_user.get(user_id, self.next_id) + 1
        if oid > MAX_ORDER_ID:
            raise OverflowError("order ids exhausted")
        self.per_user[user_id] = oid
        return oid


class Flow:
    """One cycle's commands, from a seeded random generator."""

    def __init__(self, seed: int, ids: OrderIds) -> None:
        self.rng = random.Random(seed ^ time.time_ns())
        self.ids = ids
        self.mid = tour.MID_PRICE_TICKS

    def cycle(self) -> Any:
        """Cancel + ladder of the maker, then the takers' IOC orders (one frame)."""
        drift = (tour.MID_PRICE_TICKS - self.mid) // 50
        step = self.rng.randint(-WALK_TICKS, WALK_TICKS) + drift
        self.mid = (self.mid + step) // tour.TICK_STEP * tour.TICK_STEP
        recs = [commands.mass_cancel(MAKER, symbol_id=tour.SYMBOL_ID)]
        for i in range(LEVELS):
            off = SPREAD_TICKS + i * STEP_TICKS
            for side, p in ((Side.BUY, self.mid - off), (Side.SELL, self.mid + off)):
                recs.append(
                    commands.new_limit(
                        self.ids.take(MAKER),
                        MAKER,
                        tour.SYMBOL_ID,
                        side,
                        p,
                        QUOTE_LOTS,
                        stp=Stp.CANCEL_OLDEST,
                    )
                )
        for taker in TAKERS:
            if self.rng.random() < 0.5:
                continue
            side = self.rng.choice((Side.BUY, Side.SELL))
            reach = SPREAD_TICKS + STEP_TICKS * self.rng.randint(0, 2)
            p = self.mid + reach if side == Side.BUY else self.mid - reach
            lots = self.rng.randint(20, TAKER_MAX_LOTS)
            recs.append(
                commands.new_limit(
                    self.ids.take(taker),
                    taker,
                    tour.SYMBOL_ID,
                    side,
                    p,
                    lots,
                    tif=Tif.IOC,
                    stp=Stp.CANCEL_OLDEST,
                )
            )
        return np.concatenate(recs)


class Sessions:
    """One gateway session per demo user: send a cycle, read the reports, count them."""

    def __init__(self, port: int, key_dir: Path) -> None:
        self.clients = {
            u: GatewayClient("127.0.0.1", port, key_file=str(key_file(key_dir, u)))
            for u in (MAKER, *TAKERS)
        }
        self.counts: dict[str, int] = {}
        self.sent = 0
        self.request_id = 0

    def login_all(self) -> None:
        """Log in every session live (no replay of an earlier process's messages)."""
        for c in self.clients.values():
            self._login(c, 0)

    @staticmethod
    def _login(c: GatewayClient, next_seq: int | None) -> None:
        """Log in, retrying while the gateway is down or still holds the old session."""
        deadline = time.monotonic() + LOGIN_TIMEOUT_S
        while True:
            try:
                c.login(next_seq)
                return
            except (OSError, SessionEndedError, LoginRejectedError) as e:
                if isinstance(e, LoginRejectedError) and e.reason != GwReason.ALREADY_LOGGED_IN:
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"gateway login of user {c.user_id}: {e}") from e
                time.sleep(0.2)

    def send(self, recs: Any) -> None:
        """The cycle's records as gateway messages, each on its user's session."""
        for r in recs:
            c = self.clients[int(r["user_id"])]
            if c.sock is None:  # lost: log in again from the next expected seq (replay)
                self._login(c, None)
            try:
                if int(r["kind"]) == CmdKind.MASS_CANCEL:
                    self.request_id += 1
                    c.mass_cancel(self.request_id, symbol_id=int(r["symbol_id"]))
                else:
                    c.enter_order(
                        int(r["order_id"]),
                        symbol_id=int(r["symbol_id"]),
                        side=int(r["side"]),
                        qty_lots=int(r["qty_lots"]),
                        price_ticks=int(r["price_ticks"]),
                        tif=int(r["tif"]),
                        stp=int(r["stp"]),
                    )
                self.sent += 1
            except OSError:
                c.close()  # the rest of this cycle for the user is dropped

    def drain(self) -> None:
        """Read every report that arrived (recv logs in again after a lost session)."""
        for c in self.clients.values():
            if c.sock is None:
                continue
            with contextlib.suppress(TimeoutError):
                while True:
                    msg = c.recv(DRAIN_S)
                    self.counts[msg.name] = self.counts.get(msg.name, 0) + 1

    def stats(self) -> dict[str, Any]:
        """What the stats file shows."""
        return {
            "sent": self.sent,
            "received": dict(sorted(self.counts.items())),
            "logins": {str(u): c.logins for u, c in self.clients.items()},
        }

    def close(self) -> None:
        """Close every session."""
        for c in self.clients.values():
            c.close()


def write_stats(path: Path, stats: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``stats`` as JSON."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stats))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Send the flow through the gateway until SIGTERM/SIGINT; exit 1 on any error."""
    p = argparse.ArgumentParser(prog="python -m bursa.exchange.traders", description=__doc__)
    p.add_argument("--gateway-port", type=int, required=True, help="the gateway on 127.0.0.1")
    p.add_argument("--key-dir", type=Path, required=True, help="user-N.key API key files")
    p.add_argument("--stats-file", type=Path, help="JSON counts of messages sent and received")
    p.add_argument("--cycles-per-s", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    logs.add_arguments(p)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    logs.setup("traders", args.log_format, args.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sessions = Sessions(args.gateway_port, args.key_dir)
    flow = Flow(args.seed, OrderIds())
    period = 1.0 / max(args.cycles_per_s, 0.001)
    next_stats = 0.0
    try:
        sessions.login_all()
        print(json.dumps({"ready": True, "maker": MAKER, "takers": list(TAKERS)}), flush=True)
        while not stop.is_set():
            sessions.send(flow.cycle())
            sessions.drain()
            if args.stats_file is not None and time.monotonic() >= next_stats:
                write_stats(args.stats_file, sessions.stats())
                next_stats = time.monotonic() + STATS_EVERY_S
            stop.wait(period)
    except Exception as e:  # the supervisor restarts us; say why on stderr
        log.error("stopping after %d messages: %s: %s", sessions.sent, type(e).__name__, e)
        return 1
    finally:
        sessions.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
