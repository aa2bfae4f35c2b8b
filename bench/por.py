"""Proof-of-reserves benchmark: tree build rate and single-proof verify latency.

    .venv/bin/python -m bench.por --json [--users N] [--assets A] [--repeats R] [--quick]

Builds the liabilities tree over ``--users`` seeded random users (``--assets``
assets each) ``--repeats`` times and reports the median build rate; then
verifies ``--verify`` random proofs with ``por.verify.verify`` (the code the
standalone verifier runs) and reports latency percentiles (HDR histogram) and
the size of one proof as JSON.  The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any

from bench.meta import median_int, percentiles_ns, run_info
from por import verify as ver
from por.tree import BalanceRow, build, liabilities

DEFAULT_USERS = 100_000
DEFAULT_ASSETS = 4
DEFAULT_REPEATS = 3
DEFAULT_VERIFY = 2_000


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the measurements; returns the result object."""
    rng = random.Random(args.seed)
    rows = [
        BalanceRow(u, a, 0, rng.randrange(10**12), rng.randrange(10**6))
        for u in range(1, args.users + 1)
        for a in range(1, args.assets + 1)
    ]
    liab = liabilities(1, rows)
    build_ns = []
    tree = None
    for _ in range(args.repeats):
        t0 = time.perf_counter_ns()
        tree = build(liab)
        build_ns.append(time.perf_counter_ns() - t0)
    assert tree is not None
    root = json.loads(json.dumps(tree.root_json()))
    users = rng.sample(sorted(liab.users), min(args.verify, args.users))
    proofs = [json.loads(json.dumps(tree.proof(u))) for u in users]
    lat = []
    for p in proofs:
        t0 = time.perf_counter_ns()
        ver.verify(root, p)
        lat.append(time.perf_counter_ns() - t0)
    build_med = median_int(build_ns)
    return {
        "benchmark": "por",
        "durability": "none (in memory, no journal)",
        **run_info(args.seed),
        "users": args.users,
        "assets": args.assets,
        "depth": tree.depth,
        "build_ms": build_med // 1_000_000,
        "build_users_per_s": args.users * 1_000_000_000 // max(1, build_med),
        "proof_bytes": len(json.dumps(proofs[0], separators=(",", ":"))),
        **percentiles_ns(lat, prefix="verify_"),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a summary (unless ``--json``) and the JSON line."""
    ap = argparse.ArgumentParser(prog="python -m bench.por", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--users", type=int, default=DEFAULT_USERS)
    ap.add_argument("--assets", type=int, default=DEFAULT_ASSETS)
    ap.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    ap.add_argument("--verify", type=int, default=DEFAULT_VERIFY, help="proofs to verify")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--quick", action="store_true", help="10,000 users, 1 repeat, 200 proofs")
    args = ap.parse_args(argv)
    if args.quick:
        args.users, args.repeats, args.verify = 10_000, 1, 200
    if min(args.users, args.assets, args.repeats, args.verify) < 1:
        ap.error("counts must be >= 1")
    r = measure(args)
    if not args.json:
        print(f"build {r['users']:,} users x {r['assets']} assets: {r['build_ms']} ms "
              f"({r['build_users_per_s']:,} users/s), depth {r['depth']}; verify p50 "
              f"{r['verify_p50_ns'] // 1000} us, p99 {r['verify_p99_ns'] // 1000} us; "
              f"proof {r['proof_bytes']} bytes")  # fmt: skip
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
