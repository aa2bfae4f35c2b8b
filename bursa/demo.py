"""In-process demo (``make run``, ``bursa demo``): one BTC/USDT book and a generated order flow.

The symbol: prices in ticks of 0.01 USDT (60,000.00 USDT = 6,000,000 ticks),
quantities in lots of 0.0001 BTC (1 BTC = 10,000 lots).  A fill's value is
``price_ticks * qty_lots`` units of 0.000001 USDT (0.01 USDT x 0.0001 BTC).
Everything shown is formatted from those integers with integer arithmetic.

The order flow is a short run of the benchmark workload (sim/bookflow.py:
exchange-core's single-symbol mix) fed through the Cython book's batch API;
the demo prints the top of the book, the last trades and the throughput it
measured.  (The core process replaces this demo in a later issue.)
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from pyx.enums import EvKind, Side
from sim.bookflow import WorkloadConfig, generate

SYMBOL = "BTC/USDT"
TICK_DECIMALS = 2  # 1 tick = 0.01 USDT
LOT_DECIMALS = 4  # 1 lot = 0.0001 BTC
VALUE_DECIMALS = TICK_DECIMALS + LOT_DECIMALS  # price_ticks * qty_lots: 0.000001 USDT
DEPTH_LEVELS = 5
LAST_TRADES = 10
CHUNK_COMMANDS = 4096
DEFAULT_COMMANDS = 200_000


def fixed(units: int, decimals: int, group: bool = True) -> str:
    """An integer count of 10**-decimals as a decimal string, e.g. fixed(600012, 2) = '6,000.12'."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    w = f"{whole:,}" if group else str(whole)
    return f"{sign}{w}.{frac:0{decimals}d}" if decimals else f"{sign}{w}"


def price_usdt(price_ticks: int) -> str:
    """Price in ticks as USDT with cents."""
    return fixed(price_ticks, TICK_DECIMALS)


def qty_btc(qty_lots: int) -> str:
    """Quantity in lots as BTC with 4 decimals."""
    return fixed(qty_lots, LOT_DECIMALS)


def percent(part: int, whole: int) -> str:
    """``part / whole`` as a percentage with one decimal (integer arithmetic, floored)."""
    permille = part * 1000 // max(1, whole)
    return f"{permille // 10}.{permille % 10}%"


def depth_lines(book: object) -> list[str]:
    """Asks (highest of the five first) above bids: price, size, order count."""
    asks = book.l2(Side.SELL, DEPTH_LEVELS)  # type: ignore[attr-defined]
    bids = book.l2(Side.BUY, DEPTH_LEVELS)  # type: ignore[attr-defined]
    lines = [f"  {'':4} {'price (USDT)':>14} {'size (BTC)':>12} {'orders':>7}"]
    for price, lots, n in reversed(asks):
        lines.append(f"  {'ask':4} {price_usdt(price):>14} {qty_btc(lots):>12} {n:>7}")
    if asks and bids:
        lines.append(f"  {'':4} {'spread ' + price_usdt(asks[0][0] - bids[0][0]):>14}")
    for price, lots, n in bids:
        lines.append(f"  {'bid':4} {price_usdt(price):>14} {qty_btc(lots):>12} {n:>7}")
    return lines


def trade_lines(trades: np.ndarray) -> list[str]:
    """The given TRADE events, newest first."""
    lines = [
        f"  {'match':>8} {'taker':>5} {'price (USDT)':>14} {'size (BTC)':>12} "
        f"{'value (USDT)':>16} {'taker id':>9} {'maker id':>9}"
    ]
    for t in trades[::-1].tolist():
        rec = dict(zip(trades.dtype.names or (), t, strict=True))
        side = "buy" if rec["side"] == Side.BUY else "sell"
        value = fixed(rec["price_ticks"] * rec["qty_lots"], VALUE_DECIMALS)
        lines.append(
            f"  {rec['match_id']:>8} {side:>5} {price_usdt(rec['price_ticks']):>14} "
            f"{qty_btc(rec['qty_lots']):>12} {value:>16} {rec['order_id']:>9} "
            f"{rec['maker_order_id']:>9}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    from pyx.book import Book

    ap = argparse.ArgumentParser(prog="bursa demo", description=__doc__.split("\n")[0])
    ap.add_argument("--commands", type=int, default=DEFAULT_COMMANDS)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.commands < 1:
        ap.error("--commands must be >= 1")

    wl = generate(WorkloadConfig(commands=args.commands, seed=args.seed))
    book = Book(**wl.config.book_kwargs())
    book.process(wl.prefill)
    slices = [wl.commands[i : i + CHUNK_COMMANDS] for i in range(0, args.commands, CHUNK_COMMANDS)]
    last: list[np.ndarray] = []
    n_trades = 0
    elapsed_ns = 0
    for s in slices:
        t0 = time.perf_counter_ns()
        ev = book.process(s)
        elapsed_ns += time.perf_counter_ns() - t0
        tr = ev[ev["kind"] == EvKind.TRADE]
        if len(tr):
            n_trades += len(tr)
            last = [*last, tr.copy()][-LAST_TRADES:]
    recent = np.concatenate(last)[-LAST_TRADES:] if last else ev[:0]
    rate = args.commands * 1_000_000_000 // max(1, elapsed_ns)
    mix = wl.mix

    print(f"bursa demo: {SYMBOL}, symbol id {wl.config.symbol_id}; tick 0.01 USDT, lot 0.0001 BTC")
    print(
        f"order flow: {args.commands:,} commands (seed {args.seed}) on a book pre-filled with "
        f"{len(wl.prefill):,} orders: {percent(mix['gtc'], args.commands)} GTC, "
        f"{percent(mix['ioc'], args.commands)} IOC, {percent(mix['cancel'], args.commands)} "
        f"cancel, {percent(mix['move'], args.commands)} move"
    )
    print(
        f"throughput: {rate:,} commands/s (Cython book, batch API, {CHUNK_COMMANDS} per call, "
        f"{fixed(elapsed_ns // 1_000_000, 3, group=False)} s); {n_trades:,} trades, "
        f"{book.n_orders:,} orders resting, last price {price_usdt(book.last_price())} USDT"
    )
    print()
    print(f"Top of book ({SYMBOL}, L2, {DEPTH_LEVELS} levels each side)")
    print("\n".join(depth_lines(book)))
    print()
    print(f"Last {LAST_TRADES} trades (newest first)")
    print("\n".join(trade_lines(recent)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
