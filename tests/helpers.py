"""Constants and small helpers shared by the tests.

- :data:`API_KEY`, :func:`hello` and :data:`HELLO`: the key the ``server`` fixture demands, and
  the conversation most tests send; :func:`function_calls`: a completion's tool calls, typed;
- :func:`wait_for` (async) and :func:`wait_until` (blocking): poll a condition until it holds,
  failing the test after a bounded time;
- :func:`call`, :func:`payload`, :func:`header`, :func:`error_of`, :func:`events`,
  :func:`chunks`, :func:`collect_stream`: raw HTTP to the fake server through httpcore (the
  tests of ``anyoai.testing`` itself, where the point is the server, not anyoai);
- :class:`RawConnection` and :func:`raw_request`: plain sockets, where the exact bytes matter;
- :func:`fake_server_command` and :func:`fake_server_process`: the fake server as a child
  process (``python -m anyoai.testing``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import anyio
import anyio.abc
import httpcore
import pytest

from anyoai.testing import FakeServer
from anyoai.types import ChatCompletion, ChatCompletionMessageToolCall

#: the key the fake server demands; long enough to be masked, with a recognisable tail
API_KEY = "sk-test-anyoai-secret-0123456789abcdef-TAIL"


def hello(text: str = "hi") -> list[dict[str, str]]:
    """A conversation of one user message."""
    return [{"role": "user", "content": text}]


#: the conversation most tests send
HELLO = hello()


def function_calls(completion: ChatCompletion) -> list[ChatCompletionMessageToolCall]:
    """The tool calls of the completion's first choice, each checked to be a function call."""
    calls = []
    for call in completion.tool_calls:
        assert isinstance(call, ChatCompletionMessageToolCall), call
        calls.append(call)
    return calls


# ------------------------------------------------------------------------------ waiting


def _gave_up(what: str, timeout: float) -> str:
    return f"gave up waiting, after {timeout:g} s, for {what}"


async def wait_for(
    condition: Callable[[], object],
    what: str,
    *,
    timeout: float = 10.0,
    interval: float = 0.005,
) -> None:
    """Poll *condition* every *interval* seconds until it is true; fail the test, naming *what*
    it waited for, if it is still false after *timeout* seconds."""
    deadline = anyio.current_time() + timeout
    while not condition():
        if anyio.current_time() >= deadline:
            pytest.fail(_gave_up(what, timeout))
        await anyio.sleep(interval)


def wait_until(
    condition: Callable[[], object],
    what: str,
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
) -> None:
    """:func:`wait_for` for blocking code (no event loop): sleeps the thread between polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(_gave_up(what, timeout))
        time.sleep(interval)


# ------------------------------------------------------------------------------ raw HTTP

#: the chat completions path (under the server's ``/v1``)
CHAT = "/chat/completions"


def chat_body(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    """A chat completion request body."""
    return {"model": "gpt-4o-mini", "messages": hello(text), **extra}


async def call(
    client: httpcore.AsyncConnectionPool,
    server: FakeServer,
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
    api_key: str | None = None,
) -> httpcore.Response:
    """One request to ``server.url + path``: *body* as JSON, or the *raw* bytes given (sent as
    *content_type*), with ``Authorization: Bearer <api_key>`` when *api_key* is given; *headers*
    are added last, and win."""
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    all_headers = {"content-type": content_type} if content else {}
    if api_key is not None:
        all_headers["authorization"] = f"Bearer {api_key}"
    all_headers.update(headers or {})
    return await client.request(
        method, server.url + path, headers=list(all_headers.items()), content=content
    )


def payload(response: httpcore.Response) -> Any:
    """The response's JSON body."""
    return json.loads(response.content)


def header(response: httpcore.Response, name: str) -> str | None:
    """The response's header *name* (lower case), if it has one."""
    for key, value in response.headers:
        if key.decode().lower() == name:
            return value.decode()
    return None


def error_of(response: httpcore.Response, status: int | None = None) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-style error body, checked for its exact keys (and the
    response for its *status*, when given)."""
    if status is not None:
        assert response.status == status, response.content
    body = payload(response)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def events(content: bytes) -> list[str]:
    """The ``data:`` payloads of a server-sent event stream."""
    found = []
    for block in content.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                found.append(line[len("data: ") :])
    return found


def chunks(content: bytes) -> list[dict[str, Any]]:
    """The JSON chunks of a stream that ends with ``[DONE]``."""
    data = events(content)
    assert data[-1] == "[DONE]"
    return [json.loads(item) for item in data[:-1]]


async def collect_stream(
    client: httpcore.AsyncConnectionPool, server: FakeServer, path: str, body: Any, **kw: Any
) -> tuple[int, bytes, BaseException | None]:
    """Read a streamed answer as far as it goes: (status, bytes received, error if cut)."""
    received = b""
    headers = [("content-type", "application/json"), *kw.get("headers", {}).items()]
    async with client.stream(
        "POST", server.url + path, headers=headers, content=json.dumps(body).encode()
    ) as response:
        try:
            async for piece in response.aiter_stream():
                received += piece
        except httpcore.RemoteProtocolError as exc:
            return response.status, received, exc
    return response.status, received, None


# ------------------------------------------------------------------------------ raw sockets


class RawConnection:
    """A plain socket client that reads responses framed by Content-Length."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def read_response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self.stream.receive()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self.buffer += await self.stream.receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    async def read_to_end(self) -> bytes:
        data = self.buffer
        while True:
            try:
                data += await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return data


def raw_request(
    method: str, path: str, body: bytes = b"", extra: str = "", *, length: bool = True
) -> bytes:
    """The bytes of an HTTP/1.1 request; *extra* is more header lines, each ending in CRLF."""
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{extra}"
    if length:
        head += f"content-length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


# ------------------------------------------------------------------------------ the CLI


def fake_server_command(*flags: str) -> list[str]:
    """The command line that runs the fake server with *flags*."""
    return [sys.executable, "-m", "anyoai.testing", *flags]


@contextlib.contextmanager
def fake_server_process(*flags: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run the fake server with *flags* as a child process; yield it and the URL it prints on
    its first line. The process is killed on the way out if it is still running."""
    process = subprocess.Popen(fake_server_command(*flags), stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process, process.stdout.readline().strip()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
