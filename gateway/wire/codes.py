"""Gateway and session reason codes (400-499), beside the core's ``Reason`` table.

One numbering space: a reject or end-of-session message carries a ``reason`` that is
either a core :class:`pyx.enums.Reason` (0-399, docs/reject-codes.md) or one of the
codes below.  :func:`reason_name` names any of them; docs/protocol.md lists both.
"""

from __future__ import annotations

from enum import IntEnum

from pyx.enums import Reason


class GwReason(IntEnum):
    """Reasons the gateway adds to the core's table (stable wire values)."""

    BAD_SIGNATURE = 401  # the login signature does not verify against the key's public key
    UNKNOWN_KEY = 402  # no API key with this id
    KEY_REVOKED = 403  # the API key was revoked
    STALE_TIMESTAMP = 404  # login timestamp further than the allowed skew from the server clock
    NONCE_REUSED = 405  # this (key, nonce) was already used in the timestamp window
    ALREADY_LOGGED_IN = 406  # the key's session is live on another connection
    IP_NOT_ALLOWED = 407  # the peer address is not in the key's allow-list
    INVALID_SEQUENCE = 408  # requested next sequence number is past the session's next one
    LOGIN_RATE_EXCEEDED = 409  # too many login attempts (per peer address or pending logins)
    READ_ONLY_KEY = 410  # the key may not trade (read-only permission)
    DUPLICATE_CL_ORD_ID = 411  # client order id already used in this session
    UNKNOWN_CL_ORD_ID = 412  # no order with this client order id in this session
    ORDER_RATE_EXCEEDED = 413  # orders per second over the session's or user's limit
    MESSAGE_RATE_EXCEEDED = 414  # messages per second over the session's limit
    OPEN_ORDERS_EXCEEDED = 415  # open orders at the session's or user's limit
    ORDER_NOT_OPEN = 416  # the order is already done (filled, canceled or rejected)
    CORE_UNAVAILABLE = 417  # the core did not accept the command (e.g. restarting)
    SEQUENCE_BEFORE_RETENTION = 418  # requested sequence number was removed by stream retention
    LOGOUT = 420  # end of session: the client logged out
    HEARTBEAT_TIMEOUT = 421  # end of session: nothing received within the heartbeat timeout
    MALFORMED_MESSAGE = 422  # end of session: undecodable frame or message
    OVERSIZED_FRAME = 423  # end of session: frame length above the maximum
    FLOOD = 424  # end of session: messages far above the rate limit
    SLOW_CONSUMER = 425  # end of session: output buffer full (the client stopped reading)
    LOGIN_TIMEOUT = 426  # end of session: no login within the login timeout
    PROTOCOL_VIOLATION = 427  # end of session: message not allowed in this session state
    SHUTDOWN = 428  # end of session: the gateway is stopping


def reason_name(code: int) -> str:
    """The name of a core or gateway reason code (the number itself if unknown)."""
    for enum in (Reason, GwReason):
        try:
            return enum(code).name
        except ValueError:
            continue
    return str(code)
