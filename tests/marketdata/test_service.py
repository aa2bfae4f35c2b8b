"""The snapshot/replay service, sans-IO: snapshots + later messages = the live book;
bounded replay window; bad requests are refused and change nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bindings.marketdata import LocalBook
from bursa_wire.md_codec import Msg, decode
from bursa_wire.md_layout import Channel, MsgType
from marketdata.service import handle
from tests.marketdata.feedkit import Run, assert_book_matches


def ask(run: Run, **req: object) -> tuple[dict[str, Any], list[Msg]]:
    parts = handle(run.feed, json.dumps(req).encode())
    return json.loads(parts[0]), [decode(p) for p in parts[1:]]


def test_snapshot_at_n_plus_messages_after_n_is_exact() -> None:
    run = Run(11)
    run.random(40, 12, 30_000_000)
    l3, _ = ask(run, op="l3", symbol=1)
    l2, _ = ask(run, op="l2", symbol=1)
    bbo, _ = ask(run, op="bbo", symbol=1)
    book = LocalBook(1)
    book.load_l3(l3["orders"])
    book.load_l2(l2["bids"], l2["asks"])
    book.bbo = tuple(bbo["bbo"])
    start = len(run.msgs)
    run.random(40, 12, 30_000_000)
    seqs = {Channel.L3: l3["seq"], Channel.L2: l2["seq"], Channel.BBO: bbo["seq"]}
    for _tp, raw in run.msgs[start:]:
        m = decode(raw)
        if m.symbol_id == 1 and m.channel in seqs:
            assert m.channel_seq == seqs[Channel(m.channel)] + 1
            seqs[Channel(m.channel)] += 1
            book.apply(m)
    assert_book_matches(run.core, book)
    depth, _ = ask(run, op="l2", symbol=1, depth=2)
    assert len(depth["bids"]) <= 2 and len(depth["asks"]) <= 2
    full, _ = ask(run, op="l2", symbol=1)
    assert depth["bids"] == full["bids"][:2] and depth["asks"] == full["asks"][:2]


def test_replay_window_then_take_snapshot() -> None:
    run = Run(12, replay_window=50)
    run.random(30, 12, 30_000_000)
    head, _ = ask(run, op="l3", symbol=1)
    last = head["seq"]
    assert last > 60
    ok, msgs = ask(run, op="replay", channel="l3", symbol=1, from_seq=last - 49)
    assert ok["ok"] and [m.channel_seq for m in msgs] == list(range(last - 49, last + 1))
    assert ok["next_seq"] == last + 1 and ok["last_seq"] == last
    mine = [decode(r) for _, r in run.msgs]
    want = [m for m in mine if m.channel == Channel.L3 and m.symbol_id == 1][-50:]
    assert [m.body for m in msgs] == [m.body for m in want]
    some, msgs = ask(run, op="replay", channel="l3", symbol=1, from_seq=last - 49, max=7)
    assert len(msgs) == 7 and some["next_seq"] == last - 42
    old, _ = ask(run, op="replay", channel="l3", symbol=1, from_seq=last - 50)
    assert old == {
        "ok": False,
        "code": "take_snapshot",
        "error": f"messages before {last - 49} are not kept",
        "oldest_seq": last - 49,
    }
    empty, msgs = ask(run, op="replay", channel="l3", symbol=1, from_seq=last + 1)
    assert empty["ok"] and msgs == [] and empty["next_seq"] == last + 1


def test_request_id_is_echoed() -> None:
    run = Run(15)
    ok = json.loads(handle(run.feed, b'{"op": "bbo", "symbol": 1, "id": 42}')[0])
    assert ok["ok"] and ok["id"] == 42
    bad = json.loads(handle(run.feed, b'{"op": "bbo", "symbol": 77, "id": "x"}')[0])
    assert not bad["ok"] and bad["id"] == "x" and bad["code"] == "unknown_symbol"


def test_trades_candles_status_info() -> None:
    run = Run(13)
    run.random(40, 12, 900_000_000)
    tr, msgs = ask(run, op="trades", symbol=1, n=5)
    assert tr["ok"] and len(msgs) == 5 and all(m.msg_type == MsgType.TRADE for m in msgs)
    assert msgs[-1].channel_seq == tr["seq"]
    c, msgs = ask(run, op="candles", symbol=1, interval_s=1)
    assert c["ok"] and msgs and all(m["interval_s"] == 1 for m in msgs)
    assert [m["closed"] for m in msgs[:-1]] == [1] * (len(msgs) - 1)
    starts = [m["start_ns"] for m in msgs]
    assert starts == sorted(starts)
    lo = starts[len(starts) // 2]
    _c2, msgs2 = ask(run, op="candles", symbol=1, interval_s=1, from_ns=lo, to_ns=lo + 1)
    assert [m["start_ns"] for m in msgs2] == [lo]
    st, msgs = ask(run, op="status", symbol=2)
    assert msgs[0].msg_type == MsgType.STATUS and st["seq"] == msgs[0].channel_seq
    info, msgs = ask(run, op="info")
    assert info["symbols"] == [1, 2] and info["core_seq"] == run.core.last_seq
    assert len(msgs) == 2


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (b"not json", "bad_request"),
        (b"[1]", "bad_request"),
        (b'{"op": "nope"}', "bad_request"),
        (b'{"op": "l2"}', "bad_request"),
        (b'{"op": "l2", "symbol": 99}', "unknown_symbol"),
        (b'{"op": "l2", "symbol": 1, "depth": -1}', "bad_request"),
        (b'{"op": "l2", "symbol": true}', "bad_request"),
        (b'{"op": "candles", "symbol": 1, "interval_s": 7}', "bad_request"),
        (b'{"op": "replay", "channel": "x", "symbol": 1, "from_seq": 1}', "bad_request"),
        (b'{"op": "replay", "channel": "l3", "symbol": 1, "from_seq": 0}', "bad_request"),
        (b'{"op": "replay", "channel": "l3", "symbol": 1, "from_seq": 999999}', "bad_request"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(req: bytes, code: str) -> None:
    run = Run(14)
    run.random(5, 10, 1_000_000)
    before = handle(run.feed, b'{"op": "l3", "symbol": 1}')
    parts = handle(run.feed, req)
    ans = json.loads(parts[0])
    assert ans["ok"] is False and ans["code"] == code and ans["error"]
    assert len(parts) == 1
    assert handle(run.feed, b'{"op": "l3", "symbol": 1}') == before
    assert run.feed.take() == []
