"""The gateway's durable state: sessions' sequenced streams, order id mapping, core seq.

Design (docs/gateway.md, "Replay"): every sequenced message a session is sent is
stored (SQLite, WAL; or first the turn file, below) before it is written to the
socket, together with the state change that produced it and, for messages derived
from core events, the last core ``seq`` applied.  So after kill -9 the gateway resumes the event
stream at ``last_core_seq + 1`` and applies every event exactly once; a re-login
replays the stored bytes, identical to what was (or would have been) sent live.

Streams are stored as chunks: one row per session per transaction holding all its
messages of that loop turn (each a 2-byte length and the payload), so the cost of a
commit grows with the sessions active in the turn, not with the messages.  Outbound
messages have a fixed size per type, so the payloads are stored back to back.

Retention (:meth:`Store.prune_streams`): a session's oldest chunks are removed once
they are older than the configured age or beyond the configured number of newest
messages; ``stream_floor`` keeps each session's first retained sequence number, so a
re-login asking for an older one is refused (``SEQUENCE_BEFORE_RETENTION``) instead
of being answered with a silent gap.

The order map in memory is bounded (:data:`DEFAULT_MAX_ORDERS_IN_MEMORY`, config
``max_orders_in_memory``): every open order (pending or resting) and every order with
a request in flight is always there; ended orders (filled, canceled, rejected) are
evicted oldest-ended first once the map is above the bound, after their last state
was committed, and are then served from SQLite by ``(key_id, cl_ord_id)``
(:meth:`Store.find_cl`).  A restart loads only the open ones.

Order rows: every loop turn stores the orders it created or changed as ONE row of
``order_log`` (their packed images back to back, :mod:`pyx.gworders`), in the same
transaction as the turn's streams and core seq, instead of an INSERT or UPDATE per
order and change.  The keyed ``orders`` table is brought up to date from the log
("folded") once a log row is :data:`FOLD_AGE_S` old: each order whose latest image
is in that row is written once (INSERT OR REPLACE), and the row is deleted, in the
turn's transaction.  An order that is created, accepted and filled within that time
(most orders of a busy gateway) is written to ``orders`` once instead of three times.
An order that ended with nothing pending and was never folded before goes instead to
its session's row of ``order_archive`` for this fold (images sorted by client id; a
session's rows cover disjoint client id ranges, so an evicted order is found by one
range read): one row per session and fold instead of one per order.
Orders whose latest image is still only in the log (``Order.log_id``) are never evicted
from memory (an evicted order is read back from ``orders``); a restart folds the
whole log first.

The turn file (docs/gateway.md, "Replay design"): a loop turn with little to store (one
order in flight: its new order, or its acknowledgement's reports and changed orders and
the core seq) does not commit before it sends; :meth:`Store.log_turn` appends what it
stores to an append-only file next to the database in one ``write`` (a numbered,
checksummed record, :mod:`bindings.intentfile`), and SQLite is filled behind it by the
next :meth:`Store.commit` (the gateway's ticker, or a busy turn), which stores the
number of the last record it covers (``meta.turn_mark``) in the same transaction.  At
start the records past the mark are applied once, before anything is loaded.

Order ids: the gateway gives every order a core order id from one counter that
only grows (max(counter + 1, ms since 2025), see ID_EPOCH_NS); the order's row,
which carries the id, is stored before the command leaves for the core, and the
counter is stored whenever rows leave the order log (a restart takes it past every
id still in the log), so ids are strictly increasing per user and never reused.  Rows are keyed by
``(user_id, order_id)`` and by ``(key_id, cl_ord_id)``.
"""

from __future__ import annotations

import bisect
import operator
import os
import sqlite3
import struct
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from bindings import intentfile
from bindings.intentfile import INTENT_TRUNCATE_BYTES as INTENT_TRUNCATE_BYTES
from bursa_wire.gw_layout import (
    APP_OUT,
    STATE_CANCELED,
    STATE_FILLED,
    STATE_OPEN,
    STATE_PENDING,
    STATE_REJECTED,
)
from gateway import keys
from pyx import gwentry, gworders
from pyx.gworders import ORDER_REC
from pyx.gworders import Order as Order  # re-exported: the order record lives in pyx

