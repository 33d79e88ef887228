"""Reading a paged source to its end, once: the paging rules the connectors share.

A connector knows how to ask for one page at a position (its wire format); a paginator knows
which position comes next from what the page said, and when there is none. :func:`paginate`
joins the two, so every paged read stops the same ways: an empty page, no next cursor, a known
total reached or a short page, and — for a source whose paging is broken — a cursor or link it
already gave, a key that does not advance, or more pages than ``max_pages``. Those last are a
:class:`PagingError` naming the stream, never a loop that runs until the process is killed.

Paginators are single-use: :meth:`Paginator.first` starts one read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from bridge.errors import Remedy, SourceError

if TYPE_CHECKING:
    from _typeshed import SupportsDunderLT

MAX_PAGES = 100_000

Item = TypeVar("Item")
Item_co = TypeVar("Item_co", covariant=True)
Item_contra = TypeVar("Item_contra", contravariant=True)
Position = TypeVar("Position")
Position_co = TypeVar("Position_co", covariant=True)


class PagingError(SourceError):
    """A source whose paging never ends: it would read the same pages for ever."""

    def __init__(self, message: str) -> None:
        super().__init__(message, Remedy.FIX_CONFIG)


@dataclass(frozen=True)
class Page(Generic[Item_co]):
    """One page as the connector read it: its items, and what it says about the next one.

    ``next_token`` is the next page's cursor or link where the source gives one ('' or None:
    there is none); ``total`` the number of items in all pages where the source says.
    """

    items: Sequence[Item_co]
    next_token: str | None = None
    total: int | None = None


class Paginator(Protocol[Position_co, Item_contra]):
    """Where a paged read starts, and where it goes after each page (None: it is over)."""

    stream: str  # what is being read, for errors: "feed 'hr': /v1/people"

    def first(self) -> Position_co: ...

    def next(self, page: Page[Item_contra]) -> Position_co | None: ...


def paginate(
    paginator: Paginator[Position, Item],
    fetch: Callable[[Position], Page[Item]],
    max_pages: int = MAX_PAGES,
) -> Iterator[Page[Item]]:
    """Every page from ``fetch``, from the paginator's first position to its last."""
    position: Position | None = paginator.first()
    pages = 0
    while position is not None:
        if pages == max_pages:
            raise PagingError(f"{paginator.stream} did not stop paging after {max_pages} pages")
        page = fetch(position)
        pages += 1
        yield page
        position = paginator.next(page)


class TokenPaginator:
    """Pages named by the previous page: a ``next_cursor`` token or a next-page link.

    The first position is '' (the first page, which no token names). A token met before would
    page in a circle: it is refused, whichever earlier page it names.
    """

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self._seen: set[str] = set()

    def first(self) -> str:
        self._seen = set()
        return ""

    def next(self, page: Page[Any]) -> str | None:
        token = page.next_token
        if not page.items or not token:
            return None
        if token in self._seen:
            raise PagingError(
                f"{self.stream} pointed back to a page it already gave ({token[:80]!r}); its paging is broken"
            )
        self._seen.add(token)
        return token


def _page_size(size: int) -> int:
    if size < 1:
        raise ValueError("a page holds at least one item")
    return size


class _Counted:
    """Items read so far, and whether the last page was the end: an empty page, the known
    total reached or, where the source gives no total, a page shorter than asked for."""

    def __init__(self, stream: str, size: int) -> None:
        self.stream = stream
        self.size = _page_size(size)
        self.read = 0

    def _advance(self, page: Page[Any]) -> bool:
        """Count the page; whether another follows."""
        self.read += len(page.items)
        if not page.items:
            return False
        if page.total is not None:
            return self.read < page.total
        return len(page.items) >= self.size


class OffsetPaginator(_Counted):
    """``offset``/``limit`` paging: the position is the number of items before the page.

    The next offset counts the items the page held, not the size asked for, so a source that
    caps its pages below ``size`` skips nothing when it gives a total.
    """

    def first(self) -> int:
        self.read = 0
        return 0

    def next(self, page: Page[Any]) -> int | None:
        return self.read if self._advance(page) else None


class PageNumberPaginator(_Counted):
    """``page=N`` paging from ``first_page`` (0 or 1, as the source counts)."""

    def __init__(self, stream: str, size: int, first_page: int = 1) -> None:
        super().__init__(stream, size)
        self.first_page = first_page
        self.number = first_page

    def first(self) -> int:
        self.read = 0
        self.number = self.first_page
        return self.number

    def next(self, page: Page[Any]) -> int | None:
        if not self._advance(page):
            return None
        self.number += 1
        return self.number


Key = TypeVar("Key", bound="SupportsDunderLT[Any]")


class KeysetPaginator(Generic[Key, Item]):
    """Keyset ("seek") paging: each page is the ``size`` items whose key follows the last
    page's last key, in key order — a short, indexed query per page, however far the read goes.

    The position is the last key read (``start`` first: the page begins after it). A page whose
    last key does not follow the previous position means the source does not return items in
    key order, and paging on would read the same items again: a :class:`PagingError`.
    """

    def __init__(self, stream: str, size: int, key: Callable[[Item], Key], start: Key) -> None:
        self.stream = stream
        self.size = _page_size(size)
        self.key = key
        self.start = start
        self.position = start

    def first(self) -> Key:
        self.position = self.start
        return self.start

    def next(self, page: Page[Item]) -> Key | None:
        if len(page.items) < self.size:
            return None
        last = self.key(page.items[-1])
        if not self.position < last:
            raise PagingError(
                f"{self.stream}: a page ended at {last!r}, not after {self.position!r}; "
                "the rows are not read in key order"
            )
        self.position = last
        return last
