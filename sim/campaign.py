"""``bursa sim-campaign``: many simulation seeds in parallel, with a progress bar.

Runs :func:`sim.run.simulate` over ``--seeds`` consecutive seeds starting at
``--base`` (by default derived from the commit hash, so every commit explores new
seeds), spread over the machine's cores with :mod:`multiprocessing`.  The progress bar
goes to stderr; the summary (seeds/s, commands simulated, faults injected by kind,
crashes, power losses, oracle checks made, outcomes) to stdout.  Exit status 1 if any
seed violated an oracle; each failing seed is printed with the command that
reproduces it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from sim.disk import FAULT_KINDS
from sim.run import (
    DEFAULT_COMMANDS,
    SimResult,
    add_fault_options,
    check_variant_option,
    reproduce_command,
    simulate,
)

#: Seeds handed to a worker at a time: amortises the inter-process round trip.
CHUNK_SEEDS = 4
#: Default base when the tree is not a git checkout.
FALLBACK_BASE_SEED = 0x5EED_0000
#: Progress bar width in characters.
BAR_CHARS = 30


def commit_base_seed(repo_dir: str | None = None) -> int:
    """A base seed derived from ``git rev-parse HEAD`` (fixed fallback outside git).

    Every commit thereby explores different seeds; a failing seed is still printed as
    an absolute number, so it reproduces on any commit that still fails.
    """
    here = repo_dir or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return int(out[:12], 16) % (1 << 40)
    except (OSError, subprocess.SubprocessError, ValueError):
        return FALLBACK_BASE_SEED


@dataclass
class CampaignStats:
    """Totals over a campaign."""

    seeds: int = 0
    commands: int = 0
    acked: int = 0
    batches: int = 0
    crashes: int = 0
    power_losses: int = 0
    recoveries: int = 0
    oracle_checks: int = 0
    acked_lost: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=lambda: {k: 0 for k in FAULT_KINDS})
    profiles: dict[str, int] = field(default_factory=dict)
    failures: list[SimResult] = field(default_factory=list)

    def add(self, r: SimResult) -> None:
        """Fold one seed's result in."""
        self.seeds += 1
        self.commands += r.commands_submitted
        self.acked += r.commands_acked
        self.batches += r.batches
        self.crashes += r.crashes
        self.power_losses += r.power_losses
        self.recoveries += r.recoveries
        self.oracle_checks += r.oracle_checks
        self.acked_lost += r.acked_lost
        self.outcomes[r.outcome] = self.outcomes.get(r.outcome, 0) + 1
        self.profiles[r.profile] = self.profiles.get(r.profile, 0) + 1
        for kind, n in r.faults.items():
            self.faults[kind] = self.faults.get(kind, 0) + n
        if r.violation is not None:
            self.failures.append(r)


def _run_one(job: tuple[int, int, frozenset[str], bool, bool]) -> SimResult:
    seed, commands, variants, lost_sync, read_errors = job
    return simulate(
        seed, commands=commands, variants=variants, lost_sync=lost_sync, read_errors=read_errors
    )


def run_campaign(
    seeds: list[int],
    *,
    commands: int = DEFAULT_COMMANDS,
    jobs: int | None = None,
    variants: frozenset[str] = frozenset(),
    progress: TextIO | None = None,
    lost_sync: bool = True,
    read_errors: bool = False,
) -> tuple[CampaignStats, float]:
    """Simulate every seed; return the totals and the elapsed wall time in seconds.

    Parameters
    ----------
    seeds : list of int
        Seeds to run.
    commands : int
        Commands per seed.
    jobs : int or None
        Worker processes (default: the number of CPUs).
    variants : frozenset of str
        Broken variants to switch on (self-test of the simulator).
    progress : text stream or None
        Where to draw the progress bar (None: no bar).
    lost_sync : bool
        Failed fdatasyncs also lose the unsynced data (see :func:`sim.run.simulate`).
    read_errors : bool
        Reads may fail with EIO (see :func:`sim.run.simulate`).
    """
    stats = CampaignStats()
    work = [(s, commands, variants, lost_sync, read_errors) for s in seeds]
    n_jobs = max(1, jobs or os.cpu_count() or 1)
    start = time.perf_counter()
    results: Iterator[SimResult]
    if n_jobs == 1 or len(seeds) <= 1:
        results = map(_run_one, work)
        pool = None
    else:
        ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        pool = ctx.Pool(n_jobs)
        results = pool.imap_unordered(_run_one, work, chunksize=CHUNK_SEEDS)
    try:
        for r in results:
            stats.add(r)
            if progress is not None:
                _draw(progress, stats, len(seeds), time.perf_counter() - start)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    if progress is not None:
        progress.write("\n")
        progress.flush()
    return stats, time.perf_counter() - start


