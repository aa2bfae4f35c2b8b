"""ACCEPTED from the core's APPLIED reply or from its ACCEPTED event, whichever the
gateway reads first: exactly one report either way, and a second source (a replayed
event after a restart included) changes nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bursa_wire.gw_layout import BY_NAME, STATE_OPEN, STATE_PENDING
from bursa_wire.layout import EV_DTYPE, REPLY_DTYPE
from gateway.server import FRAME_SHIFT, outbox_messages
from gateway.store import Order
from gateway.wire import codec
from pyx import gwreport
from pyx.enums import EvKind, OrdType
from pyx.gworders import order_key
from tests.gateway.test_gwreport import USERS, _gateway, _state, order_specs

ACCEPTED = BY_NAME["ACCEPTED"]


def accepted_event(o: Order, ts: int) -> np.ndarray[Any, np.dtype[np.void]]:
    ev = np.zeros(1, dtype=EV_DTYPE)
    ev["kind"], ev["user_id"], ev["order_id"] = int(EvKind.ACCEPTED), o.user_id, o.order_id
    ev["price_ticks"], ev["qty_lots"], ev["leaves_lots"] = o.price, o.qty, o.qty
    ev["side"], ev["ts_ns"] = o.side, ts
    return ev


def reports(gw: object) -> list[dict[str, int | bytes]]:
    out = []
    for _key, _seq, payload in outbox_messages(gw.store.outbox):  # type: ignore[attr-defined]
        assert payload[:1] == ACCEPTED.code
        out.append(codec.decode(ord("S"), (1).to_bytes(8, "little") + payload, False).values)
    return out


@pytest.mark.parametrize("reply_first", [True, False])
def test_one_accepted_whichever_comes_first(reply_first: bool) -> None:
    gw = _gateway([(1, 5, 11, 77, 1, STATE_PENDING, 10, ["N"])], set())
    gw.stats["acks_from_reply"] = 0
    o = gw.store.orders[order_key(1, 5)]
    if reply_first:
        gw._accepted_by_reply(1, 5)
        gw.on_events(accepted_event(o, 123))
    else:
        gw.on_events(accepted_event(o, 123))
        gw._accepted_by_reply(1, 5)
    got = reports(gw)
    assert len(got) == 1
    want = {"cl_ord_id": 77, "price_ticks": 100, "qty_lots": 10, "leaves_lots": 10}
    assert {k: got[0][k] for k in want} == want
    assert got[0]["ts_ns"] != 123 if reply_first else got[0]["ts_ns"] == 123
    assert (o.state, o.pending) == (STATE_OPEN, [])
    assert gw.stats["acks_from_reply"] == (1 if reply_first else 0)
    # A replay of the event (a restart before last_core_seq moved past it) adds nothing.
    gw.on_events(accepted_event(o, 456))
    gw._accepted_by_reply(1, 5)
    assert len(reports(gw)) == 1


def test_market_orders_wait_for_the_event() -> None:
    gw = _gateway([(1, 5, 11, 77, 1, STATE_PENDING, 10, ["N"])], set())
    gw.stats["acks_from_reply"] = 0
    o = gw.store.orders[order_key(1, 5)]
    o.ord_type = int(OrdType.MARKET)  # the core sets its book price: the event tells it
    gw._accepted_by_reply(1, 5)
    assert gw.store.outbox == [] and o.pending == ["N"]
    gw.on_events(accepted_event(o, 9))
    assert len(reports(gw)) == 1


@settings(max_examples=200, deadline=None)
@given(
    spec=order_specs,
    types=st.lists(st.sampled_from([int(t) for t in OrdType]), min_size=10, max_size=10),
    data=st.data(),
)
def test_compiled_reply_acks_match_the_oracle(
    spec: list[tuple[Any, ...]], types: list[int], data: st.DataObject
) -> None:
    keys = data.draw(st.lists(st.tuples(st.sampled_from((*USERS, 3)), st.integers(1, 7))))
    retried = data.draw(st.sets(st.sampled_from([(s[0], s[1]) for s in spec] or [(1, 1)])))
    oracle, compiled = _gateway(spec, retried), _gateway(spec, retried)
    for gw in (oracle, compiled):
        gw.stats["acks_from_reply"] = 0
        for o, t in zip(gw.store.orders.values(), types, strict=False):
            o.ord_type = t
    for uid, oid in keys:
        oracle._accepted_by_reply(uid, oid)
    n = gwreport.accept_from_replies(compiled, [order_key(u, o) for u, o in keys], 0)
    assert n == oracle.stats["acks_from_reply"]
    # The oracle stamps the gateway's clock: compare the reports with ts_ns zeroed.
    # (In place: the outbox's entries hold the stream chunks' own lists.)
    for _f, ps in oracle.store._out.values():
        ps[:] = [p[:9] + bytes(8) + p[17:] for p in ps]
    assert _state(compiled) == _state(oracle)


@pytest.mark.parametrize("compiled", [True, False])
def test_an_event_that_changes_nothing_stores_nothing(compiled: bool) -> None:
    """After the ACCEPTED went out from the reply and was committed, the order's
    ACCEPTED event (same open quantity) leaves nothing to write: the turn commits
    nothing (Store.set_core_seq); an event that does change the order stores it."""
    gw = _gateway([(1, 5, 11, 77, 1, STATE_PENDING, 10, ["N"])], set())
    gw.stats["acks_from_reply"] = 0
    o = gw.store.orders[order_key(1, 5)]
    gw._accepted_by_reply(1, 5)
    gw.store.commit()
    assert not gw.store._dirty

    def apply(ev: np.ndarray[Any, np.dtype[np.void]]) -> None:
        if compiled:
            gw.on_events(ev)
        else:
            gw.on_event(tuple(ev.tolist()[0]))

    apply(accepted_event(o, 123))
    assert not gw.store._dirty and len(reports(gw)) == 1
    ev = accepted_event(o, 124)
    ev["leaves_lots"] = 7  # e.g. filled on entry: the event tells the open quantity
    apply(ev)
    assert gw.store._dirty == [o] and o.leaves == 7 and len(reports(gw)) == 1


tags = st.lists(
    st.tuples(st.sampled_from((*USERS, 3)), st.integers(1, 7), st.sampled_from("NnNnMCUDR")),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(
    spec=order_specs,
    types=st.lists(st.sampled_from([int(t) for t in OrdType]), min_size=10, max_size=10),
    frames=st.lists(tags, max_size=4),
    data=st.data(),
)
def test_compiled_replies_match_the_oracle(
    spec: list[tuple[Any, ...]],
    types: list[int],
    frames: list[list[tuple[int, int, str]]],
    data: st.DataObject,
) -> None:
    """pyx.gwreport.apply_replies against Gateway.on_replies_py: frames in flight with
    NEWs, resends, mass cancels and other requests; replies in any order with any
    status, to known and unknown frames and indexes (several replies to one frame,
    as after a given-up frame's late answer): same reports, orders, in-flight frames,
    mass cancels pending and counts."""
    retried = data.draw(st.sets(st.sampled_from([(s[0], s[1]) for s in spec] or [(1, 1)])))
    replies = data.draw(
        st.lists(
            st.tuples(
                st.integers(1, len(frames) + 1),  # frame number (len + 1: never sent)
                st.integers(0, 6),  # index in the frame (may be past its end)
                st.sampled_from((1, 2, 3)),  # applied, rejected, duplicate
                st.integers(-(2**63), 2**63 - 1),
                st.integers(0, 2**16 - 1),
            ),
            max_size=12,
        )
    )
    recs = np.zeros(len(replies), dtype=REPLY_DTYPE)
    for i, (no, idx, status, value, reason) in enumerate(replies):
        recs[i]["client_ref"] = no << FRAME_SHIFT | idx
        recs[i]["status"], recs[i]["value"], recs[i]["reason"] = status, value, reason
    oracle, compiled = _gateway(spec, retried), _gateway(spec, retried)
    for gw in (oracle, compiled):
        gw.stats["acks_from_reply"] = 0
        for o, t in zip(gw.store.orders.values(), types, strict=False):
            o.ord_type = t
        gw.inflight = {no: (0.0, list(t), b"") for no, t in enumerate(frames, 1)}
        gw.mass = {oid: (11, 100 + oid) for t in frames for _, oid, op in t if op == "M"}
    oracle.on_replies_py(recs, 12345)
    n = gwreport.apply_replies(compiled, recs, 12345)
    compiled.stats["reports"] += n
    compiled.stats["acks_from_reply"] += n
    assert _state(compiled) == _state(oracle)
    assert (compiled.inflight, compiled.mass, compiled.stats) == (
        oracle.inflight,
        oracle.mass,
        oracle.stats,
    )


def test_a_frame_of_acks_reports_each_order_once() -> None:
    """The common case spelled out: one frame of three NEWs, all APPLIED, answered in
    one reply frame through Gateway.on_replies: three ACCEPTEDs in command order, the
    frame leaves the in-flight table, a late duplicate of the reply adds nothing."""
    spec = [(1, oid, 11, 70 + oid, 1, STATE_PENDING, 10, ["N"]) for oid in (1, 2, 3)]
    gw = _gateway(spec, set())
    gw.stats["acks_from_reply"] = 0
    gw.inflight = {5: (0.0, [(1, 1, "N"), (1, 2, "N"), (1, 3, "N")], b"")}
    recs = np.zeros(3, dtype=REPLY_DTYPE)
    recs["client_ref"] = (5 << FRAME_SHIFT) + np.arange(3)
    recs["status"] = 1
    gw.on_replies(recs)
    assert [r["cl_ord_id"] for r in reports(gw)] == [71, 72, 73]
    assert gw.inflight == {} and gw.stats["acks_from_reply"] == 3
    assert all(o.pending == [] and o.state == STATE_OPEN for o in gw.store.orders.values())
    gw.on_replies(recs)
    assert len(reports(gw)) == 3
