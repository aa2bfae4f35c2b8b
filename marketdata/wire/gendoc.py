# ruff: noqa: E501  (markdown table rows cannot wrap)
"""Generate docs/marketdata.md from the feed layouts, so spec and code cannot drift.

``python -m marketdata.wire.gendoc`` rewrites the page; ``--check`` exits 1 when
it is stale (tests/marketdata/test_docs.py runs the check).  The byte tables come
from :mod:`marketdata.wire.layout`; the example bytes are encoded by
:mod:`marketdata.wire.codec` at generation time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from engine.wire.layout import Field
from marketdata.wire.codec import HEADER_SIZE, encode_fields
from marketdata.wire.layout import (
    BODIES,
    CANDLE_INTERVALS_S,
    CHANNEL_NAMES,
    CHANNEL_OF,
    HEADER,
    Channel,
    MsgType,
)

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "marketdata.md"


def byte_table(fields: tuple[Field, ...], base: int = 0) -> str:
    """Byte table (offset from the start of the message) of a field table."""
    rows = ["| offset | size | type | field | unit | meaning |", "|---:|---:|---|---|---|---|"]
    off = base
    for f in fields:
        size = np.dtype(f.code).itemsize
        rows.append(f"| {off} | {size} | `{f.code}` | `{f.name}` | {f.unit} | {f.doc} |")
        off += size
    return "\n".join(rows)


def _body_size(fields: tuple[Field, ...]) -> int:
    return sum(np.dtype(f.code).itemsize for f in fields)


def _hex(b: bytes) -> str:
    return " ".join(b[i : i + 8].hex() for i in range(0, len(b), 8))


INTRO = """\
# Market data feed

`bursa marketdata` (package `marketdata/`) follows the core's event stream and
publishes a public, sequenced feed on ZeroMQ: order-level (L3) changes, price
levels (L2), trades, best bid/offer (BBO), candles and symbol status. It never
publishes a user id or a client's order id: resting orders are named by
feed-assigned public ids (`order_ref`). This page is enough to write a client in
any language; the Python client is `bindings/marketdata.py`.

Generated from `marketdata/wire/layout.py` by `python -m marketdata.wire.gendoc`;
do not edit by hand.

## Sockets

| socket | type (server side) | client | carries |
|---|---|---|---|
| feed (`--pub-endpoint`, default `tcp://127.0.0.1:7101`) | PUB | SUB | two-part messages `[topic, messages]` |
| service (`--service-endpoint`, default `tcp://127.0.0.1:7102`) | ROUTER | DEALER or REQ | snapshot and replay requests (below) |

The topic of a message is the ASCII string `<channel>.<symbol_id>.`, e.g.
`l2.1.`; subscribe to `l2.1.` for symbol 1's levels or to `l2.` for every
symbol's. The trailing dot keeps `l2.1.` from matching `l2.10.`. The second
part holds one or more feed messages of that topic back to back, in sequence
order (cut them with each header's `body_size`; at most 64 KiB per part unless a
single message is larger): the feed sends one part per topic per loop turn, so
ZeroMQ's per-message cost is paid once for many messages. A lost part is a gap
like any other.

| channel | value | name | message types |
|---|---:|---|---|
"""

SEMANTICS = """\
## Sequence numbers and time

- Each (channel, symbol) pair has its own `channel_seq`, starting at 1 and
  increasing by exactly 1 per message: a receiver that sees `channel_seq`
  greater than the last one + 1 has lost messages (see "Syncing a book").
- `core_seq` is the core command the message came from and `ts_ns` that
  command's sequencer time; several messages share a `core_seq`.
- The feed is a deterministic function of the core's event stream: the same
  events always give the same messages with the same `channel_seq`. A restarted
  `bursa marketdata` rebuilds its state by replaying the core's event log from
  seq 1 (no checkpoint of its own: nothing to corrupt or fork) and continues the
  same numbering. Messages it would have published while it was down are not
  re-sent live; a client sees the jump and fills it from the replay service.
- All prices are integer ticks and all quantities integer lots (decimals only
  in display code). From the STATUS message: a fill of `q` lots at `p` ticks
  moves `p * q * price_multiplier` quote minor units and `q * base_per_lot` base
  minor units, so one whole base unit costs
  `p * price_multiplier * 10**base_decimals / (base_per_lot * 10**quote_decimals)`
  whole quote units.

## What each channel means

- **L3** (ITCH-like). `L3_ADD`: an order starts resting, at the back of its
  level. `L3_EXECUTE`: a resting order traded `exec_lots` (it was the maker);
  `leaves_lots` = 0 removes it. `L3_CANCEL`: part of a resting order was removed
  and it keeps its place. `L3_DELETE`: the whole order left the book (canceled,
  self-trade prevention, or replaced and traded at its new price). `L3_REPLACE`: the order `old_order_ref`
  left the book and the order `order_ref` joined the back of the level at
  `price_ticks` (a price change or a size increase, which lose priority).
  Incoming orders appear only once they rest, with what is left after they
  traded; orders that trade on arrival show up as `L3_EXECUTE` of the makers and
  as trades. Stop orders are invisible until triggered.
