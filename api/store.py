"""The API's durable state: orders, trades, assets, symbols and the last core seq.

Every order of every user is built from the core's events (``ACCEPTED``, ``TRADE``,
``CANCELED``, ...), so the state is rebuildable from the core alone: delete the
database and the API replays the event log from seq 1.  Orders entered through this
API carry what the events do not (the client order id, time in force, post-only,
stop price, quoteOrderQty), and a retry with a client's own id must have one
effect, also across a kill -9: before the NEW leaves for the core the order is made
durable, either in the turn's transaction (when the turn commits anyway) or by
appending its image to the order intent file (:mod:`bindings.intentfile`: one
``write`` instead of a transaction); its row then reaches SQLite with the next
grouped commit.  At start the file's images of orders SQLite lacks are stored as
they would have been (``PENDING_NEW``: :meth:`api.core.CoreLink.start` settles them
against the core) and the id counter moves past them
(:meth:`Store._recover_intents`).  Images older than the mark
``meta.intent_through`` (the highest order id in the file when a transaction stored
the file's orders) are stale and ignored: their orders are in SQLite, or were
refused and deleted.  A generated client id is also a keyed hash of the order
(:mod:`api.clientids`), so an order whose image was lost is still re-created with it
(:meth:`Store.lost_client_id`).
The follower's effects are committed grouped (:mod:`api.core`), in one transaction
together with the last core seq applied (``meta.last_core_seq``): exactly once
across kill -9 and duplicate delivery.

Order ids (docs/api.md, "Order ids"): core order ids are per user and shared with
the gateway.  The gateway's ids are milliseconds since 2025 (or its counter, which
runs ahead only under load) and stay below 2**39 until 2042; the API's ids are
``API_ID_BASE + max(counter + 1, ms since 2025)``: bit 39 set (the counter is
reserved ``ID_RESERVE`` ids ahead in ``meta.next_order_id``, written before an id
beyond the last reservation leaves: after a restart the counter starts past every id
that may have been used, without a write per order).  So the two never
pick the same id for one user, and bit 39 is the core's order-id lane
(``pyx.core.ORDER_ID_LANE_SHIFT``): the core judges each door's ids against that door's
own highest and forgotten ids, so however many orders a user enters here, its gateway
orders are never refused ``ORDER_ID_TOO_OLD`` (nor the reverse).  Open orders live in
memory (:attr:`Store.open`); ended ones only in SQLite.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.clientids import ClientIds
from bindings.intentfile import IntentFile
from gateway.store import clock_order_id
from pyx.apistore import ClientIdFilter as ClientIdFilter  # re-exported: Store's filter
from pyx.apistore import OrderEntry

log = logging.getLogger("bursa.api")

API_ID_BASE = 1 << 39
# API order ids reserved per write of meta.next_order_id (the unused rest is skipped
# after a restart: 100 s worth of the clock's milliseconds, of the lane's 17 years).
ID_RESERVE = 100_000
# SQLite's page cache (KiB): the client id index is written at random places, so
# its pages are read back often; from the kernel's cache that is a pread each.
CACHE_KIB = 65_536
CHECKPOINT_INTERVAL_S = 1.0
# Follower rows (orders, trades, deletions, other statements) buffered at most before
# a commit is forced (api.core commits them every ``commit_interval_ms`` otherwise).
MAX_PENDING_ROWS = 4096
# The key of generated clientOrderIds (client_id_digest), made once per database.
CLIENT_ID_KEY_BYTES = 32
MAX_ORDER_ID = (1 << 40) - 1
PENDING_NEW = "PENDING_NEW"
OPEN_STATUSES = frozenset({PENDING_NEW, "NEW", "PARTIALLY_FILLED"})
# An order's image in the intent file: user_id, order_id, symbol_id, price, qty,
# quote_qty, stop, time_ms, then the tail's length; the tail is clientOrderId, side,
# type and timeInForce joined by spaces (none can hold one).  A new order has nothing
# else: executed 0, PENDING_NEW, updated when entered, entered here.
INTENT_IMAGE = struct.Struct("<QQIqqqqqH")

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    user_id INTEGER NOT NULL,
    order_id INTEGER NOT NULL,
    symbol_id INTEGER NOT NULL,
    client_order_id TEXT NOT NULL,
    side TEXT NOT NULL,
    type TEXT NOT NULL,
    tif TEXT NOT NULL,
    price INTEGER NOT NULL,       -- ticks (0: market)
    qty INTEGER NOT NULL,         -- lots (0: quoteOrderQty market)
    quote_qty INTEGER NOT NULL,   -- quote minor units (quoteOrderQty)
    stop INTEGER NOT NULL,        -- ticks
    executed INTEGER NOT NULL,    -- lots
    cum_quote INTEGER NOT NULL,   -- quote minor units
    status TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    update_ms INTEGER NOT NULL,
    api INTEGER NOT NULL,         -- 1: entered through this API
    PRIMARY KEY (user_id, order_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS orders_by_cl ON orders (user_id, client_order_id);
CREATE INDEX IF NOT EXISTS orders_by_symbol ON orders (user_id, symbol_id, order_id);
CREATE TABLE IF NOT EXISTS trades (
    user_id INTEGER NOT NULL,
    symbol_id INTEGER NOT NULL,
    trade_id INTEGER NOT NULL,    -- the core's match id (per symbol)
    is_maker INTEGER NOT NULL,
    order_id INTEGER NOT NULL,
    is_buyer INTEGER NOT NULL,
    price INTEGER NOT NULL,       -- ticks
    qty INTEGER NOT NULL,         -- lots
    commission INTEGER NOT NULL,  -- quote minor units
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, symbol_id, trade_id, is_maker)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS assets (asset_id INTEGER PRIMARY KEY, decimals INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS symbols (symbol_id INTEGER PRIMARY KEY, config TEXT NOT NULL);  -- JSON
CREATE TABLE IF NOT EXISTS listen_keys (
    listen_key TEXT PRIMARY KEY, user_id INTEGER NOT NULL, expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (k TEXT PRIMARY KEY, v BLOB NOT NULL);
"""

