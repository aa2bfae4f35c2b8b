"""``bursa sim --seed N``: one deterministic simulation of the core on a faulty disk.

:func:`simulate` drives the real write path (``engine.sequencer.Sequencer`` in
``fsync`` mode: journal, snapshots, recovery) and the real state machine
(``engine.core.Core``) on a :class:`sim.disk.SimDisk` with a
:class:`engine.clock.ManualClock`.  Everything comes from the seed: the world and the
command stream (:mod:`sim.workload`), the fault profile (kinds and rates of faults,
snapshot interval, segment size, batch sizes) and every fault decision.  Crashes and
power losses strike between batches or inside a storage call; after each the core
comes back through ``Sequencer.open`` (the normal recovery code) and the run goes
on, with the client retrying the batch it got no answer for.

Oracles (checked here, not read from logs):

a. every acknowledged command is applied after recovery, exactly once, with the
   reply it was acknowledged with: a reference core (no broken variant) applies the
   acknowledged batches, and after recovery the recovered state must equal it plus,
   at most, the whole batch that was in flight (never a part of it);
   :class:`sim.model.FundingModel` checks every deposit, withdrawal hold, commit and
   release reply from references and ids alone (a duplicated input has one effect);
b. the state after recovery equals a from-scratch replay of the journal (a copy of
   the disk recovered with snapshots ignored and archived segments read);
c. after every batch: ``conservation_errors`` (given the model's deposits minus
   withdrawals per asset) is empty, so no balance is negative and money adds up,
   and no book is crossed at rest;
d. recovery truncates and logs a torn tail; ``JournalCorrupt`` is raised only
   when the disk really holds damage (it ends the run as "stopped on
   corruption", an expected outcome); damage inside a journal record that
   recovery replayed is never accepted silently.

A violated oracle stops the run; the result names the oracle and the number of
the command (in submission order) where it was seen.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import random
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bursa_wire.layout import CMD_SIZE
from engine import variants as variants_mod
from engine.clock import ManualClock
from engine.corelike import CoreClass, CoreLike, default_core_class
from engine.journal import (
    HEADER_SIZE,
    JournalCorrupt,
    JournalWriteError,
    is_rewrite_temp,
    parse_segment_name,
    scan_segment,
)
from engine.recovery import RecoveryReport, recover
from engine.sequencer import Sequencer
from engine.snapshot import SNAPSHOT_PREFIX, SnapshotWriteError
from engine.storage import StorageError
from sim.disk import FAULT_KINDS, FaultRates, SimCrash, SimDisk
from sim.model import FundingModel
from sim.workload import Workload

Cmds = npt.NDArray[np.void]

DEFAULT_COMMANDS = 400
"""Commands per seed when ``--commands`` is not given (retries included)."""

MAX_RECOVERY_ATTEMPTS = 12
"""Recovery attempts after one failure (each may itself crash or hit an I/O error)."""

BATCH_GAP_NS_MAX = 5_000_000
"""Upper bound of the simulated time between two batches (ns)."""

MAX_BATCHES_FACTOR = 4
"""Bound on the main loop: at most this many batches per command to submit."""

SEQUENCER_ERRORS = (JournalWriteError, StorageError)
"""What a submit may raise on a storage failure: the batch is not acknowledged."""

PROFILES: tuple[tuple[str, int], ...] = (
    ("calm", 8),
    ("crashes", 12),
    ("power", 18),
    ("bit_flips", 14),
    ("misdirected", 8),
    ("write_errors", 8),
    ("sync_errors", 8),
    ("slow", 4),
    ("mixed", 20),
)
"""Fault profiles and their weights: each seed draws one."""


@dataclass
class Profile:
    """The fault plan of one seed (probabilities per batch unless stated)."""

    name: str
    rates: FaultRates = field(default_factory=FaultRates)
    p_arm: float = 0.0
    """Arm a crash inside the next submit's storage calls."""
    p_arm_power: float = 0.0
    """Of armed crashes, the share that are power losses."""
    p_crash_rest: float = 0.0
    """kill -9 between batches."""
    p_power_rest: float = 0.0
    """Power loss between batches."""
    p_flip: float = 0.0
    """Bit flip at rest between batches."""
    p_recovery_crash: float = 0.0
    """Arm a crash inside a recovery."""
    snapshot_every_cmds: int = 1000
    snapshot_every_ns: int = 10**12
    p_snapshot_request: float = 0.0
    """An operator asks for a snapshot between batches."""
    segment_bytes: int = 1 << 20
    max_batch: int = 16
    p_retry: float = 0.8
    """The client retries a batch it got no answer for."""
    overlap_sync: bool = False
    """The sequencer overlaps the fdatasync with core.apply (helper thread, big batches)."""


