"""The core loop's poller: one epoll over the ZeroMQ sockets' descriptors and raw ones.

``zmq.Poller.poll`` asks libzmq about every registered ZeroMQ socket on every
call: for each, a ``getpid`` (libzmq's fork check) and a ``poll`` of the
socket's mailbox, then a ``poll`` over everything; with three command sockets
that is seven system calls and a Python wrapper per loop turn, whatever woke
the loop.  :class:`LoopPoller` has the same interface (``register``,
``modify``, ``unregister``, ``poll`` returning ``(socket or fd, events)`` pairs
with ZeroMQ's ``POLLIN``/``POLLOUT``/``POLLERR`` bits) over one ``epoll``:

- a raw descriptor (the stream links) is an epoll entry like any other;
- a ZeroMQ socket is watched through its ``ZMQ_FD``, which only says "libzmq
  has commands to process", not "a message is there": when it fires, the
  socket's ``ZMQ_EVENTS`` decides.  Any operation on the socket (a receive, a
  send, a ``ZMQ_EVENTS`` query) may process those commands and clear the
  descriptor while a message waits, so the caller :meth:`touch` es every ZeroMQ
  socket it used in a turn, and the next :meth:`poll` asks those sockets'
  ``ZMQ_EVENTS`` before it waits (and does not wait if one is ready).

A turn served only by the stream link thus costs one ``epoll_wait``; a turn on
a ZeroMQ socket asks that socket alone.
"""

from __future__ import annotations

import select
import time
from typing import Any, cast

import zmq

POLLIN = int(zmq.POLLIN)
POLLOUT = int(zmq.POLLOUT)
POLLERR = int(zmq.POLLERR)
_EVENTS = int(zmq.EVENTS)
_EPOLLIN = select.EPOLLIN
_EPOLLOUT = select.EPOLLOUT
# Events reported as POLLERR (zmq_poll reports every poll bit but IN/OUT/PRI so).
_EPOLL_ERR = select.EPOLLERR | select.EPOLLHUP | select.EPOLLRDHUP
# epoll_wait returns at most this many descriptors per call (the rest next turn).
MAX_EVENTS = 256

Pollable = Any  # a zmq.Socket or a raw descriptor (int)


def _to_epoll(flags: int) -> int:
    return (_EPOLLIN if flags & POLLIN else 0) | (_EPOLLOUT if flags & POLLOUT else 0)


class LoopPoller:
    """``zmq.Poller``'s interface over one ``select.epoll`` (see the module doc)."""

    def __init__(self) -> None:
        self._ep = select.epoll()
        # ZMQ_FD -> (socket, ZeroMQ flags asked for)
        self._zmq: dict[int, tuple[zmq.Socket[bytes], int]] = {}
        self._by_sock: dict[zmq.Socket[bytes], int] = {}  # socket -> its ZMQ_FD
        # ZeroMQ sockets used since the last poll: their descriptor may have been
        # cleared while a message waits, so poll() asks their ZMQ_EVENTS first.
        self._touched: set[zmq.Socket[bytes]] = set()

    def register(self, obj: Pollable, flags: int = POLLIN) -> None:
        """Watch a ZeroMQ socket or a raw descriptor for ``flags`` (ZeroMQ's bits)."""
        if isinstance(obj, zmq.Socket):
            fd = cast(int, obj.getsockopt(zmq.FD))
            self._zmq[fd] = (obj, flags)
            self._by_sock[obj] = fd
            self._ep.register(fd, _EPOLLIN)  # the mailbox descriptor: readable = commands
            self._touched.add(obj)  # messages may already wait
        else:
            self._ep.register(int(obj), _to_epoll(flags))

    def modify(self, obj: Pollable, flags: int) -> None:
        """Change the flags a registered socket or descriptor is watched for."""
        if isinstance(obj, zmq.Socket):
            self._zmq[self._by_sock[obj]] = (obj, flags)
            self._touched.add(obj)
        else:
            self._ep.modify(int(obj), _to_epoll(flags))

    def unregister(self, obj: Pollable) -> None:
        """Stop watching a socket or descriptor."""
        if isinstance(obj, zmq.Socket):
            fd = self._by_sock.pop(obj)
            del self._zmq[fd]
            self._touched.discard(obj)
        else:
            fd = int(obj)
        self._ep.unregister(fd)

    def touch(self, sock: zmq.Socket[bytes]) -> None:
        """``sock`` was used (received from, sent on): check it before the next wait."""
        self._touched.add(sock)

    def poll(self, timeout_ms: int = -1) -> list[tuple[Pollable, int]]:
        """Wait up to about ``timeout_ms`` (-1: forever) for readiness; returns
        ``(socket or fd, events)`` pairs in ZeroMQ's bits, as ``zmq.Poller.poll``."""
        ready: list[tuple[Pollable, int]] = []
        # Sockets already reported (from the touched ones), not reported twice.
        seen: set[zmq.Socket[bytes]] = set()
        if self._touched:
            for sock in self._touched:
                _, flags = self._zmq[self._by_sock[sock]]
                ev = cast(int, sock.getsockopt(_EVENTS)) & flags
                if ev:
                    ready.append((sock, ev))
                    seen.add(sock)
            self._touched.clear()
        timeout = 0.0 if ready else (-1.0 if timeout_ms < 0 else timeout_ms / 1000)
        return self._wait(ready, seen, timeout, None)

    def finish(self, fired: list[tuple[int, int]], timeout_ms: int) -> list[tuple[Pollable, int]]:
        """The rest of :meth:`poll` after its first ``epoll`` wait returned ``fired``
        (no socket touched; the compiled turn, :mod:`pyx.smallturn`, waits itself
        and hands over a wake-up that involves a ZeroMQ socket)."""
        assert not self._touched
        timeout = -1.0 if timeout_ms < 0 else timeout_ms / 1000
        return self._wait([], set(), timeout, fired)

    def _wait(
        self,
        ready: list[tuple[Pollable, int]],
        seen: set[zmq.Socket[bytes]],
        timeout: float,
        fired: list[tuple[int, int]] | None,
    ) -> list[tuple[Pollable, int]]:
        deadline = 0.0
        while True:
            if fired is None:
                fired = self._ep.poll(timeout, MAX_EVENTS)
            for fd, ev in fired:
                z = self._zmq.get(fd)
                if z is None:
                    out = (POLLIN if ev & _EPOLLIN else 0) | (POLLOUT if ev & _EPOLLOUT else 0)
                    ready.append((fd, out | (POLLERR if ev & _EPOLL_ERR else 0)))
                    continue
                sock, flags = z
                if sock in seen:
                    continue
                zev = cast(int, sock.getsockopt(_EVENTS)) & flags
                if zev:
                    ready.append((sock, zev))
            if ready or not fired or timeout == 0.0:
                return ready
            fired = None
            # Only libzmq's own commands (no message yet): wait again here, as zmq_poll
            # does, instead of a turn that finds nothing.  The timeout is counted again
            # from this first empty wake-up (no clock read on the usual path), so the
            # whole wait is at most twice ``timeout_ms``.
            now = time.monotonic()
            if timeout > 0:
                if not deadline:
                    deadline = now + timeout
                timeout = max(deadline - now, 0.0)

    def close(self) -> None:
        """Close the epoll descriptor (the watched ones stay open)."""
        self._ep.close()
