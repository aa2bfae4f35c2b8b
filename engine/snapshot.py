"""Snapshots of the core: ``snapshot-<seq, 20 digits>.snap``, written atomically.

File layout (little-endian)::

    offset size field
    0      4    magic b"BRSS"
    4      2    version
    6      2    hash_len      bytes of state_hash used (16 for blake2b-128)
    8      8    seq           core.last_seq at the snapshot
    16     8    payload_len   bytes of core.to_snapshot()
    24     32   state_hash    core.state_hash(), zero padded
    56     4    payload_crc   crc32c of the payload
    60     4    header_crc    crc32c of bytes 0..59
    64     ...  payload

Write protocol: write ``<name>.tmp``, sync it, rename to ``<name>``, sync the
directory, read back and compare.  A snapshot is trusted only if both CRCs hold
AND the core rebuilt from it hashes to the stored state hash at the stored seq;
anything else makes recovery fall back to the previous snapshot.
"""

from __future__ import annotations

import logging
import re
import struct

import crc32c

from engine import variants as variants_mod
from engine.corelike import CoreClass, CoreLike
from engine.storage import Storage

log = logging.getLogger("bursa.snapshot")

MAGIC = b"BRSS"
VERSION = 1
_HEAD = struct.Struct("<4sHHQQ32sI")
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEAD.size + _CRC.size
assert HEADER_SIZE == 64, HEADER_SIZE
MAX_HASH_BYTES = 32
SNAPSHOT_PREFIX = "snapshot-"
SNAPSHOT_SUFFIX = ".snap"
TEMP_SUFFIX = ".tmp"
_NAME_RE = re.compile(r"^snapshot-(\d{20})\.snap$")
#: Snapshots kept after a new one is written (the newest and one to fall back to).
KEEP_SNAPSHOTS = 2
#: Broken variant (simulator self-test): rename without syncing the temp file or the directory.
VARIANT_RENAME_NOSYNC = variants_mod.SNAPSHOT_RENAME_NOSYNC


class SnapshotInvalid(Exception):  # noqa: N818 - reads as a verdict, like JournalCorrupt
    """A snapshot file failed validation (truncated, bit flip, wrong hash)."""


class SnapshotWriteError(Exception):
    """Writing a snapshot failed; the previous snapshots are untouched."""


def snapshot_name(seq: int) -> str:
    """File name of the snapshot taken at ``seq``."""
    assert 0 <= seq < 10**20
    return f"{SNAPSHOT_PREFIX}{seq:020d}{SNAPSHOT_SUFFIX}"


def parse_snapshot_name(name: str) -> int | None:
    """Sequence number in a snapshot file name, or None if ``name`` is not one."""
    m = _NAME_RE.match(name)
    return int(m.group(1)) if m else None


def list_snapshots(storage: Storage) -> list[tuple[int, str]]:
    """``(seq, name)`` of every snapshot file, oldest first."""
    found = ((parse_snapshot_name(n), n) for n in storage.list())
    return sorted((seq, n) for seq, n in found if seq is not None)


def encode_snapshot(core: CoreLike) -> bytes:
    """Header + payload of a snapshot of ``core`` at its current seq."""
    payload = core.to_snapshot()
    state_hash = core.state_hash()
    assert 16 <= len(state_hash) <= MAX_HASH_BYTES, len(state_hash)
    head = _HEAD.pack(
        MAGIC,
        VERSION,
        len(state_hash),
        core.last_seq,
        len(payload),
        state_hash,
        crc32c.crc32c(payload),
    )
    return b"".join((head, _CRC.pack(crc32c.crc32c(head)), payload))


def decode_snapshot(data: bytes) -> tuple[int, bytes, bytes]:
    """``(seq, state_hash, payload)`` of a snapshot file's bytes.

    Raises
    ------
    SnapshotInvalid
        Short file, wrong magic/version, header or payload CRC mismatch.
    """
    if len(data) < HEADER_SIZE:
        raise SnapshotInvalid(f"short file ({len(data)} bytes)")
    magic, version, hash_len, seq, plen, state_hash, pcrc = _HEAD.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION:
        raise SnapshotInvalid("bad magic or version")
    (hcrc,) = _CRC.unpack_from(data, _HEAD.size)
    if hcrc != crc32c.crc32c(memoryview(data)[: _HEAD.size]):
        raise SnapshotInvalid("header CRC mismatch")
    if len(data) != HEADER_SIZE + plen:
        raise SnapshotInvalid(f"size {len(data)} != header {HEADER_SIZE} + payload {plen}")
    payload = data[HEADER_SIZE:]
    if crc32c.crc32c(payload) != pcrc:
        raise SnapshotInvalid("payload CRC mismatch")
    if not 16 <= hash_len <= MAX_HASH_BYTES:
        raise SnapshotInvalid(f"bad hash length {hash_len}")
    return seq, state_hash[:hash_len], payload


