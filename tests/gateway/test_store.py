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
from bursa_wire.gw_layout import APP_OUT, BY_NAME, STATE_FILLED, STATE_OPEN, STATE_PENDING
from gateway import store as store_mod
from gateway.store import Order, Store
from pyx.gworders import ORDER_REC

# Stored payloads are whole outbound messages (code + fixed-size body).
PAYLOADS = st.sampled_from(APP_OUT).flatmap(
    lambda m: st.binary(min_size=m.struct.size, max_size=m.struct.size).map(lambda b: m.code + b)
)
ACCEPTED = BY_NAME["ACCEPTED"]
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
    # Two checkpoints that start after the last commit (ones during the loop may
    # precede it on a loaded machine): the second one began after the first ended.
    after = cp.checkpoints + 2
    deadline = time.monotonic() + 30
    while cp.checkpoints < after and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cp.checkpoints >= after and cp.errors == 0
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


def _kill(s: Store) -> None:
    """What a kill -9 leaves of ``s``: its commits and the turn file's writes (in the
    page cache), nothing it held in memory."""
    s.con.close()
    if s._turns is not None:
        s._turns.close()


def _stored_chunks(db: Path) -> list[tuple[int, int]]:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT key_id, last_seq FROM out_chunks ORDER BY key_id, last_seq")
    out = [(int(k), int(s)) for k, s in rows]
    con.close()
    return out


def _accepted(cl: int) -> bytes:
    return ACCEPTED.code + ACCEPTED.struct.pack(
        *[cl if n == "cl_ord_id" else 1 for n in ACCEPTED.names]
    )


def test_a_quiet_turn_goes_to_the_turn_file_instead_of_a_commit(tmp_path: Path) -> None:
    """One order in flight: the new order's turn and its acknowledgement's turn (the
    order's change, its report, the core seq) are each one record of the turn file,
    nothing reaches SQLite; a re-login is served the report from memory; after a kill
    the restart applies both records (the order, the stream, the core seq) once."""
    db = tmp_path / "gw.db"
    turns = Path(str(db) + store_mod.TURN_SUFFIX)
    s = Store(db)
    a = Order(1, 0, 7, 1, 1, 1, 1, 1000, 5, 5)
    s.new_order(a)
    assert s.log_turn() and s.turn_writes == 1
    size = turns.stat().st_size
    assert s.log_turn() and s.turn_writes == 1 and turns.stat().st_size == size  # nothing new
    # The acknowledgement's turn.
    a.pending.clear()
    a.state = STATE_OPEN
    s.save_order(a)
    report = _accepted(1)
    assert s.append(7, report) == 1
    s.set_core_seq(42)
    assert s.log_turn() and s.turn_writes == 2
    assert s.committed_seq[7] == 1 and s.stream(7, 1, 10) == [(1, report)]  # from memory
    assert _stored_chunks(db) == []
    _kill(s)
    again = Store(db)
    assert again.recovered_turns == 2 and again.last_core_seq == 42
    assert again.stream(7, 1, 10) == [(1, report)] and again.last_seq == {7: 1}
    got = again.find_cl(7, 1)
    assert got is not None and (got.order_id, got.state, got.pending) == (
        a.order_id,
        STATE_OPEN,
        [],
    )
    assert again.next_order_id > a.order_id and turns.stat().st_size == 0
    _kill(again)
    third = Store(db)  # applied once: nothing left to apply, nothing applied twice
    assert third.recovered_turns == 0 and _stored_chunks(db) == [(7, 1)]
    assert third.stream(7, 1, 10) == [(1, report)] and third.last_core_seq == 42
    third.close()


def test_new_orders_recovered_from_the_turn_file_are_pending(tmp_path: Path) -> None:
    """A kill between the record of a new order and its acknowledgement: the restart
    stores it pending (its NEW may have reached the core: recovery probes it)."""
    db = tmp_path / "gw.db"
    s = Store(db)
    a = Order(1, 0, 7, 1, 1, 1, 1, 1000, 5, 5)
    s.new_order(a)
    assert s.log_turn()
    _kill(s)
    again = Store(db)
    got = again.find_cl(7, 1)
    assert got is not None and (got.order_id, got.state, got.pending) == (
        a.order_id,
        STATE_PENDING,
        ["N"],
    )
    assert 1 in again.by_cl[7]  # loaded: open
    again.close()


