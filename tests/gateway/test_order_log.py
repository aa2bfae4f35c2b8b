"""The order log: orders stored as one packed blob row per turn, folded into ``orders``.

``pyx.gworders.pack_orders`` against its oracle ``gateway.store.pack_orders_py`` and
``unpack_orders`` (hypothesis); a store reopened without any fold (as after kill -9)
has every order's latest committed state; a fold writes each order once and empties
the log.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections import deque
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bursa_wire.gw_layout import STATE_CANCELED, STATE_FILLED, STATE_OPEN, STATE_PENDING
from gateway import store as store_mod
from gateway.store import Order, Store, pack_orders_py, unpack_orders
from pyx import gworders

U64 = st.integers(0, 2**64 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
U8 = st.integers(0, 255)
ORDER = st.builds(
    Order, U64, U64, U64, U64, st.integers(0, 2**16 - 1), U8, U8, I64, I64, I64, I64, U8,
    st.integers(-(2**31), 2**31 - 1), st.lists(st.sampled_from("NCUDRn"), max_size=6),
)  # fmt: skip
ORDERS = st.lists(ORDER, max_size=20)


@settings(max_examples=200, deadline=None)
@given(orders=ORDERS)
def test_pack_matches_the_reference_and_round_trips(orders: list[Order]) -> None:
    blob = gworders.pack_orders(orders)
    assert blob == pack_orders_py(orders)
    assert unpack_orders(blob) == orders
    assert gworders.pack_orders(orders, 7) == blob
    assert [o.log_id for o in orders] == [7] * len(orders)
    # With a log row id, an order listed again (new and changed in one turn) is packed
    # once, at its first place.
    again = orders + orders[::2] + orders[:1]
    assert gworders.pack_orders(again, 8) == blob
    assert [o.log_id for o in orders] == [8] * len(orders)
    assert gworders.pack_orders(again) == pack_orders_py(again)  # no row id: as listed


@settings(max_examples=100, deadline=None)
@given(orders=ORDERS, ids=st.lists(st.integers(1, 3), min_size=20, max_size=20))
def test_fold_rows_matches_the_reference(orders: list[Order], ids: list[int]) -> None:
    # Each order's latest image is in log row ids[i].
    copies = [unpack_orders(pack_orders_py([o]))[0] for o in orders]
    for o, c, i in zip(orders, copies, ids, strict=False):
        o.log_id = c.log_id = i
    want: list[tuple[int, int, int, bytes]] = []
    got: list[tuple[int, int, int, bytes]] = []
    Store.fold_py(copies, 2, want)
    gworders.fold_rows(orders, 2, got)
    assert got == want
    assert [o.log_id for o in orders] == [c.log_id for c in copies]
    assert [o.log_id for o in orders] == [0 if i == 2 else i for i in ids[: len(orders)]]


@settings(max_examples=100, deadline=None)
@given(
    orders=ORDERS,
    ids=st.lists(st.integers(1, 3), min_size=20, max_size=20),
    stored=st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_fold_rows_with_runs_matches_the_reference(
    orders: list[Order], ids: list[int], stored: list[bool]
) -> None:
    copies = [unpack_orders(pack_orders_py([o]))[0] for o in orders]
    for o, c, was, i in zip(orders, copies, stored, ids, strict=False):
        o.stored = c.stored = was
        o.log_id = c.log_id = i
    want: list[tuple[int, int, int, bytes]] = []
    got: list[tuple[int, int, int, bytes]] = []
    want_runs: dict[int, list[Order]] = {}
    got_runs: dict[int, list[Order]] = {}
    Store.fold_py(copies, 2, want, want_runs)
    gworders.fold_rows(orders, 2, got, got_runs)
    assert (got, got_runs) == (want, want_runs)
    assert [(o.stored, o.log_id) for o in orders] == [(c.stored, c.log_id) for c in copies]
    # Only ended orders with nothing pending, never stored before, are archived.
    for run in got_runs.values():
        assert all(o.state in store_mod.DONE_STATES and not o.pending for o in run)


@settings(max_examples=100, deadline=None)
@given(
    orders=ORDERS,
    keys=st.lists(st.sampled_from((1, 2, 3)), min_size=20, max_size=20),
    states=st.lists(st.sampled_from(store_mod.DONE_STATES), min_size=20, max_size=20),
)
def test_fold_rows_runs_of_few_sessions(
    orders: list[Order], keys: list[int], states: list[int]
) -> None:
    """Runs of interleaved sessions (fold_rows finds a session's run once per stretch)."""
    for o, k, st_ in zip(orders, keys, states, strict=False):
        o.key_id, o.state, o.pending, o.stored, o.log_id = k, st_, [], False, 2
    copies = [unpack_orders(pack_orders_py([o]))[0] for o in orders]
    for c in copies:
        c.log_id = 2
    want: list[tuple[int, int, int, bytes]] = []
    got: list[tuple[int, int, int, bytes]] = []
    want_runs: dict[int, list[Order]] = {}
    got_runs: dict[int, list[Order]] = {}
    Store.fold_py(copies, 2, want, want_runs)
    gworders.fold_rows(orders, 2, got, got_runs)
    assert (got, got_runs) == (want, want_runs) and not got
    assert sum(len(r) for r in got_runs.values()) == len(orders)


@settings(max_examples=200, deadline=None)
@given(cls=st.lists(st.integers(0, 2**64 - 1), max_size=30), ascending=st.booleans())
def test_sort_by_cl_sorts_like_the_key_sort(cls: list[int], ascending: bool) -> None:
    """pyx.gworders.sort_by_cl against list.sort(key=cl_ord_id): runs in order (only
    checked) and in any order (sorted), ties kept in place (a stable sort)."""
    if ascending:
        cls = sorted(cls)
    run = [Order(1, i + 1, 7, cl, 1, 1, 1, 100, 1, 0, 1, STATE_FILLED) for i, cl in enumerate(cls)]
    want = sorted(run, key=lambda o: o.cl_ord_id)
    gworders.sort_by_cl(run)
    assert [o.order_id for o in run] == [o.order_id for o in want]


def test_archive_serves_evicted_orders_and_never_overlaps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_mod, "FOLD_AGE_S", 3600.0)
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "gw.db"
        store = Store(db, max_orders_in_memory=1000)
        a, b, c = (Order(1, 0, 7, cl, 1, 1, 1, 1000, 5, 5) for cl in (10, 20, 30))
        for o in (a, b, c):
            store.new_order(o)
        store.commit()  # log row 1: a, b, c pending
        for o in (b, c):
            o.pending.clear()
            o.state, o.leaves, o.reason = STATE_CANCELED, 0, 3
            store.save_order(o)
        store.commit()  # row 2: b, c ended
        a.pending.clear()
        a.state = STATE_OPEN
        store.save_order(a)
        store.commit()  # row 3: a open
        store.con.execute("BEGIN")
        store._fold(0.0, 2)  # rows 1-2: a's latest image is in row 3, so a is not folded
        store.con.execute("COMMIT")
        assert not a.stored and b.stored and store._archived_hi[7] == 30
        a.state, a.leaves, a.reason = STATE_CANCELED, 0, 3
        store.save_order(a)
        store.commit()  # row 4: a ended, never stored, below the archived range
        store.close()  # folds the rest: a goes to the keyed table, not the archive
        con = sqlite3.connect(db)
        arch = con.execute("SELECT lo_cl, hi_cl FROM order_archive").fetchall()
        keyed = con.execute("SELECT cl_ord_id FROM orders").fetchall()
        con.close()
        assert arch == [(20 - 2**63, 30 - 2**63)] and keyed == [(10 - 2**63,)]
        again = Store(db, max_orders_in_memory=0)  # nothing ended is loaded
        assert not again.by_cl and again.max_cl[7] == 30
        for o in (a, b, c):
            got = again.find_cl(7, o.cl_ord_id)
            assert got is not None and _row_state(got) == _row_state(o)
        assert again.find_cl(7, 25) is None  # inside the archived range, never used
        assert again.find_cl(7, 31) is None
        assert again.known_cls(7, [10, 20, 25, 30, 40]) == {10, 20, 30}
        # An archived order changed again: its new image goes to the keyed table and wins.
        old = again.find_cl(7, 20)
        assert old is not None and old.stored  # its next image goes to the keyed table
        old.reason = 9
        again.save_order(old)
        again.close()
        third = Store(db)
        got = third.find_cl(7, 20)
        assert got is not None and got.reason == 9
        third.close()