_COLS = (
    "user_id, order_id, symbol_id, client_order_id, side, type, tif, price, qty, quote_qty,"
    " stop, executed, cum_quote, status, time_ms, update_ms, api"
)

# An upsert, not INSERT OR REPLACE: REPLACE deletes and re-inserts the row and its
# key's index entry (two pages written to the WAL per commit), this changes one.
_SET_META = "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"

# An order's row after its INSERT: user_id, order_id (key), symbol_id and
# client_order_id (indexed) never change, nor do side, type, tif, quote_qty, stop and
# api (set when the order is made); what the follower changes is written back: the
# fill state, the times, and price and quantity (an amend).  Fewer bound columns per
# UPDATE (9, not 15): each costs a bind and a record column (docs/api.md, "Where the
# API's instructions per order go; the narrow UPDATE").
_UPDATE = (
    "UPDATE orders SET price = ?, qty = ?, executed = ?, cum_quote = ?, status = ?,"
    " time_ms = ?, update_ms = ? WHERE user_id = ? AND order_id = ?"
)


@dataclass(slots=True)
class Fill:
    """One execution of an order (a row of ``trades``)."""

    trade_id: int
    price: int
    qty: int
    commission: int
    is_maker: bool
    time_ms: int


@dataclass(slots=True)
class Order:
    """One order (mirror of its row); prices in ticks, quantities in lots."""

    user_id: int
    order_id: int
    symbol_id: int
    client_order_id: str
    side: str
    type: str
    tif: str
    price: int
    qty: int
    quote_qty: int
    stop: int
    executed: int = 0
    cum_quote: int = 0
    status: str = PENDING_NEW
    time_ms: int = 0
    update_ms: int = 0
    api: bool = True
    # Not stored: fills and reject reason of the NEW being answered (FULL responses).
    fills: list[Fill] = field(default_factory=list)
    reject: int = 0

    @property
    def is_open(self) -> bool:
        """Pending, resting or partly filled."""
        return self.status in OPEN_STATUSES

    def row(self) -> tuple[Any, ...]:
        """The SQLite row."""
        return (self.user_id, self.order_id, self.symbol_id, self.client_order_id, self.side,
                self.type, self.tif, self.price, self.qty, self.quote_qty, self.stop,
                self.executed, self.cum_quote, self.status, self.time_ms, self.update_ms,
                int(self.api))  # fmt: skip

    def update_row(self) -> tuple[Any, ...]:
        """The parameters of ``_UPDATE`` (the columns that change after the INSERT)."""
        return (self.price, self.qty, self.executed, self.cum_quote, self.status, self.time_ms,
                self.update_ms, self.user_id, self.order_id)  # fmt: skip

    @classmethod
    def of_row(cls, r: tuple[Any, ...]) -> Order:
        """An order from its SQLite row."""
        return cls(int(r[0]), int(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]),
                   int(r[7]), int(r[8]), int(r[9]), int(r[10]), int(r[11]), int(r[12]),
                   str(r[13]), int(r[14]), int(r[15]), bool(r[16]))  # fmt: skip


