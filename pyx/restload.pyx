# cython: language_level=3
"""The REST load generator's loops in C: one epoll loop each, no GIL, no threads.

``bench.api`` runs its load generator on the same 2-core machine as the API and the
core, so every µs the client spends per order is taken from them, and every µs
between an answer arriving and the next request leaving is in the round trip that
bounds ``rest_orders_per_s`` (8 connections, one request in flight each).  The
Python loop this replaces (``bench._restload``'s epoll loop with a Python parser)
cost ~26 µs of CPU per order; this one costs the system calls (``epoll_wait``,
``read``, ``write``) and a scan of each answer.

It stays an honest HTTP/1.1 client: real TCP sockets (the caller's), the caller's
pre-built signed request bytes written as they are, and every answer split off the
stream (status line, ``Content-Length``, body) and checked: status 200, and its body
contains the byte string the caller expects for that request (the order's
``clientOrderId``, or ``"orderId": `` when the API generates the id); anything else
fails the run.  Only checked answers are counted.

:func:`open_loop` (the latency run) is the same without the closed loop's feedback:
requests written at their planned times, answers read in between, one thread.

:class:`AnswerSplitter` is the parser both loops run, for Python callers: the test's
handle on it, compared with the Python parser the loops replaced
(tests/bench/test_restload.py) over random streams split at random points.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memchr, memcmp, memcpy, memmove
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport close, read, write


cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64

    cdef struct epoll_event:
        uint32_t events
        epoll_data_t data

    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    # ns timeout (Linux 5.11, glibc 2.35): the open loop waits until a planned send.
    int epoll_pwait2(int epfd, epoll_event *events, int maxevents, const timespec *timeout,
                     const void *sigmask)
    enum:
        EPOLLIN
        EPOLL_CTL_ADD
        EPOLL_CLOEXEC


# Bounds (named so a test can reach them): an answer must fit one connection's
# buffer (the API's largest, a FULL answer with fills, is well under 1 KiB).
# A run fails when no answer at all arrives for IDLE_LIMIT_MS (a hung server).
cdef enum:
    _MAX_ANSWER_BYTES = 65536  # a literal: overflowcheck (debug build) cannot take 1 << 16 here
    _MAX_CONNECTIONS = 1024
    _MAX_DEPTH = 64
    _IDLE_LIMIT_MS = 10_000
MAX_ANSWER_BYTES = _MAX_ANSWER_BYTES
MAX_CONNECTIONS = _MAX_CONNECTIONS
MAX_DEPTH = _MAX_DEPTH
IDLE_LIMIT_MS = _IDLE_LIMIT_MS
cdef int _POLL_MS = 100
cdef int _ERR_BODY_BYTES = 200

cdef enum Outcome:
    OK = 0
    E_STATUS = 1      # an answer other than 200
    E_EXPECT = 2      # a 200 without the expected bytes
    E_MALFORMED = 3   # not HTTP/1.1 with a Content-Length
    E_TOO_BIG = 4     # an answer beyond MAX_ANSWER_BYTES
    E_CLOSED = 5      # the server closed a connection
    E_IO = 6          # read/write/epoll failed (errno)
    E_RAN_OUT = 7     # more requests needed than given
    E_IDLE = 8        # no answer for IDLE_LIMIT_MS


cdef inline bint _lower_is(const char *p, const char *word, Py_ssize_t n) noexcept nogil:
    """Whether ``p[:n]``, ASCII-lowercased, equals ``word`` (already lower case)."""
    cdef Py_ssize_t i
    cdef char ch
    for i in range(n):
        ch = p[i]
        if 65 <= ch <= 90:
            ch = ch + 32
        if ch != word[i]:
            return False
    return True


cdef Py_ssize_t _find(const char *s, Py_ssize_t n, const char *w, Py_ssize_t m) noexcept nogil:
    """The offset of ``w[:m]`` in ``s[:n]``, or -1."""
    cdef Py_ssize_t i = 0, last = n - m
    cdef const char *p
    if m == 0:
        return 0
    while i <= last:
        p = <const char *>memchr(s + i, w[0], last - i + 1)
        if p == NULL:
            return -1
        # Offsets as integers: the debug build's overflow checks take no pointers.
        i = <Py_ssize_t>(<size_t>p - <size_t>s)
        if memcmp(p, w, m) == 0:
            return i
        i += 1
    return -1


cdef Py_ssize_t _split(const char *buf, Py_ssize_t n, int *status, Py_ssize_t *body_at,
                       Py_ssize_t *body_len) noexcept nogil:
    """Split the first answer off ``buf[:n]``: its total length (> 0) with ``status``,
    ``body_at`` and ``body_len`` set; 0 when it is not complete yet; ``-E_MALFORMED``
    when its head is not ``HTTP/1.1 ddd`` with a ``Content-Length``; ``-E_TOO_BIG``
    when it cannot fit ``MAX_ANSWER_BYTES``."""
    cdef Py_ssize_t end = _find(buf, n, b"\r\n\r\n", 4)
    cdef Py_ssize_t i, j, cl, total
    if end < 0:
        return -E_TOO_BIG if n >= _MAX_ANSWER_BYTES else 0
    if end < 12 or memcmp(buf, b"HTTP/1.1 ", 9) != 0:
        return -E_MALFORMED
    status[0] = 0
    for i in range(9, 12):
        if not (48 <= buf[i] <= 57):
            return -E_MALFORMED
        status[0] = status[0] * 10 + (buf[i] - 48)
    # Header lines: each starts after a CRLF inside the head.
    cl = -1
    i = _find(buf, end, b"\r\n", 2)
    while 0 <= i < end:
        i += 2
        j = _find(buf + i, end - i, b"\r\n", 2)
        j = end if j < 0 else i + j
        if j - i >= 15 and _lower_is(buf + i, b"content-length:", 15):
            i += 15
            while i < j and (buf[i] == 32 or buf[i] == 9):
                i += 1
            if i == j:
                return -E_MALFORMED
            cl = 0
            while i < j and 48 <= buf[i] <= 57:
                cl = cl * 10 + (buf[i] - 48)
                if cl > _MAX_ANSWER_BYTES:
                    return -E_TOO_BIG
                i += 1
            while i < j and (buf[i] == 32 or buf[i] == 9):
                i += 1
            if i != j:
                return -E_MALFORMED
            break
        i = j
    if cl < 0:
        return -E_MALFORMED
    total = end + 4 + cl
    if total > _MAX_ANSWER_BYTES:
        return -E_TOO_BIG
    if n < total:
        return 0
    body_at[0] = end + 4
    body_len[0] = cl
    return total


cdef class AnswerSplitter:
    """Splits one connection's byte stream into HTTP/1.1 answers ``(status, body)``
    (for Python callers; :func:`closed_loop` and :func:`open_loop` run the same parser
    without the GIL).

    :meth:`feed` raises ``error(message)`` on a head that is not ``HTTP/1.1 ddd`` with
    a ``Content-Length``, or an answer longer than ``MAX_ANSWER_BYTES``.
    """

    cdef bytearray buf
    cdef object error

    def __init__(self, error):
        self.buf = bytearray()
        self.error = error

    def feed(self, bytes data):
        """Append ``data``; return the answers now complete, in order."""
        cdef list out = []
        cdef Py_ssize_t pos = 0, got, body_at = 0, body_len = 0, n
        cdef int status = 0
        cdef const char *p
        self.buf += data
        n = len(self.buf)
        p = self.buf
        while pos < n:
            got = _split(p + pos, n - pos, &status, &body_at, &body_len)
            if got == 0:
                break
            if got < 0:
                raise self.error(_message(-got, 0, bytes(self.buf[pos:pos + _ERR_BODY_BYTES]),
                                          b"", 0))
            out.append((status, PyBytes_FromStringAndSize(p + pos + body_at, body_len)))
            pos += got
        if pos:
            del self.buf[:pos]
        return out


cdef str _message(int code, int status, bytes snippet, bytes expected, Py_ssize_t k):
    if code == E_STATUS:
        return f"answer {status}: {snippet!r}"
    if code == E_EXPECT:
        return f"answer to request {k} lacks {expected!r}: {snippet!r}"
    if code == E_MALFORMED:
        return f"not an HTTP/1.1 answer with a Content-Length: {snippet!r}"
    if code == E_TOO_BIG:
        return f"answer longer than {_MAX_ANSWER_BYTES} bytes"
    if code == E_CLOSED:
        return "connection closed by the server"
    if code == E_RAN_OUT:
        return "closed loop ran out of prepared requests"
    if code == E_IDLE:
        return f"no answer for {_IDLE_LIMIT_MS} ms"
    return f"I/O error (errno {status})"


cdef struct Conn:
    int fd
    char *buf           # received, not yet split (MAX_ANSWER_BYTES)
    Py_ssize_t used
    char *out           # next requests to write (depth x the longest request)
    Py_ssize_t *fifo    # request index of each answer awaited, a ring of `depth`
    Py_ssize_t head     # the ring's oldest
    Py_ssize_t inflight


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1_000_000_000 + ts.tv_nsec


cdef int _write_all(int fd, const char *p, Py_ssize_t n) noexcept nogil:
    """Write ``p[:n]`` to the blocking socket ``fd``: 0, or the errno."""
    cdef Py_ssize_t w
    while n > 0:
        w = write(fd, p, n)
        if w < 0:
            if errno == EINTR:
                continue
            return errno
        p += w
        n -= w
    return 0


cdef class _Run:
    """The state of one run of either loop: the requests and expected bytes as C
    arrays, one :c:type:`Conn` per socket, the epoll set, the first failure (C arrays
    freed with it)."""

    cdef Conn *conns
    cdef Py_ssize_t nconn
    cdef Py_ssize_t n
    cdef const char **req
    cdef Py_ssize_t *req_len
    cdef const char **exp
    cdef Py_ssize_t *exp_len
    cdef epoll_event *evs
    cdef int ep
    # The first failure: an Outcome, errno or HTTP status, connection, request.
    cdef int code
    cdef int err_status
    cdef Py_ssize_t err_c
    cdef Py_ssize_t err_k
    # The answer :meth:`take` split off last.
    cdef int status
    cdef Py_ssize_t body_at
    cdef Py_ssize_t body_len

    def __cinit__(self):
        self.ep = -1
        self.code = OK
        self.err_c = -1
        self.err_k = -1

    def __dealloc__(self):
        cdef Py_ssize_t c
        if self.conns != NULL:
            for c in range(self.nconn):
                free(self.conns[c].buf)
                free(self.conns[c].out)
                free(self.conns[c].fifo)
            free(self.conns)
        free(self.req)
        free(self.req_len)
        free(self.exp)
        free(self.exp_len)
        free(self.evs)
        if self.ep >= 0:
            close(self.ep)

    cdef int setup(self, list fds, tuple requests, tuple expect, Py_ssize_t depth) except -1:
        """Take the requests (the caller's tuples keep the bytes alive for the run),
        allocate one buffer per connection (and, with ``depth``, the closed loop's
        write buffer and ring) and watch every socket."""
        cdef Py_ssize_t n = len(requests), nconn = len(fds), k, c, longest = 0
        cdef Conn *cn
        cdef epoll_event ev
        if len(expect) != n:
            raise ValueError("expect must have one entry per request")
        if not 1 <= nconn <= _MAX_CONNECTIONS or not 0 <= depth <= _MAX_DEPTH:
            raise ValueError(f"1..{_MAX_CONNECTIONS} connections and depth 1..{_MAX_DEPTH}")
        self.n = n
        self.req = <const char **>malloc(max(n, 1) * sizeof(char *))
        self.req_len = <Py_ssize_t *>malloc(max(n, 1) * sizeof(Py_ssize_t))
        self.exp = <const char **>malloc(max(n, 1) * sizeof(char *))
        self.exp_len = <Py_ssize_t *>malloc(max(n, 1) * sizeof(Py_ssize_t))
        self.conns = <Conn *>calloc(nconn, sizeof(Conn))
        self.evs = <epoll_event *>malloc(nconn * sizeof(epoll_event))
        if not (self.req and self.req_len and self.exp and self.exp_len and self.conns
                and self.evs):
            raise MemoryError()
        self.nconn = nconn
        for k in range(n):
            self.req[k] = PyBytes_AS_STRING(<bytes>requests[k])
            self.req_len[k] = PyBytes_GET_SIZE(<bytes>requests[k])
            self.exp[k] = PyBytes_AS_STRING(<bytes>expect[k])
            self.exp_len[k] = PyBytes_GET_SIZE(<bytes>expect[k])
            longest = max(longest, self.req_len[k])
        self.ep = epoll_create1(EPOLL_CLOEXEC)
        if self.ep < 0:
            raise OSError(errno, "epoll_create1")
        for c in range(nconn):
            cn = &self.conns[c]
            cn.fd = fds[c]
            cn.buf = <char *>malloc(_MAX_ANSWER_BYTES)
            if not cn.buf:
                raise MemoryError()
            if depth:
                cn.out = <char *>malloc(max(longest * depth, 1))
                cn.fifo = <Py_ssize_t *>malloc(depth * sizeof(Py_ssize_t))
                if not (cn.out and cn.fifo):
                    raise MemoryError()
            ev.events = EPOLLIN
            ev.data.u64 = c
            if epoll_ctl(self.ep, EPOLL_CTL_ADD, cn.fd, &ev) < 0:
                raise OSError(errno, "epoll_ctl")
        return 0

    cdef inline void fail(self, int code, int err_status, Py_ssize_t c,
                          Py_ssize_t k) noexcept nogil:
        self.code = code
        self.err_status = err_status
        self.err_c = c
        self.err_k = k

    cdef bint read_some(self, Py_ssize_t c) noexcept nogil:
        """Read what connection ``c`` has into its buffer: whether bytes came (False
        also on an interrupted read, or a failure, then ``code`` is set)."""
        cdef Conn *cn = &self.conns[c]
        cdef Py_ssize_t w = read(cn.fd, cn.buf + cn.used, _MAX_ANSWER_BYTES - cn.used)
        if w < 0:
            if errno != EINTR and errno != EAGAIN:
                self.fail(E_IO, errno, c, -1)
            return False
        if w == 0:
            self.fail(E_CLOSED, 0, c, -1)
            return False
        cn.used += w
        return True

    cdef Py_ssize_t take(self, Py_ssize_t c, Py_ssize_t ro, Py_ssize_t k) noexcept nogil:
        """Split the answer at ``ro`` of connection ``c``'s buffer and check it as the
        answer to request ``k`` (-1: none awaited): its length, 0 when incomplete, -1
        when it fails (``code`` set)."""
        cdef Conn *cn = &self.conns[c]
        cdef Py_ssize_t got = _split(cn.buf + ro, cn.used - ro, &self.status, &self.body_at,
                                     &self.body_len)
        if got < 0:
            self.fail(<int>-got, 0, c, -1)
            return -1
        if got == 0:
            return 0
        if k < 0:
            self.fail(E_MALFORMED, 0, c, -1)  # an answer to no request of ours
            return -1
        if self.status != 200:
            self.fail(E_STATUS, self.status, c, k)
            return -1
        if _find(cn.buf + ro + self.body_at, self.body_len, self.exp[k], self.exp_len[k]) < 0:
            self.fail(E_EXPECT, 0, c, k)
            return -1
        return got

    cdef inline void consumed(self, Py_ssize_t c, Py_ssize_t ro) noexcept nogil:
        """Drop the first ``ro`` bytes of connection ``c``'s buffer (on a failure the
        failing answer is then at its front, for the message)."""
        cdef Conn *cn = &self.conns[c]
        if ro:
            memmove(cn.buf, cn.buf + ro, cn.used - ro)
            cn.used -= ro

    cdef int raise_failure(self, error, tuple expect) except -1:
        """Raise ``error`` with the first failure's message."""
        cdef Conn *cn
        snippet = b""
        if self.err_c >= 0:
            cn = &self.conns[self.err_c]
            snippet = PyBytes_FromStringAndSize(cn.buf, min(cn.used, _ERR_BODY_BYTES))
        raise error(_message(self.code, self.err_status, snippet,
                             <bytes>expect[self.err_k] if self.err_k >= 0 else b"",
                             self.err_k))