def test_pack_lists_the_ended_orders() -> None:
    states = (STATE_PENDING, STATE_OPEN, STATE_FILLED, STATE_CANCELED, 5, STATE_FILLED)
    orders = [Order(1, i, 7, i, 1, 1, 1, 100, 5, 5, 0, s) for i, s in enumerate(states)]
    orders[5].pending.append("C")  # ended, but a cancel is in flight
    ended: deque[Order] = deque()
    gworders.pack_orders(orders, None, ended)
    assert [id(o) for o in ended] == [id(o) for o in orders[2:5]]  # the orders themselves


def test_pack_refuses_what_a_record_cannot_hold() -> None:
    with pytest.raises(OverflowError):
        Order(1, 2, 3, 4, 2**16, 1, 1, 100, 5, 5)  # symbol_id beyond u16
    o = Order(1, 2, 3, 4, 1, 1, 1, 100, 5, 5)
    with pytest.raises(OverflowError):
        o.cl_ord_id = -1
    o = Order(1, 2, 3, 4, 1, 1, 1, 100, 5, 5, pending=["é"])
    with pytest.raises(ValueError):
        gworders.pack_orders([o])


def _turns(store: Store) -> list[Order]:
    """Three turns: 6 orders created; 4 accepted and 2 of them filled; 1 canceled."""
    orders = [Order(1, 0, 7, 100 + i, 1, 1 + i % 2, 1, 1000 + i, 5, 5) for i in range(6)]
    for o in orders:
        store.new_order(o)
    store.commit()
    for o in orders[:4]:
        o.pending.clear()
        o.state = STATE_OPEN
        store.save_order(o)
    for o in orders[:2]:
        o.state, o.filled, o.leaves = STATE_FILLED, 5, 0
    store.commit()
    orders[3].state, orders[3].leaves, orders[3].reason = STATE_CANCELED, 0, 3
    store.save_order(orders[3])
    store.commit()
    return orders


