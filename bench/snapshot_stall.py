"""Acknowledgement latency of a real `bursa core` while it snapshots a large state.

Usage::

    .venv/bin/python -m bench.snapshot_stall --json [--orders N] [--users U] [--quick]

A core process (durability ``fsync``) is loaded with ``--users`` funded users
and ``--orders`` resting limit orders (setup, untimed), then an open-loop client
sends one command per frame at ``--rate`` commands/s for ``--seconds`` and
records each reply's latency from its PLANNED send time (coordinated-omission
free; HdrHistogram percentiles).  The state is loaded once; three runs, each a
fresh process started on a copy of it:

- ``none``: no snapshot during the window (the baseline);
- ``inline``: a snapshot every ``--every-ms`` written on the command loop
  (``snapshot_in_background = false``: the loop stalls while it serializes);
- ``fork``: the same, written by a forked child (the default configuration).

Headline keys: ``ack_p99_us_no_snapshot``, ``ack_p99_us_during_snapshot`` (the
fork run), ``ack_p99_us_inline_snapshot`` and ``fork_p99_over_no_snapshot``
(target <= 2, issue 16).  The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from bench.core import open_loop_latencies_ns, setup_commands
from bench.meta import latency_series, percentiles_ns, run_info
from bursa_wire.layout import CMD_DTYPE
from engine.wire import commands
from pyx.enums import Side
from sim.bookflow import WorkloadConfig

TARGET_P99_RATIO = 2.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resting_orders(cfg: WorkloadConfig, n: int) -> np.ndarray:
    """``n`` one-lot limit orders that never cross: bids below the centre, asks above."""
    rec = commands.new_limit(1, 1, cfg.symbol_id, int(Side.BUY), cfg.center_price_ticks, 1)
    out = np.repeat(rec, n).astype(CMD_DTYPE)
    i = np.arange(n, dtype=np.int64)
    out["order_id"] = (i // cfg.users + 1).astype(np.uint64)  # per user: 1, 2, ...
    out["user_id"] = (i % cfg.users + 1).astype(np.uint32)
    sell = (i % 2).astype(bool)
    out["side"] = np.where(sell, int(Side.SELL), int(Side.BUY)).astype(np.uint8)
    depth = 1 + (i // 2) % (4 * cfg.deviation_ticks)
    out["price_ticks"] = np.where(
        sell, cfg.center_price_ticks + depth, cfg.center_price_ticks - depth
    )
    out["client_ref"] = 0
    return out


def start_core(
    d: str, every_ms: int, background: bool
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """A `bursa core` on loopback with the given snapshot settings; returns (proc, ready)."""
    cfg_path = os.path.join(d, "core.toml")
    with open(cfg_path, "w") as f:
        f.write(
            "[core_server]\n"
            f'data_dir = "{os.path.join(d, "data")}"\n'
            'mode = "fsync"\n'
            "snapshot_every_cmds = 0\n"
            f"snapshot_every_ms = {every_ms}\n"
            f"snapshot_in_background = {'true' if background else 'false'}\n"
        )
    out_path = os.path.join(d, "ready.out")
    with open(out_path, "wb") as out, open(os.path.join(d, "core.err"), "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bursa", "core", "--config", cfg_path]
            + [
                f"--{k}-endpoint=tcp://127.0.0.1:*"
                for k in ("trade", "fund", "admin", "pub", "replay")
            ],
            stdout=out,
            stderr=err,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )
    for _ in range(12000):
        with open(out_path) as f:
            line = f.readline()
        if line.startswith("{"):
            return proc, json.loads(line)
        if proc.poll() is not None:
            raise RuntimeError("bursa core exited early")
        time.sleep(0.01)
    raise RuntimeError("bursa core not ready")


def stop_core(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the core writes its shutdown snapshot), SIGKILL after 120 s."""
    proc.terminate()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load_state(setup: np.ndarray, base: str) -> str:
    """Load ``setup`` into a core that never snapshots, stop it cleanly; returns its directory.

    Snapshots of a growing state during an untimed setup only slow it down; the clean
    stop writes the final snapshot that makes every measured core's start quick.  The
    three runs start from copies of this one directory: the setup runs once.
    """
    from bindings.client import RoutedClient

    d = tempfile.mkdtemp(prefix="bench-snap-state-", dir=base)
    proc, ready = start_core(d, 0, True)
    try:
        with RoutedClient.from_ready(ready) as setup_client:  # admin + fund + trade
            setup_client.submit(setup, timeout_ms=600_000)
    finally:
        stop_core(proc)
    return d


