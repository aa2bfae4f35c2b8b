"""A wrk-style HTTP/1.1 load generator for ``bench.api`` (raw keep-alive sockets).

The aiohttp client costs more CPU per request than the API it measures (and runs on
the same 2-core machine), so the REST benchmark drives the API with this instead:

- every request is built (and signed) before the clock starts: the timed loop only
  writes bytes and splits and checks answers;
- every answer is checked: status 200, and its body contains the byte string the
  caller expects for its request (``expect[k]``: the order's ``clientOrderId``, or
  ``"orderId": `` when the API generates ids); anything else fails the run, and
  only checked answers are counted;
- :func:`open_loop`: request ``k`` is planned at ``t0 + k / rate`` and written at
  that time on connection ``k % connections`` whether or not earlier answers came
  back (pipelined: HTTP/1.1 answers in order, so each connection's answers are
  matched FIFO with its planned times); latency is from the PLANNED send time to the
  end of the answer (coordinated-omission free).  One thread
  (:func:`pyx.restload.open_loop`, GIL released): it writes every request that is due,
  then waits on all sockets (``epoll_pwait2``) until the next planned time;
- :func:`closed_loop`: each connection keeps ``depth`` requests in flight for a
  fixed time (throughput); a connection's next request is written as soon as an
  answer on it was checked.  The loop is :func:`pyx.restload.closed_loop` (C, one
  epoll loop, GIL released): the Python loop it replaced cost ~26 µs of CPU per
  order on the machine the API and the core share, and sat in the round trip that
  bounds the 8-connection rate (docs/api.md, "The load generator in C").

Both return the client's own CPU time (``time.process_time`` over the run), so a
report can show the load generator is not the bottleneck.  No ``main``: not a
benchmark of its own (``bench.run_all`` skips it).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pyx import restload as _c


class HttpError(RuntimeError):
    """An answer that is not ``200`` with the expected bytes in its body (or not
    HTTP/1.1 with a ``Content-Length``), or a connection the server closed."""


@dataclass
class LoadResult:
    """What one run measured."""

    latencies_ns: list[int]  # per request, from its planned send time (open loop)
    answered: int  # requests answered (status 200, the expected bytes in the body)
    seconds: float  # wall time of the run
    client_cpu_s: float  # this process's CPU time during the run (all threads)


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


def _check_expect(requests: Sequence[bytes], expect: Sequence[bytes]) -> None:
    if len(expect) != len(requests):
        raise ValueError(f"{len(expect)} expected answers for {len(requests)} requests")


def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    rate: int,
    connections: int,
    expect: Sequence[bytes],
) -> LoadResult:
    """Send ``requests[k]`` at ``t0 + k / rate`` (module docstring); its answer must be
    200 with ``expect[k]`` in its body.  One thread: :func:`pyx.restload.open_loop`.

    Raises
    ------
    HttpError
        Any other answer (its start in the message), a closed connection, or no
        answer for ``pyx.restload.IDLE_LIMIT_MS``.
    """
    _check_expect(requests, expect)
    reqs, exp = tuple(requests), tuple(expect)
    socks = _connect(host, port, connections)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    try:
        fds = [s.fileno() for s in socks]
        lat, answered = _c.open_loop(fds, reqs, exp, rate, HttpError)
    finally:
        _close(socks)
    # The C loop plans its first send 20 ms after it starts.
    wall = time.perf_counter() - t0 - 0.02
    return LoadResult(lat, answered, wall, time.process_time() - cpu0)


def closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    seconds: float,
    connections: int,
    expect: Sequence[bytes],
    depth: int = 1,
) -> LoadResult:
    """Keep ``depth`` requests in flight per connection for ``seconds``, then wait for
    the answers in flight; requests are taken in order from ``requests`` (which must
    be long enough) and ``requests[k]``'s answer must be 200 with ``expect[k]`` in its
    body.  One thread: :func:`pyx.restload.closed_loop`.

    Raises
    ------
    HttpError
        Any other answer, a closed connection, no answer for
        ``pyx.restload.IDLE_LIMIT_MS``, or ``requests`` ran out.
    """
    _check_expect(requests, expect)
    reqs, exp = tuple(requests), tuple(expect)
    socks = _connect(host, port, connections)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    try:
        fds = [s.fileno() for s in socks]
        answered, _ = _c.closed_loop(fds, reqs, exp, seconds, depth, HttpError)
    finally:
        _close(socks)
    wall = time.perf_counter() - t0
    return LoadResult([], answered, wall, time.process_time() - cpu0)


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