def _row_state(o: Order | None) -> tuple[int, ...] | None:
    if o is None:
        return None
    return (o.order_id, o.state, o.filled, o.leaves, o.reason, len(o.pending))


def test_reopened_without_fold_has_the_latest_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "FOLD_AGE_S", 3600.0)  # nothing folds while running
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "gw.db"
        store = Store(db)
        orders = _turns(store)
        assert store.folded == 0
        assert store.con.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
        # No close(): the process dies here (every turn's transaction committed).
        again = Store(db)
        assert again.con.execute("SELECT COUNT(*) FROM order_log").fetchone()[0] == 0
        for o in orders:
            assert _row_state(again.find_cl(7, o.cl_ord_id)) == _row_state(o)
        # Only what can still change is loaded: pending (4, 5) and open (2).
        assert list(again.by_cl) == [7] and sorted(again.by_cl[7]) == [102, 104, 105]
        assert again.by_cl[7][104].pending == ["N"] and again.max_cl[7] == 105
        again.close()
        store.con.close()


def test_fold_writes_each_order_once_and_empties_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_mod, "FOLD_AGE_S", 3600.0)
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "gw.db"
        store = Store(db)
        orders = _turns(store)
        assert store.con.execute("SELECT COUNT(*) FROM order_log").fetchone()[0] == 3
        monkeypatch.setattr(store_mod, "FOLD_AGE_S", -1.0)  # every row is of age now
        store.append(7, b"\x00")  # a turn with something to commit
        store.commit(fold=True)  # the ticker's commit (the turns' commits do not fold)
        assert store.con.execute("SELECT COUNT(*) FROM order_log").fetchone()[0] == 0
        assert store.folded == len(orders)  # 3 turns of changes, one image each
        con = sqlite3.connect(db)
        rows = {r[0] + 2**63: r[1:] for r in con.execute("SELECT cl_ord_id, live, rec FROM orders")}
        arch = con.execute("SELECT key_id, lo_cl, hi_cl, recs FROM order_archive").fetchall()
        con.close()
        # The ended ones (100, 101 filled, 103 canceled) in one archive row, by client id;
        # the others in the keyed table.
        ended = [orders[0], orders[1], orders[3]]
        assert arch == [(7, 100 - 2**63, 103 - 2**63, pack_orders_py(ended))]
        assert store.archived == 3
        live = [o for o in orders if o not in ended]
        assert rows == {o.cl_ord_id: (int(o.is_open), pack_orders_py([o])) for o in live}
        # A change after the fold is logged again and folded again.
        orders[5].pending.clear()
        orders[5].state = STATE_OPEN
        store.save_order(orders[5])
        store.commit(fold=True)
        assert store.folded == len(orders) + 1
        store.close()
        again = Store(db)
        assert again.by_cl[7][105].state == STATE_OPEN
        assert again.by_cl[7][104].state == STATE_PENDING
        again.close()


