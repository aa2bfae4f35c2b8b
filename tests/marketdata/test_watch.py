"""`bursa watch`: the view renders the book, trades and candles (captured console output)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from bindings.marketdata import LocalBook
from engine.wire import commands as wc
from marketdata.watch import Units, render
from tests.e2e.coreproc import REPO
from tests.marketdata.feedkit import Run
from tests.marketdata.flow import OID0


def _text(book: LocalBook) -> str:
    console = Console(record=True, width=140, force_terminal=False)
    console.print(render(book, depth=5))
    return console.export_text()


def test_render_shows_book_trades_candles_in_display_units() -> None:
    run = Run(31)
    u1, u2 = run.flow.user_ids()[:2]
    run.step(wc.new_limit(OID0, u1, 1, 2, 123, 7))
    run.step(wc.new_limit(OID0 + 1, u2, 1, 1, 123, 2), dt_ns=10**9)
    run.step(wc.new_limit(OID0 + 2, u2, 1, 1, 120, 3), dt_ns=10**9)
    book = run.books[1]
    out = _text(book)
    u = Units(book)
    # base 8 decimals, quote 6, multiplier 10, 100 base minor units per lot:
    # 1 tick = 10 * 1e8 / (100 * 1e6) = 10 quote units; 1 lot = 1e-6 base units.
    assert u.price(123) == "1230" and u.size(5) == "0.000005"
    assert "trading" in out
    assert "bid 1200 x 0.000003" in out and "ask 1230 x 0.000005" in out
    assert "spread 30" in out
    assert "buy" in out and "0.000002" in out  # the trade: 2 lots, a buyer took
    for iv in ("1s", "1m", "1d"):
        assert iv in out
    run.step(wc.halt_symbol(1))
    assert "HALTED" in _text(book)


def test_render_empty_book() -> None:
    out = _text(LocalBook(9))
    assert "symbol 9" in out and "book" in out


def test_bursa_watch_once_against_a_running_feed() -> None:
    from tests.marketdata.test_e2e import Stack

    root = Path(tempfile.mkdtemp(prefix="mdw", dir="/tmp"))
    stack = Stack(root)
    try:
        u1 = 12_345_601
        stack.sender.send(wc.new_limit(OID0, u1, 1, 2, 150, 4))
        stack.settle(stack.client())
        out = subprocess.run(
            [sys.executable, "-m", "bursa", "watch", "1", "--pub", stack.pub,
             "--service", stack.service, "--once"],
            capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
            env=dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="140"),
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "ask 1500 x 0.000004" in out.stdout
        bad = subprocess.run(
            [sys.executable, "-m", "bursa", "watch", "1", "--pub", stack.pub,
             "--service", f"ipc://{root}/nobody", "--once", "--timeout-ms", "300"],
            capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )  # fmt: skip
        assert bad.returncode == 1 and "bursa watch:" in bad.stderr
    finally:
        stack.close()
        shutil.rmtree(root, ignore_errors=True)
