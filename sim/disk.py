"""SimDisk: an in-memory :class:`engine.storage.Storage` that knows what is durable.

Model (one flat directory, like the real storage):

- Every file is an *inode* with two layers of content: ``durable`` (what the platter
  holds) and a list of pending operations (writes and truncations not yet synced).
  What a process reads is the *cache*: ``durable`` with the pending operations applied,
  as the page cache shows it.  ``sync(name)`` applies that file's pending operations to
  ``durable``.
- Names map to inodes twice: the live directory (what ``list`` shows) and the durable
  directory.  Creations, renames and removals change the live one; ``sync_dir`` copies
  it to the durable one.
- :meth:`SimDisk.crash` is a kill -9: the process dies, the page cache survives, so
  nothing changes on disk.  :meth:`SimDisk.power_loss` drops the page cache: the durable
  directory comes back, every file goes back to its durable content plus, at most, a
  prefix of its pending operations of which the last may be torn at 512-byte sector
  granularity (a prefix of its sectors survives).
- Faults, all drawn from a seeded :class:`random.Random` so a run replays exactly:
  bit flips at rest and misdirected writes (damage applied to the durable layer, so a
  crash, a power loss and the running process all see it), short writes, ENOSPC and
  EIO on write or sync (raised as :class:`engine.storage.StorageError`), slow syncs
  (the :class:`engine.clock.ManualClock` moves).  Every injected fault is logged with
  its kind, file, offset, length and whether it hit durable bytes, so the oracles can
  tell damage inside the durable prefix from damage in the unsynced tail.
- A crash or a power loss can be armed to strike inside the N-th mutating storage
  call from now (before or after its effect): the call raises :class:`SimCrash`, a
  ``BaseException`` so that no ``except Exception`` in the code under test swallows it,
  and every later call raises it again until :meth:`SimDisk.restart`.
"""

from __future__ import annotations

import builtins
import errno
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.clock import ManualClock
from engine.storage import StorageError

SECTOR_BYTES = 512
"""Torn writes keep a prefix of the written data cut at a multiple of this (file offset)."""

MAX_FLIP_BITS = 8
"""Upper bound on the bits one bit-flip fault may flip (all inside one sector)."""

MAX_MISDIRECT_TRIES = 16
"""Bound on the attempts to find a durable victim region for a misdirected write."""

FAULT_KINDS: tuple[str, ...] = (
    "bit_flip",
    "misdirected_write",
    "short_write",
    "enospc",
    "eio_write",
    "eio_sync",
    "sync_lost",
    "eio_read",
    "slow_sync",
    "torn_write",
)
"""Every kind of storage fault :class:`SimDisk` injects (keys of its fault counters)."""


class SimCrash(BaseException):
    """The simulated process died inside a storage call (kill -9 or power loss).

    Derives from ``BaseException`` so the code under test cannot catch it by accident.
    """

    def __init__(self, power_loss: bool) -> None:
        super().__init__("power loss" if power_loss else "crash")
        self.power_loss = power_loss


class SimNotFoundError(StorageError, FileNotFoundError):
    """``read``/``size``/``rename``/``remove`` of a name that does not exist."""


@dataclass(frozen=True)
class Fault:
    """One injected fault.

    Parameters
    ----------
    kind : str
        One of :data:`FAULT_KINDS`.
    name : str
        File hit (for a misdirected write: the victim that received the data).
    offset : int
        Byte offset hit in ``name``.
    length : int
        Bytes affected.
    durable : bool
        True if the damage landed on durable bytes (inside the durable prefix).
    op_index : int
        Index of the storage call during which it happened (0 for at-rest faults).
    """

    kind: str
    name: str
    offset: int
    length: int
    durable: bool
    op_index: int


