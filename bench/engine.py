"""Order-book benchmark: the exchange-core single-symbol workload through ``pyx.book.Book``.

Usage::

    .venv/bin/python -m bench.engine --json [--commands N] [--seed S]

What is measured (durability mode ``none``: the book alone, in memory, no journal):

- ``per_call_cmds_per_s`` (the headline): the loop a caller of the per-call
  API really runs: ``book.seq`` stamped before every command, the command
  dispatched to ``book.new_limit`` / ``book.replace`` / ``book.cancel``, and its
  events read back (the slice of ``book.events()`` it appended, its TRADEs
  counted; the total must equal the workload's trades); events cleared every
  ``--chunk`` commands.  ``per_call_bare_cmds_per_s`` is the bare dispatch loop
  (no seq, nothing read back) and ``per_call_stamped_cmds_per_s`` the bare loop
  with ``book.seq`` set: extra keys showing where the time goes.
- ``batch_cmds_per_s``: ``book.process(cmds)`` on ``--chunk``-record slices.
- ``noop_cmds_per_s``: the same dispatch loop calling a Python object whose
  methods do nothing: the price of the Python loop and call alone, measured in
  the same process so the ratios hold on a noisy machine.
- Latency through the per-call API on the first ``--latency-commands``
  commands, commands released on a fixed schedule (``--latency-rate``):
  ``p50_ns`` / ``p99_ns`` / ``p999_ns`` are the response time from each
  command's *planned* send time to its return (coordinated-omission free: a
  stall delays every command behind it and is counted for each), including one
  ``perf_counter_ns`` read.  ``service_*`` is the call alone (timestamps right
  before and after it); ``service_net_*`` subtracts the median back-to-back
  ``perf_counter_ns`` gap measured in the same run (an estimate, labelled so).

Throughputs are medians over ``--repeats`` fresh books (each pre-filled, the
pre-fill untimed), by wall clock (the headline keys) and by the thread's CPU
time (``*_cpu_cmds_per_s``: what the run costs when other processes share the
CPU); ``best_cmds_per_s`` holds the fastest run of each.  Every run must end
with the same ``state_hash`` (asserted) and the book's fills and final orders
must match the generator's model.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from bench.meta import latency_series, machine_stalls, median_int, percentiles_ns, run_info
from pyx.enums import CmdKind, EvKind
from sim.bookflow import Workload, WorkloadConfig, generate

TARGET_PER_CALL_CMDS_PER_S = 3_000_000
TARGET_BATCH_CMDS_PER_S = 10_000_000
TARGET_P99_NS = 1_000

DEFAULT_CHUNK = 4096
DEFAULT_REPEATS = 7
DEFAULT_LATENCY_COMMANDS = 200_000
# Offered load of the latency run: one command every 2 us, well under the
# per-call capacity, so the percentiles show service plus jitter, not a queue.
DEFAULT_LATENCY_RATE = 500_000

NEW = int(CmdKind.NEW)
CANCEL = int(CmdKind.CANCEL)
REPLACE = int(CmdKind.REPLACE)
TRADE = int(EvKind.TRADE)

Row = tuple[int, int, int, int, int, int, int, int]  # seq kind oid uid side price qty tif


class NoOpBook:
    """The per-call API with methods that do nothing (the dispatch baseline)."""

    seq = 0

    def new_limit(
        self,
        order_id: int,
        user_id: int,
        side: int,
        price_ticks: int,
        qty_lots: int,
        tif: int = 1,
        stp: int = 0,
        post_only: bool = False,
    ) -> int:
        """Accept the arguments of ``Book.new_limit``; no events."""
        return 0

    def replace(self, order_id: int, price_ticks: int, qty_lots: int) -> int:
        """Accept the arguments of ``Book.replace``; no events."""
        return 0

    def cancel(self, order_id: int) -> int:
        """Accept the arguments of ``Book.cancel``; no events."""
        return 0

    def clear_events(self) -> None:
        """Nothing to clear."""


def rows_of(cmds: np.ndarray, chunk: int) -> list[list[Row]]:
    """Commands as chunks of Python tuples: what a Python caller holds (untimed)."""
    cols = [
        cmds[f].tolist()
        for f in ("seq", "kind", "order_id", "user_id", "side", "price_ticks", "qty_lots", "tif")
    ]
    rows: list[Row] = list(zip(*cols, strict=True))
    return [rows[i : i + chunk] for i in range(0, len(rows), chunk)]


def run_per_call(book: Any, chunks: Sequence[Sequence[Row]]) -> int:
    """Dispatch every command through the per-call API; returns elapsed ns."""
    new_limit, replace, cancel = book.new_limit, book.replace, book.cancel
    clear = book.clear_events
    t0 = time.perf_counter_ns()
    for chunk in chunks:
        for _seq, kind, oid, uid, side, price, qty, tif in chunk:
            if kind == REPLACE:
                replace(oid, price, qty)
            elif kind == NEW:
                new_limit(oid, uid, side, price, qty, tif)
            else:
                cancel(oid)
        clear()
    return time.perf_counter_ns() - t0


def run_per_call_realistic(
    book: Any, chunks: Sequence[Sequence[Row]], trades_seen: list[int]
) -> int:
    """Stamp ``book.seq``, dispatch, read the command's events back (count its
    TRADEs), as a core or gateway calling the per-call API would; returns
    elapsed ns and appends the trades read to ``trades_seen``."""
    new_limit, replace, cancel = book.new_limit, book.replace, book.cancel
    events, clear = book.events, book.clear_events
    count = np.count_nonzero
    trades = 0
    t0 = time.perf_counter_ns()
    for chunk in chunks:
        n0 = 0
        for seq, kind, oid, uid, side, price, qty, tif in chunk:
            book.seq = seq
            if kind == REPLACE:
                k = replace(oid, price, qty)
            elif kind == NEW:
                k = new_limit(oid, uid, side, price, qty, tif)
            else:
                k = cancel(oid)
            trades += int(count(events()["kind"][n0 : n0 + k] == TRADE))
            n0 += k
        clear()
    elapsed = time.perf_counter_ns() - t0
    trades_seen.append(trades)
    return elapsed


def run_per_call_stamped(book: Any, chunks: Sequence[Sequence[Row]]) -> int:
    """As ``run_per_call``, also setting ``book.seq`` before each call."""
    new_limit, replace, cancel = book.new_limit, book.replace, book.cancel
    clear = book.clear_events
    t0 = time.perf_counter_ns()
    for chunk in chunks:
        for seq, kind, oid, uid, side, price, qty, tif in chunk:
            book.seq = seq
            if kind == REPLACE:
                replace(oid, price, qty)
            elif kind == NEW:
                new_limit(oid, uid, side, price, qty, tif)
            else:
                cancel(oid)
        clear()
    return time.perf_counter_ns() - t0


def run_batch(book: Any, slices: Sequence[np.ndarray]) -> int:
    """Run every slice through ``book.process``; returns elapsed ns."""
    process = book.process
    t0 = time.perf_counter_ns()
    for s in slices:
        process(s)
    return time.perf_counter_ns() - t0


def run_latency(
    book: Any, chunks: Sequence[Sequence[Row]], interval_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-call latency with commands released every ``interval_ns``.

    Returns
    -------
    (response_ns, service_ns) : tuple of numpy.ndarray
        Response: return time minus the command's planned send time.
        Service: return time minus the time the call was issued.
    """
    n = sum(len(c) for c in chunks)
    resp = [0] * n
    svc = [0] * n
    new_limit, replace, cancel = book.new_limit, book.replace, book.cancel
    clear = book.clear_events
    pc = time.perf_counter_ns
    i = 0
    planned = pc() + interval_ns
    for chunk in chunks:
        for _seq, kind, oid, uid, side, price, qty, tif in chunk:
            t0 = pc()
            while t0 < planned:
                t0 = pc()
            if kind == REPLACE:
                replace(oid, price, qty)
            elif kind == NEW:
                new_limit(oid, uid, side, price, qty, tif)
            else:
                cancel(oid)
            t1 = pc()
            resp[i] = t1 - planned
            svc[i] = t1 - t0
            planned += interval_ns
            i += 1
        clear()
    return np.asarray(resp, dtype=np.int64), np.asarray(svc, dtype=np.int64)


