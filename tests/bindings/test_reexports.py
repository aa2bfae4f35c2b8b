"""bindings.book and bindings.enums re-export the compiled objects unchanged."""

import bindings.book
import bindings.enums
import pyx.book
import pyx.enums
import pyx.evbuf


def test_book_module_reexports_compiled_classes():
    assert bindings.book.Book is pyx.book.Book
    assert bindings.book.EventBuf is pyx.evbuf.EventBuf
    assert sorted(bindings.book.__all__) == ["Book", "EventBuf"]


def test_enums_module_reexports_every_enum():
    for name in bindings.enums.__all__:
        assert getattr(bindings.enums, name) is getattr(pyx.enums, name)
    assert int(bindings.enums.Reason.BOOK_FULL) == 115 and int(bindings.enums.Side.SELL) == 2


def test_book_through_bindings():
    from bindings.book import Book, EventBuf
    from bindings.enums import EvKind, Side

    eb = EventBuf()
    b = Book(3, events=eb)
    assert b.new_limit(1, 1, Side.BUY, 100, 2) == 1
    assert eb.view()["kind"].tolist() == [EvKind.ACCEPTED]
