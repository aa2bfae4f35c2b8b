"""The hot route, ``POST /api/v3/order``, served without aiohttp's per-request objects.

Every connection of `bursa api` starts on :class:`FastHttp`, an :class:`asyncio.Protocol`
that reads HTTP/1.1 requests itself.  A request it fully understands -- ``POST
/api/v3/order`` over HTTP/1.1 with a ``Content-Length`` body of at most
``client_max_size`` bytes, no ``Transfer-Encoding``, ``Expect`` or ``Upgrade``, header
lines of the plain ``name: value`` form, one ``Host`` -- it answers directly: the same weight
charge, signature check, order entry (:func:`api.orders.open_order`, then
:func:`api.orders.close_order` called by the core link once the reply is in: no task
nor loop callback per request),
Binance error shapes, ``X-MBX-USED-WEIGHT-1M`` header and request metrics as the
aiohttp route, one ``transport.write`` of a response built by one format call.  That
saves the aiohttp request, URL, multidict, route resolution, middleware calls and
response objects on every order (docs/api.md, "Performance").

Anything else (another route, a malformed or unusual request, a WebSocket upgrade)
hands the connection to aiohttp for good: the aiohttp protocol takes over the
transport and is fed the bytes not yet answered, so every other behaviour is
aiohttp's, unchanged.  Requests on one connection are answered in order, one at a
time (as aiohttp does); while the client does not read its answers
(``pause_writing``), nothing more is read.  An idle connection is closed after
``KEEPALIVE_S`` (aiohttp's default).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from email.utils import formatdate

from api.auth import request_params
from api.context import Context
from api.core import OrderReply
from api.errors import ApiError
from api.metrics import count_request
from api.orders import NewOrder, answer_retry, close_order, new_order_text, open_order
from pyx.apihttp import http_answer, order_answer, parse_head

log = logging.getLogger("bursa.api")

CLIENT_MAX_SIZE = 65_536  # bytes of body (the aiohttp app's client_max_size)
KEEPALIVE_S = 75.0  # idle keep-alive connections are closed after this (aiohttp's default)
MAX_HEAD = 8190  # bytes of request line + headers taken here; beyond, aiohttp answers
# Bytes read ahead of the request being answered (pipelined requests); beyond, reading
# stops until they are answered (CLIENT_MAX_SIZE + MAX_HEAD must fit).
MAX_BUFFERED = 256 * 1024
ROUTE = "/api/v3/order"
JSON_UTF8 = "application/json; charset=utf-8"
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip
# Headers that make a request unusual enough for aiohttp to take it.
_HANDOFF_HEADERS = frozenset({b"transfer-encoding", b"expect", b"upgrade"})


class _Date:
    """The ``Date`` header value, formatted once a second."""

    def __init__(self) -> None:
        self.second = 0
        self.value = ""

    def now(self) -> str:
        """The current ``Date`` value (RFC 9110 IMF-fixdate)."""
        s = int(time.time())
        if s != self.second:
            self.second, self.value = s, formatdate(s, usegmt=True)
        return self.value


_DATE = _Date()


class FastHttp(asyncio.Protocol):
    """One client connection (module docstring); ``fallback`` makes the aiohttp
    protocol that takes a connection over; ``conns`` holds the live fast ones."""

    def __init__(
        self,
        ctx: Context,
        fallback: Callable[[], asyncio.Protocol],
        conns: set[FastHttp],
        server_header: str,
    ) -> None:
        self.ctx = ctx
        self.fallback = fallback
        self.conns = conns
        self.server_header = server_header
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.buf = bytearray()
        self.busy = False  # a request is being answered
        self.paused = False  # the client does not read its answers
        self.full = False  # MAX_BUFFERED bytes wait to be answered
        self.reading = True  # the transport reads (neither paused nor full)
        self.close_after = False  # the answer in progress ends the connection
        self.eof = False  # the client sent all it will send
        self.last = 0.0  # loop time of the last request
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Future[None] | None = None  # the answer in progress
        # The order whose reply is awaited and its weight: one request at a time per
        # connection, so its reply's callback finds them here (no partial per request).
        self.order: NewOrder | None = None
        self.used = 0
        self._on_reply = self._finish  # bound once, not once per request

    # ------------------------------------------------------------ asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start reading; arm the idle timer."""
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.conns.add(self)
        loop = asyncio.get_running_loop()
        self.last = loop.time()
        self.timer = loop.call_later(KEEPALIVE_S, self._idle)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection (an answer in progress is dropped)."""
        self.conns.discard(self)
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        """Buffer and answer what is complete."""
        self.buf += data
        if len(self.buf) > MAX_BUFFERED:
            self.full = True
            self._flow()
        if not self.busy:
            self._next()

    def eof_received(self) -> bool:
        """The client closed its side: close once the requests read are answered."""
        self.eof = True
        return self.busy  # True keeps the transport open for the answer in progress

    def pause_writing(self) -> None:
        """The client does not read: stop reading its requests."""
        self.paused = True
        self._flow()

    def resume_writing(self) -> None:
        """Go on with the requests read meanwhile."""
        self.paused = False
        self._flow()
        if not self.busy:
            self._next()

    def _flow(self) -> None:
        """Read from the transport unless the client does not read or too much waits."""
        want = not (self.paused or self.full)
        if want != self.reading and self.transport is not None:
            self.reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def _idle(self) -> None:
        self.timer = None
        if self.transport is None:
            return
        loop = asyncio.get_running_loop()
        due = self.last + KEEPALIVE_S
        if self.busy or loop.time() < due:
            self.timer = loop.call_at(max(due, loop.time() + 1.0), self._idle)
        else:
            self.transport.close()

    def close(self) -> None:
        """Close the connection now (shutdown)."""
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------ requests

    def _next(self) -> None:
        """Answer the complete requests read, one at a time, or hand the connection to
        aiohttp (a loop, not recursion: refusals are answered at once)."""
        while not self.busy:
            if self.paused or self.transport is None or self.transport.is_closing():
                return
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            if end < 0 or end > MAX_HEAD:
                if len(buf) > MAX_HEAD:
                    self._handoff()
                    return
                break
            parsed = parse_head(bytes(buf[:end]), CLIENT_MAX_SIZE)
            if parsed is None:
                self._handoff()
                return
            query, length, key, close = parsed
            if len(buf) < end + 4 + length:
                break
            body = bytes(buf[end + 4 : end + 4 + length])
            del buf[: end + 4 + length]
            if self.full and len(buf) <= MAX_BUFFERED // 2:
                self.full = False
                self._flow()
            self.busy = True
            self.close_after = close
            self.last = asyncio.get_running_loop().time()
            self._start(query, body, key)
        if self.eof and not self.busy and self.transport is not None:
            self.transport.close()  # everything the client sent is answered

    @staticmethod
    def parse_head_py(head: bytes) -> tuple[str, int, str, bool] | None:
        """(query, body length, API key, close after) of a request this class answers,
        else None (aiohttp takes it).  The oracle of the compiled
        :func:`pyx.apihttp.parse_head` the order path runs."""
        line, _, rest = head.partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1":
            return None
        path, _, query = parts[1].partition(b"?")
        if path != b"/api/v3/order" or b"#" in query:
            return None
        length = -1
        key = ""
        close = False
        hosts = 0  # aiohttp refuses an HTTP/1.1 request without exactly one Host
        for h in rest.split(b"\r\n") if rest else ():
            name, sep, value = h.partition(b":")
            if not sep or not name or name != name.strip() or h[:1] in (b" ", b"\t"):
                return None
            name = name.lower()
            value = value.strip(b" \t")
            if name == b"content-length":
                if length >= 0 or not value.isdigit() or len(value) > 9:
                    return None
                length = int(value)
            elif name == b"x-mbx-apikey":
                if key:
                    return None
                try:
                    key = value.decode("ascii")
                except UnicodeDecodeError:
                    return None
            elif name == b"host":
                hosts += 1
            elif name == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                if b"upgrade" in tokens:
                    return None
                close = b"close" in tokens
            elif name in _HANDOFF_HEADERS:
                return None
        if length < 0 or length > CLIENT_MAX_SIZE or hosts != 1:
            return None
        try:
            return query.decode("ascii"), length, key, close
        except UnicodeDecodeError:
            return None

    def _start(self, query: str, body: bytes, key: str) -> None:
        """Answer one ``POST /api/v3/order`` as the aiohttp route would: a refusal at
        once; an order once its reply is in (:meth:`_finish`, the reply's callback:
        no task per request); a retry of a known clientOrderId from a task."""
        ctx = self.ctx
        ip = self.peer
        try:
            try:
                used = ctx.limits.charge(ip, 1)
                params, payload = request_params(query, body)
                uid = ctx.auth.signed_key(key, ip, params, payload, trade=True).user_id
                n = open_order(ctx, params, uid, key)
            except ApiError as e:
                self._refuse(e)
                return
        except Exception:
            self._bug()
            return
        if n.retry_of is not None:
            self.task = asyncio.ensure_future(self._retry(n, used))
        else:
            reply = n.reply
            assert isinstance(reply, OrderReply)
            self.order, self.used = n, used
            # The link calls it once the reply is done (api.core.OrderReply): no
            # done callback, so no call_soon and loop callback per order.
            reply.target = self._on_reply

    def _finish(self, _: object) -> None:
        """The answer of the order whose reply is in (``self.order``; called by the
        core link as the reply's ``target``); then the next request."""
        n, used = self.order, self.used
        assert n is not None
        self.order = None
        try:
            try:
                spec, o, resp_type, fills = close_order(self.ctx, n)
            except ApiError as e:
                self._refuse(e)
            else:
                # Head and body in one compiled call (the order's JSON, its UTF-8 and
                # the head of _reply, not three Python steps).
                out = order_answer(spec.text_grid, o, resp_type, fills, used, _DATE.now(),
                                   self.server_header, self.close_after)  # fmt: skip
                self._write(200, out)
        except Exception:
            self._bug()
        if self.buf or self.eof:  # else _next finds nothing to answer
            self._next()

    async def _retry(self, n: NewOrder, used: int) -> None:
        """The answer of a retried clientOrderId (:func:`api.orders.answer_retry`)."""
        try:
            try:
                out = new_order_text(*await answer_retry(self.ctx, n)).encode()
            except ApiError as e:
                self._refuse(e)
            else:
                self._reply(200, JSON_UTF8, out, used)
        except Exception:
            self._bug()
        self._next()

    def _refuse(self, e: ApiError) -> None:
        """A Binance error answer."""
        body = json.dumps(e.body()).encode()
        self._reply(e.http_status, "application/json", body, self.ctx.limits.used_weight(self.peer))

    def _bug(self) -> None:
        """An unhandled exception, answered as aiohttp answers one."""
        log.exception("error handling POST %s", ROUTE)
        out = b"500 Internal Server Error\n\nServer got itself in trouble"
        used = self.ctx.limits.used_weight(self.peer)
        self._reply(500, "text/plain; charset=utf-8", out, used)

    def _reply(self, status: int, ctype: str, body: bytes, used: int) -> None:
        """Count and write one answer; the connection is free for the next request."""
        reason = f"{status} {_REASONS.get(status, 'Error')}"
        self._write(status, http_answer(reason, ctype, used, _DATE.now(), self.server_header,
                                        self.close_after, body))  # fmt: skip

    def _write(self, status: int, out: bytes) -> None:
        """Count and write one answer's bytes (:meth:`_reply`); the connection is free
        for the next request."""
        ctx = self.ctx
        count_request(ctx, ROUTE, "POST", status)
        ctx.extra["fast_requests"] = ctx.extra.get("fast_requests", 0) + 1
        t = self.transport
        self.busy = False
        if t is None or t.is_closing():
            return
        t.write(out)
        if self.close_after:
            t.close()

    def _handoff(self) -> None:
        """aiohttp takes the connection over from here (module docstring)."""
        t = self.transport
        if t is None:
            return
        self.conns.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None
        if not self.reading:
            t.resume_reading()  # aiohttp does its own flow control from here
        proto = self.fallback()
        t.set_protocol(proto)
        proto.connection_made(t)
        data, self.buf = bytes(self.buf), bytearray()
        if data:
            proto.data_received(data)
        if self.eof:
            proto.eof_received()


def http_answer_py(
    status: str, ctype: str, used: int, date: str, server: str, close: bool, body: bytes
) -> bytes:
    """The bytes of one answer: the oracle of the compiled :func:`pyx.apihttp.http_answer`
    (and, with ``new_order_text``, of :func:`pyx.apihttp.order_answer`)."""
    conn = "Connection: close\r\n" if close else ""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
        f"X-MBX-USED-WEIGHT-1M: {used}\r\nContent-Length: {len(body)}\r\n"
        f"Date: {date}\r\nServer: {server}\r\n{conn}\r\n"
    )
    return head.encode() + body


def server_header() -> str:
    """aiohttp's ``Server`` header value (the same on both paths)."""
    from aiohttp.http import SERVER_SOFTWARE

    return str(SERVER_SOFTWARE)


def protocol_factory(
    ctx: Context, fallback: Callable[[], asyncio.Protocol], conns: set[FastHttp]
) -> Callable[[], FastHttp]:
    """The ``loop.create_server`` factory of the API's port."""
    srv = server_header()

    def make() -> FastHttp:
        return FastHttp(ctx, fallback, conns, srv)

    return make
