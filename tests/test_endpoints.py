"""completions, embeddings, models, moderations and edits over real HTTP to the fake server."""

from __future__ import annotations

from typing import Literal

import pytest

import anyoai
from anyoai.testing import FakeServer

pytestmark = pytest.mark.anyio


async def test_completion(pool: anyoai.Pool, server: FakeServer) -> None:
    result = await pool.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once upon")
    assert result.text == " This is a fake completion of: Once upon"
    assert len(result) == 1
    assert result.object_ == "text_completion"
    assert result.usage is not None and result.usage.completion_tokens > 0
    assert server.requests[-1].json == {"model": "gpt-3.5-turbo-instruct", "prompt": "Once upon"}


async def test_completion_several_prompts_echo_and_logprobs(pool: anyoai.Pool) -> None:
    result = await pool.completions.create(
        model="m", prompt=["a b", "c"], echo=True, logprobs=2, max_tokens=50
    )
    assert len(result) == 2
    assert result.texts[0].startswith("a b")
    logprobs = result.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.top_logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs or [])
    assert all(top is None or len(top) == 2 for top in logprobs.top_logprobs)


async def test_completion_stream(pool: anyoai.Pool) -> None:
    plain = await pool.completions.create(model="m", prompt="hello world", n=2)
    stream = await pool.completions.create(
        model="m", prompt="hello world", n=2, stream=True, stream_options={"include_usage": True}
    )
    async with stream:
        chunks = [chunk async for chunk in stream]
    assert len(chunks) > 3
    final = stream.accumulator.snapshot()
    assert final.texts == plain.texts
    assert [c.finish_reason for c in final.choices] == [c.finish_reason for c in plain.choices]
    assert final.usage is not None


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
async def test_embeddings_float_and_base64_decode_alike(
    pool: anyoai.Pool, server: FakeServer, encoding_format: Literal["float", "base64"]
) -> None:
    reference = await pool.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    result = await pool.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format=encoding_format
    )
    assert [e.index for e in result.data] == [0, 1]
    assert all(isinstance(x, float) for x in result.data[0].embedding)
    assert result.vectors == reference.vectors
    assert result.vectors[0] != result.vectors[1]
    assert server.requests[-1].json["encoding_format"] == encoding_format
    assert result.usage is not None and result.usage.prompt_tokens > 0


async def test_embeddings_dimensions_and_token_input(pool: anyoai.Pool) -> None:
    result = await pool.embeddings.create(model="e", input=[[1, 2, 3], [4]], dimensions=5)
    assert [len(v) for v in result.vectors] == [5, 5]


async def test_models(pool: anyoai.Pool) -> None:
    models = await pool.models.list()
    assert len(models) > 0
    assert [m.id for m in models] == models.ids
    first = await pool.models.retrieve(models.ids[0])
    assert first.id == models.ids[0]
    assert first.request_id is not None
    with pytest.raises(anyoai.NotFoundError) as info:
        await pool.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"
    deleted = await pool.models.delete("ft:gpt-4o-mini:acme:custom:abc123")
    assert deleted.deleted is True
    assert deleted.id == "ft:gpt-4o-mini:acme:custom:abc123"
    with pytest.raises(anyoai.PermissionDeniedError):
        await pool.models.delete("gpt-4o-mini")


async def test_model_ids_are_escaped_in_the_path(pool: anyoai.Pool, server: FakeServer) -> None:
    with pytest.raises(anyoai.NotFoundError):
        await pool.models.retrieve("../files")
    # the id is one escaped path segment: the request cannot wander to another endpoint
    assert server.requests[-1].path.startswith("/v1/models/")


async def test_moderations(pool: anyoai.Pool) -> None:
    result = await pool.moderations.create(input=["have a nice day", "I will kill it"])
    assert len(result.results) == 2
    assert result.results[0].flagged is False
    assert result.results[1].flagged is True
    assert "violence" in result.results[1].flagged_categories
    assert result.flagged is True
    assert "self-harm/intent" in result.results[0].categories


async def test_edits(pool: anyoai.Pool) -> None:
    result = await pool.edits.create(
        model="text-davinci-edit-001", input="helo", instruction="fix the spelling"
    )
    assert result.text.startswith("helo")
    assert len(result) == 1
    assert result.usage is not None


async def test_invalid_parameters_fail_before_sending(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    with pytest.raises(anyoai.InvalidParameterError) as info:
        await pool.embeddings.create(model="e", input={"not": "valid"})  # type: ignore[arg-type]
    assert info.value.param == "input"
    with pytest.raises(anyoai.InvalidParameterError):
        await pool.models.retrieve("")
    with pytest.raises(anyoai.InvalidParameterError):
        await pool.chat.completions.create(model="m", messages="hello")  # type: ignore[arg-type]
    with pytest.raises(anyoai.InvalidParameterError):
        await pool.chat.completions.create(model="m", messages=[], stream="yes")  # type: ignore[call-overload]
    assert server.requests == []
