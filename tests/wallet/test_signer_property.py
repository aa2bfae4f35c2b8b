"""Property tests of the offline signer's 24-hour ledger (transactions sharing an input
count once, at their largest payment) and of the Ethereum multisig request codec."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wallet.conftest import ROOT
from wallet import ethmultisig
from wallet.addresses import eth_address
from wallet.signer import signed_total

COINS = [f"{i:064x}:0" for i in range(8)]
rows_st = st.lists(
    st.tuples(
        st.sampled_from([f"tx{i}" for i in range(12)]),
        st.integers(0, 10**12),
        st.frozensets(st.sampled_from(COINS), max_size=3),
    ),
    max_size=10,
)


def reference(rows: list[tuple[str, int, frozenset[str]]]) -> int:
    """Rows with the same input set (or, without inputs, the same txid) are one payment."""
    best: dict[object, int] = {}
    for txid, amount, spends in rows:
        k = spends if spends else txid
        best[k] = max(best.get(k, 0), amount)
    return sum(best.values())


def max_payable(rows: list[tuple[str, int, frozenset[str]]]) -> int:
    """Brute force: the most any set of pairwise non-conflicting rows can pay."""
    out = 0
    for mask in range(1 << len(rows)):
        chosen = [rows[i] for i in range(len(rows)) if mask >> i & 1]
        ok = all(
            not (a[2] & b[2]) and a[0] != b[0]
            for i, a in enumerate(chosen) for b in chosen[i + 1 :]
        )  # fmt: skip
        if ok:
            out = max(out, sum(r[1] for r in chosen))
    return out


@settings(max_examples=300, deadline=None)
@given(rows_st)
def test_signed_total_is_the_max_per_conflict_group(
    rows: list[tuple[str, int, frozenset[str]]],
) -> None:
    assert signed_total(rows) == reference(rows)
    # never below what could really be paid together: the limit is never undercounted
    assert signed_total(rows) >= max_payable(rows)


@settings(max_examples=200, deadline=None)
@given(rows_st, st.integers(0, 10**12), st.frozensets(st.sampled_from(COINS), min_size=1))
def test_a_new_row_adds_at_most_its_amount(
    rows: list[tuple[str, int, frozenset[str]]], amount: int, spends: frozenset[str]
) -> None:
    before = signed_total(rows)
    after = signed_total([*rows, ("new", amount, spends)])
    assert before <= after <= before + amount
    # a replacement (exactly the inputs of an existing row) adds only its excess
    same = [a for _, a, s in rows if s == spends]
    if same:
        assert after == before + max(0, amount - max(same))


def addr(i: int) -> str:
    return eth_address(ROOT.derive(f"m/44h/60h/30h/0/{i}").key.get_public_key())


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 2**64), st.integers(0, 2**64), st.integers(0, 2**200), st.booleans(),
    st.integers(0, 4), st.integers(0, 4),
)  # fmt: skip
def test_request_round_trip_and_payment(
    chain_id: int, nonce: int, amount: int, token: bool, to: int, contract: int
) -> None:
    tok = addr(9) if token else ""
    req = ethmultisig.request_for(chain_id, addr(contract), nonce, addr(to), amount, tok, addr(5))
    assert ethmultisig.Request.from_json(req.to_json()) == req
    assert req.payment() == (tok, addr(to), amount)
    # every field is bound by the digest: change one, the digest changes
    other = ethmultisig.request_for(
        chain_id, addr(contract), nonce + 1, addr(to), amount, tok, addr(5)
    )
    assert other.digest() != req.digest()