- **L2**. One `L2_LEVEL` per price level whose total quantity or order count
  changed, per core command (the unit that is identical live, in replay and
  after any restart of the core), after the command's L3 messages:
  `qty_lots` and `n_orders` are the new absolute values; `qty_lots` = 0 removes
  the level.
- **TRADES**. One `TRADE` per fill, at the maker's price; `aggressor_side` is
  the taker's side.
- **BBO**. After a command that changed the best bid or ask (price, quantity or
  order count) one `BBO` with both sides.
- **CANDLES**. Intervals {intervals} seconds, buckets aligned to multiples of
  the interval since the Unix epoch, time from the core's event timestamps (never
  the wall clock). After each command with trades, one `CANDLE` (`closed` = 0)
  per interval with the bucket's values so far. When a command's `ts_ns` is at
  or past a bucket's end, that candle is sent once more with `closed` = 1 (its
  final values) before anything else of that command. Buckets without trades
  have no candle. `quote_volume` is in ticks x lots (x `price_multiplier` =
  quote minor units).
- **STATUS**. When a symbol is added, halted or resumed: its full configuration
  and status.

## Running the feed

`bursa marketdata --core-pub-endpoint E --core-replay-endpoint E [--config F]`
(TOML section `[marketdata]`, same keys as the flags: `core_pub_endpoint`,
`core_replay_endpoint`, `pub_endpoint`, `service_endpoint`, `sndhwm`,
`replay_window`; flags win). On start it replays the core's event log from seq
1 without publishing, then binds and prints one JSON line
`{"ready": true, "pub": ..., "service": ..., "core_seq": ..., "pid": ...}`.
Catch-up costs about 10 us of CPU per core event, so a core with 10 million
events in its log is followed again in under two minutes; if the core no longer
keeps its log from seq 1 the process exits 1 saying so (the numbering could not
be the same). SIGTERM exits 0; kill -9 loses nothing (there is nothing to lose).
Every queue is bounded: PUB queues at most `sndhwm` parts per subscriber and
drops beyond (the subscriber sees the gap and recovers), the service keeps
`replay_window` messages per channel and symbol, a client that does not read
its service answers loses them. `--test-drop-every N` (tests only) skips every
N-th message on the wire while still numbering it.

## Messages

Every message is a 32-byte header followed by the body of its type; all
integers little-endian, packed, no padding. A receiver rejects a message of a
type it does not know or whose `body_size` is not the size listed for its type
(the layout of an existing type never changes; new data gets new types).

### Header (32 bytes)

"""

SERVICE = """\
## Snapshot and replay service

Request: ONE part, a JSON object with `"op"` and optionally `"id"` (any JSON
value, echoed in the answer so a client can discard a late answer to an earlier
request it gave up on). Answer: a first part holding a
JSON object (`{"ok": true, ...}` or `{"ok": false, "code": "...", "error":
"..."}`), then zero or more parts, each one feed message (the bytes above,
without topic). The service runs in the same loop as the publisher, so an
answer is consistent with everything published before it: a snapshot stamped
`seq` = N includes exactly the effects of the channel's messages 1..N.

