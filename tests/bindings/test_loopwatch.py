"""bindings.loopwatch: an asyncio loop follows a link's descriptor across reconnects
and watches for writability only while the link has bytes queued."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable


class FakeLink:
    """A link whose connection is a socketpair end; the test drives (re)connects."""

    def __init__(self) -> None:
        self.on_open: Callable[[int], None] | None = None
        self.on_close: Callable[[int], None] | None = None
        self.mine: socket.socket | None = None
        self.peer: socket.socket | None = None
        self.queued = b""

    def connect(self) -> None:
        self.mine, self.peer = socket.socketpair()
        self.mine.setblocking(False)
        self.peer.setblocking(False)
        if self.on_open is not None:
            self.on_open(self.mine.fileno())

    def lose(self) -> None:
        assert self.mine is not None and self.peer is not None
        if self.on_close is not None:
            self.on_close(self.mine.fileno())
        self.mine.close()
        self.peer.close()
        self.mine = self.peer = None

    def watch(
        self, on_open: Callable[[int], None] | None, on_close: Callable[[int], None] | None
    ) -> None:
        self.on_open, self.on_close = on_open, on_close
        if on_open is not None and self.mine is not None:
            on_open(self.mine.fileno())

    @property
    def wants_write(self) -> bool:
        return bool(self.queued)

    def flush_nowait(self) -> bool:
        assert self.mine is not None
        self.mine.send(self.queued)
        self.queued = b""
        return True


def test_reads_follow_reconnects_and_writes_only_while_queued() -> None:
    from bindings.loopwatch import LoopWatch

    async def main() -> None:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        link = FakeLink()
        link.connect()
        w = LoopWatch(loop, woken.set)
        w.start(link)
        assert link.mine is not None and link.peer is not None
        assert w.fd == link.mine.fileno()
        link.peer.send(b"x")
        await asyncio.wait_for(woken.wait(), 10)
        assert link.mine.recv(16) == b"x"
        # Bytes queued: the loop writes them once writable, then stops watching.
        link.queued = b"frame"
        w.sent(link)
        assert await asyncio.wait_for(loop.sock_recv(link.peer, 16), 10) == b"frame"
        assert not link.wants_write
        # Lost: the descriptor is unwatched before it closes; a reconnect is watched.
        link.lose()
        assert w.fd == -1
        link.connect()
        assert link.mine is not None and link.peer is not None and w.fd == link.mine.fileno()
        woken.clear()
        link.peer.send(b"y")
        await asyncio.wait_for(woken.wait(), 10)
        w.stop()
        assert w.fd == -1 and link.on_open is None
        link.lose()

    asyncio.run(main())


def test_a_fixed_descriptor_is_watched_until_stop() -> None:
    from bindings.loopwatch import LoopWatch

    async def main() -> None:
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        a, b = socket.socketpair()
        w = LoopWatch(loop, woken.set)
        w.start_fixed(a.fileno())
        b.send(b"z")
        await asyncio.wait_for(woken.wait(), 10)
        w.stop()
        assert w.fd == -1
        a.close()
        b.close()

    asyncio.run(main())