def test_a_commit_fills_the_turn_file_into_sqlite_with_its_mark(tmp_path: Path) -> None:
    """The ticker's commit fills the records into SQLite (with what the current turn
    has), storing the last record's number: records the file still holds after it are
    never applied again.  With fill_after_s the ticker waits until the oldest record
    is that old; a turn's own commit fills them at once."""
    db = tmp_path / "gw.db"
    s = Store(db)
    s.fill_after_s = 60.0
    s.append(7, _accepted(1))
    assert s.log_turn()
    s.commit(fold=True)
    assert _stored_chunks(db) == []  # young: waits
    s._jfirst_s -= 61.0
    s.commit(fold=True)
    assert _stored_chunks(db) == [(7, 1)]
    mark = s.con.execute("SELECT v FROM meta WHERE k = 'turn_mark'").fetchone()[0]
    assert mark == 1 and s.turn_writes == 1
    s.append(7, _accepted(2))
    s.append(7, _accepted(3))
    assert s.log_turn()
    s.append(8, _accepted(4))
    s.commit()  # a busier turn's commit: fills the record too, one chunk per session
    assert _stored_chunks(db) == [(7, 1), (7, 3), (8, 1)]
    s.append(7, _accepted(5))
    assert s.log_turn()  # record 3: not filled
    turns = Path(str(db) + store_mod.TURN_SUFFIX)
    assert len(intentfile.IntentFile(str(db), store_mod.TURN_SUFFIX).read_records(0)) == 3
    _kill(s)
    again = Store(db)
    assert again.recovered_turns == 1 and again.last_seq == {7: 4, 8: 1}
    assert [p for _, p in again.stream(7, 1, 10)] == [_accepted(c) for c in (1, 2, 3, 5)]
    assert turns.stat().st_size == 0
    again.close()


def test_a_torn_or_damaged_tail_of_the_turn_file_is_ignored(tmp_path: Path) -> None:
    """A record cut short (the write a kill -9 interrupted: nothing of that turn was
    sent) or damaged ends what the restart applies; the records before it are applied."""
    db = tmp_path / "gw.db"
    s = Store(db)
    for cl in (1, 2, 3):
        s.append(7, _accepted(cl))
        assert s.log_turn()
    _kill(s)
    path = Path(str(db) + store_mod.TURN_SUFFIX)
    blob = path.read_bytes()
    third = intentfile.RECORD_HEAD.size + len(store_mod.pack_turn(0, [], {7: (3, [b""])}))
    third += len(_accepted(3))
    path.write_bytes(blob[:-3])  # the third record cut short
    again = Store(db)
    assert [p for _, p in again.stream(7, 1, 10)] == [_accepted(1), _accepted(2)]
    _kill(again)
    # A damaged record (a flipped byte) and what follows it are not applied either.
    s = Store(db)
    for cl in (3, 4):
        s.append(7, _accepted(cl))
        assert s.log_turn()
    _kill(s)
    damaged = bytearray(path.read_bytes())
    damaged[-third - 1] ^= 0x40  # in record 3's body (the last byte before record 4)
    path.write_bytes(bytes(damaged))
    again = Store(db)
    assert [p for _, p in again.stream(7, 1, 10)] == [_accepted(1), _accepted(2)]
    assert again.recovered_turns == 0
    again.close()


