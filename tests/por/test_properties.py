"""Hypothesis: for any valid balances every proof verifies and the totals are the sums;
any negative balance is rejected; proofs of one tree never verify against another root."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from por import verify as ver
from por.tree import MAX_SUM, BalanceRow, PorError, build, liabilities

rows_st = st.lists(
    st.builds(
        BalanceRow,
        user_id=st.integers(0, 30),
        asset_id=st.integers(0, 4),
        account=st.integers(0, 2),
        available=st.integers(0, 2**60),
        held=st.integers(0, 2**60),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda r: (r.user_id, r.asset_id, r.account),
)


@settings(max_examples=150, deadline=None)
@given(rows=rows_st, seq=st.integers(0, MAX_SUM))
def test_any_valid_balances_prove(rows, seq):
    liab = liabilities(seq, rows)
    tree = build(liab)
    root = tree.root_json()
    for a, col in zip(liab.assets, range(len(liab.assets)), strict=True):
        want = sum(r.available + r.held for r in rows if r.asset_id == a)
        assert root["totals"][str(a)] == want == liab.totals()[col]
    for u in liab.users:
        out = ver.verify(root, tree.proof(u))
        for a in liab.assets:
            mine = sum(r.available + r.held for r in rows if r.user_id == u and r.asset_id == a)
            assert out["balances"][str(a)] == mine


@settings(max_examples=150, deadline=None)
@given(rows=rows_st, data=st.data())
def test_any_negative_is_rejected(rows, data):
    i = data.draw(st.integers(0, len(rows) - 1))
    neg = -data.draw(st.integers(1, 2**63))
    r = rows[i]
    rows[i] = BalanceRow(r.user_id, r.asset_id, r.account, *(
        (neg, r.held) if data.draw(st.booleans()) else (r.available, neg)))  # fmt: skip
    with pytest.raises(PorError, match="negative"):
        liabilities(1, rows)


@settings(max_examples=50, deadline=None)
@given(rows=rows_st)
def test_proofs_do_not_cross_roots(rows):
    liab = liabilities(1, rows)
    a, b = build(liab), build(liab)  # same balances, fresh salts
    u = next(iter(liab.users))
    with pytest.raises(ver.ProofError):
        ver.verify(b.root_json(), a.proof(u))


json_st = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=10,
)  # fmt: skip


def _nodes(obj, path=()):
    """Every (container, key) position in a JSON tree."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for k, v in items:
        yield obj, k
        if isinstance(v, dict | list):
            yield from _nodes(v, (*path, k))


_TREE = build(liabilities(4, [BalanceRow(u, a, 0, u * a, 1) for u in range(5) for a in (1, 2)]))


@settings(max_examples=400, deadline=None)
@given(value=json_st, data=st.data(), in_root=st.booleans())
def test_malformed_json_never_crashes_the_verifier(value, data, in_root):
    """Any other JSON value put anywhere in a root or proof is rejected with a ProofError
    (never a crash, never accepted): every field is checked."""
    import copy

    root, proof = copy.deepcopy(_TREE.root_json()), copy.deepcopy(_TREE.proof(3))
    target = root if in_root else proof
    spots = list(_nodes(target))
    container, key = spots[data.draw(st.integers(0, len(spots) - 1))]
    old = container[key]
    container[key] = value
    if type(value) is type(old) and value == old:
        ver.verify(root, proof)
    else:
        with pytest.raises(ver.ProofError):
            ver.verify(root, proof)
