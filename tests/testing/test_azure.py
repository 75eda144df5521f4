"""Tests of the fake server's Azure OpenAI mode and of its outages, under asyncio and trio.

Raw httpcore clients, as in ``test_server.py``: the point is the server, not anyoai.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import anyio.to_thread
import httpcore
import pytest

from anyoai.testing import FakeServer, Fault, run_in_thread

from ..helpers import (
    RawConnection,
    call,
    chunks,
    collect_stream,
    events,
    fake_server_command,
    fake_server_process,
    header,
    payload,
    raw_request,
    wait_for,
)

pytestmark = pytest.mark.anyio

KEY = "azure-test-key-0123456789abcdef"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-ad-token"
VERSION = "2024-10-21"
AUTH = {"api-key": KEY}
CHAT = "/openai/deployments/gpt-35-turbo/chat/completions"
COMPLETIONS = "/openai/deployments/gpt-35-turbo/completions"
EMBEDDINGS = "/openai/deployments/text-embedding-3-small/embeddings"

SAFE = {"filtered": False, "severity": "safe"}
UNDETECTED = {"filtered": False, "detected": False}
PROMPT_FILTER_RESULTS = [
    {
        "prompt_index": 0,
        "content_filter_results": {
            "hate": SAFE,
            "jailbreak": UNDETECTED,
            "self_harm": SAFE,
            "sexual": SAFE,
            "violence": SAFE,
        },
    }
]
CHOICE_FILTER_RESULTS = {
    "hate": SAFE,
    "protected_material_code": UNDETECTED,
    "protected_material_text": UNDETECTED,
    "self_harm": SAFE,
    "sexual": SAFE,
    "violence": SAFE,
}
CHUNK_FILTER_RESULTS = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
CUT_VIOLENCE = {"filtered": True, "severity": "medium"}
NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}
ACCESS_DENIED = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make "
        "sure to provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource.",
    }
}
# as recorded from the real service (shared/recordings/041_azure_error_404_deployment_not_found)
DEPLOYMENT_NOT_FOUND = {
    "error": {
        "type": "invalid_request_error",
        "code": "DeploymentNotFound",
        "message": "The API deployment for this resource does not exist. If you created the "
        "deployment within the last 5 minutes, please wait a moment and try again.",
    }
}


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with FakeServer(azure=True, api_key=KEY, api_version=VERSION) as running:
        yield running


@pytest.fixture
async def pool() -> AsyncIterator[httpcore.AsyncConnectionPool]:
    async with httpcore.AsyncConnectionPool(max_connections=20) as client:
        yield client


def up(server: FakeServer) -> bool:
    # a function, not the property: mypy would narrow the property across awaits
    return server.is_up


def versioned(path: str, version: str = VERSION) -> str:
    return f"{path}?api-version={version}"


def messages(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    # the model is ignored in Azure mode: the deployment's model answers
    return {"model": "unused", "messages": [{"role": "user", "content": text}], **extra}


async def azure(
    pool: httpcore.AsyncConnectionPool,
    server: FakeServer,
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
) -> httpcore.Response:
    """A request with the api-version and the key (unless *headers* are given)."""
    given = AUTH if headers is None else headers
    return await call(pool, server, versioned(path), body, method=method, headers=given)


async def azure_stream(
    pool: httpcore.AsyncConnectionPool, server: FakeServer, path: str, body: Any
) -> list[dict[str, Any]]:
    status, content, error = await collect_stream(pool, server, versioned(path), body, headers=AUTH)
    assert (status, error) == (200, None)
    return chunks(content)


# ------------------------------------------------------------------------------ urls


async def test_urls() -> None:
    async with FakeServer(azure=True) as azure_server, FakeServer() as openai_server:
        assert azure_server.url == azure_server.endpoint == f"http://127.0.0.1:{azure_server.port}"
        assert openai_server.endpoint == f"http://127.0.0.1:{openai_server.port}"
        assert openai_server.url == openai_server.endpoint + "/v1"
        assert azure_server.azure and not openai_server.azure
        assert up(azure_server)
        assert repr(azure_server) == f"<FakeServer azure {azure_server.url} serving>"
    assert not up(azure_server)
    with pytest.raises(ValueError, match="azure=True"):
        FakeServer(api_version=VERSION)
    with pytest.raises(ValueError, match="azure=True"):
        FakeServer(deployments={"a": "b"})
    with pytest.raises(ValueError, match="deployments"):
        FakeServer(azure=True, deployments={"": "gpt-4o"})


# ------------------------------------------------------------------------------ chat


async def test_chat(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    response = await azure(pool, server, CHAT, messages("hello  there world"))
    assert response.status == 200
    assert header(response, "apim-request-id") == "00000000-0000-4000-8000-000000000001"
    assert header(response, "x-ms-region") == "Fake Region"
    assert header(response, "x-request-id") == "req_000000000001"
    body = payload(response)
    assert body["id"] == "chatcmpl-fake-000001"
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-3.5-turbo"  # the deployment's model, not the body's
    assert body["prompt_filter_results"] == PROMPT_FILTER_RESULTS
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
            "content_filter_results": CHOICE_FILTER_RESULTS,
        }
    ]
    assert body["usage"]["total_tokens"] == 3 + 9
    assert server.requests[0].path == CHAT
    assert server.requests[0].query == {"api-version": VERSION}
    assert server.requests[0].json["model"] == "unused"  # recorded as sent
    second = await azure(pool, server, CHAT, messages())
    assert header(second, "apim-request-id") == "00000000-0000-4000-8000-000000000002"


async def test_chat_without_a_model_and_other_deployments() -> None:
    deployments = {"prod": "gpt-4o", "embed": "text-embedding-3-large"}
    async with (
        FakeServer(azure=True, deployments=deployments) as server,
        httpcore.AsyncConnectionPool() as pool,
    ):
        body = {"messages": [{"role": "user", "content": "hi"}]}
        response = await call(
            pool, server, versioned("/openai/deployments/prod/chat/completions"), body
        )
        assert payload(response)["model"] == "gpt-4o"
        embed = {"input": "hi"}
        response = await call(
            pool, server, versioned("/openai/deployments/embed/embeddings"), embed
        )
        assert payload(response)["model"] == "text-embedding-3-large"
        # the defaults are replaced, not extended
        response = await call(pool, server, versioned(CHAT), body)
        assert (response.status, payload(response)) == (404, DEPLOYMENT_NOT_FOUND)


async def test_chat_stream(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    body = messages("hello there", stream=True, stream_options={"include_usage": True})
    found = await azure_stream(pool, server, CHAT, body)
    assert found[0] == {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": PROMPT_FILTER_RESULTS,
    }
    role, *content, finish, usage = found[1:]
    assert role["choices"][0]["delta"]["role"] == "assistant"
    assert role["choices"][0]["content_filter_results"] == {}
    assert content
    for chunk in (role, *content, finish, usage):
        assert chunk["id"] == "chatcmpl-fake-000001"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "gpt-3.5-turbo"
    for chunk in content:
        (choice,) = chunk["choices"]
        assert choice["content_filter_results"] == CHUNK_FILTER_RESULTS
        assert choice["finish_reason"] is None
    text = "".join(chunk["choices"][0]["delta"]["content"] for chunk in content)
    assert text == "This is a fake answer to: hello there"
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["choices"][0]["content_filter_results"] == {}
    assert usage["choices"] == []
    assert usage["usage"]["total_tokens"] == 2 + 8


async def test_tool_calls_have_empty_filter_results(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = payload(await azure(pool, server, CHAT, messages(tools=tools)))
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["content_filter_results"] == {}  # as the real service (recording 039)
    assert body["prompt_filter_results"] == PROMPT_FILTER_RESULTS


# ------------------------------------------------------------------------------ other paths


async def test_completions(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    response = await azure(pool, server, COMPLETIONS, {"prompt": ["one", "two"], "model": "x"})
    body = payload(response)
    assert body["model"] == "gpt-3.5-turbo"
    assert body["object"] == "text_completion"
    assert [entry["prompt_index"] for entry in body["prompt_filter_results"]] == [0, 1]
    assert (
        body["prompt_filter_results"][1]["content_filter_results"]
        == (PROMPT_FILTER_RESULTS[0]["content_filter_results"])
    )
    assert [choice["text"] for choice in body["choices"]] == [
        " This is a fake completion of: one",
        " This is a fake completion of: two",
    ]
    for choice in body["choices"]:
        assert choice["content_filter_results"] == CHOICE_FILTER_RESULTS
    assert header(response, "x-ms-region") == "Fake Region"


async def test_completions_stream(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    found = await azure_stream(pool, server, COMPLETIONS, {"prompt": "say", "stream": True})
    assert found[0]["id"] == ""
    assert found[0]["choices"] == []
    assert found[0]["prompt_filter_results"] == PROMPT_FILTER_RESULTS
    *content, finish = found[1:]
    assert "".join(chunk["choices"][0]["text"] for chunk in content) == (
        " This is a fake completion of: say"
    )
    for chunk in content:
        assert chunk["model"] == "gpt-3.5-turbo"
        assert chunk["choices"][0]["content_filter_results"] == CHUNK_FILTER_RESULTS
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["choices"][0]["content_filter_results"] == {}


async def test_embeddings(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    response = await azure(pool, server, EMBEDDINGS, {"input": ["a b", "c"], "model": "m"})
    body = payload(response)
    assert body["model"] == "text-embedding-3-small"
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert "prompt_filter_results" not in body
    assert header(response, "apim-request-id") is not None


async def test_models(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    listed = payload(await azure(pool, server, "/openai/models", method="GET"))
    assert listed["object"] == "list"
    ids = [model["id"] for model in listed["data"]]
    assert ids == list(FakeServer.DEFAULT_MODELS)
    one = payload(await azure(pool, server, "/openai/models/text-embedding-3-small", method="GET"))
    assert one["id"] == "text-embedding-3-small"
    assert one["object"] == "model"
    assert one["capabilities"]["embeddings"] is True
    assert one["capabilities"]["chat_completion"] is False
    missing = await azure(pool, server, "/openai/models/nope", method="GET")
    assert (missing.status, payload(missing)) == (404, NOT_FOUND)
    async with FakeServer(azure=True, models=["m1"], deployments={"d": "m2"}) as other:
        listed = payload(await azure(pool, other, "/openai/models", method="GET"))
        assert [model["id"] for model in listed["data"]] == ["m1", "m2"]


async def test_openai_paths_are_not_found(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    for path, method in [
        ("/v1/chat/completions", "POST"),
        ("/v1/completions", "POST"),
        ("/v1/embeddings", "POST"),
        ("/v1/models", "GET"),
        ("/chat/completions", "POST"),
        ("/openai/deployments/gpt-35-turbo/moderations", "POST"),
        (CHAT, "GET"),
    ]:
        body = messages() if method == "POST" else None
        response = await azure(pool, server, path, body, method=method)
        assert (response.status, payload(response)) == (404, NOT_FOUND), path


# ------------------------------------------------------------------------------ checks


async def test_api_version(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    for path, method in [(CHAT, "POST"), (EMBEDDINGS, "POST"), ("/openai/models", "GET")]:
        body = {"input": "x", **messages()} if method == "POST" else None
        for target in (path, path + "?api-version=", path + "?other=1"):
            missing = await call(pool, server, target, body, method=method, headers=AUTH)
            assert (missing.status, payload(missing)) == (404, NOT_FOUND), target
        wrong = await call(
            pool, server, versioned(path, "2023-05-15"), body, method=method, headers=AUTH
        )
        assert wrong.status == 400
        assert payload(wrong) == {
            "error": {"code": "BadRequest", "message": "API version not supported"}
        }
    async with FakeServer(azure=True) as any_version:
        for version in ("2023-05-15", "2025-01-01-preview"):
            response = await call(pool, any_version, versioned(CHAT, version), messages())
            assert response.status == 200


async def test_api_key(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    assert (await azure(pool, server, CHAT, messages())).status == 200
    for headers in (
        {},
        {"api-key": "wrong-key-0123456789"},
        {"authorization": f"Bearer {KEY}"},  # Azure wants the key in api-key
        {"api-key": KEY.upper()},
    ):
        response = await azure(pool, server, CHAT, messages(), headers=headers)
        assert (response.status, payload(response)) == (401, ACCESS_DENIED), headers
        assert b"0123456789" not in response.content


async def test_ad_token(pool: httpcore.AsyncConnectionPool) -> None:
    async with FakeServer(azure=True, ad_token=TOKEN) as server:
        ok = await azure(
            pool, server, CHAT, messages(), headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert ok.status == 200
        for headers in ({}, {"authorization": "Bearer other"}, {"api-key": TOKEN}):
            response = await azure(pool, server, CHAT, messages(), headers=headers)
            assert (response.status, payload(response)) == (401, ACCESS_DENIED), headers
    async with FakeServer(azure=True, api_key=KEY, ad_token=TOKEN) as both:
        for headers in ({"api-key": KEY}, {"Authorization": f"bearer {TOKEN}"}):
            response = await azure(pool, both, CHAT, messages(), headers=headers)
            assert response.status == 200, headers
    async with FakeServer(azure=True) as open_server:
        assert (await azure(pool, open_server, CHAT, messages(), headers={})).status == 200


async def test_checks_order(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    # the path, then the api-version, then the key, then the deployment
    unknown = "/openai/deployments/nope/chat/completions"
    response = await call(pool, server, "/v1/models", method="GET")
    assert (response.status, payload(response)) == (404, NOT_FOUND)
    response = await call(pool, server, unknown, messages())
    assert (response.status, payload(response)) == (404, NOT_FOUND)
    response = await call(pool, server, versioned(unknown), messages())
    assert (response.status, payload(response)) == (401, ACCESS_DENIED)
    response = await azure(pool, server, unknown, messages())
    assert (response.status, payload(response)) == (404, DEPLOYMENT_NOT_FOUND)


async def test_unknown_deployment(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    for path in (
        "/openai/deployments/gpt-5-nano/chat/completions",
        "/openai/deployments/gpt-5-nano/completions",
        "/openai/deployments/gpt-3.5-turbo/embeddings",  # the model's name is not a deployment
    ):
        response = await azure(pool, server, path, {"input": "x", **messages()})
        assert response.status == 404
        assert response.content == json.dumps(DEPLOYMENT_NOT_FOUND, separators=(",", ":")).encode()
        assert header(response, "apim-request-id") is not None


async def test_validation_errors_keep_the_openai_shape(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    response = await azure(pool, server, CHAT, {"messages": []})
    assert response.status == 400
    assert payload(response)["error"]["code"] == "empty_array"


# ------------------------------------------------------------------------------ content filter


async def test_prompt_filtered(server: FakeServer, pool: httpcore.AsyncConnectionPool) -> None:
    expected = {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy. Please modify your prompt and retry. To learn more about "
            "our content filtering policies please read our documentation: "
            "https://go.microsoft.com/fwlink/?linkid=2198766",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": {"filtered": True, "severity": "high"},
                    "jailbreak": UNDETECTED,
                    "self_harm": SAFE,
                    "sexual": SAFE,
                    "violence": SAFE,
                },
            },
        }
    }
    for path, body in [
        (CHAT, messages("this is Forbidden.")),
        (CHAT, messages("this is forbidden", stream=True)),
        (
            CHAT,
            {
                "messages": [
                    {"role": "system", "content": "forbidden"},
                    {"role": "user", "content": "hi"},
                ]
            },
        ),
        (COMPLETIONS, {"prompt": ["fine", "forbidden words"]}),
    ]:
        response = await azure(pool, server, path, body)
        assert (response.status, payload(response)) == (400, expected), body
        assert header(response, "content-type") == "application/json"
    # a word, not a part of one
    assert (await azure(pool, server, CHAT, messages("unforbiddenly"))).status == 200
    assert server.rate_limit_stats().accepted == 1


async def test_answer_cut_by_the_filter(
    server: FakeServer, pool: httpcore.AsyncConnectionPool
) -> None:
    cut_results = {**CHOICE_FILTER_RESULTS, "violence": CUT_VIOLENCE}
    body = payload(await azure(pool, server, CHAT, messages("say cutoff now", n=2, max_tokens=50)))
    assert body["prompt_filter_results"] == PROMPT_FILTER_RESULTS
    for choice in body["choices"]:
        assert choice["message"]["content"] == "This is a"
        assert choice["finish_reason"] == "content_filter"
        assert choice["content_filter_results"] == cut_results
    assert body["usage"]["completion_tokens"] == 3 * 2

    found = await azure_stream(pool, server, CHAT, messages("say cutoff now", stream=True))
    assert found[0]["prompt_filter_results"] == PROMPT_FILTER_RESULTS
    role, *content, finish = found[1:]
    assert role["choices"][0]["content_filter_results"] == {}
    assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in content) == "This is a"
    for chunk in content:
        assert chunk["choices"][0]["content_filter_results"] == CHUNK_FILTER_RESULTS
    assert finish["choices"][0]["finish_reason"] == "content_filter"
    assert finish["choices"][0]["content_filter_results"] == {
        **CHUNK_FILTER_RESULTS,
        "violence": CUT_VIOLENCE,
    }

    body = payload(await azure(pool, server, COMPLETIONS, {"prompt": "a cutoff b"}))
    (choice,) = body["choices"]
    assert (choice["text"], choice["finish_reason"]) == (" This is a", "content_filter")
    assert choice["content_filter_results"] == cut_results

    found = await azure_stream(pool, server, COMPLETIONS, {"prompt": "cutoff", "stream": True})
    assert found[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert found[-1]["choices"][0]["content_filter_results"]["violence"] == CUT_VIOLENCE

    # a max_tokens that stops the answer first wins: no filtering then
    body = payload(await azure(pool, server, CHAT, messages("cutoff", max_completion_tokens=2)))
    (choice,) = body["choices"]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("This is", "length")
    assert choice["content_filter_results"] == CHOICE_FILTER_RESULTS


# ------------------------------------------------------------------------------ as in OpenAI mode


async def test_faults_and_rate_limits(pool: httpcore.AsyncConnectionPool) -> None:
    async with FakeServer(azure=True, rpm=3, rate_limit_period=1e6) as server:
        server.add_fault(Fault(status=503), path="/chat/completions")
        server.add_fault(Fault(status=500), path="/models", method="GET")
        response = await azure(pool, server, CHAT, messages())
        assert response.status == 503
        assert header(response, "apim-request-id") is not None  # on faults too
        assert (await azure(pool, server, "/openai/models", method="GET")).status == 500
        first = await azure(pool, server, CHAT, messages())
        assert first.status == 200
        assert header(first, "x-ratelimit-remaining-requests") == "2"
        assert header(first, "x-ratelimit-limit-requests") == "3"
        # a fault given with the request
        fault = json.dumps({"drop": "mid_stream", "after_events": 1})
        headers = {**AUTH, "x-fake-fault": fault}
        status, content, error = await collect_stream(
            pool, server, versioned(CHAT), messages(stream=True), headers=headers
        )
        assert status == 200
        assert error is not None
        assert [json.loads(event)["id"] for event in events(content)] == [""]  # Azure's first
        assert (await azure(pool, server, EMBEDDINGS, {"input": "x"})).status == 200
        limited = await azure(pool, server, CHAT, messages())
        assert limited.status == 429
        assert payload(limited)["error"]["code"] == "rate_limit_exceeded"
        assert header(limited, "retry-after") is not None
        assert header(limited, "x-ms-region") == "Fake Region"
    assert [request.path for request in server.requests].count(CHAT) == 4


# ------------------------------------------------------------------------------ down and up


async def refused(server: FakeServer) -> bool:
    def connect() -> bool:
        try:
            socket.create_connection((server.host, server.port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        return False

    return await anyio.to_thread.run_sync(connect)


@pytest.mark.parametrize("azure_mode", [False, True])
async def test_down_and_up(pool: httpcore.AsyncConnectionPool, azure_mode: bool) -> None:
    async with FakeServer(azure=azure_mode) as server:
        port = server.port
        path = versioned(CHAT) if azure_mode else "/chat/completions"
        assert (await call(pool, server, path, messages())).status == 200
        server.add_fault(Fault(status=503))
        await server.go_down()
        assert not up(server)
        assert repr(server).endswith(" down>")
        assert server.port == port
        assert server.open_connections == 0
        assert await refused(server)
        with pytest.raises(httpcore.ConnectError):
            await call(pool, server, path, messages())
        await server.go_down()  # already down: nothing to do
        await server.come_up()
        assert up(server)
        assert server.port == port
        assert not await refused(server)
        # the pending fault and the recorded requests were kept
        assert (await call(pool, server, path, messages())).status == 503
        assert (await call(pool, server, path, messages())).status == 200
        assert len(server.requests) == 3
        await server.come_up()  # already up: nothing to do
        for _ in range(2):
            await server.go_down()
            await server.come_up()
        assert (await call(pool, server, path, messages())).status == 200
        await server.go_down()
    # leaving a server that is down is fine
    assert not up(server)
    with pytest.raises(RuntimeError, match="not running"):
        await server.come_up()


async def test_going_down_drops_connections_in_flight(server: FakeServer) -> None:
    results: dict[str, BaseException | int] = {}

    async def attempt(name: str, path: str, body: Any, headers: Mapping[str, str]) -> None:
        async with httpcore.AsyncConnectionPool() as own:
            try:
                results[name] = (
                    await call(own, server, versioned(path), body, headers=headers)
                ).status
            except (httpcore.NetworkError, httpcore.RemoteProtocolError) as exc:
                results[name] = exc

    async def streamed() -> None:
        async with httpcore.AsyncConnectionPool() as own:
            try:
                status, _, error = await collect_stream(
                    own, server, versioned(CHAT), messages(stream=True), headers=AUTH
                )
            except (httpcore.NetworkError, httpcore.RemoteProtocolError) as exc:
                results["stream"] = exc
            else:
                results["stream"] = error if error is not None else status

    with anyio.fail_after(20):
        # an idle keep-alive connection, an answer waiting, a stream in the middle
        idle = await anyio.connect_tcp(server.host, server.port)
        idle_client = RawConnection(idle)
        await idle.send(
            raw_request("GET", versioned("/openai/models"), extra=f"api-key: {KEY}\r\n")
        )
        assert (await idle_client.read_response())[0] == 200
        server.stream_chunk_delay = 0.05
        slow = {**AUTH, "x-fake-fault": json.dumps({"latency": 3600})}
        async with anyio.create_task_group() as group:
            group.start_soon(attempt, "waiting", CHAT, messages(), slow)
            group.start_soon(streamed)
            await wait_for(
                lambda: len(server.requests) == 3 and server.open_connections == 3,
                "three requests on three connections",
            )
            await anyio.sleep(0.1)  # the stream is under way
            await server.go_down()
            assert server.open_connections == 0
        assert await idle_client.read_to_end() == b""
        await idle.aclose()
    assert isinstance(results["waiting"], (httpcore.NetworkError, httpcore.RemoteProtocolError))
    assert isinstance(results["stream"], (httpcore.NetworkError, httpcore.RemoteProtocolError))
    assert len(server.requests) == 3
    server.stream_chunk_delay = 0.0
    await server.come_up()
    async with httpcore.AsyncConnectionPool() as pool:
        assert (await azure(pool, server, CHAT, messages())).status == 200


def test_blocking_down_and_up() -> None:
    with run_in_thread(azure=True, api_key=KEY, deployments={"d": "gpt-4o"}) as server:
        url = versioned(server.url + "/openai/deployments/d/chat/completions")
        data = json.dumps(messages()).encode()
        request = urllib.request.Request(url, data=data, headers=AUTH)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["model"] == "gpt-4o"
        server.go_down_blocking()
        assert not up(server)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((server.host, server.port), timeout=5).close()
        server.come_up_blocking()
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    with pytest.raises(RuntimeError, match="run_in_thread"):
        server.go_down_blocking()


def test_command_line() -> None:
    flags = ["--azure", "--api-key", KEY, "--api-version", VERSION]
    flags += ["--deployment", "d1=gpt-4o", "--deployment", "d2=text-embedding-3-large"]
    with fake_server_process(*flags) as (process, endpoint):
        assert endpoint.startswith("http://127.0.0.1:")
        assert not endpoint.endswith("/v1")
        request = urllib.request.Request(
            versioned(endpoint + "/openai/deployments/d2/embeddings"),
            data=json.dumps({"input": "x"}).encode(),
            headers=AUTH,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["model"] == "text-embedding-3-large"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    wrong = subprocess.run(
        fake_server_command("--deployment", "d=m"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode == 2
    assert "need --azure" in wrong.stderr
