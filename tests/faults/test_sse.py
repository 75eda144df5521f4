"""Server-sent events through the wire: every edge case of the format, one byte per chunk.

A tiny HTTP/1.1 server on loopback (in the test's own event loop, asyncio or trio) answers each
request with a scripted body, chunk-encoded with one byte per HTTP chunk: h11 hands each HTTP
chunk to the client as its own piece, so the SSE decoder is fed one byte at a time, whatever TCP
does with the segments. Every test ends in a typed error or a success, and checks that nothing
leaked: no connection in use, no in-flight slot held, and an idle connection only when the body
was read to its end.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.abc
import pytest

import anyoai

from ..helpers import API_KEY, HELLO, wait_for

pytestmark = pytest.mark.anyio

_GONE = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.IncompleteRead,
    OSError,
)


# ------------------------------------------------------------------------- the tiny server


@dataclass
class Reply:
    """One scripted answer: a 200 ``text/event-stream`` whose body is chunk-encoded.

    :ivar body: the body, or a callable making its pieces (sent as they are made).
    :ivar piece: bytes per HTTP chunk when *body* is bytes (1: one byte per chunk).
    :ivar end: ``"done"``: the last chunk is sent, the connection stays open; ``"cut"``: the
        message is left unfinished and the connection closed.
    """

    body: bytes | Callable[[], Iterable[bytes]]
    piece: int = 1
    end: Literal["done", "cut"] = "done"

    def pieces(self) -> Iterator[bytes]:
        if callable(self.body):
            yield from self.body()
            return
        body, size = self.body, self.piece
        for start in range(0, len(body), size):
            yield body[start : start + size]


HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\nx-request-id: req-sse\r\n\r\n"
)


class SSEServer:
    """Answers each request with the next :class:`Reply` (a plain chat stream if none)."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.port = 0
        self.accepted = 0
        #: connections the client closed (or reset) while the server was on them
        self.dropped_by_client = 0
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        self.accepted += 1
        buffer = b""
        async with stream:
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        buffer += await stream.receive()
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buffer) < length:
                        buffer += await stream.receive()
                    buffer = buffer[length:]
                    self.requests += 1
                    reply = self.replies.popleft() if self.replies else Reply(stream_body())
                    await stream.send(HEAD)
                    batch: list[bytes] = []
                    size = 0
                    for piece in reply.pieces():
                        batch.append(b"%x\r\n%s\r\n" % (len(piece), piece))
                        size += len(piece)
                        if size >= 65536:
                            await stream.send(b"".join(batch))
                            batch, size = [], 0
                    if reply.end == "done":
                        batch.append(b"0\r\n\r\n")
                    await stream.send(b"".join(batch))
                    if reply.end == "cut":
                        return
            except _GONE:
                self.dropped_by_client += 1


@pytest.fixture
async def sse_server() -> AsyncIterator[SSEServer]:
    server = SSEServer()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, server.handle)
        yield server
        group.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def pool_for(server: SSEServer, **options: Any) -> AsyncIterator[anyoai.Pool]:
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, max_retries=0, **options
    ) as pool:
        yield pool


def assert_released(pool: anyoai.Pool, *, idle: int) -> None:
    """No connection in use, no slot held; *idle* connections kept for reuse."""
    stats = pool.statistics()
    assert stats.in_use == 0, stats
    assert stats.idle == idle, stats
    assert stats.connections == idle, stats
    assert pool.limits.in_flight == 0


