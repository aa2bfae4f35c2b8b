"""Hypothesis-fuzzed requests against a real `bursa api` and core: never a 500, and a
refused request changes nothing (balances and open orders as before)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.apiproc import ApiProcess, setup_market
from tests.api.signing import Signer
from tests.e2e.coreproc import CoreProcess

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiProcess, Signer]]:
    """One core + API for the whole module (hypothesis runs many examples)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "logs").mkdir()
    core = CoreProcess(tmp / "core", tmp / "logs", "async")
    core.start()
    setup_market(core)
    api = ApiProcess(core, tmp / "api", tmp / "logs", "--orders-per-10s", "1000000",
                     "--weight-per-min", "100000000")  # fmt: skip
    try:
        api.start()
        key = api.make_key(1)
        yield api, Signer(api.url, key, api.secrets[key.api_key])
    finally:
        api.cleanup()
        core.cleanup()


def _state(s: Signer) -> tuple[Any, Any]:
    acct = s.request("GET", "/api/v3/account").json()
    return acct["balances"], s.request("GET", "/api/v3/openOrders").json()


DECIMALS = st.one_of(
    st.sampled_from(["0", "0.001", "0.01", "100", "100.00", "1e3", "-1", "0x10", ".5", "5.",
                     "100.001", "99999999999999999999.99999999999999999999", "", " 1",
                     "1\n", "NaN", "inf", "١٢"]),
    st.text(max_size=25),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
)  # fmt: skip
FIELDS: dict[str, st.SearchStrategy[str]] = {
    "symbol": st.one_of(st.sampled_from(["BTCUSDT", "btcusdt", "ETH", ""]), st.text(max_size=9)),
    "side": st.one_of(st.sampled_from(["BUY", "SELL", "buy", ""]), st.text(max_size=5)),
    "type": st.sampled_from(["LIMIT", "MARKET", "LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT",
                             "TAKE_PROFIT_LIMIT", "OCO", "", "limit"]),
    "timeInForce": st.sampled_from(["GTC", "IOC", "FOK", "GTX", ""]),
    "price": DECIMALS,
    "quantity": DECIMALS,
    "quoteOrderQty": DECIMALS,
    "stopPrice": DECIMALS,
    "newClientOrderId": st.text(max_size=40),
    "newOrderRespType": st.sampled_from(["ACK", "RESULT", "FULL", "X"]),
    "selfTradePreventionMode": st.sampled_from(["NONE", "EXPIRE_TAKER", "BAD"]),
    "recvWindow": st.sampled_from(["5000", "0", "-1", "60001", "abc", "99999999999999999999"]),
}  # fmt: skip
ORDER_PARAMS = st.fixed_dictionaries(
    {"side": FIELDS["side"]}, optional={k: v for k, v in FIELDS.items() if k != "side"}
)
# Each example must be refused: a quantity or price that is always off the grid or
# out of range makes sure a fuzzed order never trades (its refusal is what is checked).
INVALID = st.sampled_from(
    [("quantity", "0.0001"), ("price", "0.001"), ("quantity", "0"), ("price", "0"),
     ("quoteOrderQty", "0"), ("quantity", "1000000000"), ("symbol", "NOPE")]
)  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=ORDER_PARAMS, invalid=INVALID)
def test_fuzzed_orders_refused_without_effect(
    env: tuple[ApiProcess, Signer], params: dict[str, str], invalid: tuple[str, str]
) -> None:
    """Fuzzed new orders with one invalid field: a 4xx with Binance's shape, no change."""
    _, s = env
    before = _state(s)
    params = {**params, invalid[0]: invalid[1]}
    if invalid[0] == "quoteOrderQty":
        params.pop("quantity", None)
    r = s.request("POST", "/api/v3/order", params)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"code", "msg"} and body["code"] < 0
    assert _state(s) == before


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.sampled_from(["/api/v3/order", "/api/v3/openOrders", "/api/v3/account",
                          "/api/v3/allOrders", "/api/v3/myTrades", "/api/v3/order/test",
                          "/api/v3/userDataStream", "/api/v3/exchangeInfo", "/api/v3/nope"]),
    query=st.binary(max_size=200),
    body=st.binary(max_size=200),
    # (requests itself refuses header values with line breaks or outer whitespace)
    api_key=st.one_of(st.none(), st.text(max_size=70).filter(
        lambda k: k == k.strip() and "\r" not in k and "\n" not in k)),
)  # fmt: skip
def test_garbage_never_500(
    env: tuple[ApiProcess, Signer],
    method: str,
    path: str,
    query: bytes,
    body: bytes,
    api_key: str | None,
) -> None:
    """Arbitrary bytes in the query, body and key header: never a 500, no change."""
    api, s = env
    before = _state(s)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if api_key is not None:
        headers["X-MBX-APIKEY"] = api_key.encode("utf-8", "replace").decode("latin-1")
    url = api.url + path + "?" + urllib.parse.quote_from_bytes(query, safe="=&%")
    r = requests.request(method, url, data=body, headers=headers)
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400 and r.headers.get("Content-Type", "").startswith("application/json"):
        assert isinstance(r.json()["code"], int)
    elif r.status_code >= 400:
        # Only the HTTP parser answers without JSON: a header it refuses (control chars).
        assert r.status_code == 400 and api_key is not None and not api_key.isprintable()
    assert _state(s) == before
