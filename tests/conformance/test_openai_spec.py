"""Every request anyoai builds is validated by Prism against the official OpenAI spec, and every
response shape Prism generates from it is parsed.

The calls are a table: one entry per endpoint, each with the realistic calls users make. A new
endpoint is one new entry, and :func:`test_every_implemented_endpoint_has_calls` fails when an
endpoint that the resources implement has none ("implemented" is read off the resources).
"""

from __future__ import annotations

import base64
import collections
import enum
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest

import anyoai

from ..helpers import API_KEY
from .report import REPORT

pytestmark = pytest.mark.anyio

Call = Callable[[anyoai.Pool, Mapping[str, str]], Awaitable[Any]]


@attrs.frozen
class Row:
    """One realistic call: its name, and how to make it (given extra headers)."""

    name: str
    call: Call
    stream: bool = False


PNG_1x1 = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5d8a97e0000000049454e44ae426082"
    )
).decode()
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["answer", "confidence", "tags"],
    "additionalProperties": False,
}
CHAT = [
    {"role": "developer", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?", "name": "ada"},
]


class Unit(str, enum.Enum):
    """A temperature unit."""

    celsius = "celsius"
    fahrenheit = "fahrenheit"


@attrs.frozen
class Place:
    """A place."""

    city: str = attrs.field(metadata={"description": "The city, e.g. Paris."})
    country: str | None = None


@attrs.frozen
class GetWeather:
    """Get the current weather in a place."""

    place: Place
    unit: Unit = Unit.celsius
    days: int = 1
    hourly: bool = False


def get_time(timezone: str, twelve_hour: bool = False) -> str:
    """Get the current time in a time zone.

    :param timezone: An IANA time zone, e.g. Europe/Paris.
    """
    return timezone


@attrs.frozen
class Answer:
    """An answer with its evidence."""

    answer: str
    confidence: float
    kind: Literal["fact", "opinion"]
    sources: list[Place]
    scores: dict[str, int]
    note: str | int | None = None


async def _parse(pool: anyoai.Pool, h: Mapping[str, str]) -> Any:
    """``parse``: Prism validates the request; its generated content is prose or random data,
    not an :class:`Answer`, and that is reported as what it is (the request was accepted)."""
    try:
        return await pool.chat.completions.parse(
            model="gpt-4o-2024-08-06",
            messages=CHAT,
            response_format=Answer,
            tools=[GetWeather],
            extra_headers=h,
        )
    except (anyoai.StructuredOutputError, anyoai.LengthFinishReasonError) as exc:
        return exc.result  # the completion parsed; only its content is not an Answer


async def _tool_round_trip(pool: anyoai.Pool, h: Mapping[str, str]) -> Any:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'},
    }
    messages: list[Any] = [
        *CHAT,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ]
    return await pool.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[WEATHER], extra_headers=h
    )


async def _stream(pool: anyoai.Pool, h: Mapping[str, str]) -> Any:
    stream = await pool.chat.completions.create(
        model="gpt-4o-mini",
        messages=CHAT,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=h,
    )
    return await stream.get_final_completion()


TRAINING = b"".join(
    json.dumps(
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
    ).encode()
    + b"\n"
    for i in range(3)
)
BATCH_LINE = {
    "custom_id": "request-1",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {"model": "gpt-4o-mini", "messages": CHAT},
}


async def _file_from_storage(pool: anyoai.Pool, h: Mapping[str, str]) -> Any:
    url = "memory://conformance/batch-input.jsonl"
    await pool.storage.write(url, json.dumps(BATCH_LINE).encode() + b"\n")
    return await pool.files.create(
        file=url,
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
        extra_headers=h,
    )


async def _through_uploads(pool: anyoai.Pool, h: Mapping[str, str]) -> Any:
    """Above the threshold, ``files.create`` goes through the Uploads API; Prism's completed
    upload has no ``file`` (it is random or the example), which is reported for what it is."""
    try:
        return await pool.files.create(
            file=("big.jsonl", TRAINING),
            purpose="fine-tune",
            upload_threshold=64,
            part_size=100,
            extra_headers=h,
        )
    except anyoai.ResponseValidationError as exc:
        if exc.path != "$.file":
            raise
        return None


