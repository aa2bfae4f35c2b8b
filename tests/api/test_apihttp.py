"""``pyx.apihttp``, the compiled order path, against its Python oracles (hypothesis):
the request head, the parameters and signed payload, exact decimals with Binance's
filter errors, and the new-order answer's JSON, over random and malformed input.
The compiled functions and the Python ones they replace must agree on every
result, every refusal (code and message) and every byte of the answer."""

from __future__ import annotations

import dataclasses
import json
import string
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import auth
from api.clientids import ClientIds
from api.core import new_record, pack_new
from api.errors import ApiError, bad_request
from api.fasthttp import CLIENT_MAX_SIZE, JSON_UTF8, FastHttp, http_answer_py
from api.orders import (
    _ORDER_CONSTS,
    STP_MODES,
    _int_param,
    new_order_json,
    new_order_text,
    new_order_text_py,
    new_values,
    parse_new_order,
    parse_new_order_py,
)
from api.store import Fill, Order
from api.symbols import SymbolSpec, _fixed
from pyx import apihttp
from tests.api.test_hotpath import _FILLS, _TEXT, _orders
from tests.api.test_symbols import specs

# ----------------------------------------------------------------- the head

_LINES = [
    b"POST /api/v3/order HTTP/1.1", b"POST /api/v3/order?a=1&b=2 HTTP/1.1",
    b"POST /api/v3/order? HTTP/1.1", b"POST /api/v3/order?x#y HTTP/1.1",
    b"POST /api/v3/orders HTTP/1.1", b"GET /api/v3/order HTTP/1.1",
    b"POST /api/v3/order HTTP/1.0", b"POST  /api/v3/order HTTP/1.1",
    b"POST /api/v3/order HTTP/1.1 ", b"POST /api/v3/order?\xc3\xa9 HTTP/1.1",
    b"POST HTTP/1.1", b"post /api/v3/order HTTP/1.1", b"",
]  # fmt: skip
_HEADERS = [
    b"Host: x", b"host:x", b"HOST:  a b  ", b"Content-Length: 12", b"content-length:0",
    b"Content-Length: 65536", b"Content-Length: 65537", b"Content-Length: 1234567890",
    b"Content-Length: +5", b"Content-Length: ", b"Content-Length: 1 2", b"X-MBX-APIKEY: abc",
    b"x-mbx-apikey:", b"X-MBX-APIKEY: k\xc3\xa9", b"X-MBX-APIKEY: \t a b \t",
    b"Connection: close", b"Connection: keep-alive, Close", b"Connection: Upgrade",
    b"connection: x,\x0bupgrade\x0c", b"Transfer-Encoding: chunked", b"Expect: 100-continue",
    b"Upgrade: websocket", b"Content-Type: application/x-www-form-urlencoded",
    b" Host: x", b"Host : x", b"\tHost: x", b": empty", b"no colon", b"", b"A:\rB",
    b"X-Other: \n", b"HoSt: y",
]  # fmt: skip


