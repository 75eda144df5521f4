"""``pool.files`` and ``pool.uploads``: files in, files out, streamed from and to storage.

A file to upload is a storage URL (``s3://...``, ``gs://...``, ``az://...``, ``minio://...``,
``memory://...``), a local path, bytes, or an async iterable of bytes. It is streamed into the
``multipart/form-data`` request as it is read, never held whole in memory; above the Files
API's single-request limit it goes through the Uploads API in parts, each part a ranged read of
the source. A download streams the other way, into any storage URL.
"""

from __future__ import annotations

import logging
import mimetypes
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
import attrs

from .._compat import Unpack, single
from .._exceptions import InvalidParameterError, ResponseValidationError
from .._model import NOT_GIVEN, CursorPage, NotGiven
from .._multipart import form_body
from .._pager import AsyncPager
from .._request import APIRequest, BodySource, CallOptions
from .._streaming import ByteStream
from ..storage import StorageURL, parse_url
from ..types.files import FileDeleted, FileList, FileObject, Upload, UploadPart
from ..types.params import RequestOptions
from ._base import Resource, options_from, quote_id

if TYPE_CHECKING:
    from ..storage import Storage

logger = logging.getLogger("anyoai")
__all__ = ["PART_SIZE", "SINGLE_REQUEST_LIMIT", "FileInput", "Files", "Uploads"]

#: the largest file the Files API takes in one request
SINGLE_REQUEST_LIMIT: Final = 512 * 1024 * 1024
#: the largest part the Uploads API takes
PART_SIZE: Final = 64 * 1024 * 1024
_EXTRA_TYPES: Final = {".jsonl": "application/jsonl", ".jsonlines": "application/jsonl"}

FileInput = str | os.PathLike[str] | StorageURL | bytes | tuple[str, bytes] | AsyncIterable[bytes]


PageT = TypeVar("PageT", bound=CursorPage[Any])


def cursor_pager(
    resource: Resource,
    path: str,
    page_type: type[PageT],
    opts: CallOptions,
    query: Mapping[str, Any],
) -> AsyncPager[PageT, Any]:
    """The pager of a list endpoint paged by ``after=<last id>`` (``files.list``,
    ``batches.list``): each page a ``GET`` of *path* with *query* and the caller's options."""

    async def fetch(after: str | None) -> PageT:
        page_query = {**query, **({"after": after} if after else {})}
        page_opts = attrs.evolve(
            opts, extra_query={**page_query, **(opts.extra_query or {})} or None
        )
        return await resource._call(resource._request("GET", path, page_opts), page_type)

    return AsyncPager(fetch, lambda item: item.id)


def _mime_type(filename: str) -> str:
    extension = os.path.splitext(filename)[1].lower()
    if extension in _EXTRA_TYPES:
        return _EXTRA_TYPES[extension]
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


@attrs.frozen
class _Source:
    """A file to upload: its name, size (if known), and how to read (part of) it.

    ``read(offset, length)`` makes a new iterator over the bytes from *offset*; sources that
    cannot be read twice (a caller's async iterable) are not replayable and read sequentially.
    """

    filename: str
    size: int | None
    read: Callable[[int, int | None], AsyncIterator[bytes]]
    replayable: bool
    description: str