async def _content(pool: anyoai.Pool, h: Mapping[str, str]) -> bytes:
    async with await pool.files.content("file-abc123", extra_headers=h) as body:
        return b"".join([chunk async for chunk in body])


#: a moderation input in parts: a text and an image
MODERATION_PARTS: list[dict[str, Any]] = [
    {"type": "text", "text": "is this ok?"},
    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
]

ROWS: dict[str, list[Row]] = {
    "chat.completions.create": [
        Row(
            "plain",
            lambda p, h: p.chat.completions.create(
                model="gpt-4o-mini",
                messages=CHAT,
                temperature=0.2,
                top_p=0.9,
                max_completion_tokens=64,
                user="user-1",
                extra_headers=h,
            ),
        ),
        Row(
            "tools and tool_choice",
            lambda p, h: p.chat.completions.create(
                model="gpt-4o",
                messages=CHAT,
                tools=[WEATHER],
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
                parallel_tool_calls=False,
                extra_headers=h,
            ),
        ),
        Row("a tool call and its result sent back", _tool_round_trip),
        Row(
            "tools from an attrs class and a typed function",
            lambda p, h: p.chat.completions.create(
                model="gpt-4o",
                messages=CHAT,
                tools=[GetWeather, get_time, anyoai.tool(get_time, name="clock", strict=False)],
                tool_choice="auto",
                extra_headers=h,
            ),
        ),
        Row(
            "response_format from an attrs class",
            lambda p, h: p.chat.completions.create(
                model="gpt-4o-2024-08-06", messages=CHAT, response_format=Answer, extra_headers=h
            ),
        ),
        Row(
            "legacy functions with an attrs class as parameters",
            lambda p, h: p.chat.completions.create(
                model="gpt-3.5-turbo",
                messages=CHAT,
                functions=[
                    {"name": "get_weather", "description": "The weather", "parameters": GetWeather},
                    get_time,
                ],
                extra_headers=h,
            ),
        ),
        Row(
            "response_format json_schema",
            lambda p, h: p.chat.completions.create(
                model="gpt-4o-2024-08-06",
                messages=CHAT,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "Answer", "schema": SCHEMA, "strict": True},
                },
                extra_headers=h,
            ),
        ),
        Row(
            "response_format json_object",
            lambda p, h: p.chat.completions.create(
                model="gpt-4o-mini",
                messages=CHAT,
                response_format={"type": "json_object"},
                extra_headers=h,
            ),
        ),
        Row(
            "images in content parts",
            lambda p, h: p.chat.completions.create(
                model="gpt-4o",
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is in these images?"},
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://example.com/a.png", "detail": "low"},
                            },
                            {
                                "type": "image_url",
                                "image_url": {"url": f"data:image/png;base64,{PNG_1x1}"},
                            },
                        ],
                    }
                ],
                extra_headers=h,
            ),
        ),
        Row(
            "n, logprobs, stop list, penalties, seed",
            lambda p, h: p.chat.completions.create(
                model="gpt-4o-mini",
                messages=CHAT,
                n=3,
                logprobs=True,
                top_logprobs=5,
                stop=["\n\n", "END"],
                presence_penalty=0.5,
                frequency_penalty=0.2,
                logit_bias={"50256": -100},
                seed=42,
                service_tier="auto",
                extra_headers=h,
            ),
        ),
        Row(
            "legacy functions",
            lambda p, h: p.chat.completions.create(
                model="gpt-3.5-turbo",
                messages=CHAT,
                functions=[WEATHER["function"]],
                function_call={"name": "get_weather"},
                extra_headers=h,
            ),
        ),
        Row("stream with include_usage", _stream, stream=True),
    ],
    "chat.completions.parse": [Row("an attrs class, with tools", _parse)],
    "completions.create": [
        Row(
            "plain",
            lambda p, h: p.completions.create(
                model="gpt-3.5-turbo-instruct",
                prompt="Once upon a time",
                max_tokens=16,
                extra_headers=h,
            ),
        ),
        Row(
            "several prompts, n, logprobs, echo, stop",
            lambda p, h: p.completions.create(
                model="gpt-3.5-turbo-instruct",
                prompt=["Say this is a test", "And this"],
                n=2,
                logprobs=3,
                echo=True,
                stop=["\n"],
                temperature=0,
                suffix=" the end",
                extra_headers=h,
            ),
        ),
        Row(
            "token prompt",
            lambda p, h: p.completions.create(
                model="gpt-3.5-turbo-instruct", prompt=[1212, 318, 257, 1332], extra_headers=h
            ),
        ),
    ],
    "embeddings.create": [
        Row(
            "one text",
            lambda p, h: p.embeddings.create(
                model="text-embedding-3-small", input="hello world", extra_headers=h
            ),
        ),
        Row(
            "texts, base64, dimensions",
            lambda p, h: p.embeddings.create(
                model="text-embedding-3-large",
                input=["first", "second"],
                encoding_format="base64",
                dimensions=256,
                user="user-1",
                extra_headers=h,
            ),
        ),
        Row(
            "token arrays, float",
            lambda p, h: p.embeddings.create(
                model="text-embedding-ada-002",
                input=[[1, 2, 3], [4, 5]],
                encoding_format="float",
                extra_headers=h,
            ),
        ),
    ],
    "embeddings.create_many": [
        Row(
            # one input per request: Prism answers every request with one example vector
            "packed texts",
            lambda p, h: p.embeddings.create_many(
                ["alpha", "beta", "gamma"],
                model="text-embedding-3-small",
                batch_size=1,
                extra_headers=h,
            ),
        ),
    ],
    "models.list": [Row("all", lambda p, h: p.models.list(extra_headers=h))],
    "models.retrieve": [Row("one", lambda p, h: p.models.retrieve("gpt-4o-mini", extra_headers=h))],
    "models.delete": [
        Row(
            "fine-tuned",
            lambda p, h: p.models.delete("ft:gpt-4o-mini:acme:suffix:abc123", extra_headers=h),
        )
    ],
    "moderations.create": [
        Row("one text", lambda p, h: p.moderations.create(input="hello", extra_headers=h)),
        Row(
            "texts and a model",
            lambda p, h: p.moderations.create(
                input=["hello", "world"], model="omni-moderation-latest", extra_headers=h
            ),
        ),
        Row(
            "text and image parts",
            lambda p, h: p.moderations.create(
                input=MODERATION_PARTS,
                model="omni-moderation-latest",
                extra_headers=h,
            ),
        ),
    ],
    "files.create": [
        Row(
            "fine-tune JSONL as bytes",
            lambda p, h: p.files.create(
                file=("train.jsonl", TRAINING), purpose="fine-tune", extra_headers=h
            ),
        ),
        Row("batch input streamed from storage, with expires_after", _file_from_storage),
        Row("over the threshold: through the Uploads API", _through_uploads),
    ],
    "files.list": [
        Row(
            "first page, filtered",
            lambda p, h: p.files.list(purpose="batch", limit=2, order="desc", extra_headers=h),
        )
    ],
    "files.retrieve": [Row("one", lambda p, h: p.files.retrieve("file-abc123", extra_headers=h))],
    "files.delete": [Row("one", lambda p, h: p.files.delete("file-abc123", extra_headers=h))],
    "files.content": [Row("streamed", _content)],
    "files.download": [
        Row(
            "into storage",
            lambda p, h: p.files.download(
                "file-abc123", to="memory://conformance/out.jsonl", extra_headers=h
            ),
        )
    ],
    "uploads.create": [
        Row(
            "a JSONL file",
            lambda p, h: p.uploads.create(
                bytes=len(TRAINING),
                filename="train.jsonl",
                mime_type="application/jsonl",
                purpose="fine-tune",
                extra_headers=h,
            ),
        )
    ],
    "uploads.add_part": [
        Row("bytes", lambda p, h: p.uploads.add_part("upload_abc", data=TRAINING, extra_headers=h))
    ],
    "uploads.complete": [
        Row(
            "parts and md5",
            lambda p, h: p.uploads.complete(
                "upload_abc",
                part_ids=["part_1", "part_2"],
                md5="d41d8cd98f00b204e9800998ecf8427e",
                extra_headers=h,
            ),
        )
    ],
    "uploads.cancel": [Row("one", lambda p, h: p.uploads.cancel("upload_abc", extra_headers=h))],
    "uploads.upload_file_chunked": [
        Row(
            "three parts",
            lambda p, h: p.uploads.upload_file_chunked(
                file=TRAINING,
                filename="train.jsonl",
                purpose="fine-tune",
                part_size=len(TRAINING) // 3 + 1,
                extra_headers=h,
            ),
        )
    ],
    "batches.create": [
        Row(
            "chat completions with metadata",
            lambda p, h: p.batches.create(
                input_file_id="file-abc123",
                endpoint="/v1/chat/completions",
                metadata={"job": "nightly-eval"},
                extra_headers=h,
            ),
        ),
        Row(
            "embeddings",
            lambda p, h: p.batches.create(
                input_file_id="file-abc123",
                endpoint="/v1/embeddings",
                completion_window="24h",
                extra_headers=h,
            ),
        ),
    ],
    "batches.retrieve": [
        Row("one", lambda p, h: p.batches.retrieve("batch_abc123", extra_headers=h))
    ],
    "batches.cancel": [Row("one", lambda p, h: p.batches.cancel("batch_abc123", extra_headers=h))],
    "batches.list": [Row("first page", lambda p, h: p.batches.list(limit=5, extra_headers=h))],
}

