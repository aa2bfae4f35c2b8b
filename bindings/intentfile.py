"""Order intent files: new orders made durable with one ``write`` before they leave.

A service that must know its orders after a kill -9 (the gateway, the API) used to
commit each new order's row to SQLite before its NEW left for the core: one
transaction per order on the order path.  With an intent file the order's image is
appended to a file next to the database instead (one ``write``, durable across a
process kill like the WAL at ``synchronous=NORMAL``: the kernel has it), and the row
reaches SQLite with the service's next transaction (usually the one of the order's
first events).  At start the service reads the file's whole records
(:meth:`IntentFile.read`), stores the orders SQLite lacks (pending: the service's
recovery settles them against the core) and empties the file (:meth:`IntentFile.reset`).

Images left in the file after their commit are stale; each service knows how to
ignore them (the gateway: SQLite has the order; the API: a mark in its database).
The file is emptied only once it holds :data:`INTENT_TRUNCATE_BYTES`
(:meth:`IntentFile.committed`): a truncate per commit costs more than the write it
saves.

A record is a fixed head (a :class:`struct.Struct` whose LAST field is the length of
a variable tail) followed by that tail; a write cut short by a crash leaves a
partial last record, which :func:`whole_records` drops.
"""

from __future__ import annotations

import os
import struct

# The intent file is the database's path plus this suffix (``gw.db-orders``): deleting
# ``<db>`` with ``<db>-*`` removes it with the WAL files.
INTENT_SUFFIX = "-orders"
# Emptied (ftruncate) once it holds this many bytes (see the module docstring).
INTENT_TRUNCATE_BYTES = 1 << 16
# The file's bound: once it holds this many bytes (no transaction has come to empty it)
# the service commits its new orders instead of appending them (IntentFile.full).
INTENT_MAX_BYTES = 1 << 22


def whole_records(blob: bytes, head: struct.Struct) -> int:
    """The length of the prefix of ``blob`` made of whole records (``head``, whose
    last field is the tail's length, then the tail)."""
    pos, size, end = 0, head.size, len(blob)
    while pos + size <= end:
        n = head.unpack_from(blob, pos)[-1]
        if pos + size + n > end:
            break
        pos += size + n
    return pos


class IntentFile:
    """One service's intent file (module docstring): :meth:`read` and :meth:`reset`
    at start, then :meth:`append` before orders leave and :meth:`committed` after
    each transaction that stored what it holds."""

    def __init__(self, db_path: str) -> None:
        self.path = db_path + INTENT_SUFFIX
        self._fd = -1
        self._bytes = 0  # written since the file was last emptied
        self.writes = 0  # appends so far

    def read(self, head: struct.Struct) -> bytes:
        """The file's whole records (``b""`` if there is no file)."""
        try:
            with open(self.path, "rb") as fh:
                blob = fh.read()
        except FileNotFoundError:
            return b""
        return blob[: whole_records(blob, head)]

    def reset(self) -> None:
        """Empty the file (what it held is stored now) and open it for appending."""
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.ftruncate(self._fd, 0)
        self._bytes = 0

    def append(self, blob: bytes) -> None:
        """Append records in one ``write`` (after :meth:`reset`)."""
        self._bytes += os.write(self._fd, blob)
        self.writes += 1

    @property
    def full(self) -> bool:
        """Whether the file reached :data:`INTENT_MAX_BYTES`: commit instead of
        appending (the commit empties it)."""
        return self._bytes >= INTENT_MAX_BYTES

    def committed(self) -> None:
        """What the file holds is in SQLite now: empty it once it is big enough."""
        if self._bytes >= INTENT_TRUNCATE_BYTES:
            os.ftruncate(self._fd, 0)
            self._bytes = 0

    def close(self) -> None:
        """Close the file (its records stay for the next start)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