# An order row is its image (pyx.gworders.ORDER_REC + pending bytes, as in the order log)
# under its client key: 4 values to bind instead of 14.  ``live``: open or with a request
# pending (the orders a restart loads).
ORDERS_COLUMNS = """(
    key_id INTEGER NOT NULL,
    cl_ord_id INTEGER NOT NULL,  -- signed: cl_ord_id - 2**63
    live INTEGER NOT NULL,
    rec BLOB NOT NULL,
    PRIMARY KEY (key_id, cl_ord_id)
) WITHOUT ROWID"""
SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS out_chunks (
    key_id INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    payloads BLOB NOT NULL,  -- messages first_seq..last_seq back to back (fixed sizes)
    ts_ms INTEGER NOT NULL DEFAULT 0,  -- wall clock of the commit (age retention)
    PRIMARY KEY (key_id, last_seq)
) WITHOUT ROWID;
-- Per session: the first sequence number still stored (retention removed the ones before).
CREATE TABLE IF NOT EXISTS stream_floor (
    key_id INTEGER PRIMARY KEY,
    first_kept INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS orders """
    + ORDERS_COLUMNS
    + """;
-- Keyed by (key_id, cl_ord_id): ended orders evicted from memory are looked up by the
-- client's id (ORDER_STATUS, duplicate check); (user_id, order_id) is looked up only in
-- memory (every open order is there), so no second index to maintain on every insert.
DROP INDEX IF EXISTS orders_by_cl;
-- One row per loop turn: the packed images of the orders the turn created or changed
-- (pyx.gworders.ORDER_REC + pending bytes), folded into orders once FOLD_AGE_S old.
CREATE TABLE IF NOT EXISTS order_log (id INTEGER PRIMARY KEY, recs BLOB NOT NULL);
-- Ended orders folded for the first time, one row per session and fold: their images
-- (no request pending: fixed size) sorted by client id.  A session's rows cover
-- disjoint, increasing client id ranges [lo_cl, hi_cl] (signed like orders.cl_ord_id);
-- an order also in ``orders`` was changed after it was archived: ``orders`` wins.
CREATE TABLE IF NOT EXISTS order_archive (
    key_id INTEGER NOT NULL,
    hi_cl INTEGER NOT NULL,
    lo_cl INTEGER NOT NULL,
    recs BLOB NOT NULL,
    PRIMARY KEY (key_id, hi_cl)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS symbols (symbol_id INTEGER PRIMARY KEY, quote_asset_id INTEGER);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""
)

OPEN_STATES = (STATE_PENDING, STATE_OPEN)
DONE_STATES = (STATE_FILLED, STATE_CANCELED, STATE_REJECTED)
I64 = 2**63
# Every outbound application message has a fixed size per type, so a stored chunk is
# the payloads back to back and its message code tells each one's length.
PAYLOAD_LEN = {m.code[0]: 1 + m.struct.size for m in APP_OUT}
# Core order ids are per user, 1..2**40-1, and must grow per user and order-id lane
# (docs/commands.md, "Idempotency": bit 39 is the lane; the gateway's ids are lane 0,
# below 2**39, the Binance API's lane 1, so the core judges each door's ids apart and
# many API orders never make the gateway's ids ORDER_ID_TOO_OLD).  The gateway's ids
# come from one counter that never goes below the milliseconds since ID_EPOCH:
# max(counter + 1, ms since 2025-01-01).  Idle, the counter follows the clock; so even a
# lost database restarts above every id used before, unless the gateway had run ahead of
# the clock (above 1,000 orders/s sustained) just before the loss: then the core refuses
# the reused ids (ORDER_ID_TOO_OLD / EXISTS_WITH_DIFFERENT_FIELDS), never executes one
# twice.  2**39 ms is 17.4 years: lane 0 runs out in 2042 (beyond it the ids would enter
# the API's lane 1).
ID_EPOCH_NS = 1_735_689_600 * 10**9  # 2025-01-01T00:00:00Z
MAX_ORDER_ID = 2**40 - 1
# Orders held in memory (config ``max_orders_in_memory``): ended orders beyond this are
# evicted (served from SQLite).  Open orders are never evicted; their number is bounded
# by the open-order throttles (``max_open_orders`` per session, ``max_user_open_orders``
# per user), so the map holds at most max(this, the open orders).
DEFAULT_MAX_ORDERS_IN_MEMORY = 1_000_000
# A log row is folded into ``orders`` once it is this old (seconds): long enough that
# most orders of a busy gateway have ended by then (one row write per order), short
# enough that the fold is spread over the turns (each folds the rows that came of age).
FOLD_AGE_S = 0.5
# ... or once this many log rows wait (bounds the log and the fold of one turn).
FOLD_MAX_ROWS = 1024
# A fold asked for by commit(fold=True) (the gateway's ticker) runs once this many rows
# are of age, or the oldest is twice FOLD_AGE_S old: a fold is a transaction of its own,
# not worth it for a row or two (a quiet gateway folds about once a second).
FOLD_MIN_ROWS = 16
# The WAL is checkpointed by a thread of its own (Store.start_checkpointer) this often,
# instead of SQLite's automatic checkpoint, which runs inside the COMMIT that crosses
# 1,000 WAL pages: every ~80 orders at one order in flight, two syncs each, on the loop.
CHECKPOINT_INTERVAL_S = 0.25
# A core seq that moved on without a commit (events that changed nothing) is stored by
# the ticker's commit at least this often: the core's event log is pruned by size, so a
# gateway that only sees other doors' events must not let its resume point fall behind
# the log's retention.
SEQ_SAVE_INTERVAL_S = 1.0
# The turn file (bindings.intentfile's numbered records, the database's path plus this
# suffix): a turn that changed at most MAX_TURN_ORDERS orders and produced at most
# MAX_TURN_REPORTS sequenced messages (one order in flight) appends them with the core
# seq to it in one write before anything leaves, instead of committing (Store.log_turn);
# SQLite is filled behind it by the next commit (the ticker's within 50 ms), which
# stores the last record's number (meta ``turn_mark``).  A busier turn commits: its
# rows amortise a transaction, and journaling them too would write them twice.
TURN_SUFFIX = "-turns"
MAX_TURN_ORDERS = 8
MAX_TURN_REPORTS = 32
# A turn record's body: this head (last core seq applied, bytes of order images, stream
# chunks), the order images (pyx.gworders.ORDER_REC + pending bytes, as in the order
# log), then per session CHUNK_HEAD (key_id, first seq, messages, bytes) and the
# messages' payloads back to back.
TURN_HEAD = struct.Struct("<QII")
CHUNK_HEAD = struct.Struct("<QQII")
# The order intent file of earlier versions (new orders only, bindings.intentfile's
# plain records): read once at start if present, then removed.
LEGACY_INTENT_SUFFIX = intentfile.INTENT_SUFFIX
# SQLite's page cache of the store's connection (KiB; PRAGMA cache_size), instead of
# the default 2 MiB: an order log row is deleted ~FOLD_AGE_S after it is written, and
# deleting a blob walks its overflow pages; with 2 MiB those pages (and the streams'
# B-tree pages) had left the cache by then and were read back from the WAL, one pread
# each (~10% of the loop thread's time in the sustained run, docs/gateway.md, "tenth
# pass").  64 MiB holds more than FOLD_AGE_S of log at 300,000 orders/s (~250 B each);
# the cache fills only as pages are used.
CACHE_KIB = 65_536
# The WAL file is cut back to this size (bytes; PRAGMA journal_size_limit) when SQLite
# restarts it, instead of keeping its largest size for good: during a sustained burst
# the checkpointer never catches up with the loop's commits, so the WAL is not
# restarted until the burst ends and grew to ~740 MB at 211k orders/s (docs/gateway.md,
# "tenth pass"); a gateway that runs for days keeps only this much between bursts.
WAL_LIMIT_BYTES = 64 << 20
SET_NEXT_ORDER_ID = "INSERT OR REPLACE INTO meta (k, v) VALUES ('next_order_id', ?)"
INSERT_ORDER = "INSERT OR REPLACE INTO orders (key_id, cl_ord_id, live, rec) VALUES (?, ?, ?, ?)"
INSERT_ARCHIVE = "INSERT INTO order_archive (key_id, hi_cl, lo_cl, recs) VALUES (?, ?, ?, ?)"
_CL = operator.attrgetter("cl_ord_id")


def clock_order_id() -> int:
    """Milliseconds since ID_EPOCH (the floor of the next order id)."""
    return (time.time_ns() - ID_EPOCH_NS) // 1_000_000


# The columns of an ``orders`` table before the order log (one per Order field).
OLD_ORDER_COLUMNS = ("user_id", "order_id", "key_id", "cl_ord_id", "symbol_id", "side",
                     "ord_type", "price", "qty", "leaves", "filled", "state", "reason",
                     "pending")  # fmt: skip


def _order_of_row(row: tuple[int | str, ...]) -> Order:
    """An :class:`Order` from its row of a pre-order-log ``orders`` table
    (:data:`OLD_ORDER_COLUMNS`)."""
    v = [int(x) for x in row[:13]]
    cl = v[3] + I64  # stored signed (SQLite integers are 64-bit signed)
    return Order(v[0], v[1], v[2], cl, v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12],
                 list(str(row[13])))  # fmt: skip