@dataclass
class FaultRates:
    """Per-call probabilities of each fault (all zero: a perfect disk).

    ``write_*`` apply to each ``append``/``write_at``, ``sync_*`` to each ``sync``, on
    files accepted by the disk's fault filter.  ``slow_sync_ns_max`` bounds the delay of a
    slow sync (ns of :class:`ManualClock` time).
    """

    short_write: float = 0.0
    enospc: float = 0.0
    eio_write: float = 0.0
    misdirected_write: float = 0.0
    eio_sync: float = 0.0
    sync_lost: float = 0.0
    """Of failed syncs, the share that also lose the unsynced data (fsyncgate, see docs)."""
    slow_sync: float = 0.0
    slow_sync_ns_max: int = 200_000_000
    eio_read: float = 0.0
    """A read fails with EIO (transient: the bytes are intact)."""


@dataclass
class _Op:
    """A pending operation: a write (``data`` set) or a truncation (``data`` None).

    ``intent`` is what the caller asked to write; it differs from ``data`` only when
    a fault (a misdirected write) put other bytes there.
    """

    offset: int
    data: bytes | None
    intent: bytes | None


@dataclass
class _Inode:
    """One file's content, twice: as the disk holds it and as it was meant to be.

    ``durable``/``cache`` are the real bytes (platter, page cache); ``intent_durable``/
    ``intent_cache`` the same without the damage faults did.  Where they differ, the
    file is damaged.
    """

    durable: bytearray = field(default_factory=bytearray)
    pending: list[_Op] = field(default_factory=list)
    cache: bytearray = field(default_factory=bytearray)
    intent_durable: bytearray = field(default_factory=bytearray)
    intent_cache: bytearray = field(default_factory=bytearray)

    def rebuild_cache(self) -> None:
        """cache := durable with every pending operation applied."""
        self.cache = bytearray(self.durable)
        for op in self.pending:
            _apply(self.cache, op.offset, op.data)

    def clone(self) -> _Inode:
        """Deep copy."""
        return _Inode(
            bytearray(self.durable),
            list(self.pending),
            bytearray(self.cache),
            bytearray(self.intent_durable),
            bytearray(self.intent_cache),
        )


def _apply(buf: bytearray, offset: int, data: bytes | None) -> None:
    """Apply one operation to ``buf`` in place (writes past the end zero-fill the gap)."""
    if data is None:
        del buf[offset:]
        return
    end = offset + len(data)
    if len(buf) < offset:
        buf.extend(bytes(offset - len(buf)))
    buf[offset:end] = data


def _diff_ranges(real: bytes | bytearray, intent: bytes | bytearray) -> list[tuple[int, int]]:
    """Half-open byte ranges where ``real`` and ``intent`` differ (length difference included)."""
    if real == intent:
        return []
    n = min(len(real), len(intent))
    a = np.frombuffer(bytes(real[:n]), dtype=np.uint8)
    b = np.frombuffer(bytes(intent[:n]), dtype=np.uint8)
    idx = np.flatnonzero(a != b)
    ranges: list[tuple[int, int]] = []
    if len(idx):
        breaks = np.flatnonzero(np.diff(idx) > 1)
        starts = np.concatenate(([idx[0]], idx[breaks + 1]))
        ends = np.concatenate((idx[breaks], [idx[-1]])) + 1
        ranges = [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]
    if len(real) != len(intent):
        ranges.append((n, max(len(real), len(intent))))
    return ranges