def test_a_full_turn_file_or_a_busy_turn_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn file is bounded: once it holds INTENT_MAX_BYTES the turn commits
    (log_turn says no, having written nothing), and the commit empties it; a turn
    with more than MAX_TURN_ORDERS orders or MAX_TURN_REPORTS messages, or a symbol,
    commits too."""
    monkeypatch.setattr(intentfile, "INTENT_MAX_BYTES", 1)
    monkeypatch.setattr(intentfile, "INTENT_TRUNCATE_BYTES", 1)
    db = tmp_path / "gw.db"
    path = Path(str(db) + store_mod.TURN_SUFFIX)
    s = Store(db)
    s.append(7, _accepted(1))
    assert s.log_turn()  # empty file: appended
    size = path.stat().st_size
    s.append(7, _accepted(2))
    assert not s.log_turn() and path.stat().st_size == size and s.turn_writes == 1
    s.commit()
    assert path.stat().st_size == 0 and _stored_chunks(db) == [(7, 2)]
    assert s.log_turn()  # nothing to store
    s.append(7, _accepted(3))
    assert s.log_turn()
    s.commit()
    for _ in range(store_mod.MAX_TURN_REPORTS + 1):
        s.append(7, _accepted(4))
    assert not s.log_turn()
    s.commit()
    for cl in range(10, 11 + store_mod.MAX_TURN_ORDERS):
        s.new_order(Order(1, 0, 7, cl, 1, 1, 1, 1000, 5, 5))
    assert not s.log_turn()
    s.commit()
    s.set_quote_asset(1, 2)
    assert not s.log_turn()
    s.close()


def test_a_legacy_order_intent_file_is_recovered_once(tmp_path: Path) -> None:
    """The order intent file of the version before the turn file: its orders SQLite
    lacks are stored at start (pending), a stale image changes nothing, a torn last
    image is ignored, and the file is removed."""
    db = tmp_path / "gw.db"
    s = Store(db)
    a = Order(1, 0, 7, 1, 1, 1, 1, 1000, 5, 5)
    s.new_order(a)
    stale = store_mod.pack_orders_py([a])
    s.commit()
    a.pending.clear()
    a.state, a.filled, a.leaves = STATE_FILLED, 5, 0
    s.save_order(a)
    s.close()
    b = Order(1, 9, 7, 2, 1, 1, 1, 1000, 5, 5, 0, STATE_PENDING, 0, ["N"])
    c = Order(1, 10, 7, 3, 1, 1, 1, 1000, 5, 5, 0, STATE_PENDING, 0, ["N"])
    whole = store_mod.pack_orders_py([b])
    torn = store_mod.pack_orders_py([c])[:-3]
    assert intentfile.whole_records(stale + whole + torn, ORDER_REC) == len(stale + whole)
    legacy = Path(str(db) + store_mod.LEGACY_INTENT_SUFFIX)
    legacy.write_bytes(stale + whole + torn)
    again = Store(db)
    got = again.find_cl(7, 1)
    assert got is not None and (got.state, got.filled) == (STATE_FILLED, 5)
    got = again.find_cl(7, 2)
    assert got is not None and (got.order_id, got.pending) == (9, ["N"])
    assert again.find_cl(7, 3) is None and not legacy.exists()
    assert again.next_order_id > 9
    again.close()


@settings(max_examples=40, deadline=None)
@given(
    turns=TURNS,
    how=st.lists(st.sampled_from(["log", "commit", "tick"]), min_size=8, max_size=8),
    kill=st.booleans(),
    from_seq=st.integers(0, 30),
)
def test_streams_and_core_seq_survive_any_mix_of_turn_records_and_commits(
    turns: list[list[tuple[int, bytes]]], how: list[str], kill: bool, from_seq: int
) -> None:
    """Turns made durable by the turn file or by a commit, filled by the ticker or not,
    then a kill -9 or a clean stop: the restart serves every message that was durable
    (what a client can have been sent), byte for byte, and resumes the core's stream
    after the last core seq stored with them."""
    with tempfile.TemporaryDirectory() as d, pytest.MonkeyPatch.context() as mp:
        mp.setattr(store_mod, "SEQ_SAVE_INTERVAL_S", 1e9)  # no time-driven seq saves
        db = Path(d) / "gw.db"
        store = Store(db)
        sent: dict[int, list[tuple[int, bytes]]] = {}
        durable_seq, unfilled = 0, False
        for i, (turn, h) in enumerate(zip(turns, how, strict=False)):
            for key_id, payload in turn:
                seq = store.append(key_id, payload)
                sent.setdefault(key_id, []).append((seq, payload))
            store.set_core_seq(i + 1)
            if h == "commit":
                if turn or unfilled:
                    durable_seq, unfilled = i + 1, False
                store.commit()
            else:
                assert store.log_turn()
                if turn:
                    durable_seq, unfilled = i + 1, True
                if h == "tick":
                    if unfilled:
                        durable_seq, unfilled = i + 1, False
                    store.commit(fold=True)
            for key_id, msgs in sent.items():  # a re-login now: memory and SQLite
                assert store.stream(key_id, from_seq, 100) == [m for m in msgs if m[0] >= from_seq]
        if kill:
            _kill(store)
        else:
            store.close()
            durable_seq = len(turns)
        again = Store(db)
        for key_id in (1, 2, 3):
            msgs = sent.get(key_id, [])
            assert again.last_seq.get(key_id, 0) == len(msgs)
            assert again.stream(key_id, from_seq, 100) == [m for m in msgs if m[0] >= from_seq]
        assert again.last_core_seq == durable_seq
        again.close()