def timer_gaps(n: int) -> np.ndarray:
    """Back-to-back ``perf_counter_ns`` gaps: the cost of one timestamp pair."""
    pc = time.perf_counter_ns
    gaps = [0] * n
    for i in range(n):
        t0 = pc()
        t1 = pc()
        gaps[i] = t1 - t0
    return np.asarray(gaps, dtype=np.int64)


def fresh_book(wl: Workload) -> Any:
    """A new ``pyx.book.Book`` holding the workload's pre-fill (untimed)."""
    from pyx.book import Book

    book = Book(**wl.config.book_kwargs())
    ev = book.process(wl.prefill)
    assert not np.any(ev["kind"] == EvKind.REJECTED), "pre-fill rejected"
    book.clear_events()
    return book


def verify(wl: Workload, slices: Sequence[np.ndarray]) -> tuple[bytes, int, int]:
    """Run the stream once (untimed) and check the book against the generator's model.

    Returns
    -------
    (state_hash, trades, trading_commands)
    """
    book = fresh_book(wl)
    trades = trading = rejects = 0
    for s in slices:
        ev = book.process(s)
        tr = ev["seq"][ev["kind"] == EvKind.TRADE]
        trades += len(tr)
        trading += len(np.unique(tr))
        rejects += int(np.count_nonzero(ev["kind"] == EvKind.REJECTED))
    assert rejects == 0, f"{rejects} commands rejected: the workload named dead orders"
    assert trades == wl.trades, (trades, wl.trades)
    assert trading == wl.trading_commands, (trading, wl.trading_commands)
    assert book.n_orders == wl.resting_orders_end, (book.n_orders, wl.resting_orders_end)
    assert [r[:5] for r in book.l3()] == wl.l3_end, "final book differs from the model"
    return bytes(book.state_hash()), trades, trading


