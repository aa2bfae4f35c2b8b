"""Public Python API of the order book: ``Book`` and its event buffer ``EventBuf``.

Both are compiled (pyx/book.pyx, pyx/evbuf.pyx); semantics in docs/book.md.
Prices are integer ticks, quantities integer lots.
"""

from pyx.book import Book
from pyx.evbuf import EventBuf

__all__ = ["Book", "EventBuf"]
