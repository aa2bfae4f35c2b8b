"""Tests of the in-process demo (bursa/demo.py): it runs, shows its sections, formats exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bursa.demo import fixed, percent, price_usdt, qty_btc

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("cmd", [["-m", "bursa.demo"], ["-m", "bursa", "demo"]])
def test_demo_runs_and_prints_its_sections(cmd: list[str]) -> None:
    p = subprocess.run(
        [sys.executable, *cmd, "--commands", "20000", "--seed", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "BTC/USDT" in out
    assert "order flow: 20,000 commands (seed 3)" in out
    assert "commands/s" in out
    assert "Top of book" in out
    assert "Last 10 trades" in out
    depth = out.split("Top of book", 1)[1].split("Last 10 trades", 1)[0]
    assert sum(line.lstrip().startswith("ask") for line in depth.splitlines()) == 5
    assert sum(line.lstrip().startswith("bid") for line in depth.splitlines()) == 5
    trades = out.split("Last 10 trades (newest first)\n", 1)[1].strip().splitlines()
    assert len(trades) == 1 + 10  # header + ten trades


def test_fixed_point_formatting_is_exact() -> None:
    assert price_usdt(6_000_012) == "60,000.12"
    assert price_usdt(5) == "0.05"
    assert qty_btc(1) == "0.0001"
    assert qty_btc(123_456) == "12.3456"
    # A fill's value: 60,000.89 USDT x 0.0007 BTC = 42.000623 USDT exactly.
    assert fixed(6_000_089 * 7, 6) == "42.000623"
    assert fixed(-150, 2) == "-1.50"
    assert fixed(1_234_567, 3, group=False) == "1234.567"
    assert percent(97, 1000) == "9.7%"
    assert percent(1, 3) == "33.3%"