async def _resolve(storage: Storage, file: Any, filename: str | None, size: int | None) -> _Source:
    if isinstance(file, tuple) and len(file) == 2 and isinstance(file[1], (bytes, bytearray)):
        filename = filename or file[0]
        file = file[1]
    if isinstance(file, (bytes, bytearray, memoryview)):
        data = bytes(file)
        if not filename:
            raise InvalidParameterError(
                "files.create: a file given as bytes needs filename=... (or file=(name, bytes))",
                param="filename",
            )

        async def read_bytes(offset: int, length: int | None) -> AsyncIterator[bytes]:
            end = len(data) if length is None else offset + length
            step = storage.chunk_size
            for start in range(offset, end, step):
                yield data[start : min(start + step, end)]

        return _Source(filename, len(data), read_bytes, True, f"{len(data)} bytes")
    if isinstance(file, (str, os.PathLike, StorageURL)):
        target = parse_url(file)
        info = await storage.info(target)

        async def read_url(offset: int, length: int | None) -> AsyncIterator[bytes]:
            reader = await storage.open(target, offset=offset, length=length)
            async with reader:
                async for chunk in reader:
                    yield chunk

        return _Source(filename or target.name, info.size, read_url, True, str(target))
    if isinstance(file, AsyncIterable):
        if not filename:
            raise InvalidParameterError(
                "files.create: a file given as an async iterable needs filename=...",
                param="filename",
            )
        iterator = aiter(file)
        pending = b""  # read past the end of the previous part: the start of the next one
        used = False

        async def read_once(offset: int, length: int | None) -> AsyncIterator[bytes]:
            nonlocal pending, used
            if used and length is None:
                raise InvalidParameterError(
                    "files.create: an async iterable can be read only once; it cannot be sent "
                    "again (give a storage URL, a path or bytes to get retries)",
                    param="file",
                )
            used = True
            remaining = length
            while remaining is None or remaining > 0:
                if not pending:
                    try:
                        pending = bytes(await anext(iterator))
                    except StopAsyncIteration:
                        return
                cut = len(pending) if remaining is None else remaining
                piece, pending = pending[:cut], pending[cut:]
                if remaining is not None:
                    remaining -= len(piece)
                yield piece
            if length is not None and size is not None and offset + length >= size:
                # the last part of a declared size: the caller's iterator is done with (close
                # it now, rather than leave an unfinished async generator to the collector)
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()

        return _Source(filename, size, read_once, False, "an async iterable")
    raise InvalidParameterError(
        "files.create: file must be a storage URL or path, bytes, (filename, bytes) or an "
        f"async iterable of bytes, got {type(file).__name__}",
        param="file",
    )