#: implemented endpoints made of others, each of which has rows above, and why they have no
#: rows of their own against Prism
COMPOSITE = {
    "batches.wait": "polls batches.retrieve; Prism's batch never leaves 'validating'",
    "batches.results": "files.content parsed as JSONL; Prism's file content is one JSON string",
    "batches.run": "files.create, batches.create, wait and results; run end to end against the "
    "fake server (tests/test_batches.py) and with storage emulators (tests/storage)",
}

#: implemented endpoints the official spec does not have, and why
NOT_IN_SPEC = {
    "edits.create": "OpenAI retired /edits in January 2024; the spec no longer describes it",
}

#: the spec path and method of each endpoint, for the documented error responses
SPEC_OPERATIONS = {
    "chat.completions.create": ("/chat/completions", "post"),
    "chat.completions.parse": ("/chat/completions", "post"),
    "completions.create": ("/completions", "post"),
    "embeddings.create": ("/embeddings", "post"),
    "embeddings.create_many": ("/embeddings", "post"),
    "models.list": ("/models", "get"),
    "models.retrieve": ("/models/{model}", "get"),
    "models.delete": ("/models/{model}", "delete"),
    "moderations.create": ("/moderations", "post"),
    "files.create": ("/files", "post"),
    "files.list": ("/files", "get"),
    "files.retrieve": ("/files/{file_id}", "get"),
    "files.delete": ("/files/{file_id}", "delete"),
    "files.content": ("/files/{file_id}/content", "get"),
    "files.download": ("/files/{file_id}/content", "get"),
    "uploads.create": ("/uploads", "post"),
    "uploads.add_part": ("/uploads/{upload_id}/parts", "post"),
    "uploads.complete": ("/uploads/{upload_id}/complete", "post"),
    "uploads.cancel": ("/uploads/{upload_id}/cancel", "post"),
    "uploads.upload_file_chunked": ("/uploads", "post"),
    "batches.create": ("/batches", "post"),
    "batches.list": ("/batches", "get"),
    "batches.retrieve": ("/batches/{batch_id}", "get"),
    "batches.cancel": ("/batches/{batch_id}/cancel", "post"),
}

