"""Server-to-client WebSocket text frames built once and written to many clients.

A server's frames are never masked (RFC 6455, 5.1), so the bytes of one message are
the same for every subscriber: :func:`text_frame` builds them once and the fan-out
(:mod:`api.market.hub`) writes them to each connection's transport.  Connections
are opened without permessage-deflate, so a frame needs no per-client state.
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame carrying ``payload`` (UTF-8 JSON)."""
    n = len(payload)
    if n < 126:
        return bytes((_FIN_TEXT, n)) + payload
    if n < 1 << 16:
        return _LEN16.pack(_FIN_TEXT, 126, n) + payload
    return _LEN64.pack(_FIN_TEXT, 127, n) + payload
