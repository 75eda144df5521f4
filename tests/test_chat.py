"""chat.completions.create over real HTTP to the fake server, streamed and not."""

from __future__ import annotations

import json
from typing import Any

import pytest

import anyoai
from anyoai.testing import FakeServer
from anyoai.types import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageToolCall

from .helpers import API_KEY, hello

pytestmark = pytest.mark.anyio

HELLO = hello("hello there")  # the fake server's answers repeat it
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}, "dst": {"type": "boolean"}},
        },
    },
}


def choices_of(result: ChatCompletion) -> list[Any]:
    """What a stream must reproduce of each choice (annotations only come unstreamed)."""
    return [
        (
            c.index,
            c.message.role,
            c.message.content,
            c.message.refusal,
            c.message.tool_calls,
            c.message.function_call,
            c.finish_reason,
        )
        for c in result.choices
    ]


async def test_basic_completion_and_seed_conveniences(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    result = await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert result.text == "This is a fake answer to: hello there"
    assert result.texts == [result.text]
    assert result.messages[0].role == "assistant"
    assert len(result) == 1
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.completion_tokens == len(result.text.split())
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.model == "gpt-4o-mini"
    # what anyoai knows about the exchange
    assert result.request_id is not None and result.request_id.startswith("req_")
    assert result.attempts == 1
    assert result.backend == "default"
    assert result.elapsed > 0
    assert result.raw["object"] == "chat.completion"
    assert result.headers["content-type"].startswith("application/json")
    # what the server received
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.json == {"model": "gpt-4o-mini", "messages": HELLO}
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"].startswith("anyoai-retry-")
    assert request.headers["user-agent"].startswith("anyoai/")


async def test_n_choices(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(model="m", messages=HELLO, n=3)
    assert len(result) == 3
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert result.texts == ["This is a fake answer to: hello there"] * 3
    assert result.text == "".join(result.texts)


async def test_max_tokens_cuts_with_length(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(model="m", messages=HELLO, max_tokens=3)
    assert result.text == "This is a"
    assert result.choices[0].finish_reason == "length"


async def test_parallel_tool_calls(pool: anyoai.Pool, server: FakeServer) -> None:
    result = await pool.chat.completions.create(
        model="m", messages=HELLO, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice="auto"
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 2
    assert all(isinstance(c, ChatCompletionMessageToolCall) for c in calls)
    weather, clock = calls
    assert isinstance(weather, ChatCompletionMessageToolCall)
    assert isinstance(clock, ChatCompletionMessageToolCall)
    assert weather.function.name == "get_weather"
    assert json.loads(weather.function.arguments) == {"city": "city-value", "unit": "celsius"}
    assert json.loads(clock.function.arguments) == {"zone": "zone-value", "dst": True}
    assert server.requests[-1].json["tool_choice"] == "auto"

    # the assistant message goes straight back into the conversation
    follow_up: list[Any] = [
        *HELLO,
        choice.message,
        {"role": "tool", "tool_call_id": weather.id, "content": "sunny"},
        {"role": "tool", "tool_call_id": clock.id, "content": "noon"},
    ]
    await pool.chat.completions.create(model="m", messages=follow_up)
    sent = server.requests[-1].json["messages"][1]
    assert sent == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": weather.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": weather.function.arguments},
            },
            {
                "id": clock.id,
                "type": "function",
                "function": {"name": "get_time", "arguments": clock.function.arguments},
            },
        ],
    }


async def test_named_tool_choice(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(
        model="m",
        messages=HELLO,
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = result.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert isinstance(calls[0], ChatCompletionMessageToolCall)
    assert calls[0].function.name == "get_time"


async def test_legacy_functions(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(
        model="m", messages=HELLO, functions=[WEATHER_TOOL["function"]], function_call="auto"
    )
    message = result.choices[0].message
    assert result.choices[0].finish_reason == "function_call"
    assert message.function_call is not None
    assert message.function_call.name == "get_weather"
    assert json.loads(message.function_call.arguments)["unit"] == "celsius"


async def test_response_format_json_schema(pool: anyoai.Pool, server: FakeServer) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["answer", "score"],
        "additionalProperties": False,
    }
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "Reply", "schema": schema, "strict": True},
    }
    result = await pool.chat.completions.create(model="m", messages=HELLO, response_format=fmt)
    assert json.loads(result.text) == {"answer": "answer-value", "score": 1}
    assert server.requests[-1].json["response_format"] == fmt


