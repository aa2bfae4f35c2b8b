"""Shared helpers for the proof-of-reserves tests: seeded liabilities and trees."""

from __future__ import annotations

import random

from por.tree import BalanceRow, Liabilities, Tree, build, liabilities


def seeded_salt(seed: int):
    """A deterministic salt function (tests only; production uses the OS CSPRNG)."""
    rng = random.Random(seed)
    return lambda _uid: rng.randbytes(32)


def random_liabilities(seed: int, users: int, assets: int = 3, seq: int = 99) -> Liabilities:
    """``users`` users with random balances over ``assets`` assets, some zero, two accounts."""
    rng = random.Random(seed)
    rows = []
    for u in rng.sample(range(1, 10**9), users):
        for a in range(1, assets + 1):
            for acc in range(2):
                if rng.random() < 0.6:
                    rows.append(
                        BalanceRow(u, a, acc, rng.randrange(10**15), rng.choice([0, 5, 10**9]))
                    )
        rows.append(BalanceRow(u, 1, 3, 0, 0))  # every user appears at least once
    return liabilities(seq, rows, assets=range(1, assets + 1))


def random_tree(seed: int, users: int, assets: int = 3) -> Tree:
    """A built tree over :func:`random_liabilities` with seeded salts."""
    return build(random_liabilities(seed, users, assets), salt=seeded_salt(seed))
