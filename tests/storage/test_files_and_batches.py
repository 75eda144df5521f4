"""The Files and Batch APIs with real object storage: a 64 MiB file streamed from S3 to the
Files API and back in bounded memory, and a batch job read from S3 with its results written to
Azure Blob Storage.

The fake OpenAI server runs in a process of its own here, so that the files it keeps do not
count in this process's memory; the emulators are processes too.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

import anyoai
from anyoai.storage import Storage
from anyoai.types import ChatCompletion

from ..helpers import API_KEY
from .servers import AzuriteEmulator, S3Emulator, store_options

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
FILE_SIZE = 64 * MiB
PART_SIZE = 5 * MiB
MAX_CONCURRENCY = 2
#: how much this process may grow while 64 MiB go through it: generous, and well under the
#: file's size (the measured growth is a few MiB for the upload, about 20 MiB for writes)
UPLOAD_BOUND = 16 * MiB
WRITE_BOUND = PART_SIZE * (MAX_CONCURRENCY + 1) + 16 * MiB


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


class PeakMemory:
    """The growth of this process's peak resident memory over a block (Linux): the kernel's
    high-water mark (``VmHWM``), reset on entry through ``/proc/self/clear_refs``."""

    def __init__(self) -> None:
        self.growth = 0
        self._start = 0
        self._sampled = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):  # glibc: give freed memory back, so
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # that reusing it is not missed as growth
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        except OSError:  # not allowed here: sample the resident size instead
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        self._start = _status_kib("VmRSS") * 1024
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._sampled = max(self._sampled, _status_kib("VmRSS") * 1024)

    def __exit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            peak = self._sampled
        else:
            peak = _status_kib("VmHWM") * 1024
        self.growth = peak - self._start


def block(index: int) -> bytes:
    """1 MiB of bytes that differ from one block to the next."""
    seed = hashlib.sha256(index.to_bytes(4, "big")).digest()
    return seed * (MiB // len(seed))


async def generated(count: int, digest: Any) -> AsyncIterator[bytes]:
    for index in range(count):
        data = block(index)
        digest.update(data)
        yield data


async def digest_of(storage: Storage, url: str) -> str:
    digest = hashlib.sha256()
    async with await storage.open(url) as reader:
        async for chunk in reader:
            digest.update(chunk)
    return digest.hexdigest()


async def test_a_64_mib_file_streams_from_s3_to_the_files_api_and_back(
    s3_server: S3Emulator, bucket: str, fake_openai_process: str
) -> None:
    storage = Storage(
        store_options("s3", s3_server.store_kwargs(bucket), "bucket"),
        part_size=PART_SIZE,
        max_concurrency=MAX_CONCURRENCY,
    )
    source = f"s3://{bucket}/train/big.bin"
    copy = f"s3://{bucket}/copy/big.bin"
    digest = hashlib.sha256()
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=fake_openai_process, storage=storage
    ) as pool:
        with PeakMemory() as writing:
            written = await pool.storage.write(source, generated(FILE_SIZE // MiB, digest))
        with PeakMemory() as uploading:
            created = await pool.files.create(file=source, purpose="user_data")
        with PeakMemory() as downloading:
            downloaded = await pool.files.download(created.id, to=copy)
        assert written == downloaded == created.bytes == FILE_SIZE
        assert created.filename == "big.bin"
        assert (await pool.files.retrieve(created.id)).bytes == FILE_SIZE
        assert await digest_of(pool.storage, copy) == digest.hexdigest()
        assert (await pool.storage.info(copy)).size == FILE_SIZE
        assert pool.statistics().in_use == 0
    # reads come in chunks of 1 MiB: the upload holds a few of them at a time
    assert uploading.growth < UPLOAD_BOUND, f"files.create grew by {uploading.growth / MiB:.1f} MiB"
    # writes hold up to max_concurrency parts in flight, and the one being filled
    for step in (writing, downloading):
        assert step.growth < WRITE_BOUND, f"a write grew by {step.growth / MiB:.1f} MiB"
    assert s3_server.list_multipart_uploads(bucket) == []


async def test_a_batch_job_from_s3_with_results_in_azure(
    s3_server: S3Emulator,
    bucket: str,
    azurite: AzuriteEmulator,
    container: str,
    fake_openai_process: str,
) -> None:
    storage = Storage(
        {
            **store_options("s3", s3_server.store_kwargs(bucket), "bucket"),
            **store_options("az", azurite.store_kwargs(container), "container_name"),
        }
    )
    requests: list[dict[str, Any]] = [
        {
            "custom_id": f"row-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"#{i}"}]},
        }
        for i in range(20)
    ]
    requests[7]["body"]["messages"] = []  # refused by the endpoint: lands in the error file
    jsonl = b"".join(json.dumps(r).encode() + b"\n" for r in requests)
    await anyio.to_thread.run_sync(s3_server.put_object, bucket, "jobs/input.jsonl", jsonl)
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=fake_openai_process, storage=storage
    ) as pool:
        run = await pool.batches.run(
            f"s3://{bucket}/jobs/input.jsonl", results_url=f"az://{container}/runs/1/"
        )
        uploaded = await pool.files.retrieve(run.batch.input_file_id)
    assert uploaded.filename == "input.jsonl" and uploaded.bytes == len(jsonl)
    assert set(run.results) == {r["custom_id"] for r in requests}
    assert set(run.failed) == {"row-7"}
    for custom_id, result in run.succeeded.items():
        assert isinstance(result.response, ChatCompletion), custom_id
        assert result.response.consumption is not None and result.response.consumption.batch
    assert run.output_url == f"az://{container}/runs/1/output.jsonl"
    assert run.errors_url == f"az://{container}/runs/1/errors.jsonl"
    output = await anyio.to_thread.run_sync(azurite.get_blob, container, "runs/1/output.jsonl")
    errors = await anyio.to_thread.run_sync(azurite.get_blob, container, "runs/1/errors.jsonl")
    assert {json.loads(line)["custom_id"] for line in output.splitlines()} == set(run.succeeded)
    assert [json.loads(line)["custom_id"] for line in errors.splitlines()] == ["row-7"]