def _intensity(rng: random.Random) -> float:
    """A log-uniform rate multiplier: some seeds see a few faults, others many."""
    return float(10 ** rng.uniform(-1.3, 0.0))


def draw_profile(rng: random.Random) -> Profile:
    """The fault profile of a seed, drawn from its own random stream."""
    total = sum(w for _, w in PROFILES)
    x = rng.randrange(total)
    name = PROFILES[-1][0]
    for n, w in PROFILES:
        if x < w:
            name = n
            break
        x -= w
    k = _intensity(rng)
    p = Profile(name)
    p.snapshot_every_cmds = rng.choice((10, 25, 50, 100, 10**9))
    p.segment_bytes = rng.choice((1024, 2048, 4096, 1 << 20))
    p.snapshot_every_ns = rng.choice((50_000_000, 1_000_000_000, 10**12))
    p.p_snapshot_request = rng.choice((0.0, 0.02, 0.1))
    p.max_batch = rng.choice((1, 2, 4, 8, 16, 32))
    p.p_retry = rng.choice((0.0, 0.8, 1.0))
    r = p.rates
    if name == "crashes":
        p.p_arm, p.p_crash_rest, p.p_recovery_crash = 0.3 * k, 0.2 * k, 0.2 * k
    elif name == "power":
        p.p_arm, p.p_arm_power = 0.3 * k, 0.8
        p.p_power_rest, p.p_crash_rest, p.p_recovery_crash = 0.2 * k, 0.02, 0.1 * k
    elif name == "bit_flips":
        p.p_flip, p.p_crash_rest, p.p_power_rest = 0.3 * k, 0.05, 0.05
    elif name == "misdirected":
        r.misdirected_write = 0.15 * k
        p.p_crash_rest, p.p_power_rest = 0.05, 0.05
    elif name == "write_errors":
        r.short_write, r.enospc, r.eio_write = 0.1 * k, 0.1 * k, 0.1 * k
        r.eio_read = 0.05 * k
        p.p_power_rest = 0.05
    elif name == "sync_errors":
        r.eio_sync = 0.25 * k
        p.p_power_rest, p.p_arm, p.p_arm_power = 0.05, 0.05, 0.5
    elif name == "slow":
        r.slow_sync = 0.6 * k
        p.p_crash_rest = 0.05
    elif name == "mixed":
        r.short_write, r.enospc, r.eio_write = 0.02 * k, 0.02 * k, 0.02 * k
        r.misdirected_write, r.eio_sync, r.slow_sync = 0.03 * k, 0.05 * k, 0.2 * k
        r.eio_read = 0.01 * k
        p.p_arm, p.p_arm_power, p.p_flip = 0.15 * k, 0.5, 0.1 * k
        p.p_crash_rest, p.p_power_rest, p.p_recovery_crash = 0.05 * k, 0.08 * k, 0.1 * k
    # Drawn last so that adding them left every earlier draw of a seed unchanged.
    p.overlap_sync = rng.random() < 0.3
    if rng.random() < 0.15:
        p.max_batch = 320  # group commits big enough for the overlapped sync
    return p


def is_fault_target(name: str) -> bool:
    """Journal segments (live or archived, and recovery's rewrite copies) and snapshots
    take faults; nothing else does."""
    return (
        parse_segment_name(name, include_archived=True) is not None
        or is_rewrite_temp(name)
        or name.startswith(SNAPSHOT_PREFIX)
    )


@dataclass(frozen=True)
class Violation:
    """The first oracle a run violated."""

    oracle: str
    command_index: int
    detail: str


@dataclass
class SimResult:
    """What one seed did and found (all counts are of this run)."""

    seed: int
    commands_target: int
    profile: str = ""
    variants: tuple[str, ...] = ()
    lost_sync: bool = True
    read_errors: bool = False
    commands_submitted: int = 0
    commands_acked: int = 0
    batches: int = 0
    crashes: int = 0
    power_losses: int = 0
    recoveries: int = 0
    tails_repaired: int = 0
    snapshots_rejected: int = 0
    retries: int = 0
    in_doubt_recovered: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    oracle_checks: int = 0
    acked_lost: int = 0
    outcome: str = "ok"
    """``ok``, ``stopped_on_corruption`` (JournalCorrupt on real damage) or ``violation``."""
    corruption: str = ""
    violation: Violation | None = None
    last_seq: int = 0
    state_hash: str = ""
    trace: list[str] = field(default_factory=list)


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """Ends the run (violation or corruption): the result already says why."""