def load_snapshot(
    storage: Storage, name: str, core_cls: CoreClass, variants: frozenset[str] = frozenset()
) -> CoreLike:
    """Load and fully validate one snapshot.

    Raises
    ------
    SnapshotInvalid
        The file is damaged, or the rebuilt core does not reproduce the stored
        seq and state hash.
    StorageError
        The file could not be read (the caller retries recovery).
    """
    try:
        data = storage.read(name, 0, storage.size(name))
    except FileNotFoundError as e:  # listed, then gone
        raise SnapshotInvalid(f"unreadable: {e}") from e
    # Any other I/O error propagates: a transient read error must make recovery
    # retry, not skip an intact snapshot (whose journal may be archived already).
    seq, state_hash, payload = decode_snapshot(data)
    if parse_snapshot_name(name) != seq:
        raise SnapshotInvalid(f"file name says seq {parse_snapshot_name(name)}, header {seq}")
    try:
        core = core_cls.from_snapshot(payload, variants=variants)
    except Exception as e:  # any failure to decode means "not usable"
        raise SnapshotInvalid(f"core rejected the payload: {e!r}") from e
    if core.last_seq != seq:
        raise SnapshotInvalid(f"rebuilt core is at seq {core.last_seq}, header says {seq}")
    if core.state_hash() != state_hash:
        raise SnapshotInvalid("rebuilt core's state hash differs from the stored one")
    return core


def load_newest(
    storage: Storage, core_cls: CoreClass, variants: frozenset[str] = frozenset()
) -> tuple[CoreLike | None, str | None, list[tuple[str, str]]]:
    """The newest valid snapshot, falling back to older ones.

    Returns
    -------
    (core or None, name or None, rejected)
        ``rejected`` lists ``(name, reason)`` of every newer snapshot that failed.
    """
    rejected: list[tuple[str, str]] = []
    for _seq, name in reversed(list_snapshots(storage)):
        try:
            core = load_snapshot(storage, name, core_cls, variants)
        except SnapshotInvalid as e:
            log.warning("snapshot %s rejected (%s); falling back to an older one", name, e)
            rejected.append((name, str(e)))
            continue
        return core, name, rejected
    return None, None, rejected


def write_snapshot(storage: Storage, core: CoreLike, variants: frozenset[str] = frozenset()) -> str:
    """Write a snapshot of ``core`` atomically and verify it; return its name.

    Raises
    ------
    SnapshotWriteError
        Any storage failure or a read-back mismatch (the temp file is removed
        when possible; older snapshots are untouched).
    """
    data = encode_snapshot(core)
    name = snapshot_name(core.last_seq)
    tmp = name + TEMP_SUFFIX
    nosync = VARIANT_RENAME_NOSYNC in variants_mod.check(variants)
    try:
        if tmp in storage.list():
            storage.remove(tmp)
        storage.append(tmp, data)
        if not nosync:
            storage.sync(tmp)
        storage.rename(tmp, name)
        if not nosync:
            storage.sync_dir()
        back = storage.read(name, 0, len(data) + 1)
    except OSError as e:  # StorageError, or a raw OSError of rename/unlink
        _remove_quietly(storage, tmp)
        raise SnapshotWriteError(f"snapshot {name} failed: {e}") from e
    if back != data:
        _remove_quietly(storage, name)
        raise SnapshotWriteError(
            f"snapshot {name} read-back differs ({len(back)} of {len(data)} bytes)"
        )
    log.info("snapshot %s written (%d bytes)", name, len(data))
    return name


def _remove_quietly(storage: Storage, name: str) -> None:
    try:
        if name in storage.list():
            storage.remove(name)
    except OSError as e:  # StorageError, or a raw OSError of rename/unlink
        log.warning("could not remove %s: %s", name, e)


def prune_snapshots(storage: Storage, keep: set[str]) -> list[str]:
    """Delete every snapshot (and leftover temp) not in ``keep``; return what was removed."""
    removed: list[str] = []
    for name in storage.list():
        is_snap = parse_snapshot_name(name) is not None
        is_temp = name.startswith(SNAPSHOT_PREFIX) and name.endswith(TEMP_SUFFIX)
        if (is_snap or is_temp) and name not in keep:
            storage.remove(name)
            removed.append(name)
    if removed:
        storage.sync_dir()
    return removed