def _draw(out: TextIO, stats: CampaignStats, total: int, elapsed_s: float) -> None:
    done = stats.seeds
    filled = done * BAR_CHARS // max(1, total)
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta_s = (total - done) / rate if rate > 0 else 0.0
    out.write(
        f"\r[{'#' * filled}{'.' * (BAR_CHARS - filled)}] {done}/{total} seeds "
        f"{rate:.1f}/s eta {eta_s:.0f}s violations {len(stats.failures)}"
    )
    out.flush()


def format_summary(stats: CampaignStats, elapsed_s: float, base: int) -> str:
    """The campaign report printed on stdout."""
    rate = stats.seeds / elapsed_s if elapsed_s > 0 else 0.0
    lines = [
        f"seeds: {stats.seeds} (base {base})",
        f"elapsed: {elapsed_s:.1f} s, {rate:.2f} seeds/s",
        f"commands simulated: {stats.commands} ({stats.acked} acknowledged, "
        f"{stats.batches} batches)",
        f"crashes: {stats.crashes}, power losses: {stats.power_losses}, "
        f"recoveries: {stats.recoveries}",
        "faults injected: "
        + ", ".join(f"{k}={stats.faults[k]}" for k in sorted(stats.faults) if stats.faults[k])
        + f" (total {sum(stats.faults.values())})",
        f"oracle checks made: {stats.oracle_checks}",
        "outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.outcomes.items())),
        "fault profiles: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.profiles.items())),
        f"acknowledged commands lost: {stats.acked_lost}",
        f"violations: {len(stats.failures)}",
    ]
    for r in sorted(stats.failures, key=lambda r: r.seed):
        v = r.violation
        assert v is not None
        lines.append(
            f"  FAIL seed {r.seed}: oracle {v.oracle} at command {v.command_index}: {v.detail}"
        )
        lines.append(f"    reproduce: {reproduce_command(r)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``bursa sim-campaign [--seeds N] [--base S] [--commands K] [--jobs J]``."""
    p = argparse.ArgumentParser(prog="bursa sim-campaign", description=__doc__)
    p.add_argument("--seeds", type=int, default=10_000, help="number of seeds (10000)")
    p.add_argument("--base", type=int, default=None, help="first seed (default: from git HEAD)")
    p.add_argument("--commands", type=int, default=DEFAULT_COMMANDS, help="commands per seed")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_fault_options(p)
    args = p.parse_args(argv)
    check_variant_option(p, args)
    if args.seeds < 1 or args.commands < 1:
        p.error("--seeds and --commands must be positive")
    base = commit_base_seed() if args.base is None else args.base
    seeds = list(range(base, base + args.seeds))
    print(
        f"sim-campaign: {args.seeds} seeds from {base}, {args.commands} commands each"
        + (", lost sync" if args.lost_sync else "")
        + (", read errors" if args.read_errors else ""),
        flush=True,
    )
    stats, elapsed_s = run_campaign(
        seeds,
        commands=args.commands,
        jobs=args.jobs,
        variants=frozenset(args.variant),
        progress=None if args.no_progress else sys.stderr,
        lost_sync=args.lost_sync,
        read_errors=args.read_errors,
    )
    print(format_summary(stats, elapsed_s, base))
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