def one_run(
    state_dir: str, every_ms: int, background: bool, rate: int, seconds: float, base: str
) -> tuple[np.ndarray, int]:
    """A core on a copy of ``state_dir`` with the run's snapshot settings, then the
    open-loop window; returns (latencies ns, snapshots written)."""

    from bindings.client import CoreClient

    d = tempfile.mkdtemp(prefix="bench-snap-", dir=base)
    shutil.copytree(os.path.join(state_dir, "data"), os.path.join(d, "data"))
    proc, ready = start_core(d, every_ms, background)
    try:
        client = CoreClient(ready["trade"])
        n = int(rate * seconds)
        cmds = np.concatenate([commands.cancel(10**12 + k, 1) for k in range(n)])
        cmds["client_ref"] = np.arange(n, dtype=np.uint64)
        frames = [cmds[k : k + 1].tobytes() for k in range(n)]
        lat = open_loop_latencies_ns(client.sock, frames, rate, 120_000_000_000)
        client.close()
    finally:
        stop_core(proc)
        with open(os.path.join(d, "core.err")) as f:
            log_text = f.read()
        shutil.rmtree(d, ignore_errors=True)
    snaps = log_text.count("written in the background") if background else -1
    return lat, snaps


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The three runs and the result dictionary."""
    cfg = WorkloadConfig(users=args.users)
    setup = np.concatenate([setup_commands(cfg), resting_orders(cfg, args.orders)])
    setup["seq"] = 0
    setup["ts_ns"] = 0
    os.makedirs(args.dir, exist_ok=True)
    out: dict[str, Any] = dict(run_info(0))
    out["bench"] = "snapshot_stall"
    out["durability"] = "fsync"
    out["resting_orders"] = args.orders
    out["users"] = args.users
    out["rate_cmds_per_s"] = args.rate
    out["window_s"] = args.seconds
    out["snapshot_every_ms"] = args.every_ms
    state_dir = load_state(setup, args.dir)
    try:
        runs = [
            (name, *one_run(state_dir, every, bg, args.rate, args.seconds, args.dir))
            for name, every, bg in (
                ("no_snapshot", 0, True),
                ("inline_snapshot", args.every_ms, False),
                ("during_snapshot", args.every_ms, True),
            )
        ]
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    for name, lat, snaps in runs:
        p = percentiles_ns(lat)
        out.setdefault("percentiles", []).append(latency_series(name, lat, "fsync", args.rate))
        out[f"ack_p50_us_{name}"] = round(p["p50_ns"] / 1000, 1)
        out[f"ack_p99_us_{name}"] = round(p["p99_ns"] / 1000, 1)
        out[f"ack_max_us_{name}"] = round(p["max_ns"] / 1000, 1)
        if snaps >= 0:
            out[f"background_snapshots_{name}"] = snaps
    base = max(out["ack_p99_us_no_snapshot"], 1.0)
    out["fork_p99_over_no_snapshot"] = round(out["ack_p99_us_during_snapshot"] / base, 2)
    out["inline_p99_over_no_snapshot"] = round(out["ack_p99_us_inline_snapshot"] / base, 2)
    out["target_fork_p99_over_no_snapshot"] = TARGET_P99_RATIO
    out["headline"] = [
        "ack_p99_us_no_snapshot",
        "ack_p99_us_during_snapshot",
        "ack_p99_us_inline_snapshot",
        "fork_p99_over_no_snapshot",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a summary (unless ``--json``) and the JSON line."""
    ap = argparse.ArgumentParser(prog="python -m bench.snapshot_stall", description=__doc__)
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--quick", action="store_true", help="small state, short window")
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=2_000, help="commands/s offered (open loop)")
    ap.add_argument("--seconds", type=float, default=8.0, help="measured window per run")
    ap.add_argument("--every-ms", type=int, default=2_000, help="snapshot interval")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args(argv)
    if args.quick:
        args.orders, args.users, args.seconds, args.every_ms = 20_000, 2_000, 2.0, 500
    r = measure(args)
    if not args.json:
        for k in r["headline"]:
            print(f"{k:32} {r[k]}")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
