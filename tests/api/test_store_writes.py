"""What the order path writes to SQLite: an order with a generated client id is
written once, with its first events; order ids are reserved in blocks (no meta write
per order) and never reused after a restart; the follower keeps user-data updates
only for watched users; generated client ids have the documented shape."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api import store as store_mod
from api.clientids import ClientIds
from api.follow import Follower
from api.store import API_ID_BASE, Fill, Order, Store
from bursa_wire.layout import EV_DTYPE
from pyx.enums import EvKind, OrdType, Side


def _order(oid: int, cl: str, user: int = 1) -> Order:
    return Order(user, oid, 1, cl, "BUY", "LIMIT", "GTC", 100, 5, 0, 0)


def _rows(db: Path) -> list[tuple[Any, ...]]:
    """The orders table as another connection sees it (only what is committed)."""
    con = sqlite3.connect(str(db))
    try:
        return list(con.execute("SELECT order_id, client_order_id, status FROM orders"))
    finally:
        con.close()


def test_generated_id_order_is_written_with_its_first_events(tmp_path: Path) -> None:
    """``add(durable=False)``: nothing is written (no transaction, no intent) at the
    end of its turn (``sync``), nor when its events are applied (buffered, like
    every follower effect); the group commit INSERTs its state, later ones UPDATE
    it.  Reads see the buffered state."""
    db = tmp_path / "api.db"
    s = Store(db)
    try:
        o = _order(7, "generated")
        s.add(o, durable=False)
        changes = s.con.total_changes
        s.sync()
        assert s.con.total_changes == changes  # no statement ran
        assert _rows(db) == [] and not Path(str(db) + "-orders").stat().st_size
        assert s.open[(1, 7)] is o and s.by_client_id(1, "generated") is o
        o.status = "NEW"
        s.save(o)
        s.set_core_seq(1)
        s.sync()
        assert s.con.total_changes == changes and s.commits == 0
        s.commit()  # the group commit (api.core)
        assert _rows(db) == [(7, "generated", "NEW")] and s.commits == 1
        o.status = "FILLED"
        s.save(o)
        s.set_core_seq(2)
        s.sync()
        assert _rows(db) == [(7, "generated", "NEW")]
        assert s.open_orders(1) == []  # ended, in memory until its row is committed
        got = s.by_client_id(1, "generated")
        assert got is o and got.status == "FILLED"
        s.commit()
        assert _rows(db) == [(7, "generated", "FILLED")]
        assert (1, 7) not in s.open  # ended: only in SQLite now
        got = s.by_client_id(1, "generated")
        assert got is not None and got.status == "FILLED"
    finally:
        s.close()


def test_client_id_order_is_durable_before_it_leaves(tmp_path: Path) -> None:
    """``add()`` (a client's own id): the end of its turn (``sync``) makes it
    durable in the intent file, also when the turn applied events (they wait for
    the group commit); the group commit writes its PENDING_NEW row."""
    db = tmp_path / "api.db"
    s = Store(db)
    try:
        s.add(_order(8, "mine"))
        s.sync()
        size = Path(str(db) + "-orders").stat().st_size
        assert _rows(db) == [] and size > 0
        s.add(_order(9, "also"))
        s.set_core_seq(1)
        s.sync()
        assert _rows(db) == [] and Path(str(db) + "-orders").stat().st_size > size
        assert s.commits == 0
        s.commit()
        assert _rows(db) == [(8, "mine", "PENDING_NEW"), (9, "also", "PENDING_NEW")]
    finally:
        s.close()


def test_reads_from_sqlite_see_buffered_effects(tmp_path: Path) -> None:
    """A read that goes to SQLite (allOrders, myTrades, an order not in memory)
    commits what is buffered first: it sees every event applied, and never the row
    a buffered change replaces (a deleted PENDING_NEW order)."""
    db = tmp_path / "api.db"
    s = Store(db)
    try:
        a, b = _order(1, "a"), _order(2, "b")
        s.add(a)
        s.add(b)
        s.commit()
        a.status = "FILLED"
        s.save(a)
        s.add_trade(1, 1, a.order_id, True, Fill(5, 100, 5, 1, False, 1234))
        s.delete(b)  # its NEW was refused
        s.set_core_seq(3)
        s.sync()
        assert _rows(db) == [(1, "a", "PENDING_NEW"), (2, "b", "PENDING_NEW")]
        got = s.all_orders(1, 1, 0, 0, 2**62, 10)
        assert [(o.order_id, o.status) for o in got] == [(1, "FILLED")]
        assert [t[0] for t in s.trades(1, 1, None, 0, 0, 2**62, 10)] == [5]
        assert s.get(1, 2) is None and s.by_client_id(1, "b") is None
    finally:
        s.close()


def test_pending_rows_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The end of a turn commits once ``MAX_PENDING_ROWS`` follower rows are
    buffered (memory stays bounded whatever the commit interval)."""
    monkeypatch.setattr(store_mod, "MAX_PENDING_ROWS", 4)
    s = Store(tmp_path / "api.db")
    try:
        for i in range(3):
            s.add_trade(1, 1, 1, True, Fill(i, 100, 5, 1, False, 1234))
        s.sync()
        assert s.commits == 0 and s.pending_rows == 3
        s.add_trade(1, 1, 1, True, Fill(3, 100, 5, 1, False, 1234))
        s.sync()
        assert s.commits == 1 and s.pending_rows == 0 and not s.pending
    finally:
        s.close()


def test_unwritten_order_deleted_writes_nothing(tmp_path: Path) -> None:
    """A refused order that was never written needs no DELETE; a written one does."""
    db = tmp_path / "api.db"
    s = Store(db)
    try:
        a, b = _order(1, "a"), _order(2, "b")
        s.add(a, durable=False)
        s.add(b)
        s.set_core_seq(1)  # a transaction (not the intent file)
        s.commit()
        assert _rows(db) == [(2, "b", "PENDING_NEW")]
        changes = s.con.total_changes
        s.delete(a)
        s.commit()
        assert s.con.total_changes == changes
        s.delete(b)
        s.commit()
        assert _rows(db) == []
        assert s.by_client_id(1, "a") is None and s.by_client_id(1, "b") is None
    finally:
        s.close()


def test_order_ids_reserved_in_blocks_never_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """meta.next_order_id is written only when an id passes the last reservation (in
    the commit before that id leaves); after a restart without any further commit
    (kill -9), every new id is above every id handed out before."""
    monkeypatch.setattr(store_mod, "ID_RESERVE", 3)
    # The counter, not the clock, decides: a clock far behind it.
    monkeypatch.setattr(store_mod, "clock_order_id", lambda: 1)
    db = tmp_path / "api.db"
    s = Store(db)
    ids, writes = [], 0
    for _ in range(10):
        ids.append(s.new_order_id())
        writes += "next_order_id" in s._meta
        s.sync()  # api.core.flush: commits a reservation before the turn's NEWs leave
    assert ids == sorted(set(ids)) and ids[0] == API_ID_BASE + 1
    assert writes == 3  # ids 1, 5, 9 crossed a reservation (to 4, 8, 12)
    s.con.close()  # kill -9: no close()
    s._checkpointer.stop()
    again = Store(db)
    try:
        assert again.new_order_id() > max(ids)
    finally:
        again.close()


def _ev(kind: int, user: int, oid: int, **fields: int) -> tuple[Any, ...]:
    e = np.zeros(1, EV_DTYPE)
    e["kind"], e["user_id"], e["order_id"], e["symbol_id"] = kind, user, oid, 1
    e["side"], e["ord_type"], e["price_ticks"], e["qty_lots"] = Side.BUY, OrdType.LIMIT, 100, 5
    for k, v in fields.items():
        e[k] = v
    return tuple(e.tolist()[0])


def test_follower_keeps_updates_of_watched_users_only(tmp_path: Path) -> None:
    """With ``watched`` set (the user data streams' subscribers), events of other users
    still change their orders but leave no update, balance or funding entry."""
    s = Store(tmp_path / "api.db")
    try:
        f = Follower(s, lambda _sid, _cfg: None)
        f.watched = {1}
        f.apply(_ev(EvKind.ACCEPTED, 2, 20))
        f.apply(_ev(EvKind.DEPOSITED, 2, 0))
        f.apply(_ev(EvKind.CANCELED, 2, 20))
        assert (f.updates, f.balances, f.funding) == ([], set(), [])
        assert s.get(2, 20) is not None and s.get(2, 20).status == "CANCELED"  # type: ignore[union-attr]
        f.apply(_ev(EvKind.ACCEPTED, 1, 10))
        f.apply(_ev(EvKind.DEPOSITED, 1, 0))
        assert [u.exec_type for u in f.updates] == ["NEW"]
        assert len(f.funding) == 1 and {u for u, _ in f.balances} == {1}
        f.watched = None  # everyone's (the default)
        f.apply(_ev(EvKind.ACCEPTED, 3, 30))
        assert [u.order.user_id for u in f.updates] == [1, 3]
    finally:
        s.close()


def test_generated_client_ids() -> None:
    """22 URL-safe characters; ids of later orders sort after earlier ones (the index
    grows at its end); one per (user, order), the same every time it is derived (a
    lost order gets its id back), another under another key (unpredictable without
    it); a wrong-sized key is refused."""
    gen = ClientIds(b"k" * 32)
    oids = [API_ID_BASE + 1, API_ID_BASE + 2, API_ID_BASE + 61, API_ID_BASE + 62,
            API_ID_BASE + 10**9, 2**40 - 1]  # fmt: skip
    ids = [gen.of(1, o) for o in oids]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
    assert ids == sorted(ids)
    assert ids == [ClientIds(b"k" * 32).of(1, o) for o in oids]
    users = {gen.of(u, API_ID_BASE + 5) for u in range(1000)}
    assert len(users) == 1000 and len({i[:7] for i in users}) == 1
    other = ClientIds(b"j" * 32).of(1, oids[0])
    assert other[:7] == ids[0][:7] and other[7:] != ids[0][7:]
    with pytest.raises(ValueError):
        ClientIds(b"short")


def test_lost_orders_get_their_generated_id_back(tmp_path: Path) -> None:
    """An API-lane order the follower meets without knowing it gets the generated id
    (same key after a restart); a gateway order, or an API order older than the
    database's key (a deleted database rebuilt), ``core.<orderId>``."""
    db = tmp_path / "api.db"
    s = Store(db)
    new = API_ID_BASE + s.client_ids_since + 5
    old = API_ID_BASE + s.client_ids_since - 1
    told = s.client_ids.of(3, new)
    s.close()
    again = Store(db)
    try:
        assert again.lost_client_id(3, new) == told
        assert again.lost_client_id(3, old) == f"core.{old}"
        assert again.lost_client_id(3, 77) == "core.77"
    finally:
        again.close()
