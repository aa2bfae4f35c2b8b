"""CPU time of every thread of one core process per stream-link request (docs/coreturn.md).

Starts one ``bursa core`` from this checkout (or ``--tree``), sets up a market,
sends ``--per`` NEW orders per frame through the stream trade link, one frame in
flight, ``--gap-ms`` apart (each turn starts from an idle loop, as at low and
medium load), and prints one JSON object: per thread (``/proc/<pid>/task``: its
name, CPU µs per request from ``schedstat``, user and system clock ticks from
``stat``), the idle loop's CPU per second before the run, the total per
request, and the whole machine's busy CPU per request (``/proc/stat`` deltas:
user, system, interrupts and kernel threads such as ext4/jbd2 writeback that no
process's own figures show; other programs on the machine count too, so only
runs made together compare).  ``--strace`` also counts the process's system calls per request
(``strace -c -f``; it slows the process, so its CPU figures are not comparable).

``python -m bench._turncpu --mode fsync --per 8 -n 1000``

A tool for the per-turn profile, not a benchmark: the machine's load inflates
every CPU figure; compare runs made together.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._coreab import REPO, _start_core
from bench._corealone import new_orders, setup_market

WARMUP = 200


def thread_cpu(pid: int) -> dict[str, tuple[int, int, int]]:
    """Per thread ``"<tid>:<name>"``: (CPU ns from schedstat, utime ticks, stime ticks)."""
    out: dict[str, tuple[int, int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            ns = int((task / "schedstat").read_text().split()[0])
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):  # a thread that ended
            continue
        out[f"{task.name}:{name}"] = (ns, int(fields[11]), int(fields[12]))
    return out


def machine_cpu() -> tuple[int, int]:
    """``(user, system)`` busy clock ticks of all CPUs since boot (``/proc/stat``):
    user + nice, and system + irq + softirq (guest time is inside user already)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return user + nice, system + irq + softirq


def measure(tree: Path, mode: str, n: int, per: int, gap_ms: float, strace: bool) -> dict[str, Any]:
    """Run ``n`` requests of ``per`` orders against a core of ``tree``; the figures."""
    from bindings.streamlink import trade_client

    tmp = Path(tempfile.mkdtemp(prefix="turncpu-"))
    proc, ready = _start_core(tree, tmp, mode)
    res: dict[str, Any] = {"mode": mode, "requests": n, "orders_per_request": per}
    try:
        setup_market(ready, (1,))
        raw = new_orders(1, (WARMUP + n) * per)
        frames = [b"".join(raw[i * per : (i + 1) * per]) for i in range(WARMUP + n)]
        with trade_client(str(ready["trade_stream"])) as cli:
            for k in range(WARMUP):
                cli.send(frames[k])
                cli.recv_replies()
            i0 = thread_cpu(proc.pid)
            time.sleep(2.0)
            i1 = thread_cpu(proc.pid)
            idle = sum(v[0] - i0[k][0] for k, v in i1.items() if k in i0)
            res["idle_cpu_us_per_s"] = round(idle / 2.0 / 1000, 1)
            tracer = None
            if strace:
                out = tmp / "strace.txt"
                args = ["strace", "-c", "-f", "-p", str(proc.pid), "-o", str(out)]
                tracer = subprocess.Popen(args, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            before = thread_cpu(proc.pid)
            m0 = machine_cpu()
            for k in range(WARMUP, WARMUP + n):
                cli.send(frames[k])
                cli.recv_replies()
                time.sleep(gap_ms / 1000)
            m1 = machine_cpu()
            after = thread_cpu(proc.pid)
            tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
            res["machine_user_us_per_request"] = round((m1[0] - m0[0]) * tick_us / n, 1)
            res["machine_system_us_per_request"] = round((m1[1] - m0[1]) * tick_us / n, 1)
            if tracer is not None:
                tracer.send_signal(2)
                tracer.wait(timeout=30)
                res["syscalls_per_request"] = _syscalls(out.read_text(), n)
        threads: dict[str, Any] = {}
        total = 0
        for key, (ns, ut, st) in after.items():
            b = before.get(key, (0, 0, 0))
            total += ns - b[0]
            threads[key] = {
                "cpu_us_per_request": round((ns - b[0]) / n / 1000, 1),
                "utime_ticks": ut - b[1],
                "stime_ticks": st - b[2],
            }
        res["threads"] = threads
        res["cpu_us_per_request"] = round(total / n / 1000, 1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return res


def _syscalls(table: str, n: int) -> dict[str, float]:
    """``strace -c``'s table as calls per request."""
    out: dict[str, float] = {}
    for line in table.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            out[parts[-1]] = round(int(parts[3]) / n, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, measure, print one JSON object."""
    ap = argparse.ArgumentParser(
        prog="python -m bench._turncpu", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--tree", default=str(REPO), help="checkout whose core runs (built)")
    ap.add_argument("--mode", choices=("fsync", "async"), default="fsync")
    ap.add_argument("-n", type=int, default=1000, help="measured requests")
    ap.add_argument("--per", type=int, default=1, help="NEW orders per frame")
    ap.add_argument("--gap-ms", type=float, default=1.0, help="pause after each reply")
    ap.add_argument("--strace", action="store_true", help="count system calls (strace -c)")
    a = ap.parse_args(argv)
    print(json.dumps(measure(Path(a.tree).resolve(), a.mode, a.n, a.per, a.gap_ms, a.strace)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