@st.composite
def _heads(draw: st.DrawFn) -> bytes:
    """A request head (no final blank line): mostly near-valid, sometimes random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    line = draw(st.sampled_from(_LINES))
    heads = draw(st.lists(st.sampled_from(_HEADERS), max_size=7))
    if draw(st.booleans()):
        heads = [b"Host: h", b"Content-Length: %d" % draw(st.integers(0, 70_000)), *heads]
    return b"\r\n".join([line, *heads])


@settings(max_examples=1500)
@given(_heads())
def test_parse_head_is_the_oracle(head: bytes) -> None:
    """The compiled head parser answers exactly as the Python one (or hands off)."""
    assert apihttp.parse_head(head, CLIENT_MAX_SIZE) == FastHttp.parse_head_py(head)


def test_parse_head_takes_the_bench_request() -> None:
    """The usual request is taken (the oracle agrees; not a vacuous None == None)."""
    head = (b"POST /api/v3/order HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-MBX-APIKEY: k1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 42")  # fmt: skip
    assert apihttp.parse_head(head, CLIENT_MAX_SIZE) == ("", 42, "k1", False)
    assert FastHttp.parse_head_py(head) == ("", 42, "k1", False)


# ----------------------------------------------------------- the parameters

_ITEMS = ["symbol=BTCUSDT", "side=BUY", "a=1", "b=", "=v", "k", "", "c=2=3", "signature=ab",
          "xsignature=1", "signature=", "q=a+b", "p=%41", "bad=%ZZ", "raw=%FF", "a=2",
          "timestamp=1", "signaturex=1"]  # fmt: skip
_PART = st.one_of(
    st.lists(st.sampled_from(_ITEMS), max_size=8).map("&".join),
    st.text(alphabet=string.ascii_letters + "=&%+_.-9", max_size=40),
    st.text(max_size=10),
)


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except ApiError as e:
        return ("err", e.http_status, e.code, e.msg)


@settings(max_examples=1500)
@given(_PART, _PART.map(lambda s: s.encode("utf-8")), st.booleans())
def test_request_params_is_the_oracle(query: str, body: bytes, many: bool) -> None:
    """Parameters and signed payload, or the refusal, as the Python code gives them."""
    if many:  # past MAX_PARAMS
        body = "&".join(f"p{i}=1" for i in range(auth.MAX_PARAMS)).encode() + b"&" + body
    assert _outcome(auth.request_params, query, body) == _outcome(
        auth.request_params_py, query, body
    )


def test_request_params_compiled_takes_the_usual_request() -> None:
    """A plain signed body is answered by the compiled code itself."""
    got = apihttp.request_params("a=1", b"symbol=X&signature=ff", 16_384, 64)
    assert got == ({"a": "1", "symbol": "X", "signature": "ff"}, "a=1symbol=X")
    assert got == auth.request_params_py("a=1", b"symbol=X&signature=ff")
    assert apihttp.request_params("", b"p=%41", 16_384, 64) is None  # decoding: Python's


# --------------------------------------------------------------- decimals

_DECIMALS = st.one_of(
    st.from_regex(r"[0-9]{1,45}(\.[0-9]{0,45})?", fullmatch=True),
    st.from_regex(r"[0-9]{1,4}\.[0-9]{1,4}", fullmatch=True),
    st.sampled_from(["", ".5", "5.", "1..2", "1e3", "-1", " 1", "1\n", "١٢", "0", "0.000"]),
    st.text(max_size=8),
    st.none(),
    st.integers(),
)


@settings(max_examples=2000)
@given(specs(), _DECIMALS, st.booleans())
def test_decimals_are_the_oracle(spec: SymbolSpec, s: Any, market: bool) -> None:
    """Prices and quantities in ticks and lots, or Binance's error, as in Python."""
    assert _outcome(spec.price_to_ticks, s) == _outcome(spec.price_to_ticks_py, s)
    assert _outcome(spec.price_to_ticks, s, "stopPrice") == _outcome(
        spec.price_to_ticks_py, s, "stopPrice"
    )
    assert _outcome(spec.qty_to_lots, s, "quantity", market) == _outcome(
        spec.qty_to_lots_py, s, "quantity", market
    )


@given(specs(), st.integers(0, 10**12), st.integers(0, 10**12))
def test_decimals_on_the_grid_compiled(spec: SymbolSpec, p: int, q: int) -> None:
    """Valid values are converted by the compiled code itself (not its fallback)."""
    lo, hi = spec.min_price_on_grid, spec.max_price_on_grid
    ticks = min(max(p, lo), hi) // spec.tick_step * spec.tick_step
    if lo <= ticks <= hi:
        assert apihttp.to_units(spec.ticks_to_price(ticks), *spec._price_grid) == ticks
    lots = min(max(q, spec.min_qty_on_grid), spec.max_qty_on_grid) // spec.lot_step * spec.lot_step
    if spec.min_qty_on_grid <= lots <= spec.max_qty_on_grid:
        assert apihttp.to_units(spec.lots_to_qty(lots), *spec._qty_grid) == lots


@given(st.integers(-(2**200), 2**200), st.integers(0, 80))
def test_fixed_is_the_oracle(n: int, decimals: int) -> None:
    """Integer -> fixed-point text as the Python code writes it (beyond 64 bits too)."""
    assert apihttp.fixed(n, decimals) == _fixed(n, decimals)


# ---------------------------------------------------------------- the answer


