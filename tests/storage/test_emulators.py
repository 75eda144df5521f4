"""The emulators and the obstore configuration that reaches each: the facts the storage tests
build on, pinned (including what does not work)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import obstore
import pytest
from obstore.exceptions import GenericError
from obstore.store import AzureStore, GCSStore, S3Store

from .servers import AzuriteEmulator, GCSEmulator, S3Emulator

MIB = 1024 * 1024


def _collect_paths(store: Any, prefix: str | None = None) -> list[str]:
    return sorted(meta["path"] for meta in obstore.list(store, prefix).collect())


# -- S3: moto -----------------------------------------------------------------------------------


def test_s3_helpers_and_store(s3_server: S3Emulator) -> None:
    assert s3_server.endpoint.startswith("http://127.0.0.1:")
    bucket = s3_server.create_bucket()
    s3_server.put_object(bucket, "seed/a b.txt", b"seeded")
    assert s3_server.get_object(bucket, "seed/a b.txt") == b"seeded"

    store = s3_server.store(bucket)
    obstore.put(store, "dir/obj.bin", b"through obstore")
    assert bytes(obstore.get(store, "dir/obj.bin").bytes()) == b"through obstore"
    assert bytes(obstore.get_range(store, "dir/obj.bin", start=8, end=15)) == b"obstore"
    assert s3_server.get_object(bucket, "dir/obj.bin") == b"through obstore"
    assert _collect_paths(store) == ["dir/obj.bin", "seed/a b.txt"]
    assert sorted(s3_server.list_objects(bucket)) == ["dir/obj.bin", "seed/a b.txt"]


def test_s3_multipart_completes(s3_server: S3Emulator) -> None:
    bucket = s3_server.create_bucket()
    store = s3_server.store(bucket)
    chunks = [bytes([n]) * (6 * MIB) for n in range(3)]

    result = obstore.put(store, "big.bin", iter(chunks))

    # a multipart upload's ETag ends in -<number of parts>
    assert result["e_tag"] is not None
    assert result["e_tag"].strip('"').rsplit("-", 1)[1].isdigit()
    assert s3_server.list_multipart_uploads(bucket) == []
    assert s3_server.get_object(bucket, "big.bin") == b"".join(chunks)


def test_s3_lists_open_multipart_uploads(s3_server: S3Emulator) -> None:
    """list_multipart_uploads sees an upload left open (so an empty list means something)."""
    bucket = s3_server.create_bucket()
    upload_id = s3_server.start_multipart_upload(bucket, "abandoned.bin")
    assert s3_server.list_multipart_uploads(bucket) == [upload_id]


def test_s3_failed_iterator_aborts_the_upload(s3_server: S3Emulator) -> None:
    """obstore aborts its multipart upload when the data source raises: nothing is left."""
    bucket = s3_server.create_bucket()

    def failing() -> Iterator[bytes]:
        yield b"x" * (6 * MIB)
        yield b"y" * (6 * MIB)
        raise ValueError("source failed")

    with pytest.raises(ValueError, match="source failed"):
        obstore.put(s3_server.store(bucket), "broken.bin", failing())
    assert s3_server.list_multipart_uploads(bucket) == []
    assert s3_server.list_objects(bucket) == []


def test_s3_store_from_environment(s3_server: S3Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3_server.create_bucket()
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    store = S3Store(bucket)
    obstore.put(store, "env.txt", b"from env")
    assert s3_server.get_object(bucket, "env.txt") == b"from env"


# -- Azure Blob: Azurite ------------------------------------------------------------------------


def test_azurite_helpers_and_store(azurite: AzuriteEmulator) -> None:
    assert azurite.endpoint.startswith("http://127.0.0.1:")
    assert azurite.endpoint.endswith("/devstoreaccount1")
    container = azurite.create_container()
    azurite.put_blob(container, "seed/a.txt", b"seeded")
    assert azurite.get_blob(container, "seed/a.txt") == b"seeded"

    store = azurite.store(container)  # endpoint + account key: works on any port
    assert bytes(obstore.get(store, "seed/a.txt").bytes()) == b"seeded"
    obstore.put(store, "dir/obj.bin", b"through obstore")
    assert azurite.get_blob(container, "dir/obj.bin") == b"through obstore"
    assert bytes(obstore.get_range(store, "dir/obj.bin", start=8, end=15)) == b"obstore"
    assert _collect_paths(store) == ["dir/obj.bin", "seed/a.txt"]
    assert sorted(azurite.list_blobs(container)) == ["dir/obj.bin", "seed/a.txt"]


def test_azurite_block_upload(azurite: AzuriteEmulator) -> None:
    container = azurite.create_container()
    chunks = [bytes([n]) * (6 * MIB) for n in range(2)]
    obstore.put(azurite.store(container), "big.bin", iter(chunks))
    assert azurite.get_blob(container, "big.bin") == b"".join(chunks)


def test_azurite_emulator_flag_reads_url_from_environment(
    azurite: AzuriteEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``use_emulator=True`` ignores ``endpoint``: the port comes from AZURITE_BLOB_STORAGE_URL."""
    container = azurite.create_container()
    azurite.put_blob(container, "a.txt", b"emulated")
    for name, value in azurite.env().items():
        monkeypatch.setenv(name, value)
    assert bytes(obstore.get(AzureStore(container), "a.txt").bytes()) == b"emulated"
    monkeypatch.delenv("AZURE_STORAGE_USE_EMULATOR")
    store = AzureStore(container, use_emulator=True)
    assert bytes(obstore.get(store, "a.txt").bytes()) == b"emulated"


