"""The order path's fast pieces give the same results as the general code they
replace: packed NEW records, parameter splitting, signature stripping, row updates,
the formatted order answer, and the core timeout (-1007) with a core that stops
answering."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import string
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.auth import _split_params, _strip_signature
from api.config import ApiConfig
from api.core import new_record, pack_new
from api.errors import ApiError
from api.orders import new_order_json, new_order_text
from api.store import Fill, Order, Store
from bursa_wire.layout import CMD_DTYPE
from pyx.enums import CmdKind
from tests.api.apiproc import ApiProcess
from tests.api.fixtures import core  # noqa: F401  (fixture)
from tests.api.signing import Signer
from tests.api.test_symbols import specs
from tests.e2e.coreproc import CoreProcess

_FIELDS = [n for n in CMD_DTYPE.names or () if n != "kind"]


def _field_values() -> st.SearchStrategy[dict[str, int]]:
    """Any subset of the record's fields, each with a value of its integer type."""
    fields = CMD_DTYPE.fields
    assert fields is not None
    per = {}
    for name in _FIELDS:
        info = np.iinfo(fields[name][0])
        per[name] = st.integers(int(info.min), int(info.max))
    return st.fixed_dictionaries({}, optional=per)


@given(_field_values())
def test_new_record_matches_numpy(values: dict[str, int]) -> None:
    """The struct-packed NEW is byte for byte the numpy record with the same fields."""
    a = np.zeros(1, dtype=CMD_DTYPE)
    a["kind"] = int(CmdKind.NEW)
    for k, v in values.items():
        a[k] = v
    assert new_record(**values) == a.tobytes()


_PACK_NEW = ("order_id", "price_ticks", "qty_lots", "stop_price_ticks", "user_id", "symbol_id",
             "side", "ord_type", "tif", "stp", "flags")  # fmt: skip


@given(_field_values())
def test_pack_new_is_new_record(values: dict[str, int]) -> None:
    """``pack_new`` (the order path's NEW) is byte for byte ``new_record``."""
    f = {k: values.get(k, 0) for k in _PACK_NEW}
    assert pack_new(*f.values()) == new_record(**f)


def test_new_record_unknown_field() -> None:
    """A misspelt field is an error, not a silently ignored value."""
    with pytest.raises(KeyError):
        new_record(price=1)


_ITEMS = ["a=1", "b=", "=v", "k", "", "c=2=3", "signature=ab", "xsignature=1", "q=a+b",
          "p=%41", "bad=%ZZ", "u=%C3%A9", "raw=%FF", "s=&"]  # fmt: skip
_PARTS = st.lists(st.sampled_from(_ITEMS), max_size=6).map("&".join)


@given(st.one_of(_PARTS, st.text(alphabet=string.ascii_letters + "=&%+_.-9", max_size=30)))
def test_split_params_is_parse_qsl(part: str) -> None:
    """Splitting without parse_qsl gives parse_qsl's pairs; what parse_qsl refuses is
    -1100."""
    try:
        want = parse_qsl(part, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        with pytest.raises(ApiError) as e:
            _split_params(part)
        assert e.value.code == -1100
        return
    assert _split_params(part) == want


@given(_PARTS)
def test_strip_signature_keeps_the_rest(part: str) -> None:
    """Every ``signature=`` item is removed, everything else is kept byte for byte."""
    want = "&".join(p for p in part.split("&") if not p.startswith("signature="))
    if "signature=" not in part:
        want = part
    assert _strip_signature(part) == want


def _order(oid: int, cl: str) -> Order:
    return Order(1, oid, 1, cl, "BUY", "LIMIT", "GTC", 100, 5, 0, 0)


def test_store_updates_rows_in_place(tmp_path: Path) -> None:
    """A committed order's changes are written (UPDATE), a new one's final state is
    inserted, indexes still find both after a reopen."""
    db = tmp_path / "api.db"
    s = Store(db)
    a = _order(1, "a")
    s.add(a)
    s.set_core_seq(1)  # a transaction (not the intent file): a's row is in SQLite
    s.commit()
    a.status, a.executed, a.cum_quote, a.update_ms = "PARTIALLY_FILLED", 2, 2000, 7
    a.qty, a.price = 4, 90
    s.save(a)
    b = _order(2, "b")
    s.add(b)
    b.status = "NEW"
    s.save(b)
    s.commit()
    s.close()
    again = Store(db)
    try:
        got = again.by_client_id(1, "a")
        assert got is not None
        assert (got.status, got.executed, got.cum_quote, got.update_ms, got.qty, got.price) == (
            "PARTIALLY_FILLED", 2, 2000, 7, 4, 90)  # fmt: skip
        got_b = again.get(1, 2)
        assert got_b is not None and got_b.status == "NEW" and got_b.client_order_id == "b"
        assert [o.order_id for o in again.all_orders(1, 1, 0, 0, 2**62, 10)] == [1, 2]
    finally:
        again.close()


def test_event_loop_setting() -> None:
    """``event_loop``: auto is uvloop, with or without the market routes; anything
    but the three names is refused."""
    assert ApiConfig.from_section({}, marketdata=False).use_uvloop
    assert ApiConfig.from_section({}, marketdata=True).use_uvloop
    assert ApiConfig.from_section({"event_loop": "uvloop"}, marketdata=True).use_uvloop
    assert not ApiConfig.from_section({}, marketdata=False, event_loop="asyncio").use_uvloop
    with pytest.raises(ValueError):
        ApiConfig.from_section({"event_loop": "trio"})


@pytest.mark.timeout(300)
def test_core_timeout_answers_1007(core: CoreProcess, tmp_path: Path) -> None:  # noqa: F811
    """A core that stops answering: the order is answered -1007 after the core
    timeout (outcome unknown), and the API keeps serving; once the core resumes, the
    order is there."""
    api = ApiProcess(core, tmp_path / "api", tmp_path / "logs", "--core-timeout-ms", "700")
    api.start()
    try:
        assert api.ready["event_loop"] == "uvloop"  # the default
        key = api.make_key(1)
        s = Signer(api.url, key, api.secrets[key.api_key])
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "price": "50.00", "quantity": "0.100", "newClientOrderId": "slow-1"}  # fmt: skip
        assert core.proc is not None
        os.kill(core.proc.pid, signal.SIGSTOP)
        try:
            r = s.request("POST", "/api/v3/order", order)
            assert r.status_code == 400 and r.json()["code"] == -1007, r.text
            assert s.request("GET", "/api/v3/ping").status_code == 200
        finally:
            os.kill(core.proc.pid, signal.SIGCONT)
        # The retry of the same order answers the first one's outcome (now known).
        r = s.request("POST", "/api/v3/order", order)
        assert r.status_code == 200 and r.json()["status"] == "NEW", r.text
        got = s.request("GET", "/api/v3/order", {"symbol": "BTCUSDT",
                                                  "origClientOrderId": "slow-1"})  # fmt: skip
        assert got.json()["status"] == "NEW"
    finally:
        api.cleanup()


