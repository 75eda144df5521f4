"""Tests of the fake OpenAI server (``anyoai.testing``) itself, under asyncio and trio.

The clients are httpcore (async pools; a sync pool and urllib for the threaded server) and raw
anyio sockets where the exact bytes on the wire matter.
"""

from __future__ import annotations

import base64
import json
import signal
import struct
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpcore
import pytest

from anyoai.testing import FakeServer, Fault, RecordedRequest, run_in_thread

from ..helpers import (
    CHAT,
    RawConnection,
    call,
    chat_body,
    chunks,
    collect_stream,
    error_of,
    events,
    fake_server_process,
    header,
    payload,
    raw_request,
    wait_for,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with FakeServer() as running:
        yield running


@pytest.fixture
async def pool(server: FakeServer) -> AsyncIterator[httpcore.AsyncConnectionPool]:
    async with httpcore.AsyncConnectionPool(max_connections=50) as client:
        yield client


# ------------------------------------------------------------------------------ chat


async def test_chat_completion_shape(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    response = await call(pool, server, CHAT, chat_body("hello  there world"))
    assert response.status == 200
    assert header(response, "content-type") == "application/json"
    assert header(response, "x-request-id") == "req_000000000001"
    assert header(response, "openai-processing-ms") is not None
    assert header(response, "content-length") == str(len(response.content))
    body = payload(response)
    assert body["id"] == "chatcmpl-fake-000001"
    assert body["object"] == "chat.completion"
    assert body["created"] == 1_700_000_001
    assert body["model"] == "gpt-4o-mini"
    assert body["service_tier"] == "default"
    assert body["system_fingerprint"] == "fp_fake"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "This is a fake answer to: hello  there world",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 9,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    again = payload(await call(pool, server, CHAT, chat_body("hello  there world")))
    assert again["id"] == "chatcmpl-fake-000002"
    assert again["choices"] == body["choices"]


async def test_chat_uses_last_user_message_and_text_parts(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look at"},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
                {"type": "text", "text": "this"},
            ],
        },
    ]
    body = payload(await call(pool, server, CHAT, {"model": "m", "messages": messages}))
    assert body["choices"][0]["message"]["content"] == "This is a fake answer to: look at this"
    assert body["usage"]["prompt_tokens"] == 2 + 2 + 2 + 3


async def test_chat_n_and_max_tokens(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    body = payload(await call(pool, server, CHAT, chat_body(n=3, max_tokens=3)))
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2]
    for choice in body["choices"]:
        assert choice["message"]["content"] == "This is a"
        assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 9
    roomy = payload(await call(pool, server, CHAT, chat_body(max_completion_tokens=100)))
    assert roomy["choices"][0]["finish_reason"] == "stop"