# ------------------------------------------------------------------------------- the bodies


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    """A chat completion chunk: *content* in its delta, or a *finish* reason."""
    delta = {"content": content} if content is not None else {}
    return {
        "id": "chatcmpl-sse",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


WORDS = ["Hé", "llo ", "wörld ✓ ", "😀", "\n", "end"]
TEXT = "".join(WORDS)


def stream_events(*, finish: bool = True, done: bool = True) -> list[str]:
    """The ``data`` of each event of a streamed completion of :data:`TEXT`."""
    events = [json.dumps(chunk(word), ensure_ascii=False) for word in WORDS]
    if finish:
        events.append(json.dumps(chunk(finish="stop")))
    if done:
        events.append("[DONE]")
    return events


def stream_body(
    *,
    eol: str | Callable[[int], str] = "\n",
    space: bool = True,
    bom: bool = False,
    comments: bool = False,
    multiline: bool = False,
    fields: bool = False,
    finish: bool = True,
    done: bool = True,
) -> bytes:
    """A streamed completion of :data:`TEXT` in one of the format's many spellings.

    :param eol: the line end, or a function of the line's number giving it.
    :param space: ``data: x`` (else ``data:x``).
    :param bom: start with a UTF-8 byte-order mark.
    :param comments: keep-alive comments between and inside events.
    :param multiline: each JSON chunk spread over several ``data`` lines (joined with ``\\n``).
    :param fields: ``event``, ``id``, ``retry`` and unknown fields (with and without a colon).
    """
    lines: list[str] = []
    for number, data in enumerate(stream_events(finish=finish, done=done)):
        if comments:
            lines += [": keep-alive", ""] if number % 2 else [":ping"]
        if fields:
            lines += ["event: message", f"id: {number}", "retry: 1500", "unknown: x", "nocolon"]
        parts = data.split(", ") if multiline and data != "[DONE]" else [data]
        for index, part in enumerate(parts):
            text = part if index == len(parts) - 1 else part + ","
            lines.append(("data: " if space else "data:") + text)
        lines.append("")
    ends = eol if callable(eol) else (lambda _: eol)
    text = "".join(line + ends(number) for number, line in enumerate(lines))
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def mixed_eol(number: int) -> str:
    # a "\r" is never followed by a "\n" line end: "\r" + "\n" would be one "\r\n"
    return ("\r\n", "\n", "\r")[number % 3]


EDGE_CASES: dict[str, dict[str, Any]] = {
    "lf": {},
    "crlf": {"eol": "\r\n"},
    "cr": {"eol": "\r"},
    "mixed-eol": {"eol": mixed_eol},
    "comments": {"comments": True},
    "data-without-space": {"space": False},
    "bom": {"bom": True},
    "multiline-data": {"multiline": True},
    "event-id-retry-unknown-fields": {"fields": True},
    "everything-at-once": {
        "eol": mixed_eol,
        "space": False,
        "bom": True,
        "comments": True,
        "multiline": True,
        "fields": True,
    },
}


# ------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("case", list(EDGE_CASES))
async def test_every_spelling_of_the_format_one_byte_per_chunk(
    sse_server: SSEServer, case: str
) -> None:
    body = stream_body(**EDGE_CASES[case])
    sse_server.replies.append(Reply(body, piece=1))
    async with pool_for(sse_server) as pool:
        async with await pool.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        ) as stream:
            pieces = [c.choices[0].delta.content async for c in stream if c.choices]
            final = await stream.get_final_completion()
        assert "".join(p for p in pieces if p) == TEXT
        assert final.text == TEXT
        assert final.choices[0].finish_reason == "stop"
        assert stream.closed
        assert stream.request_id == "req-sse"
        assert_released(pool, idle=1)  # read to its end: the connection is kept for reuse
        # ... and reused
        async with await pool.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        ) as again:
            assert (await again.get_final_completion()).text == TEXT
        assert sse_server.accepted == 1
        assert_released(pool, idle=1)


async def test_no_done_but_every_choice_finished_ends_cleanly(sse_server: SSEServer) -> None:
    sse_server.replies.append(Reply(stream_body(done=False), piece=3))
    async with pool_for(sse_server) as pool:
        async with await pool.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        ) as stream:
            final = await stream.get_final_completion()
        assert final.text == TEXT
        assert final.choices[0].finish_reason == "stop"
        assert final.meta is not None
        assert final.meta.estimated_usage is not None  # no usage chunk: estimated at the end
        assert_released(pool, idle=1)


async def test_body_ending_before_any_finish_reason_is_a_connection_error(
    sse_server: SSEServer,
) -> None:
    # a clean end of the body (last chunk sent) but no [DONE] and no finish_reason: cut short
    sse_server.replies.append(Reply(stream_body(finish=False, done=False), piece=7))
    async with pool_for(sse_server) as pool:
        stream = await pool.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        )
        received: list[str] = []
        with pytest.raises(anyoai.APIConnectionError, match="cut it short") as caught:
            async with stream:
                async for piece in stream:
                    received.append(piece.choices[0].delta.content or "")
        assert "".join(received) == TEXT  # every chunk that came was delivered first
        assert caught.value.request_id == "req-sse"
        assert stream.closed
        assert_released(pool, idle=1)  # the body itself was complete: the connection is fine


async def test_connection_dropped_mid_stream_is_a_connection_error(
    sse_server: SSEServer,
) -> None:
    sse_server.replies.append(Reply(stream_body()[:200], piece=1, end="cut"))
    async with pool_for(sse_server) as pool:
        with pytest.raises(anyoai.APIConnectionError):
            async with await pool.chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, stream=True
            ) as stream:
                async for _ in stream:
                    pass
        assert_released(pool, idle=0)


