"""Real traffic: every recorded OpenAI / Azure exchange whose endpoint anyoai implements.

Each recording (``$ANYOAI_RECORDINGS``, CI sets it to ``../shared/recordings``) is served from a
loopback server; anyoai is called with the recorded parameters, and two things are checked:

- the JSON anyoai sends equals the recorded request body;
- the result anyoai parses holds everything the recorded body holds (content, tool calls,
  refusals, logprobs, usage, Azure filter results), or, for an error, the right exception class
  and code. Streams are checked by comparing anyoai's accumulated message with one rebuilt here,
  independently, from the raw events.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import anyoai
from anyoai.testing import FakeServer, Fault
from anyoai.types import UnknownVariant

from .helpers import API_KEY

pytestmark = pytest.mark.anyio

RECORDINGS = os.environ.get("ANYOAI_RECORDINGS")

# endpoint (the path after /v1 or the Azure deployment) -> how to call anyoai with the body
Call = Callable[[anyoai.Pool, dict[str, Any]], Awaitable[Any]]
IMPLEMENTED: dict[tuple[str, str], Call] = {
    ("POST", "/chat/completions"): lambda pool, body: pool.chat.completions.create(**body),
    ("POST", "/completions"): lambda pool, body: pool.completions.create(**body),
    ("POST", "/embeddings"): lambda pool, body: pool.embeddings.create(**body),
    ("POST", "/moderations"): lambda pool, body: pool.moderations.create(**body),
    ("GET", "/models"): lambda pool, body: pool.models.list(),
}
# recorded endpoints anyoai does not implement (yet); listed so that a new recording is noticed
NOT_IMPLEMENTED = {
    ("POST", "/responses"),
    ("POST", "/files"),
    ("POST", "/batches"),
    ("POST", "/fine_tuning/jobs"),
}
# keys of recorded bodies that anyoai deliberately does not model (the raw dict keeps them)
UNMODELLED: set[str] = set()

HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def endpoint_of(recording: dict[str, Any]) -> tuple[str, str]:
    url: str = recording["request"]["url"].split("?", 1)[0]
    path = url.split("://", 1)[1].split("/", 1)[1]
    path = "/" + path.lstrip("/")
    if "/openai/deployments/" in path:
        path = "/" + path.split("/openai/deployments/", 1)[1].split("/", 1)[1]
    elif path.startswith("/openai/v1/"):
        path = path[len("/openai/v1") :]
    elif path.startswith("/v1/"):
        path = path[len("/v1") :]
    return recording["request"]["method"], path


def load_recordings() -> list[Any]:
    if not RECORDINGS:
        return [
            pytest.param(
                None,
                id="no-recordings",
                marks=pytest.mark.skip(
                    reason="set ANYOAI_RECORDINGS to the folder of recorded exchanges "
                    "(../shared/recordings) to run the real-traffic tests"
                ),
            )
        ]
    files = sorted(Path(RECORDINGS).glob("*.json"))
    assert files, f"ANYOAI_RECORDINGS={RECORDINGS} holds no recording"
    return [pytest.param(path, id=path.stem) for path in files]


def test_every_recorded_endpoint_is_classified() -> None:
    if not RECORDINGS:
        pytest.skip("set ANYOAI_RECORDINGS to run the real-traffic tests")
    for path in sorted(Path(RECORDINGS).glob("*.json")):
        endpoint = endpoint_of(json.loads(path.read_text()))
        assert endpoint in IMPLEMENTED or endpoint in NOT_IMPLEMENTED, (path.name, endpoint)
    assert len(set(IMPLEMENTED) & NOT_IMPLEMENTED) == 0


def plain(value: Any) -> Any:
    """A model as plain JSON-like data, walking its attrs fields (independent of the converter)."""
    if isinstance(value, UnknownVariant):
        return dict(value.raw)
    if attrs.has(type(value)):
        return {
            a.name.rstrip("_"): plain(getattr(value, a.name))
            for a in attrs.fields(type(value))
            if a.init and getattr(value, a.name) is not None
        }
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def assert_holds(parsed: Any, recorded: Any, where: str = "$") -> None:
    """Everything non-null in *recorded* is in *parsed*, equal."""
    if isinstance(recorded, dict):
        assert isinstance(parsed, dict), where
        for key, value in recorded.items():
            if value is None or key in UNMODELLED:
                continue
            assert key in parsed, f"{where}.{key} was dropped by the model"
            assert_holds(parsed[key], value, f"{where}.{key}")
    elif isinstance(recorded, list):
        assert isinstance(parsed, list) and len(parsed) == len(recorded), where
        for index, (p, r) in enumerate(zip(parsed, recorded, strict=True)):
            assert_holds(p, r, f"{where}[{index}]")
    elif isinstance(recorded, float) or isinstance(parsed, float):
        assert parsed == pytest.approx(recorded), where
    else:
        assert parsed == recorded, where


def sse_payloads(text: str) -> list[Any]:
    payloads = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(
            line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:")
        )
        if data and data != "[DONE]":
            payloads.append(json.loads(data))
    return payloads


def rebuild_chat(payloads: list[Any]) -> dict[int, dict[str, Any]]:
    """The test's own, independent reassembly of streamed chat choices from raw JSON."""
    choices: dict[int, dict[str, Any]] = {}
    for payload in payloads:
        for choice in payload.get("choices") or []:
            acc = choices.setdefault(
                choice["index"], {"content": "", "tool_calls": {}, "finish_reason": None}
            )
            delta = choice.get("delta") or {}
            acc["content"] += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = acc["tool_calls"].setdefault(
                    call["index"], {"id": "", "name": "", "arguments": ""}
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] = function.get("name") or slot["name"]
                slot["arguments"] += function.get("arguments") or ""
            acc["finish_reason"] = choice.get("finish_reason") or acc["finish_reason"]
    return choices