async def test_chat_stream_matches_non_stream(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    plain = payload(await call(pool, server, CHAT, chat_body("one two  three")))
    status, content, error = await collect_stream(
        pool, server, CHAT, chat_body("one two  three", stream=True)
    )
    assert (status, error) == (200, None)
    parts = chunks(content)
    assert parts[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert parts[-1]["choices"][0]["delta"] == {}
    assert parts[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(part["choices"][0]["delta"].get("content") or "" for part in parts)
    assert text == plain["choices"][0]["message"]["content"]
    assert len(parts) == 1 + 9 + 1  # role, one chunk per word, finish
    for part in parts:
        assert part["id"] == "chatcmpl-fake-000002"
        assert part["object"] == "chat.completion.chunk"
        assert part["created"] == 1_700_000_002
        assert part["model"] == "gpt-4o-mini"
        assert part["system_fingerprint"] == "fp_fake"
        assert "usage" not in part
        (choice,) = part["choices"]
        assert set(choice) == {"index", "delta", "logprobs", "finish_reason"}
        assert choice["logprobs"] is None


async def test_chat_stream_include_usage_and_n(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    body = chat_body("hi", stream=True, n=2, stream_options={"include_usage": True})
    status, content, _ = await collect_stream(pool, server, CHAT, body)
    assert status == 200
    parts = chunks(content)
    *streamed, last = parts
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 1
    assert last["usage"]["completion_tokens"] == 2 * 7
    assert all(part["usage"] is None for part in streamed)
    indexes = [part["choices"][0]["index"] for part in streamed]
    assert indexes == [0, 1] * (len(streamed) // 2)
    for index in (0, 1):
        text = "".join(
            part["choices"][0]["delta"].get("content") or ""
            for part in streamed
            if part["choices"][0]["index"] == index
        )
        assert text == "This is a fake answer to: hi"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "threshold": {"type": "number"},
                "alerts": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
WEATHER_ARGUMENTS = (
    '{"city":"city-value","unit":"celsius","days":1,"threshold":1.5,"alerts":true,'
    '"tags":["tags-value"],"extra":{"a":"a-value"}}'
)


async def test_chat_tool_calls(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    body = payload(await call(pool, server, CHAT, chat_body(tools=[WEATHER, TIME])))
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "call_fake_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": WEATHER_ARGUMENTS},
        },
        {
            "id": "call_fake_1",
            "type": "function",
            "function": {"name": "get_time", "arguments": "{}"},
        },
    ]
    named = chat_body(
        tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    calls = payload(await call(pool, server, CHAT, named))["choices"][0]["message"]["tool_calls"]
    assert [entry["function"]["name"] for entry in calls] == ["get_time"]
    none = payload(await call(pool, server, CHAT, chat_body(tools=[WEATHER], tool_choice="none")))
    assert none["choices"][0]["message"]["content"].startswith("This is a fake answer")
    assert "tool_calls" not in none["choices"][0]["message"]
    assert none["choices"][0]["finish_reason"] == "stop"


async def test_chat_tool_calls_stream(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    _, content, _ = await collect_stream(
        pool, server, CHAT, chat_body(tools=[WEATHER, TIME], stream=True)
    )
    parts = chunks(content)
    calls: dict[int, dict[str, Any]] = {}
    for part in parts:
        for delta_call in part["choices"][0]["delta"].get("tool_calls") or []:
            index = delta_call["index"]
            if "id" in delta_call:
                assert delta_call["function"]["arguments"] == ""
                calls[index] = {"id": delta_call["id"], "name": delta_call["function"]["name"]}
                calls[index]["arguments"] = ""
            else:
                piece = delta_call["function"]["arguments"]
                assert 0 < len(piece) <= 4
                calls[index]["arguments"] += piece
    assert calls == {
        0: {"id": "call_fake_0", "name": "get_weather", "arguments": WEATHER_ARGUMENTS},
        1: {"id": "call_fake_1", "name": "get_time", "arguments": "{}"},
    }
    assert parts[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_chat_legacy_functions(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    functions = [TIME["function"], WEATHER["function"]]
    body = payload(await call(pool, server, CHAT, chat_body(functions=functions)))
    choice = body["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["content"] is None
    assert choice["message"]["function_call"] == {"name": "get_time", "arguments": "{}"}
    named = chat_body(functions=functions, function_call={"name": "get_weather"})
    message = payload(await call(pool, server, CHAT, named))["choices"][0]["message"]
    assert message["function_call"] == {"name": "get_weather", "arguments": WEATHER_ARGUMENTS}


async def test_chat_response_formats(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "pets": {"type": "array", "items": {"$ref": "#/$defs/Pet"}},
            "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "$defs": {
            "Pet": {
                "type": "object",
                "properties": {"kind": {"enum": ["cat", "dog"]}, "weight": {"type": "number"}},
            }
        },
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    body = payload(await call(pool, server, CHAT, chat_body(response_format=response_format)))
    assert json.loads(body["choices"][0]["message"]["content"]) == {
        "name": "name-value",
        "age": 1,
        "pets": [{"kind": "cat", "weight": 1.5}],
        "nickname": "nickname-value",
    }
    json_object = chat_body("hi", response_format={"type": "json_object"})
    content = payload(await call(pool, server, CHAT, json_object))["choices"][0]["message"]
    assert json.loads(content["content"]) == {"answer": "This is a fake answer to: hi"}


async def test_chat_logprobs(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    body = payload(await call(pool, server, CHAT, chat_body("hi", logprobs=True, top_logprobs=2)))
    logprobs = body["choices"][0]["logprobs"]
    assert logprobs["refusal"] is None
    entries = logprobs["content"]
    assert "".join(entry["token"] for entry in entries) == "This is a fake answer to: hi"
    for entry in entries:
        assert entry["bytes"] == list(entry["token"].encode())
        assert entry["logprob"] < 0
        assert len(entry["top_logprobs"]) == 2
        assert entry["top_logprobs"][0]["token"] == entry["token"]
    _, content, _ = await collect_stream(
        pool, server, CHAT, chat_body("hi", logprobs=True, stream=True)
    )
    streamed = [part["choices"][0]["logprobs"] for part in chunks(content)]
    tokens = [entry["content"][0]["token"] for entry in streamed if entry is not None]
    assert tokens == [entry["token"] for entry in entries]
    response = await call(pool, server, CHAT, chat_body(top_logprobs=2))
    assert response.status == 400
    assert error_of(response)["param"] == "top_logprobs"


async def test_chat_refusal(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    body = payload(await call(pool, server, CHAT, chat_body("I want you to refuse this")))
    choice = body["choices"][0]
    assert choice["message"]["content"] is None
    assert choice["message"]["refusal"] == "I'm sorry, I can't help with that."
    assert choice["finish_reason"] == "stop"
    _, content, _ = await collect_stream(pool, server, CHAT, chat_body("refuse", stream=True))
    parts = chunks(content)
    refusal = "".join(part["choices"][0]["delta"].get("refusal") or "" for part in parts)
    assert refusal == "I'm sorry, I can't help with that."
    assert all(part["choices"][0]["delta"].get("content") is None for part in parts)


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "m"}, "messages", "Missing required parameter: 'messages'."),
        ({"messages": [{"role": "user", "content": "x"}]}, "model", None),
        ({"model": "m", "messages": "hello"}, "messages", None),
        ({"model": "m", "messages": []}, "messages", None),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role", None),
        ({"model": "m", "messages": [{"role": "user"}], "n": "two"}, "n", None),
        ({"model": "m", "messages": [{"role": "user"}], "max_tokens": 0}, "max_tokens", None),
    ],
)
async def test_chat_validation(
    server: FakeServer,
    pool: httpcore.AsyncConnectionPool,
    body: dict[str, Any],
    param: str,
    message: str | None,
) -> None:
    response = await call(pool, server, CHAT, body)
    assert response.status == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if message is not None:
        assert error["message"] == message


async def test_invalid_json_body(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    for raw in (b"{not json", b"", b"[1, 2]"):
        response = await call(pool, server, CHAT, raw=raw)
        assert response.status == 400
        error = error_of(response)
        assert error["type"] == "invalid_request_error"
        assert error["param"] is None
    assert error_of(await call(pool, server, CHAT, raw=b"{not json"))["code"] is None


async def test_unknown_path_and_method(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    response = await call(pool, server, "/foo", {"a": 1})
    assert response.status == 404
    assert error_of(response) == {
        "message": "Invalid URL (POST /v1/foo)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    response = await call(pool, server, CHAT, method="GET")
    assert response.status == 405
    assert header(response, "allow") == "POST"
    assert error_of(response)["type"] == "invalid_request_error"


# ------------------------------------------------------------------------------ other endpoints


async def test_completions(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": ["a b", "c"], "n": 2}
    result = payload(await call(pool, server, "/completions", body))
    assert result["object"] == "text_completion"
    assert result["id"] == "cmpl-fake-000001"
    assert result["model"] == "gpt-3.5-turbo-instruct"
    texts = [(choice["index"], choice["text"]) for choice in result["choices"]]
    assert texts == [
        (0, " This is a fake completion of: a b"),
        (1, " This is a fake completion of: a b"),
        (2, " This is a fake completion of: c"),
        (3, " This is a fake completion of: c"),
    ]
    assert all(choice["finish_reason"] == "stop" for choice in result["choices"])
    assert all(choice["logprobs"] is None for choice in result["choices"])
    assert result["usage"] == {"prompt_tokens": 3, "completion_tokens": 30, "total_tokens": 33}

    body = {"model": "m", "prompt": "Say", "echo": True, "logprobs": 2, "max_tokens": 2}
    choice = payload(await call(pool, server, "/completions", body))["choices"][0]
    assert choice["text"] == "Say This is"
    assert choice["finish_reason"] == "length"
    logprobs = choice["logprobs"]
    assert "".join(logprobs["tokens"]) == "Say This is"
    assert len(logprobs["token_logprobs"]) == len(logprobs["tokens"])
    assert all(len(entry) == 2 for entry in logprobs["top_logprobs"])
    assert logprobs["text_offset"] == [0, 3, 9]


async def test_completions_stream(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    body = {
        "model": "m",
        "prompt": "x y",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, content, _ = await collect_stream(pool, server, "/completions", body)
    assert status == 200
    *parts, last = chunks(content)
    assert "".join(part["choices"][0]["text"] for part in parts) == (
        " This is a fake completion of: x y"
    )
    for part in parts:
        assert part["object"] == "text_completion"
        assert part["usage"] is None
        assert set(part["choices"][0]) == {"index", "text", "logprobs", "finish_reason"}
    assert parts[-1]["choices"][0]["finish_reason"] == "stop"
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 8


async def test_embeddings(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    body = {"model": "text-embedding-3-small", "input": ["hello world", "bye"]}
    result = payload(await call(pool, server, "/embeddings", body))
    assert result["object"] == "list"
    assert result["model"] == "text-embedding-3-small"
    assert result["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert [item["index"] for item in result["data"]] == [0, 1]
    vectors = [item["embedding"] for item in result["data"]]
    assert all(item["object"] == "embedding" for item in result["data"])
    assert all(len(vector) == 16 for vector in vectors)
    assert all(-1.0 <= value <= 1.0 for vector in vectors for value in vector)
    assert vectors[0] != vectors[1]
    again = payload(await call(pool, server, "/embeddings", {"model": "x", "input": "hello world"}))
    assert again["data"][0]["embedding"] == vectors[0]

    as_base64 = {"model": "m", "input": "hello world", "encoding_format": "base64", "dimensions": 8}
    encoded = payload(await call(pool, server, "/embeddings", as_base64))["data"][0]["embedding"]
    decoded = list(struct.unpack("<8f", base64.b64decode(encoded)))
    as_floats = {"model": "m", "input": "hello world", "dimensions": 8}
    floats = payload(await call(pool, server, "/embeddings", as_floats))["data"][0]["embedding"]
    assert decoded == floats

    tokens = payload(await call(pool, server, "/embeddings", {"model": "m", "input": [[1, 2, 3]]}))
    assert tokens["usage"]["prompt_tokens"] == 3
    response = await call(pool, server, "/embeddings", {"model": "m"})
    assert error_of(response)["param"] == "input"


async def test_embedding_dimensions_setting() -> None:
    async with FakeServer(embedding_dimensions=4) as server, httpcore.AsyncConnectionPool() as pool:
        body = {"model": "m", "input": "x"}
        result = payload(await call(pool, server, "/embeddings", body))
    assert len(result["data"][0]["embedding"]) == 4


async def test_models() -> None:
    fine_tuned = "ft:gpt-4o-mini:org:custom:abc/1"
    async with (
        FakeServer(models=["gpt-4o", fine_tuned]) as server,
        httpcore.AsyncConnectionPool() as pool,
    ):
        listed = payload(await call(pool, server, "/models", method="GET"))
        assert listed == {
            "object": "list",
            "data": [
                {
                    "id": "gpt-4o",
                    "object": "model",
                    "created": 1_700_000_000,
                    "owned_by": "system",
                },
                {
                    "id": fine_tuned,
                    "object": "model",
                    "created": 1_700_000_000,
                    "owned_by": "system",
                },
            ],
        }
        encoded = urllib.parse.quote(fine_tuned, safe="")
        model = payload(await call(pool, server, f"/models/{encoded}", method="GET"))
        assert model["id"] == fine_tuned
        missing = await call(pool, server, "/models/nope", method="GET")
        assert missing.status == 404
        assert error_of(missing) == {
            "message": "The model 'nope' does not exist",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
        deleted = payload(await call(pool, server, f"/models/{encoded}", method="DELETE"))
        assert deleted == {"id": fine_tuned, "object": "model", "deleted": True}
        forbidden = await call(pool, server, "/models/gpt-4o", method="DELETE")
        assert forbidden.status == 403
        assert error_of(forbidden)["message"] == (
            "You have insufficient permissions for this operation."
        )
        assert (await call(pool, server, "/models", {})).status == 405


async def test_moderations(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    body = {"input": ["I will kill it", "lovely day", "I hate this"]}
    result = payload(await call(pool, server, "/moderations", body))
    assert result["id"] == "modr-fake-000001"
    assert result["model"] == "omni-moderation-latest"
    violent, calm, hateful = result["results"]
    assert len(violent["categories"]) == 13
    assert violent["flagged"] is True
    assert violent["categories"]["violence"] is True
    assert violent["category_scores"]["violence"] == 0.95
    assert violent["categories"]["hate"] is False
    assert calm["flagged"] is False
    assert calm["category_scores"]["sexual/minors"] == 0.0001
    assert calm["category_applied_input_types"]["self-harm/intent"] == ["text"]
    assert hateful["categories"]["hate"] is True
    parts = {"model": "omni-moderation-2024-09-26", "input": [{"type": "text", "text": "kill"}]}
    single = payload(await call(pool, server, "/moderations", parts))
    assert single["model"] == "omni-moderation-2024-09-26"
    assert [entry["flagged"] for entry in single["results"]] == [True]


async def test_edits(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    body = {"model": "text-davinci-edit-001", "input": "teh cat", "instruction": "fix spelling"}
    result = payload(await call(pool, server, "/edits", body))
    assert result["object"] == "edit"
    assert result["created"] == 1_700_000_001
    assert result["choices"] == [{"text": "teh cat (edited: fix spelling)", "index": 0}]
    assert result["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    response = await call(pool, server, "/edits", {"model": "m"})
    assert error_of(response)["param"] == "instruction"


# ------------------------------------------------------------------------------ HTTP


async def test_keep_alive_serves_pipelined_requests_on_one_connection(server: FakeServer) -> None:
    async with await anyio.connect_tcp(server.host, server.port) as stream:
        client = RawConnection(stream)
        body = json.dumps(chat_body("first")).encode()
        await stream.send(
            raw_request("POST", "/v1/chat/completions", body)
            + raw_request("GET", "/v1/models?limit=2")
        )
        status, _, first = await client.read_response()
        assert status == 200
        assert json.loads(first)["choices"][0]["message"]["content"].endswith("first")
        status, headers, second = await client.read_response()
        assert status == 200
        assert headers["x-request-id"] == "req_000000000002"
        assert json.loads(second)["object"] == "list"
        assert server.open_connections == 1
        await stream.send(raw_request("GET", "/v1/models", extra="connection: close\r\n"))
        status, headers, _ = await client.read_response()
        assert status == 200
        assert headers["connection"] == "close"
        assert await client.read_to_end() == b""  # the server closed the connection
    assert [request.path for request in server.requests] == ["/v1/chat/completions"] + [
        "/v1/models"
    ] * 2
    assert server.requests[1].query == {"limit": "2"}


async def test_keep_alive_with_httpcore(server: FakeServer) -> None:
    async with httpcore.AsyncConnectionPool(max_connections=1) as pool:
        for _ in range(2):
            response = await call(pool, server, "/models", method="GET")
            assert response.status == 200
        assert len(pool.connections) == 1
        assert server.open_connections == 1


async def test_close_idle_connections(server: FakeServer) -> None:
    async with (
        await anyio.connect_tcp(server.host, server.port) as idle,
        await anyio.connect_tcp(server.host, server.port) as busy,
    ):
        client = RawConnection(idle)
        await idle.send(raw_request("GET", "/v1/models"))
        assert (await client.read_response())[0] == 200
        server.add_fault(Fault(latency=3600))
        await busy.send(raw_request("GET", "/v1/models"))
        await wait_for(lambda: len(server.requests) == 2, "both requests", timeout=5)
        assert await server.close_idle_connections() == 1
        assert await client.read_to_end() == b""
        assert server.open_connections == 1  # the one waiting for its answer stays


async def test_chunked_request_body_and_100_continue(server: FakeServer) -> None:
    body = json.dumps(chat_body("chunked")).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    async with await anyio.connect_tcp(server.host, server.port) as stream:
        client = RawConnection(stream)
        extra = "transfer-encoding: chunked\r\nexpect: 100-continue\r\n"
        await stream.send(raw_request("POST", "/v1/chat/completions", extra=extra, length=False))
        while b"\r\n\r\n" not in client.buffer:
            client.buffer += await stream.receive()
        assert client.buffer.startswith(b"HTTP/1.1 100 ")
        client.buffer = client.buffer.split(b"\r\n\r\n", 1)[1]
        await stream.send(chunked)
        status, _, answer = await client.read_response()
    assert status == 200
    assert json.loads(answer)["choices"][0]["message"]["content"].endswith("chunked")
    assert server.requests[0].body == body


async def test_garbage_request_gets_400(server: FakeServer) -> None:
    async with await anyio.connect_tcp(server.host, server.port) as stream:
        client = RawConnection(stream)
        await stream.send(b"this is not http\r\n\r\n")
        status, _, body = await client.read_response()
    assert status == 400
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


async def test_recorded_requests(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    await call(pool, server, CHAT, chat_body(), headers={"X-Custom": "yes"})
    await call(pool, server, "/models?after=a%20b&limit=", method="GET")
    first, second = server.requests
    assert isinstance(first, RecordedRequest)
    assert first.method == "POST"
    assert first.path == "/v1/chat/completions"
    assert first.query == {}
    assert first.headers["x-custom"] == "yes"
    assert first.headers["content-type"] == "application/json"
    assert first.json == chat_body()
    assert json.loads(first.body) == chat_body()
    assert second.method == "GET"
    assert second.path == "/v1/models"
    assert second.query == {"after": "a b", "limit": ""}
    assert second.json is None
    server.clear()
    assert server.requests == []


async def test_a_thousand_concurrent_connections(server: FakeServer) -> None:
    # plain sockets: the point is the server, and httpcore's pool slows down with 1,000 connections
    statuses: list[int] = []

    async def one(index: int) -> None:
        body = json.dumps(chat_body(f"request {index}")).encode()
        async with await anyio.connect_tcp(server.host, server.port) as stream:
            await stream.send(raw_request("POST", "/v1/chat/completions", body))
            status, _, answer = await RawConnection(stream).read_response()
        assert json.loads(answer)["choices"][0]["message"]["content"].endswith(f"request {index}")
        statuses.append(status)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for index in range(1000):
                group.start_soon(one, index)
    assert statuses == [200] * 1000
    assert len(server.requests) == 1000
    assert len({request.json["messages"][0]["content"] for request in server.requests}) == 1000


# ------------------------------------------------------------------------------ faults


async def test_add_fault_order_and_times(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    server.add_fault(Fault(status=429, times=2, retry_after=1))
    server.add_fault(Fault(status=500))
    server.add_fault(Fault(status=503, message="busy", code="engine_overloaded"))
    statuses = [(await call(pool, server, CHAT, chat_body())).status for _ in range(5)]
    assert statuses == [429, 429, 500, 503, 200]


async def test_fault_error_bodies(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    server.add_fault(Fault(status=429, retry_after=1.5, retry_after_ms=1500))
    response = await call(pool, server, CHAT, chat_body())
    assert header(response, "retry-after") == "1.5"
    assert header(response, "retry-after-ms") == "1500"
    assert header(response, "x-request-id") == "req_000000000001"
    error = error_of(response)
    assert error["code"] == "rate_limit_exceeded"
    assert error["param"] is None

    expected = {401: "invalid_api_key", 404: "not_found", 500: "server_error", 503: "overloaded"}
    for status, code in expected.items():
        server.add_fault(Fault(status=status))
        response = await call(pool, server, CHAT, chat_body())
        assert (response.status, error_of(response)["code"]) == (status, code)

    server.add_fault(
        Fault(
            status=429,
            code="insufficient_quota",
            message="You exceeded your current quota.",
            headers={"x-ratelimit-remaining-requests": "0"},
            retry_after="Wed, 21 Oct 2015 07:28:00 GMT",
        )
    )
    response = await call(pool, server, CHAT, chat_body())
    assert error_of(response)["code"] == "insufficient_quota"
    assert error_of(response)["message"] == "You exceeded your current quota."
    assert header(response, "x-ratelimit-remaining-requests") == "0"
    assert header(response, "retry-after") == "Wed, 21 Oct 2015 07:28:00 GMT"

    server.add_fault(Fault(status=502, body=b"<html>bad gateway</html>"))
    response = await call(pool, server, CHAT, chat_body())
    assert (response.status, response.content) == (502, b"<html>bad gateway</html>")


async def test_add_fault_filters(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    server.add_fault(Fault(status=503), path="/embeddings")
    server.add_fault(Fault(status=500), path="/v1/models", method="get")
    assert (await call(pool, server, CHAT, chat_body())).status == 200
    assert (await call(pool, server, "/models", method="GET")).status == 500
    assert (await call(pool, server, "/models", method="GET")).status == 200
    embed = {"model": "m", "input": "x"}
    assert (await call(pool, server, "/embeddings", embed)).status == 503
    assert (await call(pool, server, "/embeddings", embed)).status == 200
    server.add_fault(Fault(status=500))
    server.clear()
    assert (await call(pool, server, CHAT, chat_body())).status == 200


async def test_header_fault_takes_precedence(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    server.add_fault(Fault(status=500))
    fault = json.dumps({"status": 429, "retry_after": 1})
    response = await call(pool, server, CHAT, chat_body(), headers={"x-fake-fault": fault})
    assert response.status == 429
    assert header(response, "retry-after") == "1"
    assert (await call(pool, server, CHAT, chat_body())).status == 500  # still pending
    assert (await call(pool, server, CHAT, chat_body())).status == 200
    for bad in ("{", '{"nope": 1}', '{"drop": "sometimes"}', "[1]"):
        response = await call(pool, server, CHAT, chat_body(), headers={"x-fake-fault": bad})
        assert response.status == 400
        assert "x-fake-fault" in error_of(response)["message"]


async def test_drop_before_headers(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    server.add_fault(Fault(drop="before_headers"))
    with pytest.raises(httpcore.RemoteProtocolError):
        await call(pool, server, CHAT, chat_body())
    assert len(server.requests) == 1
    assert (await call(pool, server, CHAT, chat_body())).status == 200


async def read_into(response: httpcore.Response, sink: list[bytes]) -> None:
    async for piece in response.aiter_stream():
        sink.append(piece)


async def test_drop_mid_body(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    server.add_fault(Fault(drop="mid_body"))
    pieces: list[bytes] = []
    content = json.dumps(chat_body()).encode()
    async with pool.stream("POST", server.url + CHAT, content=content) as response:
        assert response.status == 200
        length = int(header(response, "content-length") or 0)
        with pytest.raises(httpcore.RemoteProtocolError):
            await read_into(response, pieces)
    received = b"".join(pieces)
    assert len(received) == length // 2
    assert received.startswith(b'{"id":"chatcmpl-fake-000001"')


async def test_drop_mid_stream(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    server.add_fault(Fault(drop="mid_stream", after_events=3))
    status, content, error = await collect_stream(pool, server, CHAT, chat_body(stream=True))
    assert status == 200
    assert isinstance(error, httpcore.RemoteProtocolError)
    assert len(events(content)) == 3
    assert "[DONE]" not in events(content)
    # a fault that would strike after [DONE] strikes just before it
    fault = json.dumps({"drop": "mid_stream", "after_events": 1000})
    headers = {"x-fake-fault": fault}
    _, content, error = await collect_stream(
        pool, server, CHAT, chat_body("a", stream=True), headers=headers
    )
    assert error is not None
    assert "[DONE]" not in events(content)
    assert json.loads(events(content)[-1])["choices"][0]["finish_reason"] == "stop"


async def test_malformed(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    server.add_fault(Fault(malformed=True))
    response = await call(pool, server, CHAT, chat_body())
    assert response.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    server.add_fault(Fault(malformed=True, after_events=1))
    _, content, error = await collect_stream(pool, server, CHAT, chat_body(stream=True))
    assert error is None
    data = events(content)
    json.loads(data[0])
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[1])
    assert data[-1] == "[DONE]"


async def test_error_event(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    server.add_fault(Fault(error_event=True, after_events=2))
    status, content, error = await collect_stream(pool, server, CHAT, chat_body(stream=True))
    assert (status, error) == (200, None)
    data = events(content)
    assert len(data) == 3
    assert json.loads(data[-1]) == {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": "stream_error",
        }
    }
    assert (await call(pool, server, CHAT, chat_body())).status == 200  # connection reusable


async def test_latency_fault_answers(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    server.add_fault(Fault(latency=0.05, status=503))
    response = await call(pool, server, CHAT, chat_body())
    assert response.status == 503


async def test_latency_is_cancelled_when_the_client_leaves(server: FakeServer) -> None:
    fault = json.dumps({"latency": 3600})
    with anyio.fail_after(10):
        async with await anyio.connect_tcp(server.host, server.port) as stream:
            body = json.dumps(chat_body()).encode()
            await stream.send(
                raw_request("POST", "/v1/chat/completions", body, f"x-fake-fault: {fault}\r\n")
            )
            await wait_for(lambda: server.requests, "the request", timeout=5)
            assert server.open_connections == 1
        await wait_for(lambda: server.open_connections == 0, "the connection to close", timeout=5)
    assert server.open_connections == 0


async def test_shutdown_closes_connections_and_cancels_latency() -> None:
    with anyio.fail_after(10):
        async with FakeServer() as server:
            server.add_fault(Fault(latency=3600))
            idle = await anyio.connect_tcp(server.host, server.port)
            waiting = await anyio.connect_tcp(server.host, server.port)
            await waiting.send(raw_request("GET", "/v1/models"))
            await wait_for(
                lambda: server.requests and server.open_connections == 2,
                "the request on one of two connections",
                timeout=5,
            )
            assert server.open_connections == 2
        assert server.open_connections == 0
        for stream in (idle, waiting):
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await stream.receive()
            await stream.aclose()


async def test_stream_chunk_delay() -> None:
    async with (
        FakeServer(stream_chunk_delay=0.001) as server,
        httpcore.AsyncConnectionPool() as pool,
    ):
        _, content, _ = await collect_stream(pool, server, CHAT, chat_body(stream=True))
    assert chunks(content)[-1]["choices"][0]["finish_reason"] == "stop"


async def test_api_key() -> None:
    key = "sk-test-0123456789abcd"
    async with FakeServer(api_key=key) as server, httpcore.AsyncConnectionPool() as pool:
        missing = await call(pool, server, "/models", method="GET")
        assert missing.status == 401
        assert error_of(missing)["code"] == "invalid_api_key"
        wrong_key = "sk-wrong-9876543210wxyz"
        wrong = await call(
            pool,
            server,
            "/models",
            method="GET",
            headers={"authorization": f"Bearer {wrong_key}"},
        )
        assert wrong.status == 401
        assert error_of(wrong) == {
            "message": "Incorrect API key provided: sk-...wxyz. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        assert wrong_key not in wrong.content.decode()
        right = await call(
            pool, server, "/models", method="GET", headers={"authorization": f"Bearer {key}"}
        )
        assert right.status == 200


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="drop"):
        Fault(drop="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        Fault(times=0)
    with pytest.raises(ValueError, match="status"):
        Fault(status=99)
    assert Fault(body="text").body == b"text"
    assert dict(Fault(headers={"a": "b"}).headers) == {"a": "b"}


# ------------------------------------------------------------------------------ blocking use


def test_run_in_thread_with_blocking_clients() -> None:
    with run_in_thread(api_key="sk-thread-test-key") as server:
        auth = {"Authorization": "Bearer sk-thread-test-key"}
        request = urllib.request.Request(server.url + "/models", headers=auth)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["object"] == "list"
        server.add_fault(Fault(status=429, retry_after=2))
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 429
        assert caught.value.headers["retry-after"] == "2"
        caught.value.close()
        with httpcore.ConnectionPool() as pool:
            body = json.dumps(chat_body()).encode()
            answer = pool.request(
                "POST", server.url + CHAT, headers=list(auth.items()), content=body
            )
            assert json.loads(answer.content)["object"] == "chat.completion"
        assert [entry.path for entry in server.requests] == ["/v1/models"] * 2 + [
            "/v1/chat/completions"
        ]
    assert server.open_connections == 0


def test_command_line() -> None:
    with fake_server_process("--port", "0") as (process, url):
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        with urllib.request.urlopen(url + "/models", timeout=10) as response:
            assert json.load(response)["object"] == "list"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
