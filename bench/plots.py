"""PNG figures of one benchmark run (matplotlib on the Agg backend: no display needed).

Three kinds, each titled with the durability mode of what it shows and footed
with the machine's load while it was measured (``bench.report`` builds the
inputs from the run's JSON):

- ``percentile_plot``: latency against percentile in HdrHistogram's style, the
  percentile on a log ``1 / (1 - p)`` axis (0%, 90%, 99%, 99.9%, ... equally
  spaced), one line per run (offered rate, durability mode);
- ``rate_plot``: p50 (solid) and p99 (dashed) latency against offered rate, one
  pair of lines per kind of run;
- ``throughput_plot``: horizontal bars, one per throughput figure of every
  component, on a log axis (the units differ: commands, messages, entries...).

This module has no ``main``: ``bench.run_all`` does not run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to files, never open a window

import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator

# Percentiles marked on the x axis of a percentile plot (as far as the data reaches).
PERCENTILE_TICKS = (0.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999, 99.99999)
FIGSIZE = (13.0, 5.5)
DPI = 100


@dataclass(frozen=True)
class Bar:
    """One throughput figure: ``label`` (component and key), value, its durability."""

    label: str
    value: float
    durability: str


def percentile_x(percentile: float) -> float:
    """Position of ``percentile`` (0..100, below 100) on the ``1 / (1 - p)`` axis."""
    return 1.0 / (1.0 - percentile / 100.0)


def series_label(entry: dict[str, Any]) -> str:
    """``name @ rate/s [durability]`` of one latency series entry."""
    rate = entry.get("rate_per_s")
    at = f" @ {rate:,}/s" if isinstance(rate, int | float) and rate else ""
    return f"{entry.get('name', '?')}{at} [{entry.get('durability', 'not stated')}]"


def _legend(ax: Any) -> None:
    # Right of the axes, never over the curves; savefig's tight bounding box keeps it.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _finish(fig: Any, ax: Any, title: str, note: str, path: Path) -> Path:
    ax.set_title(title, fontsize=11)
    fig.text(0.01, 0.01, note, fontsize=7, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0.0, 0.04, 1.0, 1.0))
    fig.savefig(path, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def percentile_plot(title: str, entries: Sequence[dict[str, Any]], note: str, path: Path) -> Path:
    """Latency (µs, log) against percentile (log ``1/(1-p)``), one line per entry.

    The 100th percentile (the maximum) has no place on this axis; it is in the
    legend instead.  Entries without points are listed in the legend as empty.
    """
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    top = 1.0
    for e in entries:
        pts = [(percentile_x(p), v) for p, v in e.get("points", []) if p < 100.0 and v > 0]
        label = f"{series_label(e)}, max {e.get('max_us', 0):,.0f} µs"
        if not pts:
            ax.plot([], [], label=f"{label} (no samples)")
            continue
        xs, ys = zip(*pts, strict=True)
        top = max(top, max(xs))
        ax.plot(xs, ys, label=label, linewidth=1.4)
    ticks = [t for t in PERCENTILE_TICKS if percentile_x(t) <= top * 1.0001]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([percentile_x(t) for t in ticks])
    ax.set_xticklabels([f"{t:g}%" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (µs)")
    ax.grid(True, which="major", alpha=0.3)
    _legend(ax)
    return _finish(fig, ax, title, note, path)


def rate_plot(title: str, entries: Sequence[dict[str, Any]], note: str, path: Path) -> Path:
    """p50 (solid) and p99 (dashed) latency against offered rate, log-log; entries of
    one name and durability at several rates form one curve."""
    groups: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for e in entries:
        rate = e.get("rate_per_s")
        if not isinstance(rate, int | float) or not rate:
            continue
        key = (str(e.get("name", "?")), str(e.get("durability", "not stated")))
        groups.setdefault(key, []).append((float(rate), e["p50_us"], e["p99_us"]))
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for i, ((name, dur), pts) in enumerate(sorted(groups.items())):
        pts.sort()
        xs = [p[0] for p in pts]
        color = f"C{i % 10}"
        ax.plot(xs, [p[1] for p in pts], "o-", color=color, label=f"{name} [{dur}] p50")
        ax.plot(xs, [p[2] for p in pts], "s--", color=color, label=f"{name} [{dur}] p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (per second, open loop)")
    ax.set_ylabel("latency (µs)")
    ax.grid(True, which="major", alpha=0.3)
    _legend(ax)
    return _finish(fig, ax, title, note, path)


def throughput_plot(title: str, bars: Sequence[Bar], note: str, path: Path) -> Path:
    """One horizontal bar per throughput figure (log axis), value and durability at its end."""
    height = max(3.0, 0.42 * len(bars) + 1.5)
    fig, ax = plt.subplots(figsize=(10.0, height), dpi=DPI)
    ys = list(range(len(bars)))[::-1]
    vals = [max(b.value, 1e-9) for b in bars]
    ax.barh(ys, vals, color=[f"C{i % 10}" for i in range(len(bars))], alpha=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels([b.label for b in bars], fontsize=8)
    ax.set_xscale("log")
    for y, b, v in zip(ys, bars, vals, strict=True):
        ax.text(v, y, f" {b.value:,.0f}  [{b.durability}]", va="center", fontsize=7)
    if vals:
        ax.set_xlim(right=max(vals) * 300)  # room for the text after the longest bar
    ax.set_xlabel("per second (log scale; the unit is in each name)")
    ax.grid(True, axis="x", which="major", alpha=0.3)
    return _finish(fig, ax, title, note, path)
