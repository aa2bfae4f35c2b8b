"""Every order-entry message round-trips; malformed frames raise WireError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bursa_wire.gw_layout import ALL_MESSAGES, MAX_FRAME_LEN, MsgSpec
from gateway.wire import codec
from gateway.wire.codes import GwReason

RANGES = {
    "<u8": (0, 2**64 - 1),
    "<i8": (-(2**63), 2**63 - 1),
    "<u4": (0, 2**32 - 1),
    "<u2": (0, 2**16 - 1),
    "u1": (0, 255),
}


def values_of(spec: MsgSpec) -> st.SearchStrategy[dict[str, int | bytes]]:
    """Any valid values for every field of ``spec``."""
    parts: dict[str, st.SearchStrategy[int | bytes]] = {}
    for f in spec.fields:
        if f.code == "S64":
            parts[f.name] = st.binary(min_size=64, max_size=64)
        else:
            lo, hi = RANGES[f.code]
            parts[f.name] = st.integers(lo, hi)
    return st.fixed_dictionaries(parts)


@pytest.mark.parametrize("spec", ALL_MESSAGES, ids=lambda s: s.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data(), seq=st.integers(1, 2**64 - 1))
def test_round_trip(spec: MsgSpec, data: st.DataObject, seq: int) -> None:
    values = data.draw(values_of(spec))
    frame = codec.encode_spec(spec, values, seq)
    msg = codec.decode_frame(frame, inbound=spec.inbound)
    assert msg.spec is spec
    assert msg.values == values
    if spec.layer == "app" and not spec.inbound:
        assert msg.seq == seq
    # The frame survives any split into TCP segments.
    cut = data.draw(st.integers(0, len(frame)))
    r = codec.FrameReader()
    got = r.feed(frame[:cut]) + r.feed(frame[cut:])
    assert len(got) == 1 and r.pending() == 0
    assert codec.decode(got[0][0], got[0][1], spec.inbound).values == values


@pytest.mark.parametrize("spec", ALL_MESSAGES, ids=lambda s: s.name)
def test_wrong_body_size_is_malformed(spec: MsgSpec) -> None:
    frame = codec.encode_spec(spec, {}, 1)
    body = frame[3:]
    for bad in (body + b"\x00", body[:-1]) if spec.struct.size else (b"\x00",):
        with pytest.raises(codec.WireError) as e:
            codec.decode(frame[2], bad, spec.inbound)
        assert e.value.reason == GwReason.MALFORMED_MESSAGE


def test_oversized_and_zero_length_frames() -> None:
    with pytest.raises(codec.WireError) as e:
        codec.FrameReader().feed((MAX_FRAME_LEN + 1).to_bytes(2, "little") + b"O")
    assert e.value.reason == GwReason.OVERSIZED_FRAME
    with pytest.raises(codec.WireError) as e:
        codec.FrameReader().feed(b"\x00\x00")
    assert e.value.reason == GwReason.MALFORMED_MESSAGE


def test_unknown_types_are_malformed() -> None:
    for inbound in (True, False):
        with pytest.raises(codec.WireError):
            codec.decode(ord("?"), b"", inbound)
    with pytest.raises(codec.WireError):
        codec.decode(ord("U"), b"?", True)
    with pytest.raises(codec.WireError):
        codec.decode(ord("S"), b"\x01" + b"\x00" * 7 + b"?", False)


def test_direction_matters() -> None:
    frame = codec.encode("ENTER_ORDER", cl_ord_id=1)
    assert codec.decode_frame(frame, inbound=True).name == "ENTER_ORDER"
    with pytest.raises(codec.WireError):
        codec.decode_frame(frame, inbound=False)


def test_out_of_range_value_is_refused_on_encode() -> None:
    with pytest.raises(ValueError):
        codec.encode("CANCEL_ORDER", cl_ord_id=-1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), st.booleans())
def test_decoders_never_crash_on_garbage(data: bytes, inbound: bool) -> None:
    r = codec.FrameReader()
    try:
        for t, body in r.feed(data):
            codec.decode(t, body, inbound)
    except codec.WireError:
        pass


def test_frames_before_a_bad_length_are_delivered_first() -> None:
    good = codec.encode("CANCEL_ORDER", cl_ord_id=3)
    r = codec.FrameReader()
    got = r.feed(good + b"\xff\xff")
    assert len(got) == 1
    with pytest.raises(codec.WireError) as e:
        r.check()
    assert e.value.reason == GwReason.OVERSIZED_FRAME
    with pytest.raises(codec.WireError):
        r.feed(good)