@settings(max_examples=1000)
@given(specs(), _orders(), st.sampled_from(["ACK", "RESULT", "FULL"]), _FILLS, _TEXT, _TEXT)
def test_order_text_is_the_oracle(
    spec: Any, o: Order, resp_type: str, fills: list[Fill], name: str, asset: str
) -> None:
    """The compiled answer is the Python one and ``json.dumps`` of the dict, byte for byte."""
    spec = dataclasses.replace(spec, name=name or "XY", quote_asset=asset or "Y")
    got = new_order_text(spec, o, resp_type, fills)
    assert got == new_order_text_py(spec, o, resp_type, fills)
    assert got == json.dumps(new_order_json(spec, o, resp_type, fills))


_HEADER_TEXT = st.text(max_size=40)  # no surrogates (hypothesis leaves them out)


@settings(max_examples=500)
@given(
    st.sampled_from(["200 OK", "400 Bad Request", "500 Internal Server Error", "429 Error"]),
    _HEADER_TEXT,
    st.integers(0, 2**63),
    _HEADER_TEXT,
    _HEADER_TEXT,
    st.booleans(),
    st.binary(max_size=300),
)
def test_http_answer_is_the_oracle(
    status: str, ctype: str, used: int, date: str, server: str, close: bool, body: bytes
) -> None:
    """An answer's bytes (head and body) as the Python code writes them."""
    got = apihttp.http_answer(status, ctype, used, date, server, close, body)
    assert got == http_answer_py(status, ctype, used, date, server, close, body)
    head, sep, rest = got.partition(b"\r\n\r\n")
    assert sep and rest == body and head.startswith(f"HTTP/1.1 {status}\r\n".encode())
    assert f"Content-Length: {len(body)}\r\n".encode() in head + b"\r\n"
    assert head.endswith(b"Connection: close") == close


@settings(max_examples=500)
@given(
    specs(), _orders(), st.sampled_from(["ACK", "RESULT", "FULL"]), _FILLS, _TEXT,
    st.integers(0, 10**9), _HEADER_TEXT, st.booleans(),
)  # fmt: skip
def test_order_answer_is_the_oracle(
    spec: Any, o: Order, resp_type: str, fills: list[Fill], name: str, used: int, date: str,
    close: bool,
) -> None:  # fmt: skip
    """A new order's whole 200 answer in one call: the Python head of its Python JSON."""
    spec = dataclasses.replace(spec, name=name or "XY")
    got = apihttp.order_answer(
        spec.text_grid, o, resp_type, fills, used, date, "Python/3 aiohttp/3", close
    )
    body = new_order_text_py(spec, o, resp_type, fills).encode()
    want = http_answer_py("200 OK", JSON_UTF8, used, date, "Python/3 aiohttp/3", close, body)
    assert got == want


@pytest.mark.parametrize("s", ["BUY", 'a"b', "é", "\x7f", "line\n", "", "x\\y"])
def test_js_is_json(s: str) -> None:
    """JSON strings as ``json.dumps`` writes them."""
    assert apihttp.js(s) == json.dumps(s)


# ------------------------------------------------------------ the new order


class _Symbols:
    """``ctx.symbols`` of one symbol (``by_name`` is the same call on both paths)."""

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec

    def by_name(self, name: object) -> SymbolSpec:
        if name != self.spec.name:
            raise bad_request(-1121, "Invalid symbol.")
        return self.spec


_SIDES = st.sampled_from(["BUY", "SELL", "buy", "", "X"])
_TYPES = st.sampled_from(
    ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "", "limit"]
)
_TIF_NAMES = st.sampled_from(["GTC", "IOC", "FOK", "", "GTX", "gtc"])
_STP_NAMES = st.sampled_from([*STP_MODES, "", "none", "X"])
_CLIENT_IDS = st.one_of(
    st.from_regex(r"[a-zA-Z0-9_-]{1,36}", fullmatch=True),
    st.text(alphabet=string.ascii_letters + "_-9é ./", max_size=40),
    st.just("x" * 37),
)


