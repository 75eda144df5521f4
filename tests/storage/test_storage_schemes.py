"""anyoai.storage against real servers: the same file through every scheme, errors, aborts.

S3 and minio:// talk to moto, az:// to Azurite, gs:// to fake-gcs-server (reads only: the
emulator lacks the upload API obstore uses, so gs:// objects are seeded through its JSON API;
the write path is the same code as S3's), file:// to a temporary folder, memory:// to nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from anyoai import storage as st

from .servers import AzuriteEmulator, GCSEmulator, S3Emulator
from .servers import store_options as options

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
# 13 MiB of varied bytes: larger than a part, so writes go up as multipart uploads
PAYLOAD = b"".join(hashlib.sha256(str(i).encode()).digest() * 1024 for i in range(416))


async def pieces(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_the_same_file_through_every_scheme(
    s3_server: S3Emulator,
    azurite: AzuriteEmulator,
    gcs_server: GCSEmulator,
    bucket: str,
    container: str,
    tmp_path: Path,
    anyio_backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gcs_bucket = await anyio.to_thread.run_sync(gcs_server.create_bucket)
    await anyio.to_thread.run_sync(gcs_server.put_object, gcs_bucket, "in/data.bin", PAYLOAD)
    # minio:// is configured the MinIO way: MINIO_ENDPOINT and its keys
    monkeypatch.setenv("MINIO_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("MINIO_ACCESS_KEY", s3_server.access_key_id)
    monkeypatch.setenv("MINIO_SECRET_KEY", s3_server.secret_access_key)
    storage = st.Storage(
        {
            **options("s3", s3_server.store_kwargs(bucket), "bucket"),
            **options("az", azurite.store_kwargs(container), "container_name"),
            **options("gs", gcs_server.store_kwargs(gcs_bucket), "bucket"),
        },
        part_size=5 * MiB,
    )
    chain = [
        f"gs://{gcs_bucket}/in/data.bin",  # read only
        f"s3://{bucket}/hop/1.bin",
        f"minio://{bucket}/hop/2.bin",
        f"az://{container}/hop/3.bin",
        f"abfs://{container}/hop/4.bin",
        (tmp_path / "hop" / "5.bin").as_uri(),
        str(tmp_path / "hop" / "6.bin"),
        f"memory://{anyio_backend}-{bucket}/hop/7.bin",
        f"s3://{bucket}/hop/back.bin",
    ]
    for source, destination in itertools.pairwise(chain):
        assert await storage.copy(source, destination) == len(PAYLOAD), destination
        info = await storage.info(destination)
        assert info.size == len(PAYLOAD)
    # the last hop, checked through the servers' own APIs rather than anyoai
    stored = await anyio.to_thread.run_sync(s3_server.get_object, bucket, "hop/back.bin")
    assert stored == PAYLOAD
    blob = await anyio.to_thread.run_sync(azurite.get_blob, container, "hop/4.bin")
    assert blob == PAYLOAD
    assert (tmp_path / "hop" / "6.bin").read_bytes() == PAYLOAD
    # and every object can be listed and read back in ranges
    listed = await storage.list(f"s3://{bucket}/hop/")
    assert [info.url for info in listed] == [
        f"s3://{bucket}/hop/1.bin",
        f"s3://{bucket}/hop/2.bin",
        f"s3://{bucket}/hop/back.bin",
    ]
    middle = await storage.open(f"az://{container}/hop/3.bin", offset=5 * MiB, length=100)
    assert await middle.read() == PAYLOAD[5 * MiB : 5 * MiB + 100]
    assert await storage.read_bytes(f"gs://{gcs_bucket}/in/data.bin") == PAYLOAD


async def test_the_environment_configures_stores(
    s3_server: S3Emulator, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    storage = st.Storage()
    await storage.write(f"s3://{bucket}/env.txt", b"from the environment")
    assert await anyio.to_thread.run_sync(s3_server.get_object, bucket, "env.txt") == (
        b"from the environment"
    )


async def test_gcs_writes_fail_clearly(gcs_server: GCSEmulator) -> None:
    """The emulator lacks the upload API: the failure is a StorageError naming the URL."""
    gcs_bucket = await anyio.to_thread.run_sync(gcs_server.create_bucket)
    storage = st.Storage(options("gs", gcs_server.store_kwargs(gcs_bucket), "bucket"))
    with pytest.raises(st.StorageError) as info:
        await storage.write(f"gs://{gcs_bucket}/x.bin", b"data")
    assert info.value.url == f"gs://{gcs_bucket}/x.bin"


async def test_a_cancelled_upload_leaves_no_multipart_upload(
    s3_server: S3Emulator, bucket: str
) -> None:
    storage = st.Storage(options("s3", s3_server.store_kwargs(bucket), "bucket"), part_size=5 * MiB)
    url = f"s3://{bucket}/cancelled.bin"
    parts_out = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        for _ in range(3):  # two parts' worth: the multipart upload has started
            yield os.urandom(4 * MiB)
        parts_out.set()
        await anyio.sleep_forever()
        yield b""  # pragma: no cover

    async with anyio.create_task_group() as group:

        async def write() -> None:
            await storage.write(url, stalls())

        group.start_soon(write)
        await parts_out.wait()
        group.cancel_scope.cancel()
    assert await anyio.to_thread.run_sync(s3_server.list_multipart_uploads, bucket) == []
    assert not await storage.exists(url)
    objects = await anyio.to_thread.run_sync(s3_server.list_objects, bucket)
    assert "cancelled.bin" not in objects


async def test_a_failed_source_leaves_no_multipart_upload(
    s3_server: S3Emulator, bucket: str
) -> None:
    storage = st.Storage(options("s3", s3_server.store_kwargs(bucket), "bucket"), part_size=5 * MiB)

    async def breaks() -> AsyncIterator[bytes]:
        yield os.urandom(6 * MiB)
        yield os.urandom(6 * MiB)
        raise ConnectionResetError("the source went away")

    with pytest.raises(ConnectionResetError):
        await storage.write(f"s3://{bucket}/broken.bin", breaks())
    assert await anyio.to_thread.run_sync(s3_server.list_multipart_uploads, bucket) == []


async def test_missing_buckets_and_objects_are_clear(
    s3_server: S3Emulator, azurite: AzuriteEmulator, bucket: str
) -> None:
    storage = st.Storage(
        {
            **options("s3", s3_server.store_kwargs(bucket), "bucket"),
            **options("az", azurite.store_kwargs("x"), "container_name"),
        }
    )
    with pytest.raises(st.StorageNotFoundError, match="bucket or container does not exist"):
        await storage.read_bytes("s3://no-such-bucket-here/key.txt")
    with pytest.raises(st.StorageNotFoundError, match="no such object"):
        await storage.read_bytes(f"s3://{bucket}/missing.txt")
    with pytest.raises(st.StorageNotFoundError) as info:
        await storage.write("az://no-such-container/key.txt", b"x")
    assert info.value.url == "az://no-such-container/key.txt"
    assert s3_server.secret_access_key not in str(info.value)


async def test_wrong_credentials_are_a_permission_error(
    azurite: AzuriteEmulator, container: str
) -> None:
    kwargs = azurite.store_kwargs(container)
    kwargs["account_key"] = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25n"
    storage = st.Storage(options("az", kwargs, "container_name"))
    with pytest.raises(st.StoragePermissionError) as info:
        await storage.write(f"az://{container}/x.txt", b"x")
    assert isinstance(info.value, PermissionError)
    assert kwargs["account_key"] not in str(info.value)
