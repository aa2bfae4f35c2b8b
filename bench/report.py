"""The benchmark report: ``report.md`` and PNG plots of one run directory.

Usage::

    .venv/bin/python -m bench.report bench/results/2026-12-05 [--latest]

``bench.run_all`` calls ``build`` at the end of every run; this command rebuilds
the report from the saved JSON without running anything (after a change to the
report, or on a directory copied from another machine).  ``--latest`` also
rewrites ``bench/results/LATEST.md`` (in the directory's parent) to show it.

A run directory holds ``<module>.json`` per benchmark that succeeded and
``run.json`` (written by ``bench.run_all``: date, commit, machine, the modules
of the suite and how each one ended, with the machine's load while it ran).
Without ``run.json`` the modules are the JSON files present plus every
benchmark ``bench.run_all`` finds today; one without a JSON file is reported as
FAILED, never left out.

The report lists every module with its status, the headline keys with their
targets and PASS/MISS, the durability mode of every figure, the baselines of
the same run (echo RTT, fdatasync, reference implementations) and the ratios to
them, the latency series of each run, and embeds the plots of ``bench.plots``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import plots
from bench.run_all import (
    LATEST_NAME,
    MANIFEST_NAME,
    discover,
    fmt,
    fmt_target,
    headline,
    verdict,
)

REPORT_NAME = "report.md"
THROUGHPUT_PNG = "throughput.png"
# Keys that measure a baseline of the same run rather than bursa itself.
BASELINE_MARKS = ("echo_rtt", "fdatasync", "reference", "noop", "python_map", "no_snapshot")
# Keys that compare a figure with a baseline of the same run.
RATIO_MARKS = ("_over_", "_minus_")
MODES = ("fsync", "async", "none")
NOT_STATED = "not stated"
DRIFT_NOTE = (
    "Absolute numbers measured on a shared machine drift with its load (the load "
    "during each module is in the table above and under every plot): compare them "
    "only between runs on a quiet machine. Ratios to a baseline measured in the "
    "same run (echo round trip, fdatasync, the reference implementations) hold."
)


@dataclass
class Run:
    """One run directory read back: its record, the results and how each module ended."""

    directory: Path
    manifest: dict[str, Any]
    modules: list[str]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def info(self, name: str) -> dict[str, Any]:
        """What ``run.json`` says about module ``name`` (empty without it)."""
        mods = self.manifest.get("modules", {})
        got = mods.get(name, {}) if isinstance(mods, dict) else {}
        return got if isinstance(got, dict) else {}


def load_run(directory: Path) -> Run:
    """Read a run directory (see the module docstring for what counts as failed)."""
    manifest: dict[str, Any] = {}
    mpath = directory / MANIFEST_NAME
    if mpath.exists():
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    present = sorted(p.stem for p in directory.glob("*.json") if p.name != MANIFEST_NAME)
    if manifest:
        selected = list(manifest.get("selected", []))
        suite = list(manifest.get("suite", selected))
    else:
        selected = sorted(set(present) | set(discover()))
        suite = selected
    names = selected + [n for n in present if n not in selected]
    run = Run(directory, manifest, names + [n for n in suite if n not in names])
    for name in run.modules:
        path = directory / f"{name}.json"
        info = run.info(name)
        if name not in names:
            run.status[name] = "not run"
            run.errors[name] = "not selected in this run (--only)"
            continue
        if info.get("status") == "failed":
            run.status[name] = "FAILED"
            run.errors[name] = str(info.get("error", "failed"))
            continue
        if not path.exists():
            run.status[name] = "FAILED"
            run.errors[name] = f"no result: {path.name} is missing"
            if manifest and not info:
                run.errors[name] += " and run.json has no record of it (the run stopped before it?)"
            continue
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            run.status[name] = "FAILED"
            run.errors[name] = f"unreadable result {path.name}: {e}"
            continue
        if not isinstance(obj, dict):
            run.status[name] = "FAILED"
            run.errors[name] = f"{path.name} is not a JSON object"
            continue
        run.results[name] = obj
        run.status[name] = "ok"
    return run


def durability(result: dict[str, Any], key: str | None = None) -> str:
    """The durability mode of figure ``key`` of a result (of the whole module if None).

    In order: the module's ``durability`` dict entry for the key; a mode named in
    the key itself (``fsync_ack_p50_us``: fsync); a baseline key (echo, fdatasync:
    no journal involved); the module's ``durability`` / ``durability_mode`` text;
    the one mode every entry of its ``durability`` dict shares; else "not stated".
    """
    d = result.get("durability", result.get("durability_mode"))
    if key is not None:
        if isinstance(d, dict) and key in d:
            return str(d[key])
        tokens = key.split("_")
        for mode in MODES:
            if mode in tokens:
                return mode
        if any(m in key for m in ("echo_rtt", "fdatasync")):
            return "baseline (no journal)"
    if isinstance(d, str):
        return d
    if isinstance(d, dict) and d:
        values = {str(v) for v in d.values()}
        return values.pop() if len(values) == 1 else "mixed: " + "; ".join(sorted(values))
    return NOT_STATED


def short_mode(text: str) -> str:
    """``fsync`` for "fsync (fdatasync per batch)": the mode a description starts with,
    else the description itself."""
    first = text.replace("(", " ").split()[0] if text.strip() else text
    return first if first in MODES else text


def module_durability(result: dict[str, Any]) -> str:
    """Every durability mode among a module's headline figures and latency series."""
    modes = {short_mode(durability(result, k)) for k in headline(result)}
    modes |= {short_mode(str(e.get("durability", NOT_STATED))) for e in series(result)}
    if len(modes) > 1:
        modes.discard(NOT_STATED)
    return ", ".join(sorted(modes)) if modes else durability(result)