def pack_orders_py(orders: list[Order]) -> bytes:
    """Reference of :func:`pyx.gworders.pack_orders`: the order log blob of ``orders``."""
    parts = []
    for o in orders:
        p = "".join(o.pending).encode("ascii")
        parts.append(
            ORDER_REC.pack(o.user_id, o.order_id, o.key_id, o.cl_ord_id, o.price, o.qty,
                           o.leaves, o.filled, o.symbol_id, o.side, o.ord_type, o.state,
                           o.reason, len(p)) + p
        )  # fmt: skip
    return b"".join(parts)


def pack_turn(core_seq: int, orders: list[Order], out: dict[int, tuple[int, list[bytes]]]) -> bytes:
    """The body of a turn record (:data:`TURN_HEAD`): the core seq, the images of
    ``orders`` (an order listed twice is packed twice: the later image wins) and each
    session's messages of ``out`` (``key_id -> (first seq, payloads)``)."""
    images = gworders.pack_orders(orders) if orders else b""
    parts = [TURN_HEAD.pack(core_seq, len(images), len(out)), images]
    for key_id, (first, ps) in out.items():
        blob = b"".join(ps)
        parts.append(CHUNK_HEAD.pack(key_id, first, len(ps), len(blob)))
        parts.append(blob)
    return b"".join(parts)


def unpack_turn(body: bytes) -> tuple[int, bytes, list[tuple[int, int, int, bytes]]]:
    """``(core seq, order images, [(key_id, first seq, last seq, payloads)])`` of a turn
    record's body (:func:`pack_turn`)."""
    core_seq, n_images, n_chunks = TURN_HEAD.unpack_from(body, 0)
    pos = TURN_HEAD.size + n_images
    images = body[TURN_HEAD.size : pos]
    chunks = []
    for _ in range(n_chunks):
        key_id, first, n, size = CHUNK_HEAD.unpack_from(body, pos)
        pos += CHUNK_HEAD.size
        chunks.append((key_id, first, first + n - 1, body[pos : pos + size]))
        pos += size
    return core_seq, images, chunks


def unpack_orders(blob: bytes) -> list[Order]:
    """The :class:`Order` images of an order log blob, in order."""
    out: list[Order] = []
    pos, size, end = 0, ORDER_REC.size, len(blob)
    while pos < end:
        (uid, oid, kid, cl, price, qty, leaves, filled, sym, side, typ, state, reason,
         n) = ORDER_REC.unpack_from(blob, pos)  # fmt: skip
        pos += size
        pending = list(blob[pos : pos + n].decode("ascii"))
        pos += n
        out.append(
            Order(uid, oid, kid, cl, sym, side, typ, price, qty, leaves, filled, state, reason,
                  pending)
        )  # fmt: skip
    return out


