"""The batch paths (gateway/batch.py) give the same bytes and outcomes as one by one."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bindings.gateway_client import order_frame
from bursa_wire.gw_layout import BY_NAME, ORDER_POST_ONLY
from bursa_wire.layout import CMD_DTYPE
from gateway import batch, server
from gateway.wire import codec
from gateway.wire.codes import GwReason
from pyx.enums import CmdFlag, CmdKind, Reason, Side
from tests.gateway.gwproc import GatewayProcess
from tests.gateway.raw import Raw
from tests.gateway.test_codec import values_of

ENTER = BY_NAME["ENTER_ORDER"]


def one_by_one(values: dict[str, int | bytes], user_id: int, order_id: int) -> bytes:
    """The NEW record :meth:`Gateway.enter_order` builds for one message."""
    f = int(values["flags"])
    rec = [0] * len(server.CMD_INDEX)
    v = {
        "kind": CmdKind.NEW,
        "order_id": order_id,
        "user_id": user_id,
        "symbol_id": values["symbol_id"],
        "side": values["side"],
        "ord_type": values["ord_type"],
        "tif": values["tif"],
        "price_ticks": values["price_ticks"],
        "qty_lots": values["qty_lots"],
        "stop_price_ticks": values["stop_price_ticks"],
        "stp": values["stp"],
        "flags": (int(CmdFlag.POST_ONLY) if f & ORDER_POST_ONLY else 0)
        | (f & ~ORDER_POST_ONLY & 0xFF),
    }
    for k, x in v.items():
        rec[server.CMD_INDEX[k]] = int(x)
    return server.CMD_STRUCT.pack(*rec)


@settings(max_examples=50, deadline=None)
@given(
    msgs=st.lists(values_of(ENTER), min_size=1, max_size=20),
    user_id=st.integers(1, 2**32 - 1),
    first=st.integers(1, 2**40 - 100),
)
def test_new_records_equal_one_by_one(
    msgs: list[dict[str, int | bytes]], user_id: int, first: int
) -> None:
    bodies = [codec.encode_spec(ENTER, m)[3:] for m in msgs]  # U-frame bodies
    assert all(len(b) == batch.ENTER_BODY_LEN for b in bodies)
    e = batch.decode_enters(b"".join(bodies))
    assert e["cl_ord_id"].tolist() == [m["cl_ord_id"] for m in msgs]
    oids = np.arange(first, first + len(msgs), dtype=np.uint64)
    got = batch.new_records(e, user_id, oids)
    want = b"".join(one_by_one(m, user_id, first + i) for i, m in enumerate(msgs))
    assert got == want
    assert len(got) == len(msgs) * CMD_DTYPE.itemsize


@settings(max_examples=50, deadline=None)
@given(acc=values_of(BY_NAME["ACCEPTED"]), exe=values_of(BY_NAME["EXECUTED"]))
def test_positional_packers_equal_codec(
    acc: dict[str, int | bytes], exe: dict[str, int | bytes]
) -> None:
    for spec, code, st_, vals in (
        (BY_NAME["ACCEPTED"], batch.ACCEPTED_CODE, batch.ACCEPTED_STRUCT, acc),
        (BY_NAME["EXECUTED"], batch.EXECUTED_CODE, batch.EXECUTED_STRUCT, exe),
    ):
        assert code + st_.pack(*(vals[n] for n in spec.names)) == codec.app_payload(spec, vals)


@given(seq=st.integers(1, 2**64 - 1), payload=st.binary(min_size=1, max_size=200))
def test_inline_sequenced_frame(seq: int, payload: bytes) -> None:
    head = server.S_FRAME_HEAD.pack(len(payload) + server.S_FRAME_OVERHEAD, server.SEQ_TYPE, seq)
    assert head + payload == codec.sequenced_frame(seq, payload)


def test_burst_in_one_write_has_per_order_outcomes(gw: GatewayProcess, key1: Path) -> None:
    """A burst in one TCP write (the batch path): valid orders accepted in order, a
    duplicate client id, id 0 and a bad side rejected each with its own code."""
    r = Raw(gw.port, key1)
    r.login()
    assert r.expect("LOGIN_ACCEPTED") is not None
    spec = [
        (1, Side.SELL),
        (2, Side.SELL),
        (2, Side.SELL),  # duplicate within the burst
        (0, Side.SELL),  # id 0
        (3, 7),  # bad side
        (4, Side.BUY),
    ]
    # Buys below the sells: nothing trades (the outcomes are the acknowledgements).
    frames = [
        order_frame(cl, symbol_id=1, side=side, qty_lots=1, price_ticks=500 if side == 2 else 400)
        for cl, side in spec
    ]
    frames += [frames[0]]  # client id 1 again, after it was accepted in this burst
    r.send(b"".join(frames))
    got: list[codec.Msg] = []
    while len(got) < 7:
        m = r.read()
        assert m is not None
        if m.name != "SERVER_HEARTBEAT":
            got.append(m)
    rejected = [(m.cl_ord_id, m.reason) for m in got if m.name == "REJECTED"]
    accepted = [m.cl_ord_id for m in got if m.name == "ACCEPTED"]
    assert rejected == [
        (2, GwReason.DUPLICATE_CL_ORD_ID),
        (0, GwReason.DUPLICATE_CL_ORD_ID),
        (3, Reason.INVALID_SIDE),
        (1, GwReason.DUPLICATE_CL_ORD_ID),
    ]
    assert accepted == [1, 2, 4]
    assert [m.seq for m in got] == list(range(1, 8))


@settings(max_examples=200, deadline=None)
@given(
    cls=st.lists(st.integers(0, 12), min_size=1, max_size=8),
    sides=st.lists(st.integers(0, 3), min_size=8, max_size=8),
    top=st.integers(0, 6),
)
def test_all_new_and_valid_only_when_no_order_would_be_refused(
    cls: list[int], sides: list[int], top: int
) -> None:
    recs = b"".join(
        order_frame(cl, symbol_id=1, side=s, price_ticks=1, qty_lots=1)[3:]
        for cl, s in zip(cls, sides, strict=False)
    )
    e = batch.decode_enters(recs)
    # One by one (Gateway._check_enters, all ids above `top` unused): nothing refused?
    seen: set[int] = set()
    fine = True
    for cl, s in zip(cls, sides, strict=False):
        fine = fine and cl > top and cl not in seen and s in (Side.BUY, Side.SELL)
        seen.add(cl)
    ordered = all(a < b for a, b in itertools.pairwise(cls))
    assert batch.all_new_and_valid(e, top) == (fine and ordered)
