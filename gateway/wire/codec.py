"""Encode and decode order-entry frames (layouts in :mod:`bursa_wire.gw_layout`).

Decoding is strict: a frame whose type is unknown for its direction, or whose body
is not exactly the message's size, raises :class:`WireError` with the reason code
the gateway reports (``MALFORMED_MESSAGE`` or ``OVERSIZED_FRAME``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bursa_wire.gw_layout import (
    APP_IN_BY_CODE,
    APP_OUT_BY_CODE,
    BY_NAME,
    FRAME_HEAD,
    MAX_FRAME_LEN,
    SEQ_HEAD,
    SEQUENCED,
    SESSION_IN,
    SESSION_OUT,
    UNSEQUENCED,
    MsgSpec,
)
from gateway.wire.codes import GwReason

Value = int | bytes


class WireError(ValueError):
    """A frame that cannot be decoded; ``reason`` is the gateway reason code."""

    def __init__(self, reason: GwReason, detail: str) -> None:
        super().__init__(f"{reason.name}: {detail}")
        self.reason = reason


def frame_length_error(length: int) -> WireError:
    """The error of a frame length that is 0 (malformed) or above the bound (oversized);
    shared by :class:`FrameReader` and the compiled :class:`pyx.gwentry.EntryReader`."""
    if length == 0:
        return WireError(GwReason.MALFORMED_MESSAGE, "zero-length frame")
    return WireError(GwReason.OVERSIZED_FRAME, f"frame length {length}")


@dataclass
class Msg:
    """One decoded message: its spec, its field values and (S frames) its sequence.

    Fields read as attributes: ``msg.cl_ord_id``.
    """

    spec: MsgSpec
    values: dict[str, Value] = field(default_factory=dict)
    seq: int = 0

    @property
    def name(self) -> str:
        """The message name (``EXECUTED``)."""
        return self.spec.name

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)


def _frame(ftype: bytes, body: bytes) -> bytes:
    return FRAME_HEAD.pack(len(body) + 1, ftype[0]) + body


def pack_body(spec: MsgSpec, values: Mapping[str, Value]) -> bytes:
    """The packed body of ``spec`` (missing fields are 0 / empty)."""
    args: list[Value] = []
    for f in spec.fields:
        v = values.get(f.name, b"" if f.code == "S64" else 0)
        args.append(v)
    try:
        return spec.struct.pack(*args)
    except Exception as e:  # struct.error or TypeError: a value out of its field's range
        raise ValueError(f"{spec.name}: {e}") from e


def encode(name: str, seq: int = 0, **values: Value) -> bytes:
    """One whole frame of message ``name`` (``seq`` for gateway application messages)."""
    spec = BY_NAME[name]
    return encode_spec(spec, values, seq)


def encode_spec(spec: MsgSpec, values: Mapping[str, Value], seq: int = 0) -> bytes:
    """One whole frame of ``spec`` with ``values``."""
    body = pack_body(spec, values)
    if spec.layer == "session":
        return _frame(spec.code, body)
    if spec.inbound:
        return _frame(UNSEQUENCED, spec.code + body)
    return _frame(SEQUENCED, SEQ_HEAD.pack(seq) + spec.code + body)


def app_payload(spec: MsgSpec, values: Mapping[str, Value]) -> bytes:
    """The part of an S frame after the sequence number (stored per session)."""
    return spec.code + pack_body(spec, values)


def sequenced_frame(seq: int, payload: bytes) -> bytes:
    """An S frame from a stored payload (see :func:`app_payload`)."""
    return _frame(SEQUENCED, SEQ_HEAD.pack(seq) + payload)


def _unpack(spec: MsgSpec, body: bytes | memoryview) -> dict[str, Value]:
    if len(body) != spec.struct.size:
        raise WireError(
            GwReason.MALFORMED_MESSAGE,
            f"{spec.name} body is {len(body)} bytes, not {spec.struct.size}",
        )
    return dict(zip(spec.names, spec.struct.unpack(body), strict=True))


def decode(ftype: int, body: bytes | memoryview, inbound: bool) -> Msg:
    """Decode one frame's type and body (as split by :class:`FrameReader`).

    ``inbound`` selects the client-to-gateway tables (the gateway's decoder) or the
    gateway-to-client ones (the client's decoder).
    """
    t = bytes((ftype,))
    if inbound:
        if t == UNSEQUENCED:
            if not body:
                raise WireError(GwReason.MALFORMED_MESSAGE, "empty U frame")
            spec = APP_IN_BY_CODE.get(bytes(body[:1]))
            if spec is None:
                raise WireError(GwReason.MALFORMED_MESSAGE, f"unknown message {bytes(body[:1])!r}")
            return Msg(spec, _unpack(spec, body[1:]))
        spec = SESSION_IN.get(t)
    else:
        if t == SEQUENCED:
            if len(body) < SEQ_HEAD.size + 1:
                raise WireError(GwReason.MALFORMED_MESSAGE, "short S frame")
            (seq,) = SEQ_HEAD.unpack_from(body)
            code = bytes(body[SEQ_HEAD.size : SEQ_HEAD.size + 1])
            spec = APP_OUT_BY_CODE.get(code)
            if spec is None:
                raise WireError(GwReason.MALFORMED_MESSAGE, f"unknown message {code!r}")
            return Msg(spec, _unpack(spec, body[SEQ_HEAD.size + 1 :]), seq)
        spec = SESSION_OUT.get(t)
    if spec is None:
        raise WireError(GwReason.MALFORMED_MESSAGE, f"unknown frame type {t!r}")
    return Msg(spec, _unpack(spec, body))


def decode_frame(frame: bytes, inbound: bool) -> Msg:
    """Decode one whole frame (length field included)."""
    r = FrameReader()
    got = r.feed(frame)
    if len(got) != 1 or r.pending():
        raise WireError(GwReason.MALFORMED_MESSAGE, "not exactly one frame")
    return decode(got[0][0], got[0][1], inbound)


class FrameReader:
    """Splits a byte stream into (type, body) frames; bounded by ``max_len``.

    Frames may arrive split across reads or several in one read.  A length field
    of 0 or above ``max_len`` raises :class:`WireError` (the stream cannot be
    resynchronised, so the connection is closed) once the whole frames before it
    have been returned: call :meth:`check` after handling them.
    """

    def __init__(self, max_len: int = MAX_FRAME_LEN) -> None:
        self.max_len = max_len
        self.buf = bytearray()
        self.error: WireError | None = None

    def check(self) -> None:
        """Raise the error found after the frames the last :meth:`feed` returned."""
        if self.error is not None:
            raise self.error

    def pending(self) -> int:
        """Bytes buffered that do not yet form a whole frame."""
        return len(self.buf)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Append ``data``; return every whole frame now available."""
        self.buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        buf = self.buf
        n = len(buf)
        if self.error is not None:
            raise self.error
        while n - pos >= 2:
            length = buf[pos] | (buf[pos + 1] << 8)
            err = None
            if length == 0 or length > self.max_len:
                err = frame_length_error(length)
            if err is not None:
                if not out:
                    raise err
                # The frames before the bad one are whole: hand them out first;
                # check() (or the next feed) raises the error.
                self.error = err
                break
            end = pos + 2 + length
            if end > n:
                break
            out.append((buf[pos + 2], bytes(buf[pos + 3 : end])))
            pos = end
        if pos:
            del buf[:pos]
        return out
