"""The REST load generator (bench/_restload.py, pyx/restload.pyx): its answer splitter
against the Python parser it replaced (random streams split at random points), and
both loops against a small HTTP/1.1 server in a thread that counts what it answered:
a run must count exactly the answers the server wrote, and fail on a non-200, on a
200 that is not the request's acknowledgement, on a closed connection and on running
out of requests."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import _restload as restload
from bench._restload import HttpError
from pyx.restload import MAX_ANSWER_BYTES, AnswerSplitter


class OracleParser:
    """The Python parser ``bench._restload`` used before pyx.restload (the oracle),
    plus the checks the compiled one adds (HTTP/1.1 status line, a numeric length,
    the answer bound)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self.buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        while True:
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                if len(buf) - pos >= MAX_ANSWER_BYTES:
                    raise HttpError("too big")
                break
            head = bytes(buf[pos:end]).lower()
            if not head.startswith(b"http/1.1 ") or not head[9:12].isdigit() or len(head) < 12:
                raise HttpError("malformed")
            i = head.find(b"\r\ncontent-length:")
            if i < 0:
                raise HttpError("malformed")
            j = head.find(b"\r\n", i + 2)
            value = head[i + 17 : j if j >= 0 else len(head)].strip(b" \t")
            if not value.isdigit():
                raise HttpError("malformed")
            n = int(value)
            start = end + 4
            if start - pos + n > MAX_ANSWER_BYTES:
                raise HttpError("too big")
            if len(buf) < start + n:
                break
            out.append((int(head[9:12]), bytes(buf[start : start + n])))
            pos = start + n
        if pos:
            del buf[:pos]
        return out


def answer(status: int, body: bytes, name: str = "Content-Length", extra: str = "") -> bytes:
    """An HTTP/1.1 answer as the API writes one (headers around the length)."""
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}"
        f"{name}: {len(body)}\r\nServer: t\r\n\r\n"
    ).encode() + body


ANSWERS = st.builds(
    answer,
    st.sampled_from([200, 200, 200, 400, 404, 503]),
    st.binary(max_size=300),
    st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH", "Content-length"]),
    st.sampled_from(["", "X-MBX-USED-WEIGHT-1M: 1\r\n", "X-Content-Length-Like: 7\r\n"]),
)
BAD_ANSWERS = [
    b"HTTP/1.1 200 OK\r\nServer: t\r\n\r\n{}",  # no Content-Length
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
]
BAD = st.sampled_from(BAD_ANSWERS)


