"""bench.api's pre-signed order requests: with ``client_ids`` every order carries its
own newClientOrderId (ccxt's shape), without none; the signature covers the body."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from bench import api
from bench.api import Client, acks_of, order_requests


def _body(req: bytes) -> bytes:
    return req.split(b"\r\n\r\n", 1)[1]


def test_client_ids_unique_and_signed() -> None:
    secret = b"s" * 64
    clients = (Client("127.0.0.1", 1, "k1", secret, client_ids=True),
               Client("127.0.0.1", 1, "k2", secret, client_ids=True))  # fmt: skip
    reqs = order_requests(clients, 200)
    ids = []
    for r in reqs:
        body = _body(r)
        signed, _, sig = body.rpartition(b"&signature=")
        assert hmac.new(secret, signed, hashlib.sha256).hexdigest().encode() == sig
        params = dict(parse_qsl(body.decode()))
        assert re.fullmatch(r"x-R4BD3S82[A-Za-z0-9_-]{22}", params["newClientOrderId"])
        ids.append(params["newClientOrderId"])
    assert len(set(ids)) == len(ids)


def test_acks_of_name_each_orders_own_id() -> None:
    """The load generator accepts an order's answer only if it echoes the order's own
    clientOrderId (or, with generated ids, carries an orderId)."""
    secret = b"s" * 64
    clients = (Client("127.0.0.1", 1, "k1", secret, client_ids=True),
               Client("127.0.0.1", 1, "k2", secret, client_ids=True))  # fmt: skip
    reqs = order_requests(clients, 6)
    for r, ack in zip(reqs, acks_of(reqs), strict=True):
        cid = dict(parse_qsl(_body(r).decode()))["newClientOrderId"]
        assert ack == f'"clientOrderId": "{cid}"'.encode()
    plain = (Client("127.0.0.1", 1, "k1", b"s"), Client("127.0.0.1", 1, "k2", b"s"))
    assert acks_of(order_requests(plain, 2)) == [b'"orderId": '] * 2


def test_generated_ids_by_default() -> None:
    clients = (Client("127.0.0.1", 1, "k1", b"s"), Client("127.0.0.1", 1, "k2", b"s"))
    for r in order_requests(clients, 4):
        assert b"newClientOrderId" not in _body(r)


def test_durability_of_each_figure() -> None:
    """bench.report reads the durability of each headline figure from this dict: REST
    figures carry the core's journal mode (the async comparison's: async), WebSocket
    figures none."""
    from bench.api import durability_of
    from bench.report import durability

    result: dict[str, Any] = {
        "rest_order_p50_us": 1.0,
        "rest_orders_per_s": 2,
        "rest_orders_per_s_async": 4,
        "rest_server_cpu_us_per_order_async": 5.0,
        "ws_depth_msgs_per_s": 3,
        "bench": "api",
    }
    result["durability"] = durability_of(result, "fsync")
    assert durability(result, "rest_order_p50_us") == "fsync"
    assert durability(result, "rest_orders_per_s") == "fsync"
    assert durability(result, "rest_orders_per_s_async") == "async"
    assert durability(result, "rest_server_cpu_us_per_order_async") == "async"
    assert durability(result, "ws_depth_msgs_per_s") == "none"
    assert "bench" not in result["durability"]


def test_aging_probes_read_memory_and_directory_size(tmp_path: Path) -> None:
    """The per-run aging figures: this process's resident memory, a directory's bytes."""
    assert 1.0 < api.rss_mib(os.getpid()) < 100_000
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").write_bytes(b"x" * 2**20)
    (tmp_path / "sub" / "b").write_bytes(b"x" * 2**19)
    assert api.dir_mib(tmp_path) == 1.5
