"""12,000 random single-field tamperings of proofs and roots: every one is detected.

Each case takes a valid (root.json, proof) pair, changes exactly one field (a
leaf's user id, salt, balance or index; a sibling's hash or sum; any root
field) to a different value, and requires the verifier to reject it.  Seeded,
so a failure names a reproducible case.
"""

from __future__ import annotations

import collections
import copy
import json
import random
from typing import Any

from por import verify as ver
from tests.por.kit import random_tree

CASES = 12_000
MAX = ver.MAX_SUM


def _other_int(rng: random.Random, v: int) -> int:
    """A different integer: a small step, a large jump, negative or past the u64 bound."""
    while True:
        w = rng.choice(
            [
                v + rng.choice([-1, 1]),
                v + rng.randrange(-(10**12), 10**12),
                rng.randrange(0, 1 << 64),
                -rng.randrange(1, 1 << 64),
                MAX + rng.randrange(1, 1000),
                0,
            ]
        )
        if w != v:
            return w


def _flip_bit(rng: random.Random, h: str) -> str:
    b = bytearray(bytes.fromhex(h))
    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return b.hex()


def _fields(root: dict[str, Any], proof: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """Every tamperable field as (category, path from the pair)."""
    out: list[tuple[str, tuple[Any, ...]]] = [
        ("leaf.user_id", ("proof", "user_id")),
        ("leaf.salt", ("proof", "salt")),
        ("leaf.index", ("proof", "index")),
        ("proof.root", ("proof", "root")),
        ("proof.seq", ("proof", "seq")),
        *[("leaf.balance", ("proof", "balances", a)) for a in proof["balances"]],
        *[("sibling.hash", ("proof", "path", i, "hash")) for i in range(len(proof["path"]))],
        *[
            ("sibling.sum", ("proof", "path", i, "sums", k))
            for i, step in enumerate(proof["path"])
            for k in range(len(step["sums"]))
        ],
        ("root.root", ("root", "root")),
        ("root.top_hash", ("root", "top_hash")),
        ("root.seq", ("root", "seq")),
        ("root.leaves", ("root", "leaves")),
        ("root.depth", ("root", "depth")),
        *[("root.asset", ("root", "assets", k)) for k in range(len(root["assets"]))],
        *[("root.total", ("root", "totals", a)) for a in root["totals"]],
    ]
    return out


def test_every_single_field_tampering_is_detected():
    rng = random.Random(20261205)
    pairs = []
    for seed, users, assets in [(1, 1, 1), (2, 2, 2), (3, 5, 3), (4, 33, 2), (5, 70, 4)]:
        tree = random_tree(seed, users, assets)
        root = tree.root_json()
        for u in tree.liab.users:
            pairs.append((root, json.loads(json.dumps(tree.proof(u)))))
    for root, proof in pairs:  # the untampered pairs verify
        ver.verify(root, proof)
    seen: collections.Counter[str] = collections.Counter()
    for case in range(CASES):
        root, proof = rng.choice(pairs)
        doc: Any = {"root": copy.deepcopy(root), "proof": copy.deepcopy(proof)}
        category, path = rng.choice(_fields(root, proof))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        old = parent[path[-1]]
        parent[path[-1]] = _flip_bit(rng, old) if isinstance(old, str) else _other_int(rng, old)
        try:
            ver.verify(doc["root"], doc["proof"])
        except ver.ProofError:
            seen[category] += 1
            continue
        raise AssertionError(f"case {case}: tampering {path} {old!r} -> undetected")
    assert sum(seen.values()) == CASES
    # Every kind of field was tampered with many times.
    assert set(seen) == {c for c, _ in _fields(*pairs[-1])}
    assert min(seen.values()) >= 100, seen