class SimDisk:
    """In-memory :class:`engine.storage.Storage` with durability tracking and faults.

    Parameters
    ----------
    rng : random.Random
        Source of every fault decision (seeded by the simulator).
    clock : ManualClock or None
        Advanced by slow syncs.
    rates : FaultRates or None
        Per-call fault probabilities; None means no faults.
    fault_filter : callable or None
        ``fault_filter(name)`` says whether call faults and at-rest damage may hit
        ``name`` (the simulator restricts them to journal segments and snapshots).
    """

    def __init__(
        self,
        rng: random.Random | None = None,
        clock: ManualClock | None = None,
        rates: FaultRates | None = None,
        fault_filter: Callable[[str], bool] | None = None,
    ) -> None:
        self.rng = rng if rng is not None else random.Random(0)
        self.clock = clock
        self.rates = rates if rates is not None else FaultRates()
        self.fault_filter = fault_filter
        self._inodes: dict[int, _Inode] = {}
        self._names: dict[str, int] = {}
        self._durable_names: dict[str, int] = {}
        self._next_inode = 1
        self.op_index = 0
        self.faults: list[Fault] = []
        self.fault_counts: dict[str, int] = {k: 0 for k in FAULT_KINDS}
        self.dead = False
        self._arm_ops: int | None = None
        self._arm_power = False
        self._arm_after = False
        self.crashes = 0
        self.power_losses = 0
        self.faults_enabled = True
        self.syncs = 0
        self.bytes_written = 0

    # ---------------------------------------------------------------- helpers

    def _targetable(self, name: str) -> bool:
        return self.faults_enabled and (self.fault_filter is None or self.fault_filter(name))

    def _log(self, kind: str, name: str, offset: int, length: int, durable: bool) -> None:
        self.faults.append(Fault(kind, name, offset, length, durable, self.op_index))
        self.fault_counts[kind] += 1

    def _inode(self, name: str) -> _Inode:
        ino = self._names.get(name)
        if ino is None:
            raise SimNotFoundError(errno.ENOENT, f"no such file: {name}")
        return self._inodes[ino]

    def _inode_or_create(self, name: str) -> _Inode:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad storage name {name!r}")
        ino = self._names.get(name)
        if ino is None:
            ino = self._next_inode
            self._next_inode += 1
            self._inodes[ino] = _Inode()
            self._names[name] = ino
        return self._inodes[ino]

    def _gc(self) -> None:
        live = set(self._names.values()) | set(self._durable_names.values())
        for ino in [i for i in self._inodes if i not in live]:
            del self._inodes[ino]

    def _enter(self) -> bool:
        """Start a mutating call: count it; returns True if an armed crash strikes after it.

        Raises SimCrash if the process is dead or the armed crash strikes before the call.
        """
        if self.dead:
            raise SimCrash(False)
        self.op_index += 1
        if self._arm_ops is None:
            return False
        self._arm_ops -= 1
        if self._arm_ops > 0:
            return False
        if self._arm_after:
            return True
        self._strike()
        return False  # unreachable: _strike raises

    def _strike(self) -> None:
        power = self._arm_power
        self._arm_ops = None
        self.dead = True
        if power:
            self.power_loss()
            self.dead = True
        else:
            self.crashes += 1
        raise SimCrash(power)

    def _pending_write(
        self, inode: _Inode, offset: int, data: bytes, intent: bytes | None = None
    ) -> None:
        op = _Op(offset, data, data if intent is None else intent)
        inode.pending.append(op)
        _apply(inode.cache, offset, op.data)
        _apply(inode.intent_cache, offset, op.intent)
        self.bytes_written += len(data)

    # ---------------------------------------------------------------- Storage API

    def list(self) -> builtins.list[str]:
        """Names of the files in the live directory, sorted."""
        if self.dead:
            raise SimCrash(False)
        return sorted(self._names)

    def size(self, name: str) -> int:
        """Size of ``name`` as the page cache shows it, bytes."""
        if self.dead:
            raise SimCrash(False)
        return len(self._inode(name).cache)

    def read(self, name: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of ``name`` from ``offset`` (page-cache view)."""
        if self.dead:
            raise SimCrash(False)
        assert offset >= 0 and length >= 0, (offset, length)
        inode = self._inode(name)
        if (
            self.rates.eio_read
            and self._targetable(name)
            and self.rng.random() < self.rates.eio_read
        ):
            self._log("eio_read", name, offset, length, False)
            raise StorageError(errno.EIO, f"read {name}: input/output error")
        return bytes(inode.cache[offset : offset + length])

    def append(self, name: str, data: bytes) -> None:
        """Append ``data`` to ``name`` (creating it), with possible write faults."""
        after = self._enter()
        inode = self._inode_or_create(name)
        self._write(name, inode, len(inode.cache), bytes(data))
        if after:
            self._strike()

    def write_at(self, name: str, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` of ``name`` (creating it), with possible faults."""
        assert offset >= 0, offset
        after = self._enter()
        inode = self._inode_or_create(name)
        self._write(name, inode, offset, bytes(data))
        if after:
            self._strike()

    def _write(self, name: str, inode: _Inode, offset: int, data: bytes) -> None:
        r = self.rates
        rng = self.rng
        if not data or not self._targetable(name):
            self._pending_write(inode, offset, data)
            return
        if rng.random() < r.enospc:
            self._log("enospc", name, offset, 0, False)
            raise StorageError(errno.ENOSPC, f"write {name}: no space left on device")
        if rng.random() < r.eio_write:
            self._log("eio_write", name, offset, 0, False)
            raise StorageError(errno.EIO, f"write {name}: input/output error")
        if rng.random() < r.short_write:
            keep = rng.randrange(len(data))
            self._pending_write(inode, offset, data[:keep])
            self._log("short_write", name, offset + keep, len(data) - keep, False)
            raise StorageError(errno.EIO, f"short write to {name}: {keep} of {len(data)} bytes")
        if rng.random() < r.misdirected_write and self._misdirect(name, inode, offset, data):
            return
        self._pending_write(inode, offset, data)

    def _misdirect(self, name: str, inode: _Inode, offset: int, data: bytes) -> bool:
        """The device puts ``data`` on durable bytes elsewhere; the target keeps stale bytes.

        Returns False (nothing injected) when no durable victim region exists.
        """
        rng = self.rng
        victims = [n for n in sorted(self._names) if self._targetable(n)]
        for _ in range(MAX_MISDIRECT_TRIES):
            if not victims:
                return False
            vname = rng.choice(victims)
            victim = self._inodes[self._names[vname]]
            span = min(len(victim.durable), len(victim.cache))
            if span <= 0:
                continue
            length = min(len(data), span)
            voff = rng.randrange(span - length + 1)
            if vname == name and voff == offset:
                continue
            victim.durable[voff : voff + length] = data[:length]
            victim.rebuild_cache()
            # The intended place keeps the stale content of the block: zeros if the write
            # extended the file, the old bytes otherwise.  That is a lost write, not
            # damage (the intent records it as such): only a read-back can notice it.
            old = bytes(inode.cache[offset : offset + len(data)])
            stale = old + bytes(len(data) - len(old))
            self._pending_write(inode, offset, stale)
            self._log("misdirected_write", vname, voff, length, True)
            return True
        return False

    def sync(self, name: str) -> None:
        """Make ``name``'s pending operations durable (fdatasync), with possible faults."""
        after = self._enter()
        inode = self._inode(name)
        if self._targetable(name):
            r = self.rates
            if self.rng.random() < r.slow_sync and self.clock is not None:
                delay_ns = self.rng.randrange(1, max(2, r.slow_sync_ns_max))
                self.clock.advance(delay_ns)
                self._log("slow_sync", name, 0, 0, False)
            if self.rng.random() < r.eio_sync:
                self._log("eio_sync", name, 0, 0, False)
                if inode.pending and self.rng.random() < r.sync_lost:
                    # Linux after a failed writeback: the pages are marked clean, so
                    # they stay readable (until evicted) but never reach the disk.
                    first = min(op.offset for op in inode.pending)
                    self._log("sync_lost", name, first, len(inode.cache) - first, False)
                    inode.pending.clear()
                raise StorageError(errno.EIO, f"fdatasync {name}: input/output error")
        for op in inode.pending:
            _apply(inode.durable, op.offset, op.data)
            _apply(inode.intent_durable, op.offset, op.intent)
        inode.pending.clear()
        self.syncs += 1
        if after:
            self._strike()

    def truncate(self, name: str, size: int) -> None:
        """Cut ``name`` to ``size`` bytes (creating it); durable after ``sync(name)``."""
        assert size >= 0, size
        after = self._enter()
        inode = self._inode_or_create(name)
        if size > len(inode.cache):
            self._pending_write(inode, len(inode.cache), bytes(size - len(inode.cache)))
        else:
            inode.pending.append(_Op(size, None, None))
            _apply(inode.cache, size, None)
            _apply(inode.intent_cache, size, None)
        if after:
            self._strike()

    def rename(self, src: str, dst: str) -> None:
        """Atomically move ``src`` over ``dst`` in the live directory."""
        after = self._enter()
        if src not in self._names:
            raise SimNotFoundError(errno.ENOENT, f"rename: no such file: {src}")
        if "/" in dst or dst in ("", ".", ".."):
            raise ValueError(f"bad storage name {dst!r}")
        self._names[dst] = self._names.pop(src)
        self._gc()
        if after:
            self._strike()

    def remove(self, name: str) -> None:
        """Delete ``name`` from the live directory."""
        after = self._enter()
        if name not in self._names:
            raise SimNotFoundError(errno.ENOENT, f"remove: no such file: {name}")
        del self._names[name]
        self._gc()
        if after:
            self._strike()

    def sync_dir(self) -> None:
        """Make the live directory durable."""
        after = self._enter()
        self._durable_names = dict(self._names)
        self._gc()
        self.syncs += 1
        if after:
            self._strike()

    # ---------------------------------------------------------------- simulation control

    def arm(self, ops: int, power_loss: bool, after: bool) -> None:
        """Strike a crash (or a power loss) inside the ``ops``-th mutating call from now.

        Parameters
        ----------
        ops : int
            1 = the next mutating call.
        power_loss : bool
            Power loss (drop unsynced data) instead of kill -9.
        after : bool
            Strike after the call took effect rather than before it.
        """
        assert ops >= 1, ops
        self._arm_ops = ops
        self._arm_power = power_loss
        self._arm_after = after

    def disarm(self) -> None:
        """Cancel an armed crash."""
        self._arm_ops = None

    @property
    def armed(self) -> bool:
        """True while a crash is armed and has not struck."""
        return self._arm_ops is not None

    def crash(self) -> None:
        """kill -9 of the process now: the disk (page cache included) is unchanged."""
        self.crashes += 1
        self.dead = True

    def restart(self) -> None:
        """A new process may use the disk again (after :meth:`crash` or :meth:`power_loss`)."""
        self.dead = False
        self._arm_ops = None

    def power_loss(self, rng: random.Random | None = None) -> None:
        """Drop the page cache: durable directory and content, plus a torn prefix of the rest.

        For each file a random prefix of its pending operations survives (often none);
        the first lost write may leave a prefix of its 512-byte sectors behind.
        """
        self.power_losses += 1
        self.dead = True
        rng = self.rng if rng is None else rng
        self._names = dict(self._durable_names)
        self._gc()
        for ino in sorted(self._inodes):
            inode = self._inodes[ino]
            pending = inode.pending
            inode.pending = []
            if pending:
                # Most power losses drop everything unsynced; some keep an in-order prefix.
                keep = 0 if rng.random() < 0.4 else rng.randrange(len(pending) + 1)
                for op in pending[:keep]:
                    _apply(inode.durable, op.offset, op.data)
                    _apply(inode.intent_durable, op.offset, op.intent)
                if keep < len(pending) and rng.random() < 0.7:
                    self._tear(ino, inode, pending[keep], rng)
            inode.cache = bytearray(inode.durable)
            inode.intent_cache = bytearray(inode.intent_durable)

    def _tear(self, ino: int, inode: _Inode, op: _Op, rng: random.Random) -> None:
        """Make a prefix of ``op``'s sectors durable (a torn write)."""
        if op.data is None or op.intent is None or not op.data:
            return
        start, end = op.offset, op.offset + len(op.data)
        cuts = list(range((start // SECTOR_BYTES + 1) * SECTOR_BYTES, end, SECTOR_BYTES))
        cut = rng_choice_or(rng, cuts, start)
        _apply(inode.durable, start, op.data[: cut - start])
        _apply(inode.intent_durable, start, op.intent[: cut - start])
        # Some file systems commit the new size before the data: the lost sectors read 0.
        if rng.random() < 0.3 and len(inode.durable) < end:
            inode.durable.extend(bytes(end - len(inode.durable)))
            inode.intent_durable.extend(bytes(end - len(inode.intent_durable)))
        name = self._name_of(ino)
        self._log("torn_write", name, cut, end - cut, False)

    def _name_of(self, ino: int) -> str:
        for n in sorted(self._names):
            if self._names[n] == ino:
                return n
        return f"<inode {ino}>"

    def flip_bits(self) -> Fault | None:
        """Flip 1..MAX_FLIP_BITS bits of one random durable sector of a targetable file.

        Returns the fault, or None if no targetable file holds durable bytes.
        """
        rng = self.rng
        names = [
            n
            for n in sorted(self._names)
            if self._targetable(n) and self._inodes[self._names[n]].durable
        ]
        if not names:
            return None
        name = rng.choice(names)
        inode = self._inodes[self._names[name]]
        offset = rng.randrange(len(inode.durable))
        sector = offset - offset % SECTOR_BYTES
        lo, hi = offset, offset
        for _ in range(rng.randint(1, MAX_FLIP_BITS)):
            pos = min(len(inode.durable) - 1, sector + rng.randrange(SECTOR_BYTES))
            inode.durable[pos] ^= 1 << rng.randrange(8)
            lo, hi = min(lo, pos), max(hi, pos)
        inode.rebuild_cache()
        self._log("bit_flip", name, lo, hi - lo + 1, True)
        return self.faults[-1]

    # ---------------------------------------------------------------- inspection

    def durable_size(self, name: str) -> int:
        """Durable size of the file the live directory calls ``name`` (0 if not durable)."""
        ino = self._names.get(name)
        return 0 if ino is None else len(self._inodes[ino].durable)

    def durable_names(self) -> builtins.list[str]:
        """Names in the durable directory, sorted."""
        return sorted(self._durable_names)

    def durable_content(self, name: str) -> bytes:
        """What ``name`` would hold after a power loss with nothing unsynced surviving."""
        ino = self._durable_names.get(name)
        if ino is None:
            raise SimNotFoundError(errno.ENOENT, f"not durable: {name}")
        return bytes(self._inodes[ino].durable)

    def damage(self, name: str) -> builtins.list[tuple[int, int]]:
        """Byte ranges of ``name`` (page-cache view) that faults damaged, half-open."""
        inode = self._inode(name)
        return _diff_ranges(inode.cache, inode.intent_cache)

    def intended_content(self, name: str) -> bytes:
        """What ``name`` would hold (page-cache view) had no fault damaged it."""
        return bytes(self._inode(name).intent_cache)

    def damaged_files(self) -> builtins.list[str]:
        """Names of the live files holding damage, sorted."""
        return [n for n in sorted(self._names) if self.damage(n)]

    def pending_ops(self, name: str) -> int:
        """Number of unsynced operations of ``name``."""
        return len(self._inode(name).pending)

    def clone(self) -> SimDisk:
        """An independent copy of the disk (content and directories), with no faults."""
        other = SimDisk(random.Random(0))
        other._inodes = {i: n.clone() for i, n in self._inodes.items()}
        other._names = dict(self._names)
        other._durable_names = dict(self._durable_names)
        other._next_inode = self._next_inode
        other.faults_enabled = False
        return other

    def faults_since(self, index: int) -> builtins.list[Fault]:
        """Faults logged after the first ``index`` ones."""
        return self.faults[index:]


def rng_choice_or(rng: random.Random, items: list[int], default: int) -> int:
    """A random element of ``items`` or ``default`` (also a candidate) when drawing."""
    k = rng.randrange(len(items) + 1)
    return default if k == len(items) else items[k]