async def test_logprobs(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(
        model="m", messages=HELLO, logprobs=True, top_logprobs=2
    )
    logprobs = result.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert "".join(t.token for t in logprobs.content).strip() == result.text
    assert all(len(t.top_logprobs) == 2 for t in logprobs.content)
    assert all(t.logprob <= 0 for t in logprobs.content)


async def test_refusal(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "please refuse this"}]
    )
    assert result.choices[0].message.refusal
    assert result.choices[0].message.content is None
    assert result.text == ""


async def test_request_options_reach_the_wire(pool: anyoai.Pool, server: FakeServer) -> None:
    await pool.chat.completions.create(
        model="m",
        messages=HELLO,
        stream=False,
        extra_headers={"X-Trace": "abc", "User-Agent": "my-app/1.0"},
        extra_query={"trace": "1"},
        extra_body={"custom_field": {"a": 1}, "temperature": 0.5},
        timeout=30,
        max_retries=0,
    )
    request = server.requests[-1]
    assert request.headers["x-trace"] == "abc"
    assert request.headers["user-agent"] == "my-app/1.0"
    assert request.query == {"trace": "1"}
    assert request.json["custom_field"] == {"a": 1}
    assert request.json["temperature"] == 0.5
    assert request.json["stream"] is False


# -- streams ------------------------------------------------------------------------------------


async def collect(stream: anyoai.ChatCompletionStream) -> list[ChatCompletionChunk]:
    async with stream:
        return [chunk async for chunk in stream]


async def test_stream_matches_the_non_streamed_answer(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    plain = await pool.chat.completions.create(model="m", messages=HELLO)
    stream = await pool.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert stream.request_id is not None
    chunks = await collect(stream)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert "".join(c.text for c in chunks) == plain.text
    assert len({c.id for c in chunks}) == 1
    final = stream.accumulator.snapshot()
    assert choices_of(final) == choices_of(plain)
    assert stream.closed
    assert server.requests[-1].json["stream"] is True
    assert server.requests[-1].headers["accept"] == "text/event-stream"


async def test_stream_include_usage(pool: anyoai.Pool) -> None:
    stream = await pool.chat.completions.create(
        model="m", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = await collect(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    final = await stream.get_final_completion()
    assert final.usage == chunks[-1].usage
    assert final.usage is not None and final.usage.completion_tokens == len(final.text.split())


async def test_stream_tool_calls_split_over_chunks_are_accumulated(pool: anyoai.Pool) -> None:
    params: dict[str, Any] = {"model": "m", "messages": HELLO, "tools": [WEATHER_TOOL, TIME_TOOL]}
    plain = await pool.chat.completions.create(**params)
    stream = await pool.chat.completions.create(**params, stream=True)
    chunks = await collect(stream)
    argument_pieces = [
        tc.function.arguments
        for c in chunks
        for choice in c.choices
        for tc in choice.delta.tool_calls or []
        if tc.function and tc.function.arguments
    ]
    assert len(argument_pieces) > 4  # the arguments really did arrive in pieces
    final = stream.accumulator.snapshot()
    assert choices_of(final) == choices_of(plain)
    assert final.choices[0].finish_reason == "tool_calls"


async def test_stream_with_several_choices(pool: anyoai.Pool) -> None:
    plain = await pool.chat.completions.create(model="m", messages=HELLO, n=2)
    stream = await pool.chat.completions.create(model="m", messages=HELLO, n=2, stream=True)
    final = await stream.get_final_completion()
    assert choices_of(final) == choices_of(plain)
    assert final.request_id == stream.request_id


async def test_stream_legacy_function_call(pool: anyoai.Pool) -> None:
    params: dict[str, Any] = {
        "model": "m",
        "messages": HELLO,
        "functions": [WEATHER_TOOL["function"]],
    }
    plain = await pool.chat.completions.create(**params)
    stream = await pool.chat.completions.create(**params, stream=True)
    final = await stream.get_final_completion()
    assert choices_of(final) == choices_of(plain)


async def test_stream_break_early_releases_the_connection(pool: anyoai.Pool) -> None:
    async with await pool.chat.completions.create(model="m", messages=HELLO, stream=True) as s:
        async for _chunk in s:
            break
        assert pool.statistics().in_use == 1
    assert pool.statistics().in_use == 0
    # and the pool still works
    assert (await pool.chat.completions.create(model="m", messages=HELLO)).text