SEEDS = range(1, 21)

_PASSED_CALLS: dict[str, set[str]] = collections.defaultdict(set)


def _is_endpoint(method: Any) -> bool:
    """A coroutine method, or one returning a pager (``files.list``)."""
    if inspect.iscoroutinefunction(method):
        return True
    returns = getattr(method, "__annotations__", {}).get("return")
    return "AsyncPager" in str(returns)


def implemented_endpoints(pool: anyoai.Pool) -> set[str]:
    """The public async methods of the pool's resources (and those returning a pager), as
    ``"chat.completions.create"``."""
    found: set[str] = set()

    def walk(obj: Any, prefix: str) -> None:
        for name in dir(obj):
            if name.startswith("_"):
                continue
            value = getattr(obj, name)
            if prefix and _is_endpoint(value):
                found.add(f"{prefix}{name}")
            elif type(value).__module__.startswith("anyoai.resources"):
                walk(value, f"{prefix}{name}.")

    walk(pool, "")
    return found


async def test_every_implemented_endpoint_has_calls() -> None:
    # opening a pool sends nothing: this one only lends its resources to be inspected
    async with anyoai.open_pool(api_key=API_KEY, base_url="http://127.0.0.1:9/v1") as pool:
        implemented = implemented_endpoints(pool)
    assert {"chat.completions.create", "files.list"} <= implemented  # the walk itself works
    missing = implemented - set(ROWS) - set(NOT_IN_SPEC) - set(COMPOSITE)
    assert not missing, f"endpoints without conformance calls: {sorted(missing)}"
    known = set(ROWS) | set(COMPOSITE)
    assert known <= implemented, f"calls for unknown endpoints: {known - implemented}"
    for endpoint, reason in NOT_IN_SPEC.items():
        REPORT.record(endpoint, "request", f"n/a: {reason}")
    for endpoint, reason in COMPOSITE.items():
        REPORT.record(endpoint, "request", f"composite: {reason}")


