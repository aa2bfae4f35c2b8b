"""The compiled inbound path (pyx/gwentry.pyx) against its Python oracles: the frame
splitter against ``codec.FrameReader``, the Order builder against the dataclass."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bursa_wire.gw_layout import BY_NAME, STATE_PENDING
from gateway import batch
from gateway.store import Order
from gateway.wire import codec
from pyx.gwentry import ENTER_RUN, EntryReader, order_objects
from pyx.gworders import MAX_KEY_ORDER_ID, MAX_KEY_USER_ID, order_key, split_key
from tests.gateway.test_codec import values_of

ENTER = BY_NAME["ENTER_ORDER"]
# Frames a client may send: ENTER_ORDERs, other messages, a wrong-sized ENTER_ORDER,
# garbage bodies, and the two bad lengths (zero, oversized).
FRAMES = st.one_of(
    values_of(ENTER).map(lambda v: codec.encode_spec(ENTER, v)),
    values_of(ENTER).map(lambda v: codec.encode_spec(ENTER, v)),
    st.sampled_from(["CLIENT_HEARTBEAT", "LOGOUT"]).map(codec.encode),
    values_of(BY_NAME["CANCEL_ORDER"]).map(lambda v: codec.encode_spec(BY_NAME["CANCEL_ORDER"], v)),
    values_of(ENTER)
    .map(lambda v: codec.encode_spec(ENTER, v)[:-1])
    .map(lambda f: (len(f) - 2).to_bytes(2, "little") + f[2:]),
    st.binary(min_size=1, max_size=40).map(lambda b: len(b).to_bytes(2, "little") + b),
    st.sampled_from([b"\x00\x00", b"\xff\x7f"]),
)


def expand(items: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """EntryReader items with each ENTER run split back into U frames."""
    out: list[tuple[int, bytes]] = []
    size = batch.ENTER_BODY_LEN
    for t, body in items:
        if t == ENTER_RUN:
            assert body and len(body) % size == 0
            out.extend((ord("U"), body[k : k + size]) for k in range(0, len(body), size))
        else:
            out.append((t, body))
    return out


def run(
    reader: codec.FrameReader | EntryReader, chunks: list[bytes]
) -> tuple[list[tuple[int, bytes]], str]:
    got: list[tuple[int, bytes]] = []
    for c in chunks:
        try:
            items = reader.feed(c)
            got.extend(expand(items) if isinstance(reader, EntryReader) else items)
            reader.check()
        except codec.WireError as e:
            return got, e.reason.name
    return got, ""


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(FRAMES, max_size=30), cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_entry_reader_splits_like_frame_reader(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frames)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    assert run(EntryReader(codec.frame_length_error), chunks) == run(codec.FrameReader(), chunks)


def test_a_run_of_enters_is_one_item() -> None:
    enters = [codec.encode("ENTER_ORDER", cl_ord_id=i, side=1, qty_lots=1) for i in (1, 2, 3)]
    hb = codec.encode("CLIENT_HEARTBEAT")
    items = EntryReader(codec.frame_length_error).feed(b"".join([*enters[:2], hb, enters[2]]))
    assert [t for t, _ in items] == [ENTER_RUN, hb[2], ENTER_RUN]
    recs = batch.decode_enters(items[0][1])
    assert recs["cl_ord_id"].tolist() == [1, 2]


def test_bad_length_after_whole_frames_is_raised_by_check() -> None:
    r = EntryReader(codec.frame_length_error)
    items = r.feed(codec.encode("ENTER_ORDER", cl_ord_id=1, side=1) + b"\x00\x00")
    assert len(items) == 1
    with pytest.raises(codec.WireError):
        r.check()
    with pytest.raises(codec.WireError):
        r.feed(b"")


@settings(max_examples=50, deadline=None)
@given(msgs=st.lists(values_of(ENTER), min_size=1, max_size=20), data=st.data())
def test_order_objects_equal_the_dataclass(
    msgs: list[dict[str, int | bytes]], data: st.DataObject
) -> None:
    recs = b"".join(codec.encode_spec(ENTER, m)[3:] for m in msgs)
    idx = sorted(data.draw(st.sets(st.integers(0, len(msgs) - 1))))
    got = order_objects(Order, recs, idx, 7, 3, 1000, STATE_PENDING, "N")
    e = np.frombuffer(recs, dtype=batch.ENTER_DTYPE)
    want = [
        Order(7, 1000 + k, 3, int(r["cl_ord_id"]), int(r["symbol_id"]), int(r["side"]),
              int(r["ord_type"]), int(r["price_ticks"]), int(r["qty_lots"]),
              int(r["qty_lots"]), 0, STATE_PENDING, 0, ["N"])
        for k, r in enumerate(e[idx])
    ]  # fmt: skip
    assert got == want
    # idx None: every record; with the store's maps: each order indexed both ways.
    by_id: dict[int, Order] = {}
    by_cl: dict[int, Order] = {}
    tags: list[tuple[int, int, str]] = [(1, 2, "C")]
    every = order_objects(Order, recs, None, 7, 3, 1000, STATE_PENDING, "N", by_id, by_cl, tags)
    assert every == order_objects(Order, recs, list(range(len(msgs))), 7, 3, 1000,
                                  STATE_PENDING, "N")  # fmt: skip
    assert by_id == {order_key(7, o.order_id): o for o in every}
    assert by_cl == {o.cl_ord_id: o for o in every}
    # With the gateway's command tags: one (user, order id, op) per order, appended.
    assert tags == [(1, 2, "C")] + [(7, 1000 + k, "N") for k in range(len(msgs))]
    assert [order_key(t[0], t[1]) for t in tags[1:]] == list(by_id)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, MAX_KEY_USER_ID),
    st.integers(1, MAX_KEY_ORDER_ID),
    st.integers(1, MAX_KEY_USER_ID),
    st.integers(1, MAX_KEY_ORDER_ID),
)
def test_order_key_is_one_int_unique_in_the_core_ranges(u1: int, o1: int, u2: int, o2: int) -> None:
    """The order map key (``user_id << 40 | order_id``): the compiled one (``Order.key``,
    what pyx.gwentry and pyx.gwreport use) is the Python one, fits 64 bits, splits back,
    and two orders share it only if they are the same order."""
    a = Order(u1, o1, 1, 1, 1, 1, 1, 1, 1, 1)
    b = Order(u2, o2, 1, 1, 1, 1, 1, 1, 1, 1)
    assert (a.key, b.key) == (order_key(u1, o1), order_key(u2, o2))
    assert 0 < a.key < 2**64 and split_key(a.key) == (u1, o1)
    assert (a.key == b.key) == ((u1, o1) == (u2, o2))
