"""The production build has no broken variants (issue 16): every entry point that takes
them refuses them, and the simulator's command line says which build has them.

The test suite's own build (``make build``, no ``BURSA_VARIANTS``) is the production
configuration; the ``variants``-marked tests run under ``build/debug`` instead
(tests/variantbuild.py)."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

import pyx.core
from engine import variants
from engine.clock import ManualClock
from engine.core import Core
from engine.recovery import recover
from engine.sequencer import Sequencer
from engine.snapshot import write_snapshot
from sim import campaign, run
from sim.disk import SimDisk
from sim.run import simulate
from tests.variantbuild import DEBUG_DIR, ROOT

ALL = sorted(variants.DURABILITY | {"double_release", "dup_deposit"})


def test_the_production_build_has_no_variants() -> None:
    assert not pyx.core.VARIANTS_BUILT
    assert not pyx.core.VARIANTS and not variants.AVAILABLE


@pytest.mark.parametrize("name", ALL)
def test_every_entry_point_refuses_each_variant(name: str) -> None:
    v = frozenset({name})
    with pytest.raises(ValueError, match="production build"):
        variants.check(v)
    disk = SimDisk(random.Random(0))
    with pytest.raises(ValueError, match="variants"):
        Sequencer.open(disk, ManualClock(), variants=v)
    with pytest.raises(ValueError, match="variants"):
        recover(SimDisk(random.Random(0)), variants=v)
    with pytest.raises(ValueError, match="variants"):
        write_snapshot(SimDisk(random.Random(0)), Core(), v)
    with pytest.raises(ValueError, match="variants"):
        simulate(0, 10, v)
    if name in ("double_release", "dup_deposit"):
        with pytest.raises(ValueError, match="not in this build"):
            Core(v)
    assert variants.check(frozenset()) == frozenset()


@pytest.mark.parametrize("main", [run.main, campaign.main])
def test_sim_command_lines_refuse_variants_with_a_hint(main, capsys) -> None:
    args = ["--variant", "dup_deposit", "--seed" if main is run.main else "--seeds", "1"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert "make debug" in capsys.readouterr().err


def test_the_debug_build_has_them() -> None:
    """What the simulator's self-tests use: build/debug with PYTHONPATH (a child)."""
    subprocess.run(["make", "-s", "build/debug/.stamp"], cwd=ROOT, check=True, timeout=1200)
    code = "import pyx.core, engine.variants as v; print(pyx.core.__file__, sorted(v.AVAILABLE))"
    out = subprocess.run(
        [sys.executable, "-P", "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": f"{DEBUG_DIR}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert str(DEBUG_DIR) in out and all(name in out for name in ALL), out
