# cython: language_level=3
"""EventBuf: the event output buffer shared by books and the core.

Events are appended as packed ``EvRec`` structs into memory owned by a numpy
structured array, so Python reads them with :meth:`EventBuf.view` without a
copy.  When the buffer is full it doubles: a new array is allocated and the
records are copied; views taken earlier keep the old array alive, so they stay
valid (they just do not see later records).
"""

import numpy as np
cimport numpy as cnp
from libc.string cimport memcpy, memset

from bursa_wire.layout import EV_DTYPE

cnp.import_array()

# Upper bound on the buffer, in records: 2**26 * 96 bytes = 6 GiB.  A caller
# that never clears the buffer hits this instead of exhausting memory.
cdef enum:
    EVBUF_CAP_MAX = 67108864


cdef class EventBuf:
    """Append-only buffer of event records, read as a numpy structured array.

    Parameters
    ----------
    capacity : int
        Initial capacity in records (grows by doubling up to 2**26).
    """

    def __cinit__(self, Py_ssize_t capacity=4096):
        assert capacity > 0
        self._arr = np.zeros(capacity, dtype=EV_DTYPE)
        self.recs = <EvRec*> cnp.PyArray_DATA(self._arr)
        self.n = 0
        self.cap = capacity

    cdef void _grow(self) except *:
        cdef Py_ssize_t new_cap = self.cap * 2
        if new_cap > EVBUF_CAP_MAX:
            raise MemoryError("EventBuf: more than 2**26 events without clear()")
        self.grows += 1
        self._resize(new_cap)

    def reserve(self, Py_ssize_t records):
        """Make room for ``records`` records now (at most 2**26), so that appending up
        to that many never grows the buffer; not counted in :attr:`grows`."""
        if records < 1 or records > EVBUF_CAP_MAX:
            raise ValueError(f"records must be in 1..{EVBUF_CAP_MAX}")
        if records > self.cap:
            self._resize(records)

    cdef void _resize(self, Py_ssize_t new_cap) except *:
        new = np.zeros(new_cap, dtype=EV_DTYPE)
        memcpy(cnp.PyArray_DATA(new), self.recs, self.n * sizeof(EvRec))
        self._arr = new
        self.recs = <EvRec*> cnp.PyArray_DATA(new)
        self.cap = new_cap

    cdef EvRec* push(self) except NULL:
        """Reserve the next record, zeroed, and return a pointer to it."""
        if self.n == self.cap:
            self._grow()
        cdef EvRec* r = &self.recs[self.n]
        memset(r, 0, sizeof(EvRec))
        self.n += 1
        return r

    cpdef void clear(self):
        """Forget all records (the memory is reused)."""
        self.n = 0

    def view(self, Py_ssize_t start=0):
        """Records ``[start, n)`` as a numpy structured array (no copy).

        The view aliases the buffer: copy it if you keep it across ``clear()``.
        """
        assert 0 <= start <= self.n
        return self._arr[start:self.n]

    def __len__(self):
        return self.n
