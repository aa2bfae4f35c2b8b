"""A wrk-style HTTP/1.1 load generator for ``bench.api`` (raw keep-alive sockets).

The aiohttp client costs more CPU per request than the API it measures (and runs on
the same 2-core machine), so the REST benchmark drives the API with this instead:

- every request is built (and signed) before the clock starts: the timed loop only
  writes bytes and parses status lines and ``Content-Length``;
- :func:`open_loop`: request ``k`` is planned at ``t0 + k / rate`` and written at
  that time on connection ``k % connections`` whether or not earlier answers came
  back (pipelined: HTTP/1.1 answers in order, so each connection's answers are
  matched FIFO with its planned times); latency is from the PLANNED send time to the
  end of the answer (coordinated-omission free).  A sender thread sleeps until each
  planned time; a receiver thread waits on all sockets (epoll) and parses answers;
- :func:`closed_loop`: each connection keeps ``depth`` requests in flight for a
  fixed time (throughput).

Both return the client's own CPU time (``time.process_time`` over the run), so a
report can show the load generator is not the bottleneck.  No ``main``: not a
benchmark of its own (``bench.run_all`` skips it).
"""

from __future__ import annotations

import collections
import select
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

RECV_BYTES = 1 << 18


class HttpError(RuntimeError):
    """An answer that is not ``200`` (or not HTTP/1.1 with a ``Content-Length``)."""


@dataclass
class LoadResult:
    """What one run measured."""

    latencies_ns: list[int]  # per request, from its planned send time (open loop)
    answered: int  # requests answered
    seconds: float  # wall time of the run
    client_cpu_s: float  # this process's CPU time during the run (all threads)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)


class _Parser:
    """Splits a byte stream into HTTP/1.1 answers (status, body)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The answers complete after ``data``."""
        buf = self.buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        while True:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            head = bytes(buf[pos:end]).lower()
            i = head.find(b"\r\ncontent-length:")
            if i < 0:
                raise HttpError(f"answer without Content-Length: {head[:200]!r}")
            j = head.find(b"\r\n", i + 2)
            n = int(head[i + 17 : j if j >= 0 else len(head)])
            start = end + 4
            if len(buf) < start + n:
                break
            status = int(head[9:12])
            out.append((status, bytes(buf[start : start + n])))
            pos = start + n
        if pos:
            del buf[:pos]
        return out


def _connect(host: str, port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    return socks


def _close(socks: Sequence[socket.socket]) -> None:
    for s in socks:
        s.close()


def open_loop(
    host: str, port: int, requests: Sequence[bytes], rate: int, connections: int
) -> LoadResult:
    """Send ``requests[k]`` at ``t0 + k / rate`` (module docstring).

    Raises
    ------
    HttpError
        An answer other than 200 (its body in the message).
    """
    n = len(requests)
    socks = _connect(host, port, connections)
    planned: list[collections.deque[int]] = [collections.deque() for _ in socks]
    index: list[collections.deque[int]] = [collections.deque() for _ in socks]
    lat = [0] * n
    done = 0
    statuses: collections.Counter[int] = collections.Counter()
    errors: list[BaseException] = []
    finished = threading.Event()

    def receive() -> None:
        nonlocal done
        ep = select.epoll()
        fds = {s.fileno(): c for c, s in enumerate(socks)}
        parsers = [_Parser() for _ in socks]
        for fd in fds:
            ep.register(fd, select.EPOLLIN)
        try:
            while done < n and not errors:
                for fd, _ in ep.poll(0.5):
                    c = fds[fd]
                    data = socks[c].recv(RECV_BYTES)
                    if not data:
                        raise HttpError("connection closed by the server")
                    now = time.perf_counter_ns()
                    for status, body in parsers[c].feed(data):
                        statuses[status] += 1
                        if status != 200:
                            raise HttpError(f"answer {status}: {body[:200]!r}")
                        lat[index[c].popleft()] = now - planned[c].popleft()
                        done += 1
        except BaseException as e:  # reported by the caller's thread
            errors.append(e)
        finally:
            ep.close()
            finished.set()

    rx = threading.Thread(target=receive, name="restload-rx", daemon=True)
    cpu0 = time.process_time()
    t0 = time.perf_counter_ns() + 20_000_000
    rx.start()
    try:
        for k, req in enumerate(requests):
            at = t0 + k * 1_000_000_000 // rate
            wait = at - time.perf_counter_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            if errors:
                break
            c = k % connections
            # Bookkeeping before the bytes leave: the answer may beat the next line.
            index[c].append(k)
            planned[c].append(at)
            socks[c].sendall(req)
        finished.wait()
    finally:
        rx.join(timeout=10)
        _close(socks)
    if errors:
        raise errors[0]
    wall = (time.perf_counter_ns() - t0) / 1e9
    return LoadResult(lat, done, wall, time.process_time() - cpu0, statuses)


def closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    seconds: float,
    connections: int,
    depth: int = 1,
) -> LoadResult:
    """Keep ``depth`` requests in flight per connection for ``seconds``; requests are
    taken in order from ``requests`` (which must be long enough).

    Raises
    ------
    HttpError
        An answer other than 200, or ``requests`` ran out.
    """
    socks = _connect(host, port, connections)
    fds = {s.fileno(): c for c, s in enumerate(socks)}
    parsers = [_Parser() for _ in socks]
    inflight = [0] * connections
    statuses: collections.Counter[int] = collections.Counter()
    nxt = 0
    answered = 0
    ep = select.epoll()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    end = t0 + seconds
    try:
        for fd in fds:
            ep.register(fd, select.EPOLLIN)
        for c, s in enumerate(socks):
            s.sendall(b"".join(requests[nxt : nxt + depth]))
            nxt += depth
            inflight[c] = depth
        stopping = False
        while any(inflight):
            for fd, _ in ep.poll(0.5):
                c = fds[fd]
                data = socks[c].recv(RECV_BYTES)
                if not data:
                    raise HttpError("connection closed by the server")
                got = parsers[c].feed(data)
                for status, body in got:
                    statuses[status] += 1
                    if status != 200:
                        raise HttpError(f"answer {status}: {body[:200]!r}")
                answered += len(got)
                inflight[c] -= len(got)
                if not stopping and time.perf_counter() >= end:
                    stopping = True
                if not stopping and got:
                    k = len(got)
                    if nxt + k > len(requests):
                        raise HttpError("closed loop ran out of prepared requests")
                    socks[c].sendall(b"".join(requests[nxt : nxt + k]))
                    nxt += k
                    inflight[c] += k
    finally:
        ep.close()
        _close(socks)
    wall = time.perf_counter() - t0
    return LoadResult([], answered, wall, time.process_time() - cpu0, statuses)


def process_cpu_ns(pid: int) -> int:
    """CPU time (ns, all threads) a process has used so far (Linux ``schedstat``)."""
    import os

    total = 0
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total
