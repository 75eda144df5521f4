"""Errors: every status to its class, broken and malformed answers, and secrets never shown."""

from __future__ import annotations

import pytest

import anyoai
from anyoai.testing import FakeServer, Fault

from .helpers import API_KEY, HELLO

pytestmark = pytest.mark.anyio


STATUS_CLASSES = [
    (400, anyoai.BadRequestError),
    (401, anyoai.AuthenticationError),
    (403, anyoai.PermissionDeniedError),
    (404, anyoai.NotFoundError),
    (409, anyoai.ConflictError),
    (422, anyoai.UnprocessableEntityError),
    (429, anyoai.RateLimitError),
    (500, anyoai.InternalServerError),
    (503, anyoai.InternalServerError),
    (418, anyoai.APIStatusError),
]


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
async def test_each_status_maps_to_its_class(
    pool: anyoai.Pool, server: FakeServer, status: int, cls: type[anyoai.APIStatusError]
) -> None:
    server.add_fault(Fault(status=status, code="some_code", message="went wrong", times=3))
    with pytest.raises(cls) as info:
        await pool.chat.completions.create(model="m", messages=HELLO, max_retries=0)
    error = info.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.code == "some_code"
    assert error.message and "went wrong" in error.message
    assert error.request_id is not None and error.request_id in str(error)
    assert error.backend == "default"
    assert isinstance(error.body, dict) and error.body["error"]["message"] == "went wrong"
    assert error.headers["x-request-id"] == error.request_id


async def test_content_filter_code_is_its_own_class(pool: anyoai.Pool, server: FakeServer) -> None:
    server.add_fault(Fault(status=400, code="content_filter"))
    with pytest.raises(anyoai.ContentFilterError) as info:
        await pool.chat.completions.create(model="m", messages=HELLO)
    assert isinstance(info.value, anyoai.BadRequestError)


async def test_server_side_validation_error_names_the_param(pool: anyoai.Pool) -> None:
    with pytest.raises(anyoai.BadRequestError) as info:
        await pool.chat.completions.create(
            model="m", messages=[{"role": "user"}], extra_body={"messages": 5}
        )
    assert info.value.param == "messages"


async def test_wrong_key_is_401_and_the_key_never_shows(server: FakeServer) -> None:
    wrong = "sk-wrong-key-that-must-not-leak-9876543210"
    async with anyoai.open_pool(api_key=wrong, base_url=server.url) as pool:
        with pytest.raises(anyoai.AuthenticationError) as info:
            await pool.models.list()
    error = info.value
    assert error.code == "invalid_api_key"
    for text in (str(error), repr(error), repr(error.body), repr(error.__dict__)):
        assert wrong not in text


async def test_key_echoed_by_a_server_is_redacted(pool: anyoai.Pool, server: FakeServer) -> None:
    server.add_fault(Fault(status=400, message=f"bad request for key {API_KEY}"))
    with pytest.raises(anyoai.BadRequestError) as info:
        await pool.chat.completions.create(model="m", messages=HELLO)
    assert API_KEY not in str(info.value)
    assert API_KEY not in repr(info.value.body)
    assert "TAIL" in str(info.value)


async def test_key_masked_in_pool_repr(pool: anyoai.Pool) -> None:
    assert API_KEY not in repr(pool)
    assert API_KEY not in repr(pool.settings)
    assert API_KEY not in repr(pool.backends)
    assert "TAIL" in repr(pool)


