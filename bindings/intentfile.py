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

Numbered records (:meth:`IntentFile.append_record`, :meth:`IntentFile.read_records`):
a service that journals more than new orders (the gateway's turn file: a loop turn's
reports, changed orders and core seq, docs/gateway.md "Replay design") numbers its
records (:data:`RECORD_HEAD`: number, CRC-32 of the body, body length) and stores the
number of the last record it filled into SQLite in the same transaction as what the
records hold (its mark).  At start it applies exactly the records past the mark, once:
records at or below it are already in SQLite; a torn or corrupt tail (a write cut
short, or garbage an OS crash left past the end) ends the records read.
"""

from __future__ import annotations

import os
import struct
import zlib

# The intent file is the database's path plus this suffix (``gw.db-orders``): deleting
# ``<db>`` with ``<db>-*`` removes it with the WAL files.
INTENT_SUFFIX = "-orders"
# Emptied (ftruncate) once it holds this many bytes (see the module docstring).
INTENT_TRUNCATE_BYTES = 1 << 16
# The file's bound: once it holds this many bytes (no transaction has come to empty it)
# the service commits its new orders instead of appending them (IntentFile.full).
INTENT_MAX_BYTES = 1 << 22
# A numbered record's head: its number, the CRC-32 of its number and body
# (record_crc), the body's length.
RECORD_HEAD = struct.Struct("<QII")
_NO = struct.Struct("<Q")


def record_crc(no: int, body: bytes) -> int:
    """The CRC-32 a numbered record carries: of its number (8 bytes, little-endian),
    then its body (zlib's CRC-32: a check against damage, not against forgery)."""
    return zlib.crc32(body, zlib.crc32(_NO.pack(no)))


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


def numbered_records(blob: bytes, after: int) -> list[tuple[int, bytes]]:
    """``(number, body)`` of the intact numbered records of ``blob`` (:data:`RECORD_HEAD`)
    numbered above ``after``, in file order.  Reading stops at the first record that is
    cut short, fails its CRC or does not number above the one before it: what follows
    a torn record was never acknowledged to anyone (its writer had not returned)."""
    out: list[tuple[int, bytes]] = []
    pos, size, end, prev = 0, RECORD_HEAD.size, whole_records(blob, RECORD_HEAD), -1
    while pos < end:
        no, crc, n = RECORD_HEAD.unpack_from(blob, pos)
        body = blob[pos + size : pos + size + n]
        if record_crc(no, body) != crc or no <= prev:
            break
        prev = no
        if no > after:
            out.append((no, body))
        pos += size + n
    return out


class IntentFile:
    """One service's intent file (module docstring): :meth:`read` and :meth:`reset`
    at start, then :meth:`append` before orders leave and :meth:`committed` after
    each transaction that stored what it holds.  ``suffix`` names the file next to
    the database; ``max_bytes`` is its bound (default :data:`INTENT_MAX_BYTES`)."""

    def __init__(
        self, db_path: str, suffix: str = INTENT_SUFFIX, max_bytes: int | None = None
    ) -> None:
        self.path = db_path + suffix
        self._fd = -1
        self._bytes = 0  # written since the file was last emptied
        self.writes = 0  # appends so far
        self.max_bytes = max_bytes
        self.last_no = 0  # number of the last numbered record appended (append_record)

    def read(self, head: struct.Struct) -> bytes:
        """The file's whole records (``b""`` if there is no file)."""
        try:
            with open(self.path, "rb") as fh:
                blob = fh.read()
        except FileNotFoundError:
            return b""
        return blob[: whole_records(blob, head)]

    def read_records(self, after: int) -> list[tuple[int, bytes]]:
        """The file's intact numbered records past the mark ``after``
        (:func:`numbered_records`; none if there is no file)."""
        try:
            with open(self.path, "rb") as fh:
                blob = fh.read()
        except FileNotFoundError:
            return []
        return numbered_records(blob, after)

    def reset(self, last_no: int = 0) -> None:
        """Empty the file (what it held is stored now) and open it for appending; the
        next numbered record is ``last_no + 1`` (the caller's mark)."""
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.ftruncate(self._fd, 0)
        self._bytes = 0
        self.last_no = last_no

    def append(self, blob: bytes) -> None:
        """Append records in one ``write`` (after :meth:`reset`)."""
        self._bytes += os.write(self._fd, blob)
        self.writes += 1

    def append_record(self, body: bytes) -> int:
        """Append ``body`` as the next numbered record (one ``write``); returns its
        number (:meth:`read_records` gives it back after a restart)."""
        self.last_no += 1
        self.append(
            RECORD_HEAD.pack(self.last_no, record_crc(self.last_no, body), len(body)) + body
        )
        return self.last_no

    @property
    def size(self) -> int:
        """Bytes written since the file was last emptied."""
        return self._bytes

    @property
    def full(self) -> bool:
        """Whether the file reached its bound (``max_bytes``, else
        :data:`INTENT_MAX_BYTES`): commit instead of appending (the commit empties it)."""
        return self._bytes >= (INTENT_MAX_BYTES if self.max_bytes is None else self.max_bytes)

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
