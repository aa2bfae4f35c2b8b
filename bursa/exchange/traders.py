"""The demo order flow of `bursa run`, a supervised child: a market maker and takers.

Every cycle the market maker (user 1) cancels its quotes and places a ladder of
:data:`LEVELS` bids and asks around a mid price that wanders (integer random walk,
pulled back to 60,000 USDT); each taker (users 2..4) sends an IOC order crossing the
spread with probability 1/2.  Everything goes through the core's trade socket (the
gateway takes over once it lands).

Order ids must increase per user and stay below 2**40 across restarts of this
process, so they start from the clock: ``8 * (milliseconds since 2026-01-01)`` and
count up by one (at most 8 orders per millisecond per user on average, far above
this flow's rate; room until 2030).  Any error exits with status 1 and the
supervisor starts the process again.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

from bindings.client import CoreClient
from bursa import run as tour
from bursa.exchange.market import MAKER, TAKERS
from engine.wire import commands
from pyx.enums import Side, Stp, Tif

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
IDS_PER_MS = 8
MAX_ORDER_ID = 2**40 - 1
LEVELS = 5
SPREAD_TICKS = 5 * tour.TICK_STEP  # half spread: 0.50 USDT
STEP_TICKS = 2 * tour.TICK_STEP
QUOTE_LOTS = 500  # 0.05 BTC per level
TAKER_MAX_LOTS = 300
WALK_TICKS = 3 * tour.TICK_STEP
REQUEST_TIMEOUT_MS = 5_000


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


def main(argv: list[str] | None = None) -> int:
    """Send the flow until SIGTERM/SIGINT; exit 1 on any core error."""
    p = argparse.ArgumentParser(prog="python -m bursa.exchange.traders", description=__doc__)
    p.add_argument("--trade-endpoint", required=True, help="the core's trade socket")
    p.add_argument("--cycles-per-s", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    client = CoreClient(args.trade_endpoint)
    flow = Flow(args.seed, OrderIds())
    print(json.dumps({"ready": True, "maker": MAKER, "takers": list(TAKERS)}), flush=True)
    period = 1.0 / max(args.cycles_per_s, 0.001)
    sent = 0
    try:
        while not stop.is_set():
            reps = client.request(flow.cycle(), REQUEST_TIMEOUT_MS)
            sent += len(reps)
            stop.wait(period)
    except Exception as e:  # the supervisor restarts us; say why on stderr
        print(f"traders: stopping after {sent} commands: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
