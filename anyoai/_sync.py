"""Blocking facade: ``open_pool_sync`` and ``run_sync`` for code that is not async.

``open_pool_sync`` starts one event loop in a background thread (an anyio ``BlockingPortal``),
opens an async pool there, and keeps both for the whole ``with`` block. Every blocking call is
sent to that loop, so any number of threads can share one sync pool; streams become plain
iterators (one dropped without being closed is closed in the loop when the garbage collector
finds it, with a ``ResourceWarning`` saying where it was created). Neither helper may be
called from inside a running event loop (it would block it): they raise
:class:`~anyoai.AsyncContextError` saying to ``await`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

import anyio
import anyio.from_thread

from ._compat import ClosingContext, Self
from ._exceptions import AsyncContextError
from ._pool import Pool, open_pool
from ._streaming import AsyncStream, ByteStream, creation_site, describe_site

__all__ = ["SyncPool", "SyncStream", "open_pool_sync", "run_sync"]

T = TypeVar("T")
ChunkT = TypeVar("ChunkT")
ChunkT_co = TypeVar("ChunkT_co", covariant=True)


class _AsyncSource(Protocol[ChunkT_co]):
    """What a :class:`SyncStream` wraps: an :class:`AsyncStream` or a :class:`ByteStream`."""

    @property
    def closed(self) -> bool: ...

    def __anext__(self) -> Awaitable[ChunkT_co]: ...

    async def aclose(self) -> None: ...

    def _discard_nowait(self) -> bool: ...


def _running_async_library() -> str | None:
    """The async library running in this thread, if any (without importing trio)."""
    try:
        import sniffio
    except ImportError:  # pragma: no cover - sniffio comes with trio
        sniffio = None  # type: ignore[assignment]
    if sniffio is not None:
        try:
            return sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            pass
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    return "asyncio"


def _refuse_inside_loop(what: str, instead: str) -> None:
    library = _running_async_library()
    if library is not None:
        raise AsyncContextError(
            f"{what} was called inside a running {library} event loop, where it would block the "
            f"loop; {instead}"
        )


class SyncStream(ClosingContext, Generic[ChunkT]):
    """A stream as a plain iterator and context manager, for blocking code.

    Use it in a ``with`` block (or call :meth:`close`) so that its connection is released when
    you stop early; one dropped open is closed when the garbage collector finds it, with a
    ``ResourceWarning`` saying where it was created.
    """

    def __init__(
        self,
        stream: _AsyncSource[ChunkT],
        portal: anyio.from_thread.BlockingPortal,
    ) -> None:
        self._site = creation_site()
        self._stream = stream
        self._portal = portal

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ChunkT:
        try:
            return self._portal.call(self._stream.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Stop the stream and release its connection."""
        self._portal.call(self._stream.aclose)

    def __del__(
        self,
        _finalizing: Any = sys.is_finalizing,
        _warn: Any = warnings.warn,
    ) -> None:
        # dropped open: close the stream in its event loop (or at once, without I/O, when that
        # loop is gone or this is its thread) and say where it was made; never raises
        stream = getattr(self, "_stream", None)
        if stream is None or stream.closed or _finalizing():
            return
        try:
            try:
                self._portal.start_task_soon(stream.aclose)
            except RuntimeError:  # the portal has stopped, or this is its own thread
                stream._discard_nowait()
            message = (
                f"unclosed SyncStream of {type(stream).__name__} {describe_site(self._site)}: "
                "the garbage collector closed it; use `with` (or call `stream.close()`) so "
                "that its connection is released when you are done with it"
            )
        except Exception:
            return
        _warn(message, ResourceWarning, source=self)

    def __getattr__(self, name: str) -> Any:
        # accumulator, headers, request_id, get_final_completion(), ...
        return _wrap(getattr(self._stream, name), self._portal)

    def __repr__(self) -> str:
        return f"<SyncStream of {self._stream!r}>"


