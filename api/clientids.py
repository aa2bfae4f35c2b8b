"""Generated ``clientOrderId`` values, derived from the order so they can be rebuilt.

An order entered without a ``newClientOrderId`` is answered with one made here: 22
URL-safe characters, the order id in 7 base-62 digits (ASCII order: ids of later
orders sort after earlier ones, so the store's client id index grows at its end
instead of at a random page per order) then 15 characters (90 bits) of a keyed
BLAKE2b of ``(user_id, order_id)`` (``hashlib.blake2b(key=...)``; the key is made
once per database and kept in it, :class:`api.store.Store`).  Nobody without the key
can predict the tail, so an id a client picks never meets one; and the API can
re-create the id of any of its orders from the order id alone: an order answered
and then lost by a kill -9 before its rows were committed is rebuilt from the core's
events with the very id its client was told (:meth:`api.store.Store.lost_client_id`).
"""

from __future__ import annotations

import base64
import hashlib
import struct

from pyx.apihttp import client_id

_SORTABLE = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # ASCII order
_PAIR = struct.Struct("<QQ")
DIGEST_BYTES = 12  # 90 bits of them are used (15 base64 characters)


class ClientIds:
    """The generated ids of one database (its ``key``, at least 16 bytes)."""

    def __init__(self, key: bytes) -> None:
        if not 16 <= len(key) <= hashlib.blake2b.MAX_KEY_SIZE:
            raise ValueError("the client id key must be 16..64 bytes")
        self._base = hashlib.blake2b(key=key, digest_size=DIGEST_BYTES)

    def digest(self, user_id: int, order_id: int) -> bytes:
        """The keyed hash of the order (``DIGEST_BYTES`` bytes)."""
        h = self._base.copy()
        h.update(_PAIR.pack(user_id, order_id))
        return h.digest()

    def of(self, user_id: int, order_id: int) -> str:
        """The id of ``user_id``'s order ``order_id`` (below 62**7; the digits and
        base64 compiled: :func:`pyx.apihttp.client_id`)."""
        return str(client_id(order_id, self.digest(user_id, order_id), 0))

    def of_py(self, user_id: int, order_id: int) -> str:
        """:meth:`of` in Python (the oracle of the compiled formatting)."""
        digits = []
        n = order_id
        for _ in range(7):
            n, d = divmod(n, 62)
            digits.append(_SORTABLE[d])
        tail = base64.urlsafe_b64encode(self.digest(user_id, order_id))[:15].decode()
        return "".join(reversed(digits)) + tail