@pytest.mark.parametrize("spelling", ["event-error", "error-field"])
async def test_error_event_is_a_stream_error(sse_server: SSEServer, spelling: str) -> None:
    error = {"error": {"message": "the model crashed", "type": "server_error", "code": "E42"}}
    head = stream_body(done=False, finish=False).split(b"\n\n")[0] + b"\n\n"
    if spelling == "event-error":
        tail = b"event: error\r\ndata: " + json.dumps(error["error"]).encode() + b"\r\n\r\n"
    else:
        tail = b"data: " + json.dumps(error).encode() + b"\n\n"
    sse_server.replies.append(Reply(head + tail + stream_body(), piece=1))
    async with pool_for(sse_server) as pool:
        stream = await pool.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        )
        with pytest.raises(anyoai.StreamError, match="the model crashed") as caught:
            async with stream:
                async for _ in stream:
                    pass
        assert caught.value.code == "E42"
        assert caught.value.type == "server_error"
        assert caught.value.request_id == "req-sse"
        assert stream.closed
        assert_released(pool, idle=0)  # the body was not read to its end: closed


def endless(first: bytes, block: bytes) -> Callable[[], Iterator[bytes]]:
    """*first*, then *block* again and again, up to 256 MiB: far more than the client accepts
    or the sockets' buffers hold, so the server is still sending when the client closes."""

    def pieces() -> Iterator[bytes]:
        yield first
        for _ in range((256 << 20) // len(block)):
            yield block

    return pieces


@pytest.mark.parametrize(
    ("max_event_bytes", "shape"),
    [
        pytest.param(64 * 1024, "one-line", id="64KiB-one-line"),
        pytest.param(64 * 1024, "many-lines", id="64KiB-many-data-lines"),
        pytest.param(None, "one-line", id="default-16MiB-one-line"),
    ],
)
async def test_event_over_the_limit_is_refused_and_its_connection_closed(
    sse_server: SSEServer, max_event_bytes: int | None, shape: str
) -> None:
    limit = max_event_bytes or 16 * 1024 * 1024
    if shape == "one-line":
        body = endless(b'data: {"choices": "', b"x" * 65536)
    else:  # a first event, then short lines and never a blank one: an event that never ends
        first = b"data: " + json.dumps(chunk("x")).encode() + b"\n\n"
        body = endless(first, b"data: xxxxxxxx\n" * 4096)
    sse_server.replies.append(Reply(body, end="cut"))
    options = {} if max_event_bytes is None else {"max_event_bytes": max_event_bytes}
    async with pool_for(sse_server, **options) as pool:
        stream = await pool.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        )
        received = []
        with pytest.raises(anyoai.ResponseValidationError, match="max_event_bytes") as caught:
            async with stream:
                async for piece in stream:
                    received.append(piece)
        message = str(caught.value)
        assert f"({limit} bytes)" in message
        assert "open_pool(max_event_bytes=...)" in message
        assert caught.value.request_id == "req-sse"
        assert len(received) == (1 if shape == "many-lines" else 0)
        assert stream.closed
        assert_released(pool, idle=0)  # closed, not returned to the pool
        await wait_for(lambda: sse_server.dropped_by_client == 1, "the server to see the close")
        # the pool goes on, on a new connection
        sse_server.replies.append(Reply(stream_body(), piece=4096))
        async with await pool.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        ) as again:
            assert (await again.get_final_completion()).text == TEXT
        assert sse_server.accepted == 2
        assert_released(pool, idle=1)


async def test_event_at_the_limit_is_accepted(sse_server: SSEServer) -> None:
    body = stream_body()
    # the longest event's size: the bytes of its lines, line ends excluded
    longest = max(len(event.strip(b"\n")) for event in body.split(b"\n\n"))
    sse_server.replies.append(Reply(body, piece=5))
    async with pool_for(sse_server, max_event_bytes=longest) as pool:
        async with await pool.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True
        ) as stream:
            final = await stream.get_final_completion()
        assert final.text == TEXT
        assert_released(pool, idle=1)
    sse_server.replies.append(Reply(body, piece=5))
    async with pool_for(sse_server, max_event_bytes=longest - 1) as pool:
        with pytest.raises(anyoai.ResponseValidationError, match="max_event_bytes"):
            async with await pool.chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, stream=True
            ) as stream:
                await stream.get_final_completion()
        assert_released(pool, idle=0)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "many", "0"])
async def test_bad_max_event_bytes_is_a_configuration_error(value: object) -> None:
    with pytest.raises(anyoai.ConfigurationError, match="max_event_bytes") as caught:
        async with anyoai.open_pool(api_key=API_KEY, max_event_bytes=value):  # type: ignore[arg-type]
            pass  # pragma: no cover
    assert caught.value.setting == "max_event_bytes"


async def test_max_event_bytes_is_a_setting(sse_server: SSEServer) -> None:
    async with pool_for(sse_server, max_event_bytes="2048") as pool:
        assert pool.settings.max_event_bytes == 2048
        assert pool["default"].max_event_bytes == 2048
    async with pool_for(sse_server) as pool:
        assert pool.max_event_bytes == 16 * 1024 * 1024
