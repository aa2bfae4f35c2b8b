"""Where liabilities come from: a core data directory at a seq, or a JSON balances file.

A data directory is rebuilt with the core's own recovery code, read-only:
without ``seq``, :func:`engine.recovery.recover` (newest valid snapshot plus the
journal tail, exactly what ``bursa replay --from-snapshot`` does); with ``seq``,
every journal batch from seq 1 (archived segments included) through the same
``Core.apply``, the batch holding ``seq`` cut after it, so the state is exactly
the one after command ``seq``.
"""

from __future__ import annotations

import json
from typing import Any

from engine.core import Core
from engine.journal import JournalCorrupt, JournalReader
from engine.recovery import recover
from engine.storage import FileStorage, StorageError
from por.tree import BalanceRow, Liabilities, PorError, liabilities


def core_at(data_dir: str, seq: int | None = None) -> Core:
    """The core state after command ``seq`` (default: the last durable one) of ``data_dir``.

    Raises
    ------
    PorError
        The journal is corrupt, unreadable or ends before ``seq``.
    """
    try:
        storage = FileStorage(data_dir)
    except (OSError, StorageError) as e:
        raise PorError(f"{data_dir}: cannot open: {e}") from e
    try:
        if seq is None:
            core, _ = recover(storage, repair=False)
            assert isinstance(core, Core)
            return core
        core = Core()
        reader = JournalReader(storage, include_archived=True)
        for batch, cmds in reader.batches(after_seq=0):
            if batch.first_seq > seq:
                break
            core.apply(cmds[cmds["seq"] <= seq] if batch.last_seq > seq else cmds)
            if core.last_seq >= seq:
                break
    except (JournalCorrupt, StorageError) as e:
        raise PorError(f"{data_dir}: {e}") from e
    finally:
        storage.close()
    if core.last_seq != seq:
        raise PorError(f"{data_dir}: the journal ends at seq {core.last_seq}, before seq {seq}")
    return core


def from_core(core: Core) -> Liabilities:
    """Every registered user's liabilities (available + held over accounts) per asset.

    The exchange's fee accounts are not user liabilities and stay out of the tree
    (they are reported beside it, :func:`fee_accounts`).
    """
    dump = core._dump(with_books=False)  # one canonical pass (Core.balances is per user)
    rows = [BalanceRow(u, a, acc, av, hd) for u, a, acc, av, hd in dump["balances"]]
    users = [row[0] for row in dump["users"]]
    assets = [row[0] for row in dump["assets"]]
    return liabilities(core.last_seq, rows, users=users, assets=assets)


def fee_accounts(core: Core) -> dict[int, int]:
    """asset id -> the exchange's fee account (collected fees, owed to no user)."""
    return {a: v["fee_minor"] for a, v in core.assets().items()}


def net_deposits(core: Core) -> dict[int, int]:
    """asset id -> deposits - committed withdrawals: what the core says it holds."""
    return {a: v["deposited_minor"] - v["withdrawn_minor"] for a, v in core.assets().items()}


def _no_dup(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise PorError(f"duplicate JSON key {k!r}")
        out[k] = v
    return out


def from_json(path: str) -> Liabilities:
    """Liabilities from a balances file (docs/por.md, "Balances file")::

        {"seq": 42, "assets": [1, 2],
         "balances": [{"user": 7, "asset": 1, "account": 0, "available": 5, "held": 0}, ...]}

    ``assets`` and ``account`` are optional; unknown keys, duplicate JSON keys and
    every case :func:`por.tree.liabilities` rejects raise :class:`PorError`.
    """
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f, object_pairs_hook=_no_dup)
    except (OSError, ValueError) as e:
        raise PorError(f"{path}: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("balances"), list):
        raise PorError(f"{path}: expected an object with a 'balances' list")
    if set(doc) - {"seq", "assets", "balances"}:
        raise PorError(f"{path}: unknown keys {sorted(set(doc) - {'seq', 'assets', 'balances'})}")
    rows = []
    for i, r in enumerate(doc["balances"]):
        if not isinstance(r, dict) or set(r) - {"user", "asset", "account", "available", "held"}:
            raise PorError(f"{path}: balances[{i}]: unknown or missing fields")
        try:
            rows.append(
                BalanceRow(r["user"], r["asset"], r.get("account", 0), r["available"], r["held"])
            )
        except KeyError as e:
            raise PorError(f"{path}: balances[{i}]: missing {e}") from e
    assets = doc.get("assets", [])
    if not isinstance(assets, list):
        raise PorError(f"{path}: 'assets' must be a list")
    return liabilities(doc.get("seq"), rows, assets=assets)  # type: ignore[arg-type]