def _all_rows() -> list[Any]:
    return [
        pytest.param(endpoint, row, id=f"{endpoint}[{row.name}]")
        for endpoint, rows in ROWS.items()
        for row in rows
    ]


def _stream_refused_by_prism(error: BaseException) -> bool:
    """Prism validates a streamed request, then cannot produce an event stream (500
    NO_COMPLEX_OBJECT_TEXT): that 500 means the request itself was accepted."""
    return isinstance(error, anyoai.InternalServerError) and "NO_COMPLEX_OBJECT_TEXT" in str(
        error.body
    )


@pytest.mark.parametrize(("endpoint", "row"), _all_rows())
async def test_request_is_valid_and_static_response_parses(
    prism_openai: str, endpoint: str, row: Row
) -> None:
    async with anyoai.open_pool(api_key=API_KEY, base_url=prism_openai, max_retries=0) as pool:
        try:
            await row.call(pool, {})
        except anyoai.UnprocessableEntityError as exc:
            REPORT.record(endpoint, "request", f"FAIL ({row.name})")
            pytest.fail(
                f"Prism refused {endpoint} [{row.name}]:\n{exc.message}\n"
                f"{json.dumps(exc.body, indent=2)}"
            )
        except anyoai.InternalServerError as exc:
            if not (row.stream and _stream_refused_by_prism(exc)):
                raise
            REPORT.record(endpoint, "stream request", "ok (no SSE from Prism)")
            return
    _PASSED_CALLS[endpoint].add(row.name)
    if not REPORT.rows[endpoint].get("request", "").startswith("FAIL"):
        REPORT.record(endpoint, "request", f"ok ({len(_PASSED_CALLS[endpoint])} calls)")
    REPORT.record(endpoint, "static response", "ok")


#: endpoints whose answers are checked through another: create_many refuses a batch whose
#: vector count differs from its input count, which random mock data always does; parse gets
#: the answers of create, and random content is not the requested class
DYNAMIC_THROUGH = {
    "embeddings.create_many": "embeddings.create",
    "chat.completions.parse": "chat.completions.create",
}


