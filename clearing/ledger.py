"""The ledger writer: applies core event frames to the database, exactly once.

:class:`Ledger` keeps in memory what the rules need (symbol configurations,
holds of live orders) and the current balance of every account, all loaded
from the database at start.  :meth:`Ledger.apply_frame` maps a frame's events
to entries and rows (:func:`clearing.rules.post`) and queues them;
:meth:`Ledger.flush` writes everything queued AND the new ``last_seq`` in one
transaction.  If anything fails before the commit, :meth:`Ledger.reload`
forgets the queue and re-reads the state of the last committed batch, and the
caller re-reads events from ``last_seq + 1``: an event is applied by the
database exactly when its ``seq`` is at or below the stored ``last_seq``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from clearing import rules
from clearing.db import Db
from clearing.rules import Account, Ev, Hold, OrderKey, Symbol
from clearing.schema import migrate
from pyx import ledgermap
from pyx.enums import EvKind, Side

# The compiled mapper mirrors the rules; it gets their constants and types from here
# (pyx imports nothing above it).
ledgermap.bind_rules(rules)

U64 = 1 << 64
I64_MAX = (1 << 63) - 1

ENTRY_COLUMNS = (
    "seq", "ev_idx", "line", "ts_ns", "cause", "user_id", "account", "bucket", "asset",
    "amount", "balance_after", "order_id", "match_id", "ref",
)  # fmt: skip
ORDER_COLUMNS = (
    "user_id", "order_id", "symbol_id", "side", "ord_type", "price_ticks", "qty_lots",
    "leaves_lots", "filled_lots", "status", "reason", "hold_asset", "hold", "created_seq",
    "updated_seq",
)  # fmt: skip
ORDER_EVENT_COLUMNS = (
    "seq", "ev_idx", "role", "ts_ns", "user_id", "order_id", "kind", "symbol_id", "side",
    "price_ticks", "qty_lots", "leaves_lots", "reason",
)  # fmt: skip
TRADE_COLUMNS = (
    "seq", "ev_idx", "ts_ns", "symbol_id", "match_id", "price_ticks", "qty_lots",
    "quote_amount", "base_amount", "taker_side", "taker_user_id", "taker_order_id",
    "taker_fee", "maker_user_id", "maker_order_id", "maker_fee", "fee_asset",
)  # fmt: skip
WITHDRAWAL_COLUMNS = (
    "withdrawal_id", "user_id", "account", "asset", "amount", "status", "held_seq", "done_seq",
)  # fmt: skip
DEPOSIT_COLUMNS = ("seq", "ev_idx", "ts_ns", "user_id", "account", "asset", "ref", "amount")

LIVE = "live"
FILLED = "filled"
CANCELED = "canceled"

_ORDER_KINDS = {
    int(k) for k in (EvKind.ACCEPTED, EvKind.REJECTED, EvKind.TRADE, EvKind.CANCELED,
                     EvKind.REDUCED, EvKind.REPLACED, EvKind.TRIGGERED)
}  # fmt: skip
# Kinds and sides as plain ints (compared once or more per event).
_K_ACCEPTED = int(EvKind.ACCEPTED)
_K_REJECTED = int(EvKind.REJECTED)
_K_TRADE = int(EvKind.TRADE)
_K_CANCELED = int(EvKind.CANCELED)
_K_REDUCED = int(EvKind.REDUCED)
_K_REPLACED = int(EvKind.REPLACED)
_K_TRIGGERED = int(EvKind.TRIGGERED)
_K_DEPOSITED = int(EvKind.DEPOSITED)
_K_WITHDRAW_HELD = int(EvKind.WITHDRAW_HELD)
_K_SYMBOL_ADDED = int(EvKind.SYMBOL_ADDED)
_K_ASSET_ADDED = int(EvKind.ASSET_ADDED)
_K_USER_ADDED = int(EvKind.USER_ADDED)
_BUY, _SELL = int(Side.BUY), int(Side.SELL)
_KIND_NAMES = {int(k): k.name for k in EvKind}
_WD_STATUS: dict[int, str] = {
    EvKind.WITHDRAW_COMMITTED: "committed",
    EvKind.WITHDRAW_RELEASED: "released",
}

# Order row indexes (ORDER_COLUMNS).
_O_PRICE, _O_LEAVES, _O_FILLED, _O_STATUS, _O_REASON = 5, 7, 8, 9, 10
_O_HOLD, _O_UPDATED = 12, 14


def i64(x: int) -> int:
    """A u64 id as the signed 64-bit integer with the same bits (how ids are stored)."""
    return x - U64 if x > I64_MAX else x


def u64(x: int) -> int:
    """Inverse of :func:`i64`."""
    return x + U64 if x < 0 else x


_SYMBOL_COLUMNS = (
    "symbol_id", "base_asset", "quote_asset", "price_multiplier", "base_per_lot", "seq",
)  # fmt: skip
_BALANCE_COLUMNS = ("user_id", "account", "bucket", "asset", "balance", "seq")


@dataclass
class _Batch:
    """The rows of one transaction, taken from the queue."""

    prev_seq: int
    last_seq: int
    events: int
    entries: int
    n: int
    tables: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]
    balances: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]
    wd_done: list[tuple[Any, ...]]


class StreamError(RuntimeError):
    """The events do not follow the applied ones (a gap) or refer to unknown state."""


class ConcurrentWriterError(RuntimeError):
    """``last_seq`` in the database moved under us: another writer is running."""


class Ledger:
    """State and batch writer of the ledger over one :class:`clearing.db.Db`.

    Parameters
    ----------
    db : Db
        An open database; migrations are applied on :meth:`reload`.
    fast : bool
        Map events with the compiled :mod:`pyx.ledgermap` (default) instead of
        the pure-Python path (:func:`clearing.rules.post` and :meth:`_apply`),
        which stays as the oracle the compiled one is tested against.
    """

    def __init__(self, db: Db, fast: bool = True) -> None:
        self.db = db
        self.fast = fast
        self.reload()

    # ------------------------------------------------------------- state

    def reload(self) -> None:
        """Drop anything queued and load the state of the last committed batch."""
        bg = getattr(self, "_bg", None)
        if bg is not None:
            bg.join()  # its outcome is read back from the database below
        self._bg: threading.Thread | None = None
        self._bg_batch: _Batch | None = None
        self._bg_error: BaseException | None = None
        self.db.rollback()
        migrate(self.db)
        st = self.db.query("SELECT last_seq, events, entries FROM clearing_state WHERE id = 1")
        self.last_seq, self.n_events, self.n_entries = (int(x) for x in st[0])
        self.committed_seq = self.last_seq
        self.balances: dict[Account, int] = {
            (int(u), int(a), int(b), int(s)): int(v)
            for u, a, b, s, v in self.db.query(
                "SELECT user_id, account, bucket, asset, balance FROM balances"
            )
        }
        self.symbols: dict[int, Symbol] = {
            int(r[0]): Symbol(int(r[1]), int(r[2]), int(r[3]), int(r[4]))
            for r in self.db.query(
                "SELECT symbol_id, base_asset, quote_asset, price_multiplier, base_per_lot"
                " FROM symbols"
            )
        }
        self.orders: dict[OrderKey, list[Any]] = {}
        self.holds: dict[OrderKey, Hold] = {}
        cols = ", ".join(ORDER_COLUMNS)
        for r in self.db.query(f"SELECT {cols} FROM orders WHERE status = ?", (LIVE,)):
            row = [int(x) if not isinstance(x, str) else x for x in r]
            key = (int(row[0]), u64(int(row[1])))
            self.orders[key] = row
            self.holds[key] = Hold(int(row[11]), int(row[12]))
        self._clear_queue()

    def _clear_queue(self) -> None:
        self.q_entries: list[tuple[Any, ...]] = []
        self.q_balances: set[Account] = set()
        self.q_orders: dict[OrderKey, list[Any]] = {}
        self.q_order_events: list[tuple[Any, ...]] = []
        self.q_trades: list[tuple[Any, ...]] = []
        self.q_deposits: list[tuple[Any, ...]] = []
        self.q_wd_new: list[tuple[Any, ...]] = []
        self.q_wd_done: list[tuple[Any, ...]] = []
        self.q_symbols: list[tuple[Any, ...]] = []
        self.q_assets: list[tuple[Any, ...]] = []
        self.q_users: list[tuple[Any, ...]] = []
        self.q_events = 0

    @property
    def dirty(self) -> bool:
        """Events (or seqs) applied in memory that no write has taken yet."""
        taken = self._bg_batch.last_seq if self._bg_batch is not None else self.committed_seq
        return self.last_seq > taken

    @property
    def pending_events(self) -> int:
        """Events queued since the last flush."""
        return self.q_events

    # ------------------------------------------------------------- apply

    def apply_frame(self, first_seq: int, last_seq: int, events: np.ndarray) -> int:
        """Queue the effects of one event frame covering ``first_seq..last_seq``.

        Events at or below the applied ``last_seq`` are skipped (re-delivery);
        a frame starting past ``last_seq + 1`` is a gap.  Returns the number of
        events applied.

        Raises
        ------
        StreamError
            A gap, or an event naming a symbol or order never seen.
        """
        if last_seq <= self.last_seq:
            return 0
        if first_seq > self.last_seq + 1:
            raise StreamError(f"gap: next seq {self.last_seq + 1}, frame starts at {first_seq}")
        if self.fast:
            try:
                n, n_entries = ledgermap.apply_events(self, events, self.last_seq)
            except rules.UnknownReferenceError as ex:
                raise StreamError(str(ex)) from ex
            self.n_entries += n_entries
            self.last_seq = last_seq
            self.q_events += n
            self.n_events += n
            return n
        n = 0
        cur_seq, idx = -1, 0
        for rec in events.tolist():
            e = Ev(*rec)
            if e.seq <= self.last_seq:
                continue
            if e.seq != cur_seq:
                cur_seq, idx = e.seq, 0
            else:
                idx += 1
            self._apply(e, idx)
            n += 1
        self.last_seq = last_seq
        self.q_events += n
        self.n_events += n
        return n

    def _apply(self, e: Ev, idx: int) -> None:
        try:
            p = rules.post(e, self.symbols, self.holds)
        except rules.UnknownReferenceError as ex:
            raise StreamError(f"seq {e.seq}: {ex}") from ex
        bal = self.balances
        qb = self.q_balances
        qe = self.q_entries
        seq, ts = e.seq, e.ts_ns
        for line, (acct, amount, cause, oid, mid, ref) in enumerate(p.entries):
            after = bal.get(acct, 0) + amount
            bal[acct] = after
            qb.add(acct)
            # ids above I64_MAX are stored as their signed 64-bit twin (i64, inlined)
            qe.append((seq, idx, line, ts, cause, *acct, amount, after,
                       oid if oid <= I64_MAX else oid - U64,
                       mid if mid <= I64_MAX else mid - U64,
                       ref if ref <= I64_MAX else ref - U64))  # fmt: skip
        self.n_entries += len(p.entries)
        k = e.kind
        if k in _ORDER_KINDS:
            self._order_rows(e, idx, p.holds)
        elif k == _K_DEPOSITED:
            user, account, asset, amount, ref = rules.funding_fields(e)
            self.q_deposits.append((e.seq, idx, e.ts_ns, user, account, asset, i64(ref),
                                    amount))  # fmt: skip
        elif k == _K_WITHDRAW_HELD:
            user, account, asset, amount, wid = rules.withdrawal_fields(e)
            self.q_wd_new.append((i64(wid), user, account, asset, amount, "held", e.seq, 0))
        elif k in _WD_STATUS:
            wid = rules.withdrawal_fields(e)[4]
            self.q_wd_done.append((_WD_STATUS[k], e.seq, i64(wid)))
        elif k == _K_SYMBOL_ADDED:
            sym = Symbol(*rules.symbol_fields(e))
            self.symbols[e.symbol_id] = sym
            self.q_symbols.append((e.symbol_id, *sym, e.seq))
        elif k == _K_ASSET_ADDED:
            self.q_assets.append((*rules.asset_fields(e), e.seq))
        elif k == _K_USER_ADDED:
            self.q_users.append((e.user_id, e.seq))

    def _order_rows(self, e: Ev, idx: int, holds: dict[OrderKey, Hold | None]) -> None:
        """Order history rows and the orders' current state."""
        kind = _KIND_NAMES[e.kind]
        self.q_order_events.append((e.seq, idx, 0, e.ts_ns, e.user_id, i64(e.order_id), kind,
                                    e.symbol_id, e.side, e.price_ticks, e.qty_lots,
                                    e.leaves_lots, e.reason))  # fmt: skip
        key = (e.user_id, e.order_id)
        k = e.kind
        if k == _K_ACCEPTED:
            h = holds[key]
            assert h is not None
            row: list[Any] = [e.user_id, i64(e.order_id), e.symbol_id, e.side, e.ord_type,
                              e.price_ticks, e.qty_lots, e.leaves_lots, 0, LIVE, 0, h.asset,
                              h.amount, e.seq, e.seq]  # fmt: skip
            self.orders[key] = row
            self.holds[key] = h
            self.q_orders[key] = row
            return
        if k == _K_REJECTED:
            return
        if k == _K_TRADE:
            sym = self.symbols[e.symbol_id]
            self.q_trades.append((e.seq, idx, e.ts_ns, e.symbol_id, i64(e.match_id),
                                  e.price_ticks, e.qty_lots,
                                  e.price_ticks * e.qty_lots * sym.multiplier,
                                  e.qty_lots * sym.base_per_lot, e.side, e.user_id,
                                  i64(e.order_id), e.taker_fee, e.maker_user_id,
                                  i64(e.maker_order_id), e.maker_fee, sym.quote))  # fmt: skip
            mkey = (e.maker_user_id, e.maker_order_id)
            maker_side = _SELL if e.side == _BUY else _BUY
            self.q_order_events.append((e.seq, idx, 1, e.ts_ns, e.maker_user_id,
                                        i64(e.maker_order_id), kind, e.symbol_id, maker_side,
                                        e.price_ticks, e.qty_lots, -1, 0))  # fmt: skip
            self._fill(key, e, e.leaves_lots, holds)
            mrow = self.orders.get(mkey)
            mleaves = (mrow[_O_LEAVES] - e.qty_lots) if mrow is not None else 0
            self._fill(mkey, e, mleaves, holds)
            return
        row = self._row(key, e.seq)
        if k == _K_CANCELED:
            row[_O_LEAVES] = 0
            row[_O_STATUS] = CANCELED
            row[_O_REASON] = e.reason
        elif k in (_K_REDUCED, _K_REPLACED, _K_TRIGGERED):
            row[_O_LEAVES] = e.leaves_lots
            if k == _K_REPLACED:
                row[_O_PRICE] = e.price_ticks
        self._set_hold(key, row, holds)

    def _row(self, key: OrderKey, seq: int) -> list[Any]:
        row = self.orders.get(key)
        if row is None:
            raise StreamError(f"seq {seq}: event for unknown order {key}")
        row[_O_UPDATED] = seq
        self.q_orders[key] = row
        return row

    def _fill(self, key: OrderKey, e: Ev, leaves: int, holds: dict[OrderKey, Hold | None]) -> None:
        row = self._row(key, e.seq)
        row[_O_FILLED] += e.qty_lots
        row[_O_LEAVES] = leaves
        if holds.get(key, 0) is None:
            row[_O_STATUS] = FILLED
            row[_O_LEAVES] = 0
        self._set_hold(key, row, holds)

    def _set_hold(self, key: OrderKey, row: list[Any], holds: dict[OrderKey, Hold | None]) -> None:
        if key not in holds:
            return
        h = holds[key]
        if h is None:
            row[_O_HOLD] = 0
            if row[_O_STATUS] == LIVE:  # ended by its hold's release (e.g. a final trade)
                row[_O_STATUS] = FILLED
            self.holds.pop(key, None)
            self.orders.pop(key, None)
        else:
            row[_O_HOLD] = h.amount
            self.holds[key] = h

    # ------------------------------------------------------------- write

    def _take(self) -> _Batch:
        """Move the queue into a batch (rows materialised now: later events change
        the live order rows and balances) and start a new queue."""
        bal = self.balances
        b = _Batch(
            prev_seq=self.committed_seq,
            last_seq=self.last_seq,
            events=self.n_events,
            entries=self.n_entries,
            n=self.q_events,
            tables=[
                ("symbols", _SYMBOL_COLUMNS, self.q_symbols),
                ("assets", ("asset_id", "decimals", "seq"), self.q_assets),
                ("users", ("user_id", "seq"), self.q_users),
                ("entries", ENTRY_COLUMNS, self.q_entries),
                ("order_events", ORDER_EVENT_COLUMNS, self.q_order_events),
                ("trades", TRADE_COLUMNS, self.q_trades),
                ("deposits", DEPOSIT_COLUMNS, self.q_deposits),
                ("withdrawals", WITHDRAWAL_COLUMNS, self.q_wd_new),
            ],
            balances=[(*a, bal[a], self.last_seq) for a in self.q_balances],
            orders=[tuple(r) for r in self.q_orders.values()],
            wd_done=self.q_wd_done,
        )
        self._clear_queue()
        return b

    def _write(self, b: _Batch) -> None:
        """One transaction: every row of the batch and ``last_seq``."""
        db = self.db
        db.begin()
        try:
            changed = db.execute(
                "UPDATE clearing_state SET last_seq = ?, events = ?, entries = ?"
                " WHERE id = 1 AND last_seq = ?",
                (b.last_seq, b.events, b.entries, b.prev_seq),
            )
            if changed != 1:
                raise ConcurrentWriterError(f"last_seq is no longer {b.prev_seq}")
            for table, cols, rows in b.tables:
                db.insert_rows(table, cols, rows)
            db.upsert_rows("balances", _BALANCE_COLUMNS, _BALANCE_COLUMNS[:4], b.balances)
            db.upsert_rows("orders", ORDER_COLUMNS, ("user_id", "order_id"), b.orders)
            db.executemany(
                "UPDATE withdrawals SET status = ?, done_seq = ? WHERE withdrawal_id = ?",
                b.wd_done,
            )
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def flush(self) -> int:
        """Write everything queued and ``last_seq`` in ONE transaction, now (after
        any background write); returns the number of events written.  On any error
        the transaction is rolled back and the exception propagates: the caller
        must :meth:`reload`.

        Raises
        ------
        ConcurrentWriterError
            The stored ``last_seq`` is not the one this ledger last committed.
        """
        self.wait()
        if self.last_seq == self.committed_seq:
            return 0
        b = self._take()
        self._write(b)
        self.committed_seq = b.last_seq
        return b.n

    def flush_async(self) -> None:
        """Like :meth:`flush`, but the transaction runs in a background thread while
        the caller maps the next events (the database drivers release the GIL).
        The next :meth:`flush`, :meth:`flush_async` or :meth:`wait` waits for it and
        raises its error, if any (then :meth:`reload`)."""
        self.wait()
        if self.last_seq == self.committed_seq:
            return
        b = self._take()
        self._bg_batch = b
        self._bg_error = None
        self._bg = threading.Thread(target=self._bg_write, args=(b,), name="ledger-writer")
        self._bg.start()

    def _bg_write(self, b: _Batch) -> None:
        try:
            self._write(b)
        except BaseException as e:  # handed to the caller by wait()
            self._bg_error = e

    def settle_background(self) -> None:
        """If the background write has finished, take its outcome now (raise its error or
        mark it committed) without blocking: a follower with no new events must still
        notice a write that failed, or it would sit on an uncommitted batch forever."""
        if self._bg is not None and not self._bg.is_alive():
            self.wait()

    def wait(self) -> None:
        """Wait for the background write; raise its error or mark it committed."""
        if self._bg is None:
            return
        self._bg.join()
        self._bg = None
        err, self._bg_error = self._bg_error, None
        if err is not None:
            raise err
        assert self._bg_batch is not None
        self.committed_seq = self._bg_batch.last_seq
        self._bg_batch = None
