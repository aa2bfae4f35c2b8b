"""Standalone proof-of-reserves verifier: ``python verify.py root.json proof.json``.

This single file depends on nothing but the Python standard library, so a user
can copy it alone, read it, and check their inclusion proof against the
exchange's published root without trusting any other bursa code.  It is also
the one definition of the tree's byte encoding: ``por.tree`` imports the
hashing functions below to build the tree (docs/por.md, "Encoding").

What it checks (exit status 0 only when all hold):

1. the leaf recomputed from the user's id, salt and balances;
2. every step of the path: each sibling's sums are in [0, 2**64 - 1], the
   parent's sums (left + right) stay within that bound, and the parent's hash
   commits to both children's hashes and sums;
3. the path's length equals the published tree depth and its left/right
   directions follow the leaf index, which lies among the published leaves;
4. the top node's sums equal the published totals, and the root commitment
   recomputed from seq, assets, leaf count, depth, top hash and totals equals
   the published root.

Exit status: 0 verified, 1 proof rejected (the reason is printed), 2 usage or
unreadable files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from typing import Any

FORMAT_VERSION = 1
#: Every hash input starts with this domain string, then a one-byte tag.
DOMAIN = b"bursa-por-v1"
TAG_USER = 0x01
TAG_LEAF = 0x02
TAG_NODE = 0x03
TAG_ROOT = 0x04
TAG_PAD = 0x05
#: Every balance and every sum is an unsigned 64-bit integer: values outside
#: [0, MAX_SUM] cannot be encoded and are rejected, never wrapped.
MAX_SUM = (1 << 64) - 1
SALT_BYTES = 32
HASH_BYTES = 32
MAX_DEPTH = 48
MAX_ASSETS = 0xFFFF


class ProofError(ValueError):
    """A proof or root that does not verify; the message says which check failed."""


def _h(tag: int, *parts: bytes) -> bytes:
    """SHA-256 over the domain string, the tag byte and the parts."""
    return hashlib.sha256(DOMAIN + bytes([tag]) + b"".join(parts)).digest()


def encode_sums(sums: list[int]) -> bytes:
    """The sums as big-endian u64s, in the root's asset order; rejects unencodable values."""
    for s in sums:
        if type(s) is not int or not 0 <= s <= MAX_SUM:
            raise ProofError(f"sum {s!r} is not an integer in [0, 2**64 - 1]")
    return b"".join(struct.pack(">Q", s) for s in sums)


def user_hash(user_id: int, salt: bytes) -> bytes:
    """The salted hash of a user id: SHA-256(DOMAIN, 0x01, salt[32], user_id u64 BE)."""
    if type(user_id) is not int or not 0 <= user_id <= MAX_SUM:
        raise ProofError(f"user id {user_id!r} is not an integer in [0, 2**64 - 1]")
    if len(salt) != SALT_BYTES:
        raise ProofError(f"salt must be {SALT_BYTES} bytes, got {len(salt)}")
    return _h(TAG_USER, salt, struct.pack(">Q", user_id))


def leaf_hash(uhash: bytes, sums: list[int]) -> bytes:
    """A user's leaf: SHA-256(DOMAIN, 0x02, user hash[32], balances u64 BE per asset)."""
    return _h(TAG_LEAF, uhash, encode_sums(sums))


def pad_hash(index: int) -> bytes:
    """A padding leaf (all sums zero): SHA-256(DOMAIN, 0x05, index u64 BE)."""
    return _h(TAG_PAD, struct.pack(">Q", index))


def add_sums(left: list[int], right: list[int]) -> list[int]:
    """Element-wise sum; rejects a result above MAX_SUM (it could not be encoded)."""
    if len(left) != len(right):
        raise ProofError(f"sum vectors differ in length ({len(left)} != {len(right)})")
    out = [a + b for a, b in zip(left, right, strict=True)]
    for s in out:
        if s > MAX_SUM:
            raise ProofError(f"a node sum {s} overflows 2**64 - 1")
    return out