class Simulation:
    """One seed's run; use :func:`simulate`."""

    def __init__(
        self,
        seed: int,
        commands: int,
        variants: frozenset[str] = frozenset(),
        core_cls: CoreClass | None = None,
        trace: bool = False,
        lost_sync: bool = True,
        read_errors: bool = False,
    ) -> None:
        self.seed = seed
        self.target = commands
        # A clear error up front when this build lacks a variant (the production
        # build has none: engine/variants.py).
        self.variants = variants_mod.check(variants)
        self.core_cls: CoreClass = _CoreVariants(
            core_cls if core_cls is not None else default_core_class()
        )
        self.tracing = trace
        self.rng_profile = random.Random(f"bursa-sim:{seed}:profile")
        self.rng_sched = random.Random(f"bursa-sim:{seed}:schedule")
        self.profile = draw_profile(self.rng_profile)
        if lost_sync:
            self.profile.rates.sync_lost = 1.0
        if not read_errors:
            self.profile.rates.eio_read = 0.0
        self.workload = Workload(random.Random(f"bursa-sim:{seed}:workload"))
        self.clock = ManualClock()
        self.disk = SimDisk(
            random.Random(f"bursa-sim:{seed}:disk"),
            self.clock,
            self.profile.rates,
            is_fault_target,
        )
        self.result = SimResult(
            seed, commands, self.profile.name, tuple(sorted(variants)), lost_sync, read_errors
        )
        self.reference: CoreLike = self.core_cls()
        self.model = FundingModel()
        self.seq: Sequencer | None = None
        self.acked_seq = 0
        self.in_doubt: Cmds | None = None
        # The reference state and model before each in-flight batch that a recovery
        # brought back since the last acknowledgement: such a batch was never
        # acknowledged, so a later power loss may still take it away.
        self.absorbed: list[tuple[bytes, FundingModel]] = []
        self.queue: deque[Cmds] = deque()
        self.submitted = 0
        self.logs: list[str] = []

    # ----------------------------------------------------------------- helpers

    def _trace(self, msg: str) -> None:
        if self.tracing:
            self.result.trace.append(f"[{self.submitted}] {msg}")

    def _fail(self, oracle: str, detail: str, command_index: int | None = None) -> None:
        index = self.submitted if command_index is None else command_index
        self.result.violation = Violation(oracle, index, detail)
        self.result.outcome = "violation"
        self._trace(f"VIOLATION {oracle}: {detail}")
        raise _Stop

    def _check(self, ok: bool, oracle: str, detail: Callable[[], str]) -> None:
        self.result.oracle_checks += 1
        if not ok:
            self._fail(oracle, detail())

    def _open(self) -> Sequencer:
        p = self.profile
        return Sequencer.open(
            self.disk,
            self.clock,
            mode="fsync",
            snapshot_every_cmds=p.snapshot_every_cmds,
            snapshot_every_ns=p.snapshot_every_ns,
            segment_bytes=p.segment_bytes,
            overlap_sync=p.overlap_sync,
            variants=self.variants,
            core_cls=self.core_cls,
        )

    # ---------------------------------------------------------------- the run

    def run(self) -> SimResult:
        """Run the seed to its end (or its first violation)."""
        # The code under test logs every repaired tail and failed write: collect the
        # messages (an oracle reads them) instead of printing them.
        logger = logging.getLogger("bursa")
        handler = _ListHandler(self.logs)
        saved = (logger.level, logger.propagate)
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False
        try:
            self._recover(first=True)
            for batch in self.workload.setup():
                self._submit_until_acked(batch)
            self._main_loop()
            self._finish()
        except _Stop:
            pass
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]
        r = self.result
        r.faults = {k: self.disk.fault_counts.get(k, 0) for k in FAULT_KINDS}
        r.crashes = self.disk.crashes
        r.power_losses = self.disk.power_losses
        if self.seq is not None:
            r.last_seq = self.seq.core.last_seq
            r.state_hash = self.seq.core.state_hash().hex()
            # The run is over: the process goes away (and with it any helper thread).
            self.disk.crash()
            self._drop(self.seq)
            self.seq = None
        return r

    def _main_loop(self) -> None:
        p = self.profile
        rng = self.rng_sched
        max_batches = MAX_BATCHES_FACTOR * self.target + 16
        for _ in range(max_batches):
            if self.submitted >= self.target:
                return
            if rng.random() < p.p_flip:
                f = self.disk.flip_bits()
                if f is not None:
                    self._trace(f"bit flip {f.name}@{f.offset}+{f.length}")
            if rng.random() < p.p_power_rest:
                self._trace("power loss at rest")
                self.disk.power_loss()
                self._recover()
            elif rng.random() < p.p_crash_rest:
                self._trace("crash at rest")
                self.disk.crash()
                self._recover()
            if rng.random() < p.p_snapshot_request:
                self._snapshot_request()
            # Time passes between batches (time-based snapshots, timestamps).
            self.clock.advance(rng.randrange(BATCH_GAP_NS_MAX))
            self._submit_one(self._next_batch())

    def _snapshot_request(self) -> None:
        """An operator's snapshot request (the core process's control request)."""
        seq = self.seq
        assert seq is not None
        if self.rng_sched.random() < self.profile.p_arm:
            self.disk.arm(self.rng_sched.randint(1, 6), power_loss=True, after=False)
        try:
            name = seq.snapshot()
            self._trace(f"snapshot on request: {name}")
        except SimCrash as e:
            self._trace(f"{'power loss' if e.power_loss else 'crash'} inside a snapshot")
            self._recover()
        except (SnapshotWriteError, *SEQUENCER_ERRORS) as e:
            # A failed snapshot is harmless: the journal still holds everything.
            self._trace(f"snapshot on request failed: {e!r}")
        except Exception as e:
            self._fail("snapshot_error", f"snapshot raised {e!r}")
        finally:
            self.disk.disarm()

    def _next_batch(self) -> Cmds:
        rng = self.rng_sched
        n = rng.randint(1, self.profile.max_batch)
        parts: list[Cmds] = []
        while self.queue and n > 0:
            head = self.queue.popleft()
            parts.append(head[:n])
            if len(head) > n:
                self.queue.appendleft(head[n:])
            n -= len(parts[-1])
        if n > 0:
            parts.append(self.workload.commands(n))
        return np.ascontiguousarray(np.concatenate(parts))

    def _submit_until_acked(self, batch: Cmds) -> None:
        """Set-up batches: resubmitted (like a retrying client) until acknowledged."""
        self.queue.append(batch)
        for _ in range(MAX_RECOVERY_ATTEMPTS * 4):
            if not self.queue:
                return
            b = self.queue.popleft()
            self._submit_one(b, retry_always=True)
        self._fail("liveness", "set-up batch never acknowledged")

    def _submit_one(self, batch: Cmds, retry_always: bool = False) -> None:
        p = self.profile
        rng = self.rng_sched
        seq = self.seq
        assert seq is not None
        original = batch.copy()
        if rng.random() < p.p_arm:
            power = rng.random() < p.p_arm_power
            self.disk.arm(rng.randint(1, 6), power_loss=power, after=rng.random() < 0.5)
        self.result.batches += 1
        self.submitted += len(batch)
        self.result.commands_submitted += len(batch)
        try:
            _events, replies = seq.submit(batch)
        except SimCrash as e:
            self._trace(f"{'power loss' if e.power_loss else 'crash'} inside submit")
            self._in_flight_failed(batch, original, retry_always)
            return
        except SEQUENCER_ERRORS as e:
            self._trace(f"submit failed: {e!r}")
            self.disk.disarm()
            self.disk.crash()  # the core treats a journal failure as fatal and restarts
            self._in_flight_failed(batch, original, retry_always)
            return
        except Exception as e:
            self._fail("submit_error", f"submit raised {e!r}")
        finally:
            self.disk.disarm()
        self._acked(batch, replies)

    def _in_flight_failed(self, stamped: Cmds, original: Cmds, retry_always: bool) -> None:
        self.in_doubt = stamped.copy()
        self._recover()
        if retry_always or self.rng_sched.random() < self.profile.p_retry:
            self.result.retries += len(original)
            self.queue.appendleft(original)

    # ---------------------------------------------------------------- acks

    def _acked(self, batch: Cmds, replies: Cmds) -> None:
        assert self.seq is not None
        n = len(batch)
        first = self.submitted - n
        self.result.commands_acked += n
        self.acked_seq = int(batch["seq"][-1])
        self.absorbed.clear()
        _ev, ref_replies = self.reference.apply(batch.copy())
        if replies.tobytes() != ref_replies.tobytes():
            i = int(np.flatnonzero(replies != ref_replies)[0])
            self._fail(
                "a:acked_reply",
                f"acknowledged reply of seq {int(batch['seq'][i])} "
                f"(kind {int(batch['kind'][i])}) is {_reply_str(replies[i])}, "
                f"the reference core says {_reply_str(ref_replies[i])}",
                first + i,
            )
        self.result.oracle_checks += 1
        problem = self.model.observe(batch, replies)
        self._check(problem is None, "a:duplicate_effect", lambda: str(problem))
        self._check_invariants(self.seq.core)
        ours, theirs = self.seq.core.state_hash(), self.reference.state_hash()
        self._check(
            ours == theirs,
            "a:state_diverged",
            lambda: (
                f"state hash {ours.hex()} != reference {theirs.hex()} after seq {self.acked_seq}"
            ),
        )

    def _check_invariants(self, core: CoreLike) -> None:
        errors = _conservation_errors(core, self.model.net_minor)
        self._check(not errors, "c:conservation", lambda: "; ".join(errors[:3]))
        crossed = _crossed_books(core)
        self._check(not crossed, "c:crossed_book", lambda: "; ".join(crossed[:3]))

    # ---------------------------------------------------------------- recovery

    def _recover(self, first: bool = False) -> None:
        """Restart the process on the disk as it is now, then check every oracle."""
        if self.seq is not None:
            self._drop(self.seq)
        self.seq = None
        for attempt in range(MAX_RECOVERY_ATTEMPTS):
            self.disk.restart()
            damaged = self._journal_damage()
            sizes = {n: self.disk.size(n) for n in self.disk.list()}
            self.logs.clear()
            if not first and self.rng_sched.random() < self.profile.p_recovery_crash:
                power = self.rng_sched.random() < self.profile.p_arm_power
                self.disk.arm(self.rng_sched.randint(1, 4), power_loss=power, after=True)
            try:
                seq = self._open()
            except SimCrash as e:
                self._trace(f"{'power loss' if e.power_loss else 'crash'} inside recovery")
                continue
            except JournalCorrupt as e:
                self._corrupt(e, damaged)
            except SEQUENCER_ERRORS as e:
                self._trace(f"recovery attempt {attempt} failed: {e!r}")
                self.disk.disarm()
                self.disk.crash()
                continue
            except Exception as e:
                self._fail("recovery_error", f"recovery raised {e!r}")
            finally:
                self.disk.disarm()
            self.seq = seq
            self.result.recoveries += 1
            self._trace(seq.report.summary())
            self._check_recovered(seq, damaged, sizes)
            return
        self._fail("liveness", f"no successful recovery in {MAX_RECOVERY_ATTEMPTS} attempts")

    def _drop(self, seq: Sequencer) -> None:
        """Let go of a dead process's sequencer: stop its helper thread, no I/O.

        The disk is dead (crashed or powered off) here, so any storage call the close
        attempts raises SimCrash and changes nothing.
        """
        assert self.disk.dead
        try:
            seq.close()
        except (SimCrash, *SEQUENCER_ERRORS):
            pass

    def _journal_damage(self) -> dict[str, list[tuple[int, int]]]:
        """Damage (byte ranges) in each journal segment and snapshot before recovery."""
        out: dict[str, list[tuple[int, int]]] = {}
        for name in self.disk.list():
            if is_fault_target(name):
                ranges = self.disk.damage(name)
                if ranges:
                    out[name] = ranges
        return out

    def _corrupt(self, e: JournalCorrupt, damaged: dict[str, list[tuple[int, int]]]) -> None:
        self.result.oracle_checks += 1
        # Legitimate when the segment it names is damaged, or when a damaged snapshot
        # sent recovery back to an older one whose journal was archived.
        snapshot_damaged = any(n.startswith(SNAPSHOT_PREFIX) for n in damaged)
        if e.segment not in damaged and not snapshot_damaged:
            where = ", ".join(sorted(damaged)) or "nowhere"
            self._fail("d:false_corruption", f"JournalCorrupt but the damage is {where}: {e}")
        self.result.outcome = "stopped_on_corruption"
        self.result.corruption = str(e)
        self._trace(f"stopped on corruption: {e}")
        raise _Stop

    def _check_recovered(
        self, seq: Sequencer, damaged: dict[str, list[tuple[int, int]]], sizes: dict[str, int]
    ) -> None:
        core, report = seq.core, seq.report
        if report.tail_repaired:
            self.result.tails_repaired += 1
        self._check_tail(report, sizes)
        self.result.snapshots_rejected += len(report.snapshots_rejected)
        self._forget_absorbed(core.last_seq)
        lost = self.acked_seq - core.last_seq
        if lost > 0:
            self.result.acked_lost = lost
        self._check(
            lost <= 0,
            "a:acked_lost",
            lambda: f"recovered to seq {core.last_seq} but seq {self.acked_seq} was acknowledged",
        )
        self._absorb_in_doubt(core.last_seq)
        ours, theirs = core.state_hash(), self.reference.state_hash()
        self._check(
            ours == theirs,
            "a:recovered_state",
            lambda: (
                f"recovered state hash {ours.hex()} at seq {core.last_seq} != "
                f"reference {theirs.hex()} (acknowledged history + whole in-flight batch)"
            ),
        )
        self._check_scratch_replay(core, damaged)
        self._check_invariants(core)
        self._check_silent_damage(report, damaged)
        problem = self.model.check_core_withdrawals(_core_withdrawals(core))
        self._check(problem is None, "a:withdrawals", lambda: str(problem))

    def _check_tail(self, report: RecoveryReport, sizes: dict[str, int]) -> None:
        """A torn tail is cut back to the last complete batch, reported and logged."""
        name = report.tail_segment
        if name is None:
            return
        before, after = sizes.get(name, 0), self.disk.size(name)
        self._check(
            after == report.tail_size,
            "d:tail_not_repaired",
            lambda: f"{name} is {after} bytes after recovery, its valid end is {report.tail_size}",
        )
        if before == report.tail_size and report.tail_damage is None:
            return
        self._check(
            report.tail_damage is not None and report.tail_repaired,
            "d:tail_not_reported",
            lambda: (
                f"{name} went from {before} to {after} bytes but the report says "
                f"damage={report.tail_damage} repaired={report.tail_repaired}"
            ),
        )
        logged = any("tail repaired" in m for m in self.logs)
        self._check(
            logged,
            "d:tail_not_logged",
            lambda: f"{name}: tail repaired ({before} -> {after} bytes) but nothing was logged",
        )

    def _forget_absorbed(self, recovered_seq: int) -> None:
        """Unacknowledged batches an earlier recovery brought back may be gone again."""
        while self.absorbed and self.reference.last_seq > recovered_seq:
            snapshot, model = self.absorbed.pop()
            self.reference = self.core_cls.from_snapshot(snapshot)
            self.model = model
            self._trace(f"in-flight batch recovered earlier is gone (back to seq {recovered_seq})")

    def _absorb_in_doubt(self, recovered_seq: int) -> None:
        """The recovered core may hold the batch that was in flight: all of it or none."""
        extra = recovered_seq - self.reference.last_seq
        batch, self.in_doubt = self.in_doubt, None
        if extra == 0:
            return
        self._check(
            batch is not None and extra == len(batch),
            "a:half_applied",
            lambda: (
                f"recovered {extra} commands beyond the acknowledged seq "
                f"{self.reference.last_seq}; in flight: {0 if batch is None else len(batch)}"
            ),
        )
        assert batch is not None
        self.absorbed.append((self.reference.to_snapshot(), self.model.clone()))
        _ev, replies = self.reference.apply(batch.copy())
        self.result.in_doubt_recovered += len(batch)
        problem = self.model.observe(batch, replies)
        self._check(problem is None, "a:duplicate_effect", lambda: str(problem))

    def _check_scratch_replay(
        self, core: CoreLike, damaged: dict[str, list[tuple[int, int]]]
    ) -> None:
        copy = self.disk.clone()
        try:
            scratch, _ = recover(
                copy,
                core_cls=self.core_cls,
                repair=False,
                use_snapshots=False,
                include_archived=True,
            )
        except JournalCorrupt as e:
            # Damage in a segment the live recovery no longer needs (covered by a
            # snapshot) stops a from-scratch replay: legitimate only if there is damage.
            message = str(e)
            self._check(
                bool(damaged), "b:scratch_replay", lambda: f"from-scratch replay failed: {message}"
            )
            return
        ours, theirs = core.state_hash(), scratch.state_hash()
        self._check(
            ours == theirs and core.last_seq == scratch.last_seq,
            "b:scratch_replay",
            lambda: (
                f"recovered seq {core.last_seq} hash {ours.hex()} != from-scratch replay "
                f"seq {scratch.last_seq} hash {theirs.hex()}"
            ),
        )

    def _check_silent_damage(
        self, report: RecoveryReport, damaged: dict[str, list[tuple[int, int]]]
    ) -> None:
        """Damage inside a journal batch that recovery replayed must have stopped it."""
        for name in sorted(damaged):
            first_seq = parse_segment_name(name)
            if first_seq is None or name not in report.segments_read:
                continue
            intent = self.disk.intended_content(name)
            try:
                scan, _ = scan_segment(name, intent, first_seq)
            except JournalCorrupt:  # pragma: no cover - the intended bytes are clean
                continue
            for start, end in damaged[name]:
                for b in scan.batches:
                    trailer = b.offset + HEADER_SIZE + CMD_SIZE * b.count
                    inside = start < trailer and end > b.offset  # header or payload
                    self.result.oracle_checks += 1
                    if inside and b.last_seq > report.snapshot_seq:
                        self._fail(
                            "d:silent_corruption",
                            f"{name} bytes [{start}, {end}) damaged inside batch seq "
                            f"{b.first_seq}..{b.last_seq} (after the snapshot at seq "
                            f"{report.snapshot_seq}), yet recovery went on to seq "
                            f"{report.last_seq} without reporting it",
                        )

    # ---------------------------------------------------------------- end

    def _finish(self) -> None:
        """A last power loss or crash and recovery, so that damage at rest is looked at."""
        if self.rng_sched.random() < 0.5:
            self._trace("final power loss")
            self.disk.power_loss()
        else:
            self._trace("final crash")
            self.disk.crash()
        self._recover()