def test_an_order_changed_after_its_log_row_is_not_folded_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_mod, "FOLD_AGE_S", 3600.0)
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "gw.db", max_orders_in_memory=1)
        a, b = Order(1, 0, 7, 1, 1, 1, 1, 1000, 5, 5), Order(1, 0, 7, 2, 1, 1, 1, 1000, 5, 5)
        store.new_order(a)
        store.new_order(b)
        store.commit()  # log row 1: a, b pending
        a.pending.clear()
        a.state, a.leaves, a.reason = STATE_CANCELED, 0, 3
        store.save_order(a)
        store.commit()  # log row 2: a ended -> evicted: row 2 folded first
        assert 1 not in store.by_cl[7] and store.evicted == 1
        got = store.find_cl(7, 1)
        assert got is not None and (got.state, got.pending) == (STATE_CANCELED, [])
        b.pending.clear()
        b.state, b.filled, b.leaves = STATE_FILLED, 5, 0
        store.save_order(b)
        store.commit()  # b ended, but the map is within its bound: not evicted
        assert store.find_cl(7, 2) is b
        store.close()
        again = Store(Path(d) / "gw.db", max_orders_in_memory=1)
        got = again.find_cl(7, 2)
        assert got is not None and (got.state, got.filled) == (STATE_FILLED, 5)
        again.close()


def test_a_table_of_one_column_per_field_is_converted_to_images() -> None:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "gw.db"
        con = sqlite3.connect(db)
        cols = ", ".join(f"{c} {'TEXT' if c == 'pending' else 'INTEGER'} NOT NULL"
                         for c in store_mod.OLD_ORDER_COLUMNS)  # fmt: skip
        con.execute(f"CREATE TABLE orders ({cols}, PRIMARY KEY (key_id, cl_ord_id)) WITHOUT ROWID")
        rows = [
            (1, 5, 7, 42 - 2**63, 1, 1, 1, 1000, 5, 0, 5, STATE_FILLED, 0, ""),
            (1, 6, 7, 43 - 2**63, 1, 2, 1, 1001, 5, 5, 0, STATE_OPEN, 0, "C"),
        ]
        con.executemany(f"INSERT INTO orders VALUES ({', '.join('?' * 14)})", rows)
        con.commit()
        con.close()
        store = Store(db)
        assert {k: list(m) for k, m in store.by_cl.items()} == {7: [43]}  # the open one
        o = store.by_cl[7][43]
        assert (o.order_id, o.side, o.price, o.pending) == (6, 2, 1001, ["C"])
        done = store.find_cl(7, 42)
        assert done is not None and (done.order_id, done.state, done.filled) == (5, STATE_FILLED, 5)
        assert store.max_cl[7] == 43
        store.close()
