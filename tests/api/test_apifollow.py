"""``pyx.apifollow``, the compiled event follower, against its Python oracle.

Two stores start from the same open orders (of both order-id lanes: the gateway's
small ids and the API's, bit 39 set); the same random frames of core events are
applied to one by ``Follower.apply_events_py`` (``tolist`` and ``Follower.apply``
per event) and to the other by ``Follower.apply_events`` (:mod:`pyx.apifollow`).
After every frame both must hold the same orders, the same ``Update`` objects for
the user data streams (with the order's state at each change), the same changed
balances, funding events and probes, and the same symbol callbacks; after every
commit the same SQL statements must have run, with the same values.  The events
are ACCEPTED, TRADE (partial and complete fills of either side) and CANCELED of
every reason, of known and unknown orders, plus rejects (FOK expiry, probes),
amends, funding, asset and symbol events and unknown kinds, which the compiled
code hands back to Python in order."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from api.follow import Follower, Update
from api.store import API_ID_BASE, PENDING_NEW, Fill, Order, Store
from bursa_wire.layout import EV_DTYPE
from pyx.enums import EvFlag, EvKind, OrdType, Reason, Side

USERS = (1, 2, 3)
# Gateway-lane ids (ms since 2025 in production) and API-lane ids (bit 39 set).
OIDS = (1, 2, 3, 1 << 38, API_ID_BASE + 1, API_ID_BASE + 2, API_ID_BASE + 3)
SYMBOL = 1  # configured at the start; 2 only if an event adds it; 3 never
COMMON = (int(EvKind.ACCEPTED), int(EvKind.TRADE), int(EvKind.CANCELED))
OTHER_KINDS = (*(int(k) for k in EvKind if int(k) not in COMMON), 0, 99, 255)
REASONS = (*range(7), int(Reason.FOK_NOT_FILLABLE), int(Reason.INSUFFICIENT_FUNDS), 999, 65535)
CONFIG = {
    "base_asset_id": 1, "quote_asset_id": 2, "base_decimals": 8, "quote_decimals": 6,
    "base_per_lot": 100_000, "price_multiplier": 10, "tick_step": 1, "lot_step": 1,
    "min_qty_lots": 1, "max_qty_lots": 10**9, "min_price_ticks": 1,
    "max_price_ticks": 10**9, "min_notional_minor": 0, "status": 1,
}  # fmt: skip

_u64 = st.integers(0, 2**64 - 1)
_small = st.integers(-1000, 10**6)
# Mostly what SQLite can store (a commit of a value beyond 64 bits fails on both sides).
_i64 = st.one_of(_small, _small, st.integers(-(2**63), 2**63 - 1))
_event = st.fixed_dictionaries(
    {
        "kind": st.one_of(st.sampled_from(COMMON), st.sampled_from(OTHER_KINDS)),
        "user_id": st.sampled_from(USERS),
        "order_id": st.sampled_from(OIDS),
        "maker_user_id": st.sampled_from(USERS),
        "maker_order_id": st.sampled_from(OIDS),
        "symbol_id": st.sampled_from((1, 1, 2, 3)),
        "side": st.sampled_from((int(Side.BUY), int(Side.SELL), 0, 7)),
        "ord_type": st.integers(0, 8),
        "flags": st.integers(0, 3),
        "reason": st.sampled_from(REASONS),
        "price_ticks": _i64,
        "qty_lots": _i64,
        "leaves_lots": _i64,
        "match_id": st.one_of(st.integers(0, 100), st.integers(0, 100), _u64),
        "taker_fee": _i64,
        "maker_fee": _i64,
        "ts_ns": st.one_of(st.integers(0, 10**19), _u64),
        "seq": _u64,
    }
)
# A frame's events, then what happens before the next: commit both stores, take the
# updates (as the user data streams do), watch other users.
_frame = st.tuples(
    st.lists(_event, max_size=10),
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), st.frozensets(st.sampled_from(USERS))),
)
_open_order = st.tuples(
    st.sampled_from(USERS),
    st.sampled_from(OIDS),
    st.sampled_from((PENDING_NEW, PENDING_NEW, "NEW", "PARTIALLY_FILLED")),
    st.sampled_from(("LIMIT", "MARKET")),
    st.integers(0, 5),  # qty (0: a quoteOrderQty market order)
    st.integers(0, 3),  # executed
    st.booleans(),  # durable (a client's own id) or generated
)


def _frame_bytes(events: list[dict[str, int]]) -> np.ndarray[Any, Any]:
    """The records as a frame carries them: a read-only view on bytes."""
    a = np.zeros(len(events), EV_DTYPE)
    for i, ev in enumerate(events):
        for k, v in ev.items():
            a[k][i] = v
    return np.frombuffer(a.tobytes(), dtype=EV_DTYPE)


class Side_:
    """One store, its follower and what it did (SQL, symbol callbacks)."""

    def __init__(self, opened: list[tuple[Any, ...]], probing: set[tuple[int, int]]) -> None:
        self.store = Store(":memory:")
        self.sql: list[str] = []
        self.symbols: list[tuple[int, dict[str, int]]] = []
        self.taken: list[Any] = []
        self.follower = Follower(self.store, lambda sid, cfg: self.symbols.append((sid, cfg)))
        self.store.set_symbol(SYMBOL, dict(CONFIG))
        seen = set()
        for uid, oid, status, typ, qty, executed, durable in opened:
            if (uid, oid) in seen:
                continue
            seen.add((uid, oid))
            o = Order(uid, oid, SYMBOL, f"cl{oid}", "BUY", typ, "GTC", 100, qty, 7, 0,
                      executed=executed, status=status)  # fmt: skip
            self.store.add(o, durable=durable)
        self.follower.probing = set(probing)
        self.store.con.set_trace_callback(self.sql.append)

    def state(self) -> tuple[Any, ...]:
        """Everything the two followers must agree on after a frame."""
        s, f = self.store, self.follower
        for ev in f.funding:
            assert all(type(v) is int for v in ev), ev  # what tolist gives
        return (dict(s.open), dict(s.open_by_cl), s.symbols, s.assets, s.last_core_seq,
                f.updates, f.balances, f.funding, f.probing, self.symbols, self.taken)  # fmt: skip

    def take(self) -> None:
        """What ``api.userdata.UserStreams.on_applied`` does: new collections."""
        f = self.follower
        self.taken.append((f.updates, f.balances, f.funding))
        f.updates, f.balances, f.funding = [], set(), []


@contextmanager
def _pair(
    opened: list[tuple[Any, ...]], probing: set[tuple[int, int]]
) -> Iterator[tuple[Side_, Side_]]:
    a, b = Side_(opened, probing), Side_(opened, probing)
    try:
        yield a, b
    finally:
        for side in (a, b):
            try:
                side.store.close()
            except (OverflowError, sqlite3.Error):  # the example's failed commit again
                side.store._checkpointer.stop()
                side.store.con.close()


def _commit(py: Side_, cy: Side_) -> bool:
    """Commit both stores: the same statements must run; False if both failed the
    same way (a value beyond SQLite's 64 bits: the example ends there)."""
    errors: list[tuple[type, str] | None] = []
    for side in (py, cy):
        try:
            side.store.commit()
            errors.append(None)
        except (OverflowError, sqlite3.Error) as e:
            errors.append((type(e), str(e)))
            side.store.con.execute("ROLLBACK")
    assert cy.sql == py.sql
    assert errors[0] == errors[1]
    return errors[0] is None


@settings(max_examples=400, deadline=None)
@given(
    opened=st.lists(_open_order, max_size=10),
    probing=st.sets(st.tuples(st.sampled_from(USERS), st.sampled_from(OIDS)), max_size=4),
    frames=st.lists(_frame, min_size=1, max_size=6),
    watched=st.one_of(st.none(), st.frozensets(st.sampled_from(USERS))),
)
def test_compiled_follower_matches_python(
    opened: list[tuple[Any, ...]],
    probing: set[tuple[int, int]],
    frames: list[tuple[list[dict[str, int]], bool, bool, frozenset[int] | None]],
    watched: frozenset[int] | None,
) -> None:
    """Same orders, updates, balances, funding, probes, symbols and SQL writes."""
    with _pair(opened, probing) as (py, cy):
        py.follower.watched = cy.follower.watched = watched
        common = 0
        for seq, (events, commit, take, watch) in enumerate(frames, 1):
            recs = _frame_bytes(events)
            py.follower.apply_events_py(recs)
            cy.follower.apply_events(recs)
            py.store.set_core_seq(seq)
            cy.store.set_core_seq(seq)
            assert cy.state() == py.state()
            common += sum(ev["kind"] in COMMON for ev in events)
            if commit:
                if not _commit(py, cy):
                    return
                assert cy.state() == py.state()
            if take:
                py.take()
                cy.take()
            py.follower.watched = cy.follower.watched = watch
        if not _commit(py, cy):
            return
        assert cy.state() == py.state()
        # The common kinds took the compiled path; only the others went to Python.
        total = sum(len(evs) for evs, *_ in frames)
        assert cy.follower.compiled_counts() == (common, total - common)


def _ev(kind: int, user: int, oid: int, **fields: int) -> dict[str, int]:
    return {"kind": kind, "user_id": user, "order_id": oid, "symbol_id": SYMBOL,
            "side": int(Side.BUY), "ord_type": int(OrdType.LIMIT), "price_ticks": 100,
            "qty_lots": 5, "ts_ns": 1_700_000_000_123_456_789, **fields}  # fmt: skip


def test_order_pair_of_the_benchmark_is_compiled() -> None:
    """The benchmark's pair (a resting sell accepted, an IOC buy accepted and filled
    against it) and a gateway order's accept and cancel: every event in C, with the
    results Python gives: statuses, the taker's fill (FULL answer), the trade rows,
    the gateway order's ``core.<id>`` and the updates of a watched user."""
    sell, buy = API_ID_BASE + 1, API_ID_BASE + 2
    opened = [
        (1, sell, PENDING_NEW, "LIMIT", 5, 0, False),
        (2, buy, PENDING_NEW, "LIMIT", 5, 0, True),
    ]
    frame = [
        _ev(EvKind.ACCEPTED, 1, sell, side=int(Side.SELL)),
        _ev(EvKind.ACCEPTED, 2, buy),
        _ev(EvKind.TRADE, 2, buy, maker_user_id=1, maker_order_id=sell, match_id=9,
            taker_fee=12, maker_fee=-3, flags=int(EvFlag.TAKER_DONE | EvFlag.MAKER_DONE)),
        _ev(EvKind.ACCEPTED, 3, 77, ord_type=int(OrdType.MARKET_QUOTE)),
        _ev(EvKind.CANCELED, 3, 77, reason=int(Reason.NO_LIQUIDITY)),
    ]  # fmt: skip
    with _pair(opened, set()) as (py, cy):
        py.follower.watched = cy.follower.watched = {2, 3}
        recs = _frame_bytes(frame)
        py.follower.apply_events_py(recs)
        cy.follower.apply_events(recs)
        assert cy.follower.compiled_counts() == (5, 0)
        assert cy.state() == py.state()
        s = cy.store
        assert s.open[(1, sell)].status == s.open[(2, buy)].status == "FILLED"
        assert s.open[(2, buy)].fills == [Fill(9, 100, 5, 12, False, 1_700_000_000_123)]
        assert s.open[(2, buy)].cum_quote == 100 * 5 * CONFIG["price_multiplier"]
        gw = s.open[(3, 77)]
        assert (gw.client_order_id, gw.qty, gw.type, gw.api) == ("core.77", 0, "MARKET", False)
        assert [(u.order.user_id, u.exec_type, u.status) for u in cy.follower.updates] == [
            (2, "NEW", "NEW"), (2, "TRADE", "FILLED"), (3, "NEW", "NEW"),
            (3, "EXPIRED", "EXPIRED"),
        ]  # fmt: skip
        assert isinstance(cy.follower.updates[1], Update)
        py.store.commit()
        cy.store.commit()
        assert cy.sql == py.sql and len(cy.sql) > 2


def test_strided_and_empty_frames() -> None:
    """A view that is not contiguous is copied first; an empty frame changes nothing."""
    frame = [_ev(EvKind.ACCEPTED, 1, i) for i in range(1, 7)]
    with _pair([], set()) as (py, cy):
        recs = _frame_bytes(frame)
        py.follower.apply_events_py(recs[::2])
        cy.follower.apply_events(recs[::2])
        cy.follower.apply_events(recs[:0])
        assert sorted(cy.store.open) == [(1, 1), (1, 3), (1, 5)]
        assert cy.state() == py.state()