@st.composite
def _new_orders(draw: st.DrawFn) -> tuple[SymbolSpec, dict[str, str]]:
    """A symbol and a new order's parameters: mostly valid, any field may be missing,
    malformed or off the grid."""
    spec = draw(specs())
    p, q = draw(st.integers(0, 10**12)), draw(st.integers(0, 10**12))
    ticks = min(max(p, spec.min_price_on_grid), spec.max_price_on_grid)
    ticks = ticks // spec.tick_step * spec.tick_step
    lots = min(max(q, spec.min_qty_on_grid), spec.max_qty_on_grid)
    lots = lots // spec.lot_step * spec.lot_step
    price = st.one_of(st.just(spec.ticks_to_price(max(ticks, 0))), _DECIMALS)
    qty = st.one_of(st.just(spec.lots_to_qty(max(lots, 0))), _DECIMALS)
    fields: dict[str, st.SearchStrategy[Any]] = {
        "symbol": st.sampled_from(["XY", "XY", "XY", "ZZ", ""]),
        "side": _SIDES,
        "type": _TYPES,
        "timeInForce": _TIF_NAMES,
        "price": price,
        "quantity": qty,
        "quoteOrderQty": st.one_of(st.just(""), _DECIMALS),
        "stopPrice": price,
        "newClientOrderId": _CLIENT_IDS,
        "selfTradePreventionMode": _STP_NAMES,
    }
    if draw(st.booleans()):  # a valid order, then maybe one field replaced
        params = {
            "symbol": "XY",
            "side": draw(st.sampled_from(["BUY", "SELL"])),
            "type": draw(st.sampled_from(["LIMIT", "LIMIT_MAKER", "MARKET"])),
            "timeInForce": draw(st.sampled_from(["GTC", "IOC", "FOK"])),
            "price": spec.ticks_to_price(max(ticks, 0)),
            "quantity": spec.lots_to_qty(max(lots, 0)),
        }
        params |= draw(st.fixed_dictionaries({}, optional={
            "newClientOrderId": st.from_regex(r"[a-zA-Z0-9_-]{1,36}", fullmatch=True),
            "selfTradePreventionMode": st.sampled_from(list(STP_MODES)),
        }))  # fmt: skip
        if draw(st.booleans()):
            k = draw(st.sampled_from(sorted(fields)))
            params[k] = draw(fields[k])
    else:
        usual = ["symbol", "side", "type", "timeInForce", "price", "quantity"]
        params = {k: draw(fields[k]) for k in usual if draw(st.integers(0, 15))}
        params |= draw(st.fixed_dictionaries({}, optional={k: fields[k] for k in fields}))
    # Parameters are strings (api.auth); the decimal strategies give other types too.
    return spec, {k: v for k, v in params.items() if isinstance(v, str)}


@settings(max_examples=3000)
@given(_new_orders(), st.integers(1, 2**32 - 1), st.integers(1, 2**40 - 1))
def test_parse_new_order_is_the_oracle(
    case: tuple[SymbolSpec, dict[str, str]], uid: int, oid: int
) -> None:
    """The compiled order validation gives the Python one's order, NEW bytes and
    refusal (code and message) for any parameters."""
    spec, params = case
    ctx: Any = type("Ctx", (), {"symbols": _Symbols(spec)})()
    got = _outcome(parse_new_order, ctx, params, uid)
    want = _outcome(parse_new_order_py, ctx, params, uid)
    if want[0] == "err":
        assert got == want
        return
    _, (spec1, o1, values) = got
    _, (spec2, o2, f) = want
    assert spec1 is spec2 and o1 == o2
    assert values == new_values(f)
    assert pack_new(oid, *values) == new_record(order_id=oid, **f)


@given(_new_orders())
def test_new_order_values_takes_the_usual_orders(case: tuple[SymbolSpec, dict[str, str]]) -> None:
    """Valid LIMIT, LIMIT_MAKER and MARKET orders are validated by the compiled code
    itself (not its fallback), with the oracle's fields."""
    spec, params = case
    ctx: Any = type("Ctx", (), {"symbols": _Symbols(spec)})()
    try:
        _, o, f = parse_new_order_py(ctx, params, 7)
    except ApiError:
        return
    got = apihttp.new_order_values(params, spec.order_grid, _ORDER_CONSTS)
    if o.type not in ("LIMIT", "LIMIT_MAKER", "MARKET") or o.quote_qty:
        assert got is None
        return
    assert got is not None
    side_s, typ, tif_s, cl, price, qty, side, ord_type, tif, stp, flags = got
    assert (side_s, typ, tif_s, cl, price, qty) == (o.side, o.type, o.tif, o.client_order_id,
                                                    o.price, o.qty)  # fmt: skip
    assert (side, ord_type, tif, stp, flags) == (f["side"], f["ord_type"], f["tif"], f["stp"],
                                                 f.get("flags", 0))  # fmt: skip


