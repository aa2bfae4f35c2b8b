"""A tiny deterministic stand-in for ``engine.core.Core`` (same durability-facing API).

It folds every command record into a running blake2b chain and sums ``qty_lots``,
so any lost, repeated, reordered or altered command changes its state hash.  It
is batch-independent (the result of applying records one by one or in batches is
the same), like the real core.  Used where a test needs to see exactly which
records were applied, and to test the journal without the real core.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from bursa_wire.layout import CMD_DTYPE, EV_DTYPE, REPLY_DTYPE

_SNAP = struct.Struct("<QQq16s")


class FakeCore:
    """State = (last_seq, commands applied, sum of qty_lots, hash chain of the records)."""

    def __init__(self, variants: frozenset[str] = frozenset()) -> None:
        self.variants = variants
        self.last_seq = 0
        self.n_applied = 0
        self.qty_sum = 0
        self.chain = bytes(16)
        self.applied_seqs: list[int] = []

    def apply(self, cmds):
        """Apply a batch; one ACCEPTED-like event and one applied reply per command."""
        assert cmds.dtype == CMD_DTYPE
        seqs = cmds["seq"].astype(np.int64)
        assert seqs[0] == self.last_seq + 1, (int(seqs[0]), self.last_seq)
        assert (np.diff(seqs) == 1).all()
        raw = cmds.tobytes()
        chain = self.chain
        for i in range(len(cmds)):
            chain = hashlib.blake2b(chain + raw[i * 96 : (i + 1) * 96], digest_size=16).digest()
        self.chain = chain
        self.qty_sum += int(cmds["qty_lots"].sum())
        self.n_applied += len(cmds)
        self.last_seq = int(seqs[-1])
        self.applied_seqs.extend(int(s) for s in seqs)
        events = np.zeros(len(cmds), dtype=EV_DTYPE)
        events["seq"] = cmds["seq"]
        events["ts_ns"] = cmds["ts_ns"]
        events["order_id"] = cmds["order_id"]
        events["kind"] = 1
        replies = np.zeros(len(cmds), dtype=REPLY_DTYPE)
        replies["seq"] = cmds["seq"]
        replies["client_ref"] = cmds["client_ref"]
        replies["order_id"] = cmds["order_id"]
        replies["kind"] = cmds["kind"]
        replies["status"] = 1
        return events, replies

    def state_hash(self) -> bytes:
        """blake2b-128 over the canonical serialization."""
        return hashlib.blake2b(self.to_snapshot(), digest_size=16).digest()

    def to_snapshot(self) -> bytes:
        """Canonical serialization."""
        return _SNAP.pack(self.last_seq, self.n_applied, self.qty_sum, self.chain)

    @classmethod
    def from_snapshot(cls, data: bytes, variants: frozenset[str] = frozenset()) -> FakeCore:
        """Inverse of :meth:`to_snapshot`."""
        if len(data) != _SNAP.size:
            raise ValueError(f"bad fake snapshot size {len(data)}")
        core = cls(variants)
        core.last_seq, core.n_applied, core.qty_sum, core.chain = _SNAP.unpack(data)
        return core

    def conservation_errors(self) -> list[str]:
        """The fake holds no money: it only checks its own counters agree."""
        return [] if self.n_applied <= self.last_seq else ["more commands than seqs"]


def make_cmds(n: int, *, start_ref: int = 1) -> np.ndarray:
    """``n`` distinct unsequenced commands (seq/ts_ns left 0 for the sequencer)."""
    cmds = np.zeros(n, dtype=CMD_DTYPE)
    refs = np.arange(start_ref, start_ref + n, dtype=np.uint64)
    cmds["client_ref"] = refs
    cmds["order_id"] = refs * 7 + 3
    cmds["qty_lots"] = (refs % 13 + 1).astype(np.int64)
    cmds["price_ticks"] = (refs % 101 + 1000).astype(np.int64)
    cmds["kind"] = 1
    cmds["side"] = (refs % 2 + 1).astype(np.uint8)
    return cmds
