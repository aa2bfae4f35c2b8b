"""The compiled mapping (pyx.ledgermap) against its oracle, the pure-Python path
(clearing.rules.post + Ledger._apply): identical rows, balances, holds and orders."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bursa_wire.layout import EV_DTYPE
from clearing.db import Db
from clearing.ledger import Ledger, StreamError
from pyx.enums import EvKind, Side
from tests.clearing.replay import run_core

QUEUES = (
    "q_entries", "q_balances", "q_orders", "q_order_events", "q_trades", "q_deposits",
    "q_wd_new", "q_wd_done", "q_symbols", "q_assets", "q_users", "q_events",
)  # fmt: skip
STATE = ("balances", "symbols", "holds", "orders", "last_seq", "n_events", "n_entries")


def _pair() -> tuple[Ledger, Ledger]:
    return Ledger(Db(":memory:"), fast=False), Ledger(Db(":memory:"), fast=True)


def _same(oracle: Ledger, fast: Ledger) -> None:
    for name in QUEUES + STATE:
        want, got = getattr(oracle, name), getattr(fast, name)
        assert got == want, name
        if isinstance(want, list):  # same types too (an int must not become a bool/str)
            assert [tuple(map(type, r)) for r in got] == [tuple(map(type, r)) for r in want]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 400), every=st.integers(1, 8))
def test_core_streams_map_identically(seed: int, n: int, every: int) -> None:
    _core, frames = run_core(seed, n)
    oracle, fast = _pair()
    for i, f in enumerate(frames):
        assert fast.apply_frame(*f) == oracle.apply_frame(*f)
        _same(oracle, fast)
        if i % every == 0:
            oracle._clear_queue()
            fast._clear_queue()
    # Re-delivery of a frame overlapping the applied end maps nothing, on both.
    assert fast.apply_frame(*frames[-1]) == oracle.apply_frame(*frames[-1]) == 0


U64_MAX = 2**64 - 1
# Order entry weighted up so that later events find live orders.
KINDS = [int(k) for k in EvKind] + [int(EvKind.ACCEPTED)] * 12 + [int(EvKind.TRADE)] * 6
N_SYMBOLS = 4


@st.composite
def records(draw: Any) -> np.ndarray:
    """Arbitrary event records: few users, orders and symbols so events refer to
    each other; ids up to 2**64 - 1; amounts of any sign."""
    n = draw(st.integers(1, 60))
    recs = np.zeros(N_SYMBOLS + n, dtype=EV_DTYPE)
    for s in range(N_SYMBOLS):  # symbols first: base asset 1, quote 2
        r = recs[s]
        r["seq"], r["kind"], r["symbol_id"] = s + 1, int(EvKind.SYMBOL_ADDED), s
        r["user_id"], r["maker_user_id"] = 1, 2
        r["taker_fee"], r["maker_fee"] = draw(st.integers(1, 100)), draw(st.integers(1, 100))
    seq = N_SYMBOLS + 1
    small = st.integers(0, 3)
    amount = st.one_of(st.integers(-5, 50), st.integers(-(2**40), 2**40))
    oid = st.one_of(small, st.just(U64_MAX), st.just(2**63))
    for i in range(N_SYMBOLS, N_SYMBOLS + n):
        seq += draw(st.integers(0, 1))  # several events of one seq, too
        r = recs[i]
        r["seq"], r["ts_ns"] = seq, 1_000 + seq
        r["kind"] = draw(st.sampled_from(KINDS))
        r["side"] = draw(st.sampled_from([int(Side.BUY), int(Side.SELL)]))
        r["flags"] = draw(st.integers(0, 3))
        r["user_id"], r["maker_user_id"] = draw(small), draw(small)
        r["order_id"], r["maker_order_id"] = draw(oid), draw(oid)
        r["match_id"] = draw(oid)
        r["symbol_id"] = draw(st.integers(0, N_SYMBOLS))  # N_SYMBOLS: unknown
        for f in ("price_ticks", "qty_lots", "leaves_lots", "taker_fee", "maker_fee"):
            r[f] = draw(amount)
        r["reason"], r["ord_type"] = draw(small), draw(small)
    return recs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evs=records())
def test_arbitrary_records_map_identically_or_fail_alike(evs: np.ndarray) -> None:
    """Frames of one seq each; the state is compared after every frame, up to the
    first event naming something unknown, which both refuse with the same message."""
    oracle, fast = _pair()
    seqs = evs["seq"]
    for seq in np.unique(seqs):
        frame = evs[seqs == seq]
        errors: list[str] = []
        for led in (oracle, fast):
            try:
                led.apply_frame(int(seq), int(seq), frame)
            except StreamError as e:
                errors.append(str(e))
        assert len(errors) in (0, 2), errors
        if errors:
            assert errors[0] == errors[1]
            return
        _same(oracle, fast)


def test_wrong_record_type_is_refused() -> None:
    _oracle, fast = _pair()
    with pytest.raises(TypeError):
        fast.apply_frame(1, 1, np.zeros(1, dtype=np.int64))
