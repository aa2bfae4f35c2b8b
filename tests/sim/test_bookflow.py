"""Tests of the benchmark workload generator (sim/bookflow.py).

The generator's claims are checked against the reference book: every cancel and
move must name a live order (the book rejects nothing), and the fills, the
trading commands and the final book the generator predicts must be what the
book produces.  Mix proportions are checked within tolerances wide enough for a
20,000-command sample and narrow enough to catch a wrong class threshold.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bursa_wire.layout import CMD_DTYPE
from pyx.enums import CmdKind, EvKind, OrdType, Tif
from sim.bookflow import Workload, WorkloadConfig, generate
from tests.refbook import RefBook

N_COMMANDS = 20_000


@pytest.fixture(scope="module")
def wl() -> Workload:
    return generate(WorkloadConfig(commands=N_COMMANDS, seed=5))


@pytest.fixture(scope="module")
def ref_events(wl: Workload) -> tuple[RefBook, np.ndarray, np.ndarray]:
    book = RefBook(**wl.config.book_kwargs())
    pre = book.process(wl.prefill)
    ev = book.process(wl.commands)
    return book, pre, ev


def test_same_seed_same_stream() -> None:
    cfg = WorkloadConfig(commands=3_000, seed=11)
    a, b = generate(cfg), generate(cfg)
    assert a.prefill.tobytes() == b.prefill.tobytes()
    assert a.commands.tobytes() == b.commands.tobytes()
    assert (a.trades, a.l3_end) == (b.trades, b.l3_end)


def test_other_seed_other_stream() -> None:
    a = generate(WorkloadConfig(commands=3_000, seed=11))
    b = generate(WorkloadConfig(commands=3_000, seed=12))
    assert a.commands.tobytes() != b.commands.tobytes()


def test_records_are_well_formed(wl: Workload) -> None:
    cfg = wl.config
    assert wl.commands.dtype == CMD_DTYPE
    assert len(wl.commands) == N_COMMANDS
    allc = np.concatenate([wl.prefill, wl.commands])
    assert np.array_equal(allc["seq"], np.arange(1, len(allc) + 1, dtype=np.uint64))
    assert np.all(np.diff(allc["ts_ns"].astype(np.int64)) > 0)
    assert np.all(allc["symbol_id"] == cfg.symbol_id)
    assert set(np.unique(allc["kind"]).tolist()) <= {CmdKind.NEW, CmdKind.CANCEL, CmdKind.REPLACE}
    new = allc[allc["kind"] == CmdKind.NEW]
    # New order ids are 1, 2, 3, ... in stream order: never reused.
    assert np.array_equal(new["order_id"], np.arange(1, len(new) + 1, dtype=np.uint64))
    assert np.all(new["ord_type"] == OrdType.LIMIT)
    assert set(np.unique(new["tif"]).tolist()) <= {Tif.GTC, Tif.IOC}
    priced = allc[allc["kind"] != CmdKind.CANCEL]
    assert np.all(priced["price_ticks"] >= cfg.min_price_ticks)
    assert np.all(priced["price_ticks"] <= cfg.max_price_ticks)
    assert np.all(priced["qty_lots"] >= 1)
    assert np.all((allc["user_id"] >= 1) & (allc["user_id"] <= cfg.users))


def test_prefill_reaches_target_without_trading(
    wl: Workload, ref_events: tuple[RefBook, np.ndarray, np.ndarray]
) -> None:
    _, pre, _ = ref_events
    assert np.all(wl.prefill["kind"] == CmdKind.NEW)
    assert np.all(wl.prefill["tif"] == Tif.GTC)
    assert len(wl.prefill) == wl.config.target_orders
    assert set(np.unique(pre["kind"]).tolist()) == {EvKind.ACCEPTED}


def test_mix_proportions(wl: Workload) -> None:
    kinds: Counter[tuple[int, int]] = Counter()
    for kind, tif in zip(wl.commands["kind"].tolist(), wl.commands["tif"].tolist(), strict=True):
        kinds[(kind, tif if kind == CmdKind.NEW else 0)] += 1
    counted = {
        "gtc": kinds[(CmdKind.NEW, Tif.GTC)],
        "ioc": kinds[(CmdKind.NEW, Tif.IOC)],
        "cancel": kinds[(CmdKind.CANCEL, 0)],
        "move": kinds[(CmdKind.REPLACE, 0)],
    }
    assert counted == wl.mix
    permille = {k: v * 1000 // N_COMMANDS for k, v in counted.items()}
    # exchange-core: 9% GTC, 3% IOC, 6% cancel, 82% move.
    assert 800 <= permille["move"] <= 840, permille
    assert 22 <= permille["ioc"] <= 38, permille
    assert 75 <= permille["gtc"] <= 110, permille
    assert 40 <= permille["cancel"] <= 75, permille
    # about 6% of the commands trade; the book stays near 1,000 orders.
    assert 45 <= wl.trade_ratio_permille <= 75, wl.trade_ratio_permille
    assert 800 <= wl.mean_resting_orders <= 1_200
    assert 400 <= wl.mean_levels <= 1_000


def test_ids_valid_and_model_matches_reference_book(
    wl: Workload, ref_events: tuple[RefBook, np.ndarray, np.ndarray]
) -> None:
    book, _, ev = ref_events
    # A cancel or move naming a dead order would be REJECTED (UNKNOWN_ORDER_ID).
    assert not np.any(ev["kind"] == EvKind.REJECTED)
    trades = ev[ev["kind"] == EvKind.TRADE]
    assert len(trades) == wl.trades
    assert len(np.unique(trades["seq"])) == wl.trading_commands
    assert [row[:5] for row in book.l3()] == wl.l3_end
    assert book.n_orders == wl.resting_orders_end
    assert book.last_price() == wl.last_price_ticks
    assert len(book.l2(1)) + len(book.l2(2)) == wl.levels_end


def test_summary_reports_model_figures(wl: Workload) -> None:
    s = wl.summary()
    assert s["commands"] == N_COMMANDS
    assert s["trades"] == wl.trades
    assert s["resting_orders_end"] == wl.resting_orders_end
    assert s["trade_ratio_permille"] == wl.trading_commands * 1000 // N_COMMANDS
