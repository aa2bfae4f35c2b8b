"""Tests of `bursa run` (bursa/run.py): the real core process end to end, and its local book."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bursa.run import LocalBook, price, qty, weighted_percentile
from pyx.book import Book
from pyx.enums import Side
from tests.bookgen import STREAM_CONFIG, exchange_stream

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 120
SECTIONS = (
    "Market setup",
    "Order flow:",
    "Single commands",
    "Top of book",
    "Last 10 trades",
    "Balances",
    "conservation: OK",
    "Restart",
    "OK: every check held",
)


@pytest.mark.parametrize(
    "cmd",
    [
        ["-m", "bursa.run"],
        ["-m", "bursa", "tour", "--rounds", "3", "--seed", "5"],
        ["-m", "bursa", "run", "--script", "--rounds", "2"],
    ],
)
def test_run_drives_the_core_process_and_recovers_it(cmd: list[str]) -> None:
    p = subprocess.run(
        [sys.executable, *cmd],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    positions = [out.index(s) for s in SECTIONS]
    assert positions == sorted(positions), "sections out of order"
    assert "fsync durability" in out
    assert re.search(r"replies +[\d,]+ applied, rejected: none", out)
    assert "rejected, INSUFFICIENT_FUNDS" in out
    assert "rejected, PRICE_OFF_TICK" in out
    assert "the stop order TRIGGERED" in out
    assert "withdrawal 1: commit: applied" in out
    assert "duplicate" in out

    n_trades = re.search(r"Last 10 trades \(newest first; ([\d,]+) trades in all", out)
    assert n_trades and int(n_trades[1].replace(",", "")) > 0
    depth = out.split("Top of book", 1)[1].split("Last 10 trades", 1)[0]
    assert sum(line.lstrip().startswith("ask ") for line in depth.splitlines()) == 5
    assert sum(line.lstrip().startswith("bid ") for line in depth.splitlines()) == 5
    table = out.split("Last 10 trades", 1)[1].split("Balances", 1)[0].strip().splitlines()
    assert len(table) == 3 + 10  # title, units line, header, ten trades

    before = re.search(r"^state hash +([0-9a-f]{32}) at seq ([\d,]+)", out, re.M)
    after = re.search(r"recovered seq ([\d,]+), state hash ([0-9a-f]{32}) \(same as", out)
    replay = re.search(r"bursa replay .*seq ([\d,]+),\n +state hash ([0-9a-f]{32}) \(same\)", out)
    assert before and after and replay, out
    assert before[1] == after[2] == replay[2]
    assert before[2] == after[1] == replay[1]
    assert "conservation after the restart: OK" in out
    assert "the same book" in out

    removed = re.search(r"^removed (\S+)$", out, re.M)
    assert removed and not Path(removed[1]).exists()


def test_local_book_follows_the_cython_book() -> None:
    """The event-built book equals the real book's L2 after every chunk of a rich stream
    (GTC, IOC, FOK, market, market-by-quote, stops, reduce, replace, mass cancel, STP)."""
    book = Book(1, **STREAM_CONFIG)
    local = LocalBook(1)
    cmds = exchange_stream(seed=11, n=20_000)
    for i in range(0, len(cmds), 1000):
        local.apply(book.process(cmds[i : i + 1000]).copy())
        for side in (Side.BUY, Side.SELL):
            assert local.levels(side) == book.l2(side)
            assert local.best(side) == (book.best_bid() if side == Side.BUY else book.best_ask())
        assert local.stops == {row[0] for row in book.stops()}
        assert len(local.orders) + len(local.stops) == book.n_orders
        assert local.last_price_ticks == book.last_price()
    assert local.n_trades > 0 and book.n_orders > 0


def test_weighted_percentile_is_nearest_rank() -> None:
    samples = [(30, 1), (10, 2), (20, 7)]  # ten values: 10 10 20 20 20 20 20 20 20 30
    assert weighted_percentile(samples, 50) == 20
    assert weighted_percentile(samples, 20) == 10
    assert weighted_percentile(samples, 21) == 20
    assert weighted_percentile(samples, 90) == 20
    assert weighted_percentile(samples, 99) == 30
    assert weighted_percentile([], 99) == 0


def test_formatting_is_exact() -> None:
    assert price(6_000_010) == "60,000.10"
    assert qty(99) == "0.0099"
