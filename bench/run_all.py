"""Run every benchmark, save its JSON under bench/results/, print a table (``make bench``).

A benchmark is any ``bench/<name>.py`` that defines a top-level ``main``, other
than the helpers listed in ``HELPERS``; modules added later (``bench/core.py``,
``bench/sim.py``, ...) are picked up without touching this file.  Each runs in
its own process as ``python -m bench.<name> --json`` and must print one JSON
object on its last line; it is saved to ``bench/results/<name>.json``.

The table shows, per module, the keys listed in the JSON's ``headline`` (or,
without one, every top-level ``*_per_s`` / ``*_ns`` number), each with its
target when the JSON has ``target_<key>``: throughputs (``*_per_s``) pass at or
above it, times and percentiles at or below, a target of 0 (a count of bad
things) at or below; a module can state the direction itself with the lists
``lower_is_better`` / ``higher_is_better`` in its JSON.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
# Modules of bench/ that are not benchmarks (no ``main`` run, or a helper's).
HELPERS = frozenset({"__init__", "run_all", "workload", "meta", "report", "api_ws"})
DEFAULT_TIMEOUT_S = 1800
# Keys that name a time or a percentile pass at or below their target.
TIME_SUFFIXES = ("_ns", "_us", "_ms", "_s")
PERCENTILE_MARKS = ("_p50", "_p90", "_p99", "_p999", "latency")


def has_main(path: Path) -> bool:
    """True if the module defines a top-level ``main`` (read, not imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main"
        for node in tree.body
    )


def discover(bench_dir: Path = BENCH_DIR) -> list[str]:
    """Names of the benchmark modules in ``bench_dir``, sorted."""
    return sorted(
        p.stem
        for p in bench_dir.glob("*.py")
        if p.stem not in HELPERS and not p.stem.startswith("_") and has_main(p)
    )


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object on the last non-empty line of ``stdout``."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("no output")
    obj = json.loads(lines[-1])
    if not isinstance(obj, dict):
        raise ValueError("last line is not a JSON object")
    return obj


def run_one(name: str, extra: list[str], timeout_s: int) -> tuple[dict[str, Any] | None, str]:
    """Run ``python -m bench.<name> --json``; returns (result or None, error text)."""
    cmd = [sys.executable, "-m", f"bench.{name}", "--json", *extra]
    try:
        p = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout_s} s"
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-15:])
        return None, f"exit {p.returncode}\n{tail}"
    try:
        return last_json(p.stdout), ""
    except ValueError as e:
        return None, f"bad output: {e}"


def headline(result: dict[str, Any]) -> list[str]:
    """Keys of ``result`` to show in the table."""
    keys = result.get("headline")
    if isinstance(keys, list):
        return [k for k in keys if k in result]
    return [
        k
        for k, v in result.items()
        if isinstance(v, int | float)
        and not isinstance(v, bool)
        and (k.endswith("_per_s") or k.endswith("_ns"))
        and not k.startswith("target_")
    ]


def lower_is_better(key: str, target: Any, result: dict[str, Any]) -> bool:
    """Whether ``key`` passes at or below its target (else at or above).

    The JSON may say so itself (``lower_is_better`` / ``higher_is_better``: lists
    of keys); otherwise rates (``*_per_s``) are higher-is-better, times and
    percentiles (``*_ns``, ``*_us``, ``*_ms``, ``*_s``, ``_p50`` ...) lower, a
    target of 0 is a count of bad things (lower), and anything else is higher.
    """
    if key in result.get("lower_is_better", ()):
        return True
    if key in result.get("higher_is_better", ()):
        return False
    if key.endswith("_per_s"):
        return False
    if key.endswith(TIME_SUFFIXES) or any(p in key for p in PERCENTILE_MARKS):
        return True
    return bool(target == 0)


def verdict(key: str, value: Any, target: Any, result: dict[str, Any] | None = None) -> str:
    """PASS / MISS of ``value`` against ``target`` (see ``lower_is_better``), '' if none."""
    if not isinstance(target, int | float) or not isinstance(value, int | float):
        return ""
    if lower_is_better(key, target, result or {}):
        return "PASS" if value <= target else "MISS"
    return "PASS" if value >= target else "MISS"


def fmt_target(key: str, target: Any, result: dict[str, Any]) -> str:
    """The target with its direction, e.g. '>= 3,000,000' or '<= 1,000'."""
    if not isinstance(target, int | float) or isinstance(target, bool):
        return ""
    return ("<= " if lower_is_better(key, target, result) else ">= ") + fmt(target)


def fmt(v: Any) -> str:
    """Numbers with thousands separators; anything else as text."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return "" if v is None else str(v)


def table(results: dict[str, dict[str, Any] | None], errors: dict[str, str]) -> str:
    """The summary table over all modules."""
    rows = [("module", "metric", "value", "target", "")]
    for name, r in results.items():
        if r is None:
            rows.append((name, "FAILED", errors.get(name, "").splitlines()[0], "", ""))
            continue
        for k in headline(r):
            t = r.get(f"target_{k}")
            rows.append((name, k, fmt(r[k]), fmt_target(k, t, r), verdict(k, r[k], t, r)))
        if "state_hash" in r:
            rows.append((name, "state_hash", str(r["state_hash"])[:16], "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for j, row in enumerate(rows):
        cells = [
            row[i].ljust(widths[i]) if i in (0, 1) else row[i].rjust(widths[i]) for i in range(5)
        ]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; exit 1 if any failed (the others still run)."""
    ap = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated module names (default: all)")
    ap.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="seconds per module")
    ap.add_argument("--list", action="store_true", help="print the modules found and exit")
    ap.add_argument("extra", nargs="*", help="arguments passed to every module (after --)")
    args = ap.parse_args(argv)
    names = discover()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            ap.error(f"unknown benchmark(s): {', '.join(unknown)} (found: {', '.join(names)})")
        names = [n for n in names if n in wanted]
    if args.list:
        print("\n".join(names))
        return 0
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any] | None] = {}
    errors: dict[str, str] = {}
    for name in names:
        t0 = time.monotonic()
        print(f"bench.{name} ...", end=" ", flush=True)
        r, err = run_one(name, args.extra, args.timeout)
        results[name] = r
        if r is None:
            errors[name] = err
            print(f"FAILED ({err.splitlines()[0]})")
            print(err, file=sys.stderr)
        else:
            out = RESULTS_DIR / f"{name}.json"
            out.write_text(json.dumps(r, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            print(f"done in {time.monotonic() - t0:.0f} s -> {out.relative_to(ROOT)}")
    print()
    print(table(results, errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
