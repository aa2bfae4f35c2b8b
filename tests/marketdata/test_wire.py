"""Feed codecs: round trips, rejects of bad bytes, and docs/marketdata.md freshness."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bursa_wire.md_codec import (
    BODY_NAMES,
    BODY_STRUCTS,
    HEADER_SIZE,
    MsgError,
    decode,
    encode,
    encode_fields,
    peek_seq,
    split,
)
from bursa_wire.md_layout import BODIES, CHANNEL_OF, HEADER, Channel, MsgType, topic
from marketdata.wire import gendoc

_RANGES = {"<u8": (0, 2**64 - 1), "<i8": (-(2**63), 2**63 - 1), "<u4": (0, 2**32 - 1)}
_RANGES |= {"<u2": (0, 2**16 - 1), "u1": (0, 255)}


@st.composite
def messages(draw: st.DrawFn) -> tuple[MsgType, int, int, int, int, dict[str, int]]:
    t = draw(st.sampled_from(list(MsgType)))
    body = {f.name: draw(st.integers(*_RANGES[f.code])) for f in BODIES[t]}
    sym = draw(st.integers(0, 2**16 - 1))
    cseq, core_seq, ts = (draw(st.integers(0, 2**64 - 1)) for _ in range(3))
    return t, sym, cseq, core_seq, ts, body


@given(messages())
def test_round_trip(m: tuple[MsgType, int, int, int, int, dict[str, int]]) -> None:
    t, sym, cseq, core_seq, ts, body = m
    raw = encode_fields(t, sym, cseq, core_seq, ts, **body)
    assert len(raw) == HEADER_SIZE + BODY_STRUCTS[t].size
    msg = decode(raw)
    assert (msg.msg_type, msg.symbol_id, msg.channel_seq, msg.core_seq, msg.ts_ns) == (
        t,
        sym,
        cseq,
        core_seq,
        ts,
    )
    assert msg.channel == CHANNEL_OF[t]
    assert msg.body == body
    assert peek_seq(raw) == cseq
    assert encode(t, sym, cseq, core_seq, ts, *(body[n] for n in BODY_NAMES[t])) == raw


@given(messages(), st.integers(0, 200))
def test_truncated_or_padded_is_rejected(
    m: tuple[MsgType, int, int, int, int, dict[str, int]], cut: int
) -> None:
    t, sym, cseq, core_seq, ts, body = m
    raw = encode_fields(t, sym, cseq, core_seq, ts, **body)
    bad = raw[: cut % len(raw)] if cut % 2 else raw + b"\0" * (cut + 1)
    with pytest.raises(MsgError):
        decode(bad)


@given(st.binary(max_size=200))
def test_random_bytes_never_crash(raw: bytes) -> None:
    with contextlib.suppress(MsgError):
        decode(raw)


def test_wrong_channel_and_type_rejected() -> None:
    raw = bytearray(
        encode_fields(
            MsgType.TRADE, 1, 1, 1, 1, match_id=1, price_ticks=2, qty_lots=3, aggressor_side=1
        )
    )
    raw[1] = int(Channel.L2)
    with pytest.raises(MsgError, match="channel"):
        decode(bytes(raw))
    raw[0] = 99
    with pytest.raises(MsgError, match="unknown"):
        decode(bytes(raw))


def test_no_public_field_names_a_user_or_client_order() -> None:
    names = {f.name for f in HEADER} | {f.name for fs in BODIES.values() for f in fs}
    assert not {n for n in names if "user" in n or n in ("order_id", "client_ref")}


def test_topics_do_not_prefix_each_other() -> None:
    assert not topic(Channel.L2, 10).startswith(topic(Channel.L2, 1))


def test_docs_are_fresh() -> None:
    assert gendoc.main(["--check"]) == 0
    text = gendoc.DOC_PATH.read_text()
    for t in MsgType:
        assert f"### {t.name} " in text


@given(st.lists(messages(), max_size=6), st.integers(1, 40))
def test_split_parts(
    ms: list[tuple[MsgType, int, int, int, int, dict[str, int]]], cut: int
) -> None:
    raws = [encode_fields(t, s, c, cs, ts, **b) for t, s, c, cs, ts, b in ms]
    part = b"".join(raws)
    assert split(part) == raws
    if part:
        with pytest.raises(MsgError):
            split(part[: -min(cut, len(raws[-1]))])
