"""`make run` / `bursa run`: the real core process, a BTC/USDT market, an order flow, a restart.

What it does, all through the core's sockets (engine/server.py, bindings/client.py):

1. starts ``python -m bursa core`` in a fresh temporary data directory, ``fsync``
   durability, loopback endpoints on free ports, and waits for its ready line;
2. creates the assets BTC (8 decimals) and USDT (6 decimals), the symbol BTC/USDT,
   two fee tiers, seven users and their deposits;
3. subscribes to the event stream (:class:`EventSubscriber`) and sends a seeded order
   flow in pipelined frames (limit orders around the mid price, crossing IOC orders,
   cancels, replaces), then a market order, a stop order that the next trade
   triggers, a withdrawal hold + commit, a duplicate deposit and two commands the
   core must reject (insufficient funds, a price off the tick grid);
4. prints the top of the book (a local book built from the event stream: the core
   has no L2 query), the last trades with their fees, every balance and the fee
   account, the conservation check, the state hash, the commands/s and reply
   latency measured and the sequence number reached;
5. stops the core with SIGTERM (it snapshots), restarts it on the same directory,
   shows it recovered to the same seq and state hash and that a new subscriber
   rebuilds the same book from the event log, stops it, checks a from-scratch
   ``bursa replay`` of the journal gives the same hash, and removes the directory
   (``--keep`` keeps it).

Units of the symbol: a price is an integer count of 0.01 USDT (``price_ticks``),
valid on a grid of 10 (a tick of 0.10 USDT); a quantity is an integer count of lots
of 0.0001 BTC (10,000 satoshi); one price unit times one lot is 0.000001 USDT, one
USDT minor unit, so the price multiplier is 1.  Everything printed is formatted from
integers with ``divmod``; no float touches a price, a quantity or an amount.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from bindings.client import CoreClient, CoreError, EventSubscriber, RoutedClient
from bursa.demo import fixed
from bursa.exchange.readyline import NotReadyError, child_env, wait_ready_line
from bursa_wire.layout import EV_DTYPE
from engine.replay import replay_dir
from engine.wire import commands
from engine.wire.frames import STATUS_APPLIED, STATUS_DUPLICATE, STATUS_REJECTED
from pyx.enums import EvFlag, EvKind, OrdType, Reason, Side, Stp, Tif

Records = np.ndarray[Any, np.dtype[np.void]]

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "tcp://127.0.0.1:*"
MODE = "fsync"
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
EVENTS_TIMEOUT_S = 30
LOG_TAIL_LINES = 20

# ------------------------------------------------------------------ the market
BTC, USDT = 1, 2
BTC_DECIMALS, USDT_DECIMALS = 8, 6
SYMBOL_ID = 1
SYMBOL = "BTC/USDT"
PRICE_DECIMALS = 2  # price_ticks count 0.01 USDT
TICK_STEP = 10  # valid prices are multiples of 10 units: a tick of 0.10 USDT
LOT_DECIMALS = 4  # qty_lots count 0.0001 BTC
BASE_PER_LOT = 10 ** (BTC_DECIMALS - LOT_DECIMALS)  # satoshi per lot
PRICE_MULTIPLIER = 1  # 0.01 USDT x 0.0001 BTC = 0.000001 USDT = 1 USDT minor unit
VALUE_DECIMALS = USDT_DECIMALS  # price_ticks * qty_lots * multiplier: USDT minor units
assert PRICE_DECIMALS + LOT_DECIMALS == VALUE_DECIMALS and PRICE_MULTIPLIER == 1
MID_PRICE_TICKS = 6_000_000  # 60,000.00 USDT
MIN_PRICE_TICKS = 3_000_000
MAX_PRICE_TICKS = 12_000_000
MAX_QTY_LOTS = 1_000_000  # 100 BTC
PROTECTION_TICKS = 50_000  # market orders trade at most 500.00 USDT from the best price
MIN_NOTIONAL_MINOR = 5 * 10**USDT_DECIMALS  # 5 USDT

# tier -> (name, maker ppm, taker ppm)
FEE_TIERS = {0: ("regular", 800, 1000), 1: ("market maker", 200, 400)}
# user id -> (name, fee tier); the traders send the flow, gus is nearly broke.
TRADERS = {
    1: ("alice", 1),
    2: ("bob", 0),
    3: ("carol", 0),
    4: ("dave", 1),
    5: ("erin", 0),
    6: ("frank", 0),
}
BROKE_USER = 7
USERS = TRADERS | {BROKE_USER: ("gus", 0)}
TRADER_DEPOSITS = {BTC: 10 * 10**BTC_DECIMALS, USDT: 1_000_000 * 10**USDT_DECIMALS}
BROKE_DEPOSITS = {USDT: 100 * 10**USDT_DECIMALS}
ASSET_NAMES = {BTC: "BTC", USDT: "USDT"}
ASSET_DECIMALS = {BTC: BTC_DECIMALS, USDT: USDT_DECIMALS}

# ---------------------------------------------------------------- the order flow
DEFAULT_ROUNDS = 24
FRAMES_PER_ROUND = 4  # frames in flight at once (the core group-commits what it finds queued)
FRAME_CMDS = 250
TARGET_RESTING_ORDERS = 500
# Crossing IOC orders reach at most this many ticks past the best opposite price at
# the start of their round; cancels and replaces only pick orders further out, so
# none of them can race a fill inside the round.
CROSS_TICKS = 3
GTC_DEPTH_TICKS = 60
PERMILLE_IOC = 150
PERMILLE_REPLACE = 80
PERMILLE_CANCEL_LOW, PERMILLE_CANCEL_HIGH = 120, 350
DEPTH_LEVELS = 5
LAST_TRADES = 10

# Positions of the event fields in ``EV_DTYPE`` records turned into tuples (tolist()).
_EV = {name: i for i, name in enumerate(EV_DTYPE.names or ())}
I_SEQ, I_OID, I_MAKER_OID = _EV["seq"], _EV["order_id"], _EV["maker_order_id"]
I_PRICE = _EV["price_ticks"]
I_QTY, I_LEAVES, I_MATCH = _EV["qty_lots"], _EV["leaves_lots"], _EV["match_id"]
I_TAKER_FEE, I_MAKER_FEE = _EV["taker_fee"], _EV["maker_fee"]
I_USER, I_MAKER_USER, I_SYMBOL = _EV["user_id"], _EV["maker_user_id"], _EV["symbol_id"]
I_KIND, I_SIDE, I_FLAGS, I_ORD_TYPE = _EV["kind"], _EV["side"], _EV["flags"], _EV["ord_type"]

STATUS_NAMES = {
    STATUS_APPLIED: "applied",
    STATUS_REJECTED: "rejected",
    STATUS_DUPLICATE: "duplicate",
}


class RunError(RuntimeError):
    """Something the demonstration checks did not hold (or the core misbehaved)."""


# ------------------------------------------------------------------ formatting


def price(price_ticks: int) -> str:
    """A price in units of 0.01 USDT, e.g. ``60,000.10``."""
    return fixed(price_ticks, PRICE_DECIMALS)


def qty(qty_lots: int) -> str:
    """A quantity in lots as BTC with 4 decimals."""
    return fixed(qty_lots, LOT_DECIMALS)


def amount(asset_id: int, amount_minor: int) -> str:
    """An amount in minor units of ``asset_id``, all decimals shown."""
    return fixed(amount_minor, ASSET_DECIMALS[asset_id])


def ppm_percent(ppm: int) -> str:
    """A rate in parts per million as a percentage (1,000 ppm = ``0.1000%``)."""
    return fixed(ppm, 4) + "%"


def micros(ns: int) -> str:
    """Nanoseconds as whole microseconds with a thousands separator."""
    return f"{ns // 1000:,} us"


def reason_name(reason: int) -> str:
    """The ``Reason`` name of a code (the number if unknown)."""
    try:
        return Reason(reason).name
    except ValueError:
        return str(reason)


def user_name(user_id: int) -> str:
    """``alice`` for a known user id, else the number."""
    return USERS[user_id][0] if user_id in USERS else str(user_id)


def weighted_percentile(samples: Iterable[tuple[int, int]], pct: int) -> int:
    """The ``pct``-th percentile of (value, count) samples (nearest rank, integers only)."""
    ordered = sorted(samples)
    total = sum(c for _, c in ordered)
    if total == 0:
        return 0
    rank = max(1, -(-total * pct // 100))
    seen = 0
    for value, count in ordered:
        seen += count
        if seen >= rank:
            return value
    return ordered[-1][0]


# ------------------------------------------------------------------ the core child


class CoreChild:
    """One ``python -m bursa core`` child process on free loopback ports.

    Its stdout (the ready line) and stderr (logs) go to files in ``work_dir`` so it
    never blocks on a full pipe.

    Parameters
    ----------
    work_dir : pathlib.Path
        Holds ``data/`` (the core's data directory) and the child's log files.
    """

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.data_dir = work_dir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.starts = 0
        self.err_path = work_dir / "core-0.log"

    def start(self) -> dict[str, Any]:
        """Start the core and wait for its ready line; returns it (a dict)."""
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        out_path = self.work_dir / f"core-{self.starts}.out"
        self.err_path = self.work_dir / f"core-{self.starts}.log"
        cmd = [sys.executable, "-m", "bursa", "core", "--data-dir", str(self.data_dir)]
        cmd += ["--mode", MODE, "--pub-endpoint", LOOPBACK, "--replay-endpoint", LOOPBACK]
        cmd += [f"--{role}-endpoint={LOOPBACK}" for role in ("trade", "fund", "admin")]
        with open(out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO, env=child_env())
        try:
            self.ready = wait_ready_line(self.proc, out_path, READY_TIMEOUT_S)
        except NotReadyError as e:
            raise RunError(f"the core: {e}") from e
        return self.ready

    def stop(self) -> int:
        """SIGTERM (the core finishes its turn, snapshots, exits) and wait; the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=STOP_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL the child if it still runs, and reap it (the error path)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def log_line(self, needle: str) -> str:
        """The last line of the current log containing ``needle`` (without the timestamp)."""
        lines = [ln for ln in self.err_path.read_text().splitlines() if needle in ln]
        return lines[-1].split("bursa.core ", 1)[-1] if lines else ""

    def log_tail(self) -> str:
        """The last lines of the current log (shown on errors)."""
        if not self.err_path.exists():
            return ""
        return "\n".join(self.err_path.read_text().splitlines()[-LOG_TAIL_LINES:])


# ------------------------------------------------------------------ the local book


class LocalBook:
    """What a subscriber knows from the event stream: resting orders, trades, fees.

    Built from ACCEPTED / TRIGGERED / TRADE / CANCELED / REDUCED / REPLACED events
    keyed by order id (the core has no L2 query).  A limit order enters on ACCEPTED
    (a stop-limit on TRIGGERED) with its quantity; trades, reduces, replaces and
    cancels update or remove it; an IOC or market remainder always ends with
    CANCELED, so after every command the dict holds exactly the resting orders.
    """

    def __init__(self, symbol_id: int) -> None:
        self.symbol_id = symbol_id
        # order id -> [user id, side, price ticks, open lots]
        self.orders: dict[int, list[int]] = {}
        self.stops: set[int] = set()
        self.trades: deque[tuple[int, ...]] = deque(maxlen=LAST_TRADES)
        self.recent: deque[tuple[int, ...]] = deque(maxlen=4096)
        self.n_events = 0
        self.n_trades = 0
        self.volume_lots = 0
        self.fees_minor = 0  # quote (USDT) minor units paid by takers and makers
        self.last_price_ticks = 0

    def apply(self, events: Records) -> None:
        """Apply a batch of ``EV_DTYPE`` records in sequence order."""
        for ev in events.tolist():
            self.n_events += 1
            self.recent.append(ev)
            if ev[I_SYMBOL] == self.symbol_id and ev[I_KIND] <= EvKind.TRIGGERED:
                self._apply_order_event(ev)

    def _apply_order_event(self, ev: tuple[int, ...]) -> None:
        kind, oid = ev[I_KIND], ev[I_OID]
        if kind == EvKind.ACCEPTED:
            if ev[I_ORD_TYPE] == OrdType.LIMIT:
                self.orders[oid] = [ev[I_USER], ev[I_SIDE], ev[I_PRICE], ev[I_LEAVES]]
            elif ev[I_ORD_TYPE] in (OrdType.STOP_LIMIT, OrdType.STOP_MARKET):
                self.stops.add(oid)
        elif kind == EvKind.TRIGGERED:
            self.stops.discard(oid)
            if ev[I_ORD_TYPE] == OrdType.STOP_LIMIT:
                self.orders[oid] = [ev[I_USER], ev[I_SIDE], ev[I_PRICE], ev[I_LEAVES]]
        elif kind == EvKind.TRADE:
            self._apply_trade(ev)
        elif kind == EvKind.CANCELED:
            self.orders.pop(oid, None)
            self.stops.discard(oid)
        elif kind in (EvKind.REDUCED, EvKind.REPLACED):
            # A market taker reduced by self-trade prevention never rests: not tracked.
            order = self.orders.get(oid)
            if order is not None:
                if kind == EvKind.REPLACED:
                    order[2] = ev[I_PRICE]
                order[3] = ev[I_LEAVES]

    def _apply_trade(self, ev: tuple[int, ...]) -> None:
        maker = self.orders.get(ev[I_MAKER_OID])
        if maker is None:
            raise RunError(f"trade at seq {ev[I_SEQ]} names unknown maker {ev[I_MAKER_OID]}")
        maker[3] -= ev[I_QTY]
        assert maker[3] >= 0 and (maker[3] == 0) == bool(ev[I_FLAGS] & EvFlag.MAKER_DONE)
        if maker[3] == 0:
            del self.orders[ev[I_MAKER_OID]]
        taker = self.orders.get(ev[I_OID])
        if taker is not None:
            taker[3] = ev[I_LEAVES]
            if taker[3] == 0:
                del self.orders[ev[I_OID]]
        self.n_trades += 1
        self.volume_lots += ev[I_QTY]
        self.fees_minor += ev[I_TAKER_FEE] + ev[I_MAKER_FEE]
        self.last_price_ticks = ev[I_PRICE]
        self.trades.append(ev)

    def levels(self, side: int) -> list[tuple[int, int, int]]:
        """(price ticks, open lots, orders) per level of ``side``, best first."""
        agg: dict[int, list[int]] = {}
        for _, s, p, lots in self.orders.values():
            if s == side:
                level = agg.setdefault(p, [0, 0])
                level[0] += lots
                level[1] += 1
        best_first = sorted(agg, reverse=side == Side.BUY)
        return [(p, agg[p][0], agg[p][1]) for p in best_first]

    def best(self, side: int) -> int:
        """Best price of ``side`` in ticks, 0 if the side is empty."""
        prices = [p for _, s, p, _ in self.orders.values() if s == side]
        if not prices:
            return 0
        return max(prices) if side == Side.BUY else min(prices)

    def events_of(self, seq: int) -> list[tuple[int, ...]]:
        """The recent events of command ``seq``."""
        return [ev for ev in self.recent if ev[I_SEQ] == seq]


def follow(sub: EventSubscriber, book: LocalBook, upto_seq: int) -> None:
    """Poll ``sub`` into ``book`` until every event up to ``upto_seq`` is applied."""
    deadline = time.monotonic() + EVENTS_TIMEOUT_S
    while sub.next_seq <= upto_seq:
        if time.monotonic() > deadline:
            raise RunError(f"events stopped at seq {sub.next_seq - 1}, expected {upto_seq}")
        for frame in sub.poll(timeout_ms=100):
            book.apply(frame.events)


# ------------------------------------------------------------------ the flow


class FlowPlanner:
    """Seeded order flow, one round at a time, from the book at the round's start.

    Parameters
    ----------
    seed : int
        Seed of the ``random.Random`` whose integer draws pick users, sides, price
        offsets (ticks) and quantities (lots).
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_order_id = 1
        self.mix: Counter[str] = Counter()

    def order_id(self) -> int:
        """A fresh order id (unique for the whole run)."""
        oid = self.next_order_id
        self.next_order_id += 1
        return oid

    def round(self, book: LocalBook, n_cmds: int) -> Records:
        """``n_cmds`` commands planned from ``book`` (which must not change meanwhile)."""
        rng = self.rng
        bid, ask = book.best(Side.BUY), book.best(Side.SELL)
        if not bid and not ask:
            bid, ask = MID_PRICE_TICKS - TICK_STEP, MID_PRICE_TICKS + TICK_STEP
        bid, ask = bid or ask - 2 * TICK_STEP, ask or bid + 2 * TICK_STEP
        reach = CROSS_TICKS * TICK_STEP
        far = [
            oid
            for oid, (_, s, p, _) in book.orders.items()
            if (s == Side.SELL and p > ask + reach) or (s == Side.BUY and p < bid - reach)
        ]
        rng.shuffle(far)
        resting = len(book.orders)
        cancel_pm = PERMILLE_CANCEL_HIGH if resting > TARGET_RESTING_ORDERS else PERMILLE_CANCEL_LOW
        out: list[Records] = []
        for _ in range(n_cmds):
            r = rng.randrange(1000)
            if r < PERMILLE_IOC:
                out.append(self._ioc(bid, ask))
            elif r < PERMILLE_IOC + PERMILLE_REPLACE and far:
                out.append(self._replace(book, far.pop()))
            elif r < PERMILLE_IOC + PERMILLE_REPLACE + cancel_pm and far:
                oid = far.pop()
                out.append(commands.cancel(oid, book.orders[oid][0]))
                self.mix["cancel"] += 1
            else:
                out.append(self._gtc(bid, ask))
        return np.concatenate(out)

    def _gtc(self, bid: int, ask: int) -> Records:
        rng = self.rng
        depth = 1 + min(rng.randrange(GTC_DEPTH_TICKS), rng.randrange(GTC_DEPTH_TICKS))
        side = Side.BUY if rng.randrange(2) else Side.SELL
        p = ask - depth * TICK_STEP if side == Side.BUY else bid + depth * TICK_STEP
        lots = 1 + rng.randrange(50) if rng.randrange(10) else 50 + rng.randrange(450)
        self.mix["limit GTC"] += 1
        user = rng.choice(list(TRADERS))
        return commands.new_limit(
            self.order_id(), user, SYMBOL_ID, side, p, lots, stp=Stp.CANCEL_NEWEST
        )

    def _ioc(self, bid: int, ask: int) -> Records:
        rng = self.rng
        side = Side.BUY if rng.randrange(2) else Side.SELL
        past = rng.randrange(CROSS_TICKS + 1) * TICK_STEP
        p = ask + past if side == Side.BUY else bid - past
        self.mix["crossing IOC"] += 1
        return commands.new_limit(
            self.order_id(),
            rng.choice(list(TRADERS)),
            SYMBOL_ID,
            side,
            p,
            1 + rng.randrange(100),
            tif=Tif.IOC,
            stp=Stp.CANCEL_NEWEST,
        )

    def _replace(self, book: LocalBook, oid: int) -> Records:
        user, side, p, _ = book.orders[oid]
        step = (1 + self.rng.randrange(5)) * TICK_STEP
        new_p = p - step if side == Side.BUY else p + step
        self.mix["replace"] += 1
        return commands.replace(oid, user, new_p, 1 + self.rng.randrange(50))


def send_round(
    client: CoreClient, cmds: Records, latencies: list[tuple[int, int]]
) -> tuple[Records, int]:
    """Send ``cmds`` in frames of :data:`FRAME_CMDS` back to back, then collect the replies.

    Appends (latency ns, commands) samples to ``latencies``: a command's latency runs
    from the send of its frame to the arrival of its reply.  Returns the replies in
    command order and the round's duration in ns (first send to last reply).
    """
    pending: deque[list[int]] = deque()  # [send ns, replies still due]
    t0 = time.perf_counter_ns()
    for i in range(0, len(cmds), FRAME_CMDS):
        frame = cmds[i : i + FRAME_CMDS]
        pending.append([time.perf_counter_ns(), len(frame)])
        client.send(frame)
    got: list[Records] = []
    while pending:
        reps = client.recv_replies()
        now = time.perf_counter_ns()
        got.append(reps)
        left = len(reps)
        while left:
            take = min(left, pending[0][1])
            latencies.append((now - pending[0][0], take))
            pending[0][1] -= take
            left -= take
            if pending[0][1] == 0:
                pending.popleft()
    return np.concatenate(got), time.perf_counter_ns() - t0


# ------------------------------------------------------------------ the session


class Session:
    """Talks to one running core: setup, flow, single commands, reports."""

    def __init__(self, ready: dict[str, Any], seed: int) -> None:
        self.client = RoutedClient.from_ready(ready)
        self.sub = EventSubscriber(str(ready["pub"]), str(ready["replay"]), from_seq=1)
        self.book = LocalBook(SYMBOL_ID)
        self.planner = FlowPlanner(seed)
        self.deposited: Counter[int] = Counter()  # asset -> minor units
        self.withdrawn: Counter[int] = Counter()
        self.next_ref = 1
        self.last_seq = 0

    def close(self) -> None:
        """Close both sockets."""
        self.client.close()
        self.sub.close()

    def one(self, rec: Records) -> np.void:
        """Send one command, wait for its reply and its events; returns the reply."""
        rep = self.client.one(rec)
        self.last_seq = max(self.last_seq, int(rep["seq"]))
        follow(self.sub, self.book, self.last_seq)
        return rep

    def expect(self, rec: Records, status: int, what: str, reason: int = Reason.OK) -> np.void:
        """:meth:`one`, raising :class:`RunError` unless the reply has ``status``/``reason``."""
        rep = self.one(rec)
        if int(rep["status"]) != status or int(rep["reason"]) != reason:
            got = f"{STATUS_NAMES.get(int(rep['status']))} {reason_name(int(rep['reason']))}"
            raise RunError(f"{what}: expected {STATUS_NAMES[status]} {reason_name(reason)}, {got}")
        return rep

    def deposit(self, user_id: int, asset_id: int, amount_minor: int) -> None:
        """Credit a deposit under a fresh external reference."""
        rec = commands.deposit(self.next_ref, user_id, asset_id, amount_minor)
        self.expect(rec, STATUS_APPLIED, f"deposit ref {self.next_ref}")
        self.next_ref += 1
        self.deposited[asset_id] += amount_minor

    def setup(self) -> None:
        """Assets, symbol, fee tiers, users and deposits; prints what was created."""
        for asset_id, dec in ((BTC, BTC_DECIMALS), (USDT, USDT_DECIMALS)):
            self.expect(commands.add_asset(asset_id, dec), STATUS_APPLIED, "add asset")
        sym = commands.add_symbol(
            SYMBOL_ID, BTC, USDT, tick_step=TICK_STEP, lot_step=1,
            price_multiplier=PRICE_MULTIPLIER, base_per_lot=BASE_PER_LOT, min_qty_lots=1,
            max_qty_lots=MAX_QTY_LOTS, min_price_ticks=MIN_PRICE_TICKS,
            max_price_ticks=MAX_PRICE_TICKS, protection_ticks=PROTECTION_TICKS,
        )  # fmt: skip
        self.expect(sym, STATUS_APPLIED, "add symbol")
        self.expect(
            commands.set_min_notional(SYMBOL_ID, MIN_NOTIONAL_MINOR), STATUS_APPLIED, "min notional"
        )
        for tier, (_, maker_ppm, taker_ppm) in FEE_TIERS.items():
            self.expect(
                commands.add_fee_tier(tier, maker_ppm, taker_ppm), STATUS_APPLIED, "fee tier"
            )
        for uid, (_, tier) in USERS.items():
            self.expect(commands.add_user(uid, tier), STATUS_APPLIED, f"add user {uid}")
        for uid in TRADERS:
            for asset_id, amt in TRADER_DEPOSITS.items():
                self.deposit(uid, asset_id, amt)
        for asset_id, amt in BROKE_DEPOSITS.items():
            self.deposit(BROKE_USER, asset_id, amt)
        print_setup(self.last_seq)

    def flow(self, rounds: int) -> None:
        """The pipelined order flow; prints its mix, rejects, throughput and latency."""
        latencies: list[tuple[int, int]] = []
        elapsed_ns = 0
        statuses: Counter[int] = Counter()
        rejects: Counter[str] = Counter()
        first_seq = self.last_seq + 1
        for _ in range(rounds):
            cmds = self.planner.round(self.book, FRAMES_PER_ROUND * FRAME_CMDS)
            reps, ns = send_round(self.client, cmds, latencies)
            elapsed_ns += ns
            statuses.update(reps["status"].tolist())
            for r in reps[reps["status"] == STATUS_REJECTED]["reason"].tolist():
                rejects[reason_name(r)] += 1
            self.last_seq = max(self.last_seq, int(reps["seq"].max()))
            follow(self.sub, self.book, self.last_seq)
        n = sum(statuses.values())
        mix = ", ".join(f"{v:,} {k}" for k, v in sorted(self.planner.mix.items()))
        print(f"\nOrder flow: {n:,} commands from {len(TRADERS)} users, {rounds} rounds of")
        print(f"  {FRAMES_PER_ROUND} frames x {FRAME_CMDS} commands sent back to back")
        print(f"  mix       {mix}")
        rej = ", ".join(f"{v} {k}" for k, v in rejects.items()) or "none"
        print(f"  replies   {statuses[STATUS_APPLIED]:,} applied, rejected: {rej}")
        print(f"  seq       {first_seq:,}..{self.last_seq:,}")
        rate = n * 1_000_000_000 // max(1, elapsed_ns)
        p50, p99 = weighted_percentile(latencies, 50), weighted_percentile(latencies, 99)
        secs = fixed(elapsed_ns // 1_000_000, 3)
        print(
            f"  throughput {rate:,} commands/s through the command socket ({secs} s of round trips)"
        )
        print(f"  durability {MODE}: each group commit is fdatasync'd before its replies leave")
        print(
            f"  latency   reply p50 {micros(p50)}, p99 {micros(p99)} per command "
            "(send of its frame -> its reply)"
        )
        print(f"  trades    {self.book.n_trades:,}, volume {qty(self.book.volume_lots)} BTC")

    def singles(self) -> None:
        """A market order, a stop order and its trigger, a withdrawal, a duplicate deposit
        and two commands the core must reject; prints what each did."""
        print("\nSingle commands (one command, its reply, its events)")
        bob, carol, alice = 2, 3, 1
        mkt_lots = 500
        rec = commands.new_market(
            self.planner.order_id(), bob, SYMBOL_ID, Side.BUY, mkt_lots, stp=Stp.CANCEL_OLDEST
        )
        rep = self.expect(rec, STATUS_APPLIED, "market buy")
        fills = [e for e in self.book.events_of(int(rep["seq"])) if e[I_KIND] == EvKind.TRADE]
        filled = sum(e[I_QTY] for e in fills)
        value = sum(e[I_PRICE] * e[I_QTY] for e in fills) * PRICE_MULTIPLIER
        print(
            f"  market buy {qty(mkt_lots)} BTC by bob (seq {int(rep['seq']):,}): {len(fills)} "
            f"trades, {qty(filled)} BTC for {fixed(value, VALUE_DECIMALS)} USDT,\n"
            f"    last price {price(self.book.last_price_ticks)}"
        )
        self.stop_and_trigger(carol)
        wid, wd_minor = 1, 5 * 10 ** (BTC_DECIMALS - 1)
        rep = self.expect(
            commands.withdraw_hold(wid, alice, BTC, wd_minor), STATUS_APPLIED, "withdraw hold"
        )
        print(
            f"  withdrawal {wid}: hold {amount(BTC, wd_minor)} BTC of alice: applied "
            f"(available now {amount(BTC, int(rep['value']))} BTC)"
        )
        rep = self.expect(commands.withdraw_commit(wid), STATUS_APPLIED, "withdraw commit")
        self.withdrawn[BTC] += wd_minor
        print(f"  withdrawal {wid}: commit: applied, {amount(BTC, wd_minor)} BTC left the exchange")
        rec = commands.deposit(1, alice, BTC, TRADER_DEPOSITS[BTC])
        rep = self.expect(rec, STATUS_DUPLICATE, "repeated deposit")
        print("  deposit ref 1 sent again: duplicate (idempotent by reference), nothing credited")
        big_lots = 10_000
        rec = commands.new_limit(
            self.planner.order_id(), BROKE_USER, SYMBOL_ID, Side.BUY, MID_PRICE_TICKS, big_lots
        )
        rep = self.expect(rec, STATUS_REJECTED, "broke buy", Reason.INSUFFICIENT_FUNDS)
        print(
            f"  gus (100 USDT) buys {qty(big_lots)} BTC at {price(MID_PRICE_TICKS)}: rejected, "
            f"{reason_name(int(rep['reason']))}"
        )
        off_tick = self.book.best(Side.BUY) - TICK_STEP // 2
        rec = commands.new_limit(self.planner.order_id(), alice, SYMBOL_ID, Side.BUY, off_tick, 10)
        rep = self.expect(rec, STATUS_REJECTED, "off-tick buy", Reason.PRICE_OFF_TICK)
        print(
            f"  alice bids at {price(off_tick)} (tick 0.10 USDT): rejected, "
            f"{reason_name(int(rep['reason']))}"
        )

    def stop_and_trigger(self, stop_user: int) -> None:
        """A stop-limit buy above the last price, then a buy that trades at its stop price."""
        last = self.book.last_price_ticks
        asks = self.book.levels(Side.SELL)
        above = [p for p, _, _ in asks if p > last]
        if not above:
            raise RunError("no ask above the last price to trigger a stop order")
        stop_p = above[0]
        stop_oid, stop_lots = self.planner.order_id(), 100
        rec = commands.new_stop(
            stop_oid, stop_user, SYMBOL_ID, Side.BUY, OrdType.STOP_LIMIT, stop_p, stop_lots,
            price_ticks=stop_p + 20 * TICK_STEP, stp=Stp.CANCEL_OLDEST,
        )  # fmt: skip
        self.expect(rec, STATUS_APPLIED, "stop order")
        print(
            f"  stop-limit buy {qty(stop_lots)} BTC by {user_name(stop_user)}, stop "
            f"{price(stop_p)}, limit {price(stop_p + 20 * TICK_STEP)}: accepted, waits for a trade"
        )
        for taker in TRADERS:
            # Lots of other users' asks up to and including one lot at the stop price;
            # the taker's own asks are canceled by self-trade prevention, not filled.
            others = [o for o in self.book.orders.values() if o[0] != taker and o[1] == Side.SELL]
            if taker == stop_user or not any(o[2] == stop_p for o in others):
                continue
            lots = sum(o[3] for o in others if o[2] < stop_p) + 1
            rec = commands.new_limit(
                self.planner.order_id(), taker, SYMBOL_ID, Side.BUY, stop_p, lots,
                tif=Tif.IOC, stp=Stp.CANCEL_OLDEST,
            )  # fmt: skip
            rep = self.expect(rec, STATUS_APPLIED, "stop trigger")
            evs = self.book.events_of(int(rep["seq"]))
            kinds = [e[I_KIND] for e in evs]
            if EvKind.TRIGGERED not in kinds:
                raise RunError(f"the stop order did not trigger at seq {int(rep['seq'])}")
            at = kinds.index(EvKind.TRIGGERED)
            n_before = kinds[:at].count(EvKind.TRADE)
            n_stop = kinds[at:].count(EvKind.TRADE)
            rests = self.book.orders.get(stop_oid, [0, 0, 0, 0])[3]
            print(
                f"  buy IOC {qty(lots)} BTC at {price(stop_p)} by {user_name(taker)} "
                f"(seq {int(rep['seq']):,}): {n_before} trades up to {price(stop_p)};\n"
                f"    the stop order TRIGGERED in the same command and made {n_stop} trades"
                f"{f', rests {qty(rests)} BTC' if rests else ''}"
            )
            return
        raise RunError("no user can trade at the stop price")

    def report(self) -> None:
        """Top of book, last trades, balances, conservation, state hash (printed)."""
        print_book(self.book)
        print_trades(self.book)
        self.print_balances()
        cons = self.client.control("conservation")
        status = "OK" if cons["ok"] else "FAILED"
        print(
            f"\nconservation: {status} (the core's check at seq {cons['last_seq']:,}: per asset, "
            "balances + fee\n  account = deposits - withdrawals, no balance negative, "
            "held = the live holds)"
        )
        for err in cons.get("errors", []):
            print(f"  {err}")
        if not cons["ok"]:
            raise RunError("the core's conservation check failed")

    def print_balances(self) -> None:
        """Every user's balances (trading account) from the core, the fee account, and the
        client-side ledger check."""
        print("\nBalances (trading account; available / held, from the core's balance query)")
        print(f"  {'user':<8} {'tier':>4} {'BTC available':>16} {'BTC held':>12} "
              f"{'USDT available':>20} {'USDT held':>16}")  # fmt: skip
        totals: Counter[int] = Counter()
        for uid, (name, tier) in USERS.items():
            row = {}
            for asset_id in (BTC, USDT):
                av, hd = self.client.control("balance", user_id=uid, asset_id=asset_id)["balance"]
                row[asset_id] = (int(av), int(hd))
                totals[asset_id] += int(av) + int(hd)
            print(
                f"  {name:<8} {tier:>4} {amount(BTC, row[BTC][0]):>16} "
                f"{amount(BTC, row[BTC][1]):>12} {amount(USDT, row[USDT][0]):>20} "
                f"{amount(USDT, row[USDT][1]):>16}"
            )
        fees = {BTC: 0, USDT: self.book.fees_minor}  # fees are paid in the quote asset
        print(
            f"  fee account (sum of the trades' maker + taker fees): {amount(BTC, 0)} BTC, "
            f"{amount(USDT, fees[USDT])} USDT"
        )
        for asset_id in (BTC, USDT):
            name, net = ASSET_NAMES[asset_id], self.deposited[asset_id] - self.withdrawn[asset_id]
            lhs = totals[asset_id] + fees[asset_id]
            mark = "=" if lhs == net else "!="
            print(
                f"  {name:<4} users {amount(asset_id, totals[asset_id])} + fees "
                f"{amount(asset_id, fees[asset_id])} {mark} deposits "
                f"{amount(asset_id, self.deposited[asset_id])} - withdrawals "
                f"{amount(asset_id, self.withdrawn[asset_id])}"
            )
            if lhs != net:
                raise RunError(f"{name}: client ledger does not balance")


# ------------------------------------------------------------------ printing


def print_header(ready: dict[str, Any], work_dir: Path) -> None:
    """Who runs where."""
    print("bursa run: the core as a process, driven through its sockets")
    print(
        f"  core      pid {ready['pid']}, {ready['mode']} durability, recovered to seq "
        f"{ready['last_seq']} (empty data directory)"
    )
    print(f"  sockets   trade {ready['trade']}, fund {ready['fund']}, admin {ready['admin']},")
    print(f"            events {ready['pub']}, replay {ready['replay']}")
    print(f"  data dir  {work_dir} (removed at exit; --keep keeps it)")


def print_setup(last_seq: int) -> None:
    """The market created by :meth:`Session.setup`."""
    print(f"\nMarket setup (admin and funding commands, seq 1..{last_seq})")
    print(
        f"  assets    BTC (id {BTC}, {BTC_DECIMALS} decimals: 1 BTC = "
        f"{10**BTC_DECIMALS:,} minor units), USDT (id {USDT}, {USDT_DECIMALS} decimals)"
    )
    print(
        f"  symbol    {SYMBOL} (id {SYMBOL_ID}): prices in units of 0.01 USDT, tick "
        f"{price(TICK_STEP)} USDT (tick_step {TICK_STEP});"
    )
    print(
        f"            sizes in lots of {qty(1)} BTC ({BASE_PER_LOT:,} satoshi); 0.01 USDT x 1 lot "
        f"= 0.000001 USDT,"
    )
    print(f"            one USDT minor unit: price multiplier {PRICE_MULTIPLIER}")
    print(
        f"            band {price(MIN_PRICE_TICKS)}..{price(MAX_PRICE_TICKS)} USDT, size "
        f"{qty(1)}..{qty(MAX_QTY_LOTS)} BTC, min notional {amount(USDT, MIN_NOTIONAL_MINOR)} USDT,"
    )
    print(
        f"            market orders trade at most {price(PROTECTION_TICKS)} USDT "
        "from the best price"
    )
    for i, (t, (name, m, tk)) in enumerate(FEE_TIERS.items()):
        print(
            f"  {'fee tiers' if i == 0 else '':9} {t} {name}: maker {m:,} ppm ({ppm_percent(m)}), "
            f"taker {tk:,} ppm ({ppm_percent(tk)})"
        )
    for i, t in enumerate(FEE_TIERS):
        names = ", ".join(f"{uid} {n}" for uid, (n, tier) in USERS.items() if tier == t)
        print(f"  {'users' if i == 0 else '':9} tier {t}: {names}")
    print(
        f"  deposits  {amount(BTC, TRADER_DEPOSITS[BTC])} BTC and "
        f"{amount(USDT, TRADER_DEPOSITS[USDT])} USDT to each of the {len(TRADERS)} traders;"
    )
    print(f"            {amount(USDT, BROKE_DEPOSITS[USDT])} USDT to gus")


def print_book(book: LocalBook) -> None:
    """Five levels each side, asks above bids."""
    asks = book.levels(Side.SELL)
    bids = book.levels(Side.BUY)
    print(f"\nTop of book ({SYMBOL}, {DEPTH_LEVELS} levels each side)")
    print(
        f"  (built by the subscriber from the event stream: {len(book.orders):,} orders resting, "
        f"{len(book.stops)} stop orders waiting)"
    )
    print(f"  {'':4} {'price (USDT)':>14} {'size (BTC)':>12} {'orders':>7}")
    for p, lots, n in reversed(asks[:DEPTH_LEVELS]):
        print(f"  {'ask':4} {price(p):>14} {qty(lots):>12} {n:>7}")
    if asks and bids:
        print(f"  {'':4} {'spread ' + price(asks[0][0] - bids[0][0]):>14}")
    for p, lots, n in bids[:DEPTH_LEVELS]:
        print(f"  {'bid':4} {price(p):>14} {qty(lots):>12} {n:>7}")


def print_trades(book: LocalBook) -> None:
    """The last trades, newest first, with their fees."""
    print(f"\nLast {LAST_TRADES} trades (newest first; {book.n_trades:,} trades in all)")
    print("  (prices, values and fees in USDT, sizes in BTC; fees of the taker and the maker)")
    print(
        f"  {'seq':>7} {'match':>6} {'taker':>5} {'price':>10} {'size':>7} {'value':>12} "
        f"{'buyer':>6} {'seller':>6} {'taker fee':>10} {'maker fee':>10}"
    )
    for ev in reversed(book.trades):
        taker_buys = ev[I_SIDE] == Side.BUY
        buyer, seller = (ev[I_USER], ev[I_MAKER_USER])[:: 1 if taker_buys else -1]
        value = ev[I_PRICE] * ev[I_QTY] * PRICE_MULTIPLIER
        taker_fee, maker_fee = ev[I_TAKER_FEE], ev[I_MAKER_FEE]
        print(
            f"  {ev[I_SEQ]:>7,} {ev[I_MATCH]:>6,} {'buy' if taker_buys else 'sell':>5} "
            f"{price(ev[I_PRICE]):>10} {qty(ev[I_QTY]):>7} {fixed(value, VALUE_DECIMALS):>12} "
            f"{user_name(buyer):>6} {user_name(seller):>6} "
            f"{fixed(taker_fee, USDT_DECIMALS):>10} {fixed(maker_fee, USDT_DECIMALS):>10}"
        )


# ------------------------------------------------------------------ the run


def check_restart(core: CoreChild, before: dict[str, Any], session_book: LocalBook) -> None:
    """Restart on the same directory; compare seq, state hash and the rebuilt book."""
    ready = core.start()
    print(f"  restarted: pid {ready['pid']}; its log says:")
    for part in core.log_line("recovered to seq").split("; "):
        print(f"    {part}")
    client = CoreClient(str(ready["admin"]))
    sub = EventSubscriber(str(ready["pub"]), str(ready["replay"]), from_seq=1)
    try:
        after = client.control("state_hash")
        cons = client.control("conservation")
        book = LocalBook(SYMBOL_ID)
        follow(sub, book, int(after["last_seq"]))
    finally:
        client.close()
        sub.close()
    same = after["state_hash"] == before["state_hash"] and after["last_seq"] == before["last_seq"]
    print(
        f"  recovered seq {after['last_seq']:,}, state hash {after['state_hash']} "
        f"({'same as' if same else 'DIFFERENT from'} before the restart)"
    )
    print(f"  conservation after the restart: {'OK' if cons['ok'] else 'FAILED'}")
    same_book = (book.orders, book.n_trades, book.fees_minor) == (
        session_book.orders,
        session_book.n_trades,
        session_book.fees_minor,
    )
    print(
        f"  a new subscriber replayed {book.n_events:,} events from seq 1 out of the event log:\n"
        f"    {'the same' if same_book else 'a DIFFERENT'} book ({len(book.orders):,} orders), "
        f"{book.n_trades:,} trades, {amount(USDT, book.fees_minor)} USDT of fees"
    )
    if not (same and same_book and cons["ok"]):
        raise RunError("the restarted core does not match the state before the restart")


def demonstrate(core: CoreChild, rounds: int, seed: int) -> None:
    """Everything :func:`main` shows, in order; raises :class:`RunError` on a failed check."""
    ready = core.start()
    print_header(ready, core.work_dir)
    session = Session(ready, seed)
    try:
        session.setup()
        session.flow(rounds)
        session.singles()
        session.report()
        before = session.client.control("state_hash")
        st = session.client.control("status")
    finally:
        session.close()
    print(
        f"state hash  {before['state_hash']} at seq {before['last_seq']:,} "
        f"({st['commands']:,} commands in {st['batches']:,} group commits)"
    )
    print("\nRestart")
    rc = core.stop()
    snaps = sorted(p.name for p in core.data_dir.glob("snapshot-*.snap"))
    newest = snaps[-1] if snaps else "none"
    print(f"  SIGTERM: the core exited with status {rc}; newest snapshot {newest}")
    if rc != 0 or not snaps:
        raise RunError("the core did not stop cleanly with a snapshot")
    check_restart(core, before, session.book)
    rc = core.stop()
    print(f"  SIGTERM again: exit status {rc}")
    if rc != 0:
        raise RunError("the restarted core did not stop cleanly")
    result = replay_dir(str(core.data_dir), from_scratch=True)
    same = result.state_hash.hex() == before["state_hash"]
    print(
        f"  bursa replay (from scratch, journal only): seq {result.last_seq:,},\n"
        f"    state hash {result.state_hash.hex()} ({'same' if same else 'DIFFERENT'})"
    )
    if not same or result.conservation_errors:
        raise RunError("a from-scratch replay of the journal disagrees with the core")


def main(argv: list[str] | None = None) -> int:
    """Run the demonstration; 0 if every check held, 1 otherwise (the child is always killed)."""
    ap = argparse.ArgumentParser(prog="bursa run", description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    ap.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="order-flow rounds")
    ap.add_argument("--seed", type=int, default=1, help="seed of the order flow")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    work_dir = Path(tempfile.mkdtemp(prefix="bursa-run-"))
    core = CoreChild(work_dir)
    ok = False
    try:
        demonstrate(core, args.rounds, args.seed)
        ok = True
    except (RunError, CoreError, TimeoutError, OSError, zmq.ZMQError) as e:
        sys.stdout.flush()
        print(f"\nbursa run: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        tail = core.log_tail()
        if tail:
            print(f"last lines of {core.err_path}:\n{tail}", file=sys.stderr)
    except subprocess.TimeoutExpired as e:
        print(f"\nbursa run: FAILED: the core did not exit: {e}", file=sys.stderr)
    finally:
        core.kill()
        if args.keep or not ok:
            print(f"\ndata dir kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
            print(f"\nremoved {work_dir}")
    if ok:
        print("OK: every check held")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
