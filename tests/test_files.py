"""pool.files and pool.uploads against the fake server: streamed uploads from any source,
pagination, downloads into storage, the Uploads API above the threshold, cancellation."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import anyoai
import anyoai.types
from anyoai.testing import FakeServer, Fault

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
JSONL = b'{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n'


def data_of(size: int) -> bytes:
    block = hashlib.sha256(str(size).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


async def chunks_of(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_create_from_bytes(pool: anyoai.Pool, server: FakeServer) -> None:
    created = await pool.files.create(file=JSONL, filename="train.jsonl", purpose="fine-tune")
    assert created.filename == "train.jsonl" and created.purpose == "fine-tune"
    assert created.bytes == len(JSONL)
    assert server.files[created.id].data == JSONL
    sent = server.requests[-1]
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert int(sent.headers["content-length"]) == len(sent.body)
    named = await pool.files.create(file=("pairs.jsonl", JSONL), purpose="fine-tune")
    assert named.filename == "pairs.jsonl"


async def test_create_from_storage_urls_and_paths(
    pool: anyoai.Pool, server: FakeServer, tmp_path: Path, anyio_backend: str
) -> None:
    data = data_of(3 * MiB + 17)
    url = f"memory://files-{anyio_backend}/in/train.jsonl"
    await pool.storage.write(url, data)
    from_url = await pool.files.create(file=url, purpose="fine-tune")
    assert from_url.filename == "train.jsonl"
    assert server.files[from_url.id].data == data
    path = tmp_path / "local.jsonl"
    path.write_bytes(JSONL)
    from_path = await pool.files.create(file=path, purpose="batch")
    assert (from_path.filename, server.files[from_path.id].data) == ("local.jsonl", JSONL)
    renamed = await pool.files.create(file=str(path), purpose="batch", filename="other.jsonl")
    assert renamed.filename == "other.jsonl"


async def test_create_from_an_async_iterable(pool: anyoai.Pool, server: FakeServer) -> None:
    data = data_of(2 * MiB + 5)
    sized = await pool.files.create(
        file=chunks_of(data), filename="a.jsonl", size=len(data), purpose="fine-tune"
    )
    assert server.files[sized.id].data == data
    assert int(server.requests[-1].headers["content-length"]) == len(server.requests[-1].body)
    unsized = await pool.files.create(file=chunks_of(data), filename="b.jsonl", purpose="fine-tune")
    assert server.files[unsized.id].data == data
    assert server.requests[-1].headers.get("transfer-encoding") == "chunked"


async def test_a_declared_size_that_is_wrong_fails(pool: anyoai.Pool, server: FakeServer) -> None:
    with pytest.raises(anyoai.InvalidParameterError, match="declared") as info:
        await pool.files.create(
            file=chunks_of(JSONL), filename="a.jsonl", size=len(JSONL) + 1, purpose="batch"
        )
    assert info.value.param == "size"
    assert server.files == {}
    assert pool.statistics().in_use == 0


async def test_bad_arguments_name_the_parameter(pool: anyoai.Pool, server: FakeServer) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"file": JSONL, "purpose": "batch"}, "filename"),
        ({"file": 42, "purpose": "batch"}, "file"),
        ({"file": ("a.jsonl", JSONL), "purpose": ""}, "purpose"),
        ({"file": ("a.jsonl", JSONL), "purpose": "batch", "part_size": 0}, "part_size"),
        ({"file": ("a.jsonl", JSONL), "purpose": "batch", "bogus": 1}, "bogus"),
    ]
    for kwargs, param in cases:
        with pytest.raises(anyoai.InvalidParameterError) as info:
            await pool.files.create(**kwargs)  # type: ignore[arg-type]
        assert info.value.param == param, kwargs
    with pytest.raises(anyoai.storage.StorageNotFoundError):
        await pool.files.create(file="memory://no-bucket-files/none.jsonl", purpose="batch")
    with pytest.raises(anyoai.storage.StorageURLError):
        await pool.files.create(file="ftp://host/file.jsonl", purpose="batch")
    assert server.requests == []


async def test_list_goes_through_every_page(pool: anyoai.Pool, server: FakeServer) -> None:
    ids = [
        (await pool.files.create(file=(f"f{i}.jsonl", JSONL), purpose="batch")).id for i in range(7)
    ]
    before = len(server.requests)
    listed = [file.id async for file in pool.files.list(limit=3, order="asc")]
    assert listed == ids
    pages = server.requests[before:]
    assert len(pages) == 3  # 3 + 3 + 1
    assert [r.query.get("after") for r in pages] == [None, ids[2], ids[5]]
    first = await pool.files.list(limit=3)
    assert isinstance(first, anyoai.types.FileList)
    assert len(first) == 3 and first.has_more
    newest_first = await pool.files.list(purpose="batch").to_list()
    assert [file.id for file in newest_first] == ids[::-1]
    assert [f async for f in pool.files.list(purpose="fine-tune")] == []


async def test_retrieve_delete_and_not_found(pool: anyoai.Pool) -> None:
    created = await pool.files.create(file=("x.jsonl", JSONL), purpose="batch")
    assert (await pool.files.retrieve(created.id)).bytes == len(JSONL)
    deleted = await pool.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(anyoai.NotFoundError):
        await pool.files.retrieve(created.id)
    with pytest.raises(anyoai.NotFoundError):
        await pool.files.content(created.id)
    with pytest.raises(anyoai.InvalidParameterError):
        await pool.files.retrieve("")


async def test_content_streams_and_releases_the_connection(pool: anyoai.Pool) -> None:
    data = data_of(5 * MiB)
    created = await pool.files.create(file=("big.bin", data), purpose="user_data")
    body = await pool.files.content(created.id)
    async with body:
        assert body.size == len(data)
        received = [chunk async for chunk in body]
    assert b"".join(received) == data
    assert len(received) > 1
    assert pool.statistics().in_use == 0 and pool.statistics().idle == 1
    # stopping early closes the connection instead of reusing it
    early = await pool.files.content(created.id)
    async with early:
        await early.__anext__()
    stats = pool.statistics()
    assert stats.in_use == 0


async def test_download_into_storage(pool: anyoai.Pool, tmp_path: Path, anyio_backend: str) -> None:
    data = data_of(MiB + 3)
    created = await pool.files.create(file=("d.bin", data), purpose="user_data")
    assert await pool.files.download(created.id, to=tmp_path / "out" / "d.bin") == len(data)
    assert (tmp_path / "out" / "d.bin").read_bytes() == data
    url = f"memory://downloads-{anyio_backend}/d.bin"
    await pool.files.download(created.id, to=url)
    assert await pool.storage.read_bytes(url) == data


async def test_retries_resend_a_replayable_body(pool: anyoai.Pool, server: FakeServer) -> None:
    server.add_fault(Fault(status=500, times=1))
    created = await pool.files.create(file=("r.jsonl", JSONL), purpose="batch")
    assert created.attempts == 2
    assert server.files[created.id].data == JSONL


async def test_a_one_shot_body_is_not_retried(pool: anyoai.Pool, server: FakeServer) -> None:
    server.add_fault(Fault(status=500, times=1))
    with pytest.raises(anyoai.InternalServerError):
        await pool.files.create(file=chunks_of(JSONL), filename="o.jsonl", purpose="batch")
    assert len(server.requests) == 1


async def test_large_files_go_through_the_uploads_api(
    pool: anyoai.Pool, server: FakeServer, anyio_backend: str
) -> None:
    data = data_of(23 * MiB + 11)
    url = f"memory://uploads-{anyio_backend}/big.jsonl"
    await pool.storage.write(url, data)
    created = await pool.files.create(
        file=url, purpose="fine-tune", upload_threshold=8 * MiB, part_size=5 * MiB
    )
    assert server.files[created.id].data == data
    (upload,) = server.uploads.values()
    assert upload.status == "completed"
    paths = [r.path for r in server.requests if r.path.startswith("/v1/uploads")]
    assert paths.count(f"/v1/uploads/{upload.id}/parts") == 5  # 23 MiB in 5 MiB parts
    assert paths[0] == "/v1/uploads" and paths[-1] == f"/v1/uploads/{upload.id}/complete"


async def test_upload_file_chunked_from_bytes_and_iterables(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    data = data_of(11 * MiB)
    upload = await pool.uploads.upload_file_chunked(
        file=data, filename="x.jsonl", purpose="batch", part_size=4 * MiB
    )
    assert upload.status == "completed" and upload.file is not None
    assert server.files[upload.file.id].data == data
    sequential = await pool.uploads.upload_file_chunked(
        file=chunks_of(data, 3 * MiB),
        filename="y.jsonl",
        size=len(data),
        purpose="batch",
        part_size=4 * MiB,
    )
    assert sequential.file is not None and server.files[sequential.file.id].data == data
    with pytest.raises(anyoai.InvalidParameterError, match="size"):
        await pool.uploads.upload_file_chunked(
            file=chunks_of(data), filename="z.jsonl", purpose="batch"
        )


async def test_a_cancelled_upload_is_cancelled_on_the_server(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    one_part_sent = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"a" * (5 * MiB)  # the first part, whole
        one_part_sent.set()
        await anyio.sleep_forever()
        yield b""  # pragma: no cover

    async with anyio.create_task_group() as group:

        async def upload() -> None:
            await pool.uploads.upload_file_chunked(
                file=stalls(),
                filename="c.jsonl",
                size=20 * MiB,
                purpose="batch",
                part_size=5 * MiB,
            )

        group.start_soon(upload)
        await one_part_sent.wait()
        group.cancel_scope.cancel()
    (stored,) = server.uploads.values()
    assert stored.status == "cancelled"
    assert server.files == {}
    assert pool.statistics().in_use == 0


async def test_a_failing_upload_reports_its_cause_and_cancels(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    async def breaks() -> AsyncIterator[bytes]:
        yield b"a" * (5 * MiB)
        raise ConnectionResetError("the source went away")

    with pytest.raises(ConnectionResetError, match="the source went away"):
        await pool.uploads.upload_file_chunked(
            file=breaks(), filename="c.jsonl", size=20 * MiB, purpose="batch", part_size=5 * MiB
        )
    (upload,) = server.uploads.values()
    assert upload.status == "cancelled"


async def test_uploads_low_level(pool: anyoai.Pool, server: FakeServer) -> None:
    upload = await pool.uploads.create(
        bytes=6, filename="t.jsonl", mime_type="text/jsonl", purpose="batch"
    )
    first = await pool.uploads.add_part(upload.id, data=b"abc")
    second = await pool.uploads.add_part(upload.id, data=b"def")
    done = await pool.uploads.complete(upload.id, part_ids=[first.id, second.id])
    assert done.status == "completed" and done.file is not None
    assert server.files[done.file.id].data == b"abcdef"
    other = await pool.uploads.create(
        bytes=10, filename="u.jsonl", mime_type="text/jsonl", purpose="batch"
    )
    cancelled = await pool.uploads.cancel(other.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(anyoai.BadRequestError):
        await pool.uploads.add_part(other.id, data=b"late")
