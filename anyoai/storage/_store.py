"""The store cache and the operations: :class:`Storage` builds one obstore store per bucket (from
the URL, the environment and explicit options), and reads, lists, writes, copies and deletes
objects through them, obstore's blocking calls in worker threads and its errors made ours."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
import anyio.to_thread

from .._exceptions import StorageError, StorageNotFoundError, StoragePermissionError
from .._secrets import redact
from ._objects import (
    ObjectInfo,
    ObjectReader,
    UploadAbortError,
    next_chunk,
    sync_source,
    upload_stream,
)
from ._urls import StorageURL, parse_url, require_key

if TYPE_CHECKING:
    from obstore.store import ObjectStore

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "Storage",
]

T = TypeVar("T")

#: the most bytes a read yields at once
DEFAULT_CHUNK_SIZE: Final = 1024 * 1024
#: the part size of multipart writes, and S3's smallest part
DEFAULT_PART_SIZE: Final = 8 * 1024 * 1024
MIN_PART_SIZE: Final = 5 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY: Final = 4
_SECRET_KEYS: Final = re.compile(r"(secret|key|token|password|sas|credential)", re.IGNORECASE)

_MEMORY_STORES: dict[str, Any] = {}
_MEMORY_LOCK = threading.Lock()


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

    def _puller(self, url: str) -> Callable[[Iterator[Any]], Awaitable[bytes | None]]:
        """How a reader of *url* takes its next chunk: in a worker thread, errors made ours."""

        async def pull(chunks: Iterator[Any]) -> bytes | None:
            return await self._call(next_chunk, chunks, url=url)

        return pull

    async def _call(self, fn: Callable[..., T], *args: Any, url: str) -> T:
        """Run a blocking obstore call in a worker thread, its errors made ours."""
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args))
        except (StorageError, UploadAbortError):
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
        require_key(target)
        store, path = self.store(target)
        shown = str(target)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"offset and length must be >= 0, got {offset} and {length}")
        if length == 0:
            return ObjectReader(
                shown, 0, iter(()), pull=self._puller(shown), chunk_size=self.chunk_size
            )
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
        return ObjectReader(
            shown, size, chunks, pull=self._puller(shown), chunk_size=self.chunk_size
        )

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
        require_key(target)
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
        require_key(target)
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
        return await self._write_stream(obstore, store, path, sync_source(iter(data)), shown)

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
        """Stream an async source into obstore's multipart upload (see :func:`upload_stream`)."""

        def upload(chunks: Iterator[bytes]) -> Awaitable[None]:
            return self._call(self._put, obstore, store, path, chunks, url=shown)

        return await upload_stream(source, upload, shown)

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
        require_key(target)
        store, path = self.store(target)
        with contextlib.suppress(StorageNotFoundError):
            await self._call(obstore.delete, store, path, url=str(target))
