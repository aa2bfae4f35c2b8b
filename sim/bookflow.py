"""Seeded single-symbol workload modeled on exchange-core's order-book benchmark.

exchange-core's ``TestOrdersGenerator`` drives its single-symbol throughput test
with a stream that keeps about 1,000 orders resting over about 750 price levels
and is made of 9% GTC orders, 3% IOC orders, 6% cancels and 82% moves (a move
re-prices one resting order a step towards the last trade price, keeping its
quantity); about 6% of the commands trade.  This module builds such a stream as
a ``CMD_DTYPE`` array (bursa_wire/layout.py) from a seed, the same array for
the same parameters on every machine.

To make cancels and moves name orders that are still live, the generator runs
its own small matching model (price-time priority, GTC and IOC limit orders,
cancel, replace: the subset of docs/book.md the stream uses) and draws the
order to act on from the model's live set.  The model's fill count, trade ratio
and final resting orders are returned with the commands so a benchmark can
check the real book against them.

Money rules hold here too: prices are integer ticks, quantities integer lots;
the random price offsets are built from integer draws, never from floats.

Usage::

    from sim.bookflow import WorkloadConfig, generate
    wl = generate(WorkloadConfig(commands=100_000, seed=7))
    book = Book(**wl.config.book_kwargs())
    book.process(wl.prefill)      # untimed: brings the book to ~1,000 resting orders
    book.process(wl.commands)     # the measured stream
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np

from bursa_wire.layout import CMD_DTYPE
from pyx.enums import CmdKind, OrdType, Side, Tif

# Command classes of the measured stream, in permille (exchange-core's mix).
GTC_PERMILLE = 90
IOC_PERMILLE = 30
CANCEL_PERMILLE = 60
MOVE_PERMILLE = 820
assert GTC_PERMILLE + IOC_PERMILLE + CANCEL_PERMILLE + MOVE_PERMILLE == 1000
# Moves that re-price to the best opposite price and so trade.  exchange-core's
# moves trade through price convergence; ours do so explicitly so that, with the
# IOCs, about 6% of the commands trade.
MOVE_CROSS_PERMILLE = 30
# GTC and cancel share one slot; GTC's nominal share of it, and how strongly the
# share follows the book's distance from its target size (permille per order).
GTC_SHARE_PERMILLE = GTC_PERMILLE * 1000 // (GTC_PERMILLE + CANCEL_PERMILLE)
SIZE_GAIN_PERMILLE = 2
# How strongly a new GTC's side follows the imbalance between the sides.
SIDE_GAIN_PERMILLE = 2

# Generation runs in blocks of this many commands so the per-command random
# draws (numpy, vectorised) stay bounded in memory for any stream length.
BLOCK_COMMANDS = 1 << 16

# Upper bound on pre-fill commands: the pre-fill places GTC orders until both
# sides hold target/2 orders; it never needs more than this (checked).
PREFILL_MAX_FACTOR = 8

# Synthetic sequencer clock: command k is stamped TS_BASE_NS + k * TS_STEP_NS.
TS_BASE_NS = 1_700_000_000_000_000_000
TS_STEP_NS = 1_000


class BookKwargs(TypedDict):
    """The ``Book(...)`` configuration a workload needs (docs/book.md)."""

    symbol_id: int
    min_price_ticks: int
    max_price_ticks: int


@dataclass(frozen=True)
class WorkloadConfig:
    """Parameters of the stream; every field has the benchmark's default.

    Parameters
    ----------
    commands : int
        Commands in the measured stream (the pre-fill comes on top).
    seed : int
        Seed of the numpy PCG64 generator; same seed, same stream.
    target_orders : int
        Resting orders the pre-fill places (half per side) and the stream keeps
        close to (exchange-core: 1,000).
    users : int
        Distinct user ids, drawn uniformly from ``1..users``.
    center_price_ticks : int
        Starting "last trade price" in ticks (default 6,000,000 = 60,000.00 USDT
        at 0.01 USDT per tick).
    deviation_ticks : int
        Scale of GTC price offsets from the last trade price, in ticks
        (exchange-core: ``min(5% of price, 10,000)``; 6,000 = 60 USDT gives the
        ~750 occupied levels of exchange-core's test); the price band is
        ``center ± 5 * deviation``.
    symbol_id : int
        Symbol stamped into every command.
    """

    commands: int = 1_000_000
    seed: int = 1
    target_orders: int = 1_000
    users: int = 500
    center_price_ticks: int = 6_000_000
    deviation_ticks: int = 6_000
    symbol_id: int = 1

    @property
    def min_price_ticks(self) -> int:
        """Lower end of the symbol's price band, in ticks."""
        return self.center_price_ticks - 5 * self.deviation_ticks

    @property
    def max_price_ticks(self) -> int:
        """Upper end of the symbol's price band, in ticks."""
        return self.center_price_ticks + 5 * self.deviation_ticks

    def book_kwargs(self) -> BookKwargs:
        """Keyword arguments of ``Book(...)`` for this workload (docs/book.md)."""
        return {
            "symbol_id": self.symbol_id,
            "min_price_ticks": self.min_price_ticks,
            "max_price_ticks": self.max_price_ticks,
        }


@dataclass
class Workload:
    """A generated stream and what the generator's model says it must produce.

    Attributes
    ----------
    config : WorkloadConfig
        The parameters it was generated from.
    prefill : numpy.ndarray
        ``CMD_DTYPE`` GTC orders that bring the book to ``target_orders``; run
        them (untimed) before ``commands``.
    commands : numpy.ndarray
        ``CMD_DTYPE`` measured stream, ``config.commands`` records.
    trades : int
        TRADE events (fills) the measured stream produces.
    trading_commands : int
        Measured commands that produce at least one fill.
    resting_orders_end : int
        Orders resting after the whole stream.
    levels_end : int
        Distinct price levels (both sides) after the whole stream.
    mean_resting_orders, mean_levels : int
        Resting orders and price levels averaged over the measured stream
        (sampled every 1,024 commands; integer mean).
    mix : dict[str, int]
        Measured commands per class: ``gtc``, ``ioc``, ``cancel``, ``move``.
    l3_end : list[tuple[int, int, int, int, int]]
        Final resting orders in priority order (bids best to worst, FIFO, then
        asks): ``(order_id, user_id, side, price_ticks, open_lots)``.
    last_price_ticks : int
        Last trade price after the stream, in ticks.
    """

    config: WorkloadConfig
    prefill: np.ndarray
    commands: np.ndarray
    trades: int
    trading_commands: int
    resting_orders_end: int
    levels_end: int
    mean_resting_orders: int
    mean_levels: int
    mix: dict[str, int]
    l3_end: list[tuple[int, int, int, int, int]]
    last_price_ticks: int

    @property
    def trade_ratio_permille(self) -> int:
        """Measured commands that trade, per thousand (integer, rounded down)."""
        return self.trading_commands * 1000 // max(1, len(self.commands))

    def summary(self) -> dict[str, int | str | dict[str, int]]:
        """The figures a benchmark reports about its workload (JSON-ready)."""
        n = max(1, len(self.commands))
        return {
            "workload": "exchange-core single symbol (sim/bookflow.py)",
            "seed": self.config.seed,
            "commands": len(self.commands),
            "prefill_commands": len(self.prefill),
            "users": self.config.users,
            "mix_permille": {k: v * 1000 // n for k, v in self.mix.items()},
            "trades": self.trades,
            "trading_commands": self.trading_commands,
            "trade_ratio_permille": self.trade_ratio_permille,
            "resting_orders_end": self.resting_orders_end,
            "levels_end": self.levels_end,
            "mean_resting_orders": self.mean_resting_orders,
            "mean_levels": self.mean_levels,
        }


@dataclass
class _Order:
    side: int
    price_ticks: int
    open_lots: int
    user_id: int


@dataclass
class _Model:
    """Price-time-priority book for GTC/IOC limit orders, cancel and replace.

    Just enough of docs/book.md to know which orders are live and how many
    fills each command makes (STP_NONE: a user may trade with itself).
    """

    orders: dict[int, _Order] = field(default_factory=dict)
    # side -> price -> FIFO of order ids; a level exists only while non-empty.
    levels: dict[int, dict[int, deque[int]]] = field(
        default_factory=lambda: {Side.BUY: {}, Side.SELL: {}}
    )
    # Lazy heaps of level prices (bids negated); stale entries are skipped.
    heaps: dict[int, list[int]] = field(default_factory=lambda: {Side.BUY: [], Side.SELL: []})
    # Live ids in a list (O(1) uniform pick, swap-remove) and their positions.
    live: list[int] = field(default_factory=list)
    pos: dict[int, int] = field(default_factory=dict)
    count: dict[int, int] = field(default_factory=lambda: {Side.BUY: 0, Side.SELL: 0})
    last_price_ticks: int = 0
    fills: int = 0

    def best(self, side: int) -> int:
        """Best price of ``side`` in ticks, 0 if empty."""
        heap, lv = self.heaps[side], self.levels[side]
        sign = -1 if side == Side.BUY else 1
        while heap:
            p = heap[0] * sign
            if p in lv:
                return p
            heapq.heappop(heap)
        return 0

    def _rest(self, oid: int, o: _Order) -> None:
        lv = self.levels[o.side]
        q = lv.get(o.price_ticks)
        if q is None:
            lv[o.price_ticks] = q = deque()
            heap = self.heaps[o.side]
            heapq.heappush(heap, -o.price_ticks if o.side == Side.BUY else o.price_ticks)
            if len(heap) > 4 * len(lv) + 64:
                # Drop the stale entries now and then so the heap stays small.
                sign = -1 if o.side == Side.BUY else 1
                heap[:] = [sign * p for p in lv]
                heapq.heapify(heap)
        q.append(oid)

    def _unrest(self, oid: int, o: _Order) -> None:
        lv = self.levels[o.side]
        q = lv[o.price_ticks]
        q.remove(oid)
        if not q:
            del lv[o.price_ticks]

    def _add_live(self, oid: int, o: _Order) -> None:
        self.orders[oid] = o
        self.pos[oid] = len(self.live)
        self.live.append(oid)
        self.count[o.side] += 1

    def _drop_live(self, oid: int) -> None:
        o = self.orders.pop(oid)
        self.count[o.side] -= 1
        i = self.pos.pop(oid)
        last = self.live.pop()
        if last != oid:
            self.live[i] = last
            self.pos[last] = i

    def _match(self, side: int, limit_ticks: int, qty_lots: int) -> tuple[int, int]:
        """Take liquidity for a taker; returns (open lots left, fills)."""
        opp = Side.SELL if side == Side.BUY else Side.BUY
        lv = self.levels[opp]
        fills = 0
        while qty_lots > 0:
            p = self.best(opp)
            if p == 0 or (p > limit_ticks if side == Side.BUY else p < limit_ticks):
                break
            q = lv[p]
            while q and qty_lots > 0:
                mid = q[0]
                m = self.orders[mid]
                f = min(qty_lots, m.open_lots)
                qty_lots -= f
                m.open_lots -= f
                fills += 1
                if m.open_lots == 0:
                    q.popleft()
                    self._drop_live(mid)
            if not q:
                del lv[p]
            self.last_price_ticks = p
        self.fills += fills
        return qty_lots, fills

    def new_limit(self, oid: int, uid: int, side: int, price: int, qty: int, tif: int) -> int:
        """A new LIMIT order; returns its fills."""
        left, fills = self._match(side, price, qty)
        if left > 0 and tif == Tif.GTC:
            o = _Order(side, price, left, uid)
            self._add_live(oid, o)
            self._rest(oid, o)
        return fills

    def cancel(self, oid: int) -> None:
        """Cancel a live order."""
        o = self.orders[oid]
        self._unrest(oid, o)
        self._drop_live(oid)

    def replace(self, oid: int, price: int) -> int:
        """Move a live order to ``price`` (same open quantity); returns its fills."""
        o = self.orders[oid]
        assert price != o.price_ticks
        self._unrest(oid, o)
        left, fills = self._match(o.side, price, o.open_lots)
        if left == 0:
            self._drop_live(oid)
        else:
            o.price_ticks = price
            o.open_lots = left
            self._rest(oid, o)
        return fills

    def n_levels(self) -> int:
        """Price levels on both sides."""
        return len(self.levels[Side.BUY]) + len(self.levels[Side.SELL])

    def l3(self) -> list[tuple[int, int, int, int, int]]:
        """Resting orders in priority order (see ``Workload.l3_end``)."""
        rows: list[tuple[int, int, int, int, int]] = []
        for side in (Side.BUY, Side.SELL):
            lv = self.levels[side]
            for p in sorted(lv, reverse=side == Side.BUY):
                for oid in lv[p]:
                    o = self.orders[oid]
                    rows.append((oid, o.user_id, int(side), p, o.open_lots))
        return rows


class _Columns:
    """Command fields accumulated as Python lists, turned into CMD_DTYPE at the end."""

    def __init__(self) -> None:
        self.kind: list[int] = []
        self.order_id: list[int] = []
        self.user_id: list[int] = []
        self.side: list[int] = []
        self.price_ticks: list[int] = []
        self.qty_lots: list[int] = []
        self.tif: list[int] = []

    def add(self, kind: int, oid: int, uid: int, side: int, price: int, qty: int, tif: int) -> None:
        self.kind.append(kind)
        self.order_id.append(oid)
        self.user_id.append(uid)
        self.side.append(side)
        self.price_ticks.append(price)
        self.qty_lots.append(qty)
        self.tif.append(tif)

    def to_array(self, symbol_id: int, first_seq: int) -> np.ndarray:
        n = len(self.kind)
        a = np.zeros(n, dtype=CMD_DTYPE)
        seq = np.arange(first_seq, first_seq + n, dtype=np.uint64)
        a["seq"] = seq
        a["ts_ns"] = np.uint64(TS_BASE_NS) + seq * np.uint64(TS_STEP_NS)
        a["client_ref"] = seq
        a["order_id"] = self.order_id
        a["price_ticks"] = self.price_ticks
        a["qty_lots"] = self.qty_lots
        a["user_id"] = self.user_id
        a["symbol_id"] = symbol_id
        kind = np.asarray(self.kind, dtype=np.uint8)
        a["kind"] = kind
        a["side"] = self.side
        a["ord_type"] = np.where(kind == CmdKind.NEW, OrdType.LIMIT, 0).astype(np.uint8)
        a["tif"] = self.tif
        return a


class _Draws:
    """Per-command random variates of one block, drawn vectorised (integers only)."""

    def __init__(self, rng: np.random.Generator, n: int, cfg: WorkloadConfig) -> None:
        self.cls = rng.integers(0, 1000, n).tolist()
        self.ctl = rng.integers(0, 1000, n).tolist()
        self.side_u = rng.integers(0, 1000, n).tolist()
        # Uniform pick among live orders: index = pick * len(live) >> 32.
        self.pick = rng.integers(0, 1 << 32, n, dtype=np.int64).tolist()
        self.uid = rng.integers(1, cfg.users + 1, n).tolist()
        # exchange-core sizes: 1 + U(0..5) * U(0..5) * U(0..5) lots.
        s = rng.integers(0, 6, (n, 3))
        self.qty = (1 + s[:, 0] * s[:, 1] * s[:, 2]).tolist()
        self.ioc_qty = (1 + s[:, 0]).tolist()
        # exchange-core GTC offset: dev = 1 + u^2 * D, offset = mean of four
        # U(0..dev-1) * 2 - dev, made non-negative (the side decides the sign).
        # u is a 16-bit integer fraction, so u^2 * D is (r * r * D) >> 32.
        r = rng.integers(0, 1 << 16, n, dtype=np.int64)
        dev = 1 + ((r * r * cfg.deviation_ticks) >> 32)
        four = rng.integers(0, dev[:, None], (n, 4), dtype=np.int64)
        self.offset = np.abs(four.sum(axis=1) // 4 * 2 - dev).tolist()


def _clamp_permille(x: int) -> int:
    return min(max(x, 0), 1000)


def _gtc_price(cfg: WorkloadConfig, last: int, side: int, offset: int) -> int:
    """Asks at or above the last trade price, bids at or below, inside the band."""
    p = last + offset if side == Side.SELL else last - offset
    return min(max(p, cfg.min_price_ticks), cfg.max_price_ticks)


def _move_price(cfg: WorkloadConfig, last: int, prev: int, up: bool) -> int:
    """exchange-core's move: 1% of the way to the last trade price, at least one tick.

    Floor towards the last price from above, ceiling from below (integer
    division), a random one-tick step when already there; a move that the band
    would cancel goes the other way, so the price always changes.
    """
    if prev > last:
        step = (last - prev) // 100  # floor of a negative: at least -1
    elif prev < last:
        step = -((prev - last) // 100)  # ceiling of a positive: at least +1
    else:
        step = 1 if up else -1
    p = min(max(prev + step, cfg.min_price_ticks), cfg.max_price_ticks)
    if p == prev:
        p = prev - step
    return p


def _prefill(cfg: WorkloadConfig, rng: np.random.Generator, model: _Model) -> _Columns:
    """GTC orders on the side that lacks them until each side has target/2."""
    cols = _Columns()
    half = cfg.target_orders // 2
    limit = PREFILL_MAX_FACTOR * cfg.target_orders + 64
    oid = 0
    while model.count[Side.BUY] < half or model.count[Side.SELL] < half:
        d = _Draws(rng, 4096, cfg)
        for i in range(len(d.cls)):
            if model.count[Side.BUY] >= half and model.count[Side.SELL] >= half:
                break
            side = Side.BUY if d.side_u[i] < 500 else Side.SELL
            if model.count[side] >= half:
                side = Side.SELL if side == Side.BUY else Side.BUY
            oid += 1
            # One tick off the centre at least, so the pre-fill never trades.
            price = _gtc_price(cfg, model.last_price_ticks, side, d.offset[i] + 1)
            model.new_limit(oid, d.uid[i], side, price, d.qty[i], Tif.GTC)
            cols.add(CmdKind.NEW, oid, d.uid[i], side, price, d.qty[i], Tif.GTC)
            assert oid <= limit, "pre-fill does not converge"
    return cols


class _Generator:
    """The measured stream: one method per command class, all fed by ``_Draws``."""

    def __init__(self, cfg: WorkloadConfig, model: _Model, next_oid: int) -> None:
        self.cfg = cfg
        self.model = model
        self.next_oid = next_oid
        self.cols = _Columns()
        self.mix = {"gtc": 0, "ioc": 0, "cancel": 0, "move": 0}

    def move(self, d: _Draws, i: int, cross: bool) -> int:
        """REPLACE a live order to a new price, same open quantity; returns fills.

        A crossing move re-prices to the best opposite price (a market maker
        lifting the offer); the others step towards the last trade price.
        """
        m = self.model
        oid = m.live[(d.pick[i] * len(m.live)) >> 32]
        o = m.orders[oid]
        opp = m.best(Side.SELL if o.side == Side.BUY else Side.BUY)
        if cross and opp != 0 and opp != o.price_ticks:
            price = opp
        else:
            price = _move_price(self.cfg, m.last_price_ticks, o.price_ticks, d.side_u[i] < 500)
        self.cols.add(CmdKind.REPLACE, oid, o.user_id, o.side, price, o.open_lots, 0)
        self.mix["move"] += 1
        return m.replace(oid, price)

    def cancel(self, d: _Draws, i: int) -> int:
        """CANCEL a live order; returns 0 (no fills)."""
        m = self.model
        oid = m.live[(d.pick[i] * len(m.live)) >> 32]
        o = m.orders[oid]
        self.cols.add(CmdKind.CANCEL, oid, o.user_id, o.side, 0, 0, 0)
        m.cancel(oid)
        self.mix["cancel"] += 1
        return 0

    def gtc(self, d: _Draws, i: int) -> int:
        """A new GTC limit near the last trade price; the thinner side is favoured."""
        m = self.model
        buy_permille = _clamp_permille(
            500 + SIDE_GAIN_PERMILLE * (m.count[Side.SELL] - m.count[Side.BUY])
        )
        side = Side.BUY if d.side_u[i] < buy_permille else Side.SELL
        oid = self.next_oid
        self.next_oid += 1
        price = _gtc_price(self.cfg, m.last_price_ticks, side, d.offset[i])
        self.cols.add(CmdKind.NEW, oid, d.uid[i], side, price, d.qty[i], Tif.GTC)
        self.mix["gtc"] += 1
        return m.new_limit(oid, d.uid[i], side, price, d.qty[i], Tif.GTC)

    def ioc(self, d: _Draws, i: int) -> int:
        """A new IOC limit at the far edge of the band: takes what its size allows."""
        side = Side.BUY if d.side_u[i] < 500 else Side.SELL
        edge = self.cfg.max_price_ticks if side == Side.BUY else self.cfg.min_price_ticks
        oid = self.next_oid
        self.next_oid += 1
        qty = d.ioc_qty[i]
        self.cols.add(CmdKind.NEW, oid, d.uid[i], side, edge, qty, Tif.IOC)
        self.mix["ioc"] += 1
        return self.model.new_limit(oid, d.uid[i], side, edge, qty, Tif.IOC)

    def one(self, d: _Draws, i: int) -> int:
        """Draw the class of command ``i`` and emit it; returns its fills.

        GTC and cancel share one slot of the mix; the share that goes to GTC
        rises when the book holds fewer than ``target_orders`` orders and falls
        when it holds more, which keeps the book near its target size.
        """
        c = d.cls[i]
        m = self.model
        if c < MOVE_PERMILLE and m.live:
            return self.move(d, i, c < MOVE_CROSS_PERMILLE)
        if c >= 1000 - IOC_PERMILLE:
            return self.ioc(d, i)
        gtc_share = _clamp_permille(
            GTC_SHARE_PERMILLE + SIZE_GAIN_PERMILLE * (self.cfg.target_orders - len(m.live))
        )
        if d.ctl[i] >= gtc_share and m.live:
            return self.cancel(d, i)
        return self.gtc(d, i)


def generate(cfg: WorkloadConfig | None = None) -> Workload:
    """Generate the pre-fill and the measured stream for ``cfg``.

    Parameters
    ----------
    cfg : WorkloadConfig, optional
        Parameters; ``WorkloadConfig()`` (1,000,000 commands, seed 1) if omitted.

    Returns
    -------
    Workload
        Commands (``CMD_DTYPE``) and the model's expected results.
    """
    cfg = cfg or WorkloadConfig()
    assert cfg.commands >= 0 and cfg.users >= 1 and cfg.target_orders >= 2
    assert cfg.min_price_ticks >= 1, "price band must stay positive"
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    model = _Model(last_price_ticks=cfg.center_price_ticks)
    pre = _prefill(cfg, rng, model)
    assert model.fills == 0, "pre-fill orders must not trade"
    gen = _Generator(cfg, model, len(pre.kind) + 1)
    trading = samples = sum_orders = sum_levels = 0
    done = 0
    while done < cfg.commands:
        n = min(BLOCK_COMMANDS, cfg.commands - done)
        d = _Draws(rng, n, cfg)
        for i in range(n):
            trading += gen.one(d, i) > 0
            if (done + i) & 1023 == 0:
                samples += 1
                sum_orders += len(model.live)
                sum_levels += model.n_levels()
        done += n
    prefill = pre.to_array(cfg.symbol_id, 1)
    commands = gen.cols.to_array(cfg.symbol_id, len(prefill) + 1)
    assert len(commands) == cfg.commands
    return Workload(
        config=cfg,
        prefill=prefill,
        commands=commands,
        trades=model.fills,
        trading_commands=trading,
        resting_orders_end=len(model.live),
        levels_end=model.n_levels(),
        mean_resting_orders=sum_orders // max(1, samples),
        mean_levels=sum_levels // max(1, samples),
        mix=gen.mix,
        l3_end=model.l3(),
        last_price_ticks=model.last_price_ticks,
    )


def main(argv: list[str] | None = None) -> int:
    """Print the workload's statistics as JSON (``python -m sim.bookflow``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=WorkloadConfig.commands)
    ap.add_argument("--seed", type=int, default=WorkloadConfig.seed)
    args = ap.parse_args(argv)
    wl = generate(WorkloadConfig(commands=args.commands, seed=args.seed))
    print(json.dumps(wl.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