def pack_intents(orders: list[Order]) -> bytes:
    """The intent file records of new orders (:data:`INTENT_IMAGE`)."""
    parts = []
    for o in orders:
        tail = f"{o.client_order_id} {o.side} {o.type} {o.tif}".encode("ascii")
        parts.append(INTENT_IMAGE.pack(o.user_id, o.order_id, o.symbol_id, o.price, o.qty,
                                       o.quote_qty, o.stop, o.time_ms, len(tail)))  # fmt: skip
        parts.append(tail)
    return b"".join(parts)


def unpack_intents(blob: bytes) -> list[Order]:
    """The orders of whole intent file records, in order (``PENDING_NEW``)."""
    out: list[Order] = []
    pos, size = 0, INTENT_IMAGE.size
    while pos < len(blob):
        uid, oid, sym, price, qty, quote, stop, t, n = INTENT_IMAGE.unpack_from(blob, pos)
        cl, side, typ, tif = blob[pos + size : pos + size + n].decode("ascii").split(" ")
        pos += size + n
        out.append(Order(uid, oid, sym, cl, side, typ, tif, price, qty, quote, stop,
                         time_ms=t, update_ms=t))  # fmt: skip
    return out


class Checkpointer(threading.Thread):
    """Passive WAL checkpoints every ``CHECKPOINT_INTERVAL_S`` on a connection of its own.

    A checkpoint copies committed pages into the database file and fsyncs it; inside
    the event loop's commit it stalled every request for as long as the disk took.
    Passive checkpoints never block the writer (``sqlite3`` releases the GIL while
    SQLite works); once one has copied the whole log, the next commit starts the log
    over, so it stays small.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(name="api-checkpoint", daemon=True)
        self.path = path
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Checkpoint until :meth:`stop`."""
        con = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        try:
            while not self._stop_event.wait(CHECKPOINT_INTERVAL_S):
                try:
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as e:  # busy, disk trouble: the next turn retries
                    log.warning("WAL checkpoint failed: %s", e)
        finally:
            con.close()

    def stop(self) -> None:
        """End the thread (its last checkpoint finishes first)."""
        self._stop_event.set()
        if self.is_alive():
            self.join()


