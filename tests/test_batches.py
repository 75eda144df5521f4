"""pool.batches against the fake server: the Batch API, and ``batches.run`` end to end (input
in storage, upload, polling, results typed by endpoint, saved to storage and priced at batch
prices); batches that fail, expire or are cancelled are reported with their errors."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

import anyoai
from anyoai.testing import FakeServer
from anyoai.types import Batch, ChatCompletion, CreateEmbeddingResponse

pytestmark = pytest.mark.anyio

QUESTIONS = {f"q-{i}": f"What is {i} + {i}?" for i in range(4)}


def chat_requests(model: str = "gpt-4o-mini") -> list[dict[str, Any]]:
    return [
        {
            "custom_id": custom_id,
            "body": {"model": model, "messages": [{"role": "user", "content": question}]},
        }
        for custom_id, question in QUESTIONS.items()
    ]


def jsonl(lines: list[Any]) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )


def input_lines() -> list[dict[str, Any]]:
    return [{"method": "POST", "url": "/v1/chat/completions", **r} for r in chat_requests()]


async def upload_input(pool: anyoai.Pool) -> anyoai.types.FileObject:
    return await pool.files.create(file=("in.jsonl", jsonl(input_lines())), purpose="batch")


def batch_gets(server: FakeServer, batch_id: str) -> int:
    return sum(
        1 for r in server.requests if r.method == "GET" and r.path == f"/v1/batches/{batch_id}"
    )


async def test_run_returns_typed_results_by_custom_id_and_saves_them(
    pool: anyoai.Pool, server: FakeServer, anyio_backend: str
) -> None:
    folder = f"memory://batches-{anyio_backend}/run-1/"
    run = await pool.batches.run(
        chat_requests(), results_url=folder, metadata={"job": "nightly"}, poll_interval=0.01
    )
    assert run.batch.status == "completed" and run.batch.metadata == {"job": "nightly"}
    assert set(run.results) == set(QUESTIONS) == set(run.succeeded)
    assert run.failed == {}
    for custom_id, result in run.results.items():
        assert result.ok and result.status_code == 200 and result.error is None
        assert isinstance(result.response, ChatCompletion)
        assert result.response.model.startswith("gpt-4o-mini")
        assert result.response.meta is not None and result.response.meta.batch
        assert result.request_id and result.raw["custom_id"] == custom_id
    # the input that was uploaded: one line per request, in order, addressed to the endpoint
    uploaded = server.files[run.batch.input_file_id]
    assert uploaded.purpose == "batch"
    lines = [json.loads(line) for line in uploaded.data.splitlines()]
    assert [line["custom_id"] for line in lines] == list(QUESTIONS)
    assert {line["url"] for line in lines} == {"/v1/chat/completions"}
    # the output file, saved into storage before it was read
    assert run.output_url == folder + "output.jsonl" and run.errors_url is None
    saved = await pool.storage.read_bytes(run.output_url)
    assert run.batch.output_file_id is not None
    assert saved == server.files[run.batch.output_file_id].data
    assert {json.loads(line)["custom_id"] for line in saved.splitlines()} == set(QUESTIONS)
    # the batch was polled until it ended: validating, in_progress, finalizing, completed
    assert batch_gets(server, run.batch.id) == 3


async def test_results_are_priced_at_batch_prices(pool: anyoai.Pool) -> None:
    run = await pool.batches.run(chat_requests("gpt-4o-mini"))
    expected = 0.0
    for result in run.results.values():
        usage = result.response.usage
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
        cost = (usage.prompt_tokens * 0.075 + usage.completion_tokens * 0.30) / 1e6
        assert result.response.consumption == pytest.approx(cost)
        assert result.response.consumption.batch
        expected += cost
    assert run.consumption == pytest.approx(expected)
    # the same answer outside a batch costs twice as much
    direct = await pool.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTIONS["q-0"]}]
    )
    usage = direct.usage
    assert usage is not None
    assert direct.consumption == pytest.approx(
        (usage.prompt_tokens * 0.15 + usage.completion_tokens * 0.60) / 1e6
    )


async def test_embeddings_batch_results_are_typed_as_embeddings(pool: anyoai.Pool) -> None:
    requests = [
        {"custom_id": f"doc-{i}", "body": {"model": "text-embedding-3-small", "input": text}}
        for i, text in enumerate(["alpha", "beta gamma"])
    ]
    run = await pool.batches.run(requests, endpoint="/v1/embeddings")
    assert set(run.results) == {"doc-0", "doc-1"}
    for result in run.results.values():
        assert isinstance(result.response, CreateEmbeddingResponse)
        assert len(result.response.data[0].embedding) > 0
        assert result.response.usage is not None
        tokens = result.response.usage.prompt_tokens
        assert result.response.consumption == pytest.approx(tokens * 0.01 / 1e6)


async def test_input_written_to_storage_first_when_asked(
    pool: anyoai.Pool, server: FakeServer, anyio_backend: str
) -> None:
    url = f"memory://batches-{anyio_backend}/inputs/job.jsonl"
    run = await pool.batches.run(chat_requests(), input_url=url)
    written = await pool.storage.read_bytes(url)
    assert written == server.files[run.batch.input_file_id].data
    assert server.files[run.batch.input_file_id].filename == "job.jsonl"


async def test_run_from_a_jsonl_url(
    pool: anyoai.Pool, server: FakeServer, anyio_backend: str
) -> None:
    url = f"memory://batches-{anyio_backend}/in/requests.jsonl"
    lines = input_lines()
    await pool.storage.write(url, jsonl(lines))
    run = await pool.batches.run(url)
    assert set(run.succeeded) == set(QUESTIONS)
    assert server.files[run.batch.input_file_id].data == jsonl(lines)


async def test_a_failing_request_lands_in_the_error_file(
    pool: anyoai.Pool, server: FakeServer, anyio_backend: str
) -> None:
    requests = chat_requests()
    requests[1] = {"custom_id": "broken", "body": {"model": "gpt-4o-mini", "messages": []}}
    folder = f"memory://batches-{anyio_backend}/run-2"
    run = await pool.batches.run(requests, results_url=folder)
    assert run.batch.status == "completed"
    assert run.batch.request_counts is not None and run.batch.request_counts.failed == 1
    assert set(run.failed) == {"broken"}
    broken = run.results["broken"]
    assert broken.status_code == 400 and broken.response is None and not broken.ok
    assert broken.error["error"]["param"] == "messages"
    assert set(run.succeeded) == set(QUESTIONS) - {"q-1"}
    assert run.errors_url == folder + "/errors.jsonl"
    saved = await pool.storage.read_bytes(run.errors_url)
    assert [json.loads(line)["custom_id"] for line in saved.splitlines()] == ["broken"]


async def test_a_failed_batch_is_an_error_naming_its_bad_lines(
    pool: anyoai.Pool, anyio_backend: str
) -> None:
    url = f"memory://batches-{anyio_backend}/bad/requests.jsonl"
    good = input_lines()[0]
    no_id = {k: v for k, v in good.items() if k != "custom_id"}
    await pool.storage.write(url, jsonl([good, b"{not json", no_id]))
    with pytest.raises(anyoai.BatchFailedError) as info:
        await pool.batches.run(url)
    error = info.value
    assert error.batch.status == "failed"
    assert [e.line for e in error.errors] == [2, 3]
    assert {e.code for e in error.errors} == {"invalid_json_line", "missing_required_parameter"}
    assert "failed" in str(error) and "line 2" in str(error) and "line 3" in str(error)
    assert error.results == {}


async def test_an_expired_batch_reports_every_request(pool: anyoai.Pool) -> None:
    with pytest.raises(anyoai.BatchFailedError) as info:
        await pool.batches.run(chat_requests(), metadata={"fake_outcome": "expired"})
    error = info.value
    assert error.batch.status == "expired"
    assert set(error.results) == set(QUESTIONS)
    for result in error.results.values():
        assert not result.ok and result.status_code is None
        assert result.error.code == "batch_expired"
    assert "expired" in str(error) and "4 results" in str(error)


async def test_create_retrieve_list_cancel(pool: anyoai.Pool, server: FakeServer) -> None:
    uploaded = await upload_input(pool)
    created = await pool.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", metadata={"k": "v"}
    )
    assert isinstance(created, Batch) and created.status == "validating"
    assert created.input_file_id == uploaded.id and not created.done
    other = await pool.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions")
    listed = [batch.id async for batch in pool.batches.list(limit=1)]  # one per page
    assert listed == [other.id, created.id]
    assert [b.id for b in (await pool.batches.list()).data] == [other.id, created.id]

    assert (await pool.batches.retrieve(created.id)).status == "in_progress"
    cancelling = await pool.batches.cancel(created.id)
    assert cancelling.status == "cancelling"
    assert server.requests[-1].body == b""  # the API's cancel takes no body
    ended = await pool.batches.wait(created.id, poll_interval=0.01)
    assert ended.status == "cancelled" and ended.done
    results = await pool.batches.results(ended)
    assert {r.error.code for r in results.values()} == {"batch_cancelled"}
    assert set(results) == set(QUESTIONS)
    with pytest.raises(anyoai.BadRequestError):
        await pool.batches.cancel(created.id)
    with pytest.raises(anyoai.NotFoundError):
        await pool.batches.retrieve("batch_nope")


async def test_results_of_a_batch_id(pool: anyoai.Pool) -> None:
    run = await pool.batches.run(chat_requests())
    again = await pool.batches.results(run.batch.id)
    assert set(again) == set(run.results)
    assert again["q-0"].response.id == run.results["q-0"].response.id


async def test_cancelling_wait_stops_the_polling(pool: anyoai.Pool, server: FakeServer) -> None:
    uploaded = await upload_input(pool)
    batch = await pool.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions")
    with anyio.CancelScope() as scope:
        scope.cancel()
        await pool.batches.wait(batch.id, poll_interval=0.01)
    assert scope.cancelled_caught
    with pytest.raises(TimeoutError):
        await pool.batches.wait(batch.id, poll_interval=0.01, max_wait=0)
    # nobody polls any more: each of our own retrievals moves the batch exactly one step on
    before = batch_gets(server, batch.id)
    order = ["validating", "in_progress", "finalizing", "completed"]
    status = server.batches[batch.id].status
    ours = 0
    while status != "completed":
        moved = await pool.batches.retrieve(batch.id)
        ours += 1
        assert order.index(moved.status) == order.index(status) + 1
        status = moved.status
    assert batch_gets(server, batch.id) == before + ours
    assert status == "completed"


@pytest.mark.parametrize(
    ("requests", "param"),
    [
        ([], "requests"),
        (["not a dict"], "requests[0]"),
        ([{"body": {}}], "requests[0].custom_id"),
        ([{"custom_id": "a", "body": {}}, {"custom_id": "a", "body": {}}], "requests[1].custom_id"),
        ([{"custom_id": "a", "body": "hello"}], "requests[0].body"),
        ([{"custom_id": "a", "body": {}, "url": "/v1/embeddings"}], "requests[0].url"),
    ],
)
async def test_bad_requests_are_refused_before_anything_is_sent(
    pool: anyoai.Pool, server: FakeServer, requests: list[Any], param: str
) -> None:
    with pytest.raises(anyoai.InvalidParameterError) as info:
        await pool.batches.run(requests)
    assert info.value.param == param
    assert server.files == {} and server.requests == []


async def test_a_bad_endpoint_is_refused(pool: anyoai.Pool, server: FakeServer) -> None:
    for call in (
        pool.batches.run(chat_requests(), endpoint="/v1/edits"),
        pool.batches.create(input_file_id="file-1", endpoint="chat"),
    ):
        with pytest.raises(anyoai.InvalidParameterError) as info:
            await call
        assert info.value.param == "endpoint" and "/v1/chat/completions" in str(info.value)
    with pytest.raises(anyoai.InvalidParameterError) as info:
        await pool.batches.create(input_file_id="", endpoint="/v1/embeddings")
    assert info.value.param == "input_file_id"
    with pytest.raises(anyoai.InvalidParameterError):
        await pool.batches.wait("batch_1", poll_interval=5, max_poll_interval=1)
    assert server.requests == []
