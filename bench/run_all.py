"""Run every benchmark and write the report (``make bench``).

A benchmark is any ``bench/<name>.py`` that defines a top-level ``main``, other
than the helpers listed in ``HELPERS``; modules added later (``bench/api.py``,
...) are picked up without touching this file.  Each runs in its own process as
``python -m bench.<name> --json`` (plus ``--quick`` with ``--quick``, plus the
arguments after ``--``) and must print one JSON object on its last line.

Everything of one run goes to a new directory ``bench/results/<YYYY-MM-DD>/``
(``<date>-quick`` for ``--quick``; a later run the same day gets ``-2``, ``-3``,
... and never overwrites an earlier one): ``<name>.json`` per module that
succeeded, ``run.json`` (date, commit, machine, per module its status, time,
error text and the machine's load while it ran), then ``report.md`` and the
PNG plots from ``bench.report``.  A run of the whole suite (no ``--only``) also
rewrites ``bench/results/LATEST.md``, the newest report (README links it).

The table printed at the end shows, per module, the keys listed in the JSON's
``headline`` (or, without one, every top-level ``*_per_s`` / ``*_ns`` number),
each with its target when the JSON has ``target_<key>``: throughputs
(``*_per_s``) pass at or above it, times and percentiles at or below, a target
of 0 (a count of bad things) at or below; a module can state the direction
itself with the lists ``lower_is_better`` / ``higher_is_better`` in its JSON.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.meta import machine_stalls, run_info

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
# Modules of bench/ that are not benchmarks (no ``main`` run, or a helper's).
HELPERS = frozenset({"__init__", "run_all", "workload", "meta", "report", "plots", "api_ws"})
# The run's record in its directory, and the pointer to the newest report.
MANIFEST_NAME = "run.json"
LATEST_NAME = "LATEST.md"
# bench.snapshot_stall took over 30 min on the shared machine at load 13.
DEFAULT_TIMEOUT_S = 3600
# Keys that name a time or a percentile pass at or below their target.
TIME_SUFFIXES = ("_ns", "_us", "_ms", "_s")
PERCENTILE_MARKS = ("_p50", "_p90", "_p99", "_p999", "latency")
TIME_UNITS = frozenset({"ns", "us", "ms"})
PERCENTILE_TOKEN = re.compile(r"p\d+")


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
    r, err, _info = run_module(name, extra, timeout_s)
    return r, err


def run_module(
    name: str, extra: list[str], timeout_s: int
) -> tuple[dict[str, Any] | None, str, dict[str, Any]]:
    """Run ``python -m bench.<name> --json`` and watch the machine while it runs.

    Returns (result or None, error text, run info): the info holds the exit code,
    the seconds taken and the 1-minute load average at the start, at the end and
    the highest seen (sampled every second): how loaded the shared machine was
    while this module measured.
    """
    cmd = [sys.executable, "-m", f"bench.{name}", "--json", *extra]
    load0 = load_1m()
    t0 = time.monotonic()
    peak = load0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # Its own session: on a timeout the module AND the processes it started
        # (a core, a gateway, subscribers) are killed, none left running.
        p = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=err, text=True, start_new_session=True
        )
        timed_out = False
        try:
            while True:
                try:
                    p.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    peak = max(peak, load_1m())
                    if time.monotonic() - t0 > timeout_s:
                        kill_group(p)
                        timed_out = True
                        break
        except BaseException:
            # Ctrl-C reaches only our group now: take the module's down with us.
            kill_group(p)
            raise
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    info: dict[str, Any] = {
        "command": " ".join(["python", *cmd[1:]]),
        "exit_code": p.returncode,
        "seconds": round(time.monotonic() - t0, 1),
        "load_1m_start": load0,
        "load_1m_end": load_1m(),
        "load_1m_max": max(peak, load_1m()),
    }
    if timed_out:
        return None, f"timed out after {timeout_s} s", info
    if p.returncode != 0:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        return None, f"exit {p.returncode}\n{tail}", info
    try:
        return last_json(stdout), "", info
    except ValueError as e:
        return None, f"bad output: {e}", info


def kill_group(p: subprocess.Popen[str]) -> None:
    """SIGKILL the process group ``p`` leads (``p`` was started in a new session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def load_1m() -> float:
    """The machine's 1-minute load average (0.0 where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0


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
    # A unit or a percentile anywhere in the name: ``p99_us_at_100k``.
    tokens = key.split("_")
    if TIME_UNITS & set(tokens) or any(PERCENTILE_TOKEN.fullmatch(t) for t in tokens):
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


def run_dir(results_dir: Path, day: str, quick: bool) -> Path:
    """A new directory for this run: ``<day>`` (``<day>-quick`` for ``--quick``), or,
    when that exists already, the first free ``<name>-2``, ``<name>-3``, ...: a second
    run the same day never overwrites the first."""
    base = day + ("-quick" if quick else "")
    d = results_dir / base
    k = 2
    while d.exists():
        d = results_dir / f"{base}-{k}"
        k += 1
    d.mkdir(parents=True)
    return d


def git_commit() -> dict[str, Any]:
    """The checked-out commit and whether the tree differs from it (outside bench/results)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": False}
    return {"commit": head, "dirty": bool(status.strip())}


def machine() -> dict[str, Any]:
    """The machine the suite ran on (``bench.meta.run_info`` without the seed), its
    memory, and how often a spinning thread loses its CPU (``machine_stalls``)."""
    info: dict[str, Any] = {k: v for k, v in run_info(0).items() if k != "seed"}
    info["memory_gib"] = memory_gib()
    # Niceness of the runner (and so of every module): make bench under ``nice`` yields
    # the CPU to other jobs, which shows in every figure measured on a loaded machine.
    info["nice"] = os.nice(0) if hasattr(os, "nice") else 0
    info["stalls"] = machine_stalls()
    return info


def memory_gib() -> float:
    """Total memory in GiB from /proc/meminfo (0.0 elsewhere)."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return 0.0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the report; exit 1 if any failed (the others still run)."""
    ap = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated module names (default: all)")
    ap.add_argument("--quick", action="store_true", help="pass --quick to every module")
    ap.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="seconds per module")
    ap.add_argument("--list", action="store_true", help="print the modules found and exit")
    ap.add_argument("--results", default=str(RESULTS_DIR), help="where the run directory goes")
    ap.add_argument(
        "--no-latest", action="store_true", help=f"leave {LATEST_NAME} alone (default: update it)"
    )
    ap.add_argument("extra", nargs="*", help="arguments passed to every module (after --)")
    args = ap.parse_args(argv)
    names = discover()
    suite = list(names)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            ap.error(f"unknown benchmark(s): {', '.join(unknown)} (found: {', '.join(names)})")
        names = [n for n in names if n in wanted]
    if args.list:
        print("\n".join(names))
        return 0
    extra = (["--quick"] if args.quick else []) + list(args.extra)
    started = datetime.datetime.now(datetime.UTC)
    out_dir = run_dir(Path(args.results), started.strftime("%Y-%m-%d"), args.quick)
    manifest: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d"),
        "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": args.quick,
        "module_args": extra,
        "suite": suite,
        "selected": names,
        **git_commit(),
        "machine": machine(),
        "modules": {},
    }
    results: dict[str, dict[str, Any] | None] = {}
    errors: dict[str, str] = {}
    print(f"results -> {out_dir.relative_to(ROOT) if out_dir.is_relative_to(ROOT) else out_dir}")
    for name in names:
        print(f"bench.{name} ...", end=" ", flush=True)
        r, err, info = run_module(name, extra, args.timeout)
        results[name] = r
        if r is None:
            errors[name] = err
            info["status"] = "failed"
            info["error"] = err
            print(f"FAILED ({err.splitlines()[0]})")
            print(err, file=sys.stderr)
        else:
            info["status"] = "ok"
            out = out_dir / f"{name}.json"
            out.write_text(json.dumps(r, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            print(f"done in {info['seconds']:.0f} s (load {info['load_1m_max']})")
        manifest["modules"][name] = info
        # Written after every module: an interrupted run still leaves a readable record.
        write_manifest(out_dir, manifest)
    manifest["finished_utc"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_manifest(out_dir, manifest)
    print()
    print(table(results, errors))
    from bench import report

    print()
    for path in report.build(out_dir, latest=not args.only and not args.no_latest):
        print(f"written: {path}")
    return 1 if errors else 0


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """``run.json``: what ran, where, when, how each module ended (bench.report reads it)."""
    path = out_dir / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