class _ListHandler(logging.Handler):
    """Appends every formatted log message to a list."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the message."""
        self.sink.append(record.getMessage())


class _CoreVariants:
    """The core class, handed only the broken variants it implements.

    ``recover`` passes every variant to the core class, journal-level ones
    (``skip_crc``, ``ack_before_sync``, ``snapshot_rename_nosync``) included, and
    ``engine.core.Core`` refuses variants it does not know.
    """

    def __init__(self, cls: CoreClass) -> None:
        self.cls = cls
        try:
            known = importlib.import_module("pyx.core").VARIANTS
        except (ImportError, AttributeError):
            known = None
        self.known: frozenset[str] | None = known

    def _keep(self, variants: frozenset[str]) -> frozenset[str]:
        return variants if self.known is None else variants & self.known

    def __call__(self, variants: frozenset[str] = frozenset()) -> CoreLike:
        """An empty core with the variants it knows."""
        return self.cls(variants=self._keep(variants))

    def from_snapshot(self, data: bytes, variants: frozenset[str] = frozenset()) -> CoreLike:
        """A core loaded from a snapshot, with the variants it knows."""
        return self.cls.from_snapshot(data, variants=self._keep(variants))


def _reply_str(r: np.void) -> str:
    return (
        f"(status {int(r['status'])}, reason {int(r['reason'])}, value {int(r['value'])}, "
        f"seq {int(r['seq'])})"
    )


