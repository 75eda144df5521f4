"""Names that moved into the standard library after Python 3.10, and small protocol helpers."""

from __future__ import annotations

import abc
import sys
from types import TracebackType
from typing import Generic, TypeVar

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
    from typing import NotRequired, Required, Self, TypedDict, Unpack
else:  # pragma: no cover - exercised on Python 3.10 only
    from exceptiongroup import BaseExceptionGroup
    from typing_extensions import NotRequired, Required, Self, TypedDict, Unpack

__all__ = [
    "AsyncByteReader",
    "AsyncClosingIterator",
    "BaseExceptionGroup",
    "ClosingContext",
    "NotRequired",
    "Required",
    "Self",
    "TypedDict",
    "Unpack",
    "single",
]


def single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups of one member each; else *exc*.

    A task group wraps even a lone failure in a group; callers of anyoai expect the failure.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


_T_co = TypeVar("_T_co", covariant=True)


class AsyncClosingIterator(abc.ABC, Generic[_T_co]):
    """An async iterator that is its own async context manager: leaving the ``async with``
    calls :meth:`aclose` (which subclasses define, with ``__anext__``)."""

    def __aiter__(self) -> Self:
        return self

    @abc.abstractmethod
    async def __anext__(self) -> _T_co:
        """The next item (``StopAsyncIteration`` at the end)."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release what the iterator holds. Safe to call more than once."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncByteReader(AsyncClosingIterator[bytes]):
    """An :class:`AsyncClosingIterator` of byte chunks that can also be read whole."""

    async def read(self) -> bytes:
        """The rest of the bytes, in memory (for small bodies)."""
        return b"".join([chunk async for chunk in self])


class ClosingContext(abc.ABC):
    """A (blocking) context manager whose exit calls :meth:`close` (which subclasses define)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the object holds. Safe to call more than once."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
