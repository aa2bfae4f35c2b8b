"""The compiled ENTER_ORDER path end to end against its Python oracle.

A session's bytes go through :meth:`gateway.server.Conn.data_received` (runs of
ENTER_ORDERs, one order included, through ``Gateway.enter_orders``: the checks in
``pyx.gwentry.new_run_top``, the orders in ``order_objects``, the NEW records in
``pyx.gwentry.new_records``) in one gateway, and frame by frame through
``codec.FrameReader`` and ``Conn.on_frame`` (``Gateway.enter_order``, the Python
oracle) in another: both must end with the same orders, the same command bytes and
tags, the same rejects and reports, the same throttle counters.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bindings.gateway_client import order_frame
from bursa_wire.gw_layout import BY_NAME, STATE_CANCELED
from bursa_wire.layout import CMD_DTYPE
from gateway import batch, keys, server
from gateway import store as store_mod
from gateway.server import Conn, Gateway, GatewayConfig, outbox_messages
from gateway.store import Order, Store
from gateway.wire import codec
from pyx import gwentry
from pyx.enums import Side

ENTER = BY_NAME["ENTER_ORDER"]
KEY_ID, USER_ID = 3, 9
NOW = 5_000.25  # the loop's monotonic clock, fixed: the throttle windows are the same


def _gateway(cfg: GatewayConfig, used: list[int]) -> Gateway:
    """A Gateway without sockets, its store in memory holding ended orders with the
    client ids ``used`` (so they are duplicates)."""
    gw = Gateway.__new__(Gateway)
    gw.cfg = cfg
    gw.store = Store(":memory:")
    gw.store.next_order_id = 1
    gw.cmds, gw.cmd_tags = [], []
    gw.open_by_key, gw.open_by_user, gw.user_window = {}, {}, {}
    gw.throttles, gw.sessions = {}, {}
    gw.flush_scheduled, gw.loop = False, None
    gw.stats = dict.fromkeys(("orders", "messages_in", "reports"), 0)
    done = [
        Order(USER_ID, 100 + i, KEY_ID, cl, 1, 1, 1, 5, 1, 0, 0, STATE_CANCELED, 0, [])
        for i, cl in enumerate(used)
    ]
    gw.store.add_orders(done)
    return gw


def _conn(gw: Gateway, perm: str) -> Conn:
    conn = Conn(gw)
    conn.live = True
    conn.key = keys.ApiKey(KEY_ID, USER_ID, b"", perm, (), False)
    return conn


def _outcome(gw: Gateway, conn: Conn) -> dict[str, Any]:
    s = gw.store
    return {
        "orders": {k: o.astuple() for k, o in s.orders.items()},
        "by_cl": {k: sorted(m) for k, m in s.by_cl.items()},
        "new": [o.astuple() for o in s._new],
        "max_cl": s.max_cl,
        "next_order_id": s.next_order_id,
        "cmds": b"".join(gw.cmds),
        "tags": gw.cmd_tags,
        "outbox": outbox_messages(s.outbox),
        "last_seq": s.last_seq,
        "open": (gw.open_by_key, gw.open_by_user),
        "user_window": gw.user_window,
        "stats": gw.stats,
        "throttles": gw.throttles,
        "conn": (conn.window, conn.msgs, conn.orders),
    }


def _oracle_received(conn: Conn, reader: codec.FrameReader, data: bytes) -> None:
    """``Conn.data_received`` frame by frame: every ENTER_ORDER through the Python
    ``Gateway.enter_order``."""
    for ftype, body in reader.feed(data):
        conn.on_frame(ftype, body)
    reader.check()


# One frame a client sends: mostly ENTER_ORDERs (client ids from a small range, so
# duplicates and upward runs both occur; sides 0-3: 0 and 3 are invalid), heartbeats
# between them (which split the runs).
ENTERS = st.builds(
    lambda cl, side, post, price, qty, tif, stp: order_frame(
        cl,
        symbol_id=1,
        side=side,
        qty_lots=qty,
        price_ticks=price,
        tif=tif,
        stp=stp,
        post_only=post,
    ),
    st.integers(0, 40),
    st.sampled_from([1, 2, 1, 2, 0, 3]),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 3),
    st.integers(0, 3),
)
FRAMES = st.one_of(ENTERS, ENTERS, ENTERS, st.just(codec.encode("CLIENT_HEARTBEAT")))


@settings(max_examples=300, deadline=None)
@given(
    writes=st.lists(st.lists(FRAMES, min_size=1, max_size=12), min_size=1, max_size=6),
    used=st.lists(st.integers(1, 40), max_size=5, unique=True),
    limits=st.tuples(*(st.integers(1, 30) for _ in range(5))),
    read_only=st.booleans(),
)
def test_compiled_enter_path_equals_one_by_one(
    writes: list[list[bytes]],
    used: list[int],
    limits: tuple[int, int, int, int, int],
    read_only: bool,
) -> None:
    msgs, orders, user_orders, open_, user_open = limits
    cfg = GatewayConfig(
        max_msgs_per_s=msgs,
        max_orders_per_s=orders,
        max_user_orders_per_s=user_orders,
        max_open_orders=open_,
        max_user_open_orders=user_open,
        flood_factor=1_000,
    )
    perm = keys.PERM_READ if read_only else keys.PERM_TRADE
    clock = SimpleNamespace(monotonic=lambda: NOW, time_ns=lambda: 1)
    with (
        mock.patch.object(server, "time", clock),
        mock.patch.object(store_mod, "clock_order_id", lambda: 0),
    ):
        fast = _gateway(cfg, used)
        fast_conn = _conn(fast, perm)
        slow = _gateway(cfg, used)
        slow_conn = _conn(slow, perm)
        reader = codec.FrameReader()
        for frames in writes:
            data = b"".join(frames)
            fast_conn.data_received(data)
            _oracle_received(slow_conn, reader, data)
    assert _outcome(fast, fast_conn) == _outcome(slow, slow_conn)


def test_one_order_in_flight_takes_the_compiled_path() -> None:
    """A lone ENTER_ORDER (one in flight) is a run of one: built by ``enter_orders``,
    never by the Python ``enter_order``."""
    with mock.patch.object(store_mod, "clock_order_id", lambda: 0):
        gw = _gateway(GatewayConfig(), [])
        conn = _conn(gw, keys.PERM_TRADE)
        with mock.patch.object(Gateway, "enter_order", side_effect=AssertionError("slow path")):
            for cl in (1, 2, 3):
                conn.data_received(order_frame(cl, symbol_id=1, side=Side.BUY, qty_lots=1))
    assert [o.cl_ord_id for o in gw.store._new] == [1, 2, 3]
    assert len(b"".join(gw.cmds)) == 3 * CMD_DTYPE.itemsize
    assert [t[2] for t in gw.cmd_tags] == ["N", "N", "N"]


@settings(max_examples=300, deadline=None)
@given(
    cls=st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=8),
    sides=st.lists(st.integers(0, 255), min_size=8, max_size=8),
    top=st.integers(0, 2**64 - 1),
)
def test_new_run_top_equals_the_numpy_check(cls: list[int], sides: list[int], top: int) -> None:
    recs = b"".join(
        codec.encode_spec(
            ENTER,
            {"cl_ord_id": cl, "price_ticks": 1, "qty_lots": 1, "stop_price_ticks": 0,
             "symbol_id": 1, "side": s, "ord_type": 1, "tif": 0, "stp": 0, "flags": 0},
        )[3:]
        for cl, s in zip(cls, sides, strict=False)
    )  # fmt: skip
    e = batch.decode_enters(recs)
    want = cls[-1] if batch.all_new_and_valid(e, top) else 0
    assert gwentry.new_run_top(recs, top) == want


@settings(max_examples=200, deadline=None)
@given(
    frames=st.lists(ENTERS, min_size=1, max_size=20),
    pick=st.lists(st.integers(0, 19), max_size=20),
    user_id=st.integers(1, 2**32 - 1),
    first=st.integers(1, 2**40 - 100),
)
def test_new_records_equal_numpy(
    frames: list[bytes], pick: list[int], user_id: int, first: int
) -> None:
    recs = b"".join(f[3:] for f in frames)
    e = batch.decode_enters(recs)
    idx = sorted({i for i in pick if i < len(frames)})
    for sel, ix in ((e, None), (e[idx], idx)):
        oids = np.arange(first, first + len(sel), dtype=np.uint64)
        assert gwentry.new_records(recs, ix, user_id, first) == batch.new_records(
            sel, user_id, oids
        )