class ClientIdFilterPy:
    """The ``(user, clientOrderId)`` pairs the store may hold, as a Bloom filter: a
    pair never added is (almost always) known absent without asking SQLite, so a new
    order's client id costs no index read; a pair added is never missed.

    ``2**bits_log2`` bits (2 MiB by default), two probes from one 64-bit ``hash``
    of the pair (Python's string hash, keyed per process): with a million orders
    about 1 % of new ids still read the index, with five million about 20 %; wrong
    positives only cost that read, never an answer.  Bounded whatever the number of
    orders; filled from SQLite at start (:class:`Store`).  The store uses its compiled
    twin, :class:`pyx.apistore.ClientIdFilter` (this class is its oracle:
    ``tests/api/test_fold.py``).
    """

    def __init__(self, bits_log2: int = 24) -> None:
        self._bits = bytearray(1 << (bits_log2 - 3))
        self._mask = (1 << bits_log2) - 1
        self.count = 0  # pairs added (start-up scan included)

    def add(self, user_id: int, client_order_id: str) -> None:
        """Remember a pair."""
        h = hash((user_id, client_order_id))
        a, b = h & self._mask, (h >> 32) & self._mask
        bits = self._bits
        bits[a >> 3] |= 1 << (a & 7)
        bits[b >> 3] |= 1 << (b & 7)
        self.count += 1

    def may_hold(self, user_id: int, client_order_id: str) -> bool:
        """False: the pair was never added; True: it may have been."""
        h = hash((user_id, client_order_id))
        a, b = h & self._mask, (h >> 32) & self._mask
        bits = self._bits
        return bool(bits[a >> 3] & (1 << (a & 7)) and bits[b >> 3] & (1 << (b & 7)))


