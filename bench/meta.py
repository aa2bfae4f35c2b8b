"""Helpers shared by the benchmarks: run metadata and latency percentiles.

Every benchmark JSON carries the versions and the CPU it ran on (so a figure
can be compared with another run) and quotes latencies as percentiles of an
HDR histogram.  This module has no ``main``: ``bench.run_all`` does not run it.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

# HDR histogram range and precision: 1 ns .. 60 s, 3 significant digits.
HDR_LOWEST_NS = 1
HDR_HIGHEST_NS = 60_000_000_000
HDR_DIGITS = 3
# Points per halving of the distance to the 100th percentile in a latency series.
SERIES_TICKS = 5


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cython_version() -> str:
    """Version of the Cython the extensions were built with (the installed one)."""
    try:
        return importlib.metadata.version("Cython")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def run_info(seed: int) -> dict[str, str | int]:
    """Versions, CPU and seed: the fields every benchmark JSON carries."""
    return {
        "python": platform.python_version(),
        "python_impl": sys.implementation.name,
        "numpy": np.__version__,
        "cython": cython_version(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count() or 0,
        "os": platform.platform(),
        "seed": seed,
    }


def median_int(values: Sequence[int | float]) -> int:
    """Median of a non-empty sequence, rounded to an integer."""
    assert values, "median of nothing"
    return round(statistics.median(values))


def hdr_histogram(values_ns: Sequence[int] | np.ndarray) -> Any:
    """An HDR histogram (1 ns .. 60 s, 3 digits) of latencies in ns; values below
    1 ns are recorded as 1 ns, above 60 s as 60 s."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(HDR_LOWEST_NS, HDR_HIGHEST_NS, HDR_DIGITS)
    vals = np.clip(np.asarray(values_ns, dtype=np.int64), HDR_LOWEST_NS, HDR_HIGHEST_NS)
    # Record each distinct value once with its count: the same histogram, far
    # fewer Python calls than one record per sample.
    uniq, counts = np.unique(vals, return_counts=True)
    for v, k in zip(uniq.tolist(), counts.tolist(), strict=True):
        h.record_value(v, k)
    return h


def latency_series(
    name: str,
    values_ns: Sequence[int] | np.ndarray,
    durability: str,
    rate_per_s: int | None = None,
    ticks_per_half_distance: int = SERIES_TICKS,
) -> dict[str, Any]:
    """One entry of a benchmark's ``percentiles`` list: the latency distribution of
    one run (one offered rate, one durability mode) as HdrHistogram's percentile
    series, for the report's plots (``bench/plots.py``).

    Parameters
    ----------
    name : str
        What was timed (``"fsync_ack"``, ``"ack"``, ...); entries of one name at
        several ``rate_per_s`` form one curve of latency against offered rate.
    values_ns : sequence of int or numpy.ndarray
        Latencies in ns (from the planned send time where the run is open loop).
    durability : str
        ``"fsync"``, ``"async"`` or ``"none"`` (the journal mode of the run).
    rate_per_s : int or None
        Offered rate of an open-loop run; None for a closed loop.
    ticks_per_half_distance : int
        HdrHistogram's percentile iterator resolution (5 points per halving of
        the distance to 100%, as its ``PercentileIterator`` output).

    Returns
    -------
    dict
        ``name``, ``durability``, ``rate_per_s``, ``count``, ``p50_us``,
        ``p99_us``, ``p999_us``, ``max_us`` and ``points``: ``[percentile,
        value_us]`` pairs, percentile ascending, the last one 100 (the maximum).
    """
    h = hdr_histogram(values_ns)
    points: list[list[float]] = []
    if len(values_ns):
        for it in h.get_percentile_iterator(ticks_per_half_distance):
            pt = [round(float(it.percentile_level_iterated_to), 6), _us(it.value_iterated_to)]
            if not points or pt != points[-1]:
                points.append(pt)
    return {
        "name": name,
        "durability": durability,
        "rate_per_s": rate_per_s,
        "count": len(values_ns),
        "p50_us": _us(h.get_value_at_percentile(50.0)),
        "p99_us": _us(h.get_value_at_percentile(99.0)),
        "p999_us": _us(h.get_value_at_percentile(99.9)),
        "max_us": _us(h.get_max_value()),
        "points": points,
    }


def _us(ns: int) -> float:
    return round(int(ns) / 1000, 3)


def percentiles_ns(
    values_ns: Sequence[int] | np.ndarray, shift_ns: int = 0, prefix: str = ""
) -> dict[str, int]:
    """p50, p90, p99, p99.9, p99.99 and max of latencies (ns) via an HDR histogram.

    Parameters
    ----------
    values_ns : sequence of int or numpy.ndarray
        Latencies in nanoseconds; values below 1 ns are recorded as 1 ns.
    shift_ns : int
        Subtracted from every reported percentile (clamped at 0); used to
        report a latency with a measured constant overhead taken out.
    prefix : str
        Prepended to each key (``"service_"`` gives ``service_p99_ns``).

    Returns
    -------
    dict of str to int
        ``{prefix}p50_ns``, ``p90_ns``, ``p99_ns``, ``p999_ns``, ``p9999_ns``,
        ``max_ns``, ``count``.
    """
    h = hdr_histogram(values_ns)
    n = len(values_ns)
    out = {
        f"{prefix}p50_ns": h.get_value_at_percentile(50.0),
        f"{prefix}p90_ns": h.get_value_at_percentile(90.0),
        f"{prefix}p99_ns": h.get_value_at_percentile(99.0),
        f"{prefix}p999_ns": h.get_value_at_percentile(99.9),
        f"{prefix}p9999_ns": h.get_value_at_percentile(99.99),
        f"{prefix}max_ns": h.get_max_value(),
    }
    out = {k: max(0, int(v) - shift_ns) for k, v in out.items()}
    out[f"{prefix}count"] = n
    return out


def machine_stalls(duration_ns: int = 300_000_000, threshold_ns: int = 2_000) -> dict[str, int]:
    """How often this CPU is taken away from a spinning thread, and for how long.

    Spins on ``perf_counter_ns`` for ``duration_ns`` and records every gap
    longer than ``threshold_ns`` (timer interrupts, preemption, hypervisor
    exits).  Any latency percentile at or beyond ``1 - stolen`` is bounded below
    by these stalls whatever the code under test does.

    Returns
    -------
    dict of str to int
        ``stalls_per_s``, ``stall_median_ns``, ``stall_max_ns``,
        ``stall_spacing_median_ns`` (between stall starts), ``stolen_permille``
        (share of the spin lost to stalls, per thousand).
    """
    pc = time.perf_counter_ns
    starts: list[int] = []
    lengths: list[int] = []
    t_start = last = pc()
    end = t_start + duration_ns
    while last < end:
        t = pc()
        if t - last > threshold_ns:
            starts.append(last)
            lengths.append(t - last)
        last = t
    spacing = [b - a for a, b in itertools.pairwise(starts)]
    elapsed = max(1, last - t_start)
    return {
        "stalls_per_s": len(lengths) * 1_000_000_000 // elapsed,
        "stall_median_ns": median_int(lengths) if lengths else 0,
        "stall_max_ns": max(lengths, default=0),
        "stall_spacing_median_ns": median_int(spacing) if spacing else 0,
        "stolen_permille": sum(lengths) * 1000 // elapsed,
    }
