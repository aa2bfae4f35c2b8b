# cython: language_level=3
"""The load generator's read path in Cython: ACCEPTED reports out of a session's bytes.

``bench.e2e`` measures the gateway with clients in the same 2-core machine, so what
the clients spend per order is taken from the gateway.  :class:`AckScanner` splits the
gateway's output into frames exactly like ``gateway.wire.codec.FrameReader`` and
returns the client order ids of the ACCEPTED reports among them (sequenced frames
whose message code is ACCEPTED) as one list of ints, without a Python object per
frame.  Its oracle is ``bench.e2e.accepted_ids_py`` (the Python loop it replaces,
over ``FrameReader``): tests/bench/test_gwload.py compares the two over random
streams split at random points.  A client counts only the reports it read.
"""

cimport cython
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

from bursa_wire.gw_layout import BY_NAME, FRAME_HEAD, MAX_FRAME_LEN, SEQ_HEAD, SEQUENCED

if (FRAME_HEAD.format, SEQ_HEAD.format) != ("<HB", "<Q") or len(SEQUENCED) != 1:
    raise RuntimeError("S frame layout changed: update pyx/gwload.pyx")
if BY_NAME["ACCEPTED"].names[0] != "cl_ord_id" or BY_NAME["ACCEPTED"].struct.format[:2] != "<Q":
    raise RuntimeError("ACCEPTED layout changed: update pyx/gwload.pyx")

cdef uint8_t S_TYPE = SEQUENCED[0]
cdef uint8_t ACCEPTED_CODE = BY_NAME["ACCEPTED"].code[0]
# After the 2-byte length: type (1), seq (8), message code (1), cl_ord_id (8).
cdef Py_ssize_t CODE_AT = 1 + 8
cdef Py_ssize_t CL_AT = 1 + 8 + 1
cdef Py_ssize_t MIN_ACCEPTED = 1 + 8 + 1 + 8


cdef class AckScanner:
    """Splits a byte stream into frames (bounded by ``max_len``) and returns, per
    :meth:`feed`, the ``cl_ord_id`` of every ACCEPTED report completed by it, in order.

    A zero length or one above ``max_len`` raises ``length_error(length)`` once the
    frames before it were scanned (as ``FrameReader``: the ids found before the bad
    frame are in :attr:`found`); the scanner stays broken after that.
    """

    cdef bytearray buf
    cdef Py_ssize_t max_len
    cdef object length_error
    cdef object error
    cdef public list found  # the ids of the last feed (also when it raised)

    def __init__(self, length_error, Py_ssize_t max_len=MAX_FRAME_LEN):
        self.length_error = length_error
        self.buf = bytearray()
        self.max_len = max_len
        self.error = None
        self.found = []

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def feed(self, data):
        """Append ``data``; return the client ids of the ACCEPTED reports now whole."""
        if self.error is not None:
            raise self.error
        self.buf += data
        cdef bytearray buf = self.buf
        cdef Py_ssize_t n = len(buf), pos = 0, length
        cdef const uint8_t* p = <const uint8_t*> (<char*> buf)
        cdef list out = []
        cdef uint64_t cl
        self.found = out
        while n - pos >= 2:
            length = p[pos] | (p[pos + 1] << 8)
            if length == 0 or length > self.max_len:
                self.error = self.length_error(length)
                break
            if pos + 2 + length > n:
                break
            if (length >= MIN_ACCEPTED and p[pos + 2] == S_TYPE
                    and p[pos + 2 + CODE_AT] == ACCEPTED_CODE):
                memcpy(&cl, p + pos + 2 + CL_AT, 8)  # little-endian, as the host
                out.append(cl)
            pos += 2 + length
        if pos:
            del buf[:pos]
        if self.error is not None:
            raise self.error
        return out
