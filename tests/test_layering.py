"""The import graph between bursa's packages has no forbidden edge.

Layers, bottom up: ``bursa_wire`` (record layouts, pure data) imports nothing of
bursa; ``pyx`` (the compiled engine) imports only ``bursa_wire``; ``engine`` (the
core) imports only those two, never a client (``bindings``) or a service above it.
No runtime package (what the wheel ships) imports a development-only one
(``tools``, ``bench``, ``tests``, ``examples``): an installed bursa has none of them.

Every ``.py`` module is read with :mod:`ast` (imports inside functions count too);
``.pyx``/``.pxd`` files, which :mod:`ast` cannot parse, by their ``import`` /
``cimport`` lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Development-only top-level packages: not in the wheel, so never imported by runtime code.
DEV = frozenset({"tools", "bench", "tests", "examples"})
RUNTIME = frozenset(
    {
        "bursa_wire",
        "pyx",
        "engine",
        "bindings",
        "gateway",
        "marketdata",
        "clearing",
        "wallet",
        "por",
        "sim",
        "api",
        "bursa",
    }
)
OURS = DEV | RUNTIME

# package -> the only packages of ours it may import (besides itself); packages not
# listed may import any runtime package.
ALLOWED: dict[str, frozenset[str]] = {
    "bursa_wire": frozenset(),
    "pyx": frozenset({"bursa_wire"}),
    "engine": frozenset({"bursa_wire", "pyx"}),
}

_CYTHON_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+c?import|c?import\s+([\w.]+))", re.M)


def imported_modules(path: Path) -> list[str]:
    """Absolute module names imported by one source file."""
    text = path.read_text()
    if path.suffix in (".pyx", ".pxd"):
        return [a or b for a, b in _CYTHON_IMPORT.findall(text)]
    names: list[str] = []
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def source_files(root: Path) -> list[Path]:
    """Every module of our top-level packages under ``root``."""
    out: list[Path] = []
    for pkg in sorted(OURS):
        d = root / pkg
        if d.is_dir():
            out += sorted(p for ext in ("py", "pyx", "pxd") for p in d.rglob(f"*.{ext}"))
    return out


def forbidden_edges(root: Path = ROOT) -> list[str]:
    """``"file -> module"`` for every import that breaks the layering rules."""
    bad: list[str] = []
    for path in source_files(root):
        rel = path.relative_to(root).as_posix()
        src = rel.split("/")[0]
        for mod in imported_modules(path):
            dst = mod.split(".")[0]
            if dst not in OURS or dst == src:
                continue
            allowed = ALLOWED.get(src)
            if (allowed is not None and dst not in allowed) or (src in RUNTIME and dst in DEV):
                bad.append(f"{rel} -> {mod}")
    return bad


def test_no_forbidden_import_edges() -> None:
    assert forbidden_edges() == []


def test_checker_finds_planted_edges(tmp_path: Path) -> None:
    """The checker is not vacuous: each rule catches an edge planted in a copy tree."""
    planted = {
        "bursa_wire/x.py": "import bursa\n",
        "pyx/y.pyx": "from engine.wire.layout import CMD_DTYPE\ncimport numpy\n",
        "pyx/z.pxd": "from bindings.client cimport X\n",
        "engine/a.py": "def f():\n    from bindings.client import CoreClient\n",
        "engine/b.py": "import gateway.server\n",
        "wallet/c.py": "from bench import core\n",
        "bursa/d.py": "import tools.gen_docs\n",
        "bindings/ok.py": "from engine.wire import commands\nimport numpy\n",
        "engine/ok.py": "from bursa_wire import layout\nfrom pyx.enums import Side\n",
        "tools/ok.py": "import bench.core\nimport engine.server\n",
    }
    for rel, text in planted.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert sorted(forbidden_edges(tmp_path)) == [
        "bursa/d.py -> tools.gen_docs",
        "bursa_wire/x.py -> bursa",
        "engine/a.py -> bindings.client",
        "engine/b.py -> gateway.server",
        "pyx/y.pyx -> engine.wire.layout",
        "pyx/z.pxd -> bindings.client",
        "wallet/c.py -> bench",
    ]
