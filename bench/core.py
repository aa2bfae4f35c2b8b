"""Core benchmark: risk + matching + settlement, in process and through the journal.

Usage::

    .venv/bin/python -m bench.core --json [--commands N] [--seed S] [--no-process]

Workload: the exchange-core single-symbol stream of ``sim/bookflow.py`` with
1,000 funded users (two assets, a fee tier, one symbol whose band is the
workload's, every user funded in both assets), pre-filled untimed to ~1,000
resting orders.  Every figure states its durability mode.

- ``inproc_cmds_per_s`` (mode: in memory, no journal): ``Core.apply`` on batches
  of ``--batch`` commands (seq/ts stamped beforehand, as the sequencer does).
- ``fsync_cmds_per_s`` / ``async_cmds_per_s`` / ``none_cmds_per_s``:
  ``Sequencer.submit`` on real files (``FileStorage`` in a temporary directory on
  the same file system as ``--dir``), batches of ``--batch`` commands: the group
  commit a saturated core makes (one journal append, and in ``fsync`` mode one
  fdatasync, per batch).
- ``fdatasync_p50_us`` / ``fdatasync_p99_us``: 4 KiB append + fdatasync to a file
  in the same directory, measured in the same run.
- ``fsync_ack_p50_us`` / ``fsync_ack_p99_us`` (mode fsync): open-loop load on the
  in-process sequencer: command k is *planned* at ``t0 + k / rate``; each turn
  takes every command whose planned time has come (group commit) and submits it
  as one batch; a command's latency is from its planned time to the end of its
  batch's ``submit`` (journal append + fdatasync + apply), so a slow sync delays
  every command planned behind it (coordinated-omission free, HDR histogram).
- ``process_fsync_ack_*`` (mode fsync, unless ``--no-process``): the same
  open-loop load through the real ``bursa core`` process over loopback TCP, one
  command per frame from a DEALER client: adds two ZeroMQ hops and the client.
- ``zmq_echo_rtt_*``, ``core_async_ack_*``, ``core_fsync_ack_*`` (unless
  ``--no-alone``; ``bench/_corealone.py``): one NEW in flight at ``--alone-rate``
  from a ``CoreClient`` (DEALER) on loopback TCP, planned send to reply: a bare
  pyzmq ROUTER answering at once (the ZeroMQ floor: both libzmq I/O threads and
  wake-ups), then a real ``bursa core`` in ``async`` and in ``fsync`` mode, all in
  the same run; ``core_fsync_ack_p50_minus_fdatasync_p50_us`` is what the core adds
  beyond the sync (``core_fdatasync_p50_us``: 4 KiB appends measured right before and
  after the fsync run), ``core_async_ack_p50_over_zmq_echo`` what it adds beyond
  the transport.
- ``recovery_s_per_10m_cmds`` (unless ``--no-recovery``): a real data directory
  (journal + event log, ``bench/_recovery.py``) holding ``--recovery-commands``
  (10M) commands and no snapshot; seconds from starting ``bursa core`` on it to its
  ready line (median of ``--recovery-repeats``), target <= 10 s.
  ``recovery_from_snapshot_s``: the same with a snapshot 1M commands (a tenth of
  the journal with ``--quick``) before the end.  ``startup_empty_s``: the same
  process on an empty directory (imports and binds, the fixed part).  ``--quick``
  uses 1M commands and reports ``recovery_quick: true``; the per-10M figure is then
  the fixed part plus ten times the rest (linear in the journal's length).

The final state hash of each run over the same stream is checked equal, and
conservation is checked after each run.  The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from bench import _corealone, _recovery
from bench.meta import latency_series, median_int, percentiles_ns, run_info
from bursa_wire.layout import CMD_DTYPE
from engine.clock import RealClock
from engine.core import Core
from engine.sequencer import Sequencer
from engine.storage import FileStorage
from engine.wire import commands
from sim.bookflow import Workload, WorkloadConfig, generate

TARGET_INPROC_CMDS_PER_S = 2_000_000
TARGET_FSYNC_CMDS_PER_S = 500_000
TARGET_ACK_P50_OVER_FDATASYNC_P50 = 2.0

DEFAULT_COMMANDS = 1_000_000
DEFAULT_USERS = 1_000
DEFAULT_BATCH = 4096
DEFAULT_REPEATS = 3
DEFAULT_FDATASYNC_SAMPLES = 1000
DEFAULT_ACK_RATE = 50_000
DEFAULT_ACK_COMMANDS = 150_000
DEFAULT_PROCESS_RATE = 10_000
DEFAULT_PROCESS_COMMANDS = 30_000
DEFAULT_ALONE_RATE = 200
DEFAULT_ALONE_COMMANDS = 1_000
TARGET_RECOVERY_S_PER_10M_CMDS = 10.0
RECOVERY_COMMANDS = 10_000_000
RECOVERY_SNAPSHOT_BEFORE_END = 1_000_000
RECOVERY_QUICK_SCALE = 10  # --quick: a tenth of the journal
# The process client sleeps (instead of spinning) when its next send is this far off.
CLIENT_SLEEP_NS = 200_000
# Group commit cap of the open-loop run (the server's MAX_BATCH_CMDS).
ACK_BATCH_MAX = 16_384

BASE_ASSET, QUOTE_ASSET = 1, 2
MAKER_PPM, TAKER_PPM = 1_000, 2_000
# Funding per user: far above what any user's orders can hold in this workload
# (price ~6e6 ticks x up to 126 lots, multiplier 1).
QUOTE_PER_USER_MINOR = 10**15
BASE_PER_USER_MINOR = 10**12
MAX_QTY_LOTS = 10_000


def setup_commands(cfg: WorkloadConfig) -> np.ndarray:
    """Assets, fee tier, the symbol and ``cfg.users`` funded users (unstamped)."""
    recs = [
        commands.add_asset(BASE_ASSET, 8),
        commands.add_asset(QUOTE_ASSET, 2),
        commands.add_fee_tier(0, MAKER_PPM, TAKER_PPM),
        commands.add_symbol(
            cfg.symbol_id,
            BASE_ASSET,
            QUOTE_ASSET,
            min_price_ticks=cfg.min_price_ticks,
            max_price_ticks=cfg.max_price_ticks,
            max_qty_lots=MAX_QTY_LOTS,
            protection_ticks=cfg.max_price_ticks,
        ),
    ]
    for uid in range(1, cfg.users + 1):
        recs.append(commands.add_user(uid, 0))
        recs.append(commands.deposit(uid, uid, QUOTE_ASSET, QUOTE_PER_USER_MINOR))
        recs.append(commands.deposit(10**9 + uid, uid, BASE_ASSET, BASE_PER_USER_MINOR))
    return np.concatenate(recs)


def full_stream(wl: Workload) -> tuple[np.ndarray, int]:
    """Setup + prefill + measured stream as one unstamped array; returns it and the
    index where the measured part starts."""
    setup = setup_commands(wl.config)
    head = np.concatenate([setup, wl.prefill])
    allc = np.concatenate([head, wl.commands]).astype(CMD_DTYPE, copy=True)
    allc["seq"] = 0
    allc["ts_ns"] = 0
    return allc, len(head)


def _conserved(core: Any) -> None:
    errors = core.conservation_errors()
    assert not errors, errors[:5]


def bench_inproc(stream: np.ndarray, start: int, batch: int) -> tuple[int, str]:
    """Core.apply throughput over the measured part; returns (elapsed ns, state hash)."""
    stamped = commands.stamp(stream.copy(), 1, 1_700_000_000_000_000_000)
    core = Core()
    _ev, rep = core.apply(stamped[:start])
    assert (rep["status"] == 1).all(), "a setup or prefill command was rejected"
    _conserved(core)
    n = len(stamped)
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for i in range(start, n, batch):
            core.apply(stamped[i : i + batch])
        dt = time.perf_counter_ns() - t0
    finally:
        gc.enable()
    _conserved(core)
    return dt, core.state_hash().hex()


def bench_sequencer(
    stream: np.ndarray, start: int, batch: int, mode: str, base_dir: str
) -> tuple[int, str, dict[str, int]]:
    """Sequencer.submit throughput on real files in ``mode``; (elapsed ns, hash, stats)."""
    d = tempfile.mkdtemp(prefix=f"bench-core-{mode}-", dir=base_dir)
    storage = FileStorage(d)
    try:
        seq = Sequencer.open(
            storage,
            RealClock(),
            mode=mode,
            snapshot_every_cmds=1 << 62,
            snapshot_every_ns=1 << 62,
        )
        for i in range(0, start, batch):
            seq.submit(stream[i : min(i + batch, start)].copy())
        chunks = [stream[i : i + batch].copy() for i in range(start, len(stream), batch)]
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter_ns()
            for c in chunks:
                seq.submit(c)
            dt = time.perf_counter_ns() - t0
        finally:
            gc.enable()
        core: Any = seq.core
        _conserved(core)
        stats = {"batches": seq.stats.batches, "syncs": seq.stats.syncs}
        seq.close()
        return dt, core.state_hash().hex(), stats
    finally:
        storage.close()
        shutil.rmtree(d, ignore_errors=True)


def measure_fdatasync(
    base_dir: str, samples: int, block_bytes: int = 4096, rate_per_s: int = 0
) -> list[int]:
    """fdatasync latencies (ns) of ``block_bytes`` appends to one file in ``base_dir``.

    ``rate_per_s`` 0: back to back.  Otherwise one append + sync per ``1 / rate_per_s``
    with the disk idle between: the journal's own pattern when one command is in flight
    (160 bytes per 1-command batch); a disk (or a VM's virtual disk) may answer a lone
    sync after an idle gap more slowly than back-to-back ones.
    """
    d = tempfile.mkdtemp(prefix="bench-fdatasync-", dir=base_dir)
    path = os.path.join(d, "probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    block = b"\xa5" * block_bytes
    period_ns = 1_000_000_000 // rate_per_s if rate_per_s else 0
    out = []
    try:
        start = time.perf_counter_ns()
        for k in range(samples):
            wait_ns = start + k * period_ns - time.perf_counter_ns()
            if wait_ns > 0:
                time.sleep(wait_ns / 1e9)
            os.write(fd, block)
            t0 = time.perf_counter_ns()
            os.fdatasync(fd)
            out.append(time.perf_counter_ns() - t0)
    finally:
        os.close(fd)
        shutil.rmtree(d, ignore_errors=True)
    return out


def open_loop_sequencer(
    stream: np.ndarray, start: int, rate: int, n_cmds: int, base_dir: str
) -> np.ndarray:
    """Open-loop fsync-mode latencies (ns) through the in-process sequencer."""
    d = tempfile.mkdtemp(prefix="bench-core-ack-", dir=base_dir)
    storage = FileStorage(d)
    try:
        seq = Sequencer.open(
            storage,
            RealClock(),
            mode="fsync",
            snapshot_every_cmds=1 << 62,
            snapshot_every_ns=1 << 62,
        )
        for i in range(0, start, ACK_BATCH_MAX):
            seq.submit(stream[i : min(i + ACK_BATCH_MAX, start)].copy())
        cmds = stream[start : start + n_cmds].copy()
        n = len(cmds)
        lat = np.zeros(n, dtype=np.int64)
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter_ns() + 1_000_000
            # Planned arrival of command k: integer ns, no float accumulation.
            planned = t0 + (np.arange(n, dtype=np.int64) * 1_000_000_000) // rate
            i = 0
            # Each turn submits >= 1 command or waits for the next planned time.
            for _ in range(4 * n + 1_000_000):
                if i >= n:
                    break
                now = time.perf_counter_ns()
                j = int(np.searchsorted(planned, now, side="right"))
                if j <= i:
                    continue  # busy-wait: sub-ms sleeps are too coarse
                j = min(j, i + ACK_BATCH_MAX)
                seq.submit(cmds[i:j])
                done = time.perf_counter_ns()
                lat[i:j] = done - planned[i:j]
                i = j
            assert i >= n, "open-loop run did not finish"
        finally:
            gc.enable()
        _conserved(seq.core)
        seq.close()
        return lat
    finally:
        storage.close()
        shutil.rmtree(d, ignore_errors=True)


def open_loop_process(
    stream: np.ndarray, start: int, rate: int, n_cmds: int, base_dir: str
) -> np.ndarray:
    """Open-loop fsync-mode reply latencies (ns) through a real `bursa core` process."""

    from bindings.client import CoreClient, RoutedClient

    d = tempfile.mkdtemp(prefix="bench-core-proc-", dir=base_dir)
    out_path = os.path.join(d, "ready.out")
    data = os.path.join(d, "data")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(out_path, "wb") as out, open(os.path.join(d, "core.err"), "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bursa", "core", "--data-dir", data, "--mode", "fsync"]
            + [
                f"--{k}-endpoint=tcp://127.0.0.1:*"
                for k in ("trade", "fund", "admin", "pub", "replay")
            ],
            stdout=out,
            stderr=err,
            cwd=root,
            env=dict(os.environ, PYTHONPATH=root),
        )
    try:
        ready: dict[str, Any] = {}
        for _ in range(6000):
            with open(out_path) as f:
                line = f.readline()
            if line.startswith("{"):
                ready = json.loads(line)
                break
            if proc.poll() is not None:
                raise RuntimeError("bursa core exited early")
            time.sleep(0.01)
        assert ready, "bursa core not ready"
        setup = RoutedClient.from_ready(ready)
        setup.submit(stream[:start])
        setup.close()
        client = CoreClient(ready["trade"])
        cmds = stream[start : start + n_cmds].copy()
        n = len(cmds)
        cmds["client_ref"] = np.arange(n, dtype=np.uint64)
        frames = [cmds[k : k + 1].tobytes() for k in range(n)]
        lat = open_loop_latencies_ns(client.sock, frames, rate, 30_000_000_000)
        client.close()
        admin = CoreClient(ready["admin"])
        ans = admin.control("conservation")
        assert ans["ok"], ans
        admin.close()
        return lat
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def open_loop_latencies_ns(sock: Any, frames: list[bytes], rate: int, slack_ns: int) -> np.ndarray:
    """Send ``frames[k]`` (one command, ``client_ref`` = k) at its planned time, ``rate``
    per second, and return each reply's latency in ns from that PLANNED send time
    (coordinated-omission free).  Gives up ``slack_ns`` after the last planned send."""
    import zmq

    n = len(frames)
    lat = np.zeros(n, dtype=np.int64)
    got = 0
    sent = 0
    t0 = time.perf_counter_ns() + 5_000_000
    planned = t0 + (np.arange(n, dtype=np.int64) * 1_000_000_000) // rate
    planned_l = planned.tolist()
    deadline = t0 + (n * 1_000_000_000) // rate + slack_ns
    reply_dtype = client_reply_dtype()
    gc.collect()
    gc.disable()
    try:
        while got < n and time.perf_counter_ns() < deadline:
            now = time.perf_counter_ns()
            while sent < n and planned_l[sent] <= now:
                sock.send(frames[sent])
                sent += 1
            if sent < n and planned_l[sent] - now > CLIENT_SLEEP_NS:
                # Leave the CPU to the core process (2 cores: no busy spin).
                time.sleep(CLIENT_SLEEP_NS / 2e9)
            elif sent >= n:
                sock.poll(1, zmq.POLLIN)
            while sock.poll(0, zmq.POLLIN):
                body = sock.recv()
                t = time.perf_counter_ns()
                refs = np.frombuffer(body, dtype=reply_dtype)["client_ref"].astype(np.int64)
                lat[refs] = t - planned[refs]
                got += len(refs)
    finally:
        gc.enable()
    assert got == n, f"only {got} of {n} replies"
    return lat


def client_reply_dtype() -> np.dtype[np.void]:
    """REPLY_DTYPE (imported lazily with the client)."""
    from bursa_wire.layout import REPLY_DTYPE

    return REPLY_DTYPE


def rates(key: str, n: int, times_ns: list[int]) -> dict[str, float | int]:
    """Throughput of ``n`` commands over repeated runs: the MEDIAN run under ``key``
    (the headline, docs/benchmarks.md), the best run under ``key_best`` and the
    spread ``(best - worst) / median`` under ``key_spread``."""
    med = n * 1_000_000_000 // median_int(times_ns)
    best = n * 1_000_000_000 // min(times_ns)
    worst = n * 1_000_000_000 // max(times_ns)
    return {key: med, f"{key}_best": best, f"{key}_spread": round((best - worst) / med, 3)}


def _us(ns: int) -> float:
    return round(ns / 1000, 1)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the module docstring, as a JSON-ready dict."""
    cfg = WorkloadConfig(commands=args.commands, seed=args.seed, users=args.users)
    wl = generate(cfg)
    stream, start = full_stream(wl)
    n = len(stream) - start
    base_dir = args.dir
    os.makedirs(base_dir, exist_ok=True)
    result: dict[str, Any] = dict(run_info(args.seed))
    result["bench"] = "core"
    result["workload"] = wl.summary()
    result["batch_cmds"] = args.batch

    fds = measure_fdatasync(base_dir, args.fdatasync_samples)
    fd_pct = percentiles_ns(fds)
    result["fdatasync_p50_us"] = _us(fd_pct["p50_ns"])
    result["fdatasync_p99_us"] = _us(fd_pct["p99_ns"])
    result["fdatasync_samples"] = len(fds)

    hashes = set()
    times = []
    for _ in range(args.repeats):
        dt, h = bench_inproc(stream, start, args.batch)
        times.append(dt)
        hashes.add(h)
    result.update(rates("inproc_cmds_per_s", n, times))
    result["inproc_mode"] = "in memory (no journal)"

    for mode in ("fsync", "async", "none"):
        times = []
        stats: dict[str, int] = {}
        for _ in range(args.repeats):
            dt, h, stats = bench_sequencer(stream, start, args.batch, mode, base_dir)
            times.append(dt)
            hashes.add(h)
        result.update(rates(f"{mode}_cmds_per_s", n, times))
        result[f"{mode}_batches"] = stats["batches"]
        result[f"{mode}_syncs"] = stats["syncs"]
    assert len(hashes) == 1, f"runs disagree on the final state: {hashes}"
    result["state_hash"] = hashes.pop()

    n_ack = min(args.ack_commands, n)
    lat = open_loop_sequencer(stream, start, args.ack_rate, n_ack, base_dir)
    ack = percentiles_ns(lat)
    result.setdefault("percentiles", []).append(
        latency_series("fsync_ack (in-process sequencer)", lat, "fsync", args.ack_rate)
    )
    result["fsync_ack_mode"] = "fsync, in-process sequencer, open loop"
    result["fsync_ack_rate_cmds_per_s"] = args.ack_rate
    result["fsync_ack_commands"] = n_ack
    result["fsync_ack_p50_us"] = _us(ack["p50_ns"])
    result["fsync_ack_p99_us"] = _us(ack["p99_ns"])
    result["fsync_ack_p999_us"] = _us(ack["p999_ns"])
    result["fsync_ack_max_us"] = _us(ack["max_ns"])
    # fdatasync again right after, so the ratio compares like with like.
    fds2 = fds + measure_fdatasync(base_dir, args.fdatasync_samples)
    fd_all = percentiles_ns(fds2)
    result["fdatasync_p50_us"] = _us(fd_all["p50_ns"])
    result["fdatasync_p99_us"] = _us(fd_all["p99_ns"])
    result["fdatasync_samples"] = len(fds2)
    result["fsync_ack_p50_over_fdatasync_p50"] = round(ack["p50_ns"] / fd_all["p50_ns"], 2)

    if args.process:
        n_proc = min(args.process_commands, n)
        plat = open_loop_process(stream, start, args.process_rate, n_proc, base_dir)
        pp = percentiles_ns(plat)
        result.setdefault("percentiles", []).append(
            latency_series("process_fsync_ack (bursa core, TCP)", plat, "fsync", args.process_rate)
        )
        result["process_fsync_ack_mode"] = (
            "fsync, real bursa core process, loopback TCP, 1 command per frame, open loop"
        )
        result["process_fsync_ack_rate_cmds_per_s"] = args.process_rate
        result["process_fsync_ack_commands"] = n_proc
        result["process_fsync_ack_p50_us"] = _us(pp["p50_ns"])
        result["process_fsync_ack_p99_us"] = _us(pp["p99_ns"])
        result["process_fsync_ack_p999_us"] = _us(pp["p999_ns"])
        result["process_fsync_ack_p50_over_fdatasync_p50"] = round(
            pp["p50_ns"] / fd_all["p50_ns"], 2
        )

    if args.recovery:
        result.update(
            measure_recovery(args.recovery_commands, args.quick, args.repeats_recovery, base_dir)
        )

    result["target_inproc_cmds_per_s"] = TARGET_INPROC_CMDS_PER_S
    result["target_fsync_cmds_per_s"] = TARGET_FSYNC_CMDS_PER_S
    result["target_fsync_ack_p50_over_fdatasync_p50"] = TARGET_ACK_P50_OVER_FDATASYNC_P50
    result["headline"] = [
        "inproc_cmds_per_s",
        "fsync_cmds_per_s",
        "async_cmds_per_s",
        "fsync_ack_p50_us",
        "fsync_ack_p99_us",
        "fdatasync_p50_us",
        "fsync_ack_p50_over_fdatasync_p50",
    ]
    result["durability"] = {
        "inproc_cmds_per_s": "none (in memory)",
        "fsync_cmds_per_s": "fsync (fdatasync per batch)",
        "async_cmds_per_s": "async (written, not synced)",
        "none_cmds_per_s": "none (sequencer without journal)",
        "fsync_ack_p50_us": "fsync",
        "process_fsync_ack_p50_us": "fsync",
    }
    if args.alone:
        alone = _corealone.measure(base_dir, args.alone_rate, args.alone_commands, 200)
        for name, lat in alone.pop("series").items():
            mode = "none" if "echo" in name else "fsync" if "fsync" in name else "async"
            result.setdefault("percentiles", []).append(
                latency_series(f"{name} (one in flight)", lat, mode, args.alone_rate)
            )
        result.update(alone)
        result["durability"].update(
            {
                "core_async_ack_p50_us": "async",
                "core_fsync_ack_p50_us": "fsync",
                "core_stream_async_ack_p50_us": "async",
                "core_stream_fsync_ack_p50_us": "fsync",
            }
        )
        result["headline"] += [
            "zmq_echo_rtt_p50_us",
            "core_async_ack_p50_us",
            "core_async_ack_p50_over_zmq_echo",
            "core_fsync_ack_p50_minus_fdatasync_p50_us",
            "stream_echo_rtt_p50_us",
            "core_stream_async_ack_p50_us",
            "core_stream_async_ack_p50_over_stream_echo",
            "core_stream_fsync_ack_p50_minus_fdatasync_p50_us",
        ]
    return result


def measure_recovery(n_cmds: int, quick: bool, repeats: int, base_dir: str) -> dict[str, Any]:
    """The ``recovery_*`` keys: restart of real data directories to the ready line."""
    if quick:
        n_cmds = max(1, n_cmds // RECOVERY_QUICK_SCALE)
    snap_before = max(1, n_cmds * RECOVERY_SNAPSHOT_BEFORE_END // RECOVERY_COMMANDS)
    root = tempfile.mkdtemp(prefix="bench-core-recovery-", dir=base_dir)
    try:
        empty = [_recovery.time_restart(os.path.join(root, "empty"))[0] for _ in range(repeats)]
        plain_dir, snap_dir = os.path.join(root, "journal"), os.path.join(root, "snapshot")
        built = _recovery.build_data_dir(plain_dir, n_cmds)
        built_snap = _recovery.build_data_dir(snap_dir, n_cmds, snap_before)
        plain, snap = [], []
        for _ in range(repeats):
            s, ready = _recovery.time_restart(plain_dir)
            assert ready["last_seq"] == built["last_seq"], (ready["last_seq"], built)
            plain.append(s)
            s, ready = _recovery.time_restart(snap_dir)
            assert ready["last_seq"] == built_snap["last_seq"]
            snap.append(s)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    fixed = float(np.median(empty))
    measured = float(np.median(plain))
    scale = RECOVERY_COMMANDS / n_cmds
    return {
        "recovery_s_per_10m_cmds": round(fixed + max(measured - fixed, 0.0) * scale, 3),
        "recovery_from_snapshot_s": round(float(np.median(snap)), 3),
        "recovery_measured_s": round(measured, 3),
        "recovery_best_s": round(min(plain), 3),
        "startup_empty_s": round(fixed, 3),
        "recovery_commands": n_cmds,
        "recovery_snapshot_before_end_cmds": snap_before,
        "recovery_journal_bytes": built["bytes"],
        "recovery_build_s": built["build_s"],
        "recovery_quick": quick,
        "recovery_mode": "bursa core process, fsync mode, start to ready line, median of "
        f"{repeats}" + (f" (--quick: {n_cmds:,} commands, scaled x{scale:g})" if quick else ""),
        "target_recovery_s_per_10m_cmds": TARGET_RECOVERY_S_PER_10M_CMDS,
    }


def report(r: dict[str, Any]) -> str:
    """Human-readable summary."""
    lines = [
        f"core benchmark ({r['workload']['commands']} commands, "
        f"{r['workload']['users']} users, batch {r['batch_cmds']}) on {r['cpu']}",
        f"  in-process Core.apply      {r['inproc_cmds_per_s']:>12,} cmds/s  (no journal)",
    ]
    for mode in ("fsync", "async", "none"):
        lines.append(f"  sequencer, {mode:<6} journal   {r[f'{mode}_cmds_per_s']:>12,} cmds/s")
    lines.append(f"  fdatasync p50 {r['fdatasync_p50_us']} us, p99 {r['fdatasync_p99_us']} us")
    lines.append(
        f"  fsync ack (open loop {r['fsync_ack_rate_cmds_per_s']:,}/s): p50 "
        f"{r['fsync_ack_p50_us']} us, p99 {r['fsync_ack_p99_us']} us, "
        f"p50/fdatasync p50 = {r['fsync_ack_p50_over_fdatasync_p50']}"
    )
    if "recovery_s_per_10m_cmds" in r:
        lines.append(
            f"  recovery: {r['recovery_s_per_10m_cmds']} s per 10M commands (target "
            f"{r['target_recovery_s_per_10m_cmds']}), {r['recovery_from_snapshot_s']} s from a "
            f"snapshot {r['recovery_snapshot_before_end_cmds']:,} commands before the end; "
            f"{r['recovery_mode']}"
        )
    if "core_async_ack_p50_us" in r:
        lines.append(
            f"  core alone, one in flight ({r['core_alone_rate_per_s']}/s): zmq echo p50 "
            f"{r['zmq_echo_rtt_p50_us']} us, async ack p50 {r['core_async_ack_p50_us']} us "
            f"(x{r['core_async_ack_p50_over_zmq_echo']} echo), fsync ack p50 "
            f"{r['core_fsync_ack_p50_us']} us = fdatasync p50 {r['core_fdatasync_p50_us']} us "
            f"+ {r['core_fsync_ack_p50_minus_fdatasync_p50_us']} us (paced 160-byte fdatasync "
            f"p50 {r['core_fdatasync_paced_p50_us']} us)"
        )
    if "process_fsync_ack_p50_us" in r:
        lines.append(
            f"  through the process (open loop {r['process_fsync_ack_rate_cmds_per_s']:,}/s): "
            f"p50 {r['process_fsync_ack_p50_us']} us, p99 {r['process_fsync_ack_p99_us']} us"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a summary (unless ``--json``) and the JSON line."""
    ap = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--commands", type=int, default=DEFAULT_COMMANDS)
    ap.add_argument("--users", type=int, default=DEFAULT_USERS)
    ap.add_argument("--seed", type=int, default=WorkloadConfig.seed)
    ap.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="commands per group commit")
    ap.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    ap.add_argument("--fdatasync-samples", type=int, default=DEFAULT_FDATASYNC_SAMPLES)
    ap.add_argument("--ack-rate", type=int, default=DEFAULT_ACK_RATE, help="offered cmds/s")
    ap.add_argument("--ack-commands", type=int, default=DEFAULT_ACK_COMMANDS)
    ap.add_argument("--process-rate", type=int, default=DEFAULT_PROCESS_RATE)
    ap.add_argument("--process-commands", type=int, default=DEFAULT_PROCESS_COMMANDS)
    ap.add_argument("--no-process", dest="process", action="store_false")
    ap.add_argument("--no-recovery", dest="recovery", action="store_false")
    ap.add_argument("--no-alone", dest="alone", action="store_false", help="skip core_* / zmq_*")
    ap.add_argument("--alone-rate", type=int, default=DEFAULT_ALONE_RATE, help="one in flight, /s")
    ap.add_argument("--alone-commands", type=int, default=DEFAULT_ALONE_COMMANDS)
    ap.add_argument("--recovery-commands", type=int, default=RECOVERY_COMMANDS)
    ap.add_argument("--repeats-recovery", type=int, default=DEFAULT_REPEATS)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="directory for the journal files")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="50,000 commands, 1 repeat, short runs; recovery on a tenth of the journal (says so)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.commands, args.repeats, args.fdatasync_samples = 50_000, 1, 200
        args.ack_commands, args.process_commands = 20_000, 3_000
        args.alone_commands = 300
    if (
        min(args.commands, args.batch, args.repeats, args.ack_rate, args.users) < 1
        or min(args.alone_rate, args.alone_commands) < 1
    ):
        ap.error("counts and rates must be >= 1")
    if args.batch > ACK_BATCH_MAX:
        ap.error(f"--batch must be <= {ACK_BATCH_MAX}")
    result = measure(args)
    if not args.json:
        print(report(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