def node_hash(lh: bytes, ls: list[int], rh: bytes, rs: list[int]) -> bytes:
    """An inner node: SHA-256(DOMAIN, 0x03, left hash, left sums, right hash, right sums)."""
    return _h(TAG_NODE, lh, encode_sums(ls), rh, encode_sums(rs))


def root_hash(
    seq: int, assets: list[int], leaves: int, depth: int, top: bytes, totals: list[int]
) -> bytes:
    """The published root: SHA-256(DOMAIN, 0x04, seq u64, n_assets u16, asset ids u32 each,
    leaves u64, depth u8, top hash[32], totals u64 each) -- all big-endian."""
    head = struct.pack(">QH", seq, len(assets))
    ids = b"".join(struct.pack(">I", a) for a in assets)
    return _h(TAG_ROOT, head, ids, struct.pack(">QB", leaves, depth), top, encode_sums(totals))


# ------------------------------------------------------------------ parsing


def _is(v: Any, want: Any) -> bool:
    """Equal and of the same type (so ``true`` is not ``1``)."""
    return type(v) is type(want) and bool(v == want)


def _int(obj: dict[str, Any], key: str, lo: int = 0, hi: int = MAX_SUM) -> int:
    v = obj.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise ProofError(f"{key!r} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _hex(obj: dict[str, Any], key: str, size: int) -> bytes:
    v = obj.get(key)
    try:
        b = bytes.fromhex(v) if isinstance(v, str) else b""
    except ValueError:
        b = b""
    if len(b) != size:
        raise ProofError(f"{key!r} must be {size} bytes of hex")
    return b


def _sums(v: Any, n: int, what: str) -> list[int]:
    if not isinstance(v, list) or len(v) != n:
        raise ProofError(f"{what} must be a list of {n} sums")
    encode_sums(v)  # range check
    return list(v)


def parse_root(root: Any) -> dict[str, Any]:
    """The checked fields of a root.json object."""
    if not isinstance(root, dict) or not _is(root.get("version"), FORMAT_VERSION):
        raise ProofError(f"root: not a version {FORMAT_VERSION} root object")
    if not _is(root.get("hash", "sha256"), "sha256"):
        raise ProofError("root: 'hash' must be \"sha256\"")
    assets = root.get("assets")
    if (
        not isinstance(assets, list)
        or not 0 < len(assets) <= MAX_ASSETS
        or any(type(a) is not int or not 0 <= a <= 0xFFFFFFFF for a in assets)
        or sorted(set(assets)) != assets
    ):
        raise ProofError("root: 'assets' must be a sorted list of distinct u32 asset ids")
    totals = root.get("totals")
    if not isinstance(totals, dict) or sorted(totals) != sorted(str(a) for a in assets):
        raise ProofError("root: 'totals' must have exactly one entry per asset")
    return {
        "seq": _int(root, "seq"),
        "assets": assets,
        "leaves": _int(root, "leaves", 1),
        "depth": _int(root, "depth", 0, MAX_DEPTH),
        "top": _hex(root, "top_hash", HASH_BYTES),
        "totals": _sums([totals[str(a)] for a in assets], len(assets), "root totals"),
        "root": _hex(root, "root", HASH_BYTES),
    }


def check_root(root_obj: Any) -> dict[str, Any]:
    """Parse root.json and check its root hash commits to its fields; returns them parsed.

    Raises
    ------
    ProofError
        Malformed, or the root hash does not match seq, assets, leaves, depth, top, totals.
    """
    r = parse_root(root_obj)
    if r["leaves"] > 1 << r["depth"]:
        raise ProofError("root: more leaves than a tree of that depth holds")
    # The root commitment binds seq, assets, leaf count, depth, top node and totals.
    if (
        root_hash(r["seq"], r["assets"], r["leaves"], r["depth"], r["top"], r["totals"])
        != r["root"]
    ):
        raise ProofError("root: the root hash does not commit to the published fields")
    return r


def verify(root_obj: Any, proof_obj: Any) -> dict[str, Any]:
    """Check ``proof_obj`` against ``root_obj`` (parsed JSON); returns a summary.

    Raises
    ------
    ProofError
        The first check that fails.
    """
    r = check_root(root_obj)
    assets: list[int] = r["assets"]
    n = len(assets)
    p = proof_obj
    if not isinstance(p, dict) or not _is(p.get("version"), FORMAT_VERSION):
        raise ProofError(f"proof: not a version {FORMAT_VERSION} proof object")
    if _hex(p, "root", HASH_BYTES) != r["root"]:
        raise ProofError("proof: made for a different root")
    if _int(p, "seq") != r["seq"]:
        raise ProofError("proof: made for a different seq")
    uid = _int(p, "user_id")
    salt = _hex(p, "salt", SALT_BYTES)
    bal = p.get("balances")
    if not isinstance(bal, dict) or sorted(bal) != sorted(str(a) for a in assets):
        raise ProofError("proof: 'balances' must have exactly one entry per asset of the root")
    sums = _sums([bal[str(a)] for a in assets], n, "proof balances")
    index = _int(p, "index", 0, r["leaves"] - 1)
    path = p.get("path")
    if not isinstance(path, list) or len(path) != r["depth"]:
        raise ProofError(f"proof: the path must have exactly {r['depth']} steps (the depth)")
    h = leaf_hash(user_hash(uid, salt), sums)
    for level, step in enumerate(path):
        if not isinstance(step, dict):
            raise ProofError(f"proof: step {level} is not an object")
        sh = _hex(step, "hash", HASH_BYTES)
        ss = _sums(step.get("sums"), n, f"step {level} sums")
        if (index >> level) & 1:  # we are the right child
            h, sums = node_hash(sh, ss, h, sums), add_sums(ss, sums)
        else:
            h, sums = node_hash(h, sums, sh, ss), add_sums(sums, ss)
    if sums != r["totals"]:
        raise ProofError("proof: the path's top sums differ from the published totals")
    if h != r["top"]:
        raise ProofError("proof: the path does not lead to the published top hash")
    return {
        "verified": True,
        "seq": r["seq"],
        "root": r["root"].hex(),
        "user_id": uid,
        "balances": {str(a): bal[str(a)] for a in assets},
        "totals": {str(a): t for a, t in zip(assets, r["totals"], strict=True)},
    }


def _no_dup_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON object hook: a key given twice is an error, never "last one wins"."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ProofError(f"duplicate JSON key {k!r}")
        out[k] = v
    return out


def load_json(path: str) -> Any:
    """Parse a JSON file, rejecting duplicate keys."""
    with open(path, encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=_no_dup_keys)


def main(argv: list[str] | None = None) -> int:
    """Entry point (``python verify.py``, ``bursa-por verify``); returns the exit status."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["verify"]:  # ``bursa-por verify root.json proof.json``
        args_in = args_in[1:]
    parser = argparse.ArgumentParser(prog="bursa-por verify", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="the published root.json")
    parser.add_argument("proof", help="your proof file (it holds your salt: keep it private)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(args_in)
    try:
        root_obj, proof_obj = load_json(args.root), load_json(args.proof)
    except (OSError, ValueError) as e:
        print(f"bursa-por verify: cannot read input: {e}", file=sys.stderr)
        return 2
    try:
        out = verify(root_obj, proof_obj)
    except ProofError as e:
        if args.json:
            print(json.dumps({"verified": False, "reason": str(e)}))
        print(f"bursa-por verify: REJECTED: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out))
    else:
        print(f"VERIFIED: user {out['user_id']} is in the liabilities tree at seq {out['seq']}")
        print(f"root      {out['root']}")
        for a, v in out["balances"].items():
            print(f"asset {a:<5} your balance {v:>24}  total {out['totals'][a]:>24}")
        print("check that these balances are what your account showed at that seq")
    return 0


if __name__ == "__main__":
    sys.exit(main())