def run(parser: Callable[[], object], chunks: list[bytes]) -> tuple[list[tuple[int, bytes]], bool]:
    p = parser()
    got: list[tuple[int, bytes]] = []
    for c in chunks:
        try:
            got += p.feed(c)  # type: ignore[attr-defined]
        except HttpError:
            return got, True
    return got, False


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(ANSWERS, ANSWERS, ANSWERS, BAD), max_size=12), st.data())
def test_splitter_matches_oracle(answers: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(answers)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    got = run(lambda: AnswerSplitter(HttpError), chunks)
    assert got == run(OracleParser, chunks)
    if not any(a in BAD_ANSWERS for a in answers):
        assert not got[1] and len(got[0]) == len(answers)


# A small HTTP/1.1 server: answers each request with ``reply(k, body)`` (k counts
# requests over all connections), None closes the connection.
Reply = Callable[[int, bytes], bytes | None]


class Server:
    def __init__(self, reply: Reply, chunked: bool = True) -> None:
        self.reply = reply
        self.chunked = chunked
        self.answered = 0
        self.lock = threading.Lock()
        self.k = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self.serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def serve(self, conn: socket.socket) -> None:
        # OSError: the client closed first (a run that failed).
        with contextlib.suppress(OSError):
            self.answer_all(conn)

    def answer_all(self, conn: socket.socket) -> None:
        rng = random.Random(conn.fileno())
        buf = b""
        with conn:
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                    continue
                head = buf[:end].lower()
                i = head.find(b"content-length:")
                n = int(head[i + 15 :].split(b"\r\n")[0]) if i >= 0 else 0
                while len(buf) < end + 4 + n:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[end + 4 : end + 4 + n], buf[end + 4 + n :]
                with self.lock:
                    k = self.k
                    self.k += 1
                out = self.reply(k, body)
                if out is None:
                    return
                # Written in random pieces: the client must join partial answers.
                pos = 0
                while pos < len(out):
                    step = rng.randint(1, len(out)) if self.chunked else len(out)
                    conn.sendall(out[pos : pos + step])
                    pos += step
                    if pos < len(out) and rng.random() < 0.1:
                        time.sleep(0.0005)
                with self.lock:
                    self.answered += 1

    def close(self) -> None:
        self.sock.close()
        for t in self.threads:
            t.join(timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(reply: Reply, chunked: bool = True) -> Server:
        servers.append(Server(reply, chunked))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def requests(n: int) -> tuple[list[bytes], list[bytes]]:
    """``n`` order-like requests whose bodies carry their number, and what each answer
    must contain (that number as the API's ``orderId``)."""
    reqs = [
        b"POST /api/v3/order HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\nid=%d"
        % (len(b"id=%d" % k), k)
        for k in range(n)
    ]
    return reqs, [b'"orderId": %d,' % k for k in range(n)]


def ack(k: int, body: bytes) -> bytes:
    """The acknowledgement of the request whose body is ``id=<n>``."""
    return answer(200, b'{"symbol": "X", "orderId": %s, "orderListId": -1}' % body[3:])


@pytest.mark.parametrize(("connections", "depth"), [(1, 1), (8, 1), (3, 4)])
def test_closed_loop_counts_every_answer(
    serve: Callable[..., Server], connections: int, depth: int
) -> None:
    srv = serve(ack)
    reqs, expect = requests(200_000)
    r = restload.closed_loop("127.0.0.1", srv.port, reqs, 0.3, connections, expect, depth)
    srv.close()
    # Drained: every request written was answered, and every answer was counted.
    assert r.answered == srv.answered == srv.k
    assert r.answered > connections * depth
    assert r.seconds >= 0.3


def test_closed_loop_fails_on_non_200(serve: Callable[..., Server]) -> None:
    srv = serve(lambda k, body: ack(k, body) if k != 50 else answer(400, b'{"code": -1013}'))
    reqs, expect = requests(100_000)
    with pytest.raises(HttpError, match="answer 400"):
        restload.closed_loop("127.0.0.1", srv.port, reqs, 5.0, 4, expect)


def test_closed_loop_fails_on_another_requests_answer(serve: Callable[..., Server]) -> None:
    # A 200 that is not this request's acknowledgement (the order id of another).
    srv = serve(lambda k, body: ack(k, body if k != 30 else b"id=999999"))
    reqs, expect = requests(100_000)
    with pytest.raises(HttpError, match="lacks"):
        restload.closed_loop("127.0.0.1", srv.port, reqs, 5.0, 2, expect)


def test_closed_loop_fails_on_close_and_on_running_out(serve: Callable[..., Server]) -> None:
    srv = serve(lambda k, body: ack(k, body) if k != 20 else None)
    reqs, expect = requests(100_000)
    with pytest.raises(HttpError, match="closed"):
        restload.closed_loop("127.0.0.1", srv.port, reqs, 5.0, 2, expect)
    srv = serve(ack)
    reqs, expect = requests(40)
    with pytest.raises(HttpError, match="ran out"):
        restload.closed_loop("127.0.0.1", srv.port, reqs, 5.0, 2, expect)


def test_closed_loop_fails_on_malformed_answer(serve: Callable[..., Server]) -> None:
    srv = serve(lambda k, body: b"HTTP/1.1 200 OK\r\nServer: t\r\n\r\n" if k == 5 else ack(k, body))
    reqs, expect = requests(100_000)
    with pytest.raises(HttpError, match="Content-Length"):
        restload.closed_loop("127.0.0.1", srv.port, reqs, 5.0, 1, expect)


def test_open_loop_counts_and_checks(serve: Callable[..., Server]) -> None:
    srv = serve(ack)
    reqs, expect = requests(300)
    r = restload.open_loop("127.0.0.1", srv.port, reqs, 3000, 4, expect)
    assert r.answered == srv.answered == 300
    assert all(x > 0 for x in r.latencies_ns)
    srv = serve(lambda k, body: ack(k, body) if k != 100 else answer(503, b"{}"))
    with pytest.raises(HttpError, match="answer 503"):
        restload.open_loop("127.0.0.1", srv.port, reqs, 3000, 4, expect)
    srv = serve(lambda k, body: ack(k, b"id=7" if k == 100 else body))
    with pytest.raises(HttpError, match="lacks"):
        restload.open_loop("127.0.0.1", srv.port, reqs, 3000, 4, expect)
