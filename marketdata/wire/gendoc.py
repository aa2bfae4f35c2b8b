# ruff: noqa: E501  (markdown table rows cannot wrap)
"""Generate docs/marketdata.md from the feed layouts, so spec and code cannot drift.

``python -m marketdata.wire.gendoc`` rewrites the page; ``--check`` exits 1 when
it is stale (tests/marketdata/test_docs.py runs the check).  The byte tables come
from :mod:`bursa_wire.md_layout`; the example bytes are encoded by
:mod:`bursa_wire.md_codec` at generation time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bursa_wire.layout import Field
from bursa_wire.md_codec import HEADER_SIZE, encode_fields
from bursa_wire.md_layout import (
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

Generated from `bursa_wire/md_layout.py` by `python -m marketdata.wire.gendoc`;
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
  quote minor units). `volume` and `quote_volume` saturate at 2**63-1 (never
  wrap): a client that sees that value knows the bucket's true sum is at least it.
- **STATUS**. When a symbol is added, halted or resumed: its full configuration
  and status.

## Running the feed

`bursa marketdata --core-pub-endpoint E --core-replay-endpoint E [--config F]`
(TOML section `[marketdata]`, same keys as the flags: `core_pub_endpoint`,
`core_replay_endpoint`, `pub_endpoint`, `service_endpoint`, `sndhwm`,
`replay_window`; flags win). On start it replays the core's event log from seq
1 without publishing, then binds and prints one JSON line
`{"ready": true, "pub": ..., "service": ..., "core_seq": ..., "pid": ...}`.
Catch-up costs the feed about 2 us of CPU per core event (see "Performance"),
plus the transfer of the replay frames, so a core with 10 million events in its
log is followed again in about a minute; if the core no longer
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

## Performance

`.venv/bin/python -m bench.marketdata --json` (module docstring: scenarios and keys).
The machine is a 2-vCPU VM shared with five other builds and test runs, so every
figure carries the load average during its run; latency figures move with it.

| figure | before (pure-Python feed, load 7.3 -> 13.3) | after (Cython feed, load 5.1 -> 4.9) | target |
|---|---|---|---|
| `feed_events_per_s` (feed alone, CPU time) | 155,999 (`feed_events_per_s_reference`) | 614,180 | |
| instructions per core event (callgrind, feed alone) | 46,605 | 9,256 | |
| `fanout_msgs_per_s` (10 subscribers, burst) | 441,181 | 6,618,855 | >= 1,000,000 |
| `fanout_msgs_per_s_1sub` | 181,622 | 899,513 | |
| `p50_us_at_100k` / `p99_us_at_100k` (1 subscriber) | 5,661 / 267,387 | 855 / 8,905 | p99 <= 200 |
| `planned_p99_us_at_100k` | 269,746 | 12,018 | |
| `p50_us_at_100k_10sub` / `p99_us_at_100k_10sub` | 7,679,771 / 19,126,026 | 5,116 / 46,498 | |
| `p50_us_at_10k` / `p99_us_at_10k` | 360 / 5,952 | 438 / 3,453 | |

"Before" is commit 2831dc0 (and, for the two feed-alone rows, the reference feed
measured in the same run as "after"); "after" is the commit that added this section.
Two changes made the difference:

- **The feed's hot path is Cython** (`pyx/mdfeed.pyx`): event records are read in
  place from the frame (no `tolist`), sequence numbers, the published top and the
  in-progress candles live in C arrays, and each message is written once through a
  packed C struct into the `bytes` object that the replay window and the PUB part
  share; grouping messages into one part per topic per turn is Cython too. Orders
  and levels are untracked by the cyclic GC, and the state rebuilt at start is
  frozen out of it. The output is the same byte for byte: the pure-Python original
  is kept as the test oracle (tests/marketdata/reffeed.py) and
  tests/marketdata/test_differential.py compares both over random flows.
- **The benchmark's subscribers no longer parse in their receive loop** (they keep
  each part with its receipt time and cut the messages out after the run). Ten
  Python subscribers that parsed about 1 us per message needed more than the two
  cores: with the Cython feed and the old subscribers the 10-subscriber burst
  delivered only 240,864 msgs/s (load 10). A subscriber's own parsing is not the
  feed's fan-out; a real one parses at C speed.

Where the time went, before: cProfile of the pure-Python feed on the burst
stream (117,399 events, 296,136 messages): numbering, packing and queueing each
message (`_emit`) 23% of the time, the per-command L2/BBO/candle pass
(`_end_command`) 13%, level bookkeeping (`_touch`, `level_state`, `add`,
`remove`) 12%, `tolist` plus the event loop 8%, dispatch (`_event`) 6%, resting
the taker 6%, candles 5%.

Where it goes now (perf of the running `bursa marketdata` at 100,000 events/s):
CPython dict lookups (orders by `(user_id, order_id)`, levels by price, the
levels touched by a command) 11%, appends into the bounded replay windows 6.5%
(the evicted message is cold in cache), allocation of messages and tuples 7%,
the cyclic GC 5% (before the freeze), kernel context switches about 20%; the
feed's own C code is under 10%.

**Still missed: p99 <= 200 us at 100,000 events/s**, by about 45x (8.9 ms, load
5). The feed is not the limit any more: it has CPU for 6x the rate, and in the
running process (a one-off timing wrapper around its loop, load 4.6-5.1)
applying a turn's events takes 74 us at the median (936 us at p99) and
publishing it 76 us (528 us p99). The time is in the path around it: from the
core's sequencer timestamp to the feed starting to publish takes 306 us at the
median and 3.2 ms at p99 at 100,000 events/s, and still 223 us / 1.3 ms at
10,000 events/s where the feed is nearly idle (17 us per turn). That
is the core's processing after stamping, two ZeroMQ TCP hops (core -> feed ->
subscriber) and three process wake-ups on two vCPUs shared with the core, the
load generator, the subscribers and five other helpers' builds (load 5-13):
every wait for a CPU is up to a 4 ms time slice. Meeting 200 us at p99 needs
dedicated cores (the core, the feed and each subscriber pinned), and then the
fixed per-turn cost of the feed's Python loop would be next (poll, frame
decode, one ZeroMQ send per topic: roughly 100 us per turn under load, estimated
from the process's CPU time at 10,000 events/s).
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
