"""anyoai.storage without a server: URL parsing, local files and memory://, errors, streaming.

The S3 (moto), Azure (Azurite) and GCS (fake-gcs-server) round trips are in tests/storage/.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from anyoai import storage as st

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("url", "scheme", "bucket", "key", "account"),
    [
        ("s3://bucket/a/b.jsonl", "s3", "bucket", "a/b.jsonl", None),
        ("gs://bucket/x", "gs", "bucket", "x", None),
        ("az://container/dir/file.txt", "az", "container", "dir/file.txt", None),
        ("abfs://container/dir/file.txt", "az", "container", "dir/file.txt", None),
        ("abfs://cont@acct.dfs.core.windows.net/p/q", "az", "cont", "p/q", "acct"),
        ("minio://bucket/k", "minio", "bucket", "k", None),
        ("memory://scratch/k", "memory", "scratch", "k", None),
        ("file:///tmp/x.txt", "file", "", "/tmp/x.txt", None),
        ("S3://Bucket/Key", "s3", "Bucket", "Key", None),
    ],
)
def test_urls_parse(url: str, scheme: str, bucket: str, key: str, account: str | None) -> None:
    parsed = st.parse_url(url)
    assert (parsed.scheme, parsed.bucket, parsed.key, parsed.account) == (
        scheme,
        bucket,
        key,
        account,
    )


def test_plain_paths_are_files(tmp_path: Path) -> None:
    parsed = st.parse_url(tmp_path / "a.txt")
    assert parsed.scheme == "file" and parsed.key == str(tmp_path / "a.txt")
    relative = st.parse_url("data/train.jsonl")
    assert relative.key == str(Path.cwd() / "data" / "train.jsonl")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/file", "unknown storage scheme 'ftp'"),
        ("s3://", "names no bucket"),
        ("s3:///key", "names no bucket"),
        ("file://remotehost/x", "a file URL names a local path"),
        ("", "non-empty string"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(st.StorageURLError, match=message) as info:
        st.parse_url(url)
    assert isinstance(info.value, ValueError)


def test_credentials_in_urls_are_masked() -> None:
    assert st.display_url("s3://AKIAXXXX:topsecret@bucket/key") == "s3://****@bucket/key"
    shown = st.display_url("az://c/blob?sv=2024&sig=s3cr3tSignature&se=1")
    assert "s3cr3tSignature" not in shown and "sig=****" in shown
    assert st.display_url("abfs://cont@acct.dfs.core.windows.net/p") == (
        "abfs://cont@acct.dfs.core.windows.net/p"
    )


def test_join_and_with_key() -> None:
    folder = st.parse_url("az://results/run-1/")
    assert folder.join("output.jsonl").url == "az://results/run-1/output.jsonl"
    assert st.parse_url("az://results").join("x").url == "az://results/x"
    assert st.parse_url("memory://b/a/b").with_key("c/d").url == "memory://b/c/d"
    assert st.parse_url("s3://b/dir/name.jsonl").name == "name.jsonl"


async def chunks(count: int, size: int = MiB, byte: bytes = b"x") -> AsyncIterator[bytes]:
    for index in range(count):
        yield bytes([byte[0] + index % 3]) * size


@pytest.mark.parametrize("scheme", ["memory", "file"])
async def test_round_trip(scheme: str, tmp_path: Path, anyio_backend: str) -> None:
    storage = st.Storage()
    base = f"memory://rt-{anyio_backend}" if scheme == "memory" else tmp_path.as_uri()
    small, big = f"{base}/dir/small.txt", f"{base}/dir/big.bin"
    assert await storage.write(small, "héllo") == len("héllo".encode())
    assert await storage.read_bytes(small) == "héllo".encode()
    expected = b"".join([c async for c in chunks(12)])
    assert await storage.write(big, chunks(12)) == len(expected)
    info = await storage.info(big)
    assert info.size == len(expected)
    reader = await storage.open(big)
    async with reader:
        pieces = [piece async for piece in reader]
    assert b"".join(pieces) == expected
    assert len(pieces) > 1  # it really streamed
    assert all(len(piece) <= storage.chunk_size for piece in pieces)
    ranged = await storage.open(big, offset=MiB - 2, length=5)
    assert await ranged.read() == expected[MiB - 2 : MiB + 3]
    assert [i.url.rsplit("/", 1)[-1] for i in await storage.list(f"{base}/dir/")] == [
        "big.bin",
        "small.txt",
    ]
    copied = f"{base}/copy/big.bin"
    assert await storage.copy(big, copied) == len(expected)
    assert await storage.read_bytes(copied) == expected
    await storage.delete(small)
    assert not await storage.exists(small)
    await storage.delete(small)  # deleting nothing is fine


async def test_plain_path_round_trip(tmp_path: Path) -> None:
    storage = st.Storage()
    path = tmp_path / "nested" / "deeper" / "f.jsonl"
    await storage.write(path, b'{"a": 1}\n')
    assert path.read_bytes() == b'{"a": 1}\n'
    assert await storage.read_bytes(str(path)) == b'{"a": 1}\n'


async def test_missing_objects_are_typed_errors(tmp_path: Path) -> None:
    storage = st.Storage()
    for url in ("memory://nothing-here/x", tmp_path / "nope.txt"):
        with pytest.raises(st.StorageNotFoundError) as info:
            await storage.read_bytes(url)
        assert isinstance(info.value, FileNotFoundError)
        assert "no such object" in str(info.value)
        assert info.value.url is not None
    with pytest.raises(st.StorageURLError, match="names no object"):
        await storage.read_bytes("memory://bucket/")


async def test_a_failing_source_writes_nothing(anyio_backend: str) -> None:
    storage = st.Storage()
    url = f"memory://fail-{anyio_backend}/partial.bin"

    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * (6 * MiB)
        yield b"b" * (6 * MiB)
        raise ValueError("the source broke")

    with pytest.raises(ValueError, match="the source broke"):
        await storage.write(url, broken())
    assert not await storage.exists(url)


async def test_a_cancelled_write_writes_nothing(anyio_backend: str) -> None:
    storage = st.Storage()
    url = f"memory://cancel-{anyio_backend}/partial.bin"
    sent = anyio.Event()
    release = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"a" * (6 * MiB)
        yield b"b" * (6 * MiB)
        sent.set()
        await release.wait()  # never set: the caller is cancelled here
        yield b"c"

    async with anyio.create_task_group() as group:

        async def write() -> None:
            await storage.write(url, stalls())

        group.start_soon(write)
        await sent.wait()
        group.cancel_scope.cancel()
    assert not await storage.exists(url)


def test_storage_options_are_checked() -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        st.Storage(part_size=1024)
    with pytest.raises(ValueError, match="chunk_size"):
        st.Storage(chunk_size=0)
    with pytest.raises(ValueError, match="max_concurrency"):
        st.Storage(max_concurrency=0)


async def test_minio_needs_an_endpoint() -> None:
    storage = st.Storage(environ={})
    with pytest.raises(st.StorageError, match="MINIO_ENDPOINT"):
        await storage.read_bytes("minio://bucket/key")


async def test_stores_are_cached_per_bucket() -> None:
    storage = st.Storage(environ={"MINIO_ENDPOINT": "127.0.0.1:9"})
    first, _ = storage.store("minio://one/a")
    again, _ = storage.store("minio://one/b")
    other, _ = storage.store("minio://two/a")
    assert first is again and first is not other


async def test_secrets_never_appear_in_errors() -> None:
    secret = "minio-secret-value-0123456789"
    storage = st.Storage(
        environ={
            "MINIO_ENDPOINT": "http://127.0.0.1:9",
            "MINIO_ACCESS_KEY": "minio-access",
            "MINIO_SECRET_KEY": secret,
        }
    )
    with pytest.raises(st.StorageError) as info:
        await storage.read_bytes("minio://bucket/key")  # nothing listens on port 9
    assert secret not in str(info.value)
    assert info.value.url == "minio://bucket/key"


def test_environment_is_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIO_ENDPOINT", "127.0.0.1:9000")
    storage = st.Storage()
    store, path = storage.store("minio://b/k")
    assert path == "k" and store is not None
    assert os.environ["MINIO_ENDPOINT"] == "127.0.0.1:9000"
