"""The compiled order entry (:mod:`pyx.apistore`) against its Python oracle: the same
refusals, retries, ids, client ids, orders, NEW records, store indexes, intents, meta
and client-id filter after random runs of new orders (usual and unusual, repeated
client ids, rate limits passed, ids running out)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any, cast
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.context import Context
from api.core import pack_new
from api.errors import ApiError
from api.orders import NewOrder, open_order_py, reject_error
from api.ratelimit import RateLimiter
from api.store import API_ID_BASE, MAX_ORDER_ID, ClientIdFilterPy, Order, Store
from api.symbols import SymbolRegistry
from gateway.store import ID_EPOCH_NS
from pyx.apistore import ClientIdFilter, new_record
from pyx.enums import Reason
from tests.api.test_symbols import DEMO_STATUS, NAMES

# Order ids: the API's are below 2**40 (api.store.MAX_ORDER_ID); any int64 here.
U8, I8 = st.integers(0, 2**63 - 1), st.integers(-(2**63), 2**63 - 1)
U4, U2, U1 = st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1), st.integers(0, 255)


@given(U8, I8, I8, U4, U2, U1, U1, U1, U1, U1)
def test_new_record_is_pack_new(oid: int, price: int, qty: int, uid: int, sid: int, side: int,
                                typ: int, tif: int, stp: int, flags: int) -> None:  # fmt: skip
    """The compiled NEW record is byte for byte ``api.core.pack_new`` (no stop price)."""
    want = pack_new(oid, price, qty, 0, uid, sid, side, typ, tif, stp, flags)
    assert new_record(oid, price, qty, uid, sid, side, typ, tif, stp, flags) == want


_PAIRS = st.lists(st.tuples(st.integers(0, 2**40), st.text(max_size=36)), max_size=100)


@given(st.integers(3, 16), _PAIRS, _PAIRS)
def test_client_id_filter_is_its_oracle(
    bits: int, added: list[tuple[int, str]], probes: list[tuple[int, str]]
) -> None:
    """Same bits, count and answers as the Python filter (small ones: collisions)."""
    c, p = ClientIdFilter(bits), ClientIdFilterPy(bits)
    for uid, cl in added:
        c.add(uid, cl)
        p.add(uid, cl)
    assert bytes(c._bits) == bytes(p._bits) and c.count == p.count
    for uid, cl in added + probes:
        assert c.may_hold(uid, cl) == p.may_hold(uid, cl)


def _registry() -> SymbolRegistry:
    r = SymbolRegistry(NAMES)
    spec = r.update(1, DEMO_STATUS)
    assert spec is not None and spec.name == "BTCUSDT"
    return r


_SPEC = _registry().by_name("BTCUSDT")


def _opt(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


# Mostly valid orders (the compiled path's), each field sometimes refused or unusual.
def _often(valid: st.SearchStrategy[str], *other: str | None) -> st.SearchStrategy[str | None]:
    """A value of ``valid`` nine times in ten, else one of ``other``."""
    return st.integers(0, 9).flatmap(lambda i: valid if i else st.sampled_from(other))


_PRICES = _often(st.integers(300_000, 1_200_000).map(lambda t: _SPEC.ticks_to_price(t * 10)),
                 "30000.05", "abc", "0", "-1", "", "1e5", "99999999999", None)  # fmt: skip
_QTYS = _often(st.integers(1, 2_000).map(_SPEC.lots_to_qty), "0.000001", "x", "0", "", None)


def _mostly(*values: Any) -> st.SearchStrategy[Any]:
    """The first value 30 times as often as each of the others."""
    return st.sampled_from([values[0]] * 30 + list(values[1:]))


def _weighted(*pairs: tuple[Any, int]) -> st.SearchStrategy[Any]:
    """Each value as often as its weight says."""
    return st.sampled_from([v for v, n in pairs for _ in range(n)])


_PARAMS = st.fixed_dictionaries(
    {
        "symbol": _mostly("BTCUSDT", "ETHUSDT", "", None),
        "side": _weighted(("BUY", 8), ("SELL", 8), ("buy", 1), (None, 1)),
        "type": _weighted(
            ("LIMIT", 12), ("LIMIT_MAKER", 4), ("MARKET", 4), ("STOP_LOSS_LIMIT", 1), ("FOO", 1)
        ),
        "timeInForce": _weighted(
            ("GTC", 12), ("IOC", 2), ("FOK", 2), ("XXX", 1), ("", 1), (None, 1)
        ),
        "price": _PRICES,
        "quantity": _QTYS,
        # A small pool: retries of orders still open, and of ones the store forgot.
        "newClientOrderId": _weighted(
            (None, 12), ("a", 4), ("b", 4), ("c-1", 4), ("", 1), ("bad id!", 1), ("x" * 37, 1)
        ),
        "newOrderRespType": _weighted(
            (None, 12), ("ACK", 2), ("RESULT", 2), ("FULL", 2), ("XX", 1), ("", 1)
        ),
        "selfTradePreventionMode": _weighted(
            (None, 12), ("NONE", 2), ("EXPIRE_TAKER", 2), ("EXPIRE_BOTH", 2), ("BAD", 1)
        ),
        "quoteOrderQty": _mostly(None, "100", ""),
        "stopPrice": _mostly(None, "30000.10", "1"),
    },
).map(lambda d: {k: v for k, v in d.items() if v is not None})

# (parameters, user, key, milliseconds since the previous order, forget the user's
# open orders first: their client ids are then only in SQLite).
_STEPS = st.lists(
    st.tuples(_PARAMS, _opt(1, 2), _opt("k1", "k2"), st.integers(0, 2_500), _mostly(False, True)),
    min_size=1,
    max_size=25,
)


def _ctx(clock: Callable[[], float]) -> Context:
    # Few orders per 10 s: runs pass the limit (a refusal after nothing changed).
    limits = RateLimiter(10**9, 3, 10**9, clock=clock)
    return cast(Context, SimpleNamespace(store=Store(":memory:"), symbols=_registry(),
                                         limits=limits, extra={}))  # fmt: skip


def _fold(ctx: Context, params: dict[str, str], uid: int, key: str, now_ns: int) -> Any:
    """:func:`api.orders.open_order` up to the NEW's send, with the clock given."""
    try:
        got = ctx.store.entry.open_usual(params, ctx.symbols.names, uid, key, ctx.limits, now_ns)
    except OverflowError:
        raise reject_error(int(Reason.INVALID_ORDER_ID)) from None
    return open_order_py(ctx, params, uid, key) if got is None else ("fold", got)


