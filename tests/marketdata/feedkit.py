"""Run the random flow through an in-process core and a Feed; checks shared by tests."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from bindings.marketdata import BUY, SELL, LocalBook
from bursa_wire.md_codec import Msg, decode
from bursa_wire.md_layout import CANDLE_INTERVALS_S, MsgType
from engine.core import Core
from marketdata.feed import Feed
from tests.marketdata.flow import SYMBOLS, Flow, setup

TS0 = 1_700_000_000_000_000_000


def core_l3(core: Core, sym: int) -> list[tuple[int, int, int]]:
    """The core book's resting orders ``(side, price, open)`` in priority order."""
    book = core.book(sym)
    assert book is not None
    return [(int(o[2]), int(o[3]), int(o[4])) for o in book.l3()]


def core_l2(core: Core, sym: int) -> dict[int, dict[int, tuple[int, int]]]:
    """The core book's levels, side -> {price: (lots, orders)}."""
    b = core.book(sym)
    assert b is not None
    return {s: {int(p): (int(q), int(n)) for p, q, n in b.l2(s)} for s in (BUY, SELL)}


def assert_book_matches(core: Core, book: LocalBook) -> None:
    """Local L3 (ids aside), L2 and BBO equal the core's book; L2 = agg(L3), BBO = top(L2)."""
    sym = book.symbol_id
    assert [(s, p, q) for _r, s, p, q in book.l3()] == core_l3(core, sym)
    assert book.l2 == core_l2(core, sym)
    assert book.l2_from_l3() == book.l2
    assert book.bbo == book.top_of_l2()


def assert_no_private_ids(raw: bytes, user_ids: list[int], max_oid: int, oid0: int) -> None:
    """No user id (4 bytes) nor core order id (8 bytes) occurs in a message's bytes."""
    for u in user_ids:
        assert u.to_bytes(4, "little") not in raw
    for i in range(len(raw) - 7):
        v = int.from_bytes(raw[i : i + 8], "little")
        assert not oid0 <= v < max_oid, (raw.hex(), i)


class Run:
    """Core + feed + one LocalBook per symbol fed every message in order."""

    def __init__(self, seed: int, replay_window: int = 100_000) -> None:
        self.core = Core()
        self.feed = Feed(replay_window)
        self.flow = Flow(seed)
        self.ts = TS0
        self.books = {s: LocalBook(s) for s in SYMBOLS}
        self.msgs: list[tuple[bytes, bytes]] = []
        self.step(setup())

    def step(self, cmds: np.ndarray, dt_ns: int = 0) -> None:
        """Apply one batch to the core (one timestamp) and feed its events."""
        self.ts += dt_ns
        ev, _rep = self.core.run(cmds, self.ts)
        self.feed.apply_events(ev, self.core.last_seq)
        for tp, raw in self.feed.take():
            self.msgs.append((tp, raw))
            m = decode(raw)
            self.books[m.symbol_id].apply(m)

    def random(self, batches: int, size: int, dt_ns: int) -> None:
        """``batches`` random batches, ``dt_ns`` apart."""
        for _ in range(batches):
            self.step(self.flow.batch(size), dt_ns)


def recompute_candles(msgs: list[Msg]) -> dict[tuple[int, int, int], tuple[int, ...]]:
    """(symbol, interval, start) -> (o, h, l, c, vol, quote vol, n) from TRADE messages."""
    acc: dict[tuple[int, int, int], list[int]] = {}
    for m in msgs:
        if m.msg_type != MsgType.TRADE:
            continue
        p, q = m["price_ticks"], m["qty_lots"]
        for iv in CANDLE_INTERVALS_S:
            start = m.ts_ns - m.ts_ns % (iv * 10**9)
            k = (m.symbol_id, iv, start)
            c = acc.get(k)
            if c is None:
                acc[k] = [p, p, p, p, q, p * q, 1]
            else:
                c[1], c[2], c[3] = max(c[1], p), min(c[2], p), p
                c[4] += q
                c[5] += p * q
                c[6] += 1
    return {k: tuple(v) for k, v in acc.items()}


def candles_by_key(
    msgs: list[Msg],
) -> tuple[dict[tuple[int, int, int], Msg], dict[tuple[int, int, int], Msg]]:
    """Closed candles and the latest in-progress ones, by (symbol, interval, start)."""
    closed: dict[tuple[int, int, int], Msg] = {}
    latest: dict[tuple[int, int, int], Msg] = defaultdict()
    for m in msgs:
        if m.msg_type != MsgType.CANDLE:
            continue
        k = (m.symbol_id, m["interval_s"], m["start_ns"])
        assert k not in closed, f"candle {k} updated after it closed"
        if m["closed"]:
            closed[k] = m
        latest[k] = m
    return closed, dict(latest)
