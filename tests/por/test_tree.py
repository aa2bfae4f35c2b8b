"""The liabilities tree: every proof verifies, the encoding is the documented one byte by
byte, bad input cannot enter the tree, and the verifier rejects malformed proofs."""

from __future__ import annotations

import copy
import hashlib
import json
import struct

import pytest

from por import verify as ver
from por.source import from_json
from por.tree import MAX_SUM, BalanceRow, PorError, build, liabilities
from tests.por.kit import random_tree, seeded_salt

D = b"bursa-por-v1"


@pytest.mark.parametrize("users", [1, 2, 3, 7, 8, 9, 64, 100])
def test_every_proof_verifies_and_totals_match(users):
    tree = random_tree(users, users)
    root = json.loads(json.dumps(tree.root_json()))
    totals = tree.liab.totals()
    assert root["totals"] == {str(a): t for a, t in zip(tree.liab.assets, totals, strict=True)}
    assert root["leaves"] == users and 1 << root["depth"] >= users
    for u, bal in tree.liab.users.items():
        proof = json.loads(json.dumps(tree.proof(u)))
        out = ver.verify(root, proof)
        assert out["user_id"] == u
        assert out["balances"] == {str(a): b for a, b in zip(tree.liab.assets, bal, strict=True)}


def test_aggregates_available_and_held_over_accounts():
    liab = liabilities(
        5,
        [BalanceRow(7, 2, 0, 10, 3), BalanceRow(7, 2, 1, 4, 0), BalanceRow(8, 1, 0, 1, 0)],
        users=[9],
    )
    assert liab.assets == [1, 2]
    assert liab.users == {7: [0, 17], 8: [1, 0], 9: [0, 0]}
    assert liab.totals() == [1, 17]


def _sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def test_encoding_byte_by_byte():
    """Recompute a 3-user tree from docs/por.md's byte layout, independently of por.verify."""
    rows = [BalanceRow(1, 5, 0, 100, 0), BalanceRow(2, 9, 0, 7, 1), BalanceRow(3, 5, 0, 0, 2)]
    tree = build(liabilities(42, rows), salt=seeded_salt(1))
    salts = tree.salts
    bal = {1: [100, 0], 2: [0, 8], 3: [2, 0]}

    def sums(v):
        return b"".join(x.to_bytes(8, "big") for x in v)

    leaves = []
    for u in (1, 2, 3):
        uh = _sha(D, b"\x01", salts[u], u.to_bytes(8, "big"))
        leaves.append((uh, _sha(D, b"\x02", uh, sums(bal[u])), bal[u]))
    leaves.sort()
    level = [(lh, s) for _, lh, s in leaves] + [(_sha(D, b"\x05", (3).to_bytes(8, "big")), [0, 0])]
    while len(level) > 1:
        level = [
            (
                _sha(D, b"\x03", lh, sums(ls), rh, sums(rs)),
                [a + b for a, b in zip(ls, rs, strict=True)],
            )
            for (lh, ls), (rh, rs) in zip(level[::2], level[1::2], strict=True)
        ]
    top, totals = level[0]
    assert totals == [102, 8]
    root = _sha(
        D, b"\x04", struct.pack(">QH", 42, 2), struct.pack(">II", 5, 9),
        struct.pack(">QB", 3, 2), top, sums(totals),
    )  # fmt: skip
    assert tree.top == (top, totals)
    assert tree.root_json()["root"] == root.hex()


@pytest.mark.parametrize(
    "rows, match",
    [
        ([BalanceRow(1, 1, 0, -1, 0)], "negative available"),
        ([BalanceRow(1, 1, 0, 5, -1)], "negative held"),
        ([BalanceRow(1, 1, 0, 5, 0), BalanceRow(1, 1, 0, 6, 0)], "duplicate balance"),
        ([BalanceRow(1, 1, 0, MAX_SUM, 1)], "overflows"),
        ([BalanceRow(1, 1, 0, MAX_SUM, 0), BalanceRow(1, 1, 1, 1, 0)], "overflows"),
        ([BalanceRow(1, 1, 0, 2**63, 0), BalanceRow(2, 1, 0, 2**63, 0)], "total liabilities"),
        ([BalanceRow(1, 1, 0, 1.5, 0)], "not an integer"),  # type: ignore[arg-type]
        ([BalanceRow(1, 1, 0, True, 0)], "not an integer"),
        ([BalanceRow(-1, 1, 0, 1, 0)], "user id"),
        ([BalanceRow(2**64, 1, 0, 1, 0)], "user id"),
        ([BalanceRow(1, 2**32, 0, 1, 0)], "asset id"),
        ([], "no assets"),
    ],
)
def test_bad_input_cannot_enter_the_tree(rows, match):
    with pytest.raises(PorError, match=match):
        liabilities(1, rows)