@pytest.mark.parametrize("endpoint", sorted(set(ROWS) - set(DYNAMIC_THROUGH)))
async def test_dynamic_responses_always_parse(prism_openai: str, endpoint: str) -> None:
    """Prism's dynamic mode generates schema-valid, often strange bodies: anyoai must structure
    every one (a failure is a bug in anyoai's models)."""
    row = next(r for r in ROWS[endpoint] if not r.stream)
    async with anyoai.open_pool(api_key=API_KEY, base_url=prism_openai, max_retries=0) as pool:
        for seed in SEEDS:
            headers = {"Prefer": f"dynamic=true, seed={seed}"}
            try:
                await row.call(pool, headers)
            except anyoai.ContentFilterError:
                pass  # a generated finish_reason of "content_filter": raised by design
            except Exception as exc:
                REPORT.record(endpoint, "dynamic responses", f"FAIL (seed {seed})")
                raise AssertionError(f"{endpoint} failed on dynamic seed {seed}: {exc!r}") from exc
    REPORT.record(endpoint, "dynamic responses", f"ok ({len(SEEDS)} seeds)")
    for other, through in DYNAMIC_THROUGH.items():
        if through == endpoint:
            REPORT.record(other, "dynamic responses", f"ok (as {through})")


def _documented_errors() -> list[Any]:
    import os

    spec_path = os.environ.get("ANYOAI_OPENAI_SPEC")
    if not spec_path:
        return [pytest.param(None, None, id="no-spec")]
    spec = json.loads(Path(spec_path).read_text())
    cases = []
    for endpoint, (path, method) in SPEC_OPERATIONS.items():
        for code in spec["paths"][path][method]["responses"]:
            if code.isdigit() and int(code) >= 400:
                cases.append(pytest.param(endpoint, int(code), id=f"{endpoint}-{code}"))
    return cases


ERROR_CLASSES: dict[int, type[anyoai.APIStatusError]] = {
    400: anyoai.BadRequestError,
    401: anyoai.AuthenticationError,
    403: anyoai.PermissionDeniedError,
    404: anyoai.NotFoundError,
    409: anyoai.ConflictError,
    422: anyoai.UnprocessableEntityError,
    429: anyoai.RateLimitError,
}


@pytest.mark.parametrize(("endpoint", "status"), _documented_errors())
async def test_documented_errors_map_to_typed_errors(
    prism_openai: str, endpoint: str, status: int
) -> None:
    if endpoint is None:
        pytest.skip("set ANYOAI_OPENAI_SPEC to the official OpenAI spec")
    row = next(r for r in ROWS[endpoint] if not r.stream)
    async with anyoai.open_pool(api_key=API_KEY, base_url=prism_openai, max_retries=0) as pool:
        with pytest.raises(anyoai.APIStatusError) as info:
            await row.call(pool, {"Prefer": f"code={status}"})
    error = info.value
    assert type(error) is ERROR_CLASSES.get(status, anyoai.InternalServerError)
    assert error.status_code == status
    if status == 429:
        assert error.retry_after is not None and error.retry_after >= 1
        assert isinstance(error.body, dict) and "error" in error.body
    REPORT.record(endpoint, "errors", f"ok ({status})")


async def test_the_validator_is_live(prism_openai: str) -> None:
    """A deliberately wrong request is refused: the checks above are not passing vacuously."""
    async with anyoai.open_pool(api_key=API_KEY, base_url=prism_openai, max_retries=0) as pool:
        with pytest.raises(anyoai.UnprocessableEntityError) as info:
            # anyoai would refuse messages="..." itself; extra_body sends it anyway
            await pool.chat.completions.create(
                model="gpt-4o-mini", messages=CHAT, extra_body={"messages": "hello"}
            )
        assert "messages" in str(info.value)
        assert info.value.param == "messages"
        with pytest.raises(anyoai.UnprocessableEntityError):
            await pool.embeddings.create(
                model="text-embedding-3-small", input="x", extra_body={"input": {"bad": 1}}
            )
        # multipart bodies are validated too
        with pytest.raises(anyoai.UnprocessableEntityError) as info:
            await pool.files.create(file=("a.jsonl", b"{}\n"), purpose="nonsense")
        assert "purpose" in str(info.value)
    REPORT.record("(validator)", "request", "ok: wrong requests are refused")
