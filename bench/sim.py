"""Simulator benchmark: seeds per second, what the seeds did, and the broken-variant check.

``python -m bench.sim --json`` runs a campaign of ``--seeds`` simulations (fixed base
seed, so the figures compare run to run) in parallel over the cores, then tries each
broken variant on seeds 0, 1, ... until the simulator catches it (at most
``--variant-seeds`` seeds).  The last line is one JSON object with at least: seeds,
seeds_per_s, commands_simulated, faults_injected (by kind), crashes, power_losses,
acked_lost (must be 0), invariant_violations (must be 0), broken_variants_caught,
broken_variants_total.  Durability mode of every simulated core: ``fsync``.

The broken variants are compiled out of the production build (engine/variants.py):
the variant check runs in a child process on the debug build (``build/debug``, made
by ``make debug`` if missing) unless this build has them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.meta import run_info
from pyx.core import VARIANTS_BUILT
from sim.campaign import run_campaign
from sim.run import simulate

ROOT = Path(__file__).resolve().parents[1]

BASE_SEED = 1_000_000
VARIANTS = (
    "ack_before_sync",
    "skip_crc",
    "snapshot_rename_nosync",
    "double_release",
    "dup_deposit",
)
VARIANT_COMMANDS = 300


def variant_check(max_seeds: int) -> dict[str, Any]:
    """For each broken variant, the first seed (from 0) whose run violates an oracle."""
    if not VARIANTS_BUILT:
        return _variant_check_in_debug_build(max_seeds)
    out: dict[str, Any] = {}
    for v in VARIANTS:
        caught: dict[str, Any] | None = None
        for seed in range(max_seeds):
            r = simulate(seed, VARIANT_COMMANDS, frozenset({v}))
            if r.violation is not None:
                caught = {"seed": seed, "oracle": r.violation.oracle}
                break
        out[v] = caught
    return out


def _variant_check_in_debug_build(max_seeds: int) -> dict[str, Any]:
    """:func:`variant_check` in a child whose ``pyx`` is the debug build's."""
    subprocess.run(["make", "-s", "build/debug/.stamp"], cwd=ROOT, check=True)
    debug = ROOT / "build" / "debug"
    code = f"import json, bench.sim as b; print(json.dumps(b.variant_check({max_seeds})))"
    out = subprocess.run(
        [sys.executable, "-P", "-c", code],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=f"{debug}{os.pathsep}{ROOT}"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a summary, then (with --json) the JSON object last."""
    p = argparse.ArgumentParser(prog="bench.sim", description=__doc__)
    p.add_argument("--seeds", type=int, default=400)
    p.add_argument("--commands", type=int, default=400)
    p.add_argument("--base", type=int, default=BASE_SEED)
    p.add_argument("--jobs", type=int, default=None)
    p.add_argument("--variant-seeds", type=int, default=60)
    p.add_argument("--json", action="store_true", help="print the JSON object on the last line")
    p.add_argument("--quick", action="store_true", help="40 seeds")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = min(args.seeds, 40)
    seeds = list(range(args.base, args.base + args.seeds))
    stats, elapsed_s = run_campaign(seeds, commands=args.commands, jobs=args.jobs)
    t0 = time.perf_counter()
    variants = variant_check(args.variant_seeds)
    variant_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "bench": "sim",
        "durability_mode": "fsync",
        "seeds": stats.seeds,
        "base_seed": args.base,
        "commands_per_seed": args.commands,
        "elapsed_s": round(elapsed_s, 3),
        "seeds_per_s": round(stats.seeds / elapsed_s, 3) if elapsed_s > 0 else 0.0,
        "commands_simulated": stats.commands,
        "commands_acknowledged": stats.acked,
        "commands_per_s": round(stats.commands / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "batches": stats.batches,
        "faults_injected": dict(sorted(stats.faults.items())),
        "faults_injected_total": sum(stats.faults.values()),
        "crashes": stats.crashes,
        "power_losses": stats.power_losses,
        "recoveries": stats.recoveries,
        "oracle_checks": stats.oracle_checks,
        "outcomes": dict(sorted(stats.outcomes.items())),
        "acked_lost": stats.acked_lost,
        "invariant_violations": len(stats.failures),
        "failing_seeds": sorted(r.seed for r in stats.failures),
        "broken_variants_caught": sum(1 for v in variants.values() if v is not None),
        "broken_variants_total": len(VARIANTS),
        "broken_variants": variants,
        "broken_variant_check_s": round(variant_s, 3),
        "target_acked_lost": 0,
        "target_invariant_violations": 0,
        "headline": ["seeds_per_s", "acked_lost", "invariant_violations", "broken_variants_caught"],
        **run_info(args.base),
    }
    print(
        f"sim: {stats.seeds} seeds in {elapsed_s:.1f} s ({result['seeds_per_s']} seeds/s), "
        f"{stats.commands} commands, {stats.crashes} crashes, {stats.power_losses} power "
        f"losses, {result['faults_injected_total']} faults, {len(stats.failures)} violations; "
        f"broken variants caught {result['broken_variants_caught']}/{len(VARIANTS)}"
    )
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0 if not stats.failures and stats.acked_lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