async def test_key_never_in_logs(server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool:
        server.add_fault(Fault(status=503, times=1))
        await pool.chat.completions.create(model="m", messages=HELLO)
        await pool.models.list()
    assert caplog.records, "expected debug and retry log lines"
    assert all(API_KEY not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("drop", ["before_headers", "mid_body"])
async def test_dropped_connection_is_a_connection_error(
    pool: anyoai.Pool, server: FakeServer, drop: str
) -> None:
    server.add_fault(Fault(drop=drop, times=10))  # type: ignore[arg-type]
    with pytest.raises(anyoai.APIConnectionError):
        await pool.chat.completions.create(model="m", messages=HELLO, max_retries=1)
    assert len(server.requests) == 2  # the first attempt and one retry
    assert pool.statistics().in_use == 0


async def test_connection_dropped_mid_stream_raises_and_does_not_hang(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    server.add_fault(Fault(drop="mid_stream", after_events=3))
    received = []
    with pytest.raises(anyoai.APIConnectionError):
        async with await pool.chat.completions.create(model="m", messages=HELLO, stream=True) as s:
            async for chunk in s:
                received.append(chunk)
    assert len(received) == 3
    assert len(server.requests) == 1  # a stream is never retried after its first event
    assert pool.statistics().in_use == 0
    assert (await pool.chat.completions.create(model="m", messages=HELLO)).text


async def test_error_event_in_a_stream(pool: anyoai.Pool, server: FakeServer) -> None:
    server.add_fault(Fault(error_event=True, after_events=2))
    with pytest.raises(anyoai.StreamError) as info:
        async with await pool.chat.completions.create(model="m", messages=HELLO, stream=True) as s:
            async for _ in s:
                pass
    assert info.value.code == "stream_error"
    assert pool.statistics().in_use == 0


async def test_error_status_on_a_stream_request_raises_at_create(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    server.add_fault(Fault(status=401, code="invalid_api_key"))
    with pytest.raises(anyoai.AuthenticationError):
        await pool.chat.completions.create(model="m", messages=HELLO, stream=True)


@pytest.mark.parametrize("stream", [False, True])
async def test_malformed_json_is_a_validation_error(
    pool: anyoai.Pool, server: FakeServer, stream: bool
) -> None:
    server.add_fault(Fault(malformed=True))
    with pytest.raises(anyoai.ResponseValidationError):
        if stream:
            async with await pool.chat.completions.create(
                model="m", messages=HELLO, stream=True
            ) as s:
                async for _ in s:
                    pass
        else:
            await pool.chat.completions.create(model="m", messages=HELLO)
    assert pool.statistics().in_use == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": {}}',
        b'{"choices": [{"message": {"content": "hi"}}]}',
        b"[]",
        b"null",
        b"",
        b"<html>502 Bad Gateway</html>",
    ],
)
async def test_wrong_shapes_never_leak_raw_exceptions(
    pool: anyoai.Pool, server: FakeServer, body: bytes
) -> None:
    server.add_fault(Fault(status=200, body=body, headers={"content-type": "application/json"}))
    with pytest.raises(anyoai.APIError) as info:
        await pool.chat.completions.create(model="m", messages=HELLO)
    assert isinstance(info.value, anyoai.ResponseValidationError)


async def test_error_body_that_is_not_json(pool: anyoai.Pool, server: FakeServer) -> None:
    server.add_fault(Fault(status=502, body=b"<html>Bad Gateway</html>", times=5))
    with pytest.raises(anyoai.InternalServerError) as info:
        await pool.chat.completions.create(model="m", messages=HELLO, max_retries=0)
    assert "Bad Gateway" in str(info.value)
    assert info.value.code is None


async def test_timeout_is_api_timeout_error(pool: anyoai.Pool, server: FakeServer) -> None:
    server.add_fault(Fault(latency=30, times=5))
    with pytest.raises(anyoai.APITimeoutError):
        await pool.chat.completions.create(model="m", messages=HELLO, timeout=0.2, max_retries=0)
    assert pool.statistics().in_use == 0


async def test_connection_refused_is_a_connection_error() -> None:
    import socket

    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with anyoai.open_pool(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1") as pool:
        with pytest.raises(anyoai.APIConnectionError) as info:
            await pool.models.list(max_retries=0)
    assert info.value.backend == "default"


def _sse(*events: str) -> bytes:
    return "".join(f"data: {e}\n\n" for e in events).encode()


CHUNK = (
    '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    '"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":%s}]}'
)


async def test_a_stream_cut_short_without_done_raises(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    """A body that ends before [DONE] and before any finish_reason was truncated: say so."""
    sse = {"content-type": "text/event-stream"}
    server.add_fault(Fault(status=200, body=_sse(CHUNK % "null"), headers=sse))
    stream = await pool.chat.completions.create(model="m", messages=HELLO, stream=True)
    with pytest.raises(anyoai.APIConnectionError, match="cut it short"):
        await stream.get_final_completion()
    # a server that omits [DONE] but finishes every choice is fine
    server.add_fault(Fault(status=200, body=_sse(CHUNK % '"stop"'), headers=sse))
    stream = await pool.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert (await stream.get_final_completion()).text == "hi"
    assert pool.statistics().in_use == 0
