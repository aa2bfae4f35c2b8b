"""Keeping an asyncio loop on a core link's current descriptor.

A stream link (:mod:`bindings.streamlink`) gets a new descriptor each time it
reconnects and may queue bytes the kernel did not take; a zmq link has one
descriptor for life and never queues here.  :class:`LoopWatch` hides both: the loop
reads when the descriptor is readable, stops watching it before it is closed (a new
socket may get the same number), and watches for writability only while queued
bytes wait.  The gateway and the API use it for their trade link, the API also for
its event source.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol


class Watchable(Protocol):
    """What a link offers an event loop (``CoreClient``, ``StreamTradeClient``,
    ``StreamEventSource``)."""

    def watch(
        self, on_open: Callable[[int], None] | None, on_close: Callable[[int], None] | None
    ) -> None:
        """``on_open(fd)`` now if connected and after each reconnect; ``on_close(fd)``
        before a descriptor is closed."""


class Writable(Watchable, Protocol):
    """A link that may queue bytes (``wants_write``) and write them when writable."""

    @property
    def wants_write(self) -> bool:
        """Whether queued bytes wait for the descriptor to become writable."""

    def flush_nowait(self) -> bool:
        """Write what the kernel takes now; True when nothing is left."""


class LoopWatch:
    """The loop's watch on one link (see the module docstring).

    Parameters
    ----------
    loop : asyncio.AbstractEventLoop
        The loop to watch on.
    on_readable : callable
        Called (by the loop) when the current descriptor is readable.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_readable: Callable[[], None]) -> None:
        self.loop = loop
        self.on_readable = on_readable
        self.fd = -1  # the descriptor being watched (-1: none)
        self._link: Watchable | None = None
        self._writer = False  # whether the loop watches it for writability

    def start(self, link: Watchable) -> None:
        """Follow ``link``'s descriptor from now on."""
        self._link = link
        link.watch(self._open, self._close)

    def start_fixed(self, fd: int) -> None:
        """Watch one descriptor that never changes (a zmq socket's)."""
        self._open(fd)

    def stop(self) -> None:
        """Stop following and watching (before the link is closed)."""
        if self._link is not None:
            self._link.watch(None, None)
            self._link = None
        if self.fd >= 0:
            self._close(self.fd)

    def sent(self, link: Writable) -> None:
        """After a send: watch for writability while ``link`` has bytes queued."""
        if link.wants_write and not self._writer and self.fd >= 0:
            self._writer = True
            self.loop.add_writer(self.fd, self._writable, link)

    def _writable(self, link: Writable) -> None:
        if link.flush_nowait() and self._writer:
            self._writer = False
            self.loop.remove_writer(self.fd)

    def _open(self, fd: int) -> None:
        self.fd = fd
        self.loop.add_reader(fd, self.on_readable)

    def _close(self, fd: int) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(fd)
            if self._writer:
                self.loop.remove_writer(fd)
        self._writer = False
        self.fd = -1
