"""The order map's eviction: ``pyx.gworders.evict_ended`` (compiled) against its
oracle ``gateway.store.Store.evict_py`` (the Python loop it replaced) on random maps
and eviction queues (hypothesis): the same orders leave, the same head, count and
fold request; and the store's eviction queue stays bounded over many commits."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bursa_wire.gw_layout import (
    STATE_CANCELED,
    STATE_FILLED,
    STATE_OPEN,
    STATE_PENDING,
    STATE_REJECTED,
)
from gateway.store import Order, Store
from pyx import gworders

STATES = (STATE_PENDING, STATE_OPEN, STATE_FILLED, STATE_CANCELED, STATE_REJECTED)
# One order: (user 1..3, session 1..3, state, a request pending, in the log (log_id),
# in the map); the queue: indexes into the orders (an order may be listed twice).
ORDER = st.tuples(
    st.integers(1, 3),
    st.integers(1, 3),
    st.sampled_from(STATES),
    st.booleans(),
    st.integers(0, 2).map(lambda x: 0 if x else 7),
    st.booleans(),
)


def _world(
    spec: list[tuple[int, int, int, bool, int, bool]], queue: list[int]
) -> tuple[list[Order | None], dict[int, Order], dict[int, dict[int, Order]]]:
    """Orders, the queue of them and their maps (a fresh copy per call)."""
    orders = []
    by_id: dict[int, Order] = {}
    by_cl: dict[int, dict[int, Order]] = {}
    for i, (uid, kid, state, pending, log_id, mapped) in enumerate(spec):
        o = Order(uid, 1000 + i, kid, 1 + i, 1, 1, 1, 100, 5, 0, 5, state, 0,
                  ["C"] if pending else [])  # fmt: skip
        o.log_id = log_id
        orders.append(o)
        by_cl.setdefault(kid, {})
        if mapped:
            by_id[o.key] = o
            by_cl[kid][o.cl_ord_id] = o
    ended: list[Order | None] = [orders[q % len(orders)] for q in queue] if orders else []
    return ended, by_id, by_cl


def _keys(by_cl: dict[int, dict[int, Order]]) -> dict[int, list[int]]:
    return {k: sorted(m) for k, m in by_cl.items()}


@settings(max_examples=300, deadline=None)
@given(
    spec=st.lists(ORDER, max_size=30),
    queue=st.lists(st.integers(0, 60), max_size=50),
    head=st.integers(0, 5),
    bound=st.integers(0, 30),
)
def test_evict_ended_matches_the_python_loop(
    spec: list[tuple[int, int, int, bool, int, bool]], queue: list[int], head: int, bound: int
) -> None:
    head = min(head, len(queue))
    ended_c, map_c, cl_c = _world(spec, queue)
    ended_p, map_p, cl_p = _world(spec, queue)
    got = gworders.evict_ended(ended_c, head, map_c, cl_c, bound)
    want = Store.evict_py(ended_p, head, map_p, cl_p, bound)
    assert got == want
    assert [o is None for o in ended_c] == [o is None for o in ended_p]  # the taken ones
    assert sorted(map_c) == sorted(map_p)
    assert _keys(cl_c) == _keys(cl_p)
    if not got[2]:  # no fold asked for: stopped at the bound or the queue's end
        assert len(map_c) <= bound or got[0] == len(ended_c)


def test_eviction_queue_stays_bounded_and_evicts_oldest_first() -> None:
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "gw.db", max_orders_in_memory=100)
        cl = 0
        for _ in range(60):
            batch = []
            for _ in range(50):
                cl += 1
                o = Order(1, 0, 7, cl, 1, 1, 1, 100, 5, 5)
                store.new_order(o)
                batch.append(o)
            store.commit()
            for o in batch:  # each turn's orders end the next turn
                o.pending.clear()
                o.state, o.filled, o.leaves = STATE_FILLED, 5, 0
                store.save_order(o)
            store.commit()
            assert len(store.orders) <= 100
            assert len(store._ended) - store._ended_head <= 2 * len(store.orders) + 1024
            assert store._ended_head * 2 < max(len(store._ended), 1) or not store._ended_head
        assert store.evicted == cl - len(store.orders)
        # the newest stay in memory; the evicted ones are read back from SQLite
        assert sorted(store.by_cl[7]) == list(range(cl - 99, cl + 1))
        old = store.find_cl(7, 1)
        assert old is not None and old.state == STATE_FILLED and old.filled == 5
        store.close()