def _conservation_errors(core: CoreLike, net: dict[int, int]) -> list[str]:
    fn: Any = core.conservation_errors
    try:
        errors: list[str] = fn(expected_net=net)
    except TypeError:
        errors = fn()
    return errors


def _crossed_books(core: CoreLike) -> list[str]:
    """Books whose best bid reaches their best ask at rest (between batches)."""
    book_of = getattr(core, "book", None)
    symbols = getattr(core, "symbols", None)
    if book_of is None or symbols is None:
        return []
    out = []
    for sid in sorted(symbols()):
        book = book_of(sid)
        bid, ask = book.best_bid(), book.best_ask()
        if bid and ask and bid >= ask:
            out.append(f"symbol {sid}: best bid {bid} >= best ask {ask}")
    return out


def _core_withdrawals(core: CoreLike) -> dict[int, tuple[int, ...]]:
    fn = getattr(core, "withdrawals", None)
    return {} if fn is None else dict(fn())


def simulate(
    seed: int,
    commands: int = DEFAULT_COMMANDS,
    variants: frozenset[str] = frozenset(),
    *,
    core_cls: CoreClass | None = None,
    trace: bool = False,
    lost_sync: bool = True,
    read_errors: bool = False,
) -> SimResult:
    """Run one seed.

    Parameters
    ----------
    seed : int
        Everything of the run derives from it.
    commands : int
        Commands to submit (retries included) before the final crash and recovery.
    variants : frozenset of str
        Broken variants to switch on in the system under test (never in the reference).
    core_cls : CoreClass, optional
        State machine class (default ``engine.core.Core``).
    trace : bool
        Keep a step-by-step trace in the result.
    lost_sync : bool
        A failed fdatasync also loses the unsynced data while the page cache still
        shows it (Linux "fsyncgate" behaviour; part of the default fault model since
        recovery rewrites the last segment, see docs/testing.md).
    read_errors : bool
        Reads of journal segments and snapshots may fail with EIO (transient; off by
        default, see docs/testing.md).
    """
    sim = Simulation(seed, commands, variants, core_cls, trace, lost_sync, read_errors)
    return sim.run()


