"""Seeds on which the simulator once found a real bug: each must now pass.

Every entry names the bug it found (see docs/testing.md, "What the simulator
found"); the seed reproduces the exact fault sequence, so a regression of the
fix makes the same oracle fire again.
"""

import pytest

from engine.core import Core
from engine.recovery import recover
from engine.storage import FileStorage
from engine.variants import DURABILITY
from sim.run import simulate

CASES = [
    # The tail trailer rewritten by recovery was misdirected and never read back;
    # an acknowledged batch on top became unreachable after a power loss.
    pytest.param(412298075105, 400, False, False, id="trailer-repair-read-back"),
    # A transient read error made recovery skip an intact snapshot whose journal was
    # already archived ("missing segment").
    pytest.param(90176, 400, False, True, id="snapshot-read-error-propagates"),
    # fsyncgate (finding 2): a failed fdatasync lost the batch's pages while the page
    # cache kept them; recovery replayed them and synced nothing, so a power loss left
    # a hole under batches acknowledged later.  Recovery now rewrites the last segment
    # through a new file.
    pytest.param(2, 300, True, False, id="fsyncgate-rewrite-last-segment"),
]


@pytest.mark.parametrize(("seed", "commands", "lost_sync", "read_errors"), CASES)
def test_seed_that_found_a_bug_now_passes(seed, commands, lost_sync, read_errors) -> None:
    r = simulate(seed, commands, lost_sync=lost_sync, read_errors=read_errors)
    assert r.violation is None, f"seed {seed}: {r.violation}"
    assert r.acked_lost == 0


@pytest.mark.variants
@pytest.mark.parametrize("variant", sorted(DURABILITY))
def test_recovery_hands_the_real_core_only_its_own_variants(tmp_path, variant) -> None:
    # Found by the simulator: recover() passed the journal's variants to the core,
    # which refuses names it does not know.
    core, _ = recover(FileStorage(str(tmp_path)), variants=frozenset({variant}))
    assert isinstance(core, Core) and core.last_seq == 0
