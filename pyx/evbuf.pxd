from pyx.records cimport EvRec

cdef class EventBuf:
    """Growable buffer of EvRec owned by a numpy array (views stay valid after growth)."""
    cdef object _arr            # numpy structured array that owns the memory
    cdef EvRec* recs            # == _arr.data
    cdef readonly Py_ssize_t n  # records written
    cdef readonly Py_ssize_t cap
    cdef readonly Py_ssize_t grows  # doublings while appending (reserve() does not count)

    cdef EvRec* push(self) except NULL
    cdef void _grow(self) except *
    cdef void _resize(self, Py_ssize_t new_cap) except *
    cpdef void clear(self)
