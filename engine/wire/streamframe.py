"""Length-prefixed frames of the core's stream trade link (sans-IO codec).

On the stream link (:mod:`engine.streamlink`, a unix stream socket) every message
is a *frame*: a u32 little-endian body length, then that many body bytes.  A
client's body is a command frame exactly as on the zmq ``trade`` socket (96-byte
command records back to back); the core's body is the reply frame exactly as the
zmq reply (40-byte reply records, the malformed / wrong-socket replies included).
Byte tables: docs/commands.md, "The stream trade link".

Both sides use :class:`FrameDecoder` to cut a byte stream into bodies and
:func:`encode_frame` to write one.
"""

from __future__ import annotations

import struct

# u32 little-endian body length in front of every body.
FRAME_HEADER = struct.Struct("<I")
FRAME_HEADER_BYTES = FRAME_HEADER.size


class StreamFrameError(ValueError):
    """The peer broke the framing (a body length over the bound): close the link."""


def encode_frame(body: bytes | bytearray | memoryview) -> bytes:
    """One frame: the body's length (u32 little-endian), then the body."""
    return FRAME_HEADER.pack(len(body)) + body


class FrameDecoder:
    """Cuts a byte stream into frame bodies, whatever the read boundaries.

    Bytes of an incomplete frame are kept until the rest arrives (a frame's bytes
    are copied once more only when it completes, so a large frame in many reads
    costs linear time).  A length over ``max_body_bytes`` raises
    :class:`StreamFrameError` before its body is buffered: the decoder then stays
    failed (the stream has no resynchronization point).

    Parameters
    ----------
    max_body_bytes : int
        Largest body accepted, bytes.
    """

    def __init__(self, max_body_bytes: int) -> None:
        assert max_body_bytes >= 0
        self.max_body_bytes = max_body_bytes
        self._buf = bytearray()
        self._need = 0  # total bytes (header + body) of the frame _buf starts, once known
        self.failed = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame held (0 between frames)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes read from the stream; return the bodies they complete, in order.

        Raises
        ------
        StreamFrameError
            A length over ``max_body_bytes`` (every later call raises too).
        """
        if self.failed:
            raise StreamFrameError("the stream broke its framing earlier")
        n = len(data)
        if not self._buf and n >= FRAME_HEADER_BYTES:
            # The common read on a request/reply link: exactly one whole frame.
            size: int = FRAME_HEADER.unpack_from(data)[0]
            if size + FRAME_HEADER_BYTES == n and size <= self.max_body_bytes:
                self._need = 0
                return [data[FRAME_HEADER_BYTES:]]
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return []  # a large frame still arriving: no copy, no parse
            view = bytes(self._buf)
            self._buf.clear()
        else:
            view = data
        out: list[bytes] = []
        pos = 0
        n = len(view)
        unpack = FRAME_HEADER.unpack_from
        while n - pos >= FRAME_HEADER_BYTES:
            size = unpack(view, pos)[0]
            if size > self.max_body_bytes:
                self.failed = True
                raise StreamFrameError(f"frame body of {size} bytes over {self.max_body_bytes}")
            end = pos + FRAME_HEADER_BYTES + size
            if end > n:
                self._need = end - pos
                break
            out.append(view[pos + FRAME_HEADER_BYTES : end])
            pos = end
        else:
            self._need = 0
        if pos < n:
            self._buf += view[pos:]
        return out
