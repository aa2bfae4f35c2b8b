# cython: language_level=3
"""The gateway's order record as a compiled class (see pyx/gworders.pyx): typed fields,
so compiled code reads and writes them as C struct members."""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t

# The order map's key of an order (``gateway.store.Store.orders``, the retried set, the
# dirty map): ``user_id << 40 | order_id``, the core book's own key (user ids are
# 1..2**24-1, order ids 1..2**40-1, so it fits 64 bits and is unique).  One int instead
# of a ``(user_id, order_id)`` tuple: no tuple and two ints built, no tuple hash.
cdef enum:
    ORDER_KEY_SHIFT_C = 40


cdef inline object order_key_c(uint64_t user_id, uint64_t order_id):
    """:func:`pyx.gworders.order_key` for C callers."""
    return (user_id << ORDER_KEY_SHIFT_C) | order_id


cdef class Order:
    cdef public uint64_t user_id         # the core's user (from the session's API key)
    cdef public uint64_t order_id        # the core's order id (per user)
    cdef public uint64_t key_id          # the session (API key) that entered it
    cdef public uint64_t cl_ord_id       # the client's id (unique per session)
    cdef public uint16_t symbol_id
    cdef public uint8_t side
    cdef public uint8_t ord_type
    cdef public int64_t price            # ticks
    cdef public int64_t qty              # lots
    cdef public int64_t leaves           # open quantity, lots
    cdef public int64_t filled           # lots
    cdef public uint8_t state            # STATE_* of bursa_wire.gw_layout
    cdef public int32_t reason           # the last reject/cancel reason
    # Requests sent to the core and not answered yet, oldest first:
    # N new, C cancel, U replace, D reduce, R recovery cancel (after a restart).
    cdef public list pending
    # An image of it was folded (gateway.store): its later images go to the keyed table
    # ``orders``, never to the archive (whose rows are written once).  Not in the image.
    cdef public bint stored
    # The order log row holding its latest image while that row is not folded yet
    # (0: none; gateway.store).  Not in the image.
    cdef public int64_t log_id
