"""Frames on the wire around the fixed records of :mod:`bursa_wire.layout`.

Four kinds of ZeroMQ message parts carry records between the core and its
clients (byte tables in docs/commands.md, section "Frames on the wire"):

- **command frame**: one or more 96-byte command records back to back, no header;
- **reply frame**: one or more 40-byte reply records back to back, no header;
- **event frame**: a 32-byte :data:`EVENT_HEADER` followed by ``n_events`` 96-byte
  event records.  The same bytes are published on PUB, stored in the event log and
  served by the replay service.  ``first_seq..last_seq`` is the range of command
  sequence numbers the frame covers completely (commands that produced no event
  included), so consecutive frames satisfy ``next.first_seq == prev.last_seq + 1``
  and a subscriber detects a gap by sequence alone;
- **replay request / end marker**: the replay service protocol.

A control request (ping, status, state hash, conservation, snapshot) is a
two-part message ``[CONTROL_TAG, json]`` on the command socket; its answer has
the same shape.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import crc32c
import numpy as np

from bursa_wire.layout import (
    CMD_SIZE,
    EV_DTYPE,
    EV_SIZE,
    REPLY_DTYPE,
)

# The reply status bytes, defined with the reply record (re-exported: importers of this
# module use them).
from bursa_wire.layout import STATUS_APPLIED as STATUS_APPLIED
from bursa_wire.layout import STATUS_DUPLICATE as STATUS_DUPLICATE
from bursa_wire.layout import STATUS_REJECTED as STATUS_REJECTED

EVENT_MAGIC = b"BEV1"
REPLAY_REQUEST_MAGIC = b"BRQ1"
REPLAY_END_MAGIC = b"BEND"
CONTROL_TAG = b"BCTL"

# magic, n_events, first_seq, last_seq, crc32c, flags
EVENT_HEADER = struct.Struct("<4sIQQII")
EVENT_HEADER_SIZE = EVENT_HEADER.size
# The CRC covers the header bytes before it (magic..last_seq) and the payload.
_CRC_OFFSET = 24

# magic, flags, from_seq, max_events
REPLAY_REQUEST = struct.Struct("<4sIQQ")
# magic, status, next_seq, last_seq
REPLAY_END = struct.Struct("<4sIQQ")

REPLY_SIZE = REPLY_DTYPE.itemsize


# Replay end-marker status.
REPLAY_OK = 0
REPLAY_BAD_REQUEST = 1
REPLAY_NOT_AVAILABLE = 2  # from_seq is older than the oldest event kept
REPLAY_BEYOND_END = 3  # from_seq is past the log's end + 1 (next_seq = where it ends + 1)

assert EVENT_HEADER_SIZE == 32
assert CMD_SIZE == EV_SIZE == 96


class FrameError(ValueError):
    """A frame whose bytes do not form a valid frame (bad length, magic or CRC)."""


@dataclass(frozen=True)
class EventFrame:
    """A decoded event frame.

    Attributes
    ----------
    first_seq, last_seq : int
        Command sequence range the frame covers (inclusive).
    events : numpy.ndarray
        ``EV_DTYPE`` records (a read-only view on the frame bytes).
    """

    first_seq: int
    last_seq: int
    events: np.ndarray[Any, np.dtype[np.void]]


def encode_event_frame(first_seq: int, last_seq: int, events_bytes: bytes) -> bytes:
    """Header + payload of one event frame.

    Parameters
    ----------
    first_seq, last_seq : int
        Command sequence range covered, inclusive; ``first_seq <= last_seq + 1``
        (an empty range never leaves the core, but the check is on the caller).
    events_bytes : bytes
        Concatenated 96-byte event records, sorted by sequence.
    """
    n_events, rem = divmod(len(events_bytes), EV_SIZE)
    assert rem == 0, "event payload must be whole records"
    assert 0 < first_seq <= last_seq, (first_seq, last_seq)
    head = struct.pack("<4sIQQ", EVENT_MAGIC, n_events, first_seq, last_seq)
    crc = crc32c.crc32c(events_bytes, crc32c.crc32c(head))
    return head + struct.pack("<II", crc, 0) + events_bytes


def peek_event_header(buf: bytes | memoryview, offset: int = 0) -> tuple[int, int, int, int]:
    """``(n_events, first_seq, last_seq, crc)`` of the header at ``offset``.

    Raises
    ------
    FrameError
        Short buffer or wrong magic.
    """
    if len(buf) - offset < EVENT_HEADER_SIZE:
        raise FrameError("short event header")
    magic, n_events, first_seq, last_seq, crc, _flags = EVENT_HEADER.unpack_from(buf, offset)
    if magic != EVENT_MAGIC:
        raise FrameError(f"bad event frame magic {magic!r}")
    return n_events, first_seq, last_seq, crc


def check_event_frame(buf: bytes | memoryview, offset: int = 0) -> int:
    """Validate the event frame at ``offset`` and return its total size in bytes.

    Raises
    ------
    FrameError
        Short buffer, wrong magic, inverted range or CRC mismatch.
    """
    n_events, first_seq, last_seq, crc = peek_event_header(buf, offset)
    size = EVENT_HEADER_SIZE + n_events * EV_SIZE
    if len(buf) - offset < size:
        raise FrameError("short event frame")
    if not 0 < first_seq <= last_seq:
        raise FrameError(f"bad event frame range {first_seq}..{last_seq}")
    view = memoryview(buf)
    head_crc = crc32c.crc32c(view[offset : offset + _CRC_OFFSET])
    got = crc32c.crc32c(view[offset + EVENT_HEADER_SIZE : offset + size], head_crc)
    if got != crc:
        raise FrameError("event frame CRC mismatch")
    return size


def decode_event_frame(buf: bytes | memoryview, verify: bool = True) -> EventFrame:
    """Decode one event frame (the whole of ``buf``).

    Parameters
    ----------
    buf : bytes
        Exactly one frame.
    verify : bool
        Check the CRC (subscribers on a reliable transport may skip it).

    Raises
    ------
    FrameError
        Malformed frame.
    """
    n_events, first_seq, last_seq, _crc = peek_event_header(buf)
    if len(buf) != EVENT_HEADER_SIZE + n_events * EV_SIZE:
        raise FrameError("event frame length does not match its header")
    if verify:
        check_event_frame(buf)
    events = np.frombuffer(buf, dtype=EV_DTYPE, count=n_events, offset=EVENT_HEADER_SIZE)
    return EventFrame(first_seq, last_seq, events)


def encode_replay_request(from_seq: int, max_events: int = 0) -> bytes:
    """A replay request: events of commands ``>= from_seq``, at most ``max_events``
    (0 = the server's per-response bound)."""
    assert from_seq >= 0 and max_events >= 0
    return REPLAY_REQUEST.pack(REPLAY_REQUEST_MAGIC, 0, from_seq, max_events)


def decode_replay_request(buf: bytes) -> tuple[int, int]:
    """``(from_seq, max_events)`` of a replay request.

    Raises
    ------
    FrameError
        Wrong size or magic, or non-zero flags.
    """
    if len(buf) != REPLAY_REQUEST.size:
        raise FrameError("replay request must be 24 bytes")
    magic, flags, from_seq, max_events = REPLAY_REQUEST.unpack(buf)
    if magic != REPLAY_REQUEST_MAGIC:
        raise FrameError(f"bad replay request magic {magic!r}")
    if flags != 0:
        raise FrameError(f"replay request flags must be 0, got {flags}")
    return from_seq, max_events


def encode_replay_end(status: int, next_seq: int, last_seq: int) -> bytes:
    """End marker of a replay response.

    Parameters
    ----------
    status : int
        ``REPLAY_OK``, ``REPLAY_BAD_REQUEST`` or ``REPLAY_NOT_AVAILABLE``.
    next_seq : int
        First command sequence number NOT covered by this response (ask from here).
    last_seq : int
        Highest command sequence number in the event log when the response was cut.
    """
    return REPLAY_END.pack(REPLAY_END_MAGIC, status, next_seq, last_seq)


def is_replay_end(part: bytes) -> bool:
    """Whether a message part is a replay end marker."""
    return len(part) == REPLAY_END.size and part[:4] == REPLAY_END_MAGIC


def decode_replay_end(buf: bytes) -> tuple[int, int, int]:
    """``(status, next_seq, last_seq)`` of an end marker.

    Raises
    ------
    FrameError
        Not an end marker.
    """
    if not is_replay_end(buf):
        raise FrameError("not a replay end marker")
    _magic, status, next_seq, last_seq = REPLAY_END.unpack(buf)
    return status, next_seq, last_seq


def encode_control(obj: dict[str, Any]) -> bytes:
    """JSON body of a control request or answer."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def decode_control(buf: bytes) -> dict[str, Any]:
    """Parse a control body; a non-object or bad JSON raises :class:`FrameError`."""
    try:
        obj = json.loads(buf)
    except (ValueError, UnicodeDecodeError) as e:
        raise FrameError(f"bad control body: {e}") from e
    if not isinstance(obj, dict):
        raise FrameError("control body must be a JSON object")
    return obj


def decode_replies(buf: bytes) -> np.ndarray[Any, np.dtype[np.void]]:
    """A reply frame as ``REPLY_DTYPE`` records.

    Raises
    ------
    FrameError
        Length not a multiple of 40 bytes.
    """
    if len(buf) % REPLY_SIZE:
        raise FrameError(f"reply frame of {len(buf)} bytes is not whole records")
    return np.frombuffer(buf, dtype=REPLY_DTYPE)
