"""The Azure requests anyoai builds are validated by Prism against Azure's published inference
spec (2024-10-21): paths with the deployment, ``api-version``, ``api-key``, and the bodies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import anyoai

from .report import REPORT

pytestmark = pytest.mark.anyio

API_VERSION = "2024-10-21"
KEY = "azure-conformance-key-0123456789abcdef"
MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def _tool_round_trip(pool: anyoai.Pool) -> Any:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    messages: list[Any] = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    return await pool.chat.completions.create(model="gpt-4o", messages=messages, tools=[TOOL])


CALLS: dict[str, list[tuple[str, Callable[[anyoai.Pool], Awaitable[Any]]]]] = {
    "azure chat.completions.create": [
        (
            "plain",
            lambda p: p.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, temperature=0.3, max_tokens=50, n=1
            ),
        ),
        (
            "tools",
            lambda p: p.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, tools=[TOOL], tool_choice="auto"
            ),
        ),
        ("a tool call and its result sent back", _tool_round_trip),
        (
            "response_format, logprobs, stop",
            lambda p: p.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                response_format={"type": "json_object"},
                logprobs=True,
                top_logprobs=2,
                stop=["END"],
            ),
        ),
    ],
    "azure completions.create": [
        (
            "plain",
            lambda p: p.completions.create(
                model="gpt-35-turbo-instruct", prompt="Once upon a time", max_tokens=20
            ),
        ),
        (
            "prompts and stop",
            lambda p: p.completions.create(
                model="gpt-35-turbo-instruct", prompt=["a", "b"], stop=["\n"], logprobs=2
            ),
        ),
    ],
    "azure embeddings.create": [
        (
            "texts",
            lambda p: p.embeddings.create(model="text-embedding-3-small", input=["a", "b"]),
        ),
        (
            "dimensions",
            lambda p: p.embeddings.create(
                model="text-embedding-3-small", input="a", dimensions=256, encoding_format="float"
            ),
        ),
    ],
}


def _backend(endpoint: str) -> anyoai.AzureBackend:
    return anyoai.AzureBackend(
        endpoint=endpoint,
        api_version=API_VERSION,
        api_key=KEY,
        deployments={
            "gpt-4o": "prod-gpt-4o",
            "gpt-35-turbo-instruct": "instruct",
            "text-embedding-3-small": "embed-small",
        },
    )


@pytest.mark.parametrize(
    ("endpoint", "name", "call"),
    [
        pytest.param(endpoint, name, call, id=f"{endpoint}[{name}]")
        for endpoint, calls in CALLS.items()
        for name, call in calls
    ],
)
async def test_azure_request_is_valid(
    prism_azure: str,
    endpoint: str,
    name: str,
    call: Callable[[anyoai.Pool], Awaitable[Any]],
) -> None:
    async with anyoai.open_pool(
        backends=[_backend(prism_azure)], max_retries=0, raise_on_content_filter=False
    ) as pool:
        try:
            await call(pool)
        except anyoai.UnprocessableEntityError as exc:
            REPORT.record(endpoint, "request", f"FAIL ({name})")
            pytest.fail(
                f"Prism refused {endpoint} [{name}]:\n{exc.message}\n"
                f"{json.dumps(exc.body, indent=2)}"
            )
    if not REPORT.rows[endpoint].get("request", "").startswith("FAIL"):
        REPORT.record(endpoint, "request", "ok")
    REPORT.record(endpoint, "static response", "ok")


async def test_azure_validator_is_live(prism_azure: str) -> None:
    """Azure's validation is on: a wrong body, a missing key and a missing version are refused."""
    async with anyoai.open_pool(backends=[_backend(prism_azure)], max_retries=0) as pool:
        with pytest.raises(anyoai.UnprocessableEntityError):
            await pool.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, extra_body={"messages": "hello"}
            )
        with pytest.raises(anyoai.UnprocessableEntityError):
            await pool.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, extra_query={"api-version": ""}
            )
        with pytest.raises(anyoai.AuthenticationError):
            # a header given as None is not sent: here, the api-key
            await pool.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                extra_headers={"api-key": None},
            )
    REPORT.record("(azure validator)", "request", "ok: wrong requests are refused")
