"""Files anywhere, by URL: S3, GCS, Azure Blob, MinIO, local disk and memory, through obstore.

::

    storage = anyoai.storage.Storage()            # or pool.storage, which every pool has
    async with await storage.open("s3://training/data/train.jsonl") as reader:
        async for chunk in reader:                # chunks of up to chunk_size bytes
            ...
    await storage.write("az://results/out.jsonl", chunks)   # bytes, or (async) iterable of bytes
    await storage.copy("gs://in/data.jsonl", "minio://bucket/data.jsonl")

URLs
    ``s3://bucket/key``; ``gs://bucket/key``; ``az://container/path``, ``abfs://container/path``
    and ``abfs://container@account.dfs.core.windows.net/path``; ``minio://bucket/key`` (S3 with
    the endpoint of ``MINIO_ENDPOINT`` or ``AWS_ENDPOINT_URL``, keys from ``MINIO_ACCESS_KEY`` /
    ``MINIO_SECRET_KEY`` or ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``); ``file:///path``
    and plain paths (relative ones from the current directory); ``memory://bucket/key`` (a
    process-wide in-memory store, for tests and scratch data).

Credentials and endpoints
    obstore reads its standard environment variables (``AWS_*``, ``GOOGLE_*``,
    ``AZURE_STORAGE_*``). Explicit options override them: ``Storage(options={"s3": {...},
    "s3://one-bucket": {...}})``, the keys of obstore's ``S3Store`` / ``GCSStore`` /
    ``AzureStore`` (``endpoint``, ``region``, ``access_key_id``, ``client_options``...), per
    scheme or per bucket. A store is built once per bucket and reused.

Streaming
    Reads come in chunks of ``chunk_size`` bytes; writes of iterables go up as multipart uploads
    of ``part_size`` bytes, at most ``max_concurrency`` parts in flight, so memory stays near
    ``part_size * (max_concurrency + 1)`` whatever the file's size. A write that fails or is
    cancelled aborts its multipart upload: nothing partial is left behind.

obstore's blocking calls run in worker threads (anyio), so all of this works under asyncio and
trio alike. Errors are :class:`StorageError` subclasses naming the URL, credentials masked.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
import attrs

from ._compat import Self
from ._errors import AnyoaiError
from ._secrets import redact, redact_url

if TYPE_CHECKING:
    from obstore.store import ObjectStore

__all__ = [
    "ObjectInfo",
    "ObjectReader",
    "Storage",
    "StorageError",
    "StorageNotFoundError",
    "StoragePermissionError",
    "StorageURL",
    "StorageURLError",
    "parse_url",
]

T = TypeVar("T")

#: the most bytes a read yields at once
DEFAULT_CHUNK_SIZE: Final = 1024 * 1024
#: the part size of multipart writes, and S3's smallest part
DEFAULT_PART_SIZE: Final = 8 * 1024 * 1024
MIN_PART_SIZE: Final = 5 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY: Final = 4
SCHEMES: Final = ("s3", "gs", "az", "minio", "file", "memory")
_ALIASES: Final = {"abfs": "az", "abfss": "az", "azure": "az", "gcs": "gs", "s3a": "s3"}
_SECRET_KEYS: Final = re.compile(r"(secret|key|token|password|sas|credential)", re.IGNORECASE)
_SAS_PARAMS: Final = re.compile(r"([?&](?:sig|signature|token|x-amz-signature)=)[^&#\s]+", re.I)


# --------------------------------------------------------------------------------------------
# errors


class StorageError(AnyoaiError):
    """Object storage failed.

    :ivar url: the URL concerned, with any credentials masked.
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class StorageURLError(StorageError, ValueError):
    """A URL that names no storage anyoai knows, or is missing its bucket or key."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """No object (or no bucket, or no container) at the URL."""


class StoragePermissionError(StorageError, PermissionError):
    """The store refused the credentials, or they are missing."""


def display_url(url: str) -> str:
    """*url* safe to show: ``user:password@`` and signature query parameters masked."""
    if not url.startswith(("abfs://", "abfss://")):  # container@account is not a secret
        url = redact_url(url)
    return _SAS_PARAMS.sub(r"\1****", url)


# --------------------------------------------------------------------------------------------
# URLs


@attrs.frozen
class StorageURL:
    """A parsed storage URL.

    :ivar scheme: ``"s3"``, ``"gs"``, ``"az"``, ``"minio"``, ``"file"`` or ``"memory"``
        (``abfs`` is ``"az"``).
    :ivar bucket: the bucket or container (for ``file``, ``""``).
    :ivar key: the object's path in the bucket (for ``file``, the absolute path).
    :ivar account: for ``abfs://container@account.dfs.core.windows.net/...``, the account.
    :ivar url: the URL as given (plain paths as ``file://`` URLs).
    """

    scheme: str
    bucket: str
    key: str
    account: str | None = None
    url: str = ""

    def __str__(self) -> str:
        return display_url(self.url)

    def with_key(self, key: str) -> StorageURL:
        """The URL of another object in the same bucket (*key* from the bucket's root)."""
        if self.scheme == "file":
            path = Path("/", key)
            return StorageURL("file", "", str(path), None, path.as_uri())
        scheme, rest = self.url.split("://", 1)
        key = key.lstrip("/")
        return attrs.evolve(self, key=key, url=f"{scheme}://{rest.split('/', 1)[0]}/{key}")

    def join(self, name: str) -> StorageURL:
        """The URL of *name* under this one taken as a folder (``s3://b/out/`` + ``x.jsonl``)."""
        base = self.key.rstrip("/")
        return self.with_key(f"{base}/{name}" if base else name)

    @property
    def name(self) -> str:
        """The last segment of the key (a filename)."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]


def parse_url(url: str | os.PathLike[str] | StorageURL) -> StorageURL:
    """Parse a storage URL or a local path.

    :raises StorageURLError: for an unknown scheme, or a URL without bucket or key.
    """
    if isinstance(url, StorageURL):
        return url
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url:
        raise StorageURLError(f"a storage URL must be a non-empty string, got {url!r}")
    if "://" not in url:  # a plain path
        path = Path(url).expanduser().absolute()
        return StorageURL("file", "", str(path), None, path.as_uri())
    raw_scheme, rest = url.split("://", 1)
    scheme = _ALIASES.get(raw_scheme.lower(), raw_scheme.lower())
    if scheme not in SCHEMES:
        raise StorageURLError(
            f"unknown storage scheme {raw_scheme!r} in {display_url(url)}: use s3://, gs://, "
            "az:// (or abfs://), minio://, file:// or memory://, or a local path",
            url=display_url(url),
        )
    if scheme == "file":
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise StorageURLError(
                f"{display_url(url)}: a file URL names a local path, file:///absolute/path",
                url=display_url(url),
            )
        local = urllib.parse.unquote(parts.path)
        if not local:
            raise StorageURLError(f"{display_url(url)} has no path", url=display_url(url))
        return StorageURL("file", "", local, None, url)
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    bucket, _, key = rest.partition("/")
    account = None
    if scheme == "az" and "@" in bucket:  # abfs://container@account.dfs.core.windows.net/path
        bucket, host = bucket.split("@", 1)
        account = host.split(".", 1)[0] or None
    if not bucket:
        raise StorageURLError(
            f"{display_url(url)} names no bucket: {scheme}://bucket/path/to/object",
            url=display_url(url),
        )
    return StorageURL(scheme, bucket, key, account, url)


def _require_key(target: StorageURL) -> None:
    if not target.key or target.key.endswith("/"):
        raise StorageURLError(
            f"{target} names no object (a key after the bucket is needed)", url=str(target)
        )


# --------------------------------------------------------------------------------------------
# objects


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


class ObjectReader:
    """A streamed read of one object: ``async for chunk in reader``; close it (or use
    ``async with``) to let go of the connection early.

    :ivar url: the object's URL (credentials masked).
    :ivar size: the object's size in bytes.
    """

    def __init__(self, url: str, size: int, chunks: Iterator[Any], storage: Storage) -> None:
        self.url = url
        self.size = size
        self._chunks: Iterator[Any] | None = chunks
        self._storage = storage
        self._rest = memoryview(b"")

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        limit = self._storage.chunk_size
        if not self._rest:
            chunks = self._chunks
            if chunks is None:
                raise StopAsyncIteration
            chunk = await self._storage._call(_next_chunk, chunks, url=self.url)
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

    async def read(self) -> bytes:
        """The rest of the object, in memory (for small objects)."""
        return b"".join([chunk async for chunk in self])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<ObjectReader {self.url} {self.size} bytes>"


def _next_chunk(chunks: Iterator[Any]) -> bytes | None:
    try:
        return bytes(next(chunks))
    except StopIteration:
        return None


class _AbortError(Exception):
    """Raised inside obstore's upload when the writer is cancelled or its source fails, so that
    obstore aborts the multipart upload."""


_MEMORY_STORES: dict[str, Any] = {}
_MEMORY_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# the store cache and operations


class Storage:
    """Stores by URL, built once per bucket, and streamed reads and writes.

    :param options: obstore options per scheme (``"s3"``, ``"gs"``, ``"az"``, ``"minio"``) or
        per bucket (``"s3://bucket"``), overriding the environment. ``client_options`` and
        ``retry_config`` are passed as obstore takes them.
    :param chunk_size: the most bytes a read yields at once (default 1 MiB).
    :param part_size: the size of the parts of a multipart write (default 8 MiB, at least
        5 MiB, S3's smallest part).
    :param max_concurrency: how many parts of one multipart write are in flight.
    :param environ: where to read ``MINIO_*`` / ``AWS_ENDPOINT_URL`` (``os.environ``).
    """

    def __init__(
        self,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        part_size: int = DEFAULT_PART_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1 byte, got {chunk_size}")
        if part_size < MIN_PART_SIZE:
            raise ValueError(
                f"part_size must be at least 5 MiB (S3's smallest multipart part), got {part_size}"
            )
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.options: dict[str, Mapping[str, Any]] = {
            k.rstrip("/"): v for k, v in (options or {}).items()
        }
        self.chunk_size = chunk_size
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self._environ = os.environ if environ is None else environ
        self._stores: dict[tuple[str, str, str | None], Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Storage stores={len(self._stores)}>"

    # -- stores ------------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        found = [
            str(value)
            for options in self.options.values()
            for key, value in options.items()
            if isinstance(value, str) and _SECRET_KEYS.search(key)
        ]
        for name in ("MINIO_SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_ACCOUNT_KEY"):
            value = self._environ.get(name)
            if value:
                found.append(value)
        return found

    def store(self, url: str | os.PathLike[str] | StorageURL) -> tuple[ObjectStore, str]:
        """The obstore store serving *url*'s bucket (built once), and the object's path in it.

        :raises StorageURLError: for a URL that names no storage.
        :raises StorageError: when the store cannot be configured (bad options).
        """
        target = parse_url(url)
        if target.scheme == "file":
            return self._cached(("file", "", None), target, self._local), target.key.lstrip("/")
        return self._cached((target.scheme, target.bucket, target.account), target, self._build), (
            target.key
        )

    def _cached(
        self,
        cache_key: tuple[str, str, str | None],
        target: StorageURL,
        build: Callable[[StorageURL], Any],
    ) -> Any:
        with self._lock:
            store = self._stores.get(cache_key)
            if store is None:
                store = self._stores[cache_key] = build(target)
            return store

    @staticmethod
    def _local(_: StorageURL) -> Any:
        from obstore.store import LocalStore

        return LocalStore("/")

    def _options_for(self, target: StorageURL) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        merged.update(self.options.get(target.scheme, {}))
        merged.update(self.options.get(f"{target.scheme}://{target.bucket}", {}))
        return merged

    def _build(self, target: StorageURL) -> Any:
        import obstore.store as stores

        options = self._options_for(target)
        shown = f"{target.scheme}://{target.bucket}"
        try:
            if target.scheme == "memory":
                with _MEMORY_LOCK:
                    return _MEMORY_STORES.setdefault(target.bucket, stores.MemoryStore())
            if target.scheme == "s3":
                return stores.S3Store(target.bucket, **options)
            if target.scheme == "minio":
                return stores.S3Store(target.bucket, **self._minio_options(options, shown))
            if target.scheme == "gs":
                return stores.GCSStore(target.bucket, **options)
            if target.account is not None:
                options.setdefault("account_name", target.account)
            return stores.AzureStore(target.bucket, **options)
        except StorageError:
            raise
        except Exception as exc:  # obstore's configuration errors
            message = redact(str(exc), self._secrets())
            raise StorageError(
                f"cannot configure the store for {shown}: {message}", url=shown
            ) from None

    def _minio_options(self, options: dict[str, Any], shown: str) -> dict[str, Any]:
        env = self._environ
        endpoint = (
            options.pop("endpoint", None)
            or env.get("MINIO_ENDPOINT")
            or (env.get("AWS_ENDPOINT_URL"))
        )
        if not endpoint:
            raise StorageError(
                f"{shown}: minio:// needs an endpoint: set MINIO_ENDPOINT (or AWS_ENDPOINT_URL), "
                'or Storage(options={"minio": {"endpoint": "http://host:9000"}})',
                url=shown,
            )
        if "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        access = (
            options.pop("access_key_id", None)
            or env.get("MINIO_ACCESS_KEY")
            or (env.get("MINIO_ROOT_USER") or env.get("AWS_ACCESS_KEY_ID"))
        )
        secret = (
            options.pop("secret_access_key", None)
            or env.get("MINIO_SECRET_KEY")
            or (env.get("MINIO_ROOT_PASSWORD") or env.get("AWS_SECRET_ACCESS_KEY"))
        )
        built: dict[str, Any] = {
            "endpoint": endpoint,
            "region": options.pop("region", None) or env.get("MINIO_REGION") or "us-east-1",
            "virtual_hosted_style_request": False,
        }
        if access and secret:
            built["access_key_id"] = access
            built["secret_access_key"] = secret
        client = dict(options.pop("client_options", None) or {})
        if endpoint.startswith("http://"):
            client.setdefault("allow_http", True)
        built["client_options"] = client
        built.update(options)
        return built

    # -- calls -------------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, url: str) -> T:
        """Run a blocking obstore call in a worker thread, its errors made ours."""
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args))
        except (StorageError, _AbortError):
            raise
        except Exception as exc:
            raise self._error(exc, url) from None

    def _error(self, exc: Exception, url: str) -> StorageError:
        from obstore import exceptions as oe

        message = redact(str(exc), self._secrets())
        lowered = message.lower()
        # obstore's messages end with the server's whole XML body: keep the first sentence
        detail = message.split(": <?xml", 1)[0].splitlines()[0][:300] if message else ""
        detail = f" ({type(exc).__name__}: {detail})" if detail else f" ({type(exc).__name__})"
        if any(m in lowered for m in ("nosuchbucket", "containernotfound", "bucket does not")):
            return StorageNotFoundError(
                f"{url}: the bucket or container does not exist{detail}", url=url
            )
        if isinstance(exc, (oe.NotFoundError, FileNotFoundError)):
            return StorageNotFoundError(f"{url}: no such object{detail}", url=url)
        if isinstance(exc, (oe.PermissionDeniedError, oe.UnauthenticatedError, PermissionError)):
            return StoragePermissionError(
                f"{url}: access denied: check the credentials{detail}", url=url
            )
        return StorageError(f"{url}: storage error{detail}", url=url)

    # -- reading -----------------------------------------------------------------------------

    async def open(
        self,
        url: str | os.PathLike[str] | StorageURL,
        *,
        offset: int = 0,
        length: int | None = None,
    ) -> ObjectReader:
        """Start a streamed read of the object at *url* (or of *length* bytes from *offset*).

        :raises StorageNotFoundError: if there is no such object (or bucket).
        :raises StoragePermissionError: if the store refuses the credentials.
        """
        import obstore

        target = parse_url(url)
        _require_key(target)
        store, path = self.store(target)
        shown = str(target)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"offset and length must be >= 0, got {offset} and {length}")
        if length == 0:
            return ObjectReader(shown, 0, iter(()), self)
        options: dict[str, Any] = {}
        if length is not None:
            options["range"] = (offset, offset + length)  # [start, end)
        elif offset:
            options["range"] = {"offset": offset}

        def start() -> tuple[int, Iterator[Any]]:
            result = obstore.get(store, path, options=options or None)  # type: ignore[arg-type]
            first, end = result.range
            return int(end - first), iter(result.stream(min_chunk_size=self.chunk_size))

        size, chunks = await self._call(start, url=shown)
        return ObjectReader(shown, size, chunks, self)

    async def read_bytes(self, url: str | os.PathLike[str] | StorageURL) -> bytes:
        """The whole object at *url*, in memory (for small objects)."""
        reader = await self.open(url)
        async with reader:
            return await reader.read()

    async def info(self, url: str | os.PathLike[str] | StorageURL) -> ObjectInfo:
        """Size and metadata of the object at *url*.

        :raises StorageNotFoundError: if there is no such object (or bucket).
        """
        import obstore

        target = parse_url(url)
        _require_key(target)
        store, path = self.store(target)
        meta = await self._call(obstore.head, store, path, url=str(target))
        return ObjectInfo(
            str(target), int(meta["size"]), meta.get("last_modified"), meta.get("e_tag")
        )

    async def exists(self, url: str | os.PathLike[str] | StorageURL) -> bool:
        """Whether there is an object at *url*."""
        try:
            await self.info(url)
        except StorageNotFoundError:
            return False
        return True

    async def list(self, url: str | os.PathLike[str] | StorageURL) -> list[ObjectInfo]:
        """The objects under the prefix *url* (``s3://bucket/some/prefix/``), sorted by URL."""
        import obstore

        target = parse_url(url)
        store, path = self.store(target)

        def listing() -> list[dict[str, Any]]:
            prefix = path.rstrip("/") or None
            return [meta for batch in obstore.list(store, prefix) for meta in batch]

        metas = await self._call(listing, url=str(target))
        infos = []
        for meta in metas:
            key = str(meta["path"])
            infos.append(
                ObjectInfo(
                    str(target.with_key(key)),
                    int(meta["size"]),
                    meta.get("last_modified"),
                    meta.get("e_tag"),
                )
            )
        return sorted(infos, key=lambda info: info.url)

    # -- writing -----------------------------------------------------------------------------

    async def write(
        self,
        url: str | os.PathLike[str] | StorageURL,
        data: bytes | str | AsyncIterable[bytes] | Iterable[bytes] | ObjectReader,
    ) -> int:
        """Write *data* to *url*, replacing any object there; return the bytes written.

        ``bytes`` (or ``str``, as UTF-8) go up in one request when small; an iterable or async
        iterable of bytes (an :class:`ObjectReader` too) is streamed as a multipart upload
        without being held in memory. If the source fails or the call is cancelled, the upload
        is aborted and no object is written.

        :raises StorageNotFoundError: if the bucket does not exist.
        :raises StoragePermissionError: if the store refuses the credentials.
        """
        import obstore

        target = parse_url(url)
        _require_key(target)
        store, path = self.store(target)
        shown = str(target)
        if target.scheme == "file":
            await anyio.Path(target.key).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
            await self._call(self._put, obstore, store, path, payload, url=shown)
            return len(payload)
        if isinstance(data, AsyncIterable):
            return await self._write_stream(obstore, store, path, aiter(data), shown)
        return await self._write_stream(obstore, store, path, _sync_source(iter(data)), shown)

    def _put(self, obstore: Any, store: Any, path: str, data: Any) -> None:
        obstore.put(
            store,
            path,
            data,
            chunk_size=self.part_size,
            max_concurrency=self.max_concurrency,
        )

    async def _write_stream(
        self, obstore: Any, store: Any, path: str, source: AsyncIterator[bytes], shown: str
    ) -> int:
        """Stream an async source into obstore's multipart upload, running in a thread.

        The thread pulls each chunk from the event loop. When the caller is cancelled, or the
        source raises, the thread's iterator raises :class:`_AbortError` inside obstore, which
        aborts the multipart upload; then the cause is raised here.
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
                    raise _AbortError("the write was cancelled")
                try:
                    chunk = anyio.from_thread.run(pull)
                except BaseException as exc:  # the source failed: abort, then re-raise
                    failure.append(exc)
                    raise _AbortError("the source failed") from None
                if chunk is None:
                    return
                if stop.is_set():
                    raise _AbortError("the write was cancelled")
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
                    await self._call(self._put, obstore, store, path, chunks(), url=shown)
                except _AbortError:
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

    async def copy(
        self,
        source: str | os.PathLike[str] | StorageURL,
        destination: str | os.PathLike[str] | StorageURL,
    ) -> int:
        """Stream the object at *source* to *destination* (any schemes); return its size."""
        reader = await self.open(source)
        async with reader:
            return await self.write(destination, reader)

    async def delete(self, url: str | os.PathLike[str] | StorageURL) -> None:
        """Delete the object at *url* (no error if there is none)."""
        import obstore

        target = parse_url(url)
        _require_key(target)
        store, path = self.store(target)
        with contextlib.suppress(StorageNotFoundError):
            await self._call(obstore.delete, store, path, url=str(target))


async def _sync_source(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
