"""The Cython feed (pyx.mdfeed) against the pure-Python reference (tests/marketdata/reffeed.py):
over random flows through the real core (every event kind, halts, candles closing, frames cut
at random points, duplicate delivery) both emit the same (topic, bytes) in the same order and
keep the same books, windows and service state."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from engine.core import Core
from marketdata.feed import Feed, group_parts
from tests.marketdata import reffeed
from tests.marketdata.feedkit import TS0
from tests.marketdata.flow import Flow, setup


def _state(feed: Feed | reffeed.Feed) -> list[object]:
    out: list[object] = [feed.core_seq, sorted(feed.symbols), dict(feed.asset_decimals)]
    for s in sorted(feed.symbols):
        sb = feed.symbols[s]
        out += [
            sb.l3(),
            sb.l2(),
            tuple(sb.bbo),
            {int(k): v for k, v in sb.seqs.items()},
            {int(k): list(v) for k, v in sb.windows.items()},
            sb.status_raw,
            dict(sb.candle_last_raw),
            {k: list(v) for k, v in sb.candle_history.items()},
            list(sb.trades),
            sb.next_ref,
            sorted((k, o.ref) for k, o in sb.orders.items()),
        ]
    return out


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_cython_feed_equals_reference_byte_for_byte(seed: int) -> None:
    rng = random.Random(seed)
    core = Core()
    flow = Flow(seed)
    fast, ref = Feed(replay_window=500), reffeed.Feed(replay_window=500)
    ts = TS0
    batches = [setup()] + [flow.batch(rng.randint(1, 30)) for _ in range(300)]
    n_msgs = 0
    for cmds in batches:
        # Steps from 1 ms to 2 h so candles of every interval close on the way.
        ts += rng.choice((1_000_000, 300_000_000, 1_500_000_000, 61 * 10**9, 7200 * 10**9))
        ev, _ = core.run(cmds, ts)
        ev = np.array(ev, copy=True)
        # Frames cut at random command boundaries; sometimes an earlier frame is
        # delivered again (duplicate delivery: skipped by both).
        seqs = ev["seq"]
        bounds = [0, *(int(i) for i in np.flatnonzero(seqs[1:] != seqs[:-1]) + 1), len(ev)]
        pick = sorted({0, len(ev), *rng.sample(bounds, min(3, len(bounds)))})
        prev: tuple[np.ndarray, int] | None = None
        for a, b in itertools.pairwise(pick):
            frame = ev[a:b]
            last = core.last_seq if b == len(ev) else int(frame["seq"][-1])
            for f in (fast, ref):
                f.apply_events(frame, last)
                if prev is not None and rng.random() < 0.3:
                    f.apply_events(*prev)
            prev = (frame, last)
        if len(ev) == 0:
            fast.apply_events(ev, core.last_seq)
            ref.apply_events(ev, core.last_seq)
        got, want = fast.take(), ref.take()
        assert got == want
        n_msgs += len(got)
    assert n_msgs > 2000
    assert _state(fast) == _state(ref)


def test_cython_feed_reads_a_non_contiguous_frame() -> None:
    core = Core()
    ev, _ = core.run(setup(), TS0)
    ev2 = np.concatenate([ev, ev])[::2]  # strided view of the same records
    fast, ref = Feed(), reffeed.Feed()
    fast.apply_events(ev2, core.last_seq)
    ref.apply_events(ev2, core.last_seq)
    assert fast.take() == ref.take()


def test_group_parts_keeps_order_per_topic_and_cuts_at_the_limit() -> None:
    out = [(b"a.", b"x" * 40), (b"b.", b"y" * 10), (b"a.", b"z" * 40), (b"a.", b"w" * 40)]
    parts, sent, dropped = group_parts(out, 80)
    assert parts == [(b"a.", b"x" * 40 + b"z" * 40), (b"a.", b"w" * 40), (b"b.", b"y" * 10)]
    assert (sent, dropped) == (4, 0)
    # The drop switch counts messages across calls.
    parts, sent, dropped = group_parts(out, 1000, drop_every=3, sent=1)
    assert parts == [(b"a.", b"x" * 40 + b"z" * 40 + b"w" * 40)]  # the 3rd (y) dropped
    assert (sent, dropped) == (5, 1)
