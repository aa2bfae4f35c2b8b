"""Tests of the benchmark report (bench/report.py, bench/plots.py) and its run directories.

The fixture ``fixtures/quick-run/`` is the saved output of a real ``make bench
BENCH_ARGS=--quick`` on the development machine (run.json and some modules' JSON,
unchanged); ``test_run_all_writes_a_report`` runs real benchmarks in ``--quick``
mode end to end.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import report
from bench.meta import latency_series, percentiles_ns
from bench.run_all import ROOT, discover, run_dir

FIXTURE = Path(__file__).parent / "fixtures" / "quick-run"
LATENCY_MODULES = ("core", "e2e", "snapshot_stall")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LINK = re.compile(r"\]\(([^)]+)\)")


def fixture_run(tmp_path: Path) -> Path:
    """A copy of the saved quick run (the report is written into it)."""
    d = tmp_path / "results" / "2026-12-05-quick"
    shutil.copytree(FIXTURE, d)
    return d


def assert_valid_png(path: Path) -> None:
    """``path`` is a PNG that decodes, of a plausible size."""
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        w, h = im.size
    assert w >= 300 and h >= 200, (path, w, h)


def linked_files(markdown: str, base: Path) -> list[Path]:
    """Every relative file a markdown text links or embeds, resolved against ``base``."""
    return [base / m for m in LINK.findall(markdown) if "://" not in m]


def test_report_lists_every_module_and_every_figure_exists(tmp_path: Path) -> None:
    d = fixture_run(tmp_path)
    manifest = json.loads((d / "run.json").read_text())
    (path,) = report.build(d)
    text = path.read_text()
    for name in manifest["suite"]:
        assert re.search(rf"^\| bench\.{name} \|", text, re.M), f"{name} not in the module table"
        assert f"### bench.{name}" in text
    links = linked_files(text, d)
    pngs = [p for p in links if p.suffix == ".png"]
    assert {p.name for p in pngs} >= {f"percentiles_{m}.png" for m in LATENCY_MODULES}
    assert "throughput.png" in {p.name for p in pngs}
    for p in links:
        assert p.exists(), f"the report links {p.name}, which is not there"
    for p in pngs:
        assert_valid_png(p)
    # Machine, commit and the drift note are stated.
    assert manifest["machine"]["cpu"] in text
    assert manifest["commit"] in text
    assert "drift" in text and "Ratios" in text


def test_every_latency_figure_states_its_durability(tmp_path: Path) -> None:
    d = fixture_run(tmp_path)
    text = report.build(d)[0].read_text()
    latency = r"^\*(bench\.\w+: (?:latency by percentile|p50 and p99)[^*]*)\*$"
    captions = re.findall(latency, text, re.M)
    assert len(captions) >= len(LATENCY_MODULES)
    for c in captions:
        modes = re.search(r"Durability: ([^.]+)\.", c)
        assert modes, c
        assert set(modes.group(1).split(", ")) <= set(report.MODES), c
        assert "machine load" in c
    # The series table: one row per series, each naming fsync, async or none.
    section = text.split("## Latency series", 1)[1].split("\n## ", 1)[0]
    rows = [ln.split(" | ") for ln in section.splitlines() if ln.startswith("| bench.")]
    n_series = sum(
        len(report.series(json.loads((d / f"{m}.json").read_text())))
        for m in json.loads((d / "run.json").read_text())["selected"]
        if (d / f"{m}.json").exists()
    )
    assert len(rows) == n_series >= len(LATENCY_MODULES)
    assert {r[2] for r in rows} <= set(report.MODES)


def test_missing_and_failed_modules_are_reported_failed(tmp_path: Path) -> None:
    d = fixture_run(tmp_path)
    manifest = json.loads((d / "run.json").read_text())
    # The record says snapshot_stall succeeded, but its result file is gone.
    (d / "snapshot_stall.json").unlink()
    # The record says e2e failed, with its error.
    manifest["modules"]["e2e"] = {"status": "failed", "error": "exit 1\nboom: gateway died"}
    # The run stopped before sim: no record, no result.
    del manifest["modules"]["sim"]
    (d / "sim.json").unlink()
    (d / "run.json").write_text(json.dumps(manifest))
    run = report.load_run(d)
    assert run.status["sim"] == "FAILED" and "stopped before it" in run.errors["sim"]
    assert run.status["snapshot_stall"] == "FAILED"
    assert "missing" in run.errors["snapshot_stall"]
    assert run.status["e2e"] == "FAILED"
    text = report.build(d)[0].read_text()
    assert re.search(r"^\| bench\.snapshot_stall \| FAILED \|", text, re.M)
    assert re.search(r"^\| bench\.e2e \| FAILED \|", text, re.M)
    assert "boom: gateway died" in text
    assert "snapshot_stall.json is missing" in text


def test_without_run_json_every_known_benchmark_is_listed(tmp_path: Path) -> None:
    d = fixture_run(tmp_path)
    (d / "run.json").unlink()
    (d / "sim.json").unlink()
    run = report.load_run(d)
    assert run.status["sim"] == "FAILED" and "missing" in run.errors["sim"]
    for name in discover():
        assert name in run.modules
        if not (d / f"{name}.json").exists():
            assert run.status[name] == "FAILED", name
    text = report.build(d)[0].read_text()
    assert re.search(r"^\| bench\.sim \| FAILED \|", text, re.M)
    assert "Intel" in text  # the machine, from the results' own run info
    assert "no run.json" in text


def test_latest_links_resolve_from_the_results_directory(tmp_path: Path) -> None:
    d = fixture_run(tmp_path)
    assert report.main([str(d), "--latest"]) == 0
    latest = d.parent / "LATEST.md"
    text = latest.read_text()
    assert f"{d.name}/report.md" in text
    links = linked_files(text, d.parent)
    assert any(p.suffix == ".png" for p in links)
    for p in links:
        assert p.exists(), p


def test_report_main_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "nope")])


def test_durability_of_each_figure() -> None:
    r = {"durability": {"inproc_cmds_per_s": "none (in memory)"}}
    assert report.durability(r, "inproc_cmds_per_s") == "none (in memory)"
    assert report.durability(r, "fsync_ack_p99_us") == "fsync"
    assert report.durability(r, "async_ack_p50_over_echo") == "async"
    assert report.durability(r, "fdatasync_p50_us") == "baseline (no journal)"
    assert report.durability({"durability_mode": "fsync"}, "seeds_per_s") == "fsync"
    assert report.durability({}, "seeds_per_s") == report.NOT_STATED
    assert report.durability({"durability": {"a": "x", "b": "y"}}) == "mixed: x; y"


def test_latency_series_matches_the_percentiles() -> None:
    lat = np.random.default_rng(7).lognormal(11, 1, 20_000).astype(np.int64)
    s = latency_series("ack", lat, "fsync", 1_000)
    p = percentiles_ns(lat)
    assert s["count"] == 20_000 and s["durability"] == "fsync" and s["rate_per_s"] == 1_000
    assert s["p99_us"] == pytest.approx(p["p99_ns"] / 1000, abs=0.001)
    pts = s["points"]
    assert len(pts) > 20
    assert pts[-1][0] == 100.0 and pts[-1][1] == pytest.approx(p["max_ns"] / 1000, abs=0.001)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(pts))
    # The value at the first point past 99% is the histogram's p99 (to its precision).
    v99 = next(v for q, v in pts if q >= 99.0)
    assert v99 == pytest.approx(s["p99_us"], rel=0.01)
    assert latency_series("none", [], "none")["points"] == []


def test_a_second_run_the_same_day_gets_its_own_directory(tmp_path: Path) -> None:
    a = run_dir(tmp_path, "2026-12-05", False)
    b = run_dir(tmp_path, "2026-12-05", False)
    c = run_dir(tmp_path, "2026-12-05", True)
    assert [a.name, b.name, c.name] == ["2026-12-05", "2026-12-05-2", "2026-12-05-quick"]


def test_run_all_writes_a_report(tmp_path: Path) -> None:
    """Real benchmarks (``--quick``) through run_all: JSON, run.json, report, plots."""
    p = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--quick", "--only", "core,por",
         "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    (d,) = tmp_path.iterdir()
    assert d.name.endswith("-quick")
    manifest = json.loads((d / "run.json").read_text())
    assert manifest["quick"] and manifest["module_args"] == ["--quick"]
    assert manifest["selected"] == ["core", "por"]
    for name in ("core", "por"):
        assert manifest["modules"][name]["status"] == "ok"
        assert (d / f"{name}.json").exists()
    core = json.loads((d / "core.json").read_text())
    assert [(e["durability"], e["rate_per_s"]) for e in core["percentiles"]] == [
        ("fsync", core["fsync_ack_rate_cmds_per_s"]),
        ("fsync", core["process_fsync_ack_rate_cmds_per_s"]),
        # The core alone on both trade links and their floors (zmq, stream), one in
        # flight (bench/_corealone.py).
        ("none", core["core_alone_rate_per_s"]),
        ("none", core["core_alone_rate_per_s"]),
        ("async", core["core_alone_rate_per_s"]),
        ("async", core["core_alone_rate_per_s"]),
        ("fsync", core["core_alone_rate_per_s"]),
        ("fsync", core["core_alone_rate_per_s"]),
    ]
    assert all(e["count"] > 0 and e["points"][-1][0] == 100.0 for e in core["percentiles"])
    text = (d / "report.md").read_text()
    # The modules of the suite not selected are listed as not run, not left out.
    for name in discover():
        assert f"| bench.{name} |" in text
    assert re.search(r"^\| bench\.engine \| not run \|", text, re.M)
    assert_valid_png(d / "percentiles_core.png")
    assert_valid_png(d / "rates_core.png")
    assert_valid_png(d / "throughput.png")
    assert not (tmp_path / "LATEST.md").exists()  # --only runs leave LATEST alone


def test_a_module_that_fails_is_reported_failed(tmp_path: Path) -> None:
    """A real failure (the module rejects its arguments): exit 1, FAILED with the error."""
    p = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--only", "por", "--results", str(tmp_path),
         "--", "--no-such-flag"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert p.returncode == 1, p.stdout + p.stderr
    (d,) = tmp_path.iterdir()
    manifest = json.loads((d / "run.json").read_text())
    assert manifest["modules"]["por"]["status"] == "failed"
    assert manifest["modules"]["por"]["exit_code"] == 2
    assert not (d / "por.json").exists()
    text = (d / "report.md").read_text()
    assert re.search(r"^\| bench\.por \| FAILED \|", text, re.M)
    assert "unrecognized arguments: --no-such-flag" in text


def test_baselines_are_times_and_rates_not_counts() -> None:
    assert report.is_baseline("echo_rtt_p50_us")
    assert report.is_baseline("fdatasync_p99_us")
    assert report.is_baseline("feed_events_per_s_reference")
    assert report.is_baseline("sqlite_entries_per_s_python_map")
    assert not report.is_baseline("fdatasync_samples")
    assert not report.is_baseline("echo_rtt_p9999_us")
    assert not report.is_baseline("background_snapshots_no_snapshot")
    assert not report.is_baseline("fsync_ack_p50_us")
