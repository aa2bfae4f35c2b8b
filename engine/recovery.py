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
A journal that ends before what anything durable says it reached (the
high-water record of :mod:`engine.highwater`, a snapshot's name, or the
caller's evidence such as the event log) raises :class:`JournalLoss` before
anything is repaired, unless the operator accepted the loss explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engine import variants as variants_mod
from engine.corelike import CoreClass, CoreLike, default_core_class
from engine.eventlog import split_event_frames
from engine.highwater import HighWater, read_high_water
from engine.journal import (
    JournalCorrupt,
    JournalReader,
    TailDamage,
    is_rewrite_temp,
    repair_tail,
    rewrite_segment,
)
from engine.snapshot import SNAPSHOT_PREFIX, TEMP_SUFFIX, list_snapshots, load_newest
from engine.storage import Storage
from engine.wire.frames import encode_event_frame

log = logging.getLogger("bursa.recovery")

#: Broken variant (simulator self-test): accept journal records without checking CRCs.
VARIANT_SKIP_CRC = variants_mod.SKIP_CRC

EventSink = Callable[[npt.NDArray[np.void]], None]

#: Prefix given to snapshot files beyond an accepted journal loss (kept, ignored).
LOST_PREFIX = "lost-"


class JournalLoss(JournalCorrupt):
    """The journal ends before a seq that durable evidence says it reached.

    Acknowledged commands are missing (a newest segment deleted or cut while the
    core was down): recovery refuses instead of starting on the shorter journal.

    Parameters
    ----------
    last_seq : int
        Where the journal (plus snapshot) ends now.
    known_seq : int
        The highest seq the evidence proves was durable.
    evidence : str
        Which records say so.
    """

    def __init__(self, last_seq: int, known_seq: int, evidence: str) -> None:
        self.segment = ""
        self.batch_index = -1
        self.seq = last_seq + 1
        self.offset = -1
        self.last_seq = last_seq
        self.known_seq = known_seq
        self.reason = (
            f"the journal ends at seq {last_seq} but {evidence} shows seq {known_seq} was "
            f"durable: acknowledged commands {last_seq + 1}..{known_seq} are missing "
            f"(a deleted or cut journal segment?)"
        )
        Exception.__init__(
            self,
            f"journal loss: {self.reason}. Refusing to start: restore the missing segments "
            f"(e.g. from a replica) into the data directory; only if that is impossible, "
            f"start with --accept-journal-loss to continue from seq {last_seq} "
            f"(commands {last_seq + 1}..{known_seq} are then lost for good).",
        )


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
    known_seq: int = 0
    journal_loss_accepted: bool = False
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
    known_seq: int = 0,
    accept_journal_loss: bool = False,
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
    known_seq : int
        A seq the caller knows was durable (the server's event log in ``fsync``
        mode); with the high-water record and the snapshots' names it is the
        evidence the journal must reach (checked only when ``repair``).
    accept_journal_loss : bool
        Operator override: start on a journal shorter than the evidence (after
        restoring what could be restored), logging the loss and lowering the
        high-water record to the new end.

    Returns
    -------
    (core, RecoveryReport)

    Raises
    ------
    JournalCorrupt
        Damage inside the durable prefix, a missing segment, or a journal that
        does not reach the snapshot it must continue.
    JournalLoss
        The journal ends before the evidence (``repair`` only; nothing changed).
    """
    cls = core_cls if core_cls is not None else default_core_class()
    report = RecoveryReport()
    if repair:
        report.temp_files_removed = _remove_temp_files(storage)
    core: CoreLike | None = None
    # The core knows only its own broken variants; the durability ones act here.
    for_core = variants_mod.core_variants(variants_mod.check(variants))
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
    if repair:
        _check_reach(storage, report, known_seq, accept_journal_loss)
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
            # failed sync; after a failed fdatasync Linux may even have marked those
            # pages clean, so a plain sync would write nothing: "fsyncgate"), and
            # the last segment's name may never have been made durable (a crash
            # between its first append and the directory sync): rewrite the segment
            # through a new file and rename it into place, before anything is
            # acknowledged on top of it.
            rewrite_segment(storage, tail.name, tail.end)
    log.info("%s", report.summary())
    return core, report


def _check_reach(storage: Storage, report: RecoveryReport, known_seq: int, accept: bool) -> None:
    """Refuse (JournalLoss) when durable evidence says the journal reached further."""
    evidence = [(read_high_water(storage), "the high-water record journal.hwm")]
    snaps = list_snapshots(storage)
    if snaps:
        evidence.append((snaps[-1][0], f"snapshot file {snaps[-1][1]}"))
    evidence.append((known_seq, "the event log"))
    known, what = max(evidence)
    report.known_seq = known
    if report.last_seq >= known:
        return
    loss = JournalLoss(report.last_seq, known, what)
    if not accept:
        raise loss
    log.critical("ACCEPTED BY THE OPERATOR (--accept-journal-loss): %s", loss.reason)
    report.journal_loss_accepted = True
    HighWater(storage).reset(report.last_seq)
    # A snapshot beyond the new end could not be loaded (it would have been): keep
    # it for inspection under a name recovery ignores, so the next start proceeds.
    for seq, name in snaps:
        if seq > report.last_seq:
            storage.rename(name, LOST_PREFIX + name)
            log.critical("renamed unusable snapshot %s to %s", name, LOST_PREFIX + name)
    storage.sync_dir()


def _remove_temp_files(storage: Storage) -> list[str]:
    temps = [
        n
        for n in storage.list()
        if (n.startswith(SNAPSHOT_PREFIX) and n.endswith(TEMP_SUFFIX)) or is_rewrite_temp(n)
    ]
    for name in temps:
        storage.remove(name)
        log.warning("removed %s left by an interrupted snapshot or segment rewrite", name)
    if temps:
        storage.sync_dir()
    return temps


def regenerate_events(
    storage: Storage,
    first_seq: int,
    last_seq: int,
    *,
    max_frame_events: int,
    core_cls: CoreClass | None = None,
) -> Iterator[bytes]:
    """Event frames covering commands ``first_seq..last_seq``, regenerated from the journal.

    The core is deterministic, so a from-scratch replay of the journal (archived
    segments included) yields the events that were published; this is how a
    damaged sealed event-log segment is rebuilt.  Nothing is written and the
    replay stops after ``last_seq``.  Frames follow each other without gaps
    (``first == previous last + 1``) and are cut at ``max_frame_events``.

    Raises
    ------
    JournalCorrupt
        The journal does not reach ``last_seq`` (or is damaged before it).
    """
    assert 0 < first_seq <= last_seq and max_frame_events > 0
    cls = core_cls if core_cls is not None else default_core_class()
    core = cls(variants=frozenset())
    reader = JournalReader(storage, verify=True, include_archived=True)
    upto = first_seq - 1
    for batch, cmds in reader.batches(after_seq=0):
        events, _replies = core.apply(cmds)
        if batch.last_seq < first_seq:
            continue
        hi = min(batch.last_seq, last_seq)
        seqs = events["seq"]
        keep = events[(seqs > upto) & (seqs <= hi)]
        for a, b, ev in split_event_frames(upto + 1, hi, keep, max_frame_events):
            yield encode_event_frame(a, b, ev.tobytes())
        upto = hi
        if upto == last_seq:
            return
    reason = f"the journal ends at seq {upto}: cannot regenerate events to {last_seq}"
    raise JournalCorrupt("", -1, upto + 1, -1, reason)
