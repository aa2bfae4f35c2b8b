"""The store's client-id filter: a client id it holds is never missed (in this
process or after a restart), and a new one is answered without reading SQLite."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from api.store import ClientIdFilter, Order, Store

_PAIRS = st.lists(st.tuples(st.integers(1, 2**40), st.text(max_size=36)), max_size=200)


@given(_PAIRS)
def test_no_pair_added_is_missed(pairs: list[tuple[int, str]]) -> None:
    """Every pair added answers "may hold" (small filters: collisions galore)."""
    f = ClientIdFilter(bits_log2=10)
    for uid, cl in pairs:
        f.add(uid, cl)
    assert all(f.may_hold(uid, cl) for uid, cl in pairs)


def test_new_pairs_are_known_absent() -> None:
    """With the default size, pairs never added are (all but never) known absent."""
    f = ClientIdFilter()
    for i in range(10_000):
        f.add(7, f"id-{i}")
    wrong = sum(f.may_hold(7, f"other-{i}") for i in range(10_000))
    assert wrong < 10  # expected: about 0.01 in all


def _order(oid: int, cl: str) -> Order:
    return Order(1, oid, 1, cl, "BUY", "LIMIT", "GTC", 100, 5, 0, 0)


def _selects(s: Store) -> list[str]:
    seen: list[str] = []
    s.con.set_trace_callback(lambda sql: seen.append(sql) if "SELECT" in sql else None)
    return seen


def test_store_finds_stored_ids_and_skips_sqlite_for_new_ones(tmp_path: Path) -> None:
    """An ended order's client id (only in SQLite) is found after a reopen; an id
    never stored is answered None without a SELECT; one stored is read."""
    db = tmp_path / "api.db"
    s = Store(db)
    a = _order(1, "kept-a")
    s.add(a)
    a.status = "FILLED"  # ended: leaves memory at the commit, stays in SQLite
    s.save(a)
    s.set_core_seq(1)
    s.commit()
    assert (1, "kept-a") not in s.open_by_cl
    seen = _selects(s)
    assert s.by_client_id(1, "never-sent") is None
    assert seen == []
    got = s.by_client_id(1, "kept-a")
    assert got is not None and got.order_id == 1 and len(seen) == 1
    s.close()
    again = Store(db)
    try:
        seen = _selects(again)
        assert again.by_client_id(1, "never-sent") is None and seen == []
        got = again.by_client_id(1, "kept-a")
        assert got is not None and got.status == "FILLED" and len(seen) == 1
        assert again.by_client_id(2, "kept-a") is None  # another user's
    finally:
        again.close()