def test_new_order_values_fast_path_example() -> None:
    """One plain LIMIT order through the compiled code (a fixed example)."""
    spec = SymbolSpec(
        symbol_id=3, name="XY", base_asset="X", quote_asset="Y", base_asset_id=1,
        quote_asset_id=2, base_decimals=8, quote_decimals=8, base_per_lot=10**3,
        price_multiplier=10**3, tick_step=1, lot_step=1, min_qty_lots=1, max_qty_lots=10**9,
        min_price_ticks=1, max_price_ticks=10**9,
    )  # fmt: skip
    params = {"symbol": "XY", "side": "SELL", "type": "LIMIT", "timeInForce": "IOC",
              "price": spec.ticks_to_price(1234), "quantity": spec.lots_to_qty(56),
              "newClientOrderId": "abc-1"}  # fmt: skip
    got = apihttp.new_order_values(params, spec.order_grid, _ORDER_CONSTS)
    assert got is not None
    assert got[:6] == ("SELL", "LIMIT", "IOC", "abc-1", 1234, 56)
    params["timeInForce"] = "GTX"
    assert apihttp.new_order_values(params, spec.order_grid, _ORDER_CONSTS) is None


@given(st.integers(0, 2**40 - 1), st.integers(0, 2**32 - 1), st.binary(min_size=16, max_size=64))
def test_client_id_is_the_oracle(order_id: int, user_id: int, key: bytes) -> None:
    """The compiled generated clientOrderId is the Python one, character for character."""
    ids = ClientIds(key)
    assert ids.of(user_id, order_id) == ids.of_py(user_id, order_id)


# -------------------------------------------------------------- the timestamp

_NOW_MS = 1_765_000_000_000
_STAMPS = st.one_of(
    st.integers(_NOW_MS - 70_000, _NOW_MS + 2_000).map(str),
    st.integers(0, 10**17).map(str),
    st.sampled_from(["", "0", "-1", "+5", " 1", "١٢", "²", "1.5", "0" * 17]),
    st.text(alphabet="0123456789x", max_size=18),
)
_WINDOWS = st.one_of(
    st.none(),
    st.integers(0, 70_000).map(str),
    st.sampled_from(["", "0", "00060000", "99999999999", "-1", "5e3", "\u0665"]),
)


@settings(max_examples=3000)
@given(_STAMPS, _WINDOWS, st.sampled_from([1, 5_000, 60_000]), st.integers(-3_000, 3_000))
def test_timestamp_ok_is_the_oracle(ts: str, rw: str | None, rw_max: int, skew: int) -> None:
    """The compiled timestamp check accepts exactly what ``check_timestamp`` accepts
    (for ASCII input; anything it refuses goes to the Python check, which answers)."""
    a = auth.Authenticator(None, rw_max)  # type: ignore[arg-type]  # no key used
    params = {"timestamp": ts} if rw is None else {"timestamp": ts, "recvWindow": rw}
    now = _NOW_MS + skew
    with mock.patch("time.time_ns", return_value=now * 1_000_000):
        want = _outcome(a.check_timestamp, params)[0] == "ok"
    got = apihttp.timestamp_ok(
        ts, rw, rw_max, auth.DEFAULT_RECV_WINDOW_MS, auth.FUTURE_TOLERANCE_MS, now
    )
    if ts.isascii() and (rw is None or rw.isascii()):
        assert got == want
    else:
        assert not got


@pytest.mark.parametrize("v", ["\u00b2", "1\u00b2", "\u00b9\u00b2"])
def test_superscript_digits_are_malformed(v: str) -> None:
    """``str.isdigit`` is true for superscripts, which ``int`` refuses: such a value is
    -1100 (illegal characters), never an internal error."""
    with pytest.raises(ApiError) as e:
        _int_param({"orderId": v}, "orderId")
    assert e.value.code == -1100
    a = auth.Authenticator(None, 60_000)  # type: ignore[arg-type]  # no key used
    with pytest.raises(ApiError) as e:
        a.check_timestamp({"timestamp": v})
    assert e.value.code == -1100
    with pytest.raises(ApiError) as e:
        a.check_timestamp({"timestamp": "1", "recvWindow": v})
    assert e.value.code == -1131
