"""The durable high-water record: the last seq known to be durable in the journal.

Recovery must refuse a journal that ends before what was acknowledged (a newest
segment deleted or cut while the core was down).  The journal cannot tell by
itself that it lost its end, so the sequencer keeps this small record beside it
(as TigerBeetle keeps its superblock): after a successful journal sync, at most
every ``every_ns`` and always at snapshots and at a clean stop, it writes the
synced seq.  Every value ever written is a seq whose batch was durable, so the
record is a lower bound of what the journal must still hold.

File ``journal.hwm``: two 32-byte slots written alternately in place (a torn
write spoils at most the slot being written; the other still holds a valid,
smaller bound)::

    magic "BRSH" | version u16 | reserved u16 | counter u64 | seq u64 | pad u32 | crc32c u32

Reading takes the valid slot with the largest counter; no valid slot means no
record (a first write torn by a crash).
"""

from __future__ import annotations

import logging
import struct

import crc32c

from engine.storage import Storage, StorageError

log = logging.getLogger("bursa.highwater")

HIGH_WATER_NAME = "journal.hwm"
MAGIC = b"BRSH"
VERSION = 1
_SLOT = struct.Struct("<4sHHQQI")
SLOT_SIZE = _SLOT.size + 4
assert SLOT_SIZE == 32, SLOT_SIZE


def encode_slot(counter: int, seq: int) -> bytes:
    """One slot: header fields then the crc32c of them."""
    body = _SLOT.pack(MAGIC, VERSION, 0, counter, seq, 0)
    return body + struct.pack("<I", crc32c.crc32c(body))


def decode_slot(data: bytes) -> tuple[int, int] | None:
    """``(counter, seq)`` of a valid slot, else None."""
    if len(data) < SLOT_SIZE:
        return None
    body = data[: _SLOT.size]
    (crc,) = struct.unpack_from("<I", data, _SLOT.size)
    if crc32c.crc32c(body) != crc:
        return None
    magic, version, _r, counter, seq, _pad = _SLOT.unpack(body)
    if magic != MAGIC or version != VERSION:
        return None
    return counter, seq


def read_slots(storage: Storage) -> list[tuple[int, int]]:
    """Valid ``(counter, seq)`` slots of the record (empty when there is none)."""
    if HIGH_WATER_NAME not in storage.list():
        return []
    data = storage.read(HIGH_WATER_NAME, 0, 2 * SLOT_SIZE)
    out = []
    for i in range(2):
        slot = decode_slot(data[i * SLOT_SIZE : (i + 1) * SLOT_SIZE])
        if slot is not None:
            out.append(slot)
    return out


def read_high_water(storage: Storage) -> int:
    """The durable high-water seq (0 when no valid record exists)."""
    slots = read_slots(storage)
    return max(slots)[1] if slots else 0


class HighWater:
    """Writer of the record (one per sequencer).

    Parameters
    ----------
    storage : Storage
        The journal's directory.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        slots = read_slots(storage)
        self.counter = max(slots)[0] if slots else 0
        self.seq = max(slots)[1] if slots else 0
        self._named = HIGH_WATER_NAME in storage.list()
        self.writes = 0
        self.failures = 0

    def write(self, seq: int) -> bool:
        """Record ``seq`` (durable in the journal) if it is new; True when written.

        A failure is logged and counted, not raised: the record only guards
        restarts, the slot not being written keeps the previous bound, and the
        next write retries.  ``seq`` may be lower than the record only after an
        operator accepted a journal loss (:meth:`reset`).
        """
        if seq <= self.seq:
            return False
        counter = self.counter + 1
        try:
            self.storage.write_at(
                HIGH_WATER_NAME, (counter % 2) * SLOT_SIZE, encode_slot(counter, seq)
            )
            self.storage.sync(HIGH_WATER_NAME)
            if not self._named:
                self.storage.sync_dir()
                self._named = True
        except StorageError as e:
            self.failures += 1
            log.error("writing the journal high-water record failed (retried later): %s", e)
            return False
        self.counter = counter
        self.seq = seq
        self.writes += 1
        return True

    def reset(self, seq: int) -> None:
        """After an accepted journal loss: both slots say ``seq`` (a lower value)."""
        for _ in range(2):
            self.seq = -1
            self.write(seq)
