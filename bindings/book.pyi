"""Stubs of bindings.book: the compiled book and event buffer, re-exported."""

from pyx.book import Book as Book
from pyx.evbuf import EventBuf as EventBuf

__all__ = ["Book", "EventBuf"]