def timed(runs: dict[str, list[int]], name: str, fn: Callable[[], int], commands: int) -> None:
    """Record one run's throughput (commands per second) under ``name``.

    Two clocks: wall time (``name``) and this thread's CPU time (``name_cpu``),
    which leaves out the time other processes on a shared machine held the
    CPU; on an idle machine the two agree.
    """
    gc.collect()
    c0 = time.thread_time_ns()
    ns = fn()
    cpu_ns = time.thread_time_ns() - c0
    runs.setdefault(name, []).append(commands * 1_000_000_000 // max(1, ns))
    runs.setdefault(f"{name}_cpu", []).append(commands * 1_000_000_000 // max(1, cpu_ns))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, verify, time, and return the result dictionary."""
    load0 = round(os.getloadavg()[0], 2)
    t0 = time.perf_counter_ns()
    wl = generate(WorkloadConfig(commands=args.commands, seed=args.seed))
    generate_ms = (time.perf_counter_ns() - t0) // 1_000_000
    n = len(wl.commands)
    slices = [wl.commands[i : i + args.chunk] for i in range(0, n, args.chunk)]
    chunks = rows_of(wl.commands, args.chunk)
    state_hash, trades, trading = verify(wl, slices)
    gc.collect()
    gc.freeze()  # the command tuples are permanent: keep them out of GC passes

    runs: dict[str, list[int]] = {}
    for _ in range(args.repeats):
        # Interleaved so that drift on a shared machine hits every variant alike.
        timed(runs, "noop", partial(run_per_call, NoOpBook(), chunks), n)
        book = fresh_book(wl)
        seen: list[int] = []
        timed(runs, "per_call", partial(run_per_call_realistic, book, chunks, seen), n)
        assert bytes(book.state_hash()) == state_hash, "per-call run: state hash differs"
        assert seen == [trades], f"per-call run read back {seen} trades, not {trades}"
        book = fresh_book(wl)
        timed(runs, "per_call_bare", partial(run_per_call, book, chunks), n)
        assert bytes(book.state_hash()) == state_hash, "bare per-call run: state hash differs"
        book = fresh_book(wl)
        timed(runs, "per_call_stamped", partial(run_per_call_stamped, book, chunks), n)
        assert bytes(book.state_hash()) == state_hash, "stamped run: state hash differs"
        book = fresh_book(wl)
        timed(runs, "batch", partial(run_batch, book, slices), n)
        assert bytes(book.state_hash()) == state_hash, "batch run: state hash differs"

    lat_n = min(args.latency_commands, n)
    lat_chunks = rows_of(wl.commands[:lat_n], args.chunk)
    interval_ns = 1_000_000_000 // args.latency_rate
    gc.collect()
    book = fresh_book(wl)
    # Involuntary context switches: how often the OS took the CPU away during
    # the run (each one stalls every command scheduled behind it).
    csw0 = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
    resp, svc = run_latency(book, lat_chunks, interval_ns)
    preempted = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - csw0
    stalls = machine_stalls()
    gaps = timer_gaps(lat_n)
    gap = percentiles_ns(gaps, prefix="timer_overhead_")

    med = {k: median_int(v) for k, v in runs.items()}
    lat = percentiles_ns(resp)
    out: dict[str, Any] = {
        "bench": "engine",
        "headline": [
            "per_call_cmds_per_s",
            "batch_cmds_per_s",
            "noop_cmds_per_s",
            "p50_ns",
            "p99_ns",
            "p999_ns",
            "trades",
            "resting_orders_end",
        ],
        "durability": "none (in-memory book only, no journal)",
        "commands": n,
        "trades": trades,
        "trading_commands": trading,
        "resting_orders_end": wl.resting_orders_end,
        "levels_end": wl.levels_end,
        "per_call_cmds_per_s": med["per_call"],
        "per_call_mode": "book.seq stamped per command, its events read back (TRADEs counted)",
        "per_call_bare_cmds_per_s": med["per_call_bare"],
        "per_call_stamped_cmds_per_s": med["per_call_stamped"],
        "batch_cmds_per_s": med["batch"],
        "noop_cmds_per_s": med["noop"],
        "per_call_ns_per_cmd": 1_000_000_000 // max(1, med["per_call"]),
        "batch_ns_per_cmd": round(1e9 / max(1, med["batch"]), 1),
        "noop_ns_per_cmd": 1_000_000_000 // max(1, med["noop"]),
        "per_call_over_noop": round(med["noop"] / max(1, med["per_call"]), 3),
        "per_call_over_bare": round(med["per_call_bare"] / max(1, med["per_call"]), 3),
        "batch_over_per_call": round(med["batch"] / max(1, med["per_call"]), 3),
        "per_call_cpu_cmds_per_s": med["per_call_cpu"],
        "batch_cpu_cmds_per_s": med["batch_cpu"],
        "noop_cpu_cmds_per_s": med["noop_cpu"],
        "best_cmds_per_s": {k: max(v) for k, v in runs.items()},
        "runs_cmds_per_s": runs,
        "p50_ns": lat["p50_ns"],
        "p99_ns": lat["p99_ns"],
        "p999_ns": lat["p999_ns"],
        "percentiles": [latency_series("per-call response", resp, "none", args.latency_rate)],
        "latency": {
            "method": "per-call API; response = return time - planned send time "
            "(coordinated-omission free), includes one perf_counter_ns read",
            "offered_cmds_per_s": args.latency_rate,
            "involuntary_context_switches": preempted,
            "machine_stalls": stalls,
            **lat,
            **percentiles_ns(svc, prefix="service_"),
            **percentiles_ns(svc, shift_ns=gap["timer_overhead_p50_ns"], prefix="service_net_"),
            **gap,
        },
        "target_per_call_cmds_per_s": TARGET_PER_CALL_CMDS_PER_S,
        "target_batch_cmds_per_s": TARGET_BATCH_CMDS_PER_S,
        "target_p99_ns": TARGET_P99_NS,
        "pass_per_call": med["per_call"] >= TARGET_PER_CALL_CMDS_PER_S,
        "pass_batch": med["batch"] >= TARGET_BATCH_CMDS_PER_S,
        "pass_p99": lat["p99_ns"] <= TARGET_P99_NS,
        "state_hash": state_hash.hex(),
        "workload": wl.summary(),
        "chunk": args.chunk,
        "repeats": args.repeats,
        "generate_ms": generate_ms,
        "gc": "enabled (command tuples frozen)",
        "loadavg_1m_start_end": [load0, round(os.getloadavg()[0], 2)],
    }
    out.update(run_info(args.seed))
    return out


def report(r: dict[str, Any]) -> str:
    """Human-readable summary of a result dictionary."""

    def mark(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    lat = r["latency"]
    return "\n".join(
        [
            f"bench.engine: {r['commands']:,} commands (seed {r['seed']}), "
            f"durability {r['durability']}; {r['cpu']}, Python {r['python']}",
            f"  trades {r['trades']:,}  trading commands {r['trading_commands']:,}  "
            f"resting at end {r['resting_orders_end']:,} on {r['levels_end']} levels",
            f"  per-call  {r['per_call_cmds_per_s']:>12,} cmd/s  (seq stamped, events read) "
            f"(target {r['target_per_call_cmds_per_s']:,}: {mark(r['pass_per_call'])})",
            f"  bare      {r['per_call_bare_cmds_per_s']:>12,} cmd/s  (no seq, nothing read back)",
            f"  stamped   {r['per_call_stamped_cmds_per_s']:>12,} cmd/s  (bare + book.seq set)",
            f"  batch     {r['batch_cmds_per_s']:>12,} cmd/s  "
            f"(target {r['target_batch_cmds_per_s']:,}: {mark(r['pass_batch'])})",
            f"  no-op     {r['noop_cmds_per_s']:>12,} cmd/s  (same loop, Python no-op methods)",
            f"  by CPU time: per-call {r['per_call_cpu_cmds_per_s']:,}  batch "
            f"{r['batch_cpu_cmds_per_s']:,}  no-op {r['noop_cpu_cmds_per_s']:,} cmd/s; "
            f"load average {r['loadavg_1m_start_end']}",
            f"  latency at {lat['offered_cmds_per_s']:,} cmd/s offered: p50 {r['p50_ns']} ns  "
            f"p99 {r['p99_ns']} ns  p99.9 {r['p999_ns']} ns  "
            f"(target p99 {r['target_p99_ns']} ns: {mark(r['pass_p99'])})",
            f"  ({lat['involuntary_context_switches']} involuntary context switches during it; "
            f"this CPU stalls {lat['machine_stalls']['stalls_per_s']}/s for "
            f"{lat['machine_stalls']['stall_median_ns']} ns, "
            f"{lat['machine_stalls']['stolen_permille']} permille of the time)\n  "
            f"service p50/p99 {lat['service_p50_ns']}/{lat['service_p99_ns']} ns, "
            f"timer pair {lat['timer_overhead_p50_ns']} ns, net of it "
            f"{lat['service_net_p50_ns']}/{lat['service_net_p99_ns']} ns",
            f"  state hash {r['state_hash']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a summary (unless ``--json``) and the JSON line."""
    ap = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--commands", type=int, default=WorkloadConfig.commands)
    ap.add_argument("--seed", type=int, default=WorkloadConfig.seed)
    ap.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="commands per batch / clear")
    ap.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    ap.add_argument("--latency-commands", type=int, default=DEFAULT_LATENCY_COMMANDS)
    ap.add_argument("--latency-rate", type=int, default=DEFAULT_LATENCY_RATE, help="offered cmds/s")
    ap.add_argument("--quick", action="store_true", help="100,000 commands, 3 repeats")
    args = ap.parse_args(argv)
    if args.quick:
        args.commands, args.repeats = 100_000, 3
        args.latency_commands = min(args.latency_commands, 50_000)
    if args.commands < 1 or args.chunk < 1 or args.repeats < 1 or args.latency_rate < 1:
        ap.error("--commands, --chunk, --repeats and --latency-rate must be >= 1")
    result = measure(args)
    if not args.json:
        print(report(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