def reproduce_command(r: SimResult) -> str:
    """The ``bursa sim`` command line that replays ``r`` exactly."""
    extra = "".join(f" --variant {v}" for v in r.variants)
    if not r.lost_sync:
        extra += " --no-lost-sync"
    if r.read_errors:
        extra += " --read-errors"
    return f"bursa sim --seed {r.seed} --commands {r.commands_target}{extra}"


def format_result(r: SimResult) -> str:
    """The deterministic text report of one seed (what ``bursa sim`` prints)."""
    faults = ", ".join(f"{k}={v}" for k, v in sorted(r.faults.items()) if v) or "none"
    options = (f", variants: {','.join(r.variants)}" if r.variants else "") + (
        ", lost sync" if r.lost_sync else ""
    )
    if r.read_errors:
        options += ", read errors"
    lines = [
        f"seed {r.seed}: {r.outcome}",
        f"profile: {r.profile}{options}",
        f"commands: {r.commands_submitted} submitted, {r.commands_acked} acknowledged, "
        f"{r.batches} batches, {r.retries} retried, {r.in_doubt_recovered} recovered in flight",
        f"crashes: {r.crashes}, power losses: {r.power_losses}, recoveries: {r.recoveries}, "
        f"tails repaired: {r.tails_repaired}, snapshots rejected: {r.snapshots_rejected}",
        f"faults: {faults}",
        f"oracle checks: {r.oracle_checks}",
        f"final seq: {r.last_seq}, state hash: {r.state_hash or '-'}",
    ]
    if r.corruption:
        lines.append(f"stopped on corruption: {r.corruption}")
    if r.violation is not None:
        v = r.violation
        lines.append(f"VIOLATION oracle {v.oracle} at command {v.command_index}: {v.detail}")
        lines.append(f"reproduce: {reproduce_command(r)}")
    return "\n".join(lines)


