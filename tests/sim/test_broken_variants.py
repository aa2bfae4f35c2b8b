"""The simulator can fail: each deliberately broken variant is caught within a bound.

Each variant is switched on in the system under test only (never in the simulator's
reference core).  Seeds are tried from 0 upwards; the first one that violates an oracle
must come within :data:`MAX_SEEDS`, must name an oracle that fits the breakage, and
must pass without the variant (so the catch is the variant's doing).
"""

from __future__ import annotations

import pytest

from sim.run import format_result, simulate

MAX_SEEDS = 60
"""The stated bound: every variant is caught within this many seeds (0, 1, ...)."""

COMMANDS = 300

# variant -> oracles that may legitimately be the first one it violates
EXPECTED: dict[str, frozenset[str]] = {
    # acknowledged before the fdatasync: a power loss drops acknowledged commands
    "ack_before_sync": frozenset({"a:acked_lost"}),
    # CRCs not checked: a flipped bit is replayed (different state, undetected damage)
    # or garbage reaches the core (recovery fails with an error that is not JournalCorrupt)
    "skip_crc": frozenset(
        {"d:silent_corruption", "a:recovered_state", "b:scratch_replay", "recovery_error"}
    ),
    # snapshot renamed without syncing: after a power loss the snapshots are empty or
    # gone while the journal they covered was archived
    "snapshot_rename_nosync": frozenset(
        {"d:false_corruption", "a:acked_lost", "a:recovered_state"}
    ),
    # a canceled order's hold released twice: held and available drift apart
    "double_release": frozenset(
        {"c:conservation", "a:state_diverged", "a:acked_reply", "a:recovered_state", "submit_error"}
    ),
    # a reused deposit reference credited again
    "dup_deposit": frozenset(
        {"a:acked_reply", "a:duplicate_effect", "c:conservation", "a:recovered_state"}
    ),
}


@pytest.mark.variants
@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_variant_is_caught_within_bound(variant: str) -> None:
    for seed in range(MAX_SEEDS):
        r = simulate(seed, COMMANDS, frozenset({variant}))
        if r.violation is None:
            continue
        assert r.violation.oracle in EXPECTED[variant], format_result(r)
        clean = simulate(seed, COMMANDS)
        assert clean.violation is None, format_result(clean)
        return
    pytest.fail(f"variant {variant} not caught in {MAX_SEEDS} seeds")
