"""Market-data benchmark: fan-out rate and core event -> subscriber latency.

Usage::

    .venv/bin/python -m bench.marketdata --json [--quick] [--seed S]

Every scenario starts a fresh ``bursa core`` (journal mode ``none``: the core's
own durability is not what is measured) and a fresh ``bursa marketdata`` on
loopback TCP, and S subscriber processes (``--child-sub``: a plain ZeroMQ SUB to
every topic, recording for each message ``time.time_ns()`` at receipt minus the
message's ``ts_ns``, the core's sequencer time of the event, i.e. its
publication time by the core).  The command stream (seeded: limit orders around
a mid price, crossing orders, cancels) is replayed in-process first to count its
core events, so a rate of events per second can be offered.

- ``fanout_msgs_per_s`` (the most subscribers, 10 by default), ``fanout_msgs_per_s_1sub``: the
  stream is sent as fast as the core takes it; messages received summed over all
  subscribers / time from the first to the last receipt.
- ``p50_us_at_100k`` / ``p99_us_at_100k`` (1 subscriber) and ``*_10sub``: open
  loop at 100,000 core events/s: commands planned at fixed times, sent in 1 ms
  frames; latency over every message received (HDR histogram).
  ``planned_p50_us_at_100k`` / ``planned_p99_us_at_100k``: the same messages
  timed from the PLANNED send time of the command they came from
  (coordinated-omission free: includes the wait in the core's queue).  When the feed
  cannot keep up with the offered rate the queue grows and the percentiles say so.
- The same at 10,000 events/s (``p50_us_at_10k``, ``p99_us_at_10k``).
- ``feed_events_per_s``: the feed alone in process (no sockets) on the burst stream's
  events, by CPU time; ``feed_events_per_s_reference``: the pure-Python reference feed
  (tests/marketdata/reffeed.py) on the same events, the baseline of the same run.
- Subscribers only timestamp and keep each part while receiving and cut the messages
  out after the run (a message's receipt time is its part's).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from bench.meta import latency_series, percentiles_ns, run_info

TARGET_FANOUT_MSGS_PER_S = 1_000_000
TARGET_P99_US_AT_100K = 200
ROOT = Path(__file__).resolve().parents[1]
SUBSCRIBER_COUNTS = (1, 10)
FRAME_NS = 1_000_000  # commands planned within 1 ms go out in one frame
IDLE_END_S = 3.0  # a subscriber stops after this long without a message


# ------------------------------------------------------------------ workload


def setup_commands(users: int) -> np.ndarray:
    """Assets, a symbol, a fee tier, funded users."""
    from engine.wire import commands as wc

    b = wc.CmdBatch()
    b.add(wc.add_asset(1, 8)).add(wc.add_asset(2, 6)).add(wc.add_fee_tier(0, 0, 0))
    b.add(wc.add_symbol(1, 1, 2, max_price_ticks=10**6, protection_ticks=1000))
    for u in range(1, users + 1):
        b.add(wc.add_user(u)).add(wc.deposit(2 * u, u, 1, 10**15)).add(
            wc.deposit(2 * u + 1, u, 2, 10**15)
        )
    return b.to_array()


def order_stream(n: int, users: int, seed: int) -> np.ndarray:
    """``n`` commands: resting limits around 10,000 ticks, crossing limits, cancels."""
    from engine.wire import commands as wc

    rng = random.Random(seed)
    live: list[tuple[int, int]] = []
    out = []
    oid = 1
    for _ in range(n):
        r = rng.random()
        if r < 0.3 and live:
            u, o = live.pop(rng.randrange(len(live)))
            out.append(wc.cancel(o, u, symbol_id=1))
            continue
        u = rng.randint(1, users)
        side = rng.choice((1, 2))
        cross = r > 0.9
        off = rng.randint(1, 20)
        px = 10_000 + (off if side == 2 else -off) * (-1 if cross else 1)
        out.append(wc.new_limit(oid, u, 1, side, px, rng.randint(1, 10)))
        live.append((u, oid))
        oid += 1
    return np.concatenate(out)


def events_per_command(setup: np.ndarray, stream: np.ndarray) -> float:
    """Core events per command of ``stream`` (in-process core)."""
    from engine.core import Core

    core = Core()
    core.run(setup)
    ev, _ = core.run(stream)
    return len(ev) / len(stream)


def feed_events_per_s(setup: np.ndarray, stream: np.ndarray, feed_cls: Any, runs: int) -> int:
    """Core events/s one feed applies in process (frames of 100 commands, messages taken
    and dropped): median of ``runs`` by the process's CPU time, so that other processes
    on a shared machine weigh less."""
    from engine.core import Core

    core = Core()
    ev0, _ = core.run(setup)
    first = (np.array(ev0, copy=True), core.last_seq)
    frames = []
    for i in range(0, len(stream), 100):
        ev, _ = core.run(stream[i : i + 100])
        frames.append((np.array(ev, copy=True), core.last_seq))
    n = sum(len(ev) for ev, _ in frames)
    times = []
    for _ in range(runs):
        feed = feed_cls()
        feed.apply_events(*first)
        feed.take()
        t0 = time.process_time_ns()
        for ev, last in frames:
            feed.apply_events(ev, last)
            feed.take()
        times.append(time.process_time_ns() - t0)
    return int(n * 1_000_000_000 // max(1, int(np.median(times))))


# ---------------------------------------------------------------- processes


def _start(args: list[str], d: Path, name: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    out_path = d / f"{name}.out"
    with open(out_path, "wb") as out, open(d / f"{name}.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bursa", *args],
            stdout=out,
            stderr=err,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = out_path.read_text().split("\n", 1)[0]
        if line.startswith("{") and line.endswith("}"):
            return proc, json.loads(line)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {(d / f'{name}.err').read_text()}")
        time.sleep(0.02)
    raise TimeoutError(f"{name} not ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scenario(
    setup: np.ndarray, stream: np.ndarray, rate_cmds: int | None, subs: int, base: str
) -> dict[str, Any]:
    """One run: fresh core + marketdata + ``subs`` subscribers; ``rate_cmds`` None = burst."""
    from bindings.client import CoreClient
    from bindings.marketdata import MarketDataClient

    d = Path(tempfile.mkdtemp(prefix="bench-md-", dir=base))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        loop = "tcp://127.0.0.1:*"
        core, ready = _start(
            ["core", "--data-dir", str(d / "core"), "--mode", "none", "--trade-endpoint", loop,
             "--fund-endpoint", loop, "--admin-endpoint", loop,
             "--pub-endpoint", loop, "--replay-endpoint", loop], d, "core",
        )  # fmt: skip
        procs.append(core)
        client = CoreClient(str(ready["trade"]))
        admin = CoreClient(str(ready["admin"]))
        fund = CoreClient(str(ready["fund"]))
        kinds = setup["kind"]
        admin.submit(setup[kinds < 31])
        fund.submit(setup[kinds >= 31])
        md, mready = _start(
            ["marketdata", "--core-pub-endpoint", ready["pub"], "--core-replay-endpoint",
             ready["replay"], "--pub-endpoint", loop, "--service-endpoint", loop,
             "--sndhwm", "1000000"], d, "md",
        )  # fmt: skip
        procs.append(md)
        outs = [d / f"sub{i}.npz" for i in range(subs)]
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.marketdata",
                    "--child-sub",
                    mready["pub"],
                    "--out",
                    str(o),
                ],
                cwd=ROOT,
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
                stdout=subprocess.PIPE,
            )
            for o in outs
        ]
        procs += children
        for c in children:
            assert c.stdout is not None
            assert c.stdout.readline().strip() == b"ready"
        # Warm-up: one command through, so every subscription is live before timing.
        probe = MarketDataClient(mready["pub"], mready["service"], [1], channels=["status"])
        probe.close()
        n = len(stream)
        base_seq = int(admin.control("ping")["last_seq"])
        sent_at, t0_wall = _drive(client, stream, rate_cmds)
        client.drain(timeout_ms=120_000)
        for c in children:
            c.wait(timeout=600)
        lat, planned_lat = [], []
        firsts, lasts, count = [], [], 0
        for o in outs:
            arrs = np.load(o)
            recv, ts, cseq = arrs["recv_ns"], arrs["ts_ns"], arrs["core_seq"]
            meta = json.loads(o.with_suffix(".json").read_text())
            lat.append(recv - ts)
            if rate_cmds is not None:
                # One client sends in order, so command k of the stream got seq base + 1 + k.
                k = cseq - base_seq - 1
                ok = (k >= 0) & (k < n)
                planned = t0_wall + (k[ok] * 1_000_000_000) // rate_cmds
                planned_lat.append(recv[ok] - planned)
            count += meta["count"]
            if meta["count"]:
                firsts.append(meta["first_ns"])
                lasts.append(meta["last_ns"])
        span = max(1, max(lasts) - min(firsts)) if firsts else 1
        all_lat = np.concatenate(lat) if lat else np.zeros(0, dtype=np.int64)
        res: dict[str, Any] = {
            "subscribers": subs,
            "commands": n,
            "send_s": round(sent_at / 1e9, 3),
            "msgs_received": count,
            "msgs_per_subscriber": count // subs,
            "fanout_msgs_per_s": count * 1_000_000_000 // span,
            **percentiles_ns(all_lat),
        }
        if planned_lat:
            res.update(percentiles_ns(np.concatenate(planned_lat), prefix="planned_"))
            # Series for the report's plots (bench/plots.py); measure() moves them out.
            res["series"] = [
                latency_series(f"publish->receipt ({subs} sub)", all_lat, "none", rate_cmds),
                latency_series(
                    f"planned->receipt ({subs} sub)", np.concatenate(planned_lat), "none", rate_cmds
                ),
            ]
        for cc in (client, admin, fund):
            cc.close()
        return res
    finally:
        for p in reversed(procs):
            _stop(p)
        shutil.rmtree(d, ignore_errors=True)


def _drive(client: Any, stream: np.ndarray, rate_cmds: int | None) -> tuple[int, int]:
    """Send ``stream``: open loop at ``rate_cmds`` (1 ms frames) or as fast as possible.
    Returns (ns spent sending, wall clock ns of the start: command k is planned at
    start + k / rate)."""
    n = len(stream)
    t0_wall = time.time_ns()
    t0 = time.perf_counter_ns()
    i = 0
    while i < n:
        if rate_cmds is None:
            j = min(n, i + 1000)
        else:
            now = time.perf_counter_ns()
            j = min(n, (now - t0) * rate_cmds // 1_000_000_000 + 1)
            if j <= i:
                time.sleep(FRAME_NS / 4e9)
                continue
        client.send(stream[i:j])
        i = j
        while client.sock.poll(0):
            client.recv_replies(timeout_ms=1000)
    return time.perf_counter_ns() - t0, t0_wall


def child_sub(endpoint: str, out: str) -> int:
    """Subscriber process: record receipt time - message ts_ns for every message."""
    import zmq

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    time.sleep(0.5)  # ZeroMQ subscriptions propagate asynchronously
    print("ready", flush=True)
    stop = False

    def _term(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _term)
    # The receive loop only timestamps and keeps each part; the messages are cut
    # out after the run.  Parsing in the loop cost ~1 us per message in Python:
    # 10 subscriber processes doing that on a 2-core machine starved the feed.
    part_ts: list[int] = []
    parts: list[bytes] = []
    now_ns = time.time_ns
    recv = sub.recv_multipart
    idle_end = time.monotonic() + 60
    while not stop:
        if not sub.poll(100):
            if time.monotonic() > idle_end:
                break
            continue
        while sub.poll(0):
            _tp, part = recv()
            part_ts.append(now_ns())
            parts.append(part)
        idle_end = time.monotonic() + IDLE_END_S
    recvs: list[int] = []
    tss: list[int] = []
    cseqs: list[int] = []
    for t, part in zip(part_ts, parts, strict=True):
        # A part holds one topic's messages back to back (docs/marketdata.md).
        off, n = 0, len(part)
        while off < n:
            recvs.append(t)
            cseqs.append(int.from_bytes(part[off + 16 : off + 24], "little"))
            tss.append(int.from_bytes(part[off + 24 : off + 32], "little"))
            off += 32 + int.from_bytes(part[off + 4 : off + 8], "little")
    first = part_ts[0] if part_ts else 0
    last = part_ts[-1] if part_ts else 0
    with open(out, "wb") as f:
        np.savez(
            f,
            recv_ns=np.asarray(recvs, dtype=np.int64),
            ts_ns=np.asarray(tss, dtype=np.int64),
            core_seq=np.asarray(cseqs, dtype=np.int64),
        )
    Path(out).with_suffix(".json").write_text(
        json.dumps({"count": len(recvs), "first_ns": first, "last_ns": last})
    )
    return 0


def _us(ns: int) -> float:
    return round(ns / 1000, 1)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every scenario; the result dict."""
    setup = setup_commands(args.users)
    burst = order_stream(args.burst_commands, args.users, args.seed)
    epc = events_per_command(setup, burst)
    out: dict[str, Any] = {
        **run_info(args.seed),
        "benchmark": "marketdata",
        "durability_mode": "none (core journal off)",
        "quick": args.quick,
        # The machine may be shared: its load says how much the figures can be trusted.
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "subscribers": list(args.subs),
        "events_per_command": round(epc, 3),
        "target_fanout_msgs_per_s": TARGET_FANOUT_MSGS_PER_S,
        "target_p99_us_at_100k": TARGET_P99_US_AT_100K,
        "headline": ["fanout_msgs_per_s", "p50_us_at_100k", "p99_us_at_100k"],
        "runs": [],
    }
    # The feed alone, in process: the Cython feed and, as the baseline in the same run,
    # the pure-Python reference it is tested against (tests/marketdata/reffeed.py).
    from marketdata.feed import Feed
    from tests.marketdata.reffeed import Feed as RefFeed

    runs = 3 if args.quick else 5
    out["feed_events_per_s"] = feed_events_per_s(setup, burst, Feed, runs)
    out["feed_events_per_s_reference"] = feed_events_per_s(setup, burst, RefFeed, runs)
    for subs in args.subs:
        r = scenario(setup, burst, None, subs, args.dir)
        r["mode"] = "burst"
        out["runs"].append(r)
        key = "fanout_msgs_per_s" if subs == max(args.subs) else f"fanout_msgs_per_s_{subs}sub"
        out[key] = r["fanout_msgs_per_s"]
    for rate_events, label in ((100_000, "100k"), (10_000, "10k")):
        rate_cmds = max(1, round(rate_events / epc))
        n = max(1000, int(rate_cmds * args.seconds))
        stream = order_stream(n, args.users, args.seed + 1)
        for subs in args.subs:
            r = scenario(setup, stream, rate_cmds, subs, args.dir)
            r["mode"] = f"open loop {rate_events} events/s ({rate_cmds} cmds/s)"
            for s in r.pop("series", []):
                s["rate_per_s"] = rate_events  # offered rate in events/s, as the keys
                out.setdefault("percentiles", []).append(s)
            out["runs"].append(r)
            suffix = "" if subs == min(args.subs) else f"_{subs}sub"
            out[f"p50_us_at_{label}{suffix}"] = _us(r["p50_ns"])
            out[f"p99_us_at_{label}{suffix}"] = _us(r["p99_ns"])
            out[f"planned_p50_us_at_{label}{suffix}"] = _us(r["planned_p50_ns"])
            out[f"planned_p99_us_at_{label}{suffix}"] = _us(r["planned_p99_ns"])
    out["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or a subscriber child); print the JSON line last."""
    ap = argparse.ArgumentParser(prog="python -m bench.marketdata", description=__doc__)
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--burst-commands", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each open-loop run")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument(
        "--subs", type=int, nargs="+", default=list(SUBSCRIBER_COUNTS), help="subscriber counts"
    )
    ap.add_argument("--child-sub", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_sub:
        return child_sub(args.child_sub, args.out)
    if args.quick:
        args.burst_commands = min(args.burst_commands, 5_000)
        args.seconds = min(args.seconds, 0.3)
    result = measure(args)
    if not args.json:
        for r in result["runs"]:
            print(
                f"{r['mode']:<40} subs {r['subscribers']:>2}: {r['fanout_msgs_per_s']:>10,} msg/s"
                f"  p50 {_us(r['p50_ns'])} us  p99 {_us(r['p99_ns'])} us"
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
