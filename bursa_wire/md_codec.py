"""Encoder and decoder of feed messages, built from :mod:`bursa_wire.md_layout`.

A message is ``HEADER`` + body; :func:`encode` packs one from integers and
:func:`decode` returns a :class:`Msg` (header fields as attributes, body fields
in ``body``); :func:`split` cuts a PUB part holding several messages back to
back.  Bad bytes raise :class:`MsgError`, never anything else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bursa_wire.layout import Field
from bursa_wire.md_layout import BODIES, CHANNEL_OF, HEADER, MsgType

# numpy type code -> struct code (all little-endian, packed).
_STRUCT_CODE = {"<u8": "Q", "<i8": "q", "<u4": "I", "<u2": "H", "u1": "B"}


def struct_of(fields: tuple[Field, ...]) -> struct.Struct:
    """Packed little-endian struct of a field table."""
    return struct.Struct("<" + "".join(_STRUCT_CODE[f.code] for f in fields))


HEADER_STRUCT = struct_of(HEADER)
HEADER_SIZE = HEADER_STRUCT.size
assert HEADER_SIZE == 32, HEADER_SIZE

BODY_STRUCTS: dict[MsgType, struct.Struct] = {t: struct_of(f) for t, f in BODIES.items()}
BODY_NAMES: dict[MsgType, tuple[str, ...]] = {
    t: tuple(f.name for f in fs) for t, fs in BODIES.items()
}
# One struct per type for header + body: a single pack call per message on the hot path.
FULL_STRUCTS: dict[MsgType, struct.Struct] = {
    t: struct.Struct(HEADER_STRUCT.format + BODY_STRUCTS[t].format[1:]) for t in BODIES
}
_BY_VALUE = {int(t): t for t in MsgType}


class MsgError(ValueError):
    """Bytes that are not a valid feed message."""


@dataclass(frozen=True)
class Msg:
    """A decoded feed message (integers only)."""

    msg_type: MsgType
    channel: int
    symbol_id: int
    channel_seq: int
    core_seq: int
    ts_ns: int
    body: dict[str, int]

    def __getitem__(self, name: str) -> int:
        """A body field by name."""
        return self.body[name]


def encode(
    msg_type: MsgType,
    symbol_id: int,
    channel_seq: int,
    core_seq: int,
    ts_ns: int,
    *body: int,
) -> bytes:
    """One message: header + body (body fields positionally, in table order).

    Raises
    ------
    struct.error
        A value out of its field's range.
    """
    st = BODY_STRUCTS[msg_type]
    return FULL_STRUCTS[msg_type].pack(
        int(msg_type),
        int(CHANNEL_OF[msg_type]),
        symbol_id,
        st.size,
        channel_seq,
        core_seq,
        ts_ns,
        *body,
    )


def encode_fields(
    msg_type: MsgType, symbol_id: int, channel_seq: int, core_seq: int, ts_ns: int, **body: int
) -> bytes:
    """Like :func:`encode` with body fields by name (every field required)."""
    names = BODY_NAMES[msg_type]
    if set(body) != set(names):
        raise ValueError(f"{msg_type.name} takes exactly {names}")
    return encode(msg_type, symbol_id, channel_seq, core_seq, ts_ns, *(body[n] for n in names))


def decode(buf: bytes | memoryview) -> Msg:
    """Decode one message.

    Raises
    ------
    MsgError
        Short buffer, unknown type, wrong channel or size.
    """
    if len(buf) < HEADER_SIZE:
        raise MsgError(f"message of {len(buf)} bytes is shorter than the header")
    mt, ch, sym, size, cseq, core_seq, ts = HEADER_STRUCT.unpack_from(buf, 0)
    t = _BY_VALUE.get(mt)
    if t is None:
        raise MsgError(f"unknown message type {mt}")
    st = BODY_STRUCTS[t]
    if size != st.size or len(buf) != HEADER_SIZE + size:
        raise MsgError(f"{t.name}: body of {len(buf) - HEADER_SIZE} bytes, expected {st.size}")
    if ch != CHANNEL_OF[t]:
        raise MsgError(f"{t.name} on channel {ch}")
    vals = st.unpack_from(buf, HEADER_SIZE)
    return Msg(t, ch, sym, cseq, core_seq, ts, dict(zip(BODY_NAMES[t], vals, strict=True)))


def split(buf: bytes) -> list[bytes]:
    """The messages of a feed part (one or more messages back to back).

    Raises
    ------
    MsgError
        A header or body runs past the end of the part.
    """
    out = []
    off, n = 0, len(buf)
    while off < n:
        if n - off < HEADER_SIZE:
            raise MsgError("truncated header in a feed part")
        end = off + HEADER_SIZE + int.from_bytes(buf[off + 4 : off + 8], "little")
        if end > n:
            raise MsgError("truncated body in a feed part")
        out.append(buf[off:end])
        off = end
    return out


def peek_seq(buf: bytes | memoryview) -> int:
    """The ``channel_seq`` of a message without decoding the body."""
    if len(buf) < HEADER_SIZE:
        raise MsgError("short message")
    return int(struct.unpack_from("<Q", buf, 8)[0])
