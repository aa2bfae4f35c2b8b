"""The core state machine: the Python face of :class:`pyx.core.CoreState`.

``Core`` is everything between "a sequenced batch of command records" and
"events + replies", with no I/O: risk checks and holds, routing to the Cython
books, settlement of fills with fees, admin and funding commands.  The journal,
sequencer, snapshots and recovery (engine/journal.py, engine/recovery.py...) call
this API; the simulator (sim/) drives it with good and bad commands.

This module adds what is not on the hot path: the canonical snapshot format,
the state hash, the conservation check and read helpers.  Semantics of every
command: docs/commands.md; field mappings: engine/wire/commands.py and
engine/wire/events.py.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.wire.commands import stamp
from pyx.core import REF_MEMORY, CoreState

SNAPSHOT_MAGIC = b"BURSACORE\x00"
# 2: book rows are Book.l3_full() rows (tif and stp added)
# 3: per-user order ids (internal ids user << 40 | id), order-id marks and remembered NEWs,
#    funding references (arrival order) with their content and first result, transfer
#    references, forgotten floors
# 4: order-id lanes: the marks of lanes >= 1 (_LANE rows after the remembered NEWs); the
#    user row keeps lane 0's.  Version 3 still loads (its one pair of marks is split per
#    lane, pyx/core.pyx _split_marks).
SNAPSHOT_VERSION = 4
_SNAPSHOT_VERSIONS = (3, 4)  # loadable

# Row formats of the snapshot sections (little-endian, packed).  The order of the
# sections and of the rows in each is canonical: sorted by id.
_HEAD = struct.Struct("<10sHQ")  # magic, version, last_seq
_COUNT = struct.Struct("<I")
_ASSET = struct.Struct(
    "<HBqqQQQQ"
)  # id, decimals, fee, outstanding, deposited lo/hi, withdrawn lo/hi
_TIER = struct.Struct("<Iqq")  # tier, maker ppm, taker ppm
# id, tier, taker ppm, maker ppm, suspended, highest accepted order id, forgotten floor
_USER = struct.Struct("<IIIIBQQ")
_DEDUP = struct.Struct("<IQQq")  # user, order id, fingerprint, first reply value (oldest first)
_LANE = struct.Struct("<IBQQ")  # user, order-id lane >= 1, highest accepted id, forgotten floor
_BALANCE = struct.Struct("<IHBqq")  # user, asset, account, available, held
_SYMBOL = struct.Struct("<HHHBqqqqqqqqqq")
_ORDER = struct.Struct("<QIHBBBBBBqqII")
_BOOK = struct.Struct("<HqQ")  # symbol, last price, next match id
# Book rows: Book.l3_full() (id, user, side, price, open, flags, ord_type, tif, stop price,
# stp) and Book.stops() (id, user, side, ord_type, tif, stop, price, open, stp), restored
# through Book.restore_order in this order (docs/book.md, "Restore").
_L3 = struct.Struct("<QIBqqBBBqB")
_STOP = struct.Struct("<QIBBBqqqB")  # id, user, side, ord_type, tif, stop, price, open, stp
_REF = struct.Struct("<QIHqqq")  # deposit ref, user, asset, account, amount, reply value
# id, user, asset, account, amount, state, hold reply value, commit/release reply value
_WITHDRAWAL = struct.Struct("<QIHqqBqq")
_TRANSFER = struct.Struct("<QIHqqqq")  # ref, user, asset, from, to, amount, reply value
# highest deposit / withdrawal / transfer reference forgotten, references remembered per
# kind, live orders per user at most
_MARKS = struct.Struct("<QQQqq")

_U64 = (1 << 64) - 1


def _split(x: int) -> tuple[int, int]:
    """A non-negative total as two u64 words (low, high)."""
    assert 0 <= x < 1 << 128
    return x & _U64, x >> 64


class SnapshotError(ValueError):
    """Bytes that are not a valid core snapshot."""


class _Reader:
    """Sequential reader of snapshot sections."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, s: struct.Struct) -> tuple[Any, ...]:
        if self.pos + s.size > len(self.data):
            raise SnapshotError("snapshot truncated")
        row = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return row

    def rows(self, s: struct.Struct) -> Iterator[tuple[Any, ...]]:
        (n,) = self.take(_COUNT)
        if self.pos + n * s.size > len(self.data):
            raise SnapshotError("snapshot truncated")
        for _ in range(n):
            yield self.take(s)