@cython.boundscheck(False)
@cython.wraparound(False)
def closed_loop(list fds, tuple requests, tuple expect, double seconds, int depth, error):
    """Keep ``depth`` requests in flight on each blocking connected socket of ``fds``
    for ``seconds``, then drain: request ``k`` (``requests[k]``, taken in order) is
    written as soon as an answer on its connection was checked, and its answer must be
    ``200`` with ``expect[k]`` in its body.  Returns ``(answered, written)``.

    Raises ``error(message)`` on any other answer, a malformed or closed stream, an
    I/O error, ``requests`` running out, or no answer for ``IDLE_LIMIT_MS``.
    """
    cdef Py_ssize_t nconn = len(fds), n, c, k, i, got, ro, nout
    cdef Py_ssize_t nxt = 0, answered = 0
    cdef int nev, e
    cdef bint stopping = False
    cdef int64_t end_ns, last_ns, now_ns
    cdef Conn *cn
    cdef _Run run = _Run()
    if depth < 1:
        raise ValueError(f"depth 1..{_MAX_DEPTH}")
    run.setup(fds, requests, expect, depth)
    n = run.n
    with nogil:
        now_ns = _now_ns()
        end_ns = now_ns + <int64_t>(seconds * 1e9)
        last_ns = now_ns
        # Fill every connection to `depth` (each connection's first requests in one write).
        for c in range(nconn):
            cn = &run.conns[c]
            if nxt + depth > n:
                run.fail(E_RAN_OUT, 0, -1, -1)
                break
            nout = 0
            for i in range(depth):
                memcpy(cn.out + nout, run.req[nxt], run.req_len[nxt])
                nout += run.req_len[nxt]
                cn.fifo[i] = nxt
                nxt += 1
            cn.inflight = depth
            e = _write_all(cn.fd, cn.out, nout)
            if e:
                run.fail(E_IO, e, c, -1)
                break
        while run.code == OK:
            nev = epoll_wait(run.ep, run.evs, nconn, _POLL_MS)
            now_ns = _now_ns()
            if nev < 0:
                if errno != EINTR:
                    run.fail(E_IO, errno, -1, -1)
                continue
            if now_ns >= end_ns:
                stopping = True
            if nev == 0:
                if now_ns - last_ns >= <int64_t>_IDLE_LIMIT_MS * 1_000_000:
                    run.fail(E_IDLE, 0, -1, -1)
                continue
            for e in range(nev):
                c = <Py_ssize_t>run.evs[e].data.u64
                cn = &run.conns[c]
                if not run.read_some(c):
                    if run.code != OK:
                        break
                    continue
                last_ns = now_ns
                ro = 0
                nout = 0
                while True:
                    k = cn.fifo[cn.head] if cn.inflight else -1
                    got = run.take(c, ro, k)
                    if got <= 0:
                        break
                    cn.head = (cn.head + 1) % depth
                    cn.inflight -= 1
                    answered += 1
                    ro += got
                    if not stopping:
                        if nxt >= n:
                            run.fail(E_RAN_OUT, 0, -1, -1)
                            break
                        # The ring slot just freed is the last of the ring now.
                        cn.fifo[(cn.head + cn.inflight) % depth] = nxt
                        memcpy(cn.out + nout, run.req[nxt], run.req_len[nxt])
                        nout += run.req_len[nxt]
                        cn.inflight += 1
                        nxt += 1
                run.consumed(c, ro)
                if run.code != OK:
                    break
                if nout:
                    e = _write_all(cn.fd, cn.out, nout)
                    if e:
                        run.fail(E_IO, e, c, -1)
                        break
            if run.code == OK and stopping:
                for c in range(nconn):
                    if run.conns[c].inflight:
                        break
                else:
                    break
    if run.code != OK:
        run.raise_failure(error, expect)
    return answered, nxt


