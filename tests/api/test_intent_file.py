"""The API's order intent file (api.store, bindings.intentfile): a turn whose only
changes are new client-id orders appends their images (one write, no transaction);
the rows reach SQLite with the next transaction; a restart stores the images SQLite
lacks (PENDING_NEW, ids reserved past them) and ignores stale and torn ones.  End to
end: a restart with the file holding an order the core has and one it never got."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from api import store as store_mod
from api.store import API_ID_BASE, INTENT_IMAGE, Order, Store, pack_intents, unpack_intents
from bindings import intentfile
from bindings.client import CoreClient
from gateway import keys
from pyx.enums import Side
from tests.api.apiproc import SYMBOL, ApiProcess
from tests.api.fixtures import api, core, key1  # noqa: F401  (fixtures)
from tests.api.signing import Signer
from tests.e2e.coreproc import CoreProcess


def _order(oid: int, cl: str, user: int = 1) -> Order:
    return Order(user, API_ID_BASE + oid, 1, cl, "BUY", "LIMIT", "GTC", 100, 5, 0, 0,
                 time_ms=1234, update_ms=1234)  # fmt: skip


def _rows(db: Path) -> list[tuple[Any, ...]]:
    """The orders table as another connection sees it (only what is committed)."""
    con = sqlite3.connect(str(db))
    try:
        rows = con.execute("SELECT order_id, client_order_id, status FROM orders ORDER BY 1")
        return [(r[0] - API_ID_BASE, r[1], r[2]) for r in rows]
    finally:
        con.close()


def _kill(s: Store) -> None:
    """What a kill -9 leaves: nothing more is written (no close())."""
    s.con.close()
    s._checkpointer.stop()


def _intent(db: Path) -> Path:
    return Path(str(db) + intentfile.INTENT_SUFFIX)


def test_images_round_trip() -> None:
    """An order's intent image carries every field a new order has."""
    a = Order(3, API_ID_BASE + 9, 2, "x-Y_1", "SELL", "STOP_LOSS_LIMIT", "IOC", 7, 8, 0, 6,
              time_ms=55, update_ms=55)  # fmt: skip
    b = Order(4, API_ID_BASE + 10, 1, "q", "BUY", "MARKET", "GTC", 0, 0, 900, 0,
              time_ms=56, update_ms=56)  # fmt: skip
    assert unpack_intents(pack_intents([a, b])) == [a, b]


def test_a_quiet_turn_writes_the_file_not_sqlite(tmp_path: Path) -> None:
    """New client-id orders: at the end of their turn (``sync``) one write to the
    file, no statement; the next transaction (the group commit of their events)
    writes the rows and the mark; close commits."""
    db = tmp_path / "api.db"
    s = Store(db)
    a, b = _order(1, "a"), _order(2, "b")
    s.add(a)
    s.add(b)
    changes = s.con.total_changes
    s.sync()
    assert s.con.total_changes == changes and _rows(db) == []
    assert _intent(db).stat().st_size == len(pack_intents([a, b]))
    assert s.by_client_id(1, "a") is a and s.open[(1, API_ID_BASE + 2)] is b
    s.sync()  # nothing new: nothing written
    assert _intent(db).stat().st_size == len(pack_intents([a, b]))
    a.status = "NEW"
    s.save(a)
    s.set_core_seq(5)
    s.commit()
    assert _rows(db) == [(1, "a", "NEW"), (2, "b", "PENDING_NEW")]
    meta = dict(s.con.execute("SELECT k, v FROM meta").fetchall())
    assert meta["intent_through"] == API_ID_BASE + 2
    c = _order(3, "c")
    s.add(c)
    s.sync()
    s.close()  # a clean stop commits what only the file holds
    assert _rows(db)[-1] == (3, "c", "PENDING_NEW")


