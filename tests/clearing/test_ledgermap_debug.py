"""The differential tests of pyx.ledgermap once more through the debug build
(``make debug``: bounds, wraparound and overflow checks, C asserts), in a
subprocess with ``PYTHONPATH=build/debug:.`` as tests/pyx/test_debug_stream.py does."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.pyx.test_debug_stream import DEBUG_DIR, ROOT, ensure_debug_build

RUNNER = """
import sys
import pyx.ledgermap
assert "/build/debug/" in pyx.ledgermap.__file__, pyx.ledgermap.__file__
import pytest
sys.exit(pytest.main(["-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                      "tests/clearing/test_ledgermap.py"]))
"""


def test_debug_build_maps_like_the_oracle() -> None:
    ensure_debug_build()
    env = {**os.environ, "PYTHONPATH": f"{DEBUG_DIR}{os.pathsep}{ROOT}"}
    r = subprocess.run(
        [sys.executable, "-P", "-c", RUNNER],  # -P: cwd not on sys.path
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
