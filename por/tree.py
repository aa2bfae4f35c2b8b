"""The liabilities Merkle sum tree: one tree per snapshot, a vector of per-asset sums per node.

Byte encoding and hashing are defined once, in :mod:`por.verify` (the standalone
verifier), and used here, so the builder and the verifier cannot drift apart.
Layout (docs/por.md): users' leaves sorted by their salted user hash (random,
so the order reveals nothing about user ids), padded with zero-sum padding
leaves to a power of two; level 0 is the leaves, the last level the top node.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from por import verify as enc

MAX_SUM = enc.MAX_SUM


class PorError(ValueError):
    """Input that cannot enter the tree (negative, overflow, duplicate, malformed)."""


@dataclass(frozen=True)
class BalanceRow:
    """One balance of the core: a user's (asset, account) available and held minor units."""

    user_id: int
    asset_id: int
    account: int
    available: int
    held: int


@dataclass
class Liabilities:
    """Every user's liabilities per asset at core ``seq`` (available + held, all accounts)."""

    seq: int
    assets: list[int]
    users: dict[int, list[int]] = field(default_factory=dict)  # user -> sums in asset order

    def totals(self) -> list[int]:
        """Per-asset sums over all users."""
        return [sum(v[k] for v in self.users.values()) for k in range(len(self.assets))]


def _check_int(v: object, what: str, lo: int = 0, hi: int = MAX_SUM) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise PorError(f"{what} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def liabilities(
    seq: int,
    rows: Iterable[BalanceRow],
    *,
    users: Iterable[int] = (),
    assets: Iterable[int] = (),
) -> Liabilities:
    """Aggregate balance rows into per-user, per-asset liabilities.

    ``users`` and ``assets`` add users with no balance (so they still get a proof)
    and assets nobody holds.  Rejected with :class:`PorError`: a negative
    available or held (it cannot be netted against another account), a
    (user, asset, account) given twice, a user id or any per-user or total sum
    outside [0, 2**64 - 1].
    """
    _check_int(seq, "seq")
    seen: set[tuple[int, int, int]] = set()
    per: dict[tuple[int, int], int] = {}
    uids = {_check_int(u, "user id") for u in users}
    aids = {_check_int(a, "asset id", 0, 0xFFFFFFFF) for a in assets}
    for r in rows:
        _check_int(r.user_id, "user id")
        _check_int(r.asset_id, "asset id", 0, 0xFFFFFFFF)
        _check_int(r.account, "account", 0, 0xFF)
        key = (r.user_id, r.asset_id, r.account)
        if key in seen:
            raise PorError(f"duplicate balance: user {key[0]} asset {key[1]} account {key[2]}")
        seen.add(key)
        for what, v in (("available", r.available), ("held", r.held)):
            if type(v) is not int:
                raise PorError(f"user {r.user_id} asset {r.asset_id}: {what} {v!r} not an integer")
            if v < 0:
                raise PorError(f"user {r.user_id} asset {r.asset_id}: negative {what} {v}")
        s = per.get((r.user_id, r.asset_id), 0) + r.available + r.held
        if s > MAX_SUM:
            raise PorError(f"user {r.user_id} asset {r.asset_id}: balance {s} overflows 2**64-1")
        per[(r.user_id, r.asset_id)] = s
        uids.add(r.user_id)
        aids.add(r.asset_id)
    if not aids:
        raise PorError("no assets: nothing to prove")
    order = sorted(aids)
    col = {a: k for k, a in enumerate(order)}
    out = Liabilities(seq, order, {u: [0] * len(order) for u in sorted(uids)})
    for (u, a), s in per.items():
        out.users[u][col[a]] = s
    for a, t in zip(order, out.totals(), strict=True):
        if t > MAX_SUM:
            raise PorError(f"asset {a}: total liabilities {t} overflow 2**64-1")
    return out


SaltFn = Callable[[int], bytes]


@dataclass
class Tree:
    """A built tree: levels of (hash, sums), the salts and each user's leaf index."""

    liab: Liabilities
    levels: list[list[tuple[bytes, list[int]]]]
    salts: dict[int, bytes]
    index: dict[int, int]

    @property
    def depth(self) -> int:
        """Number of levels above the leaves (the length of every proof path)."""
        return len(self.levels) - 1

    @property
    def top(self) -> tuple[bytes, list[int]]:
        """The top node's hash and sums."""
        return self.levels[-1][0]

    def root(self) -> bytes:
        """The published root commitment (binds seq, assets, counts, top node, totals)."""
        top_hash, totals = self.top
        n = len(self.liab.users)
        return enc.root_hash(self.liab.seq, self.liab.assets, n, self.depth, top_hash, totals)

    def root_json(self) -> dict[str, Any]:
        """root.json: what the exchange publishes."""
        top_hash, totals = self.top
        return {
            "version": enc.FORMAT_VERSION,
            "hash": "sha256",
            "seq": self.liab.seq,
            "assets": self.liab.assets,
            "totals": {str(a): t for a, t in zip(self.liab.assets, totals, strict=True)},
            "leaves": len(self.liab.users),
            "depth": self.depth,
            "top_hash": top_hash.hex(),
            "root": self.root().hex(),
        }

    def proof(self, user_id: int) -> dict[str, Any]:
        """The inclusion proof of ``user_id`` (holds the user's salt: give it to them only)."""
        if user_id not in self.index:
            raise PorError(f"user {user_id} is not in the tree")
        i = self.index[user_id]
        path = []
        for level in self.levels[:-1]:
            h, s = level[i ^ 1]
            path.append({"hash": h.hex(), "sums": list(s)})
            i >>= 1
        bal = self.liab.users[user_id]
        return {
            "version": enc.FORMAT_VERSION,
            "seq": self.liab.seq,
            "root": self.root().hex(),
            "user_id": user_id,
            "salt": self.salts[user_id].hex(),
            "balances": {str(a): v for a, v in zip(self.liab.assets, bal, strict=True)},
            "index": self.index[user_id],
            "path": path,
        }


def random_salt(_user_id: int) -> bytes:
    """A fresh 32-byte salt from the OS CSPRNG."""
    return secrets.token_bytes(enc.SALT_BYTES)


def build(liab: Liabilities, salt: SaltFn = random_salt) -> Tree:
    """Build the tree over ``liab`` (at least one user); ``salt`` is for tests only."""
    if not liab.users:
        raise PorError("no users: nothing to prove")
    n_assets = len(liab.assets)
    salts = {u: salt(u) for u in liab.users}
    leaves = []
    for u, sums in liab.users.items():
        uh = enc.user_hash(u, salts[u])
        leaves.append((uh, u, enc.leaf_hash(uh, sums), sums))
    leaves.sort()
    index = {u: i for i, (_, u, _, _) in enumerate(leaves)}
    depth = max(0, (len(leaves) - 1).bit_length())
    zero = [0] * n_assets
    level: list[tuple[bytes, list[int]]] = [(lh, list(s)) for _, _, lh, s in leaves]
    level += [(enc.pad_hash(i), zero) for i in range(len(leaves), 1 << depth)]
    levels = [level]
    while len(level) > 1:
        nxt = []
        for j in range(0, len(level), 2):
            (lh, ls), (rh, rs) = level[j], level[j + 1]
            try:
                nxt.append((enc.node_hash(lh, ls, rh, rs), enc.add_sums(ls, rs)))
            except enc.ProofError as e:
                raise PorError(str(e)) from e
        levels.append(nxt)
        level = nxt
    return Tree(liab, levels, salts, index)
