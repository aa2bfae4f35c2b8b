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
from bursa_wire.layout import EV_DTYPE
from gateway.store import Order
from gateway.wire import codec
from pyx import gwreport
from pyx.enums import EvKind, OrdType
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
    for _key, _seq, payload in gw.outbox:  # type: ignore[attr-defined]
        assert payload[:1] == ACCEPTED.code
        out.append(codec.decode(ord("S"), (1).to_bytes(8, "little") + payload, False).values)
    return out


@pytest.mark.parametrize("reply_first", [True, False])
def test_one_accepted_whichever_comes_first(reply_first: bool) -> None:
    gw = _gateway([(1, 5, 11, 77, 1, STATE_PENDING, 10, ["N"])], set())
    gw.stats["acks_from_reply"] = 0
    o = gw.store.orders[(1, 5)]
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
    o = gw.store.orders[(1, 5)]
    o.ord_type = int(OrdType.MARKET)  # the core sets its book price: the event tells it
    gw._accepted_by_reply(1, 5)
    assert gw.outbox == [] and o.pending == ["N"]
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
    n = gwreport.accept_from_replies(compiled, keys, 0)
    assert n == oracle.stats["acks_from_reply"]
    # The oracle stamps the gateway's clock: compare the reports with ts_ns zeroed.
    oracle.outbox = [(k, s, p[:9] + bytes(8) + p[17:]) for k, s, p in oracle.outbox]
    oracle.store._out = {
        k: (f, [p[:9] + bytes(8) + p[17:] for p in ps]) for k, (f, ps) in oracle.store._out.items()
    }
    assert _state(compiled) == _state(oracle)


@pytest.mark.parametrize("compiled", [True, False])
def test_an_event_that_changes_nothing_stores_nothing(compiled: bool) -> None:
    """After the ACCEPTED went out from the reply and was committed, the order's
    ACCEPTED event (same open quantity) leaves nothing to write: the turn commits
    nothing (Store.set_core_seq); an event that does change the order stores it."""
    gw = _gateway([(1, 5, 11, 77, 1, STATE_PENDING, 10, ["N"])], set())
    gw.stats["acks_from_reply"] = 0
    o = gw.store.orders[(1, 5)]
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
    assert gw.store._dirty == {(1, 5): o} and o.leaves == 7 and len(reports(gw)) == 1