| op | arguments | answer (JSON) | message parts |
|---|---|---|---|
| `info` | | `core_seq` (last core command applied), `symbols` (ids) | the STATUS of each symbol |
| `l2` | `symbol`, `depth` (0 = full) | `seq` (L2 channel), `core_seq`, `bids`, `asks`: lists of `[price_ticks, qty_lots, n_orders]`, best first | |
| `l3` | `symbol` | `seq` (L3 channel), `core_seq`, `orders`: `[order_ref, side, price_ticks, qty_lots]` in priority order: bids best to worst (FIFO within a level), then asks | |
| `bbo` | `symbol` | `seq` (BBO channel), `bbo`: `[bid_price, bid_qty, bid_orders, ask_price, ask_qty, ask_orders]` | |
| `status` | `symbol` | `seq` (STATUS channel) | the latest STATUS message |
| `replay` | `channel` (name), `symbol`, `from_seq`, `max` (optional) | `next_seq` (ask from here next), `last_seq` (the channel's latest) | messages `from_seq`.. in order, at most `max` (default and bound 10,000) |
| `trades` | `symbol`, `n` (bound 1,000) | `seq` (TRADES channel) | the last `n` TRADE messages, oldest first |
| `candles` | `symbol`, `interval_s`, `from_ns`, `to_ns` | `seq` (CANDLES channel) | closed candles with `from_ns <= start_ns < to_ns` (the last 1,000 per interval are kept), then the in-progress one if in range |

Error codes: `bad_request` (malformed JSON, unknown op, missing or bad argument),
`unknown_symbol`, `take_snapshot` (`replay` from a `from_seq` older than the
window the server keeps per channel and symbol, 100,000 messages by default;
the answer carries `oldest_seq`). A bad request changes nothing.

## Syncing a book (the client algorithm)

1. SUB to `l3.<symbol>.` (or `l2.<symbol>.`) and start buffering messages.
2. Request the snapshot (`l3` or `l2`); it is valid at `seq` = N.
3. Drop buffered messages with `channel_seq <= N`, apply the rest in order;
   the first one applied must have `channel_seq` = N + 1 (else go to 4).
4. Whenever a message has `channel_seq` > expected: keep it buffered, ask
   `replay` from the expected number, apply what comes back, then the buffer.
   If the answer is `take_snapshot`, start again at 2 (keep buffering).
   A lost LAST message shows no gap until the next one: when idle, ask `replay`
   from the expected number (the Python client does after 500 ms without
   messages).
5. The local book is now exact: equal to the server's book at the same
   `channel_seq`. L2 is the sum of L3 per (side, price); BBO the top of L2.

### Worked example

Symbol 1, empty book. A sell order of 5 lots at 100 ticks rests, then a buy of
2 lots at 101 trades with it. The client subscribed to `l3.1.` and `l2.1.`, and
its `l3` request answered `{"ok": true, "seq": 1, "core_seq": 7, "orders": [[1, 2, 100, 5]]}`.
Meanwhile these arrived (hex, 8 bytes per group):

{example}

The client drops the buffered `L3_ADD` (`channel_seq` 1 <= 1), applies the
`L3_EXECUTE` (seq 2 = 1 + 1): order 1 now has 3 lots open, which is also what
the `L2_LEVEL` says for the level at 100 (3 lots, 1 order). Had the client seen
L3 `channel_seq` 4 next, it would ask
`{"op": "replay", "channel": "l3", "symbol": 1, "from_seq": 3}`.
"""


def example() -> str:
    """The worked example's messages, encoded by the real codec."""
    ts = 1_700_000_000_000_000_000
    msgs = [
        (
            "l3.1.",
            encode_fields(
                MsgType.L3_ADD, 1, 1, 7, ts, order_ref=1, price_ticks=100, qty_lots=5, side=2
            ),
        ),
        (
            "l3.1.",
            encode_fields(
                MsgType.L3_EXECUTE,
                1,
                2,
                8,
                ts + 1000,
                order_ref=1,
                price_ticks=100,
                exec_lots=2,
                leaves_lots=3,
                match_id=1,
                side=2,
            ),
        ),
        (
            "l2.1.",
            encode_fields(
                MsgType.L2_LEVEL,
                1,
                2,
                8,
                ts + 1000,
                price_ticks=100,
                qty_lots=3,
                n_orders=1,
                side=2,
            ),
        ),
    ]
    out = []
    for tpc, body in msgs:
        name = MsgType(body[0]).name
        out.append(f"- topic `{tpc}`, {name} ({len(body)} bytes):")
        out.append("")
        out.append(f"  `{_hex(body)}`")
        out.append("")
    return "\n".join(out).rstrip()


def marketdata_md() -> str:
    """The full text of docs/marketdata.md."""
    parts = [INTRO]
    for ch in Channel:
        types = ", ".join(f"`{t.name}`" for t in MsgType if CHANNEL_OF[t] is ch)
        parts.append(f"| {ch.name} | {int(ch)} | `{CHANNEL_NAMES[ch]}` | {types} |\n")
    parts.append("\n")
    parts.append(SEMANTICS.replace("{intervals}", ", ".join(str(i) for i in CANDLE_INTERVALS_S)))
    parts.append(byte_table(HEADER) + "\n\n")
    for t, fields in BODIES.items():
        size = _body_size(fields)
        parts.append(
            f"### {t.name} (`msg_type` {int(t)}, channel {CHANNEL_OF[t].name}, "
            f"body {size} bytes, message {HEADER_SIZE + size} bytes)\n\n"
        )
        parts.append(byte_table(fields, HEADER_SIZE) + "\n\n")
    parts.append(SERVICE.replace("{example}", example()))
    return "".join(parts)


def main(argv: list[str]) -> int:
    """Write docs/marketdata.md, or with ``--check`` exit 1 when it is stale."""
    text = marketdata_md()
    if DOC_PATH.exists() and DOC_PATH.read_text() == text:
        return 0
    if "--check" in argv:
        print("stale docs/marketdata.md (run: python -m marketdata.wire.gendoc)")
        return 1
    DOC_PATH.write_text(text)
    print("wrote docs/marketdata.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