def _outcome(f: Callable[[], Any]) -> Any:
    """What a call gave, comparable: the error, the retry, or the order entered."""
    try:
        got = f()
    except ApiError as e:
        return ("error", e.http_status, e.code, e.msg)
    if isinstance(got, NewOrder):
        assert got.retry_of is not None
        return ("retry", got.spec.name, got.order, got.resp_type, got.retry_of)
    if got[0] == "fold":
        got = got[1]
    spec, o, rec, resp_type, retryable = got
    return ("new", spec.name, dataclasses.astuple(o), rec, resp_type, retryable)


def _state(s: Store) -> tuple[Any, ...]:
    return (s.entry.next_order_id, s.entry.reserved_order_id, dict(s._meta), dict(s.open),
            dict(s.open_by_cl), dict(s._intents), list(s._unlogged), set(s._new),
            bytes(s.cl_filter._bits), s.cl_filter.count)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(_STEPS, st.sampled_from([None, 0, 1, 3]))
def test_open_usual_is_open_order_py(steps: list[Any], ids_left: int | None) -> None:
    """Each step through the fold (compiled, else Python) and through the Python path
    alone, on two stores: the same outcome and the same store after every step."""
    now = [ID_EPOCH_NS + 600 * 86_400 * 10**9]
    a, b = _ctx(lambda: now[0] / 1e9), _ctx(lambda: now[0] / 1e9)
    b.store.client_ids = a.store.client_ids  # one key: the same generated ids
    if ids_left is not None:  # the id space nearly used up
        for s in (a.store, b.store):
            s.entry.next_order_id = s.entry.reserved_order_id = (
                MAX_ORDER_ID - API_ID_BASE - ids_left
            )
    try:
        for params, uid, key, dt_ms, forget in steps:
            now[0] += dt_ms * 1_000_000
            if forget:  # the orders end and are committed: their ids only in SQLite
                for s in (a.store, b.store):
                    for o in list(s.open.values()):
                        o.status = "FILLED"
                        s.save(o)
                    s.commit()
            t = now[0]
            with (mock.patch("api.store.clock_order_id", return_value=(t - ID_EPOCH_NS) // 10**6),
                  mock.patch("api.orders.now_ms", return_value=t // 10**6)):  # fmt: skip
                got_a = _outcome(partial(_fold, a, params, uid, key, t))
                got_b = _outcome(partial(open_order_py, b, params, uid, key))
            assert got_a == got_b, params
            assert _state(a.store) == _state(b.store)
    finally:
        a.store.close()
        b.store.close()


def test_usual_orders_take_the_compiled_path() -> None:
    """The usual orders are entered by ``open_usual`` (not handed back), a repeated
    client id and an unusual order are handed back with nothing changed."""
    ctx = _ctx(lambda: 0.0)
    s = ctx.store
    try:
        by_name = ctx.symbols.names
        limit = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "price": "30000.10", "quantity": "0.0001"}  # fmt: skip
        market = {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.0002"}
        for params in (limit, market, {**limit, "newClientOrderId": "mine"}):
            got = s.entry.open_usual(params, by_name, 1, "k1", ctx.limits)
            assert got is not None
            spec, o, rec, resp_type, retryable = got
            assert len(rec) == 96 and isinstance(o, Order) and s.open[(1, o.order_id)] is o
            assert retryable == ("newClientOrderId" in params)
            assert resp_type == "FULL" and spec.name == "BTCUSDT"
        before = _state(s)
        unusual = ({**limit, "newClientOrderId": "mine"}, {**limit, "type": "STOP_LOSS"},
                   {**limit, "symbol": "NOPE"}, {**limit, "newOrderRespType": "X"})  # fmt: skip
        for params in unusual:
            assert s.entry.open_usual(params, by_name, 1, "k1", ctx.limits) is None
        assert _state(s) == before
    finally:
        s.close()


def test_configure_refuses_another_order_class() -> None:
    """The slots written directly must be Order's: any other class is refused."""
    from pyx import apistore

    @dataclasses.dataclass(slots=True)
    class Other:
        user_id: int

    with pytest.raises(ValueError, match="not the Order"):
        apistore.configure(Other, 96, (), 0, ())
