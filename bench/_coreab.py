"""Interleaved A/B of the core process: this checkout against another, one request at a time.

On a shared machine two runs minutes apart see different disks and loads (the
fdatasync p50 of this VM moves between ~200 µs and ~2 ms within a few minutes),
so a before/after of the core's acknowledgement latency taken from separate runs
mostly measures the neighbours.  This tool starts one ``bursa core`` from each
checkout (same mode, both with a stream trade link), sets up the same market on
both, and then serves rounds: in each round, in a shuffled order with 2 ms
between steps, one NEW through each core's stream link and zmq ``trade`` socket
(one in flight), and one fdatasync probe (a 160-byte append to a file in the
same directory: the journal's pattern).  Every arm thus sees the same
conditions, and each round gives paired samples.

``python -m bench._coreab --base /path/to/other/checkout --mode fsync -n 800``
prints one JSON object: per arm the p50 and p90 in µs (``base/stream``,
``new/zmq``, ``fdatasync``, ...), each core's CPU time per request over the
measured rounds (``base_cpu_us_per_request``: all its threads, from
``/proc/<pid>/task/*/schedstat``), and per link the median of the paired
differences new - base (``paired_new_minus_base_<link>_p50_us``) and the share of
rounds in which new was faster.  The other checkout needs its own compiled
``pyx`` extensions (it runs with this interpreter and ``PYTHONPATH`` set to it).
Latencies are from the send to the reply (one request in flight, no open-loop
schedule): a comparison tool, not a latency figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._corealone import new_orders, setup_market

REPO = Path(__file__).resolve().parents[1]
WARMUP_ROUNDS = 50
STEP_GAP_S = 0.002
PROBE_BYTES = 160
LINKS = ("stream", "zmq")


def _start_core(
    tree: Path, base: Path, mode: str
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """A ``bursa core`` from ``tree`` with its data and sockets under ``base``."""
    lo = "tcp://127.0.0.1:*"
    endpoints = [
        a for n in ("trade", "fund", "admin", "pub", "replay") for a in (f"--{n}-endpoint", lo)
    ]
    args = [sys.executable, "-m", "bursa", "core", "--data-dir", str(base / "data"),
            "--mode", mode, "--metrics", "off", *endpoints,
            "--trade-stream-endpoint", f"unix:{base}/t.sock",
            "--events-stream-endpoint", f"unix:{base}/e.sock"]  # fmt: skip
    with open(base / "core.err", "wb") as err:
        proc = subprocess.Popen(
            args, cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)),
            stdout=subprocess.PIPE, stderr=err,
        )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError(f"core from {tree} did not start: {(base / 'core.err').read_text()}")
    return proc, json.loads(line)


def cpu_ns(pid: int) -> int:
    """CPU time (ns) used so far by every thread of process ``pid`` (``schedstat``)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended
            total += int((task / "schedstat").read_text().split()[0])
    return total


def measure(base_tree: Path, mode: str, n: int, seed: int = 1) -> dict[str, Any]:
    """``n`` paired rounds (after warm-up) between the core of ``base_tree`` and this one's."""
    from bindings.streamlink import trade_client

    trees = {"base": base_tree, "new": REPO}
    # Short paths: a unix socket path holds 107 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="coreab-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    cpu: dict[str, int] = {}
    clients: dict[tuple[str, str], Any] = {}
    lat: dict[str, list[int]] = {}
    try:
        for name, tree in trees.items():
            d = tmp / name
            d.mkdir()
            proc, ready = _start_core(tree, d, mode)
            procs[name] = proc
            setup_market(ready, (1,))
            for link in LINKS:
                ep = str(ready["trade_stream" if link == "stream" else "trade"])
                clients[(name, link)] = trade_client(ep).__enter__()
        frames = new_orders(1, WARMUP_ROUNDS + n)
        arms = [f"{a}/{b}" for a, b in clients] + ["fdatasync"]
        lat = {a: [] for a in arms}
        fd = os.open(tmp / "probe.dat", os.O_RDWR | os.O_CREAT, 0o644)
        off = 0
        rng = random.Random(seed)
        for k in range(WARMUP_ROUNDS + n):
            if k == WARMUP_ROUNDS:
                cpu = {name: -cpu_ns(p.pid) for name, p in procs.items()}
            order = arms[:]
            rng.shuffle(order)
            for arm in order:
                time.sleep(STEP_GAP_S)
                if arm == "fdatasync":
                    os.pwrite(fd, b"x" * PROBE_BYTES, off)
                    off += PROBE_BYTES
                    t0 = time.perf_counter_ns()
                    os.fdatasync(fd)
                else:
                    name, link = arm.split("/")
                    cli = clients[(name, link)]
                    t0 = time.perf_counter_ns()
                    cli.send(frames[k])
                    cli.recv_replies()
                dt = time.perf_counter_ns() - t0
                if k >= WARMUP_ROUNDS:
                    lat[arm].append(dt)
        os.close(fd)
        for name, p in procs.items():
            cpu[name] += cpu_ns(p.pid)
    finally:
        for cli in clients.values():
            cli.__exit__(None, None, None)
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    res: dict[str, Any] = {"mode": mode, "rounds": n}
    for arm, v in lat.items():
        res[f"{arm}_p50_us"] = round(float(np.median(v)) / 1000, 1)
        res[f"{arm}_p90_us"] = round(float(np.percentile(v, 90)) / 1000, 1)
    for name, ns in cpu.items():
        # Each measured round sends one request per link to each core.
        res[f"{name}_cpu_us_per_request"] = round(ns / (n * len(LINKS)) / 1000, 1)
    for link in LINKS:
        b, nw = np.array(lat[f"base/{link}"]), np.array(lat[f"new/{link}"])
        res[f"paired_new_minus_base_{link}_p50_us"] = round(float(np.median(nw - b)) / 1000, 1)
        res[f"new_faster_share_{link}"] = round(float(np.mean(nw < b)), 2)
    return res


def main(argv: list[str] | None = None) -> int:
    """Run the rounds; print one JSON object."""
    ap = argparse.ArgumentParser(prog="python -m bench._coreab", description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="the other checkout (built: make build)")
    ap.add_argument("--mode", choices=("fsync", "async"), default="fsync")
    ap.add_argument("-n", type=int, default=800, help="measured rounds")
    args = ap.parse_args(argv)
    print(json.dumps(measure(Path(args.base).resolve(), args.mode, args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
