"""bridge.pagination: every paginator reads any sequence of pages to its end, each item once,
and a source whose paging never ends is an error naming the stream, not an endless loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.pagination import (
    KeysetPaginator,
    OffsetPaginator,
    Page,
    PageNumberPaginator,
    PagingError,
    TokenPaginator,
    paginate,
)

ITEMS = st.lists(st.integers(), max_size=60)
SIZES = st.integers(min_value=1, max_value=12)


def read(paginator: Any, fetch: Callable[[Any], Page[Any]], max_pages: int = 1000) -> tuple[list[Any], int]:
    """Every item read, and how many pages were asked for."""
    calls = [0]

    def counted(position: Any) -> Page[Any]:
        calls[0] += 1
        return fetch(position)

    items = [item for page in paginate(paginator, counted, max_pages) for item in page.items]
    return items, calls[0]


def pages_needed(count: int, size: int) -> int:
    """Pages a read that stops at a short page asks for: one more when the last page is full."""
    return count // size + 1


@given(pages=st.lists(st.lists(st.integers(), min_size=1, max_size=8), max_size=12), empty_end=st.booleans())
def test_token_paging_reads_every_page_once_and_stops(pages: list[list[int]], empty_end: bool) -> None:
    served = [*pages, []] if empty_end else pages

    def fetch(token: str) -> Page[int]:
        number = int(token or 0)
        if number >= len(served):
            return Page([])
        has_next = number + 1 < len(served)
        return Page(served[number], str(number + 1) if has_next else None)

    items, calls = read(TokenPaginator("stream"), fetch)
    assert items == [i for page in pages for i in page]
    assert calls == max(1, len(served))


@given(items=ITEMS, size=SIZES, cap=SIZES, with_total=st.booleans())
def test_offset_paging_reads_every_item_once_and_stops(
    items: list[int], size: int, cap: int, with_total: bool
) -> None:
    if not with_total:
        cap = max(cap, size)  # without a total, only a short page says it is the end

    def fetch(offset: int) -> Page[int]:
        page = items[offset : offset + min(size, cap)]
        return Page(page, total=len(items) if with_total else None)

    read_items, calls = read(OffsetPaginator("stream", size), fetch)
    assert read_items == items
    served = min(size, cap)
    assert calls == (max(1, -(-len(items) // served)) if with_total else pages_needed(len(items), size))


@given(items=ITEMS, size=SIZES, cap=SIZES, first_page=st.sampled_from([0, 1]), with_total=st.booleans())
def test_page_number_paging_reads_every_item_once_and_stops(
    items: list[int], size: int, cap: int, first_page: int, with_total: bool
) -> None:
    if not with_total:
        cap = max(cap, size)
    served = min(size, cap)  # a source that caps its pages numbers them by its own size

    def fetch(number: int) -> Page[int]:
        start = (number - first_page) * served
        return Page(items[start : start + served], total=len(items) if with_total else None)

    read_items, calls = read(PageNumberPaginator("stream", size, first_page), fetch)
    assert read_items == items
    assert calls == (max(1, -(-len(items) // served)) if with_total else pages_needed(len(items), size))


@given(
    times=st.lists(st.integers(min_value=0, max_value=20), max_size=60),  # many rows share a time
    size=SIZES,
    since=st.integers(min_value=-1, max_value=10),
)
def test_keyset_paging_reads_every_row_after_the_start_once(times: list[int], size: int, since: int) -> None:
    rows = sorted((t, row_id) for row_id, t in enumerate(times))
    after_all = 10**9

    def fetch(after: tuple[int, int]) -> Page[tuple[int, int]]:
        return Page([r for r in rows if r > after][:size])

    read_rows, calls = read(KeysetPaginator("stream", size, key=lambda r: r, start=(since, after_all)), fetch)
    expected = [r for r in rows if r[0] > since]
    assert read_rows == expected
    assert calls == pages_needed(len(expected), size)


def test_a_cursor_given_before_is_refused_naming_the_stream() -> None:
    tokens = ["a", "b", "a"]
    calls: list[str] = []

    def fetch(token: str) -> Page[int]:
        calls.append(token)
        return Page([1], tokens[len(calls) - 1])

    with pytest.raises(
        PagingError, match=r"feed 'hr': /people pointed back to a page it already gave \('a'\)"
    ):
        read(TokenPaginator("feed 'hr': /people"), fetch)
    assert calls == ["", "a", "b"]  # not one page more


def test_a_source_that_ignores_the_offset_stops_at_the_page_limit() -> None:
    with pytest.raises(PagingError, match=r"^feed 'hr': /kpis did not stop paging after 5 pages$"):
        read(OffsetPaginator("feed 'hr': /kpis", 2), lambda offset: Page([1, 2]), max_pages=5)


def test_a_keyset_page_that_does_not_advance_is_refused() -> None:
    rows: Sequence[tuple[int, int]] = [(5, 1), (5, 2)]
    with pytest.raises(PagingError, match=r"replica ratings: a page ended at \(5, 2\), not after \(5, 2\)"):
        read(KeysetPaginator("replica ratings", 2, key=lambda r: r, start=(0, 0)), lambda after: Page(rows))


def test_a_page_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one item"):
        OffsetPaginator("s", 0)
    with pytest.raises(ValueError, match="at least one item"):
        KeysetPaginator[int, int]("s", 0, key=lambda r: r, start=0)
