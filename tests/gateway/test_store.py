"""The stored session streams: chunked per turn, read back message by message."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bindings import intentfile
from bursa_wire.gw_layout import APP_OUT, STATE_FILLED, STATE_PENDING
from gateway import store as store_mod
from gateway.store import Order, Store

# Stored payloads are whole outbound messages (code + fixed-size body).
PAYLOADS = st.sampled_from(APP_OUT).flatmap(
    lambda m: st.binary(min_size=m.struct.size, max_size=m.struct.size).map(lambda b: m.code + b)
)
TURNS = st.lists(
    st.lists(st.tuples(st.integers(1, 3), PAYLOADS), max_size=8),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(turns=TURNS, from_seq=st.integers(0, 30), limit=st.integers(1, 40))
def test_stream_reads_back_every_message(
    turns: list[list[tuple[int, bytes]]], from_seq: int, limit: int
) -> None:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "gw.db"
        store = Store(db)
        sent: dict[int, list[tuple[int, bytes]]] = {}
        for turn in turns:
            for key_id, payload in turn:
                seq = store.append(key_id, payload)
                sent.setdefault(key_id, []).append((seq, payload))
            store.commit()
        store.close()
        again = Store(db)  # reopened: the same streams and last seqs
        for key_id in (1, 2, 3):
            msgs = sent.get(key_id, [])
            assert [s for s, _ in msgs] == list(range(1, len(msgs) + 1))
            assert again.last_seq.get(key_id, 0) == len(msgs)
            want = [m for m in msgs if m[0] >= from_seq][:limit]
            assert again.stream(key_id, from_seq, limit) == want
        again.close()


def _order(key_id: int, cl: int, oid: int) -> Order:
    return Order(1, oid, key_id, cl, 1, 1, 1, 1000, 5, 5)


def test_order_map_is_bounded_and_ended_orders_are_served_from_sqlite() -> None:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "gw.db"
        store = Store(db, max_orders_in_memory=10)
        orders = [_order(7, 100 + i, 0) for i in range(30)]
        for o in orders:
            store.new_order(o)
        store.commit()
        assert len(store.orders) == 30  # all open: never evicted, whatever the bound
        for o in orders[:25]:  # 25 end (filled), 5 stay open
            o.pending.clear()
            o.state, o.filled, o.leaves = STATE_FILLED, 5, 0
            store.save_order(o)
        orders[0].pending.append("C")  # a cancel in flight: not evicted while it is
        store.save_order(orders[0])
        store.commit()
        assert len(store.orders) == 10 and list(store.by_cl) == [7] and len(store.by_cl[7]) == 10
        assert store.evicted == 20
        assert {o.cl_ord_id for o in store.by_cl[7].values()} >= {125, 126, 127, 128, 129, 100}
        # an evicted order: read back from SQLite with its last committed state
        got = store.find_cl(7, 101)
        assert got is not None and got is not orders[1]
        assert (got.state, got.filled, got.leaves, got.order_id) == (
            STATE_FILLED, 5, 0, orders[1].order_id,
        )  # fmt: skip
        assert store.find_cl(7, 99) is None and store.find_cl(8, 101) is None
        assert store.find_cl(7, 10**6) is None  # above the session's highest id: no look-up
        assert store.known_cls(7, [99, 101, 128, 130, 100]) == {101, 128, 100}
        store.close()
        again = Store(db, max_orders_in_memory=10)  # a restart loads only what can change
        assert {o.cl_ord_id for o in again.by_cl[7].values()} == {100, 125, 126, 127, 128, 129}
        assert again.max_cl[7] == 129
        assert again.known_cls(7, [101, 129, 130]) == {101, 129}
        st = again.find_cl(7, 110)
        assert st is not None and st.state == STATE_FILLED
        again.close()


def test_old_orders_table_is_rekeyed_by_client_id() -> None:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "gw.db"
        con = sqlite3.connect(db)
        con.execute(
            "CREATE TABLE orders (user_id INTEGER NOT NULL, order_id INTEGER NOT NULL,"
            " key_id INTEGER NOT NULL, cl_ord_id INTEGER NOT NULL, symbol_id INTEGER NOT NULL,"
            " side INTEGER NOT NULL, ord_type INTEGER NOT NULL, price INTEGER NOT NULL,"
            " qty INTEGER NOT NULL, leaves INTEGER NOT NULL, filled INTEGER NOT NULL,"
            " state INTEGER NOT NULL, reason INTEGER NOT NULL, pending TEXT NOT NULL,"
            " PRIMARY KEY (user_id, order_id)) WITHOUT ROWID"
        )
        con.execute(
            "INSERT INTO orders VALUES (1, 5, 7, ?, 1, 1, 1, 1000, 5, 0, 5, ?, 0, '')",
            (42 - 2**63, STATE_FILLED),
        )
        con.commit()
        con.close()
        store = Store(db)
        o = store.find_cl(7, 42)
        assert o is not None and (o.order_id, o.state) == (5, STATE_FILLED)
        pk = [
            str(r[1])
            for r in sorted(store.con.execute("PRAGMA table_info(orders)"), key=lambda r: r[5])
            if r[5]
        ]
        assert pk == ["key_id", "cl_ord_id"]
        store.close()


def test_the_core_seq_is_stored_with_the_next_change(tmp_path: Path) -> None:
    """set_core_seq alone writes nothing (a turn whose events changed nothing commits
    nothing); the next commit that writes anything stores it, and so does close()."""
    db = tmp_path / "gw.db"
    s = Store(db)
    s.set_core_seq(5)
    s.commit()
    assert Store(db).last_core_seq == 0  # as after a kill -9 here: resume at 1
    s.append(1, b"\x00")
    s.commit()
    assert Store(db).last_core_seq == 5
    s.set_core_seq(9)
    s.commit()
    assert Store(db).last_core_seq == 5
    s.close()
    assert Store(db).last_core_seq == 9


def test_the_tickers_commit_stores_a_core_seq_left_unsaved(tmp_path: Path) -> None:
    """A gateway that only sees events that change nothing (other doors' orders) still
    stores its resume point: the ticker's commit(fold=True) writes the seq once it has
    waited SEQ_SAVE_INTERVAL_S, so it never falls behind the core's log retention."""
    db = tmp_path / "gw.db"
    s = Store(db)
    s.set_core_seq(7)
    s.commit(fold=True)  # just started: not due yet
    assert Store(db).last_core_seq == 0
    s._seq_saved_s -= store_mod.SEQ_SAVE_INTERVAL_S
    s.commit()  # a turn's commit does not store it on its own
    assert Store(db).last_core_seq == 0
    s.commit(fold=True)
    assert Store(db).last_core_seq == 7
    s.set_core_seq(8)
    s.commit(fold=True)  # just saved: waits again
    assert Store(db).last_core_seq == 7
    s.close()


def test_commit_folds_aged_log_rows_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turns' commits leave the order log's fold to the ticker's commit(fold=True)."""
    monkeypatch.setattr(store_mod, "FOLD_AGE_S", -1.0)  # every row is of age at once
    s = Store(tmp_path / "gw.db")
    o = Order(1, 0, 7, 1, 1, 1, 1, 1000, 5, 5)
    s.new_order(o)
    s.commit()
    s.append(7, b"\x00")
    s.commit()
    assert s.folded == 0 and len(s._log) == 1
    s.commit(fold=True)  # nothing else to write: the fold alone is a transaction
    assert s.folded == 1 and not s._log
    assert s.con.execute("SELECT COUNT(*) FROM order_log").fetchone()[0] == 0
    s.close()


def test_the_checkpointer_moves_the_wal_into_the_database(tmp_path: Path) -> None:
    """With the checkpoint thread, commits never checkpoint themselves
    (wal_autocheckpoint 0) and the thread's checkpoints copy them into the file."""
    db = tmp_path / "gw.db"
    s = Store(db)
    s.start_checkpointer(0.01)
    assert s.con.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for _ in range(50):
        s.append(1, bytes([0]) * 10)
        s.commit()
    cp = s._checkpointer
    assert cp is not None
    deadline = time.monotonic() + 30
    while cp.checkpoints < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cp.checkpoints >= 2 and cp.errors == 0
    # Everything committed is in the database file now (read without the WAL).
    con = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    assert con.execute("SELECT MAX(last_seq) FROM out_chunks").fetchone()[0] == 50
    con.close()
    s.close()
    assert not cp._thread.is_alive()
    assert Store(db).last_seq[1] == 50


def test_the_id_counter_survives_a_kill_without_a_row_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit before a NEW leaves stores the order's row, not the counter: a
    restart takes the counter past every id in the order log, and a fold (the rows
    leave the log) stores it.  A clock that stands still shows it is not the clock."""
    monkeypatch.setattr(store_mod, "clock_order_id", lambda: 0)
    db = tmp_path / "gw.db"
    s = Store(db)
    a, b = Order(1, 0, 7, 1, 1, 1, 1, 1000, 5, 5), Order(1, 0, 7, 2, 1, 1, 1, 1000, 5, 5)
    s.new_order(a)
    s.new_order(b)
    s.commit()
    assert (a.order_id, b.order_id) == (1, 2)
    assert s.con.execute("SELECT v FROM meta WHERE k = 'next_order_id'").fetchone() is None
    again = Store(db)  # as after a kill -9: the log is folded at start
    assert again.next_order_id == 3
    c = Order(1, 0, 7, 3, 1, 1, 1, 1000, 5, 5)
    again.new_order(c)
    again.commit()
    monkeypatch.setattr(store_mod, "FOLD_AGE_S", -1.0)
    again.commit(fold=True)  # c's row leaves the log: the counter is stored with it
    assert not again._log and c.order_id == 3
    assert Store(db).next_order_id == 4
    again.con.close()
    s.con.close()


def test_the_ticker_folds_a_few_aged_rows_only_when_they_are_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fold of its own is not run for fewer than FOLD_MIN_ROWS rows of age, unless
    the oldest is twice FOLD_AGE_S old."""
    monkeypatch.setattr(store_mod, "FOLD_AGE_S", 10.0)
    s = Store(tmp_path / "gw.db")
    s.new_order(Order(1, 0, 7, 1, 1, 1, 1, 1000, 5, 5))
    s.commit()
    lid, _, orders = s._log[0]
    s._log[0] = (lid, time.monotonic() - 15.0, orders)  # of age, one row
    s.commit(fold=True)
    assert s.folded == 0 and len(s._log) == 1
    s._log[0] = (lid, time.monotonic() - 25.0, orders)  # twice FOLD_AGE_S
    s.commit(fold=True)
    assert s.folded == 1 and not s._log
    s.close()


def test_a_quiet_turns_new_orders_go_to_the_intent_file_first(tmp_path: Path) -> None:
    """One order in flight: its image is written to the intent file before its NEW
    leaves and committed after; a kill in between leaves it in the file, and the
    restart stores it (pending: recovery probes it) with the id counter past it."""
    db = tmp_path / "gw.db"
    intent = Path(str(db) + store_mod.INTENT_SUFFIX)
    s = Store(db)
    a = Order(1, 0, 7, 1, 1, 1, 1, 1000, 5, 5)
    s.new_order(a)
    assert s.log_new_orders() and s.intent_writes == 1 and s.only_logged()
    size = len(store_mod.pack_orders_py([a]))
    assert intent.stat().st_size == size
    assert s.log_new_orders() and s.intent_writes == 1  # nothing new: nothing written
    assert intent.stat().st_size == size
    again = Store(db)  # a kill -9 here: the NEW may have left, SQLite has nothing
    got = again.find_cl(7, 1)
    assert got is not None and (got.order_id, got.state, got.pending) == (
        a.order_id,
        STATE_PENDING,
        ["N"],
    )
    assert again.next_order_id > a.order_id and intent.stat().st_size == 0
    again.close()
    s.commit()  # the next commit (its acknowledgement's): the file's image is stale
    assert not s.only_logged()
    # A turn with anything else to store commits before the send instead.
    b = Order(1, 0, 7, 2, 1, 1, 1, 1000, 5, 5)
    s.new_order(b)
    s.append(7, b"\x00")
    size = intent.stat().st_size
    assert not s.log_new_orders() and intent.stat().st_size == size
    s.commit()
    # The file is emptied once it holds INTENT_TRUNCATE_BYTES.
    while True:
        c = Order(1, 0, 7, s.max_cl[7] + 1, 1, 1, 1, 1000, 5, 5)
        s.new_order(c)
        assert s.log_new_orders()
        full = intent.stat().st_size >= store_mod.INTENT_TRUNCATE_BYTES
        s.commit()
        if full:
            break
    assert intent.stat().st_size == 0
    s.close()


def test_a_full_intent_file_gives_way_to_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intent file is bounded: once it holds INTENT_MAX_BYTES, a turn's new order
    is committed before its NEW leaves instead (log_new_orders says no)."""
    monkeypatch.setattr(intentfile, "INTENT_MAX_BYTES", 1)
    s = Store(tmp_path / "gw.db")
    s.new_order(Order(1, 0, 7, 1, 1, 1, 1, 1000, 5, 5))
    assert s.log_new_orders()  # empty file: appended
    s.commit()
    s.new_order(Order(1, 0, 7, 2, 1, 1, 1, 1000, 5, 5))
    assert not s.log_new_orders()
    s.close()


def test_the_intent_file_never_overrides_what_sqlite_has(tmp_path: Path) -> None:
    """A stale image in the intent file (its order was committed and changed since)
    and a write cut short by a crash change nothing at the restart."""
    db = tmp_path / "gw.db"
    s = Store(db)
    a = Order(1, 0, 7, 1, 1, 1, 1, 1000, 5, 5)
    s.new_order(a)
    stale = store_mod.pack_orders_py([a])
    s.commit()
    a.pending.clear()
    a.state, a.filled, a.leaves = STATE_FILLED, 5, 0
    s.save_order(a)
    s.commit()
    s.close()
    b = Order(1, 9, 7, 2, 1, 1, 1, 1000, 5, 5, 0, STATE_PENDING, 0, ["N"])
    whole = store_mod.pack_orders_py([b])
    assert store_mod.whole_records(stale + whole) == len(stale + whole)
    assert store_mod.whole_records(stale + whole[:-3]) == len(stale)
    with open(str(db) + store_mod.INTENT_SUFFIX, "ab") as fh:
        fh.write(stale + whole[:-3])  # b's image cut short
    again = Store(db)
    got = again.find_cl(7, 1)
    assert got is not None and (got.state, got.filled) == (STATE_FILLED, 5)
    assert again.find_cl(7, 2) is None
    again.close()