def test_no_users_rejected():
    with pytest.raises(PorError, match="no users"):
        build(liabilities(1, [], assets=[1]))


def test_balances_file(tmp_path):
    good = {"seq": 3, "balances": [{"user": 1, "asset": 2, "available": 5, "held": 1}]}
    p = tmp_path / "b.json"
    p.write_text(json.dumps(good))
    liab = from_json(str(p))
    assert (liab.seq, liab.assets, liab.users) == (3, [2], {1: [6]})
    bad = [
        ('{"seq": 3, "seq": 4, "balances": []}', "duplicate JSON key"),
        ('{"seq": 3, "balances": [], "x": 1}', "unknown keys"),
        ('{"seq": 3, "balances": [{"user": 1, "asset": 2, "available": 5}]}', "missing"),
        ('{"seq": -1, "balances": [{"user": 1, "asset": 2, "available": 5, "held": 0}]}', "seq"),
        ('{"seq": 1, "balances": [{"user": 1, "asset": 2, "available": -5, "held": 0}]}', "neg"),
        ("[1]", "expected an object"),
        ("{", "Expecting"),
    ]
    for text, match in bad:
        p.write_text(text)
        with pytest.raises(PorError, match=match):
            from_json(str(p))


@pytest.fixture(scope="module")
def small():
    tree = random_tree(3, 11)
    u = sorted(tree.liab.users)[4]
    return tree.root_json(), tree.proof(u)


def _rejects(root, proof, match):
    with pytest.raises(ver.ProofError, match=match):
        ver.verify(root, proof)


def test_sums_are_bound_to_the_hashes(small):
    """Moving value between a sibling and the user's own leaf keeps the totals but not the
    hashes: a sibling's sums are committed by the parent's hash (Maxwell+ style)."""
    root, proof = small
    p = copy.deepcopy(proof)
    p["path"][0]["sums"][0] += 1
    p["balances"][str(root["assets"][0])] -= 1
    _rejects(root, p, "top hash|top sums")
    p = copy.deepcopy(proof)
    k = next(k for k, v in enumerate(p["path"][1]["sums"]) if v >= 5)
    p["path"][1]["sums"][k] -= 5
    p["path"][0]["sums"][k] += 5
    _rejects(root, p, "top hash")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda r, p: p["path"][0]["sums"].__setitem__(0, -1), "not an integer in"),
        (lambda r, p: p["path"][0]["sums"].__setitem__(0, 2**64), "not an integer in"),
        (lambda r, p: p["path"][0]["sums"].__setitem__(0, 1.0), "not an integer in"),
        (lambda r, p: p["path"][0]["sums"].__setitem__(0, MAX_SUM), "overflows"),
        (lambda r, p: p["path"][0]["sums"].append(0), "list of 3"),
        (lambda r, p: p["path"].pop(), "exactly"),
        (lambda r, p: p["path"].append(p["path"][0]), "exactly"),
        (lambda r, p: p.__setitem__("index", r["leaves"]), "'index'"),
        (lambda r, p: p.__setitem__("salt", "00" * 31), "'salt'"),
        (lambda r, p: p["balances"].pop("1"), "one entry per asset"),
        (lambda r, p: p["balances"].__setitem__("9", 0), "one entry per asset"),
        (lambda r, p: p.__setitem__("version", 2), "version"),
        (lambda r, p: r.__setitem__("leaves", 1 << (r["depth"] + 1)), "more leaves"),
        (lambda r, p: r.__setitem__("assets", [3, 2, 1]), "sorted"),
        (lambda r, p: r["totals"].pop("1"), "one entry per asset"),
        (lambda r, p: r["totals"].__setitem__("1", -5), "not an integer in"),
    ],
)
def test_malformed_proofs_rejected(small, edit, match):
    root, proof = copy.deepcopy(small[0]), copy.deepcopy(small[1])
    edit(root, proof)
    _rejects(root, proof, match)


def test_duplicate_json_keys_rejected(tmp_path):
    p = tmp_path / "p.json"
    p.write_text('{"a": 1, "a": 2}')
    with pytest.raises(ver.ProofError, match="duplicate"):
        ver.load_json(str(p))


def test_salts_are_fresh_and_private():
    liab = liabilities(1, [BalanceRow(1, 1, 0, 5, 0), BalanceRow(2, 1, 0, 5, 0)])
    a, b = build(liab), build(liab)
    assert a.salts[1] != b.salts[1] and len(a.salts[1]) == 32
    assert a.root() != b.root()  # same balances, unlinkable roots across snapshots
    proof = a.proof(1)
    assert proof["salt"] == a.salts[1].hex()
    assert a.salts[2].hex() not in json.dumps(proof)
