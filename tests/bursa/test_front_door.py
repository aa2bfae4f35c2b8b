"""`bursa` re-exports the public API lazily: one front door, cheap and cycle-free."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import bursa

ROOT = Path(__file__).resolve().parent.parent.parent
OUR_PACKAGES = ("pyx", "engine", "bindings", "bursa_wire", "gateway", "marketdata", "clearing")


def test_every_public_name_is_the_object_of_its_home_module():
    assert sorted(bursa.__all__) == sorted(bursa.EXPORTS)
    for name in ("Book", "Side", "CoreClient", "EventSubscriber", "CMD_DTYPE", "commands"):
        assert name in bursa.__all__
    for name, (module, attr) in bursa.EXPORTS.items():
        home = importlib.import_module(module)
        assert getattr(bursa, name) is (home if attr is None else getattr(home, attr)), name
        assert name in dir(bursa)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = bursa.no_such_name


def test_import_bursa_loads_no_layer_below_it():
    """`import bursa` (and the CLI's dispatcher) import nothing of the layers or numpy."""
    code = (
        "import json, sys, bursa, bursa.cli;"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {OUR_PACKAGES!r}"
        " or m == 'numpy')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


def test_front_door_works_from_a_fresh_interpreter():
    code = "from bursa import Book, Side, EvKind; print(Book(3).new_limit(1, 1, Side.BUY, 5, 2))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"