def backend_for(
    recording: dict[str, Any], server: FakeServer, endpoint: tuple[str, str]
) -> tuple[anyoai.AzureBackend | anyoai.OpenAIBackend, str, dict[str, str]]:
    """The backend that sends what the recording's client sent: Azure for Azure URLs, with the
    recorded deployment and api-version; and the path and query it must reach the server with."""
    parts = urllib.parse.urlsplit(recording["request"]["url"])
    query = dict(urllib.parse.parse_qsl(parts.query))
    if "/openai/deployments/" in parts.path:
        deployment = parts.path.split("/openai/deployments/", 1)[1].split("/", 1)[0]
        model = (recording["request"]["body"] or {}).get("model", deployment)
        spec = anyoai.AzureBackend(
            endpoint=server.endpoint,
            api_key=API_KEY,
            api_version=query["api-version"],
            deployments={model: deployment},
        )
        return spec, f"/openai/deployments/{deployment}{endpoint[1]}", query
    return anyoai.OpenAIBackend(base_url=server.url, api_key=API_KEY), f"/v1{endpoint[1]}", query


ERROR_CLASSES = {
    401: anyoai.AuthenticationError,
    404: anyoai.NotFoundError,
    429: anyoai.RateLimitError,
}


@pytest.mark.parametrize("path", load_recordings())
async def test_recorded_exchange(path: Path, server: FakeServer) -> None:
    recording = json.loads(path.read_text())  # noqa: ASYNC240 - a small local file
    endpoint = endpoint_of(recording)
    if endpoint not in IMPLEMENTED:
        assert endpoint in NOT_IMPLEMENTED
        return
    request_body = recording["request"]["body"] or {}
    response = recording["response"]
    headers = {k: v for k, v in response["headers"].items() if k not in HOP_BY_HOP}
    server.add_fault(
        Fault(status=response["status"], body=response["body_text"].encode(), headers=headers)
    )
    backend, expected_path, expected_query = backend_for(recording, server, endpoint)
    async with anyoai.open_pool(backends=[backend], max_retries=0) as pool:
        status = response["status"]
        if status >= 400:
            expected = json.loads(response["body_text"])["error"]
            with pytest.raises(ERROR_CLASSES[status]) as info:
                await IMPLEMENTED[endpoint](pool, dict(request_body))
            assert info.value.code == expected.get("code")
            assert info.value.type == expected.get("type")
            assert info.value.message and expected["message"][:40] in info.value.message
            result = None
        elif request_body.get("stream"):
            stream = await IMPLEMENTED[endpoint](pool, dict(request_body))
            async with stream:
                chunks = [chunk async for chunk in stream]
            payloads = sse_payloads(response["body_text"])
            assert len(chunks) == len(payloads)
            for chunk, payload in zip(chunks, payloads, strict=True):
                assert_holds(plain(chunk), payload)
            final = stream.accumulator.snapshot()
            expected_choices = rebuild_chat(payloads)
            assert [c.index for c in final.choices] == sorted(expected_choices)
            for choice in final.choices:
                want = expected_choices[choice.index]
                assert (choice.message.content or "") == want["content"]
                assert choice.finish_reason == want["finish_reason"]
                calls = [
                    {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                    for c in choice.message.tool_calls or []
                ]
                assert calls == [want["tool_calls"][i] for i in sorted(want["tool_calls"])]
            usage = [p["usage"] for p in payloads if p.get("usage")]
            if usage:
                assert final.usage is not None
                assert_holds(plain(final.usage), usage[-1])
            result = final
        else:
            result = await IMPLEMENTED[endpoint](pool, dict(request_body))
            recorded = json.loads(response["body_text"])
            assert_holds(plain(result), recorded)
            assert result.raw == recorded
            if "x-request-id" in response["headers"]:
                assert result.request_id == response["headers"]["x-request-id"]
    sent = server.requests[-1]
    assert sent.method == endpoint[0]
    assert sent.path == expected_path
    assert sent.query == expected_query
    if recording["request"]["body"] is None:
        assert sent.body == b""
    else:
        assert sent.json == recording["request"]["body"]
    if result is not None and "content_filter_results" in response["body_text"]:
        # Azure's filter results came through, typed
        assert any(c.content_filter_results for c in result.choices) or result.prompt_filter_results
