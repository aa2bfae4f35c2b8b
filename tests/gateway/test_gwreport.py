"""pyx.gwreport.apply_events against its oracle, ``Gateway.on_event`` on each
``events.tolist()`` row: same reports (bytes and sequence numbers), same order state,
open counts, retried set and commands, over random event flows (hypothesis)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bursa_wire.gw_layout import STATE_OPEN, STATE_PENDING
from bursa_wire.layout import EV_DTYPE
from gateway import batch
from gateway.server import Gateway, outbox_messages, session_frames_py
from gateway.store import Order, Store
from pyx import gwreport
from pyx.enums import EvKind, Reason
from pyx.gworders import order_key

USERS = (1, 2)
KINDS = [int(k) for k in EvKind]
HOT = (int(EvKind.ACCEPTED), int(EvKind.TRADE), int(EvKind.CANCELED))  # compiled kinds
REASONS = [int(Reason.USER_CANCELED), int(Reason.ORDER_ID_TOO_OLD), int(Reason.INVALID_QTY)]
PENDINGS: tuple[list[str], ...] = (
    ["N"],
    [],
    ["C"],
    ["N", "R"],
    ["U"],
    ["D"],
    ["N", "C"],
    ["R"],
    ["R", "C"],
    ["D", "C"],
)


def _gateway(spec: list[tuple[Any, ...]], retried: set[tuple[int, int]]) -> Gateway:
    """A Gateway without sockets: a store in memory holding the orders of ``spec``."""
    gw = Gateway.__new__(Gateway)
    gw.store = Store(":memory:")
    gw.store.set_quote_asset(1, 2)
    gw.store.commit()
    gw.retried = {order_key(u, o) for u, o in retried}
    gw.reprobe = set()
    gw.cmds = []
    gw.cmd_tags = []
    gw.mass = {}
    gw.open_by_key = {}
    gw.open_by_user = {}
    gw.flush_scheduled = False
    gw.loop = None
    gw.stats = dict.fromkeys(
        ("orders", "events", "frames_to_core", "retries", "duplicates", "messages_in", "reports"), 0
    )
    orders = []
    for uid, oid, key, cl, side, state, leaves, pending in spec:
        o = Order(uid, oid, key, cl, 1, side, 1, 100, 10, leaves, 0, state, 0, list(pending))
        orders.append(o)
        if o.is_open:
            gw._count_open(o, 1)
    gw.store.add_orders(orders)
    return gw


def _state(gw: Gateway) -> dict[str, Any]:
    s = gw.store
    return {
        "outbox": outbox_messages(s.outbox),
        "orders": {k: o.astuple() for k, o in s.orders.items()},
        "last_seq": s.last_seq,
        "streams": s._out,
        "dirty": sorted({o.key for o in s._dirty}),
        "open": (gw.open_by_key, gw.open_by_user),
        "retried": gw.retried,
        "cmds": (gw.cmds, gw.cmd_tags),
        "quote": s.quote_asset,
    }


order_specs = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.integers(1, 6),
        st.sampled_from((11, 12)),
        st.integers(1, 2**64 - 1),
        st.sampled_from((1, 2)),
        st.sampled_from((STATE_PENDING, STATE_OPEN)),
        st.integers(0, 10),
        st.sampled_from(PENDINGS),
    ),
    max_size=10,
    unique_by=lambda t: (t[0], t[1]),
)

events = st.lists(
    st.fixed_dictionaries(
        {
            "kind": st.one_of(st.sampled_from(HOT), st.sampled_from(KINDS)),
            "user_id": st.sampled_from((*USERS, 3)),
            "order_id": st.integers(1, 7),
            "maker_user_id": st.sampled_from((*USERS, 3)),
            "maker_order_id": st.integers(1, 7),
            "price_ticks": st.integers(-(2**40), 2**40),
            "qty_lots": st.integers(0, 12),
            "leaves_lots": st.integers(0, 12),
            "match_id": st.integers(0, 2**64 - 1),
            "taker_fee": st.integers(-(2**40), 2**40),
            "maker_fee": st.integers(-(2**40), 2**40),
            "ts_ns": st.integers(0, 2**64 - 1),
            "symbol_id": st.sampled_from((1, 2)),
            "reason": st.sampled_from(REASONS),
            "side": st.sampled_from((0, 1, 2)),
            "flags": st.integers(0, 3),
            "ord_type": st.integers(0, 3),
        }
    ),
    max_size=40,
)


def _records(evs: list[dict[str, int]]) -> np.ndarray[Any, np.dtype[np.void]]:
    arr = np.zeros(len(evs), dtype=EV_DTYPE)
    for i, e in enumerate(evs):
        for k, v in e.items():
            arr[i][k] = v
    arr["seq"] = np.arange(1, len(evs) + 1)
    return arr


@settings(max_examples=300, deadline=None)
@given(order_specs, st.data(), events)
def test_compiled_path_matches_on_event(
    spec: list[tuple[Any, ...]], data: st.DataObject, evs: list[dict[str, int]]
) -> None:
    retried = data.draw(st.sets(st.sampled_from([(s[0], s[1]) for s in spec] or [(1, 1)])))
    oracle, compiled = _gateway(spec, retried), _gateway(spec, retried)
    arr = _records(evs)
    # Read-only, like the frames EventSubscriber hands over.
    ro = np.frombuffer(arr.tobytes(), dtype=EV_DTYPE)
    for ev in ro.tolist():
        oracle.on_event(ev)
    gwreport.apply_events(compiled, ro)
    assert _state(compiled) == _state(oracle)


def test_reports_are_the_layout_bytes() -> None:
    """One ACCEPTED and one TRADE between two known orders, bytes checked field by field."""
    gw = _gateway(
        [(1, 1, 11, 77, 1, STATE_PENDING, 10, ["N"]), (2, 2, 12, 88, 2, STATE_OPEN, 4, [])], set()
    )
    evs = [
        {"kind": 1, "user_id": 1, "order_id": 1, "price_ticks": 100, "qty_lots": 10,
         "leaves_lots": 10, "ts_ns": 5},
        {"kind": 3, "user_id": 1, "order_id": 1, "maker_user_id": 2, "maker_order_id": 2,
         "price_ticks": 99, "qty_lots": 4, "leaves_lots": 6, "match_id": 9, "taker_fee": 8,
         "maker_fee": 3, "flags": 2, "ts_ns": 6},
    ]  # fmt: skip
    assert gwreport.apply_events(gw, _records(evs)) == 3
    acc, exe = batch.ACCEPTED_STRUCT.pack, batch.EXECUTED_STRUCT.pack
    assert outbox_messages(gw.store.outbox) == [
        (11, 1, batch.ACCEPTED_CODE + acc(77, 5, 100, 10, 10, 1, 1, 1)),
        (11, 2, batch.EXECUTED_CODE + exe(77, 6, 9, 99, 4, 6, 8, 2, 1, 1, 2)),
        (12, 1, batch.EXECUTED_CODE + exe(88, 6, 9, 99, 4, 0, 3, 2, 1, 2, 1)),
    ]
    taker, maker = gw.store.orders[order_key(1, 1)], gw.store.orders[order_key(2, 2)]
    assert (taker.state, taker.filled, taker.leaves, taker.pending) == (STATE_OPEN, 4, 6, [])
    assert (maker.filled, maker.leaves, maker.is_open) == (4, 0, False)
    assert gw.open_by_key == {11: 1, 12: 0}


class _Conn:
    """What session_frames reads and writes of a connection."""

    def __init__(self, sent_seq: int, replaying: bool) -> None:
        self.sent_seq = sent_seq
        self.replaying = replaying


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from((1, 2, 3)), st.integers(0, 3), st.integers(1, 4)), max_size=20
    ),
    st.dictionaries(
        st.sampled_from((1, 2, 4)), st.tuples(st.integers(0, 2), st.booleans()), max_size=3
    ),
    st.sampled_from([b"A" * 50, b"E" * 70, b"C" * 35]),
)
def test_session_frames_match_the_python_loop(
    chunks: list[tuple[int, int, int]], conns: dict[int, tuple[int, bool]], payload: bytes
) -> None:
    # Per key chunks of consecutive seqs from 1, with random gaps (messages for a seq
    # the connection is not at, e.g. left to the replay) and chunk lists merged into
    # the session's one before (Store.log_turn/commit: an entry's list also holds the
    # next chunk's messages, listed twice).
    seqs: dict[int, int] = {}
    last: dict[int, tuple[int, list[bytes]]] = {}
    outbox: list[tuple[int, int, list[bytes]]] = []
    for key_id, kind, n in chunks:
        first = seqs.get(key_id, 0) + 1 + (kind == 3)
        ps = [payload + bytes([key_id, first + i]) for i in range(n)]
        seqs[key_id] = first + n - 1
        prev = last.get(key_id)
        if kind == 2 and prev is not None and prev[0] + len(prev[1]) == first:
            prev[1].extend(ps)  # merged: the earlier entry's list grows
        outbox.append((key_id, first, ps))
        last[key_id] = (first, ps)
    ref = {k: _Conn(*v) for k, v in conns.items()}
    got = {k: _Conn(*v) for k, v in conns.items()}
    want: dict[Any, bytes] = session_frames_py(outbox, ref)  # type: ignore[arg-type]
    have = gwreport.session_frames(outbox, got)
    by_key_want = {k: want[c] for k, c in ref.items() if c in want}
    by_key_have = {k: have[c] for k, c in got.items() if c in have}
    assert by_key_have == by_key_want
    assert [c.sent_seq for c in got.values()] == [c.sent_seq for c in ref.values()]