# -- GCS: fake-gcs-server -----------------------------------------------------------------------


def test_gcs_helpers_and_reads(gcs_server: GCSEmulator) -> None:
    assert gcs_server.endpoint.startswith("http://127.0.0.1:")
    bucket = gcs_server.create_bucket()
    gcs_server.put_object(bucket, "seed/a.txt", b"seeded data")
    gcs_server.put_object(bucket, "seed/b.txt", b"other")
    assert gcs_server.get_object(bucket, "seed/a.txt") == b"seeded data"
    assert sorted(gcs_server.list_objects(bucket)) == ["seed/a.txt", "seed/b.txt"]

    store = gcs_server.store(bucket)
    assert bytes(obstore.get(store, "seed/a.txt").bytes()) == b"seeded data"
    assert bytes(obstore.get_range(store, "seed/a.txt", start=7, end=11)) == b"data"
    assert obstore.head(store, "seed/a.txt")["size"] == len(b"seeded data")
    assert _collect_paths(store, "seed/") == ["seed/a.txt", "seed/b.txt"]
    obstore.delete(store, "seed/b.txt")
    assert gcs_server.list_objects(bucket) == ["seed/a.txt"]


def test_gcs_uploads_through_obstore_fail(gcs_server: GCSEmulator) -> None:
    """Known limitation: obstore uploads with the XML API's ``PUT /<bucket>/<object>``, which
    fake-gcs-server does not have (400 "invalid uploadType"). Seed with ``put_object``."""
    bucket = gcs_server.create_bucket()
    with pytest.raises(GenericError, match="invalid uploadType"):
        obstore.put(gcs_server.store(bucket), "new.txt", b"data")
    assert gcs_server.list_objects(bucket) == []


def test_gcs_other_configurations(gcs_server: GCSEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same store through environment variables, and without a service-account file."""
    bucket = gcs_server.create_bucket()
    gcs_server.put_object(bucket, "a.txt", b"read me")
    unsigned = GCSStore(
        bucket,
        base_url=gcs_server.endpoint,
        skip_signature=True,
        client_options={"allow_http": True},
    )
    assert bytes(obstore.get(unsigned, "a.txt").bytes()) == b"read me"
    for name, value in gcs_server.env().items():
        monkeypatch.setenv(name, value)
    assert bytes(obstore.get(GCSStore(bucket), "a.txt").bytes()) == b"read me"


def test_gcs_service_account_file(gcs_server: GCSEmulator) -> None:
    assert isinstance(gcs_server.service_account_path, Path)
    assert gcs_server.endpoint in gcs_server.service_account_path.read_text()


# -- the fixtures in async tests ----------------------------------------------------------------


@pytest.mark.anyio
async def test_fixtures_in_async_tests(
    s3_server: S3Emulator, azurite: AzuriteEmulator, gcs_server: GCSEmulator
) -> None:
    """Session fixtures are plain objects: usable under asyncio and trio (helpers block, so
    an async test calls them in a thread)."""
    bucket = await anyio.to_thread.run_sync(s3_server.create_bucket)
    await anyio.to_thread.run_sync(s3_server.put_object, bucket, "k", b"v")
    container = await anyio.to_thread.run_sync(azurite.create_container)
    gcs_bucket = await anyio.to_thread.run_sync(gcs_server.create_bucket)
    assert await anyio.to_thread.run_sync(s3_server.list_objects, bucket) == ["k"]
    assert await anyio.to_thread.run_sync(azurite.list_blobs, container) == []
    assert await anyio.to_thread.run_sync(gcs_server.list_objects, gcs_bucket) == []
