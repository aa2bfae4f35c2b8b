"""`bursa bench` runs the suite's runner in a checkout and explains itself without one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bursa_bench_lists_the_suite_in_a_checkout() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bursa", "bench", "--list"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = set(r.stdout.split())
    assert {"core", "e2e", "engine", "marketdata", "clearing", "sim"} <= names, r.stdout


def test_bursa_bench_without_the_suite_says_how_to_get_it(tmp_path: Path) -> None:
    # Run from a directory where `bench` is not importable (as after `pip install bursa`).
    drop = repr(str(REPO))
    code = (
        f"import sys; sys.path = [p for p in sys.path if p not in ('', {drop})];"
        "from bursa.bench import main; sys.exit(main(['--list']))"
    )
    env = {"PYTHONPATH": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=env,
    )  # fmt: skip
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "make bench" in r.stderr
