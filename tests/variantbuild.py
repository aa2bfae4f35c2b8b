"""Run the tests of the deliberately broken variants in a build that has them.

The production (release) build compiles the broken variants out
(``engine/variants.py``, ``pyx.core.VARIANTS_BUILT``); only the debug build
(``make debug``, ``build/debug/``) has them.  A test marked ``@pytest.mark.variants``
that is collected in the release build is therefore run in a child pytest whose
``pyx`` comes from ``build/debug/`` (its verdict and output become the test's);
in a build with the variants it runs in place.  The conftests of the test
directories that use variants import the two hooks below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyx.core import VARIANTS_BUILT

ROOT = Path(__file__).resolve().parents[1]
DEBUG_DIR = ROOT / "build" / "debug"
CHILD_ENV = "BURSA_VARIANTS_CHILD"
CHILD_TIMEOUT_S = 1200


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker."""
    config.addinivalue_line(
        "markers", "variants: needs the broken variants (runs under build/debug if absent)"
    )


def _ensure_debug_build() -> None:
    subprocess.run(
        ["make", "-s", "build/debug/.stamp"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=CHILD_TIMEOUT_S,
    )


def child_command(nodeid: str) -> list[str]:
    """A pytest run of one test id whose ``pyx`` is the debug build's.

    ``-P`` keeps the working directory off ``sys.path``, ``-o pythonpath=`` and
    ``--import-mode=append`` keep pytest from putting the repository (and its
    release ``pyx``) before ``PYTHONPATH``.
    """
    return [
        sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
        "-o", "pythonpath=", "--import-mode=append", nodeid,
    ]  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a ``variants`` test under the debug build when this build lacks them."""
    if pyfuncitem.get_closest_marker("variants") is None or VARIANTS_BUILT:
        return None
    if os.environ.get(CHILD_ENV):
        pytest.fail("the child run under build/debug still imported a pyx without variants")
    _ensure_debug_build()
    env = dict(os.environ, PYTHONPATH=f"{DEBUG_DIR}{os.pathsep}{ROOT}", **{CHILD_ENV: "1"})
    out = subprocess.run(
        child_command(pyfuncitem.nodeid),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    report = out.stdout[-8000:] + out.stderr[-4000:]
    assert out.returncode == 0, report
    assert re.search(r"\b1 passed\b", out.stdout), report  # really ran, not skipped
    return True
