"""At least 200 simulator seeds on every test run, new ones for every commit.

The seeds start at a base derived from ``git rev-parse HEAD`` (a fixed base outside
git), so each commit explores seeds no earlier run has tried; a failure names the seed
and the command that reproduces it on any checkout.
"""

from __future__ import annotations

import pytest

from sim.campaign import commit_base_seed
from sim.run import format_result, reproduce_command, simulate

N_SEEDS = 300
"""Seeds per test run (each one a full simulation with faults, crashes and recoveries)."""

COMMANDS = 250
"""Commands per seed: modest, so the whole file runs in about a minute on 2 cores."""

BASE_SEED = commit_base_seed()


@pytest.mark.parametrize("index", range(N_SEEDS))
def test_seed_keeps_every_oracle(index: int) -> None:
    seed = BASE_SEED + index
    r = simulate(seed, COMMANDS)
    if r.violation is not None:
        v = r.violation
        pytest.fail(
            f"seed {seed}: oracle {v.oracle} violated at command {v.command_index}: "
            f"{v.detail}\nreproduce: {reproduce_command(r)}\n\n" + format_result(r),
            pytrace=False,
        )
    assert r.outcome in ("ok", "stopped_on_corruption"), format_result(r)
    assert r.acked_lost == 0
    assert r.oracle_checks > 0