def add_fault_options(p: argparse.ArgumentParser) -> None:
    """The options ``bursa sim`` and ``bursa sim-campaign`` share: variants, extra faults."""
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help="switch on a broken variant (simulator self-test; repeatable)",
    )
    p.add_argument(
        "--lost-sync",
        dest="lost_sync",
        action="store_true",
        default=True,
        help="a failed fdatasync also loses the unsynced data (Linux fsyncgate behaviour; "
        "the default)",
    )
    p.add_argument(
        "--no-lost-sync",
        dest="lost_sync",
        action="store_false",
        help="a failed fdatasync keeps the unsynced data pending (the old default model)",
    )
    p.add_argument("--read-errors", action="store_true", help="reads may fail with EIO (transient)")


def check_variant_option(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error when ``--variant`` names one this build does not have
    (every one in the production build: they exist only in ``make debug``'s build)."""
    try:
        variants_mod.check(frozenset(args.variant))
    except ValueError as e:
        p.error(str(e))


def main(argv: list[str] | None = None) -> int:
    """``bursa sim --seed N [--commands K] [--variant V] [--trace]``; 1 on a violation."""
    p = argparse.ArgumentParser(prog="bursa sim", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, required=True, help="the seed to run")
    p.add_argument("--commands", type=int, default=DEFAULT_COMMANDS, help="commands to submit")
    p.add_argument("--trace", action="store_true", help="print every step of the run")
    add_fault_options(p)
    args = p.parse_args(argv)
    check_variant_option(p, args)
    r = simulate(
        args.seed,
        args.commands,
        frozenset(args.variant),
        trace=args.trace,
        lost_sync=args.lost_sync,
        read_errors=args.read_errors,
    )
    if args.trace:
        print("\n".join(r.trace))
    print(format_result(r))
    return 1 if r.violation is not None else 0


if __name__ == "__main__":
    sys.exit(main())