class Files(Resource):
    """``/files``: upload, list, retrieve, delete and download files."""

    __slots__ = ()

    async def create(
        self,
        *,
        file: FileInput,
        purpose: str,
        filename: str | None = None,
        size: int | None = None,
        expires_after: Mapping[str, Any] | None = None,
        upload_threshold: int = SINGLE_REQUEST_LIMIT,
        part_size: int = PART_SIZE,
        **options: Unpack[RequestOptions],
    ) -> FileObject:
        """Upload a file.

        :param file: a storage URL (``s3://bucket/train.jsonl``) or local path, ``bytes`` (with
            *filename*), ``(filename, bytes)``, or an async iterable of bytes (with *filename*;
            with *size* too, to be able to use the Uploads API; it is not retried).
        :param purpose: ``"batch"``, ``"fine-tune"``, ``"assistants"``, ``"vision"``,
            ``"user_data"`` or ``"evals"``.
        :param filename: the name the API records (default: the URL's last segment).
        :param upload_threshold: files larger than this go through the Uploads API, in parts of
            *part_size* bytes (defaults: the API's limits, 512 MiB and 64 MiB).
        :raises InvalidParameterError: for a bad argument, naming it.
        :raises StorageError: when the source cannot be read.
        """
        opts = options_from("files.create", dict[str, Any](options))
        _check_str("files.create", "purpose", purpose)
        if filename is not None:
            _check_str("files.create", "filename", filename)
        _check_size("files.create", "upload_threshold", upload_threshold)
        _check_size("files.create", "part_size", part_size)
        source = await _resolve(self._client.storage, file, filename, size)
        if source.size is not None and source.size > upload_threshold:
            upload = await Uploads(self._client).upload_file_chunked(
                file=source, purpose=purpose, part_size=part_size, **options
            )
            if upload.file is None:
                raise ResponseValidationError(
                    f"files.create: upload {upload.id} ended with status {upload.status!r} "
                    "and no file",
                    path="$.file",
                )
            return upload.file
        fields = [("purpose", purpose)]
        for key, value in (expires_after or {}).items():
            fields.append((f"expires_after[{key}]", str(value)))
        body, content_type = form_body(
            fields,
            file_field="file",
            filename=source.filename,
            content_type=_mime_type(source.filename),
            size=source.size,
            open_file=lambda: source.read(0, None),
            replayable=source.replayable,
        )
        request = _upload_request(self, "/files", opts, body, content_type)
        return await self._call(request, FileObject)

    def list(
        self,
        *,
        purpose: str | NotGiven = NOT_GIVEN,
        limit: int | NotGiven = NOT_GIVEN,
        order: str | NotGiven = NOT_GIVEN,
        **options: Unpack[RequestOptions],
    ) -> AsyncPager[FileList, FileObject]:
        """Every file: ``async for file in pool.files.list()`` (pages fetched as needed), or
        ``await pool.files.list()`` for the first page."""
        opts = options_from("files.list", dict[str, Any](options))
        query: dict[str, Any] = {}
        if not isinstance(purpose, NotGiven):
            query["purpose"] = purpose
        if not isinstance(limit, NotGiven):
            _check_size("files.list", "limit", limit)
            query["limit"] = limit
        if not isinstance(order, NotGiven):
            query["order"] = order
        return cursor_pager(self, "/files", FileList, opts, query)

    async def retrieve(self, file_id: str, **options: Unpack[RequestOptions]) -> FileObject:
        """Describe one file.

        :raises NotFoundError: if there is no such file.
        """
        opts = options_from("files.retrieve", dict[str, Any](options))
        path = f"/files/{quote_id('file_id', file_id)}"
        return await self._call(self._request("GET", path, opts), FileObject)

    async def delete(self, file_id: str, **options: Unpack[RequestOptions]) -> FileDeleted:
        """Delete one file.

        :raises NotFoundError: if there is no such file.
        """
        opts = options_from("files.delete", dict[str, Any](options))
        path = f"/files/{quote_id('file_id', file_id)}"
        return await self._call(self._request("DELETE", path, opts), FileDeleted)

    async def content(self, file_id: str, **options: Unpack[RequestOptions]) -> ByteStream:
        """A file's bytes, streamed: ``async with await pool.files.content(id) as body:
        async for chunk in body: ...``.

        :raises NotFoundError: if there is no such file.
        """
        opts = options_from("files.content", dict[str, Any](options))
        path = f"/files/{quote_id('file_id', file_id)}/content"
        request = attrs.evolve(self._request("GET", path, opts), stream=True, accept="*/*")
        return ByteStream(await self._client.send(request))

    async def download(
        self,
        file_id: str,
        *,
        to: str | os.PathLike[str] | StorageURL,
        **options: Unpack[RequestOptions],
    ) -> int:
        """Stream a file's bytes into storage (``s3://...``, a path...); return its size.

        :raises NotFoundError: if there is no such file.
        :raises StorageError: if the destination cannot be written (nothing partial is left).
        """
        target = parse_url(to)
        body = await self.content(file_id, **options)
        async with body:
            return await self._client.storage.write(target, body)


