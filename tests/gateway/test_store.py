"""The stored session streams: chunked per turn, read back message by message."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bursa_wire.gw_layout import APP_OUT, STATE_FILLED
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
        assert len(store.orders) == 10 and len(store.by_cl) == 10
        assert store.evicted == 20
        assert {o.cl_ord_id for o in store.by_cl.values()} >= {125, 126, 127, 128, 129, 100}
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
        assert {o.cl_ord_id for o in again.by_cl.values()} == {100, 125, 126, 127, 128, 129}
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
