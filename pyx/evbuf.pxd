from pyx.records cimport EvRec

cdef class EventBuf:
    """Growable buffer of EvRec owned by a numpy array (views stay valid after growth)."""
    cdef object _arr            # numpy structured array that owns the memory
    cdef EvRec* recs            # == _arr.data
    cdef readonly Py_ssize_t n  # records written
    cdef readonly Py_ssize_t cap

    cdef EvRec* push(self) except NULL
    cdef void _grow(self) except *
    cpdef void clear(self)
