"""Generate the docs that are derived from code, so they cannot drift.

- docs/reject-codes.md from the ``Reason`` enum in pyx/enums.pxd (names, values
  and the comment on each line), grouped by layer.
- docs/records.md from the record tables in bursa_wire/layout.py.
- pyx/enums.pyi, the typed stubs of the compiled enums.

``python -m tools.gen_docs`` rewrites them; ``--check`` exits 1 if a file is stale
(tests/test_docs.py runs the check).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GROUPS: tuple[tuple[int, int, str], ...] = (
    (0, 0, "Success"),
    (1, 99, "Cancel reasons (an order ended without an error)"),
    (100, 199, "Book rejects"),
    (200, 299, "Risk rejects (core)"),
    (300, 399, "Core, admin and funding rejects"),
    (400, 499, "Gateway rejects"),
)

_LINE = re.compile(r"^\s+([A-Z][A-Z0-9_]*)\s*=\s*(\d+)\s*(?:#\s*(.*))?$")


def parse_enum(pxd_text: str, enum_name: str) -> list[tuple[str, int, str]]:
    """(name, value, comment) of each member of ``cpdef enum <enum_name>`` in a .pxd."""
    members: list[tuple[str, int, str]] = []
    inside = False
    for line in pxd_text.splitlines():
        if line.startswith("cpdef enum "):
            inside = line.strip().rstrip(":") == f"cpdef enum {enum_name}"
            continue
        if inside:
            if line and not line[0].isspace():
                break
            m = _LINE.match(line)
            if m:
                members.append((m.group(1), int(m.group(2)), (m.group(3) or "").strip()))
    return members


def reject_codes_md() -> str:
    """The text of docs/reject-codes.md."""
    reasons = parse_enum((ROOT / "pyx" / "enums.pxd").read_text(), "Reason")
    out = [
        "# Reason codes",
        "",
        "One table for every layer (book, risk, core, gateway): a rejected command and a",
        "canceled order always carry one of these codes in the `reason` field of its event or",
        "reply. Codes are stable wire values and are never renumbered.",
        "Generated from `pyx/enums.pxd` by `python -m tools.gen_docs`; do not edit by hand.",
        "",
    ]
    for lo, hi, title in GROUPS:
        rows = [r for r in reasons if lo <= r[1] <= hi]
        if not rows:
            continue
        out += [f"## {title}", "", "| code | name | meaning |", "|---:|---|---|"]
        out += [f"| {v} | `{n}` | {c} |" for n, v, c in sorted(rows, key=lambda r: r[1])]
        out.append("")
    return "\n".join(out)


def records_md() -> str:
    """The text of docs/records.md (byte tables of every record)."""
    sys.path.insert(0, str(ROOT))
    from bursa_wire import layout

    parts = [
        "# Binary records",
        "",
        "Every record is fixed-layout, packed, little-endian. Generated from",
        "`bursa_wire/layout.py` by `python -m tools.gen_docs`; do not edit by hand.",
        "",
    ]
    tables = (
        ("Command record", layout.CMD_FIELDS),
        ("Event record", layout.EV_FIELDS),
        ("Reply record", layout.REPLY_FIELDS),
    )
    for title, fields in tables:
        size = layout.dtype_of(fields).itemsize
        parts += [f"## {title} ({size} bytes)", "", layout.markdown_table(fields), ""]
    return "\n".join(parts)


def enums_pyi() -> str:
    """The text of pyx/enums.pyi: typed stubs of the compiled enums."""
    text = (ROOT / "pyx" / "enums.pxd").read_text()
    names = re.findall(r"^cpdef enum (\w+):", text, flags=re.M)
    out = [
        '"""Stubs of pyx.enums, generated from pyx/enums.pxd by tools/gen_docs.py."""',
        "",
        "from enum import IntEnum",
        "",
    ]
    for name in names:
        out.append(f"class {name}(IntEnum):")
        out += [f"    {n} = {v}" for n, v, _ in parse_enum(text, name)]
        out.append("")
    return "\n".join(out)


OUTPUTS = {
    "docs/reject-codes.md": reject_codes_md,
    "docs/records.md": records_md,
    "pyx/enums.pyi": enums_pyi,
}


def main(argv: list[str]) -> int:
    """Write the generated docs, or with ``--check`` report which are stale."""
    stale = []
    for rel, make in OUTPUTS.items():
        path = ROOT / rel
        text = make()
        if path.exists() and path.read_text() == text:
            continue
        if "--check" in argv:
            stale.append(rel)
        else:
            path.write_text(text)
            print(f"wrote {rel}")
    if stale:
        print("stale generated docs (run: python -m tools.gen_docs): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
