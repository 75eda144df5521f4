"""embeddings.create_many: packing under both caps, order, over-long inputs, resumption."""

from __future__ import annotations

from pathlib import Path

import pytest

import anyoai
from anyoai.testing import FakeServer, Fault

pytestmark = pytest.mark.anyio

MODEL = "text-embedding-3-small"


def texts(n: int) -> list[str]:
    return [f"text number {i} " + "word " * (i % 7) for i in range(n)]


async def test_results_are_in_input_order_and_equal_single_requests(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    inputs = texts(25)
    vectors = await pool.embeddings.create_many(inputs, model=MODEL, batch_size=4, limit=3)
    assert len(vectors) == 25
    reference = await pool.embeddings.create(model=MODEL, input=inputs, encoding_format="float")
    assert vectors == reference.vectors  # exact: float32 both ways
    batch_requests = [r for r in server.requests if r.json.get("encoding_format") == "base64"]
    # three run at once, so they may arrive in any order: put them back in input order
    sent = sorted((r.json["input"] for r in batch_requests), key=lambda b: inputs.index(b[0]))
    assert [len(batch) for batch in sent] == [4, 4, 4, 4, 4, 4, 1]
    assert [x for batch in sent for x in batch] == inputs


async def test_packing_respects_both_caps(pool: anyoai.Pool, server: FakeServer) -> None:
    inputs = texts(40)
    cap = 30
    await pool.embeddings.create_many(inputs, model=MODEL, batch_size=5, max_tokens_per_request=cap)
    # requests run concurrently: put them back in input order, then check
    sent = sorted((r.json["input"] for r in server.requests), key=lambda b: inputs.index(b[0]))
    assert [x for batch in sent for x in batch] == inputs  # every input once, in order
    for batch in sent:
        assert len(batch) <= 5
        assert sum(anyoai.count_tokens(x, model=MODEL) for x in batch) <= cap
    # the caps bind: some batches are cut by tokens before they reach 5 inputs
    assert any(len(batch) < 5 for batch in sent[:-1])


async def test_token_arrays_and_dimensions(pool: anyoai.Pool, server: FakeServer) -> None:
    vectors = await pool.embeddings.create_many([[1, 2, 3], "text", [4]], model=MODEL, dimensions=6)
    assert [len(v) for v in vectors] == [6, 6, 6]
    assert server.requests[-1].json["dimensions"] == 6


async def test_over_long_input_is_refused_naming_its_index(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    inputs = ["short", "word " * 50, "short too"]
    with pytest.raises(anyoai.InvalidParameterError) as info:
        await pool.embeddings.create_many(inputs, model=MODEL, max_input_tokens=20)
    assert info.value.param == "inputs[1]"
    assert "truncate=True" in str(info.value)
    assert server.requests == []


async def test_over_long_input_is_truncated_when_asked(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    inputs: list[str | list[int]] = ["short", "word " * 50, list(range(40))]
    vectors = await pool.embeddings.create_many(
        inputs, model=MODEL, max_input_tokens=20, truncate=True
    )
    assert len(vectors) == 3
    sent = [x for r in server.requests for x in r.json["input"]]
    assert len(sent) == 3  # texts and token arrays went in separate requests
    (long_text,) = [x for x in sent if isinstance(x, str) and x.startswith("word")]
    assert anyoai.count_tokens(long_text, model=MODEL) <= 20
    assert list(range(20)) in sent


@pytest.mark.parametrize(
    ("inputs", "param"),
    [(["ok", ""], "inputs[1]"), (["ok", 5], "inputs[1]"), ("a single string", "inputs")],
)
async def test_bad_inputs(pool: anyoai.Pool, inputs: object, param: str) -> None:
    with pytest.raises(anyoai.InvalidParameterError) as info:
        await pool.embeddings.create_many(inputs, model=MODEL)  # type: ignore[arg-type]
    assert info.value.param == param


async def test_a_failed_job_resumes_from_its_checkpoint(
    pool: anyoai.Pool, server: FakeServer, tmp_path: Path
) -> None:
    journal = tmp_path / "embeddings.jsonl"
    inputs = texts(30)  # six requests of five; limit=1 sends them one after the other
    for _ in range(3):  # the first three requests are answered as usual (no-op faults)...
        server.add_fault(Fault(), path="/embeddings")
    server.add_fault(Fault(status=400, code="boom", times=10), path="/embeddings")  # ...then not
    done: list[int] = []
    with pytest.raises(anyoai.BadRequestError):
        await pool.embeddings.create_many(
            inputs,
            model=MODEL,
            batch_size=5,
            limit=1,
            checkpoint=journal,
            progress=lambda p: done.append(p.done),
        )
    assert done[-1] == 3
    assert len(journal.read_text().splitlines()) == 3

    server.clear()  # the fault is gone: the re-run sends only the three batches not journaled
    vectors = await pool.embeddings.create_many(
        inputs, model=MODEL, batch_size=5, limit=1, checkpoint=journal
    )
    assert [r.json["input"] for r in server.requests] == [
        inputs[15:20],
        inputs[20:25],
        inputs[25:30],
    ]
    reference = await pool.embeddings.create(model=MODEL, input=inputs)
    assert vectors == reference.vectors
    assert len(journal.read_text().splitlines()) == 6
