"""The transport against a server that misbehaves byte by byte (``server.FaultServer``).

Every test speaks real HTTP on loopback, under asyncio and trio, and ends in a typed error (an
``anyoai.AnyoaiError``) within the configured bound, or in a success; never in a hang (each runs
under ``anyio.fail_after``, with a generous margin). None leaks: at the end, no request holds a
connection or an in-flight slot, and every connection still open is idle (:func:`at_rest`).

Which timeout fires: the read timeout bounds each wait for the next byte, so a server that stops
sending (never answers; one chunk, then nothing) trips it; a slow-loris server that keeps sending
a byte at a time never lets a read wait that long, and only the total timeout stops it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import anyoai

from .server import (
    CHAT_COMPLETION,
    Close,
    FaultServer,
    Hold,
    Raw,
    Respond,
    chat_chunk,
    close_mid_body,
    close_mid_headers,
    close_mid_stream,
    oversized,
    sse,
    sse_flood,
    status,
)

pytestmark = pytest.mark.anyio

HELLO = [{"role": "user", "content": "hi"}]
MARGIN = 5.0  # seconds allowed beyond the configured bound before a test counts as a hang
#: the timeouts of most tests: short reads, a total that is not the one expected to fire
TIMEOUT = anyoai.Timeout(connect=2.0, read=0.3, write=2.0, pool=2.0, total=5.0)
MODELS = b'{"object": "list", "data": [{"id": "m", "object": "model", "created": 1}]}'


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with FaultServer() as fault_server:
        yield fault_server


@contextlib.asynccontextmanager
async def opened(server: FaultServer, **options: Any) -> AsyncIterator[anyoai.Pool]:
    """A pool on *server*: no retries and :data:`TIMEOUT` unless told otherwise; at rest at
    the end."""
    options = {"max_retries": 0, "timeout": TIMEOUT, **options}
    async with anyoai.open_pool(api_key="sk-test", base_url=server.url + "/v1", **options) as pool:
        yield pool
        at_rest(pool)


def at_rest(pool: anyoai.Pool) -> None:
    """Nothing leaked: no request holds a connection or a slot; open connections are idle."""
    stats = pool.statistics()
    assert (stats.in_use, stats.waiting, pool.limits.in_flight) == (0, 0, 0), stats
    assert stats.connections == stats.idle, stats


async def chat(pool: anyoai.Pool, **options: Any) -> Any:
    return await pool.chat.completions.create(model="m", messages=HELLO, **options)


async def failure(pool: anyoai.Pool, bound: float, **options: Any) -> anyoai.AnyoaiError:
    """The typed error a chat call ends in, within *bound* seconds (plus the margin)."""
    with anyio.fail_after(bound + MARGIN):
        with pytest.raises(anyoai.AnyoaiError) as info:
            await chat(pool, **options)
    return info.value


# ------------------------------------------------------------------ the connection drops


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_closed_before_any_response(server: FaultServer, reset: bool) -> None:
    server.script(Close(reset=reset))
    async with opened(server) as pool:
        error = await failure(pool, TIMEOUT.read or 0)
        assert type(error) is anyoai.APIConnectionError
        assert error.request_sent
        assert len(server.requests) == 1
        assert pool.statistics().connections == 0  # the broken one was not kept


async def test_closed_mid_headers(server: FaultServer) -> None:
    server.script(close_mid_headers())
    async with opened(server) as pool:
        error = await failure(pool, TIMEOUT.read or 0)
        assert type(error) is anyoai.APIConnectionError
        assert len(server.requests) == 1


async def test_closed_mid_body(server: FaultServer) -> None:
    server.script(close_mid_body())
    async with opened(server) as pool:
        error = await failure(pool, TIMEOUT.read or 0)
        assert type(error) is anyoai.APIConnectionError
        assert "incomplete" in str(error) or "complete message body" in str(error)
        assert pool.statistics().connections == 0
        assert (await chat(pool)).text == "ok"  # a new connection, which works


async def test_closed_mid_stream_surfaces_while_iterating(server: FaultServer) -> None:
    server.script(close_mid_stream(chunks=3))
    texts: list[str] = []
    async with opened(server) as pool:
        with anyio.fail_after(MARGIN):
            stream = await chat(pool, stream=True)
            with pytest.raises(anyoai.APIConnectionError):
                async with stream:
                    async for chunk in stream:
                        texts.append(chunk.choices[0].delta.content)
        assert texts == ["w0 ", "w1 ", "w2 "]  # what arrived before the cut was delivered
        assert pool.statistics().connections == 0


# ------------------------------------------------------------------ the server stalls


async def test_never_answers_trips_the_read_timeout(server: FaultServer) -> None:
    server.script(Hold())
    async with opened(server) as pool:
        error = await failure(pool, TIMEOUT.read or 0)
        assert type(error) is anyoai.APITimeoutError
        assert "ReadTimeout" in str(error)
        assert len(server.requests) == 1


async def test_a_caller_who_gives_up_on_a_silent_server_leaks_nothing(server: FaultServer) -> None:
    server.script(Hold())
    async with opened(server, timeout=None) as pool:
        with anyio.fail_after(MARGIN), anyio.move_on_after(0.2) as scope:
            await chat(pool)
        assert scope.cancelled_caught
        assert pool.statistics().connections == 0


async def test_one_chunk_then_a_stall_trips_the_read_timeout(server: FaultServer) -> None:
    server.script(Respond(body=CHAT_COMPLETION[:20], framing="chunked", end="stall"))
    async with opened(server) as pool:
        error = await failure(pool, TIMEOUT.read or 0)
        assert type(error) is anyoai.APITimeoutError
        assert "ReadTimeout" in str(error)


async def test_a_stream_that_stalls_trips_the_read_timeout_while_iterating(
    server: FaultServer,
) -> None:
    """For a stream the total timeout ends with the head; the read timeout guards the rest."""
    stalled = Respond(body=sse(1, done=False), headers=(), framing="chunked", end="stall")
    server.script(stalled)
    texts: list[str] = []
    async with opened(server) as pool:
        with anyio.fail_after((TIMEOUT.read or 0) + MARGIN):
            stream = await chat(pool, stream=True)
            with pytest.raises(anyoai.APITimeoutError, match="ReadTimeout"):
                async with stream:
                    async for chunk in stream:
                        texts.append(chunk.choices[0].delta.content)
        assert texts == ["w0 "]


@pytest.mark.parametrize("part", ["head", "body"])
async def test_slow_loris_is_stopped_by_the_total_timeout(server: FaultServer, part: str) -> None:
    """A byte every 50 ms: no read ever waits the read timeout (1 s), so only the total
    timeout (0.5 s) can stop it."""
    pace = {f"{part}_pace": 0.05}
    server.script(Respond(**pace))  # type: ignore[arg-type]
    timeout = anyoai.Timeout(connect=2.0, read=1.0, write=2.0, pool=2.0, total=0.5)
    async with opened(server, timeout=timeout) as pool:
        error = await failure(pool, 0.5)
        assert type(error) is anyoai.APITimeoutError
        assert "total timeout" in str(error)


# ------------------------------------------------------------------ answers that are wrong


async def test_a_502_with_an_html_body(server: FaultServer) -> None:
    html = Respond(status=502, body=b"<html><h1>502 Bad Gateway</h1></html>", headers=())
    server.script(html)
    async with opened(server) as pool:
        error = await failure(pool, 0)
        assert type(error) is anyoai.InternalServerError
        assert error.status_code == 502
        assert len(server.requests) == 1  # max_retries=0: one request

    server.script(html, html, html)
    async with opened(server, max_retries=2) as pool:
        error = await failure(pool, 0)
        assert type(error) is anyoai.InternalServerError
        assert len(server.requests) == 1 + 3  # retried per policy, then given up


@pytest.mark.parametrize(
    "body",
    [b'{"id": "chatcmpl-1", "choices": [', b"\xff\xfe\x80 not utf-8 \xc3\x28"],
    ids=["invalid-json", "non-utf8"],
)
async def test_a_200_whose_body_is_not_json(server: FaultServer, body: bytes) -> None:
    server.script(Respond(body=body))
    async with opened(server) as pool:
        error = await failure(pool, 0)
        assert type(error) is anyoai.ResponseValidationError
        assert (await chat(pool)).text == "ok"  # the connection was read whole: reused
        assert server.connections == 1


@pytest.mark.parametrize("failures", [1, 2, 3])
async def test_500s_then_a_200(server: FaultServer, failures: int) -> None:
    server.script(*[status(500)] * failures)
    async with opened(server, max_retries=2) as pool:
        if failures <= 2:
            with anyio.fail_after(MARGIN):
                result = await chat(pool)
            assert result.text == "ok"
            assert result.attempts == failures + 1
        else:
            error = await failure(pool, 0)
            assert type(error) is anyoai.InternalServerError
        keys = {request.headers["idempotency-key"] for request in server.requests}
        assert len(keys) == 1  # every attempt is the same request
        assert len(server.requests) == min(failures + 1, 3)


async def test_a_429_with_retry_after_ms(server: FaultServer) -> None:
    server.script(status(429, ("retry-after-ms", "20")))
    async with opened(server) as pool:
        error = await failure(pool, 0)
        assert type(error) is anyoai.RateLimitError
        assert error.retry_after == pytest.approx(0.02)
    server.script(status(429, ("retry-after-ms", "20")))
    async with opened(server, max_retries=1) as pool:
        assert (await chat(pool)).attempts == 2


# ------------------------------------------------------------------ a POST is sent once


async def test_a_post_on_a_reused_connection_that_closes_unanswered_is_not_resent(
    server: FaultServer,
) -> None:
    """The server read the POST, then closed: it may have acted on it, so the transport does
    not send it again by itself. The caller gets an APIConnectionError (max_retries=0), or the
    retry policy resends it with the same Idempotency-Key (max_retries=1)."""
    async with opened(server) as pool:
        await chat(pool)  # a keep-alive connection, now idle
        server.script(Close())
        error = await failure(pool, TIMEOUT.read or 0)
        assert type(error) is anyoai.APIConnectionError
        assert error.request_sent
        assert [r.method for r in server.requests] == ["POST", "POST"]  # sent exactly once

    server.requests.clear()
    async with opened(server, max_retries=1) as pool:
        await chat(pool)
        server.script(Close())
        with anyio.fail_after(MARGIN):
            result = await chat(pool)
        assert result.attempts == 2
        first, second = server.requests[1:]
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
        assert len(server.requests) == 3


async def test_a_get_on_a_reused_connection_that_closes_unanswered_is_resent(
    server: FaultServer,
) -> None:
    """A safe method may be sent again at once: that is no retry (attempts == 1)."""
    models = Respond(body=MODELS)
    server.script(models, Close(), models)
    async with opened(server) as pool:
        await pool.models.list()
        with anyio.fail_after(MARGIN):
            listed = await pool.models.list()
        assert [model.id for model in listed] == ["m"]
        assert listed.attempts == 1
        assert [r.connection for r in server.requests] == [1, 1, 2]


async def test_a_post_whose_write_failed_is_resent_on_a_new_connection(
    server: FaultServer,
) -> None:
    """The server reset a reused connection after the head of a 16 MB POST: the body could
    not be written, so the request never reached the server whole, and it goes once more on
    a new connection, with no retry spent."""
    server.script(Respond(), Close(reset=True, after_head=True))
    big = [{"role": "user", "content": "x" * (16 << 20)}]
    async with opened(server) as pool:
        await chat(pool)
        with anyio.fail_after(MARGIN):
            result = await pool.chat.completions.create(model="m", messages=big)
        assert result.attempts == 1
        assert [r.connection for r in server.requests] == [1, 1, 2]
        assert len(server.requests[2].body) > 16 << 20


# ------------------------------------------------------------------ bodies too large


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_max_response_bytes_is_refused(
    server: FaultServer, chunked: bool
) -> None:
    server.script(oversized(3 << 20, chunked=chunked))
    async with opened(server, max_response_bytes=1 << 20) as pool:
        error = await failure(pool, 0)
        assert type(error) is anyoai.ResponseValidationError
        assert "max_response_bytes" in str(error)
        assert "1048576" in str(error)
        assert pool.statistics().connections == 0  # closed, not kept idle
        assert (await chat(pool)).text == "ok"
        assert server.connections == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "lots"])
async def test_max_response_bytes_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(anyoai.ConfigurationError, match="max_response_bytes"):
        async with anyoai.open_pool(api_key="sk-test", max_response_bytes=bad):  # type: ignore[arg-type]
            pass


# ------------------------------------------------------------------ data that is already there


async def test_a_flood_of_events_lets_deadlines_fire_and_other_tasks_run() -> None:
    """200,000 events from a server in another process, as fast as it can send them, so the
    client finds data ready at every read: a deadline around the loop still fires, and a task
    that sleeps 10 ms at a time still runs (before the fix: 0 ticks, the loop read everything)."""
    server = FaultServer(process=True)
    server.script(sse_flood(200_000))
    received = ticks = 0
    reading = True

    async def heartbeat() -> None:
        nonlocal ticks
        while reading:
            await anyio.sleep(0.01)
            ticks += 1

    async with server, opened(server) as pool, anyio.create_task_group() as group:
        with anyio.fail_after(1.0 + MARGIN):
            async with await chat(pool, stream=True) as stream:
                group.start_soon(heartbeat)
                with anyio.move_on_after(1.0) as scope:
                    async for _chunk in stream:
                        received += 1
        reading = False
    assert scope.cancelled_caught
    assert 0 < received < 200_000  # stopped early, not after reading everything
    assert ticks >= 10


async def test_a_200_mb_body_lets_the_total_timeout_fire() -> None:
    """200 MB sent as fast as the client reads (about 0.3 s whole, here): the total timeout,
    a sixth of that, fires while every read finds data ready."""
    server = FaultServer(process=True)
    server.script(oversized(200 << 20))
    timeout = anyoai.Timeout(connect=2.0, read=2.0, write=2.0, pool=2.0, total=0.05)
    async with server, opened(server, timeout=timeout) as pool:
        start = anyio.current_time()
        error = await failure(pool, 0.05)
        assert anyio.current_time() - start < 10
        assert type(error) is anyoai.APITimeoutError
        assert "total timeout" in str(error)
        assert pool.statistics().connections == 0


async def test_a_server_that_sends_raw_bytes(server: FaultServer) -> None:
    """A hand-written response, byte for byte, and an SSE body given as bytes."""
    length = len(CHAT_COMPLETION)
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n"
    server.script(Raw(head.encode() + b"\r\n" + CHAT_COMPLETION, end="keep"))
    events = chat_chunk("a") + chat_chunk(finish_reason="stop") + b"data: [DONE]\n\n"
    server.script(Respond(body=events, headers=(("content-type", "text/event-stream"),)))
    async with opened(server) as pool:
        assert (await chat(pool)).text == "ok"
        async with await chat(pool, stream=True) as stream:
            assert [c.choices[0].delta.content async for c in stream] == ["a", None]
        assert server.connections == 1
