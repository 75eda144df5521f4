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

The package: ``_urls`` (parsing URLs, masking their credentials), ``_objects`` (object info,
streamed reads, the multipart upload of a stream), ``_store`` (:class:`Storage`: the store
cache and the operations); the errors live with every other exception in
:mod:`anyoai._exceptions` and are re-exported here.
"""

from __future__ import annotations

from .._exceptions import (
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageURLError,
)
from ._objects import ObjectInfo, ObjectReader
from ._store import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from ._store import DEFAULT_MAX_CONCURRENCY as DEFAULT_MAX_CONCURRENCY
from ._store import DEFAULT_PART_SIZE as DEFAULT_PART_SIZE
from ._store import MIN_PART_SIZE as MIN_PART_SIZE
from ._store import Storage
from ._urls import SCHEMES as SCHEMES
from ._urls import StorageURL, parse_url
from ._urls import display_url as display_url

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
