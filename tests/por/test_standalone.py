"""The verifier stands alone: copied by itself into an empty directory and run by a bare
interpreter (no site-packages, no bursa on the path) it verifies and rejects; its imports
are standard library only; `bursa-por verify` and `bursa por verify` run the same code."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.por.kit import random_tree

REPO = Path(__file__).resolve().parents[2]
VERIFY = REPO / "por" / "verify.py"


def _write_pair(d: Path, tamper: bool = False) -> tuple[Path, Path]:
    tree = random_tree(8, 9)
    u = sorted(tree.liab.users)[2]
    proof = tree.proof(u)
    if tamper:
        proof["balances"]["2"] += 1
    (d / "root.json").write_text(json.dumps(tree.root_json()))
    (d / "proof.json").write_text(json.dumps(proof))
    return d / "root.json", d / "proof.json"


def _bare(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -I -S verify.py ...`` in ``tmp``: isolated mode, no site (so no editable
    install of bursa), no PYTHONPATH, cwd = a directory holding only the copied file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        [sys.executable, "-I", "-S", "verify.py", *args],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_copied_file_verifies_alone(tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(VERIFY, alone / "verify.py")
    _write_pair(alone)
    ok = _bare(alone, "root.json", "proof.json", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verified"] is True
    _write_pair(alone, tamper=True)
    bad = _bare(alone, "root.json", "proof.json")
    assert bad.returncode == 1 and "REJECTED" in bad.stderr
    assert _bare(alone, "root.json", "missing.json").returncode == 2
    # The bare interpreter really cannot see bursa: the proof above ran without it.
    probe = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import por"], cwd=alone, capture_output=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert probe.returncode != 0


def test_imports_are_stdlib_only():
    tree = ast.parse(VERIFY.read_text())
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            mods.add((node.module or "").split(".")[0])
    assert mods and mods <= set(sys.stdlib_module_names), mods - set(sys.stdlib_module_names)


def test_entry_points(tmp_path):
    root, proof = _write_pair(tmp_path)
    script = Path(sys.executable).parent / "bursa-por"
    assert script.exists(), "pip install -e . creates the bursa-por script"
    for cmd in (
        [str(script), "verify", str(root), str(proof)],
        [str(script), str(root), str(proof)],
        [sys.executable, "-m", "bursa", "por", "verify", str(root), str(proof)],
    ):
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60,
                             check=False)  # fmt: skip
        assert out.returncode == 0, (cmd, out.stderr)
        assert out.stdout.startswith("VERIFIED")