class Uploads(Resource):
    """``/uploads``: a file of up to 8 GB, sent in parts of up to 64 MB."""

    __slots__ = ()

    async def create(
        self,
        *,
        bytes: int,
        filename: str,
        mime_type: str,
        purpose: str,
        **options: Unpack[RequestOptions],
    ) -> Upload:
        """Start an upload of *bytes* bytes; add its parts, then :meth:`complete` it."""
        opts = options_from("uploads.create", dict[str, Any](options))
        _check_size("uploads.create", "bytes", bytes)
        for name, value in (("filename", filename), ("mime_type", mime_type), ("purpose", purpose)):
            _check_str("uploads.create", name, value)
        body = {"bytes": bytes, "filename": filename, "mime_type": mime_type, "purpose": purpose}
        return await self._call(self._request("POST", "/uploads", opts, body=body), Upload)

    async def add_part(
        self,
        upload_id: str,
        *,
        data: bytes | BodySource,
        **options: Unpack[RequestOptions],
    ) -> UploadPart:
        """Send one part (up to 64 MB): bytes, or a streamed :class:`BodySource`."""
        opts = options_from("uploads.add_part", dict[str, Any](options))
        path = f"/uploads/{quote_id('upload_id', upload_id)}/parts"
        if isinstance(data, (bytes, bytearray)):
            payload = bytes(data)

            async def once() -> AsyncIterator[bytes]:
                yield payload

            data = BodySource(open=once, length=len(payload))
        body, content_type = form_body(
            [],
            file_field="data",
            filename="part",
            content_type="application/octet-stream",
            size=data.length,
            open_file=data.open,
            replayable=data.replayable,
        )
        request = _upload_request(self, path, opts, body, content_type)
        return await self._call(request, UploadPart)

    async def complete(
        self,
        upload_id: str,
        *,
        part_ids: list[str],
        md5: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> Upload:
        """Finish an upload: its parts, in order, become the file (``upload.file``)."""
        opts = options_from("uploads.complete", dict[str, Any](options))
        path = f"/uploads/{quote_id('upload_id', upload_id)}/complete"
        body: dict[str, Any] = {"part_ids": list(part_ids)}
        if md5 is not None:
            body["md5"] = md5
        return await self._call(self._request("POST", path, opts, body=body), Upload)

    async def cancel(self, upload_id: str, **options: Unpack[RequestOptions]) -> Upload:
        """Cancel an upload: no part can be added afterwards."""
        opts = options_from("uploads.cancel", dict[str, Any](options))
        path = f"/uploads/{quote_id('upload_id', upload_id)}/cancel"
        return await self._call(self._request("POST", path, opts), Upload)

    async def upload_file_chunked(
        self,
        *,
        file: FileInput | _Source,
        purpose: str,
        filename: str | None = None,
        size: int | None = None,
        mime_type: str | None = None,
        part_size: int = PART_SIZE,
        max_concurrency: int = 4,
        **options: Unpack[RequestOptions],
    ) -> Upload:
        """Upload a whole file in parts: create, send every part, complete.

        Parts of a URL, a path or bytes are ranged reads, sent up to *max_concurrency* at
        once; an async iterable is read once, part after part. If anything fails, or the call
        is cancelled, the upload is cancelled so that nothing is left pending.

        :raises InvalidParameterError: if the size of the file is unknown.
        """
        _check_size("uploads.upload_file_chunked", "part_size", part_size)
        _check_size("uploads.upload_file_chunked", "max_concurrency", max_concurrency)
        source = (
            file
            if isinstance(file, _Source)
            else await _resolve(self._client.storage, file, filename, size)
        )
        if source.size is None:
            raise InvalidParameterError(
                "uploads.upload_file_chunked: the file's size must be known (give size=...)",
                param="size",
            )
        total = source.size
        upload = await self.create(
            bytes=total,
            filename=source.filename,
            mime_type=mime_type or _mime_type(source.filename),
            purpose=purpose,
            **options,
        )
        offsets = list(range(0, total, part_size)) or [0]
        part_ids: list[str | None] = [None] * len(offsets)
        limiter = anyio.CapacityLimiter(max_concurrency if source.replayable else 1)

        async def send(index: int, offset: int) -> None:
            length = min(part_size, total - offset)
            async with limiter:
                part = BodySource(
                    open=lambda: source.read(offset, length),
                    length=length,
                    replayable=source.replayable,
                )
                added = await self.add_part(upload.id, data=part, **options)
            part_ids[index] = added.id

        try:
            async with anyio.create_task_group() as group:
                for index, offset in enumerate(offsets):
                    if source.replayable:
                        group.start_soon(send, index, offset)
                    else:
                        await send(index, offset)  # in order: the source is one stream
            done = [part_id for part_id in part_ids if part_id is not None]
            return await self.complete(upload.id, part_ids=done, **options)
        except BaseException as exc:
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                try:
                    await self.cancel(upload.id, **options)
                except Exception:  # the first failure is the one to report
                    logger.debug("could not cancel upload %s", upload.id, exc_info=True)
            raise single(exc) from None


def _upload_request(
    resource: Resource,
    path: str,
    options: CallOptions,
    body: BodySource,
    content_type: str,
) -> APIRequest:
    request = resource._request("POST", path, options)
    return attrs.evolve(
        request,
        body=body,
        content_type=content_type,
        # a one-shot body cannot be sent twice
        max_retries=request.max_retries if body.replayable else 0,
    )


def _check_str(endpoint: str, name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidParameterError(
            f"{endpoint}: {name} must be a non-empty string, got {value!r}", param=name
        )


def _check_size(endpoint: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError(
            f"{endpoint}: {name} must be a whole number >= 1, got {value!r}", param=name
        )