class Store:
    """SQLite (WAL) plus open orders in memory; writes are buffered and written by
    :meth:`commit` in one transaction.  A client id is looked up in SQLite only when
    :attr:`cl_filter` says the store may hold it.  :attr:`entry` (compiled,
    :class:`pyx.apistore.OrderEntry`) enters the usual new order in one call
    (``open_usual``) into the same dicts, list and set; it holds the id counter
    (:meth:`new_order_id`, :meth:`add` and :meth:`_index` are its oracle).  A member,
    not a compiled base class: the follower's and the commit's attribute reads of a
    Python class's instance stay the interpreter's fast ones."""

    def __init__(self, db_path: str | Path) -> None:
        path = Path(db_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        # 1 KiB pages for a new database (an existing one keeps its size): every commit
        # writes and checksums each page it touched into the WAL, a few per order;
        # small pages cost about a third less CPU per order than 4 KiB ones.
        self.con.execute("PRAGMA page_size=1024")
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints (which fsync the database file) run on a thread of their own, not
        # inside the commit of whichever request crosses the WAL threshold.
        self.con.execute("PRAGMA wal_autocheckpoint=0")
        self.con.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self.con.executescript(SCHEMA)
        self.open: dict[tuple[int, int], Order] = {}
        self.open_by_cl: dict[tuple[int, str], Order] = {}
        self._new: set[tuple[int, int]] = set()  # orders without a row yet
        self._meta: dict[str, int] = {}
        # Client-id orders not in SQLite yet (committed with the next transaction), and
        # those of them not in the intent file yet (written by a commit with nothing
        # else to store).
        self._intents: dict[tuple[int, int], Order] = {}
        self._unlogged: list[Order] = []
        # Every client id of the orders table, filled below (the intent file's orders
        # included), then every order indexed from here on (_index).
        self.cl_filter = ClientIdFilter()
        self.entry = OrderEntry(self.open, self.open_by_cl, self._intents, self._meta,
                                self._new, self._unlogged, self.cl_filter, API_ID_BASE,
                                MAX_ORDER_ID, ID_RESERVE)  # fmt: skip
        # Generated clientOrderIds are a keyed hash of the order (api.clientids): the
        # key lives here, made once (autocommit: durable before any id is handed out).
        # Orders below ``client_ids_since`` (an API id's clock part when the key was
        # made) predate it: their generated ids cannot be rebuilt (lost_client_id).
        row = self.con.execute("SELECT v FROM secrets WHERE k = 'client_id_key'").fetchone()
        if row is None:
            cl_key = os.urandom(CLIENT_ID_KEY_BYTES)
            self.con.execute("BEGIN")
            self.con.execute("INSERT INTO secrets VALUES ('client_id_key', ?)", (cl_key,))
            self.con.execute(_SET_META, ("client_ids_since", clock_order_id()))
            self.con.execute("COMMIT")
        else:
            cl_key = bytes(row[0])
        self.client_ids = ClientIds(cl_key)
        self.client_ids_since = int(
            self.con.execute("SELECT v FROM meta WHERE k = 'client_ids_since'").fetchone()[0]
        )
        self.commits = 0  # transactions (tests: an answer must not wait for one)
        self._dirty: dict[tuple[int, int], Order] = {}
        self._deleted: list[tuple[int, int]] = []
        self._trades: list[tuple[int, ...]] = []
        self._other: list[tuple[str, tuple[Any, ...]]] = []
        self.assets: dict[int, int] = {}  # asset id -> decimals
        # symbol id -> its config as api.symbols.SymbolRegistry.update takes it
        self.symbols: dict[int, dict[str, int]] = {}
        self.last_core_seq = 0
        meta = dict(self.con.execute("SELECT k, v FROM meta").fetchall())
        self.last_core_seq = int(meta.get("last_core_seq", 0))
        # The id counter (the last API order id handed out, less API_ID_BASE) lives in
        # the entry, with the highest id reserved in meta.
        ids = self.entry
        ids.next_order_id = int(meta.get("next_order_id", 0))
        self._logged_top = 0  # highest order id written to the file since the last mark
        db = str(db_path)
        self._intent: IntentFile | None = None
        if db != ":memory:" and not db.startswith("file:"):
            self._intent = IntentFile(db)
            self._recover_intents(self._intent, meta.get("intent_through"))
            self._intent.reset()
        ids.reserved_order_id = ids.next_order_id  # ids up to here may have been used
        for uid, cl in self.con.execute("SELECT user_id, client_order_id FROM orders"):
            self.cl_filter.add(int(uid), str(cl))
        for aid, dec in self.con.execute("SELECT asset_id, decimals FROM assets"):
            self.assets[int(aid)] = int(dec)
        for sid, cfg in self.con.execute("SELECT symbol_id, config FROM symbols"):
            self.symbols[int(sid)] = {k: int(v) for k, v in json.loads(cfg).items()}
        for r in self.con.execute(
            f"SELECT {_COLS} FROM orders WHERE status IN ('PENDING_NEW', 'NEW', 'PARTIALLY_FILLED')"
        ):
            o = Order.of_row(r)
            self._index(o)
        self._checkpointer = Checkpointer(path)
        self._checkpointer.start()

    @property
    def client_ids(self) -> ClientIds:
        """The generated client ids of this database (:attr:`entry`'s)."""
        return self.entry.client_ids  # type: ignore[no-any-return]

    @client_ids.setter
    def client_ids(self, ids: ClientIds) -> None:
        self.entry.client_ids = ids

    def _recover_intents(self, intent: IntentFile, through: int | None) -> None:
        """At start: store the intent file's orders that SQLite lacks (a kill between
        the write and the next transaction) as they would have been stored:
        ``PENDING_NEW``, resolved against the core by :meth:`api.core.CoreLink.start`
        (its events if the NEW arrived, else a probing CANCEL); the id counter moves
        past them.  Images at or below ``through`` (``meta.intent_through``) are stale;
        of two images with one clientOrderId the later wins (the earlier was refused,
        freeing the id); an order SQLite has (by id or client id) stays as stored.  A
        database without the mark is new (or deleted to be rebuilt): a file left by
        another database is ignored."""
        con = self.con
        if through is None:
            con.execute(_SET_META, ("intent_through", 0))
            return
        latest: dict[tuple[int, str], Order] = {}
        for o in unpack_intents(intent.read(INTENT_IMAGE)):
            if o.order_id > through:
                latest[(o.user_id, o.client_order_id)] = o
        if not latest:
            return
        top = max(o.order_id for o in latest.values())
        con.execute("BEGIN")
        con.executemany(
            f"INSERT OR IGNORE INTO orders ({_COLS}) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [o.row() for o in latest.values()],
        )
        con.execute(_SET_META, ("intent_through", top))
        ids = self.entry
        if top - API_ID_BASE > ids.next_order_id:
            ids.next_order_id = top - API_ID_BASE
            con.execute(_SET_META, ("next_order_id", ids.next_order_id))
        con.execute("COMMIT")
        log.info("stored %d order(s) of the intent file", len(latest))

    def _index(self, o: Order) -> None:
        self.open[(o.user_id, o.order_id)] = o
        self.open_by_cl[(o.user_id, o.client_order_id)] = o
        self.cl_filter.add(o.user_id, o.client_order_id)

    # ------------------------------------------------------------ writes

    def new_order_id(self) -> int:
        """The next API order id (module docstring); OverflowError when exhausted."""
        ids = self.entry
        n = max(ids.next_order_id + 1, clock_order_id())
        if API_ID_BASE + n > MAX_ORDER_ID:
            raise OverflowError("API order ids exhausted")
        ids.next_order_id = n
        if n > ids.reserved_order_id:
            # Committed by the turn's commit, before this id leaves (api.core.flush).
            ids.reserved_order_id = min(n + ID_RESERVE, MAX_ORDER_ID - API_ID_BASE)
            self._meta["next_order_id"] = ids.reserved_order_id
        return API_ID_BASE + n

    def add(self, o: Order, durable: bool = True) -> None:
        """A new order.  ``durable`` (every order this API enters): durable before
        its NEW leaves (:meth:`sync`: the intent file or a transaction); else (an
        order the follower creates from the core's events) its row is written at the
        first commit after it is saved again."""
        self._index(o)
        k = (o.user_id, o.order_id)
        if durable:
            self._intents[k] = o
            self._unlogged.append(o)
        self._new.add(k)

    def save(self, o: Order) -> None:
        """Write an order's row back at the next commit (drops it from memory once ended)."""
        self._dirty[(o.user_id, o.order_id)] = o

    def delete(self, o: Order) -> None:
        """Forget an order (a rejected NEW: Binance keeps no rejected orders)."""
        k = (o.user_id, o.order_id)
        self.open.pop(k, None)
        if self.open_by_cl.get((o.user_id, o.client_order_id)) is o:
            del self.open_by_cl[(o.user_id, o.client_order_id)]
        self._dirty.pop(k, None)
        if self._intents.pop(k, None) is not None and o in self._unlogged:
            self._unlogged.remove(o)
        if k in self._new:
            self._new.discard(k)  # never written: nothing to delete
        else:
            self._deleted.append(k)

    def add_trade(self, user_id: int, symbol_id: int, order_id: int, is_buyer: bool,
                  f: Fill) -> None:  # fmt: skip
        """One fill of a user's order."""
        self._trades.append((user_id, symbol_id, f.trade_id, int(f.is_maker), order_id,
                             int(is_buyer), f.price, f.qty, f.commission, f.time_ms))  # fmt: skip

    def set_asset(self, asset_id: int, decimals: int) -> None:
        """An asset the core added."""
        self.assets[asset_id] = decimals
        self._other.append(("INSERT OR REPLACE INTO assets VALUES (?, ?)", (asset_id, decimals)))

    def set_symbol(self, symbol_id: int, config: dict[str, int]) -> None:
        """A symbol's config (added by the core, or its status/min notional changed)."""
        self.symbols[symbol_id] = config
        self._other.append(
            ("INSERT OR REPLACE INTO symbols VALUES (?, ?)", (symbol_id, json.dumps(config)))
        )

    def set_core_seq(self, seq: int) -> None:
        """The last core event seq applied (same transaction as its effects)."""
        self.last_core_seq = seq
        self._meta["last_core_seq"] = seq

    def execute_later(self, sql: str, args: tuple[Any, ...]) -> None:
        """Run one statement in the next commit's transaction."""
        self._other.append((sql, args))

    @property
    def pending_rows(self) -> int:
        """Follower effects buffered and not committed yet (order rows, trades,
        deletions, other statements)."""
        return len(self._dirty) + len(self._trades) + len(self._deleted) + len(self._other)

    @property
    def pending(self) -> bool:
        """Whether anything is buffered for the next transaction."""
        return bool(
            self._dirty or self._deleted or self._trades or self._meta or self._other
            or self._intents
        )  # fmt: skip

    def lost_client_id(self, user_id: int, order_id: int) -> str:
        """The clientOrderId of an order the follower meets without knowing it: an
        API order (bit 39 set, module docstring) answered and then lost by a kill -9
        before its row was committed gets back its generated id (a client's own id
        is never lost: it is durable before the NEW leaves); any other, and an API
        order older than this database's key (the database was deleted to be
        rebuilt: its id is unknown), is ``core.<orderId>`` (a "." no client id can
        hold)."""
        if order_id & API_ID_BASE and order_id - API_ID_BASE >= self.client_ids_since:
            return self.client_ids.of(user_id, order_id)
        return f"core.{order_id}"

    def sync(self) -> None:
        """Before the turn's commands leave: make durable what must be (an id
        reservation: a transaction; new orders: appended to the intent
        file, or a transaction when there is none or it is full).  The follower's
        effects stay buffered (rebuildable from the core: :meth:`commit` writes them
        later, grouped), unless ``MAX_PENDING_ROWS`` of them are."""
        if "next_order_id" in self._meta or self.pending_rows >= MAX_PENDING_ROWS:
            self.commit()
            return
        if not self._unlogged:
            return
        if self._intent is None or self._intent.full:
            self.commit()
            return
        self._intent.append(pack_intents(self._unlogged))
        self._logged_top = max(self._logged_top, *(o.order_id for o in self._unlogged))
        self._unlogged.clear()

    def settle(self) -> None:
        """Before a read that goes to SQLite: commit what is buffered, so the read
        sees every event applied (and no row a buffered change replaces); a no-op
        when nothing is buffered (:meth:`commit`)."""
        self.commit()

    def commit(self) -> None:
        """Write everything buffered in one transaction: the follower's effects with
        their last core seq (exactly once), new orders' rows, an id
        reservation, other statements.  No-op if nothing."""
        if not self.pending:
            return
        if self._intents:
            for k, o in self._intents.items():
                self._dirty.setdefault(k, o)
        if self._logged_top:
            # Every image in the file is stored by this transaction (or its order was
            # refused): a restart ignores them (_recover_intents).
            self._meta["intent_through"] = self._logged_top
        con = self.con
        inserted: set[tuple[int, int]] = set()
        con.execute("BEGIN")
        if self._deleted:
            con.executemany("DELETE FROM orders WHERE user_id = ? AND order_id = ?", self._deleted)
        if self._dirty:
            new = self._new
            inserted = new.intersection(self._dirty)
            rows = [o.row() for k, o in self._dirty.items() if k in inserted]
            if rows:
                con.executemany(
                    f"INSERT OR REPLACE INTO orders ({_COLS}) VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            if len(rows) < len(self._dirty):
                # An existing row: UPDATE leaves the indexes alone (their columns never
                # change), where a REPLACE would rewrite every index entry.
                con.executemany(_UPDATE, [o.update_row() for k, o in self._dirty.items()
                                          if k not in inserted])  # fmt: skip
        if self._trades:
            con.executemany(
                "INSERT OR IGNORE INTO trades VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self._trades
            )
        for sql, args in self._other:
            con.execute(sql, args)
        if self._meta:
            con.executemany(_SET_META, self._meta.items())
        con.execute("COMMIT")
        self.commits += 1
        if self._intents:
            self._intents.clear()
            self._unlogged.clear()
        if self._logged_top:
            self._logged_top = 0
            if self._intent is not None:
                self._intent.committed()
        if inserted:
            self._new.difference_update(inserted)
        for k, o in self._dirty.items():
            if not o.is_open and self.open.get(k) is o:
                del self.open[k]
                if self.open_by_cl.get((o.user_id, o.client_order_id)) is o:
                    del self.open_by_cl[(o.user_id, o.client_order_id)]
        self._dirty.clear()
        self._deleted.clear()
        self._trades.clear()
        self._meta.clear()
        self._other.clear()

    def close(self) -> None:
        """Commit (new orders too), stop the checkpoints and close (the last
        connection checkpoints)."""
        self.commit()
        self._checkpointer.stop()
        if self._intent is not None:
            self._intent.close()
        self.con.close()

    # ------------------------------------------------------------- reads

    def get(self, user_id: int, order_id: int) -> Order | None:
        """An order by id (open ones from memory)."""
        o = self.open.get((user_id, order_id))
        if o is not None:
            return o
        self.settle()
        r = self.con.execute(
            f"SELECT {_COLS} FROM orders WHERE user_id = ? AND order_id = ?", (user_id, order_id)
        ).fetchone()
        return None if r is None else Order.of_row(r)

    def by_client_id(self, user_id: int, client_order_id: str) -> Order | None:
        """An order by its clientOrderId."""
        o = self.open_by_cl.get((user_id, client_order_id))
        if o is not None:
            return o
        if not self.cl_filter.may_hold(user_id, client_order_id):
            return None  # never stored: no index read
        self.settle()
        r = self.con.execute(
            f"SELECT {_COLS} FROM orders WHERE user_id = ? AND client_order_id = ?",
            (user_id, client_order_id),
        ).fetchone()
        return None if r is None else Order.of_row(r)

    def open_orders(self, user_id: int, symbol_id: int | None = None) -> list[Order]:
        """A user's open orders (all symbols or one), by order id (orders that ended
        stay in :attr:`open` until their rows are committed: skipped)."""
        out = [
            o
            for (uid, _), o in self.open.items()
            if uid == user_id and (symbol_id is None or o.symbol_id == symbol_id) and o.is_open
        ]
        return sorted(out, key=lambda o: o.order_id)

    def all_orders(
        self, user_id: int, symbol_id: int, from_id: int, start_ms: int, end_ms: int, limit: int
    ) -> list[Order]:
        """A user's orders of one symbol (Binance's allOrders filters), oldest first."""
        self.settle()
        rows = self.con.execute(
            f"SELECT {_COLS} FROM orders WHERE user_id = ? AND symbol_id = ? AND order_id >= ?"
            " AND time_ms >= ? AND time_ms <= ? ORDER BY order_id LIMIT ?",
            (user_id, symbol_id, from_id, start_ms, end_ms, limit),
        ).fetchall()
        return [Order.of_row(r) for r in rows]

    def trades(
        self,
        user_id: int,
        symbol_id: int,
        order_id: int | None,
        from_id: int,
        start_ms: int,
        end_ms: int,
        limit: int,
    ) -> list[tuple[Any, ...]]:
        """A user's fills of one symbol: (trade_id, is_maker, order_id, is_buyer, price,
        qty, commission, time_ms), oldest first."""
        sql = (
            "SELECT trade_id, is_maker, order_id, is_buyer, price, qty, commission, time_ms"
            " FROM trades WHERE user_id = ? AND symbol_id = ? AND trade_id >= ?"
            " AND time_ms >= ? AND time_ms <= ?"
        )
        self.settle()
        args: list[int] = [user_id, symbol_id, from_id, start_ms, end_ms]
        if order_id is not None:
            sql += " AND order_id = ?"
            args.append(order_id)
        sql += " ORDER BY trade_id, is_maker LIMIT ?"
        args.append(limit)
        return list(self.con.execute(sql, args).fetchall())
