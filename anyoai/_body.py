"""Request and response bodies on the wire: what the transport hands httpcore to send, and
what it reads a response through.

Both sides avoid httpcore's async generators where they would be left suspended: a request body
of bytes is one chunk through a plain iterator (:class:`Content`), and an HTTP/1.1 response body
is read straight from the h11 connection (:class:`HTTP11Body`), so that a failure or an early
close leaves nothing for the garbage collector (trio warns about suspended generators). A
streamed request body's own failure is carried through httpcore as a :class:`BodyError`, so
that it is raised unchanged instead of being taken for a connection error.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import anyio

__all__ = [
    "BodyError",
    "BodyIterator",
    "Content",
    "HTTP11Body",
    "close_content",
    "content_length",
    "guarded",
    "http11_body_support",
]

logger = logging.getLogger("anyoai")


class BodyError(Exception):
    """An exception raised by a streamed request body's own source (a storage read, a
    caller's iterable), carried through httpcore so that it is not taken for a connection
    error: it is raised unchanged, and the request is not sent again."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Content:
    """A request body of bytes, for httpcore: one chunk, through a plain iterator.

    httpcore's own ``ByteStream`` iterates through an async generator, which a failed write
    leaves suspended for the garbage collector (and trio warns about it); this has nothing to
    close.
    """

    __slots__ = ("_content", "_sent")

    def __init__(self, content: bytes) -> None:
        self._content = content
        self._sent = False

    def __aiter__(self) -> Content:
        self._sent = False
        return self

    async def __anext__(self) -> bytes:
        if self._sent:
            raise StopAsyncIteration
        self._sent = True
        return self._content


async def guarded(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except Exception as exc:
        raise BodyError(exc) from exc
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class BodyIterator(Protocol):
    """What a response body is read through: httpcore's own iterator, or :class:`HTTP11Body`."""

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None: ...


class HTTP11Body:
    """The body of a response on httpcore's HTTP/1.1 connection, read without async generators.

    httpcore's body stream iterates through two nested async generators. Closing the outer
    one early (a stream left before its end, a body over the size limit) leaves the inner one,
    ``_receive_response_body``, suspended, and under trio the garbage collector reports it as a
    ResourceWarning; nothing outside can reach it to close it. This iterator does what those
    two do (take h11 events from the connection until the end of the message; on any failure,
    close the response, which closes a connection not read to its end), with nothing to leave
    behind. It uses the connection's ``_receive_event``; :meth:`Transport._body_iterator` falls
    back to httpcore's iterator for any other stream, or should httpcore rename it.
    """

    __slots__ = ("_done", "_h11", "_receive", "_stream", "_timeout")

    def __init__(self, stream: Any, h11: Any) -> None:
        self._stream = stream
        self._receive = stream._connection._receive_event
        self._timeout = stream._request.extensions.get("timeout", {}).get("read")
        self._h11 = h11
        self._done = False

    def __aiter__(self) -> HTTP11Body:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        h11 = self._h11
        try:
            while True:
                event = await self._receive(timeout=self._timeout)
                if type(event) is h11.Data:
                    return bytes(event.data)
                if type(event) is h11.EndOfMessage or event is h11.PAUSED:
                    break
        except BaseException:
            self._done = True
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            raise
        self._done = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._done = True
        await self._stream.aclose()


def http11_body_support() -> tuple[type | None, Any]:
    """httpcore's HTTP/1.1 body stream class and the h11 module, when :class:`HTTP11Body` can
    read that stream (``(None, None)`` otherwise: httpcore's own iterator is used)."""
    try:
        import h11
        from httpcore._async.http11 import AsyncHTTP11Connection, HTTP11ConnectionByteStream
    except ImportError:  # pragma: no cover - httpcore moved it
        return None, None
    if not hasattr(AsyncHTTP11Connection, "_receive_event"):  # pragma: no cover
        return None, None
    return HTTP11ConnectionByteStream, h11


def content_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    """The response's Content-Length, when it has one that is a number."""
    for name, value in headers:
        if len(name) == 14 and name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def close_content(content: object) -> None:
    """Close a streamed request body that a failure left part-way (an async generator)."""
    aclose = getattr(content, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            try:
                await aclose()
            except Exception:
                logger.debug("error while closing a request body", exc_info=True)