def _wrap(value: Any, portal: anyio.from_thread.BlockingPortal) -> Any:
    """Make a blocking version of an async method, or a proxy of a resource namespace."""
    if inspect.iscoroutinefunction(value):

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            _refuse_inside_loop(
                f"the blocking {value.__qualname__}()", f"use `await {value.__qualname__}(...)`"
            )
            result = portal.call(functools.partial(value, *args, **kwargs))
            if isinstance(result, (AsyncStream, ByteStream)):
                return SyncStream(result, portal)
            return result

        return call
    if type(value).__module__.startswith("anyoai.resources"):
        return _SyncNamespace(value, portal)
    return value


class _SyncNamespace:
    """A blocking view of a resource (``pool.chat``, ``pool.chat.completions``, ...)."""

    def __init__(self, target: Any, portal: anyio.from_thread.BlockingPortal) -> None:
        self._target = target
        self._portal = portal

    def __getattr__(self, name: str) -> Any:
        return _wrap(getattr(self._target, name), self._portal)

    def __repr__(self) -> str:
        return f"<sync {type(self._target).__name__}>"


class SyncPool:
    """A pool for blocking code: the same resources, as blocking methods.

    ``pool.chat.completions.create(...)`` blocks and returns the result; with ``stream=True`` it
    returns a :class:`SyncStream` to iterate over. Safe to share between threads.
    """

    def __init__(self, pool: Pool, portal: anyio.from_thread.BlockingPortal) -> None:
        self._pool = pool
        self._portal = portal

    @property
    def pool(self) -> Pool:
        """The async pool behind it (use it only from its own event loop)."""
        return self._pool

    @property
    def portal(self) -> anyio.from_thread.BlockingPortal:
        """The portal to the event loop thread, to run your own async code there."""
        return self._portal

    def statistics(self) -> Any:
        """The transport's connection statistics."""
        return self._portal.call(_call_sync, self._pool.statistics)

    def __getattr__(self, name: str) -> Any:
        return _wrap(getattr(self._pool, name), self._portal)

    def __repr__(self) -> str:
        return f"<SyncPool {self._pool!r}>"


async def _call_sync(fn: Callable[[], T]) -> T:
    return fn()


@contextlib.contextmanager
def open_pool_sync(
    *,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    **pool_options: Any,
) -> Iterator[SyncPool]:
    """Open a pool for blocking code: ``with anyoai.open_pool_sync() as pool: ...``.

    :param backend: the event loop to run in the background thread: ``"asyncio"`` or ``"trio"``.
    :param backend_options: options for that loop, e.g. ``{"use_uvloop": True}``.
    :param pool_options: the same keyword arguments as :func:`anyoai.open_pool`.
    :raises AsyncContextError: when called inside a running event loop.
    """
    _refuse_inside_loop(
        "open_pool_sync()", "use `async with anyoai.open_pool(...) as pool:` and `await` its calls"
    )
    with anyio.from_thread.start_blocking_portal(backend, backend_options) as portal:  # noqa: SIM117
        with portal.wrap_async_context_manager(open_pool(**pool_options)) as pool:
            yield SyncPool(pool, portal)


def run_sync(
    async_fn: Callable[..., Awaitable[T]],
    *args: Any,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> T:
    """Run ``await async_fn(*args, **kwargs)`` from blocking code and return its result.

    Starts an event loop for the call and stops it after. For many calls, prefer
    :func:`open_pool_sync`, which keeps one loop and one pool.

    :param backend: ``"asyncio"`` or ``"trio"``.
    :raises AsyncContextError: when called inside a running event loop.
    """
    _refuse_inside_loop("run_sync()", f"use `await {getattr(async_fn, '__name__', 'fn')}(...)`")

    async def main() -> T:
        return await async_fn(*args, **kwargs)

    return anyio.run(main, backend=backend, backend_options=backend_options)