def series(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The module's latency series (its ``percentiles`` list; entries of
    ``bench.meta.latency_series``), malformed entries left out."""
    got = result.get("percentiles", [])
    if not isinstance(got, list):
        return []
    return [e for e in got if isinstance(e, dict) and isinstance(e.get("points"), list)]


def is_baseline(key: str) -> bool:
    """A baseline figure worth a row: a time or rate (not a count), at p50, p99 or
    p99.9 when it is a percentile."""
    if not any(mk in key for mk in BASELINE_MARKS):
        return False
    tokens = set(key.split("_"))
    if tokens & {"p90", "p9999", "max", "samples", "count"}:
        return False
    return bool(tokens & {"ns", "us", "ms"}) or "_per_" in key


def load_note(run: Run, name: str | None = None) -> str:
    """The machine's load while ``name`` ran (or over the run), for a plot's foot."""
    m = run.manifest
    when = f"{m.get('date', '?')}, commit {str(m.get('commit', '?'))[:10]}"
    cpus = m.get("machine", {}).get("cpus", "?")
    if name is not None:
        info = run.info(name)
        if "load_1m_start" in info:
            return (
                f"machine load (1-min average, {cpus} CPUs) during bench.{name}: start "
                f"{info['load_1m_start']}, max {info['load_1m_max']}, end "
                f"{info['load_1m_end']}; {when}"
            )
        return f"machine load during bench.{name}: not recorded; {when}"
    loads = [run.info(n).get("load_1m_max") for n in run.results]
    seen = [x for x in loads if isinstance(x, int | float)]
    top = f"max {max(seen)}" if seen else "not recorded"
    return f"machine load (1-min average, {cpus} CPUs) over the run: {top}; {when}"


def throughput_bars(run: Run) -> list[plots.Bar]:
    """Every headline throughput (``*_per_s``) of every module that succeeded."""
    bars = []
    for name, r in run.results.items():
        for k in headline(r):
            v = r.get(k)
            if k.endswith("_per_s") and isinstance(v, int | float) and not isinstance(v, bool):
                bars.append(plots.Bar(f"{name}: {k}", float(v), durability(r, k)))
    return bars


def make_plots(run: Run) -> list[tuple[str, str]]:
    """Write every figure of the run; returns (file name, caption) pairs in order."""
    out: list[tuple[str, str]] = []
    for name, r in run.results.items():
        entries = series(r)
        if not entries:
            continue
        modes = ", ".join(sorted({str(e.get("durability", NOT_STATED)) for e in entries}))
        note = load_note(run, name)
        fname = f"percentiles_{name}.png"
        plots.percentile_plot(
            f"bench.{name}: latency by percentile (durability: {modes})",
            entries,
            note,
            run.directory / fname,
        )
        out.append((fname, f"bench.{name}: latency by percentile. Durability: {modes}. {note}."))
        if any(e.get("rate_per_s") for e in entries):
            fname = f"rates_{name}.png"
            plots.rate_plot(
                f"bench.{name}: p50 / p99 latency vs offered rate (durability: {modes})",
                entries,
                note,
                run.directory / fname,
            )
            out.append(
                (fname, f"bench.{name}: p50 and p99 vs offered rate. Durability: {modes}. {note}.")
            )
    bars = throughput_bars(run)
    if bars:
        note = load_note(run)
        plots.throughput_plot(
            "Throughput per component (durability mode of each bar in brackets)",
            bars,
            note,
            run.directory / THROUGHPUT_PNG,
        )
        out.append((THROUGHPUT_PNG, f"Throughput per component. {note}."))
    return out


def _cell(v: Any) -> str:
    return fmt(v).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def machine_lines(run: Run) -> list[str]:
    """The machine table (from run.json, or from the first result's run info)."""
    m = dict(run.manifest.get("machine", {}))
    if not m:
        for r in run.results.values():
            info = r.get("run", r)
            keys = ("cpu", "cpus", "os", "python", "numpy", "cython")
            m = {k: info[k] for k in keys if k in info}
            if m:
                break
    rows = []
    for key, label in (
        ("cpu", "CPU"),
        ("cpus", "CPUs"),
        ("memory_gib", "memory (GiB)"),
        ("os", "OS"),
        ("python", "Python"),
        ("numpy", "numpy"),
        ("cython", "Cython"),
        ("nice", "niceness of the run"),
    ):
        if key in m:
            rows.append([label, str(m[key])])
    st = m.get("stalls")
    if isinstance(st, dict):
        rows.append(
            [
                "CPU taken from a spinning thread",
                f"{st.get('stalls_per_s', '?')}/s, median {st.get('stall_median_ns', '?')} ns, "
                f"{st.get('stolen_permille', '?')}‰ of the time (bench.meta.machine_stalls)",
            ]
        )
    if not rows:
        return ["Machine: not recorded."]
    return _table(["", ""], rows)


def render(run: Run, figures: list[tuple[str, str]], prefix: str = "") -> str:
    """The report's markdown; ``prefix`` is put before every file link (LATEST.md)."""
    m = run.manifest
    date = m.get("date") or run.directory.name[:10]
    commit = str(m.get("commit", "unknown"))
    if m.get("dirty"):
        commit += " (plus uncommitted changes)"
    kind = "quick (`--quick`: small runs, a smoke test)" if m.get("quick") else "full"
    if not m:
        kind = "kind not recorded (no run.json)"
    lines = [f"# bursa benchmark report, {date}", ""]
    lines += [
        f"- Run: `{run.directory.name}`, {kind}; started {m.get('started_utc', '?')}, "
        f"finished {m.get('finished_utc', 'not recorded (interrupted?)')}",
        f"- Commit: `{commit}`",
        f"- Module arguments: `{' '.join(m.get('module_args', [])) or '(none)'}`",
        "- Rebuild this report from the saved JSON: "
        f"`python -m bench.report bench/results/{run.directory.name}`",
        "",
        "## Machine",
        "",
        *machine_lines(run),
        "",
        f"> {DRIFT_NOTE}",
        "",
        "## Modules",
        "",
    ]
    rows = []
    for name in run.modules:
        info = run.info(name)
        r = run.results.get(name)
        load = f"{info['load_1m_start']} / {info['load_1m_max']}" if "load_1m_max" in info else "?"
        status = run.status[name]
        link = f"[{name}.json]({prefix}{name}.json)" if r is not None else ""
        rows.append(
            [
                f"bench.{name}",
                status,
                f"{info['seconds']:.0f} s" if "seconds" in info else "?",
                load,
                module_durability(r) if r is not None else "",
                link,
            ]
        )
    lines += _table(
        ["module", "status", "time", "load 1m start / max", "durability", "result"], rows
    )
    failed = [n for n in run.modules if run.status[n] != "ok"]
    if failed:
        lines += ["", "### Failed or not run", ""]
        for name in failed:
            lines += [f"**bench.{name}: {run.status[name]}**", "", "```", run.errors[name], "```"]
    lines += ["", "## Headline figures", ""]
    for name in run.modules:
        r = run.results.get(name)
        lines += [f"### bench.{name}", ""]
        if r is None:
            lines += [f"{run.status[name]}: {run.errors[name].splitlines()[0]}", ""]
            continue
        rows = []
        for k in headline(r):
            t = r.get(f"target_{k}")
            rows.append(
                [k, fmt(r[k]), fmt_target(k, t, r), verdict(k, r[k], t, r), durability(r, k)]
            )
        if "state_hash" in r:
            rows.append(["state_hash", str(r["state_hash"])[:16], "", "", ""])
        lines += [*_table(["metric", "value", "target", "verdict", "durability"], rows), ""]
    lines += [
        "## Baselines and ratios (same run)",
        "",
        "Each ratio divides (or subtracts) a figure by a baseline measured in the same run "
        "on the same machine, so it holds while the absolute numbers drift.",
        "",
    ]
    rows = []
    for name, r in run.results.items():
        for k, v in r.items():
            if k.startswith("target_") or not isinstance(v, int | float) or isinstance(v, bool):
                continue
            is_ratio = any(mk in k for mk in RATIO_MARKS)
            if is_ratio or is_baseline(k):
                t = r.get(f"target_{k}")
                rows.append(
                    [
                        f"bench.{name}",
                        k,
                        "ratio" if is_ratio else "baseline",
                        fmt(v),
                        fmt_target(k, t, r),
                        verdict(k, v, t, r),
                        durability(r, k),
                    ]
                )
    lines += (
        _table(["module", "key", "kind", "value", "target", "verdict", "durability"], rows)
        if rows
        else ["(no baseline in this run)"]
    )
    lines += ["", "## Latency series", ""]
    rows = []
    for name, r in run.results.items():
        for e in series(r):
            rate = e.get("rate_per_s")
            rows.append(
                [
                    f"bench.{name}",
                    str(e.get("name", "?")),
                    str(e.get("durability", NOT_STATED)),
                    fmt(rate) if rate else "closed loop",
                    fmt(e.get("count")),
                    fmt(e.get("p50_us")),
                    fmt(e.get("p99_us")),
                    fmt(e.get("p999_us")),
                    fmt(e.get("max_us")),
                ]
            )
    lines += (
        _table(
            [
                "module",
                "series",
                "durability",
                "offered /s",
                "samples",
                "p50 µs",
                "p99 µs",
                "p99.9 µs",
                "max µs",
            ],
            rows,
        )
        if rows
        else ["(no latency series in this run)"]
    )
    lines += [
        "",
        "Latencies are from each command's planned send time (coordinated-omission free), "
        "recorded in an HdrHistogram; docs/benchmarks.md says what each series times.",
        "",
        "## Plots",
        "",
    ]
    for fname, caption in figures:
        lines += [f"![{caption}]({prefix}{fname})", "", f"*{caption}*", ""]
    if not figures:
        lines += ["(no figure: no module produced data to plot)", ""]
    return "\n".join(lines).rstrip() + "\n"


def build(directory: Path, latest: bool = False) -> list[Path]:
    """Read ``directory``, write its plots and ``report.md`` (and with ``latest``
    ``LATEST.md`` in its parent); returns the paths of the markdown written."""
    run = load_run(directory)
    figures = make_plots(run)
    path = directory / REPORT_NAME
    path.write_text(render(run, figures), encoding="utf-8")
    out = [path]
    if latest:
        out.append(write_latest(run, figures))
    return out


def write_latest(run: Run, figures: list[tuple[str, str]]) -> Path:
    """Rewrite ``LATEST.md`` next to the run directory: its report, every link into it.

    A plain markdown file rather than a symlink: it works in any checkout (Windows
    included) and on the forge's web view, and it is diffed like any other file.
    """
    name = run.directory.name
    head = (
        f"<!-- Generated by bench.report from {name}/; rewritten by every `make bench` "
        "of the whole suite and by `python -m bench.report DIR --latest`. -->\n"
        f"Newest benchmark run: [`{name}/`]({name}/{REPORT_NAME}).\n\n"
    )
    path = run.directory.parent / LATEST_NAME
    path.write_text(head + render(run, figures, f"{name}/"), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """Rebuild the report of a run directory from its saved JSON."""
    ap = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    ap.add_argument("directory", help="a run directory, e.g. bench/results/2026-12-05")
    ap.add_argument("--latest", action="store_true", help=f"also rewrite ../{LATEST_NAME}")
    args = ap.parse_args(argv)
    d = Path(args.directory)
    if not d.is_dir():
        ap.error(f"not a directory: {d}")
    for path in build(d, latest=args.latest):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