_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_IDS = st.one_of(st.from_regex(r"[a-zA-Z0-9_.-]{1,36}", fullmatch=True), _TEXT)
_AMOUNT = st.integers(0, 10**15)


@st.composite
def _orders(draw: st.DrawFn) -> Order:
    o = Order(
        draw(st.integers(1, 2**32)), draw(st.integers(1, 2**40 - 1)), 1, draw(_IDS),
        draw(st.sampled_from(["BUY", "SELL"])),
        draw(st.sampled_from(["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT"])),
        draw(st.sampled_from(["GTC", "IOC", "FOK"])),
        draw(_AMOUNT), draw(_AMOUNT), draw(st.sampled_from([0, 0, 12345])), draw(_AMOUNT),
    )  # fmt: skip
    o.executed, o.cum_quote = draw(_AMOUNT), draw(_AMOUNT)
    o.status = draw(st.sampled_from(["PENDING_NEW", "NEW", "PARTIALLY_FILLED", "FILLED",
                                     "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH"]))  # fmt: skip
    o.time_ms = o.update_ms = draw(st.integers(0, 2**45))
    return o


_FILLS = st.lists(
    st.builds(
        Fill, st.integers(0, 2**40), _AMOUNT, _AMOUNT, _AMOUNT, st.booleans(), st.integers(0, 2**45)
    ),
    max_size=4,
)


@given(specs(), _orders(), st.sampled_from(["ACK", "RESULT", "FULL"]), _FILLS, _TEXT, _TEXT)
def test_order_text_is_the_json_of_the_order_dict(
    spec: Any, o: Order, resp_type: str, fills: list[Fill], name: str, asset: str
) -> None:
    """``new_order_text`` is ``json.dumps(new_order_json(...))`` byte for byte (names
    and ids needing escapes included)."""
    spec = dataclasses.replace(spec, name=name or "XY", quote_asset=asset or "Y")
    want = json.dumps(new_order_json(spec, o, resp_type, fills))
    assert new_order_text(spec, o, resp_type, fills) == want


@given(_orders(), st.lists(st.tuples(_AMOUNT, _AMOUNT, _AMOUNT, _AMOUNT), min_size=1, max_size=3),
       st.sampled_from(["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"]))  # fmt: skip
def test_narrow_update_writes_every_changed_column(
    o: Order, changes: list[tuple[int, int, int, int]], status: str
) -> None:
    """The UPDATE of a committed order writes only the columns the follower changes
    (fill state, times, price and quantity of an amend); after any such changes, the
    row read back is the order in memory, every column (the others never change)."""
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "api.db"
        s = Store(db)
        o.status = "NEW"
        s.add(o)
        s.set_core_seq(1)  # a transaction: the row is in SQLite, later changes UPDATE it
        s.commit()
        for price, qty, executed, ms in changes:
            o.price, o.qty, o.executed, o.cum_quote = price, qty, executed, executed * 3
            o.time_ms, o.update_ms, o.status = ms // 2, ms, status
            s.save(o)
            s.commit()
        s.close()
        again = Store(db)
        try:
            got = again.get(o.user_id, o.order_id)
            assert got is not None and got.row() == o.row()
        finally:
            again.close()
