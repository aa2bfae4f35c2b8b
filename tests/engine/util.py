"""Helpers for the durability tests: damage files the way disks do, through Storage."""

from __future__ import annotations

from engine.storage import Storage


def flip_bit(storage: Storage, name: str, offset: int, bit: int = 0) -> None:
    """Flip one bit of ``name`` at ``offset`` and make it durable (damage at rest)."""
    (byte,) = storage.read(name, offset, 1)
    storage.write_at(name, offset, bytes([byte ^ (1 << bit)]))
    storage.sync(name)


def cut(storage: Storage, name: str, size: int) -> None:
    """Truncate ``name`` to ``size`` bytes durably (what a torn write leaves)."""
    storage.truncate(name, size)
    storage.sync(name)


def put(storage: Storage, name: str, data: bytes) -> None:
    """Replace the content of ``name`` by ``data``, durably."""
    if name in storage.list():
        storage.truncate(name, 0)
    storage.append(name, data)
    storage.sync(name)
    storage.sync_dir()