@cython.boundscheck(False)
@cython.wraparound(False)
def open_loop(list fds, tuple requests, tuple expect, long long rate, error):
    """Write ``requests[k]`` at ``t0 + k / rate`` on ``fds[k % len(fds)]`` whether or
    not earlier answers came back (pipelined), waiting for answers in between; each
    answer must be ``200`` with ``expect[k]`` in its body.  HTTP/1.1 answers a
    connection's requests in order, so connection ``c``'s ``i``-th answer is request
    ``c + i * len(fds)``.  Returns ``(latencies_ns, answered)``: request ``k``'s
    latency is from its PLANNED send time to the read that completed its answer
    (coordinated-omission free: a late send or a slow client counts against the
    server, never for it).

    Raises ``error(message)`` as :func:`closed_loop` does.
    """
    cdef Py_ssize_t nconn = len(fds), n, c, k, got, ro
    cdef Py_ssize_t nxt = 0, answered = 0
    cdef int nev, e
    cdef int64_t t0_ns, at_ns = 0, last_ns, now_ns, wait_ns
    cdef Conn *cn
    cdef timespec tmo
    cdef int64_t *lat
    cdef _Run run = _Run()
    if rate < 1:
        raise ValueError("a positive rate")
    run.setup(fds, requests, expect, 0)
    n = run.n
    lat = <int64_t *>calloc(max(n, 1), sizeof(int64_t))
    if not lat:
        raise MemoryError()
    with nogil:
        # The first send 20 ms out, as the thread version did (the loop set up first).
        t0_ns = _now_ns() + 20_000_000
        last_ns = t0_ns
        while run.code == OK and answered < n:
            now_ns = _now_ns()
            # Every send that is due, in plan order.
            while nxt < n:
                at_ns = t0_ns + <int64_t>(nxt * <int64_t>1_000_000_000 // rate)
                if at_ns > now_ns:
                    break
                if answered == nxt:
                    last_ns = now_ns  # nothing was outstanding: the idle clock restarts
                cn = &run.conns[nxt % nconn]
                e = _write_all(cn.fd, run.req[nxt], run.req_len[nxt])
                if e:
                    run.fail(E_IO, e, nxt % nconn, -1)
                    break
                cn.inflight += 1
                nxt += 1
            if run.code != OK:
                break
            wait_ns = <int64_t>_POLL_MS * 1_000_000
            if nxt < n:
                wait_ns = min(wait_ns, max(at_ns - _now_ns(), 0))
            tmo.tv_sec = wait_ns // 1_000_000_000
            tmo.tv_nsec = wait_ns % 1_000_000_000
            nev = epoll_pwait2(run.ep, run.evs, nconn, &tmo, NULL)
            now_ns = _now_ns()
            if nev < 0:
                if errno != EINTR:
                    run.fail(E_IO, errno, -1, -1)
                continue
            if nev == 0:
                if answered < nxt and now_ns - last_ns >= <int64_t>_IDLE_LIMIT_MS * 1_000_000:
                    run.fail(E_IDLE, 0, -1, -1)
                continue
            for e in range(nev):
                c = <Py_ssize_t>run.evs[e].data.u64
                cn = &run.conns[c]
                if not run.read_some(c):
                    if run.code != OK:
                        break
                    continue
                last_ns = now_ns
                ro = 0
                while True:
                    # cn.head counts this connection's answers so far.
                    k = c + cn.head * nconn if cn.inflight else -1
                    got = run.take(c, ro, k)
                    if got <= 0:
                        break
                    lat[k] = now_ns - (t0_ns + <int64_t>(k * <int64_t>1_000_000_000 // rate))
                    cn.head += 1
                    cn.inflight -= 1
                    answered += 1
                    ro += got
                run.consumed(c, ro)
                if run.code != OK:
                    break
    if run.code != OK:
        free(lat)
        run.raise_failure(error, expect)
    out = [lat[k] for k in range(n)]
    free(lat)
    return out, answered