class Store:
    """SQLite tables plus their in-memory mirror; one transaction per loop turn."""

    def __init__(
        self, db_path: str | Path, max_orders_in_memory: int = DEFAULT_MAX_ORDERS_IN_MEMORY
    ) -> None:
        self.con: sqlite3.Connection = keys.connect(db_path)
        self.con.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self.con.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        # commit()'s statements go through one cursor (Connection.execute makes a new
        # cursor per statement)
        self._cur = self.con.cursor()
        self._migrate_orders_table()
        self.con.executescript(SCHEMA)
        self._migrate()
        self.max_orders_in_memory = max_orders_in_memory
        # Orders that ended (candidates for eviction), oldest first (pyx.gworders.pack_orders
        # lists them: the order itself, no key tuple per order), from ``_ended_head`` on:
        # a list and an index rather than a deque, so the compiled eviction takes
        # entries without a popleft call each (pyx.gworders.evict_ended).
        self._ended: list[Order | None] = []
        self._ended_head = 0
        # key_id -> the highest cl_ord_id ever stored: a higher one cannot be a duplicate
        # of an evicted order (no SQLite look-up for clients with increasing ids).
        self.max_cl: dict[int, int] = {}
        self.evicted = 0  # orders evicted from memory so far (gateway.metrics)
        # This turn's messages per session: (first seq, [length-prefixed payloads]).
        self._out: dict[int, tuple[int, list[bytes]]] = {}
        # The messages to send live once durable (Gateway.flush, take_outbox): one entry
        # per chunk of ``_out`` created, ``(key_id, first seq, payloads)``, the payloads
        # being the chunk's own list (no entry, seq int or tuple per message).  A list
        # may grow past what its chunk had when listed, only by the session's next
        # messages (log_turn and commit merge a session's chunks into its first one),
        # made durable in the same call: pyx.gwreport.session_frames sends each seq once.
        self.outbox: list[tuple[int, int, list[bytes]]] = []
        self._new: list[Order] = []
        # Orders changed this turn, in order, an order once per change (a list, not a
        # dict by key: a dict emptied every turn grew its table again, resize by resize,
        # ~340 instructions per insert at bursts of 500).  pack_orders logs each once.
        self._dirty: list[Order] = []
        self._meta: dict[str, int] = {}
        self._symbols: list[tuple[int, int]] = []
        # By Order.key (pyx.gworders.order_key: user_id << 40 | order_id, one int).
        self.orders: dict[int, Order] = {}
        # key_id -> cl_ord_id -> Order: one map per session, keyed by the client id alone
        # (no (key_id, cl_ord_id) tuple built and hashed per order).
        self.by_cl: dict[int, dict[int, Order]] = {}
        self.last_seq: dict[int, int] = {}  # key_id -> last sequenced message
        self.committed_seq: dict[int, int] = {}  # key_id -> last one committed
        self.quote_asset: dict[int, int] = {}
        self.last_core_seq = 0
        # last_core_seq moved on but is not stored yet: stored with the next commit
        # that writes anything (set_core_seq)
        self._core_seq_unsaved = False
        self._seq_saved_s = time.monotonic()  # when last_core_seq was last written
        self._checkpointer: _Checkpointer | None = None
        self.next_order_id = 1
        # key_id -> first sequence number still stored (absent: 1, nothing removed)
        self.floor: dict[int, int] = {}
        self._prune_cursor = 0  # round-robin position of prune_streams
        # Order log rows not folded into ``orders`` yet, oldest first:
        # (row id, monotonic time written, the orders whose images it holds).
        self._log: deque[tuple[int, float, list[Order]]] = deque()
        self._log_id = 0  # id of the last log row written
        self.folded = 0  # order images folded so far (into ``orders`` or the archive)
        self.archived = 0  # of which into the archive
        # key_id -> the highest client id in the session's archive rows (a new archive
        # row starts above it; ended orders at or below it go to ``orders``).
        self._archived_hi: dict[int, int] = {}
        # What turns appended to the turn file (log_turn) and no commit has filled into
        # SQLite yet: orders created, orders changed, messages per session (first
        # seq, payloads); the next commit writes them with the current turn's.
        self._jnew: list[Order] = []
        self._jdirty: list[Order] = []
        self._jout: dict[int, tuple[int, list[bytes]]] = {}
        self._jrecs = 0  # turn records appended since the last commit
        self._jfirst_s = 0.0  # monotonic time of the first of them
        # commit(fold=True) (the gateway's ticker) fills the turn file's records into
        # SQLite once the oldest is this old (config ``turn_fill_ms``; 0: every tick).
        self.fill_after_s = 0.0
        self.recovered_turns = 0  # turn records applied at start (tests, logs)
        # The turn file; none for an in-memory database (every turn commits).
        db = str(db_path)
        self._turns: intentfile.IntentFile | None = None
        if db != ":memory:" and not db.startswith("file:"):
            self._turns = intentfile.IntentFile(db, TURN_SUFFIX)
            self._turns.reset(self._recover_turns(self._turns))
        self._fold_log()
        if self._turns is not None:
            legacy = intentfile.IntentFile(db)
            if os.path.exists(legacy.path):
                self._recover_intents(legacy)
                os.remove(legacy.path)
        self._load()

    @property
    def turn_writes(self) -> int:
        """Turns written to the turn file instead of committed (:meth:`log_turn`)."""
        return 0 if self._turns is None else self._turns.writes

    def _recover_turns(self, turns: intentfile.IntentFile) -> int:
        """At start, before the order log is folded: the turn records past SQLite's mark
        (``meta.turn_mark``; a torn or corrupt tail ends them) are filled into SQLite in
        one transaction, as the commit that never ran would have: their order images as
        one order log row (folded next, latest image wins), their messages as stream
        chunks, the core seq of the last one and the new mark.  Returns the mark."""
        row = self.con.execute("SELECT v FROM meta WHERE k = 'turn_mark'").fetchone()
        mark = int(row[0]) if row else 0
        records = turns.read_records(mark)
        if not records:
            return mark
        images: list[bytes] = []
        chunks: list[tuple[int, int, int, bytes, int]] = []
        core_seq = 0
        now_ms = time.time_ns() // 1_000_000
        for _, body in records:
            seq, blob, parts = unpack_turn(body)
            core_seq = max(core_seq, seq)
            images.append(blob)
            chunks.extend((k, last, first, payloads, now_ms) for k, first, last, payloads in parts)
        row = self.con.execute("SELECT v FROM meta WHERE k = 'last_core_seq'").fetchone()
        core_seq = max(core_seq, int(row[0]) if row else 0)
        mark = records[-1][0]
        con = self.con
        con.execute("BEGIN")
        blob = b"".join(images)
        if blob:
            con.execute(
                "INSERT INTO order_log (id, recs)"
                " VALUES ((SELECT IFNULL(MAX(id), 0) + 1 FROM order_log), ?)",
                (blob,),
            )
        con.executemany(
            "INSERT OR REPLACE INTO out_chunks (key_id, last_seq, first_seq, payloads, ts_ms)"
            " VALUES (?, ?, ?, ?, ?)",
            chunks,
        )
        con.executemany(
            "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
            [("last_core_seq", core_seq), ("turn_mark", mark)],
        )
        con.execute("COMMIT")
        self.recovered_turns = len(records)
        return mark

    def _recover_intents(self, intent: intentfile.IntentFile) -> None:
        """At start: the orders of the intent file that never reached SQLite (a kill
        between the write and the commit after the send) are stored now, pending
        (their NEW may have reached the core: recovery probes them), and the id
        counter goes past them; orders SQLite has already (in ``orders`` or the
        archive) are left as stored."""
        orders = unpack_orders(intent.read(ORDER_REC))
        # An order committed since may have ended and been folded into the archive
        # (not ``orders``): re-storing its intent image would shadow its final state.
        orders = [o for o in orders if self._archived(o.key_id, o.cl_ord_id) is None]
        if orders:
            row = self.con.execute("SELECT v FROM meta WHERE k = 'next_order_id'").fetchone()
            next_id = max([int(row[0]) if row else 1] + [o.order_id + 1 for o in orders])
            con = self.con
            con.execute("BEGIN")
            con.executemany(INSERT_ORDER.replace("OR REPLACE", "OR IGNORE"),
                            [self._row(o) for o in orders])  # fmt: skip
            con.execute(SET_NEXT_ORDER_ID, (next_id,))
            con.execute("COMMIT")

    def _migrate_orders_table(self) -> None:
        """Convert an ``orders`` table of one column per field (before the order log;
        keyed by ``(user_id, order_id)`` before the bounded map, then by
        ``(key_id, cl_ord_id)``) to rows of images, in one transaction."""
        cols = [str(r[1]) for r in self.con.execute("PRAGMA table_info(orders)")]
        if "pending" not in cols:
            return
        con = self.con
        con.execute("BEGIN")
        con.execute("ALTER TABLE orders RENAME TO orders_old")
        con.execute("CREATE TABLE orders " + ORDERS_COLUMNS)
        names = ", ".join(OLD_ORDER_COLUMNS)
        rows = [self._row(_order_of_row(r)) for r in con.execute(f"SELECT {names} FROM orders_old")]
        con.executemany(INSERT_ORDER, rows)
        con.execute("DROP TABLE orders_old")
        con.execute("COMMIT")

    def _migrate(self) -> None:
        """Add ``out_chunks.ts_ms`` to a database made before retention existed.

        Chunks stored before the upgrade count as written now (their age is unknown).
        """
        cols = {str(r[1]) for r in self.con.execute("PRAGMA table_info(out_chunks)")}
        if "ts_ms" not in cols:
            self.con.execute("BEGIN")
            self.con.execute("ALTER TABLE out_chunks ADD COLUMN ts_ms INTEGER NOT NULL DEFAULT 0")
            self.con.execute("UPDATE out_chunks SET ts_ms = ?", (time.time_ns() // 1_000_000,))
            self.con.execute("COMMIT")

    def _fold_log(self) -> None:
        """At start: fold the whole order log into ``orders`` (latest image of each
        order wins), in one transaction."""
        latest: dict[tuple[int, int], Order] = {}
        last = 0
        for rid, blob in self.con.execute("SELECT id, recs FROM order_log ORDER BY id"):
            last = int(rid)
            for o in unpack_orders(bytes(blob)):
                latest[(o.key_id, o.cl_ord_id)] = o
        if not last:
            return
        # The log's ids leave with it: the counter goes past them (see _fold).
        row = self.con.execute("SELECT v FROM meta WHERE k = 'next_order_id'").fetchone()
        next_id = max([int(row[0]) if row else 1] + [o.order_id + 1 for o in latest.values()])
        con = self.con
        con.execute("BEGIN")
        con.executemany(INSERT_ORDER, [self._row(o) for o in latest.values()])
        con.execute("DELETE FROM order_log")
        con.execute(SET_NEXT_ORDER_ID, (next_id,))
        con.execute("COMMIT")

    def _load(self) -> None:
        for k, v in self.con.execute("SELECT k, v FROM meta"):
            if k == "last_core_seq":
                self.last_core_seq = int(v)
            elif k == "next_order_id":
                self.next_order_id = int(v)
        self.next_order_id = max(self.next_order_id, clock_order_id())
        for key_id, last in self.con.execute(
            "SELECT key_id, MAX(last_seq) FROM out_chunks GROUP BY key_id"
        ):
            self.last_seq[int(key_id)] = int(last)
        for key_id, first_kept in self.con.execute("SELECT key_id, first_kept FROM stream_floor"):
            self.floor[int(key_id)] = int(first_kept)
            # A session whose every message was removed still keeps its numbering.
            self.last_seq[int(key_id)] = max(self.last_seq.get(int(key_id), 0), int(first_kept) - 1)
        self.committed_seq = dict(self.last_seq)
        for sid, qa in self.con.execute("SELECT symbol_id, quote_asset_id FROM symbols"):
            self.quote_asset[int(sid)] = int(qa)
        for key_id, cl in self.con.execute(
            "SELECT key_id, MAX(cl_ord_id) FROM orders GROUP BY key_id"
        ):
            self.max_cl[int(key_id)] = int(cl) + I64
        for key_id, hi in self.con.execute(
            "SELECT key_id, MAX(hi_cl) FROM order_archive GROUP BY key_id"
        ):
            kid = int(key_id)
            self._archived_hi[kid] = int(hi) + I64
            self.max_cl[kid] = max(self.max_cl.get(kid, 0), int(hi) + I64)
        # Only orders that can still change live in memory (the bounded map).
        for (rec,) in self.con.execute("SELECT rec FROM orders WHERE live = 1"):
            o = unpack_orders(bytes(rec))[0]
            o.stored = True  # its later images replace this row
            self.orders[o.key] = o
            self.by_cl.setdefault(o.key_id, {})[o.cl_ord_id] = o

    # ----------------------------------------------------------- transactions
    # Writes are buffered during a loop turn and made durable together before anything
    # of the turn leaves: by log_turn (one write to the turn file) or by commit() (one
    # transaction, executemany), which also fills what log_turn wrote into SQLite.

    def log_turn(self) -> bool:
        """Make this turn's changes durable the cheap way, before anything of the turn
        leaves: when the turn changed at most :data:`MAX_TURN_ORDERS` orders, produced
        at most :data:`MAX_TURN_REPORTS` messages and nothing else (one order in
        flight: its new order; or its acknowledgement), its order images, messages and
        the last core seq applied are appended to the turn file as one record, in one
        ``write`` (durable across a process kill, as a WAL commit at
        ``synchronous=NORMAL``, which the gateway uses: both are in the kernel's page
        cache when the call returns) instead of a SQLite commit.  The next
        :meth:`commit` fills them into SQLite (the gateway's ticker within 50 ms; a
        busier turn's commit sooner) with the record's number as the mark; until then
        a replay reads the messages from memory (:meth:`stream`) and a restart applies
        the records past the mark (:meth:`_recover_turns`).  The file is emptied once
        it holds :data:`INTENT_TRUNCATE_BYTES` after a commit, and bounded: once it
        holds ``INTENT_MAX_BYTES`` the turn commits.  Returns True when the turn is
        durable (also when there was nothing to store), False, having done nothing,
        when it needs a commit instead."""
        new, dirty, out = self._new, self._dirty, self._out
        if self._meta or self._symbols:
            return False
        if not (new or dirty or out):
            return True  # a core seq alone waits for the next write (set_core_seq)
        turns = self._turns
        if turns is None or turns.full or len(new) + len(dirty) > MAX_TURN_ORDERS:
            return False
        msgs = 0
        for chunk in out.values():
            msgs += len(chunk[1])
        if msgs > MAX_TURN_REPORTS:
            return False
        changed = new + dirty if dirty else new
        turns.append_record(pack_turn(self.last_core_seq, changed, out))
        now = time.monotonic()
        if not self._jrecs:
            self._jfirst_s = now
        self._jrecs += 1
        self._seq_saved_s = now  # the core seq is in the record (see SEQ_SAVE_INTERVAL_S)
        # Kept for the commit that fills SQLite; the turn's own buffers are emptied in
        # place (the compiled report path holds the dicts, pyx.gwreport._Sink).
        if new:
            self._jnew.extend(new)
            new.clear()
        if dirty:
            self._jdirty.extend(dirty)
            dirty.clear()
        if out:
            jout, last_seq, durable = self._jout, self.last_seq, self.committed_seq
            for key_id, chunk in out.items():
                have = jout.get(key_id)
                if have is None:
                    jout[key_id] = chunk
                else:
                    have[1].extend(chunk[1])
                durable[key_id] = last_seq[key_id]
            out.clear()
        return True

    def commit(self, fold: bool = False) -> None:
        """Write this turn's changes in one transaction (no-op if none), with what the
        turn file holds (:meth:`log_turn`: filled into SQLite, with the last record's
        number as ``meta.turn_mark``, so a restart applies only the records after it).

        ``fold``: the ticker's call: fill the turn file's records only once the oldest
        is :attr:`fill_after_s` old (or with anything else that commits), and fold
        the order log rows older than :data:`FOLD_AGE_S` into ``orders``, once there
        are enough (:data:`FOLD_MIN_ROWS`), so the fold stays off the turns that
        acknowledge orders; without it only the rows beyond :data:`FOLD_MAX_ROWS` are
        folded.
        """
        now = time.monotonic()
        log = self._log
        aged = (
            fold
            and bool(log)
            and (
                log[0][1] < now - 2 * FOLD_AGE_S
                or (len(log) >= FOLD_MIN_ROWS and log[FOLD_MIN_ROWS - 1][1] < now - FOLD_AGE_S)
            )
        )
        # (A gateway told to fill the turn file less often writes the seq no more often.)
        seq_every = max(SEQ_SAVE_INTERVAL_S, self.fill_after_s)
        seq_due = fold and self._core_seq_unsaved and now - self._seq_saved_s >= seq_every
        # Turn file records are filled in by every commit that runs, and make one run
        # (fold=False: a busy turn, close) or, from the ticker, once fill_after_s old.
        jrecs = self._jrecs
        fill = jrecs and (not fold or now - self._jfirst_s >= self.fill_after_s)
        if not (
            self._out
            or self._new
            or self._dirty
            or self._meta
            or self._symbols
            or aged
            or seq_due
            or fill
        ):
            return
        if self._core_seq_unsaved:
            self._meta["last_core_seq"] = self.last_core_seq
            self._core_seq_unsaved = False
            self._seq_saved_s = now
        if jrecs:
            assert self._turns is not None
            # The turn records this transaction fills into SQLite (with what they hold).
            self._meta["turn_mark"] = self._turns.last_no
        out = self._out
        if self._jout:
            # Messages of the turn file first, then this turn's: one chunk per session.
            out = self._jout
            for key_id, chunk in self._out.items():
                have = out.get(key_id)
                if have is None:
                    out[key_id] = chunk
                else:
                    have[1].extend(chunk[1])
        con = self._cur
        con.execute("BEGIN")
        # An order created and changed since (in this turn or the turn file's) is listed
        # twice: pack_orders logs it once, with its latest values (its second place in
        # ``changed`` is skipped there, and by the fold: Order.log_id).
        changed = self._new + self._dirty if self._new or self._dirty else []
        if self._jnew or self._jdirty:
            changed = self._jnew + self._jdirty + changed
        if changed:
            lid = self._log_id + 1
            # Also marks the orders' log row (Order.log_id) and lists the ones that ended
            # (_ended, for eviction; re-checked there, so listing before COMMIT is safe).
            blob = gworders.pack_orders(changed, lid, self._ended)
            con.execute("INSERT INTO order_log (id, recs) VALUES (?, ?)", (lid, blob))
            self._log_id = lid
            self._log.append((lid, now, changed))
        if self._log:
            self._fold(now - FOLD_AGE_S if fold else 0.0, 0)
        if out:
            now_ms = time.time_ns() // 1_000_000
            con.executemany(
                "INSERT INTO out_chunks (key_id, last_seq, first_seq, payloads, ts_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (k, first + len(ps) - 1, first, b"".join(ps), now_ms)
                    for k, (first, ps) in out.items()
                ],
            )
        if self._symbols:
            con.executemany("INSERT OR REPLACE INTO symbols VALUES (?, ?)", self._symbols)
        if self._meta:
            con.executemany("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", self._meta.items())
        con.execute("COMMIT")
        if jrecs:
            # The turn file's records were in this transaction: what the file holds is
            # stale now (emptied once big enough).
            self._jrecs = 0
            self._jnew.clear()
            self._jdirty.clear()
            self._jout.clear()
            if self._turns is not None:
                self._turns.committed()
        for k in self._out:
            self.committed_seq[k] = self.last_seq[k]
        self._out.clear()
        self._new.clear()
        self._dirty.clear()
        self._meta.clear()
        self._symbols.clear()
        if len(self.orders) > self.max_orders_in_memory:
            self._evict()

    def _fold(self, before: float, through_id: int) -> None:
        """Fold the order log rows written before monotonic time ``before`` or with an id
        up to ``through_id`` (and the oldest beyond :data:`FOLD_MAX_ROWS`): each order
        whose latest image is in them is written to ``orders``, or, if it ended and was
        never folded before, to its session's archive row of this fold; the log rows
        are deleted.  Runs inside the caller's transaction (the orders' state is the
        committed one)."""
        log = self._log
        rows: list[tuple[int, int, int, Any]] = []
        runs: dict[int, list[Order]] = {}
        cut = 0
        while log and (log[0][1] < before or log[0][0] <= through_id or len(log) > FOLD_MAX_ROWS):
            cut, _, orders = log.popleft()
            # Each order whose latest image is this row (reference: fold_py).
            gworders.fold_rows(orders, cut, rows, runs)
        if not cut:
            return
        archived = self.archived
        archive = [self._archive_row(key_id, run, rows) for key_id, run in runs.items()]
        archive_rows = [a for a in archive if a is not None]
        if archive_rows:
            self.con.executemany(INSERT_ARCHIVE, archive_rows)
        if rows:
            self.con.executemany(INSERT_ORDER, rows)
        self.folded += len(rows) + self.archived - archived
        self.con.execute("DELETE FROM order_log WHERE id <= ?", (cut,))
        # The counter is stored when order rows leave the log, not with each new order
        # (one row less in the commit before each NEW leaves): every id ever used is in
        # an order row of the log (a restart takes the counter past them, _fold_log)
        # or was folded, and then this row is at least one past it.
        self.con.execute(SET_NEXT_ORDER_ID, (self.next_order_id,))

    def _archive_row(
        self, key_id: int, run: list[Order], rows: list[tuple[int, int, int, Any]]
    ) -> tuple[int, int, int, bytes] | None:
        """The archive row of a session's ended orders folded now (``run``), sorted by
        client id.  Those at or below the session's archived range go to ``rows``
        (``orders``) instead, so the session's archive rows never overlap; returns None
        if none is left."""
        gworders.sort_by_cl(run)  # = run.sort(key=_CL), checked in C when in order
        top = self._archived_hi.get(key_id, 0)
        k = bisect.bisect_right(run, top, key=_CL)
        rows.extend(gworders.order_row(o) for o in run[:k])
        if k == len(run):
            return None
        lo, hi = run[k].cl_ord_id, run[-1].cl_ord_id
        self._archived_hi[key_id] = hi
        self.archived += len(run) - k
        return (key_id, hi - I64, lo - I64, gworders.pack_orders(run[k:]))

    def _archived(self, key_id: int, cl_ord_id: int) -> Order | None:
        """An archived order's image (a copy), or None: the one archive row whose range
        can hold ``cl_ord_id``, searched by client id."""
        row = self.con.execute(
            "SELECT lo_cl, recs FROM order_archive WHERE key_id = ? AND hi_cl >= ?"
            " ORDER BY hi_cl LIMIT 1",
            (key_id, cl_ord_id - I64),
        ).fetchone()
        if row is None or int(row[0]) + I64 > cl_ord_id:
            return None
        images = unpack_orders(bytes(row[1]))
        i = bisect.bisect_left(images, cl_ord_id, key=_CL)
        return images[i] if i < len(images) and images[i].cl_ord_id == cl_ord_id else None

    @staticmethod
    def fold_py(
        orders: list[Order],
        log_id: int,
        rows: list[Any],
        runs: dict[int, list[Order]] | None = None,
    ) -> None:
        """Reference of :func:`pyx.gworders.fold_rows`."""
        for o in orders:
            if o.log_id == log_id:  # not changed again since: this is its image
                o.log_id = 0
                if runs is not None and not o.stored and not o.pending and o.state in DONE_STATES:
                    runs.setdefault(o.key_id, []).append(o)
                else:
                    rows.append(Store._row(o))
                o.stored = True

    def _evict(self) -> None:
        """Drop ended orders (committed, no request in flight) from memory, oldest-ended
        first, until the map is within its bound or no ended order is left
        (:func:`pyx.gworders.evict_ended`, compiled: once the map is full every order
        taken in evicts one).  An order whose latest image is still only in the order
        log is folded first."""
        while True:
            head, n, log_id = gworders.evict_ended(
                self._ended, self._ended_head, self.orders, self.by_cl, self.max_orders_in_memory
            )
            self._ended_head = head
            self.evicted += n
            if not log_id:
                break
            self.con.execute("BEGIN")
            self._fold(0.0, log_id)
            self.con.execute("COMMIT")
        self._compact_ended()

    def _compact_ended(self) -> None:
        """Keep the eviction queue bounded: taken entries leave once they are the
        larger part of the list (one memmove, amortised), and entries of orders evicted
        or listed again leave once the queue is twice the map."""
        ended, head, orders = self._ended, self._ended_head, self.orders
        if head and head * 2 >= len(ended):
            del ended[:head]
            self._ended_head = head = 0
        if len(ended) > 2 * len(orders) + 1024:
            self._ended = [o for o in ended[head:] if o is not None and orders.get(o.key) is o]
            self._ended_head = 0

    @staticmethod
    def evict_py(
        ended: list[Order | None],
        head: int,
        orders: dict[int, Order],
        by_cl: dict[int, dict[int, Order]],
        bound: int,
    ) -> tuple[int, int, int]:
        """Reference of :func:`pyx.gworders.evict_ended` (the Python loop it replaced,
        with taken entries set to None)."""
        evicted = 0
        while head < len(ended) and len(orders) > bound:
            o = ended[head]
            assert o is not None
            key = o.key
            if orders.get(key) is not o:
                ended[head] = None
                head += 1
                continue  # already gone (listed more than once)
            if o.log_id:
                return head, evicted, o.log_id
            ended[head] = None
            head += 1
            if o.state not in DONE_STATES or o.pending:
                continue  # active again: listed anew when it ends
            del by_cl[o.key_id][o.cl_ord_id]
            del orders[key]
            evicted += 1
        return head, evicted, 0

    def find_cl(self, key_id: int, cl_ord_id: int) -> Order | None:
        """The session's order with this client id: from memory or, once evicted (ended
        orders), read from SQLite (a copy, not put back in memory); None if unknown."""
        m = self.by_cl.get(key_id)
        o = m.get(cl_ord_id) if m is not None else None
        if o is not None or cl_ord_id > self.max_cl.get(key_id, 0):
            return o
        row = self.con.execute(
            "SELECT rec FROM orders WHERE key_id = ? AND cl_ord_id = ?", (key_id, cl_ord_id - I64)
        ).fetchone()
        o = (
            unpack_orders(bytes(row[0]))[0]
            if row is not None
            else self._archived(key_id, cl_ord_id)
        )
        if o is not None:
            o.stored = True  # read from storage: a later image of it goes to ``orders``
        return o

    def known_cls(self, key_id: int, cls: list[int]) -> set[int]:
        """Which of ``cls`` the session has used (memory, then SQLite for ids at or below
        its highest stored one: evicted orders)."""
        m = self.by_cl.get(key_id, {})
        known = {cl for cl in cls if cl in m}
        top = self.max_cl.get(key_id, 0)
        ask = [cl - I64 for cl in cls if cl <= top and cl not in known]
        for i in range(0, len(ask), 500):
            part = ask[i : i + 500]
            marks = ",".join("?" * len(part))
            q = f"SELECT cl_ord_id FROM orders WHERE key_id = ? AND cl_ord_id IN ({marks})"
            known.update(int(r[0]) + I64 for r in self.con.execute(q, (key_id, *part)))
        archived = [cl for cl in cls if cl <= top and cl not in known]
        known.update(cl for cl in archived if self._archived(key_id, cl) is not None)
        return known

    @staticmethod
    def _row(o: Order) -> tuple[int, int, int, bytes]:
        """The ``orders`` row of ``o`` (reference of the compiled fold's rows)."""
        live = 1 if o.pending or o.state in OPEN_STATES else 0
        return (o.key_id, o.cl_ord_id - I64, live, pack_orders_py([o]))

    def close(self) -> None:
        """Commit (with the last core seq), fold the whole order log (a clean stop
        leaves it empty), stop the checkpointer and close."""
        if self._core_seq_unsaved:
            self._meta["last_core_seq"] = self.last_core_seq
            self._core_seq_unsaved = False
        self.commit()
        if self._log:
            self.con.execute("BEGIN")
            self._fold(0.0, self._log_id)
            self.con.execute("COMMIT")
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._turns is not None:
            self._turns.close()
        self.con.close()

    def start_checkpointer(self, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        """Checkpoint the WAL from a thread of its own every ``interval_s`` instead of
        in the COMMIT that crosses SQLite's threshold (see :data:`CHECKPOINT_INTERVAL_S`):
        the copy and its syncs run while the loop goes on (SQLite lets one writer and
        a checkpointer work at once in WAL mode, and Python's sqlite3 releases the GIL
        while a statement runs).  Checkpoints only move committed pages into the
        database file: what a kill -9 leaves is the same either way."""
        if self._checkpointer is not None:
            return
        path = next(str(r[2]) for r in self.con.execute("PRAGMA database_list") if r[1] == "main")
        self.con.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = _Checkpointer(path, interval_s)

    # ----------------------------------------------------------------- writes

    def append(self, key_id: int, payload: bytes) -> int:
        """The session's next sequenced message (stored at commit); returns its seq."""
        seq = self.last_seq.get(key_id, 0) + 1
        self.last_seq[key_id] = seq
        chunk = self._out.get(key_id)
        if chunk is None:
            self._out[key_id] = chunk = (seq, [])
            self.outbox.append((key_id, seq, chunk[1]))
        chunk[1].append(payload)
        return seq

    def take_outbox(self) -> list[tuple[int, int, list[bytes]]]:
        """The messages appended since the last call (:attr:`outbox`), to send live
        once they are durable; the store starts a new list."""
        outbox, self.outbox = self.outbox, []
        return outbox

    def new_order(self, o: Order) -> None:
        """Give ``o`` the next core order id and store it (pending NEW).

        Raises OverflowError once ids reach 2**40 (see ID_EPOCH_NS).
        """
        oid = max(self.next_order_id, clock_order_id())
        if oid > MAX_ORDER_ID:
            raise OverflowError("core order ids exhausted (2**40)")
        o.order_id = oid
        self.next_order_id = oid + 1  # stored with the order's row (see _fold)
        o.pending = ["N"]
        self.orders[o.key] = o
        self.by_cl.setdefault(o.key_id, {})[o.cl_ord_id] = o
        if o.cl_ord_id > self.max_cl.get(o.key_id, 0):
            self.max_cl[o.key_id] = o.cl_ord_id
        self._new.append(o)

    def reserve_ids(self, n: int) -> int:
        """The first of ``n`` consecutive new core order ids (see ID_EPOCH_NS)."""
        oid = max(self.next_order_id, clock_order_id())
        if oid + n - 1 > MAX_ORDER_ID:
            raise OverflowError("core order ids exhausted (2**40)")
        self.next_order_id = oid + n  # stored with the orders' rows (see _fold)
        return oid

    def add_orders(self, orders: list[Order]) -> None:
        """Store new orders that already have their ids (:meth:`reserve_ids`)."""
        by_id, by_cl = self.orders, self.by_cl
        top = 0
        for o in orders:
            by_id[o.key] = o
            by_cl.setdefault(o.key_id, {})[o.cl_ord_id] = o
            if o.cl_ord_id > top:
                top = o.cl_ord_id
        if orders and top > self.max_cl.get(orders[0].key_id, 0):
            self.max_cl[orders[0].key_id] = top  # one session's orders (Gateway.enter_orders)
        self._new.extend(orders)

    def enter_run(
        self, recs: bytes, idx: list[int] | None, user_id: int, key_id: int, first_id: int,
        top_cl: int, tags: list[tuple[int, int, str]] | None = None,
    ) -> list[Order]:  # fmt: skip
        """New pending orders for the ENTER_ORDER records ``recs`` of one session at the
        indexes ``idx`` (None: all; ``top_cl`` the highest client id among them), with
        ids from ``first_id`` (:meth:`reserve_ids`), built and put in the maps in compiled
        code (:func:`pyx.gwentry.order_objects`): the same as :meth:`add_orders`.  With
        ``tags``, each order's command tag ``(user_id, order_id, "N")`` is appended to it
        in the same pass."""
        orders = gwentry.order_objects(
            Order, recs, idx, user_id, key_id, first_id, STATE_PENDING, "N", self.orders,
            self.by_cl.setdefault(key_id, {}), tags,
        )  # fmt: skip
        if orders and top_cl > self.max_cl.get(key_id, 0):
            self.max_cl[key_id] = top_cl
        self._new.extend(orders)
        return orders

    def save_order(self, o: Order) -> None:
        """Write back an order's mutable columns (at commit)."""
        self._dirty.append(o)

    def set_quote_asset(self, symbol_id: int, quote_asset_id: int) -> None:
        """Remember a symbol's quote asset (the asset its fees are paid in)."""
        self.quote_asset[symbol_id] = quote_asset_id
        self._symbols.append((symbol_id, quote_asset_id))

    def set_core_seq(self, seq: int) -> None:
        """The last core event seq applied, stored in the same transaction as its
        effects: the next commit that writes anything.  A turn whose events changed
        nothing (events of other doors' orders, an ACCEPTED already reported from
        the core's reply) commits nothing; after a kill -9 the gateway resumes at the
        stored seq and applies those events again, to the same stored state, where
        they change nothing again: each event's effects are still applied once."""
        self.last_core_seq = seq
        self._core_seq_unsaved = True

    def prune_streams(
        self,
        retain_msgs: int,
        retain_ms: int,
        now_ms: int,
        skip: set[int],
        max_chunks: int,
        max_keys: int = 1 << 30,
    ) -> int:
        """Remove each session's oldest stored chunks beyond the retention bounds.

        A chunk goes when all its messages are older than the newest ``retain_msgs``
        of its session, or when it was committed more than ``retain_ms`` before
        ``now_ms`` (0 disables a bound).  Whole chunks only, oldest first, at most
        ``max_chunks`` per session per call, and ``max_keys`` sessions per call, taken
        round-robin (bounded work: the caller repeats it).  Sessions in ``skip``
        (being replayed right now) are left alone.  The new first retained seq of each
        session is stored in the same transaction.

        Returns the number of messages removed.
        """
        if retain_msgs <= 0 and retain_ms <= 0:
            return 0
        count_cut = {k: last - retain_msgs for k, last in self.committed_seq.items()}
        age_cut = now_ms - retain_ms
        cuts: list[tuple[int, int]] = []
        con = self.con
        keys_all = sorted(self.committed_seq)
        start = self._prune_cursor % len(keys_all) if keys_all else 0
        batch = (keys_all[start:] + keys_all[:start])[:max_keys]
        self._prune_cursor = start + len(batch)
        for key_id in batch:
            if key_id in skip:
                continue
            cut = 0
            for last, ts in con.execute(
                "SELECT last_seq, ts_ms FROM out_chunks WHERE key_id = ? ORDER BY last_seq LIMIT ?",
                (key_id, max_chunks),
            ):
                by_count = retain_msgs > 0 and last <= count_cut[key_id]
                if not (by_count or (retain_ms > 0 and ts < age_cut)):
                    break
                cut = int(last)
            if cut:
                cuts.append((key_id, cut))
        if not cuts:
            return 0
        removed = 0
        con.execute("BEGIN")
        try:
            for key_id, cut in cuts:
                con.execute(
                    "DELETE FROM out_chunks WHERE key_id = ? AND last_seq <= ?", (key_id, cut)
                )
                removed += cut + 1 - self.floor.get(key_id, 1)
            con.executemany(
                "INSERT OR REPLACE INTO stream_floor (key_id, first_kept) VALUES (?, ?)",
                [(k, cut + 1) for k, cut in cuts],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        for key_id, cut in cuts:
            self.floor[key_id] = cut + 1
        return removed

    # ------------------------------------------------------------------ reads

    def first_kept(self, key_id: int) -> int:
        """The session's oldest sequence number still stored (1 if none was removed)."""
        return self.floor.get(key_id, 1)

    def stream(self, key_id: int, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Stored messages of a session from ``from_seq`` on (at most ``limit``): from
        SQLite, then those only in the turn file yet (:meth:`log_turn`, kept in memory
        until the next commit fills them in)."""
        out = self._stream_sqlite(key_id, from_seq, limit)
        held = self._jout.get(key_id)
        if held is None or len(out) >= limit:
            return out
        seq = held[0]
        for p in held[1]:
            if seq >= from_seq:
                out.append((seq, p))
                if len(out) >= limit:
                    break
            seq += 1
        return out

    def _stream_sqlite(self, key_id: int, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Messages of a session in ``out_chunks`` from ``from_seq`` on (at most ``limit``)."""
        out: list[tuple[int, bytes]] = []
        rows = self.con.execute(
            "SELECT first_seq, payloads FROM out_chunks WHERE key_id = ? AND last_seq >= ?"
            " ORDER BY last_seq",
            (key_id, from_seq),
        )
        for first, blob in rows:
            pos, seq, end = 0, int(first), len(blob)
            while pos < end:
                n = PAYLOAD_LEN[blob[pos]]
                if seq >= from_seq:
                    out.append((seq, bytes(blob[pos : pos + n])))
                    if len(out) >= limit:
                        return out
                pos += n
                seq += 1
        return out

    def open_orders(self, key_id: int) -> list[Order]:
        """The session's pending or resting orders."""
        return [o for o in self.by_cl.get(key_id, {}).values() if o.is_open]


class _Checkpointer:
    """A daemon thread with its own connection to the database that runs
    ``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval_s`` until :meth:`stop`
    (:meth:`Store.start_checkpointer`).  PASSIVE never waits for the writer: a
    checkpoint that cannot copy everything copies what it can, the next one the rest."""

    def __init__(self, path: str, interval_s: float) -> None:
        self.path = path
        self.interval_s = interval_s
        self.checkpoints = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        con = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error:
                    self.errors += 1  # busy now: the next interval tries again
        finally:
            con.close()

    def stop(self) -> None:
        """End the thread (waits for a checkpoint under way)."""
        self._stop.set()
        self._thread.join()
