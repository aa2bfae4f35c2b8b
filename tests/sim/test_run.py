"""The simulator itself: determinism, the command lines, and oracles that bite."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import Core
from sim import campaign, run
from sim.run import Simulation, draw_profile, format_result, simulate


def test_a_seed_replays_exactly() -> None:
    a = simulate(12345, 200, trace=True)
    b = simulate(12345, 200, trace=True)
    assert format_result(a) == format_result(b)
    assert a.trace == b.trace and a.trace
    assert a.state_hash == b.state_hash


def test_profiles_vary_across_seeds() -> None:
    import random

    names = {draw_profile(random.Random(f"bursa-sim:{s}:profile")).name for s in range(200)}
    assert names == {n for n, _ in run.PROFILES}


def test_bursa_sim_prints_the_report(capsys) -> None:
    assert run.main(["--seed", "3", "--commands", "60"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seed 3: ") and "oracle checks:" in out
    assert run.main(["--seed", "3", "--commands", "60"]) == 0
    assert capsys.readouterr().out == out  # byte for byte


@pytest.mark.variants
def test_a_violation_names_seed_oracle_and_command(capsys) -> None:
    # dup_deposit is caught on seed 0 (see test_broken_variants.py).
    assert run.main(["--seed", "0", "--commands", "300", "--variant", "dup_deposit"]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION oracle a:acked_reply at command " in out
    assert "reproduce: bursa sim --seed 0 --commands 300" in out


class LossyCore(Core):
    """A core whose deposits of odd references credit one minor unit less."""

    def apply(self, cmds):
        cmds = np.array(cmds, copy=True)
        odd = (cmds["kind"] == 31) & (cmds["order_id"] % 2 == 1) & (cmds["qty_lots"] > 1)
        cmds["qty_lots"][odd] -= 1
        return super().apply(cmds)


def test_model_catches_a_core_bug_the_reference_shares() -> None:
    # The reference core has the same bug, so only the independent funding model
    # (deposits minus withdrawals per asset) can see it.
    r = Simulation(7, 120, core_cls=LossyCore).run()
    assert r.violation is not None and r.violation.oracle == "c:conservation", format_result(r)


def test_campaign_summary_and_exit_status(capsys) -> None:
    rc = campaign.main(["--seeds", "3", "--base", "40", "--commands", "50", "--jobs", "1",
                        "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    for line in ("seeds: 3 (base 40)", "seeds/s", "commands simulated:", "faults injected:",
                 "oracle checks made:", "violations: 0"):  # fmt: skip
        assert line in out


@pytest.mark.variants
def test_campaign_reports_failing_seeds(capsys) -> None:
    rc = campaign.main(["--seeds", "2", "--base", "0", "--commands", "300", "--jobs", "1",
                        "--no-progress", "--variant", "dup_deposit"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL seed 0" in out and "reproduce: bursa sim --seed 0" in out
