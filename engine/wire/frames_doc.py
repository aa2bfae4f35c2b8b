# ruff: noqa: E501  (markdown table rows cannot wrap)
"""The section "Frames on the wire" of docs/commands.md, beside the code it describes.

tools/gen_commands.py appends :data:`FRAMES_DOC` to docs/commands.md;
tests/engine/test_server.py checks the sizes it states against
:mod:`engine.wire.frames`.
"""

FRAMES_DOC = """\
## Frames on the wire

The core process (`bursa core`, `engine/server.py`) speaks ZeroMQ on five sockets:
three command sockets, one per role (`engine/wire/roles.py`, docs/architecture.md
"Trust boundary"), and the internal event stream (PUB + replay).
All integers are little-endian; record layouts are those of `docs/records.md`.
The codecs live in `engine/wire/frames.py`; the Python clients in `bindings/client.py`.

| socket | type (core side) | clients | carries |
|---|---|---|---|
| trade (`--trade-endpoint`, default `tcp://127.0.0.1:7001`) | ROUTER | DEALER (or REQ): gateways | NEW, CANCEL, REDUCE, REPLACE, MASS_CANCEL; control `ping` |
| trade stream (`--trade-stream-endpoint`, default none) | unix stream socket (`unix:/abs/path`) | `StreamTradeClient` (`bindings/streamlink.py`): gateways on the same machine | the trade socket's command and reply frames, length-prefixed ("The stream trade link" below) |
| fund (`--fund-endpoint`, default `tcp://127.0.0.1:7004`) | ROUTER | DEALER (or REQ): the wallet | DEPOSIT, WITHDRAW_HOLD/COMMIT/RELEASE, TRANSFER; control `ping` |
| admin (`--admin-endpoint`, default `tcp://127.0.0.1:7005`) | ROUTER | DEALER (or REQ): operators (`bursa admin`) | assets, symbols, users, fee tiers, halts, suspensions, CANCEL_ALL_SYMBOL; every control request |
| events (`--pub-endpoint`, default `tcp://127.0.0.1:7002`) | PUB | SUB (subscribe to `""`) | event frames |
| events stream (`--events-stream-endpoint`, default none) | unix stream socket (`unix:/abs/path`) | `EventSubscriber` with a `unix:` live source: processes on the same machine | every event frame of PUB, length-prefixed ("The event stream link" below) |
| replay (`--replay-endpoint`, default `tcp://127.0.0.1:7003`) | ROUTER | DEALER (or REQ) | replay requests in, event frames + end marker out |

A DEALER client may put an empty delimiter part before its message (that is what
REQ does); the answer then carries one too. Every socket has `ZMQ_MAXMSGSIZE` =
3 MiB (twice the largest valid command frame): a peer sending a larger message is
disconnected by ZeroMQ and nothing reaches the core.

A command frame holding any command whose kind its socket does not carry is
refused whole: nothing in it is sequenced, and every record gets a reply with
`status` = 2, `reason` = 391 `WRONG_SOCKET`, `seq` = 0, `value` = 1 on the
records of a foreign kind and 0 on the others.

Control requests (two parts: `BCTL`, a JSON object of at most 4,096 bytes with an
`"op"`) are answered with the same shape. `ping` is served on every command
socket; `status`, `state_hash`, `conservation`, `snapshot` and `balance`
(`user_id` 0..2**32-1, `asset_id` 0..65535, `account` 0 or 1, JSON integers) only on
`admin`. `state_hash`, `conservation` and `snapshot` walk the whole state: at most
`max_expensive_controls` (default 2) run per loop turn. An error answer is
`{"ok": false, "reason": NAME, "code": N, "error": text}` with `reason` one of
`WRONG_SOCKET`, `RATE_LIMITED` (retry later), `INVALID_REQUEST` (missing,
mistyped or out-of-range field, bad JSON, body too large) or `UNKNOWN_COMMAND`.

### Command frame (client → core)

One message part holding 1..16,384 command records (96 bytes each, `CMD_DTYPE`)
back to back, no header. `seq` and `ts_ns` are overwritten by the sequencer;
`client_ref` is echoed in the reply. Several frames from one or many clients that
are queued when the core's loop turns are committed together (group commit: one
journal append and, in `fsync` mode, one fdatasync for all of them, at most
16,384 commands per batch).

A message that is not exactly one part of whole records (length 0, not a multiple
of 96, more than 16,384 records, or several parts that are not a control request)
is *malformed*: nothing is sequenced, nothing changes, and the sender gets one
reply record with `status` = 2 (rejected), `reason` = 390 `MALFORMED_FRAME`,
`seq` = 0 and `value` = the part's length in bytes (-1 if the message had several
parts).

### Reply frame (core → client)

One message part holding 40-byte reply records (`REPLY_DTYPE`) back to back, no
header: one record per command (one per malformed message), in the order the
sender sent them. The core sends each sender ONE reply frame per loop turn,
holding the replies of all that sender's frames committed in that turn, so a
client counts records, not frames. In `fsync` mode no reply leaves before the
batch holding its command is durable.

| status | meaning |
|---:|---|
| 1 | applied (`seq` is the command's sequence number) |
| 2 | rejected (`reason` from `docs/reject-codes.md`; the command was sequenced and journaled unless `seq` = 0) |
| 3 | duplicate: an idempotent no-op (deposit reference or withdrawal id already seen) |

### The stream trade link

With `trade_stream_endpoint = "unix:/abs/path"` (flag `--trade-stream-endpoint`;
ready-line key `"trade_stream"`) the core also listens on a unix stream socket
that carries exactly what the `trade` socket carries, without ZeroMQ: the core's
own loop polls the listening socket and every connection next to its zmq sockets
(`engine/streamlink.py`), so no I/O thread wakes on either side. Same turn, same
group commit, same kind check (`WRONG_SOCKET`), same replies. Local only: the
socket file is 0600 in a 0700 directory, and a peer whose `SO_PEERCRED` uid is
neither the core's nor root is closed at once; across machines the zmq `trade`
socket with CURVE stays the way in. Control requests are not carried (`ping` the
admin socket).

Each direction is a sequence of frames, no other bytes:

| offset | size | type | field | meaning |
|---:|---:|---|---|---|
| 0 | 4 | `<u4` | `length` | body bytes that follow (0 .. 3,145,728) |
| 4 | `length` | bytes | body | client → core: a command frame exactly as on the zmq `trade` socket; core → client: a reply frame exactly as the zmq reply |

Example: one NEW (96-byte record) is the 100 bytes `60 00 00 00` + the record;
a 7-byte body of garbage (`07 00 00 00` + 7 bytes) is answered with one reply
frame `28 00 00 00` + a 40-byte `MALFORMED_FRAME` record whose `value` is 7. As on
zmq, the core answers all the frames a connection sent in one loop turn with ONE
reply frame (count records, not frames), and a client may pipeline freely.

Bounds (named constants in `engine/streamlink.py`), each closing only the
connection concerned, never changing state:

| bound | value | beyond it |
|---|---|---|
| `length` (`MAX_MESSAGE_BYTES`, as zmq's `ZMQ_MAXMSGSIZE`) | 3 MiB | protocol error: logged, connection closed before the body is read |
| connections (`MAX_STREAM_CONNS`) | 64 | the new connection is accepted and closed at once |
| bytes read per connection per loop turn (`READ_BYTES_PER_TURN`) | 1 MiB | the rest waits in the kernel for the next turn (fairness) |
| reply bytes queued per connection (`MAX_OUT_BYTES`) | 32 MiB | the peer is not reading: connection closed |
| commands per batch (`max_batch_cmds`) | 16,384 | frames already read wait in the link and go first next turn |

An end of stream (a half-close too) inside a frame discards the partial frame; the
replies of whole frames read before it are still written, then the connection is
closed. A partial write is kept and finished when the socket is writable, so a
slow reader never blocks the loop. A client that loses the connection (the core
restarted) reconnects to the same path and resends unanswered commands with the
same order ids: an applied one is answered `DUPLICATE` with its first outcome
(the core's exactly-once, "Idempotency" above).

### The event stream link

With `events_stream_endpoint = "unix:/abs/path"` (flag `--events-stream-endpoint`;
ready-line key `"events_stream"`) every event frame the core publishes on PUB goes,
the same bytes, framed as on the stream trade link (u32 little-endian length, then
the event frame), to each connected subscriber, in publication order, from the
moment it connected. A subscriber sends nothing: any byte from it is a protocol
error (connection closed). Its queued bytes are bounded (`MAX_EVENT_OUT_BYTES`,
128 MiB, as PUB's 2,048 frames of at most 64 KiB): beyond, it is closed, as a PUB
subscriber's frames are dropped beyond the high-water mark. `EventSubscriber`
(`bindings/client.py`) takes `unix:/path` as its live source
(`bindings.streamlink.StreamEventSource`), reconnects after a core restart and
fills every gap from the replay service as on PUB. Same access rules and counters
(`events_stream_*` in `status`) as the trade link.

### Event frame (core → subscribers, event log, replay answers)

| offset | size | type | field | meaning |
|---:|---:|---|---|---|
| 0 | 4 | bytes | `magic` | `BEV1` |
| 4 | 4 | `<u4` | `n_events` | event records that follow |
| 8 | 8 | `<u8` | `first_seq` | first command sequence number the frame covers |
| 16 | 8 | `<u8` | `last_seq` | last command sequence number the frame covers |
| 24 | 4 | `<u4` | `crc32c` | CRC32C of bytes 0..23 then of the event records |
| 28 | 4 | `<u4` | `flags` | 0 |
| 32 | 96 x n | `EV_DTYPE` | events | sorted by `seq` |

A frame covers the *commands* `first_seq..last_seq` completely: every event of
those commands is in it, and commands that produced no event are covered too.
Consecutive frames satisfy `next.first_seq == prev.last_seq + 1`, so a subscriber
detects a lost frame by sequence alone (`first_seq` greater than the next number
it expects). A batch's events are cut into frames of at most 680 events on
command boundaries (a single command with more events gets a frame of its own).
The same bytes are appended to the event log (`events-<first seq, 20 digits>.log`
segments in the data directory) before they are published, and the replay
service serves them from there.

### Replay request and answer

Request (client → replay socket), one part of 24 bytes:

| offset | size | type | field | meaning |
|---:|---:|---|---|---|
| 0 | 4 | bytes | `magic` | `BRQ1` |
| 4 | 4 | `<u4` | `flags` | 0 |
| 8 | 8 | `<u8` | `from_seq` | first command sequence number wanted (0 or 1: from the start) |
| 16 | 8 | `<u8` | `max_events` | bound on events in the answer (0: the server's bound, 65,536) |

Answer: ONE multipart message: zero or more event frames (the first one trimmed to
start at `from_seq`; whole frames after it; at most `max_events` events and 8 MiB
unless a single frame is larger), then the end marker, 24 bytes:

| offset | size | type | field | meaning |
|---:|---:|---|---|---|
| 0 | 4 | bytes | `magic` | `BEND` |
| 4 | 4 | `<u4` | `status` | 0 ok, 1 bad request (wrong size or magic, non-zero `flags`), 2 `from_seq` is older than the oldest event kept, 3 `from_seq` is beyond the log's end (`next_seq` = last seq + 1) |
| 8 | 8 | `<u8` | `next_seq` | first sequence number NOT in this answer: ask from here next |
| 16 | 8 | `<u8` | `last_seq` | last sequence number in the event log when the answer was cut |

A client catches up by asking again from `next_seq` until `next_seq > last_seq`,
then continues with the live PUB stream (`EventSubscriber` in `bindings/client.py`
does exactly this, and fills any later gap the same way).

### Control requests (client → command socket)

Two parts: `BCTL` and a JSON object `{"op": ...}`; the answer has the same shape
(`{"ok": true, ...}` or `{"ok": false, "error": "..."}`). Control requests read
the core's state after the commands of the same loop turn; they are not journaled
and change nothing except `snapshot`.

| op | answer fields |
|---|---|
| `ping` | `last_seq` |
| `status` | `pid`, `last_seq`, `event_log_last_seq`, `mode`, `batches`, `commands`, `malformed`, `cmd`, `pub`, `replay`; with a stream trade link `trade_stream` and its counters `trade_stream_conns`, `_accepted`, `_refused`, `_protocol_errors`, `_slow_closed`; with an event stream link `events_stream` and the same `events_stream_*` counters |
| `state_hash` | `state_hash` (hex), `last_seq` |
| `conservation` | `ok`, `errors` (list of strings; empty when the invariant holds), `last_seq` |
| `snapshot` | `last_seq` (a snapshot is written at it; the event log is synced first) |
| `balance` (`user_id`, `asset_id`, optional `account`) | `balance`: `[available, held]` in minor units |
"""
