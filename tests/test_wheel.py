"""The wheel ships only what runs: the runtime packages and `bursa`, nothing development-only.

Builds the real wheel (``pip wheel --no-deps --no-build-isolation``, reusing this tree's
compiled objects; the build holds the Makefile's ``.build.lock``) and reads its top-level names.
"""

from __future__ import annotations

import fcntl
import importlib.util
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from bursa.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = {
    "bursa",
    "bursa_wire",
    "pyx",
    "bindings",
    "engine",
    "gateway",
    "marketdata",
    "clearing",
    "wallet",
    "por",
    "sim",
    "api",
}


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    with open(ROOT / ".build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
             "-w", str(out), str(ROOT)],
            check=True, cwd=ROOT, timeout=1200,
        )  # fmt: skip
    (whl,) = out.glob("bursa-*.whl")
    with zipfile.ZipFile(whl) as z:
        return {n.split("/")[0] for n in z.namelist()}


@pytest.mark.slow
def test_wheel_top_level_names_are_the_runtime_packages(wheel_names: set[str]) -> None:
    assert wheel_names - {"bursa-0.1.0.dist-info"} == RUNTIME


@pytest.mark.slow
def test_every_subcommand_module_ships(wheel_names: set[str]) -> None:
    for name, (module, _doc) in SUBCOMMANDS.items():
        assert module.split(".")[0] in wheel_names, name
        assert importlib.util.find_spec(module) is not None, module


def test_dependencies_are_pinned_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for deps in (project["dependencies"], *project["optional-dependencies"].values()):
        names = [d.split("==")[0].lower().replace("_", "-") for d in deps]
        assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
        assert all("==" in d for d in deps), deps