def test_a_full_file_gives_way_to_a_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is bounded: once it holds INTENT_MAX_BYTES and no transaction came to
    empty it, new orders are committed instead (and the file emptied)."""
    monkeypatch.setattr(intentfile, "INTENT_MAX_BYTES", 2 * INTENT_IMAGE.size + 16)
    monkeypatch.setattr(intentfile, "INTENT_TRUNCATE_BYTES", 1)
    db = tmp_path / "api.db"
    s = Store(db)
    try:
        n = 0
        while _intent(db).stat().st_size < intentfile.INTENT_MAX_BYTES:
            n += 1
            s.add(_order(n, f"c{n}"))
            s.sync()
            assert _rows(db) == []
        s.add(_order(n + 1, "last"))
        s.sync()
        assert len(_rows(db)) == n + 1 and _intent(db).stat().st_size == 0
    finally:
        s.close()


def test_a_turn_with_events_still_writes_the_file(tmp_path: Path) -> None:
    """A turn that applied events commits nothing (their effects wait for the group
    commit): its new orders go to the file; the group commit takes their rows."""
    db = tmp_path / "api.db"
    s = Store(db)
    try:
        s.add(_order(1, "a"))
        s.set_core_seq(3)
        s.sync()
        assert _rows(db) == [] and _intent(db).stat().st_size > 0
        s.commit()
        assert _rows(db) == [(1, "a", "PENDING_NEW")]
    finally:
        s.close()


def test_restart_stores_what_only_the_file_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill after the write: the restart stores the order PENDING_NEW (open, found by
    its client id), takes the id counter past it and empties the file."""
    monkeypatch.setattr(store_mod, "clock_order_id", lambda: 1)
    db = tmp_path / "api.db"
    s = Store(db)
    s.set_core_seq(1)
    s.commit()
    oid = s.new_order_id()  # reserves ids in meta: this turn commits
    s.sync()
    far = _order(store_mod.ID_RESERVE * 3, "far")  # beyond the reservation
    a = Order(1, oid, 1, "a", "SELL", "LIMIT", "FOK", 100, 5, 0, 0, time_ms=9, update_ms=9)
    s.add(a)
    s.add(far)
    s.sync()
    assert _rows(db) == []
    _kill(s)
    again = Store(db)
    try:
        assert _rows(db) == [(oid - API_ID_BASE, "a", "PENDING_NEW"),
                             (store_mod.ID_RESERVE * 3, "far", "PENDING_NEW")]  # fmt: skip
        got = again.by_client_id(1, "a")
        assert got is not None and got == a and got.is_open
        assert (1, far.order_id) in again.open
        assert again.new_order_id() > far.order_id
        assert _intent(db).stat().st_size == 0
    finally:
        again.close()


def test_a_torn_last_record_is_dropped(tmp_path: Path) -> None:
    """A write cut short by the crash: the whole records before it are stored."""
    db = tmp_path / "api.db"
    Store(db).close()
    a, b = _order(1, "a"), _order(2, "b")
    blob = pack_intents([a, b])
    for cut in (1, INTENT_IMAGE.size - 1, INTENT_IMAGE.size + 1):
        torn = blob[: len(blob) - cut]
        assert intentfile.whole_records(torn, INTENT_IMAGE) == len(pack_intents([a]))
    _intent(db).write_bytes(blob[:-3])
    Store(db).close()
    assert _rows(db) == [(1, "a", "PENDING_NEW")]


def test_stale_images_change_nothing(tmp_path: Path) -> None:
    """Images older than the mark: an order that changed since keeps its state, a
    refused (deleted) one stays gone; of two images of one client id the later
    wins (the first order was refused, freeing the id)."""
    db = tmp_path / "api.db"
    s = Store(db)
    a, r = _order(1, "a"), _order(2, "r")
    s.add(a)
    s.add(r)
    s.sync()  # both in the file only
    a.status, a.executed = "FILLED", 5
    s.save(a)
    s.delete(r)  # rejected by the core (its REJECTED event)
    s.set_core_seq(7)
    s.commit()
    assert _rows(db) == [(1, "a", "FILLED")]
    x1 = _order(3, "x")
    s.add(x1)
    s.sync()
    s.delete(x1)  # refused before sequencing: nothing to store
    x2 = Order(1, API_ID_BASE + 4, 1, "x", "SELL", "LIMIT", "GTC", 100, 5, 0, 0)
    s.add(x2)
    s.sync()
    _kill(s)
    again = Store(db)
    try:
        assert _rows(db) == [(1, "a", "FILLED"), (4, "x", "PENDING_NEW")]
        got = again.by_client_id(1, "x")
        assert got is not None and got.side == "SELL"
    finally:
        again.close()


