"""Objects in motion: :class:`ObjectInfo`, the streamed read :class:`ObjectReader`, and
:func:`upload_stream`, which feeds an async source to obstore's multipart upload running in a
worker thread and makes it abort when the caller is cancelled or the source fails."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.from_thread
import attrs

from .._compat import AsyncByteReader
from .._exceptions import StorageError

__all__ = [
    "ObjectInfo",
    "ObjectReader",
    "UploadAbortError",
    "next_chunk",
    "sync_source",
    "upload_stream",
]


@attrs.frozen
class ObjectInfo:
    """What a store says of one object.

    :ivar url: its URL.
    :ivar size: its size in bytes.
    :ivar last_modified: when it was last written, if the store says.
    :ivar etag: its entity tag, if the store gives one.
    """

    url: str
    size: int
    last_modified: Any = None
    etag: str | None = None


class ObjectReader(AsyncByteReader):
    """A streamed read of one object: ``async for chunk in reader``; close it (or use
    ``async with``) to let go of the connection early.

    :ivar url: the object's URL (credentials masked).
    :ivar size: the object's size in bytes.
    """

    def __init__(
        self,
        url: str,
        size: int,
        chunks: Iterator[Any],
        *,
        pull: Callable[[Iterator[Any]], Awaitable[bytes | None]],
        chunk_size: int,
    ) -> None:
        self.url = url
        self.size = size
        self._chunks: Iterator[Any] | None = chunks
        #: takes the next chunk from obstore's blocking iterator (in a worker thread)
        self._pull = pull
        self._chunk_size = chunk_size
        self._rest = memoryview(b"")

    async def __anext__(self) -> bytes:
        limit = self._chunk_size
        if not self._rest:
            chunks = self._chunks
            if chunks is None:
                raise StopAsyncIteration
            chunk = await self._pull(chunks)
            if chunk is None:
                await self.aclose()
                raise StopAsyncIteration
            if len(chunk) <= limit:
                return chunk
            self._rest = memoryview(chunk)  # a store gave more at once (memory://): cut it
        piece, self._rest = self._rest[:limit], self._rest[limit:]
        return bytes(piece)

    async def aclose(self) -> None:
        """Stop reading: the underlying stream (and its connection) is dropped."""
        self._chunks = None
        self._rest = memoryview(b"")

    def __repr__(self) -> str:
        return f"<ObjectReader {self.url} {self.size} bytes>"


def next_chunk(chunks: Iterator[Any]) -> bytes | None:
    """The next chunk of an obstore stream as bytes, ``None`` at its end (blocking)."""
    try:
        return bytes(next(chunks))
    except StopIteration:
        return None


class UploadAbortError(Exception):
    """Raised inside obstore's upload when the writer is cancelled or its source fails, so that
    obstore aborts the multipart upload. A private signal: it never leaves the storage package."""


async def sync_source(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """An async iterator over a plain iterator of chunks."""
    for chunk in chunks:
        yield chunk


async def upload_stream(
    source: AsyncIterator[bytes],
    upload: Callable[[Iterator[bytes]], Awaitable[object]],
    shown: str,
) -> int:
    """Stream an async *source* into a multipart upload; return the bytes written.

    *upload* runs obstore's upload of the (blocking) iterator it is given in a worker thread;
    that thread pulls each chunk from the event loop. When the caller is cancelled, or the
    source raises, the thread's iterator raises :class:`UploadAbortError` inside obstore, which
    aborts the multipart upload; then the cause is raised here. *source* is closed in the end.

    :param shown: the destination's URL, credentials masked, for the error.
    :raises StorageError: if the upload was aborted for no other known cause.
    """
    stop = threading.Event()
    failure: list[BaseException] = []
    written = 0

    async def pull() -> bytes | None:
        try:
            return bytes(await source.__anext__())
        except StopAsyncIteration:
            return None

    def chunks() -> Iterator[bytes]:
        nonlocal written
        while True:
            if stop.is_set():
                raise UploadAbortError("the write was cancelled")
            try:
                chunk = anyio.from_thread.run(pull)
            except BaseException as exc:  # the source failed: abort, then re-raise
                failure.append(exc)
                raise UploadAbortError("the source failed") from None
            if chunk is None:
                return
            if stop.is_set():
                raise UploadAbortError("the write was cancelled")
            written += len(chunk)
            if chunk:
                yield chunk

    async def watch() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stop.set()  # the caller is cancelled (or the upload is over)

    aborted = False
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            try:
                await upload(chunks())
            except UploadAbortError:
                aborted = True  # obstore has aborted the multipart upload
            finally:
                group.cancel_scope.cancel()
        # a cancelled caller does not get here: leaving the task group re-raised it
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()
    if aborted:
        if failure:
            raise failure[0]
        raise StorageError(f"{shown}: the write was aborted", url=shown)
    return written
