"""Cursor pagination for list endpoints (``files.list``, ``batches.list``).

``pager = pool.files.list(...)``: ``async for item in pager`` goes through every item of every
page, fetching the next page (``after=<last id>``) only when the previous one is used up;
``await pager`` gives just the first page, as the official SDK does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["AsyncPager"]

ItemT = TypeVar("ItemT")
PageT = TypeVar("PageT", bound="_Page[Any]")
ItemT_co = TypeVar("ItemT_co", covariant=True)


class _Page(Protocol[ItemT_co]):
    @property
    def data(self) -> Sequence[ItemT_co]: ...

    @property
    def has_more(self) -> bool: ...


class AsyncPager(Generic[PageT, ItemT]):
    """Every item of a paginated list: ``async for item in pager``, or ``await pager`` for the
    first page. Pages come one at a time, on demand."""

    def __init__(
        self, fetch: Callable[[str | None], Awaitable[PageT]], cursor: Callable[[ItemT], str]
    ) -> None:
        self._fetch = fetch
        self._cursor = cursor

    async def pages(self) -> AsyncIterator[PageT]:
        """Each page in turn."""
        after: str | None = None
        while True:
            page = await self._fetch(after)
            yield page
            if not page.has_more or not page.data:
                return
            after = self._cursor(page.data[-1])

    async def __aiter__(self) -> AsyncIterator[ItemT]:
        async for page in self.pages():
            for item in page.data:
                yield item

    async def to_list(self) -> list[ItemT]:
        """Every item, in a list."""
        return [item async for item in self]

    def __await__(self) -> Generator[Any, None, PageT]:
        return self._fetch(None).__await__()

    def __repr__(self) -> str:
        return "<AsyncPager>"
