"""SQLite off the order's round trip (api.core, api.store): an order is answered once
its events are applied in memory; the follower's effects reach SQLite later, grouped.

The API here runs with a group commit interval of ten minutes, so nothing but a read
that goes to SQLite (or an id reservation) commits while a test runs: an answer that
waited for a commit again would time out (-1007) instead of arriving, and the orders
it names would be in the database file before the kill.  A real core and a real
`bursa api` process, killed with SIGKILL after the answers and before the commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import keys
from tests.api.apiproc import ApiProcess
from tests.api.fixtures import core  # noqa: F401  (fixture)
from tests.api.signing import Signer
from tests.e2e.coreproc import CoreProcess

NEVER_MS = "600000"  # the group commit interval: longer than any test


@pytest.fixture
def slow_api(core: CoreProcess, tmp_path: Path) -> Iterator[ApiProcess]:  # noqa: F811
    """A `bursa api` whose group commit never comes by itself during a test."""
    a = ApiProcess(core, tmp_path / "api", tmp_path / "logs", "--orders-per-10s", "100000",
                   "--commit-interval-ms", NEVER_MS)  # fmt: skip
    a.start()
    yield a
    a.cleanup()


def _signers(api: ApiProcess) -> tuple[Signer, Signer]:
    out = []
    for uid in (1, 2):
        k: keys.ApiKey = api.make_key(uid)
        out.append(Signer(api.url, k, api.secrets[k.api_key]))
    return out[0], out[1]


def _order(s: Signer, side: str, price: str, qty: str, tif: str = "GTC",
           cl: str = "", typ: str = "LIMIT") -> dict[str, Any]:  # fmt: skip
    p = {"symbol": "BTCUSDT", "side": side, "type": typ, "price": price, "quantity": qty,
         "newOrderRespType": "FULL"}  # fmt: skip
    if typ == "LIMIT":
        p["timeInForce"] = tif
    if cl:
        p["newClientOrderId"] = cl
    r = s.request("POST", "/api/v3/order", p)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _committed(db: Path) -> tuple[set[int], int]:
    """(order ids with a row, meta.last_core_seq) as another connection sees the
    database: only what is committed."""
    con = sqlite3.connect(str(db))
    try:
        ids = {int(r[0]) for r in con.execute("SELECT order_id FROM orders")}
        meta = dict(con.execute("SELECT k, v FROM meta").fetchall())
        return ids, int(meta.get("last_core_seq", 0))
    finally:
        con.close()


def _flow(u1: Signer, u2: Signer) -> list[tuple[Signer, dict[str, Any]]]:
    """Answered orders of both id kinds: resting, filled as maker and taker, partly
    filled, expired IOC."""
    return [
        (u1, _order(u1, "SELL", "50.00", "0.300")),  # generated id, rests, then filled
        (u1, _order(u1, "SELL", "50.00", "0.200", cl="own-rest")),  # partly filled
        (u2, _order(u2, "BUY", "50.00", "0.400", "IOC")),  # generated: FILLED, 2 fills
        (u2, _order(u2, "BUY", "50.00", "0.050", cl="own-take")),  # FILLED, 1 fill
        (u1, _order(u1, "SELL", "60.00", "0.100", "IOC")),  # no bid: EXPIRED
        (u2, _order(u2, "BUY", "40.00", "0.100")),  # generated id, rests
        # Generated ids; what the core's events do not carry (type, time in force)
        # must come back as answered: a post-only maker and a resting IOC-free GTC.
        (u1, _order(u1, "SELL", "70.00", "0.100", typ="LIMIT_MAKER")),
        (u2, _order(u2, "BUY", "45.00", "0.100", "GTC", cl="own-gtc")),
    ]


def _get(s: Signer, order_id: int) -> dict[str, Any]:
    r = s.request("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order_id})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.mark.timeout(300)
def test_answered_orders_survive_kill9_before_the_commit(slow_api: ApiProcess) -> None:
    """Answers arrive with nothing committed; after a kill -9 and a restart every
    answered order reads back as before (status, quantities, clientOrderId of both
    kinds), every fill is there once with its trade id, nothing is applied twice."""
    api = slow_api
    db = api.data / "api.db"
    u1, u2 = _signers(api)
    # The first order reserves ids (a transaction: it takes the events so far too).
    assert _order(u2, "BUY", "10.00", "0.100")["status"] == "NEW"
    _, seq_before = _committed(db)
    answers = _flow(u1, u2)
    assert [a["status"] for _, a in answers] == [
        "NEW", "NEW", "FILLED", "FILLED", "EXPIRED", "NEW", "NEW", "NEW"]  # fmt: skip
    assert [len(a["fills"]) for _, a in answers] == [0, 0, 2, 1, 0, 0, 0, 0]
    seen = {a["orderId"]: _get(s, a["orderId"]) for s, a in answers}  # from memory
    assert seen[answers[0][1]["orderId"]]["status"] == "FILLED"
    assert seen[answers[1][1]["orderId"]]["status"] == "PARTIALLY_FILLED"
    # No answer waited for a commit: none of these orders is in the database file,
    # and its core seq is where the id reservation left it.
    rows, seq = _committed(db)
    assert rows.isdisjoint(seen) and seq == seq_before
    api.kill9()
    api.start()
    for s, a in answers:
        got = _get(s, a["orderId"])
        # Every field as answered, also for generated ids (the intent file's image:
        # the core's events alone would make the LIMIT_MAKER a LIMIT, the IOC a GTC).
        assert got == seen[a["orderId"]]
        assert got["clientOrderId"] == a["clientOrderId"]
    # Every fill once: the taker's are exactly the answers' fills (trade ids
    # included), the maker's three; each order's executed quantity is its fills'.
    fills = [(f["tradeId"], a["orderId"]) for _, a in answers for f in a["fills"]]
    q = {"symbol": "BTCUSDT"}
    taken = u2.request("GET", "/api/v3/myTrades", q).json()
    assert sorted((t["id"], t["orderId"]) for t in taken) == sorted(fills)
    made = u1.request("GET", "/api/v3/myTrades", q).json()
    assert len(made) == 3 and all(t["isMaker"] for t in made)
    assert len({t["id"] for t in made}) == 3
    for t_list in (taken, made):
        for oid in {t["orderId"] for t in t_list}:
            executed = sum(Decimal(t["qty"]) for t in t_list if t["orderId"] == oid)
            assert executed == Decimal(seen[oid]["executedQty"])
    rows, seq = _committed(db)  # myTrades committed what the restart re-applied
    assert set(seen) <= rows and seq > seq_before
    opened = u1.request("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()
    assert sorted(o["clientOrderId"] for o in opened) == sorted(
        ["own-rest", answers[6][1]["clientOrderId"]]
    )
    maker = _get(u1, answers[6][1]["orderId"])
    assert (maker["type"], maker["status"]) == ("LIMIT_MAKER", "NEW")
    assert _get(u2, answers[2][1]["orderId"])["timeInForce"] == "IOC"


@pytest.mark.timeout(300)
def test_reads_right_after_an_answer_see_it(slow_api: ApiProcess) -> None:
    """GET order/openOrders/allOrders/myTrades/account right after an answer return
    what it said, though nothing was committed before it."""
    api = slow_api
    u1, u2 = _signers(api)
    rest = _order(u1, "SELL", "50.00", "0.300")
    assert u1.request("GET", "/api/v3/openOrders").json()[0]["orderId"] == rest["orderId"]
    take = _order(u2, "BUY", "50.00", "0.100", "IOC", cl="take-1")
    assert take["status"] == "FILLED" and len(take["fills"]) == 1
    got = _get(u2, take["orderId"])
    assert (got["status"], got["executedQty"], got["clientOrderId"]) == (
        "FILLED", "0.100", "take-1")  # fmt: skip
    q = {"symbol": "BTCUSDT"}
    opened = u1.request("GET", "/api/v3/openOrders", q).json()
    assert [(o["orderId"], o["status"]) for o in opened] == [
        (rest["orderId"], "PARTIALLY_FILLED")]  # fmt: skip
    assert u2.request("GET", "/api/v3/openOrders", q).json() == []  # FILLED: not open
    mine = u2.request("GET", "/api/v3/allOrders", q).json()
    assert [(o["orderId"], o["status"], o["clientOrderId"]) for o in mine] == [
        (take["orderId"], "FILLED", "take-1")]  # fmt: skip
    trades = u2.request("GET", "/api/v3/myTrades", q).json()
    assert [t["id"] for t in trades] == [f["tradeId"] for f in take["fills"]]
    acct = u1.request("GET", "/api/v3/account").json()
    btc = next(b for b in acct["balances"] if b["asset"] == "BTC")
    assert btc["locked"] == "0.20000000"  # the rest of the resting sell
    again = _order(u1, "SELL", "50.00", "0.100", "IOC")
    assert again["status"] == "EXPIRED"
    assert _get(u1, again["orderId"])["status"] == "EXPIRED"
    hist = u1.request("GET", "/api/v3/allOrders", q).json()
    assert [o["status"] for o in hist] == ["PARTIALLY_FILLED", "EXPIRED"]
