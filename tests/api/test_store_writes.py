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
from api.follow import Follower
from api.orders import _ClientIds
from api.store import API_ID_BASE, Order, Store
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
    """``add(durable=False)``: nothing is written (no transaction at all) until the
    order is saved again; then one INSERT of its state, later changes UPDATE it."""
    db = tmp_path / "api.db"
    s = Store(db)
    try:
        o = _order(7, "generated")
        s.add(o, durable=False)
        changes = s.con.total_changes
        s.commit()
        assert s.con.total_changes == changes  # no statement ran
        assert _rows(db) == []
        assert s.open[(1, 7)] is o and s.by_client_id(1, "generated") is o
        o.status = "NEW"
        s.save(o)
        s.commit()
        assert _rows(db) == [(7, "generated", "NEW")]
        o.status = "FILLED"
        s.save(o)
        s.commit()
        assert _rows(db) == [(7, "generated", "FILLED")]
        assert (1, 7) not in s.open  # ended: only in SQLite now
        got = s.by_client_id(1, "generated")
        assert got is not None and got.status == "FILLED"
    finally:
        s.close()


def test_client_id_order_is_durable_before_it_leaves(tmp_path: Path) -> None:
    """``add()`` (a client's own id): the next commit makes it durable, in the intent
    file when there is nothing else to store (tests/api/test_intent_file.py), else
    as its PENDING_NEW row in the transaction."""
    db = tmp_path / "api.db"
    s = Store(db)
    try:
        s.add(_order(8, "mine"))
        s.commit()
        assert _rows(db) == [] and Path(str(db) + "-orders").stat().st_size > 0
        s.add(_order(9, "also"))
        s.set_core_seq(1)
        s.commit()
        assert _rows(db) == [(8, "mine", "PENDING_NEW"), (9, "also", "PENDING_NEW")]
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
        s.commit()  # api.core.flush commits before the turn's NEWs leave
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
    grows at its end); all distinct, also for one order id, across refills of the
    random pool."""
    gen = _ClientIds()
    oids = [API_ID_BASE + 1, API_ID_BASE + 2, API_ID_BASE + 61, API_ID_BASE + 62,
            API_ID_BASE + 10**9, 2**40 - 1]  # fmt: skip
    ids = [gen.next(o) for o in oids]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
    assert ids == sorted(ids)
    same = [gen.next(API_ID_BASE + 5) for _ in range(1000)]
    assert len(set(same)) == len(same)
    assert all(i[:7] == same[0][:7] for i in same)