def _section(out: list[bytes], s: struct.Struct, rows: Iterable[tuple[Any, ...]]) -> None:
    rows = list(rows)
    out.append(_COUNT.pack(len(rows)))
    out.extend(s.pack(*r) for r in rows)


class Core(CoreState):
    """The deterministic core: ``apply`` sequenced command batches, get events and replies.

    Parameters
    ----------
    variants : frozenset of str
        Deliberately broken behaviours, for the simulator's tests only:
        ``"double_release"`` and ``"dup_deposit"`` (see ``pyx/settle.pyx``, ``pyx/funding.pyx``).
    ref_memory : int
        Funding references remembered per kind (deposits, withdrawals, transfers);
        smaller than the default in tests only.  Kept in snapshots.

    Notes
    -----
    ``apply(cmds)`` takes a ``CMD_DTYPE`` array whose ``seq`` are ``last_seq + 1``,
    ``last_seq + 2``, ... and returns ``(events, replies)``: an ``EV_DTYPE`` view valid
    until the next ``apply`` and one ``REPLY_DTYPE`` record per command.  Bad input
    never raises: it is rejected with a ``Reason`` and changes nothing.
    """

    def __init__(
        self, variants: frozenset[str] = frozenset(), ref_memory: int = REF_MEMORY
    ) -> None:
        super().__init__(variants, ref_memory)

    # ------------------------------------------------------------- batches

    def run(
        self, cmds: npt.NDArray[np.void], ts_ns: int | None = None
    ) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]:
        """Number a copy of ``cmds`` from ``last_seq + 1`` (as the sequencer would) and
        apply it; convenient for tests and the simulator.  Returns ``(events, replies)``."""
        stamped = stamp(np.array(cmds, copy=True), self.last_seq + 1, ts_ns)
        return self.apply(stamped)

    # ------------------------------------------------------------ snapshot

    def to_snapshot(self) -> bytes:
        """Canonical serialization of the whole state (same state, same bytes)."""
        d = self._dump()
        out = [_HEAD.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, d["last_seq"])]
        _section(
            out,
            _ASSET,
            (
                (a, dec, fee, outstanding, *_split(dep), *_split(wd))
                for a, dec, fee, outstanding, dep, wd in d["assets"]
            ),
        )
        _section(out, _TIER, d["fee_tiers"])
        _section(out, _USER, d["users"])
        _section(out, _BALANCE, d["balances"])
        _section(out, _SYMBOL, d["symbols"])
        _section(out, _ORDER, d["orders"])
        out.append(_COUNT.pack(len(d["books"])))
        for sid, (last, next_match, rows, stops) in d["books"]:
            out.append(_BOOK.pack(sid, last, next_match))
            _section(out, _L3, rows)
            _section(out, _STOP, stops)
        _section(out, _DEDUP, d["order_dedup"])
        _section(out, _LANE, d["order_lanes"])
        _section(out, _REF, d["deposit_refs"])
        _section(out, _WITHDRAWAL, d["withdrawals"])
        _section(out, _TRANSFER, d["transfers"])
        out.append(_MARKS.pack(*d["marks"]))
        return b"".join(out)

    @classmethod
    def from_snapshot(cls, data: bytes, variants: frozenset[str] = frozenset()) -> Core:
        """Rebuild a core from :meth:`to_snapshot` bytes (exact inverse).

        Raises
        ------
        SnapshotError
            The bytes are not a snapshot of a loadable version (truncated, wrong magic...).
        """
        rd = _Reader(data)
        magic, version, last_seq = rd.take(_HEAD)
        if magic != SNAPSHOT_MAGIC or version not in _SNAPSHOT_VERSIONS:
            raise SnapshotError("not a bursa core snapshot (magic/version)")
        d: dict[str, Any] = {"last_seq": last_seq}
        d["assets"] = [
            (a, dec, fee, outst, dl | dh << 64, wl | wh << 64)
            for a, dec, fee, outst, dl, dh, wl, wh in rd.rows(_ASSET)
        ]
        d["fee_tiers"] = list(rd.rows(_TIER))
        d["users"] = list(rd.rows(_USER))
        d["balances"] = list(rd.rows(_BALANCE))
        d["symbols"] = list(rd.rows(_SYMBOL))
        d["orders"] = list(rd.rows(_ORDER))
        (nbooks,) = rd.take(_COUNT)
        books = []
        for _ in range(nbooks):
            sid, last, next_match = rd.take(_BOOK)
            rows = tuple(rd.rows(_L3))
            stops = tuple(rd.rows(_STOP))
            books.append((sid, (last, next_match, rows, stops)))
        d["books"] = books
        d["order_dedup"] = list(rd.rows(_DEDUP))
        if version >= 4:  # else: no key, the core splits the one pair of marks per lane
            d["order_lanes"] = list(rd.rows(_LANE))
        d["deposit_refs"] = list(rd.rows(_REF))
        d["withdrawals"] = list(rd.rows(_WITHDRAWAL))
        d["transfers"] = list(rd.rows(_TRANSFER))
        d["marks"] = rd.take(_MARKS)
        if rd.pos != len(data):
            raise SnapshotError("trailing bytes after the snapshot")
        core = cls(variants)
        try:
            core._load(d)
        except (KeyError, AssertionError, OverflowError, ValueError, IndexError) as exc:
            raise SnapshotError(f"inconsistent snapshot: {exc!r}") from exc
        return core

    def state_hash(self) -> bytes:
        """16-byte blake2b of the canonical serialization (:meth:`to_snapshot`): last_seq,
        assets, fee tiers, users (with their order-id marks), balances, symbols, hold
        records, books (every order and counter), fee accounts, the remembered NEWs,
        deposit, withdrawal and transfer references, reference marks."""
        return hashlib.blake2b(self.to_snapshot(), digest_size=16).digest()

    def content_hash(self) -> bytes:
        """Like :meth:`state_hash` but without ``last_seq``: equal before and after a
        rejected command (which only consumes a sequence number)."""
        return hashlib.blake2b(self.to_snapshot()[_HEAD.size :], digest_size=16).digest()

    # -------------------------------------------------------- conservation

    def conservation_errors(self, expected_net: dict[int, int] | None = None) -> list[str]:
        """Violations of the money invariants; [] when they all hold.

        For every asset: sum(available + held over users and accounts) + fee account
        == deposits - committed withdrawals; no balance or fee account negative; each
        user's held == the sum of its live holds (orders + pending withdrawals); the
        books hold exactly the orders the core holds funds for.

        Parameters
        ----------
        expected_net : dict, optional
            asset id -> deposits - withdrawals as counted by the caller (e.g. the
            simulator's own ledger of unique references); also compared.
        """
        av, hd, lv, uids, aids, fees, net, outstanding = self._arrays()
        errors: list[str] = []
        for k, aid in enumerate(aids):
            total = int(av[:, k, :].sum(dtype=np.int64)) + int(hd[:, k, :].sum(dtype=np.int64))
            total += fees[k]
            if total != net[k]:
                errors.append(
                    f"asset {aid}: balances + fees = {total} != deposits - withdrawals = {net[k]}"
                )
            if outstanding[k] != net[k]:
                errors.append(f"asset {aid}: outstanding {outstanding[k]} != {net[k]}")
            if fees[k] < 0:
                errors.append(f"asset {aid}: fee account negative ({fees[k]})")
            if expected_net is not None and expected_net.get(aid, 0) != net[k]:
                errors.append(
                    f"asset {aid}: deposits - withdrawals = {net[k]}, "
                    f"expected {expected_net.get(aid, 0)}"
                )
        for what, arr in (("available", av), ("held", hd)):
            for us, k, acc in np.argwhere(arr < 0)[:10]:
                errors.append(
                    f"user {uids[us]} asset {aids[k]} account {acc}: {what} "
                    f"negative ({int(arr[us, k, acc])})"
                )
        for us, k, acc in np.argwhere(hd != lv)[:10]:
            errors.append(
                f"user {uids[us]} asset {aids[k]} account {acc}: held {int(hd[us, k, acc])} "
                f"!= live holds {int(lv[us, k, acc])}"
            )
        in_books = 0
        for sid in self._symbol_ids():
            bk = self.book(sid)
            assert bk is not None
            in_books += int(bk.n_orders)
        if in_books != self.n_live_orders:
            errors.append(f"books hold {in_books} orders, the core {self.n_live_orders}")
        return errors

    # ------------------------------------------------------- read helpers

    def assets(self) -> dict[int, dict[str, int]]:
        """asset id -> decimals, fee account, deposited and withdrawn totals (minor units)."""
        return {
            a: {"decimals": dec, "fee_minor": fee, "deposited_minor": dep, "withdrawn_minor": wd}
            for a, dec, fee, _, dep, wd in self._dump(with_books=False)["assets"]
        }

    def symbols(self) -> dict[int, dict[str, int]]:
        """symbol id -> its configuration (ticks, lots, minor units) and ``halted``."""
        keys = (
            "base_asset_id", "quote_asset_id", "halted", "tick_step", "lot_step",
            "price_multiplier", "base_per_lot", "min_qty_lots", "max_qty_lots",
            "min_price_ticks", "max_price_ticks", "protection_ticks", "min_notional_minor",
        )  # fmt: skip
        return {
            row[0]: dict(zip(keys, row[1:], strict=True))
            for row in self._dump(with_books=False)["symbols"]
        }

    def users(self) -> dict[int, dict[str, int]]:
        """user id -> fee tier, taker/maker ppm and ``suspended``."""
        return {
            u: {"tier": t, "taker_ppm": tk, "maker_ppm": mk, "suspended": s}
            for u, t, tk, mk, s, _, _ in self._dump(with_books=False)["users"]
        }

    def fee_tiers(self) -> dict[int, tuple[int, int]]:
        """tier -> (maker ppm, taker ppm)."""
        return {t: (m, tk) for t, m, tk in self._dump(with_books=False)["fee_tiers"]}

    def withdrawals(self) -> dict[int, tuple[int, int, int, int, int]]:
        """withdrawal id -> (user, asset, account, amount minor, state).

        State: 1 held, 2 committed, 3 released.
        """
        return {
            w: (u, a, acc, amt, st)
            for w, u, a, acc, amt, st, _, _ in self._dump(with_books=False)["withdrawals"]
        }

    def balances(self, user_id: int) -> dict[tuple[int, int], tuple[int, int]]:
        """(asset id, account) -> (available, held) of one user, non-zero balances only."""
        return {
            (a, acc): (av, hd)
            for u, a, acc, av, hd in self._dump(with_books=False)["balances"]
            if u == user_id
        }


def sized(cls: type[Core], **capacity: int) -> type[Core]:
    """``cls`` whose every instance (new or rebuilt from a snapshot) is first sized by
    :meth:`pyx.core.CoreState.reserve` with ``capacity`` (keys: ``users``, ``assets``,
    ``symbols``, ``orders``, ``book_orders``, ``events``).

    The core process builds its state machine through this (config ``capacity_*``
    keys), so recovery and serving run on tables sized at start.
    """

    class SizedCore(cls):  # type: ignore[valid-type,misc]
        __doc__ = cls.__doc__

        def __init__(
            self, variants: frozenset[str] = frozenset(), ref_memory: int = REF_MEMORY
        ) -> None:
            super().__init__(variants, ref_memory)
            self.reserve(**capacity)

    SizedCore.__name__ = SizedCore.__qualname__ = cls.__name__
    return SizedCore
