"""Recovery: the newest valid snapshot plus the journal tail.

``recover`` is the only way a core comes back after a crash or power loss, in
production (``Sequencer.open``), in ``bursa replay`` and in the simulator.  It

1. removes leftover snapshot temp files (an interrupted snapshot write);
2. loads the newest snapshot that validates, falling back to older ones, or
   starts from an empty core;
3. replays every journal batch after the snapshot's seq through ``core.apply``,
   handing the events to ``on_events`` so subscribers' logs can be rebuilt;
4. repairs a torn tail (truncate) or a torn trailer of a complete last batch
   (rewrite), logs it, and syncs the last segment so that everything applied is
   durable before new commands are acknowledged on top of it.

Damage inside the durable prefix raises :class:`~engine.journal.JournalCorrupt`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engine import variants as variants_mod
from engine.corelike import CoreClass, CoreLike, default_core_class
from engine.journal import JournalReader, TailDamage, repair_tail
from engine.snapshot import SNAPSHOT_PREFIX, TEMP_SUFFIX, load_newest
from engine.storage import Storage

log = logging.getLogger("bursa.recovery")

#: Broken variant (simulator self-test): accept journal records without checking CRCs.
VARIANT_SKIP_CRC = variants_mod.SKIP_CRC

EventSink = Callable[[npt.NDArray[np.void]], None]


@dataclass
class RecoveryReport:
    """What recovery found and did (for logs, the simulator's oracles and tests)."""

    snapshot_seq: int = 0
    snapshot_name: str | None = None
    snapshots_rejected: list[tuple[str, str]] = field(default_factory=list)
    temp_files_removed: list[str] = field(default_factory=list)
    segments_read: list[str] = field(default_factory=list)
    batches_replayed: int = 0
    commands_replayed: int = 0
    last_seq: int = 0
    last_ts_ns: int = 0
    tail_damage: TailDamage | None = None
    tail_repaired: bool = False
    tail_segment: str | None = None
    tail_size: int = 0

    def summary(self) -> str:
        """One line for the log."""
        parts = [
            f"recovered to seq {self.last_seq}",
            f"snapshot {self.snapshot_name or 'none'} (seq {self.snapshot_seq})",
            f"replayed {self.commands_replayed} commands in {self.batches_replayed} batches",
        ]
        if self.snapshots_rejected:
            parts.append(f"rejected snapshots {[n for n, _ in self.snapshots_rejected]}")
        if self.tail_damage is not None:
            d = self.tail_damage
            what = "repaired" if self.tail_repaired else "left as is"
            parts.append(f"tail {d.kind} in {d.segment} at byte {d.offset} {what}: {d.reason}")
        return "; ".join(parts)


def recover(
    storage: Storage,
    *,
    variants: frozenset[str] = frozenset(),
    on_events: EventSink | None = None,
    core_cls: CoreClass | None = None,
    repair: bool = True,
    use_snapshots: bool = True,
    include_archived: bool = False,
) -> tuple[CoreLike, RecoveryReport]:
    """Rebuild the core from ``storage``.

    Parameters
    ----------
    storage : Storage
        The data directory (journal segments and snapshots).
    variants : frozenset of str
        Broken variants (simulator self-test only); passed on to the core.
    on_events : callable, optional
        Called with the EV_DTYPE events of every replayed batch, in order.  The
        array is only valid during the call.
    core_cls : CoreClass, optional
        The state machine class (default ``engine.core.Core``).
    repair : bool
        Truncate a torn tail, rewrite a torn trailer, remove snapshot temp files
        and sync the last segment.  False for read-only replays (``bursa replay``,
        a standby reading shipped segments).
    use_snapshots : bool
        False replays from seq 1 (from scratch), ignoring snapshots.
    include_archived : bool
        Also read archived segments (from-scratch replays).

    Returns
    -------
    (core, RecoveryReport)

    Raises
    ------
    JournalCorrupt
        Damage inside the durable prefix, a missing segment, or a journal that
        does not reach the snapshot it must continue.
    """
    cls = core_cls if core_cls is not None else default_core_class()
    report = RecoveryReport()
    if repair:
        report.temp_files_removed = _remove_temp_files(storage)
    core: CoreLike | None = None
    # The core knows only its own broken variants; the durability ones act here.
    for_core = variants_mod.core_variants(variants)
    if use_snapshots:
        core, name, report.snapshots_rejected = load_newest(storage, cls, for_core)
        report.snapshot_name = name
    if core is None:
        core = cls(variants=for_core)
    report.snapshot_seq = core.last_seq
    reader = JournalReader(
        storage, verify=VARIANT_SKIP_CRC not in variants, include_archived=include_archived
    )
    for batch, cmds in reader.batches(after_seq=core.last_seq):
        events, _replies = core.apply(cmds)
        assert core.last_seq == batch.last_seq, (core.last_seq, batch.last_seq)
        if on_events is not None:
            on_events(events)
        report.batches_replayed += 1
        report.commands_replayed += batch.count
    report.segments_read = reader.segments_read
    report.last_ts_ns = reader.last_ts_ns
    report.last_seq = core.last_seq
    tail = reader.tail
    if tail is not None:
        report.tail_segment = tail.name
        report.tail_size = tail.end
        report.tail_damage = tail.damage
        if repair:
            if tail.damage is not None:
                repair_tail(storage, tail.damage)
                report.tail_repaired = True
            # What was just applied may sit only in the page cache (a crash after a
            # failed sync), and the last segment's name may never have been made
            # durable (a crash between its first append and the directory sync):
            # make both durable before anything is acknowledged on top of them.
            # (Linux's fsyncgate behaviour, where a failed fdatasync leaves the pages
            # clean, is not covered by this plain sync: see docs/testing.md.)
            storage.sync(tail.name)
            storage.sync_dir()
    log.info("%s", report.summary())
    return core, report


def _remove_temp_files(storage: Storage) -> list[str]:
    temps = [n for n in storage.list() if n.startswith(SNAPSHOT_PREFIX) and n.endswith(TEMP_SUFFIX)]
    for name in temps:
        storage.remove(name)
        log.warning("removed %s left by an interrupted snapshot", name)
    if temps:
        storage.sync_dir()
    return temps