def test_a_file_left_by_another_database_is_ignored(tmp_path: Path) -> None:
    """The database was deleted (to rebuild it) but not its intent file: its images
    name orders of the old database and are never stored (the new one has no mark)."""
    db = tmp_path / "api.db"
    _intent(db).write_bytes(pack_intents([_order(1, "old")]))
    s = Store(db)
    try:
        assert _rows(db) == [] and s.by_client_id(1, "old") is None
        assert _intent(db).stat().st_size == 0
    finally:
        s.close()


def _signer(api: ApiProcess, key: keys.ApiKey) -> Signer:  # noqa: F811
    return Signer(api.url, key, api.secrets[key.api_key])


@pytest.mark.timeout(300)
def test_restart_with_orders_only_the_file_holds(
    api: ApiProcess,  # noqa: F811
    core: CoreProcess,  # noqa: F811
    key1: keys.ApiKey,  # noqa: F811
) -> None:
    """Killed between the write and the commit: one order's NEW reached the core, the
    other's never left.  After the restart the first is the client's order (open, its
    retry answers it and enters nothing), the second never existed; new ids are
    above both."""
    s = _signer(api, key1)
    body = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "price": "50.00", "quantity": "0.100"}  # fmt: skip
    first = s.request("POST", "/api/v3/order", {**body, "newClientOrderId": "before"}).json()
    api.kill9()
    base = first["orderId"] + store_mod.ID_RESERVE * 2  # beyond the reservation too
    now = int(time.time() * 1000)
    sent = Order(1, base, SYMBOL, "sent", "BUY", "LIMIT", "GTC", 5000, 100, 0, 0,
                 time_ms=now, update_ms=now)  # fmt: skip
    lost = Order(1, base + 1, SYMBOL, "lost", "BUY", "LIMIT", "GTC", 5000, 100, 0, 0,
                 time_ms=now, update_ms=now)  # fmt: skip
    blob = pack_intents([sent, lost])
    with open(str(api.data / "api.db") + intentfile.INTENT_SUFFIX, "ab") as fh:
        fh.write(blob + blob[:10])  # and a torn third record
    with CoreClient(str(core.ready["trade"])) as trade:
        assert int(trade.new_limit(base, 1, SYMBOL, Side.BUY, 5000, 100)["status"]) == 1
    api.start()
    q = {"symbol": "BTCUSDT", "origClientOrderId": "sent"}
    got = s.request("GET", "/api/v3/order", q).json()
    assert (got["orderId"], got["status"]) == (base, "NEW")
    retry = s.request("POST", "/api/v3/order", {**body, "newClientOrderId": "sent"}).json()
    assert (retry["orderId"], retry["status"]) == (base, "NEW")
    deadline = time.monotonic() + 30
    while True:  # the recovery's CANCEL of the order the core never got
        r = s.request("GET", "/api/v3/order", {**q, "origClientOrderId": "lost"})
        if r.status_code == 400 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.json()["code"] == -2013
    opened = s.request("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()
    assert sorted(o["clientOrderId"] for o in opened) == ["before", "sent"]
    new = s.request("POST", "/api/v3/order", {**body, "newClientOrderId": "after"}).json()
    assert new["orderId"] > base + 1
    acct = s.request("GET", "/api/v3/account").json()
    usdt = next(b for b in acct["balances"] if b["asset"] == "USDT")
    assert usdt["locked"] == "15.030000"  # three orders' holds: the retry entered nothing
