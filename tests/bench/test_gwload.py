"""The load generator's compiled pieces against their Python oracles: the ACCEPTED
scanner (pyx/gwload.pyx) against ``bench.e2e.accepted_ids_py`` over ``FrameReader``,
and the pre-built order frames against ``order_frame``."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import e2e
from bindings.gateway_client import order_frame
from bursa_wire.gw_layout import BY_NAME
from gateway.wire import codec
from pyx.gwload import AckScanner
from tests.gateway.test_codec import values_of

ACCEPTED = BY_NAME["ACCEPTED"]
EXECUTED = BY_NAME["EXECUTED"]
SEQS = st.integers(1, 2**64 - 1)
# What a gateway sends (ACCEPTED, EXECUTED, unsequenced messages), plus frames a scanner
# must not take for an ACCEPTED (an S frame too short for one, a U frame whose first body
# bytes look like one) and the two bad lengths.
FRAMES = st.one_of(
    st.tuples(SEQS, values_of(ACCEPTED)).map(
        lambda a: codec.sequenced_frame(a[0], codec.app_payload(ACCEPTED, a[1]))
    ),
    st.tuples(SEQS, values_of(EXECUTED)).map(
        lambda a: codec.sequenced_frame(a[0], codec.app_payload(EXECUTED, a[1]))
    ),
    st.sampled_from(["SERVER_HEARTBEAT"]).map(codec.encode),
    st.binary(min_size=0, max_size=16).map(lambda b: codec.sequenced_frame(1, b"A" + b)),
    st.binary(min_size=20, max_size=40).map(
        lambda b: (len(b) + 1).to_bytes(2, "little") + b"U" + b
    ),
    st.sampled_from([b"\x00\x00", b"\xff\x7f"]),
)


def scan(chunks: list[bytes]) -> tuple[list[int], str]:
    s = AckScanner(codec.frame_length_error)
    got: list[int] = []
    for c in chunks:
        try:
            got += s.feed(c)
        except codec.WireError as e:
            return got + s.found, e.reason.name
    return got, ""


def oracle(chunks: list[bytes]) -> tuple[list[int], str]:
    r = codec.FrameReader()
    got: list[int] = []
    for c in chunks:
        try:
            got += e2e.accepted_ids_py(r, c)
            r.check()
        except codec.WireError as e:
            return got, e.reason.name
    return got, ""


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(FRAMES, max_size=30), cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_scanner_finds_what_the_frame_reader_loop_finds(
    frames: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frames)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    assert scan(chunks) == oracle(chunks)


def test_scanner_returns_accepted_ids_only_once_whole() -> None:
    acc = codec.sequenced_frame(5, codec.app_payload(ACCEPTED, {"cl_ord_id": 77}))
    s = AckScanner(codec.frame_length_error)
    assert s.feed(acc[:10]) == []
    assert s.feed(acc[10:] + acc) == [77, 77]
    with pytest.raises(codec.WireError):
        s.feed(b"\x00\x00" + acc)
    with pytest.raises(codec.WireError):  # stays broken
        s.feed(acc)


@settings(max_examples=50, deadline=None)
@given(first=st.integers(1, 2**40), n=st.integers(0, 50))
def test_order_frames_are_order_frame_bytes(first: int, n: int) -> None:
    want = b"".join(
        order_frame(c, symbol_id=1, side=1 if c % 2 else 2, price_ticks=e2e.PRICE, qty_lots=1)
        for c in range(first, first + n)
    )
    assert e2e.order_frames(first, n) == want
