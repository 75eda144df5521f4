"""The clients compared, each as one async "session" with the same three calls.

Every peer gets the same fixed-body server, the same requests and the same driver, and runs in
a fresh process of its own (:mod:`benchmarks.worker`), so that its CPU time is its own.

- ``anyoai-asyncio``, ``anyoai-uvloop``, ``anyoai-trio``: anyoai's public API.
- ``openai``: the official SDK, ``AsyncOpenAI(max_retries=0)``.
- ``httpcore-pool``: httpcore's ``AsyncConnectionPool`` and ``json.loads``: the naive floor.
- ``httpcore-conn``: httpcore connection objects checked out from a plain list, and
  ``json.loads``: the floor anyoai's transport is built on.
- ``aiohttp``: raw aiohttp and ``json.loads``, a reference for a C-accelerated parser (not a
  peer: reported, never a target).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

API_KEY = "sk-bench-0000000000000000"
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Hello!"}]
MAX_CONNECTIONS = 2048

#: peer name -> (event loop, description)
PEERS: dict[str, tuple[str, str]] = {
    "anyoai-asyncio": ("asyncio", "anyoai on asyncio"),
    "anyoai-uvloop": ("uvloop", "anyoai on asyncio + uvloop"),
    "anyoai-trio": ("trio", "anyoai on trio"),
    "openai": ("asyncio", "openai-python AsyncOpenAI"),
    "httpcore-pool": ("asyncio", "httpcore AsyncConnectionPool + json.loads (naive floor)"),
    "httpcore-conn": ("asyncio", "httpcore connections from a list + json.loads (floor)"),
    "aiohttp": ("asyncio", "aiohttp + json.loads (reference, not a peer)"),
}


class Session:
    """One client, open: ``chat()`` returns the completion's text; ``stream()`` yields one
    item per chunk; ``embeddings(inputs, encoding)`` returns the vectors' count."""

    chat: Callable[[], Awaitable[str]]
    stream: Callable[[], AsyncIterator[Any]]
    embeddings: Callable[[list[str], str], Awaitable[int]]


def _payload(**extra: Any) -> bytes:
    return json.dumps({"model": MODEL, "messages": MESSAGES, **extra}).encode()


def _sse_events(buffer: bytearray, data: bytes) -> list[Any]:
    """Complete ``data:`` events from a byte stream (*buffer* keeps the remainder)."""
    buffer += data
    events: list[Any] = []
    while True:
        end = buffer.find(b"\n\n")
        if end < 0:
            return events
        block = bytes(buffer[:end])
        del buffer[: end + 2]
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                events.append(json.loads(line[6:]))


@asynccontextmanager
async def open_session(peer: str, urls: dict[str, str]) -> AsyncIterator[Session]:
    """A :class:`Session` of *peer* against *urls* (``chat``, ``stream``, ``embeddings_float``,
    ``embeddings_base64`` base URLs)."""
    opener = {
        "anyoai": _anyoai,
        "openai": _openai,
        "httpcore-pool": _httpcore_pool,
        "httpcore-conn": _httpcore_conn,
        "aiohttp": _aiohttp,
    }[peer.split("-")[0] if peer.startswith("anyoai") else peer]
    async with opener(urls) as session:
        yield session


@asynccontextmanager
async def _anyoai(urls: dict[str, str]) -> AsyncIterator[Session]:
    import anyoai

    session = Session()

    def pool(kind: str) -> Any:
        return anyoai.open_pool(
            api_key=API_KEY, base_url=urls[kind], max_retries=0, max_connections=MAX_CONNECTIONS
        )

    async with (
        pool("chat") as chat,
        pool("stream") as stream,
        pool("embeddings_float") as f,
        pool("embeddings_base64") as b,
    ):
        pools = {"float": f, "base64": b}

        async def do_chat() -> str:
            result = await chat.chat.completions.create(model=MODEL, messages=MESSAGES)
            return result.text

        async def do_stream() -> AsyncIterator[Any]:
            opened = await stream.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True
            )
            async with opened:
                async for chunk in opened:
                    yield chunk

        async def do_embeddings(inputs: list[str], encoding: str) -> int:
            result = await pools[encoding].embeddings.create(
                model="text-embedding-3-small", input=inputs, encoding_format=encoding
            )
            return len(result.data)

        session.chat, session.stream, session.embeddings = do_chat, do_stream, do_embeddings
        yield session


@asynccontextmanager
async def _openai(urls: dict[str, str]) -> AsyncIterator[Session]:
    import openai
    from openai.types.chat import ChatCompletionMessageParam

    try:  # openai-python 3 is built on httpx2; earlier releases on httpx
        import httpx2 as httpx
    except ImportError:
        import httpx  # type: ignore[no-redef]

    def client(url: str) -> openai.AsyncOpenAI:
        limits = httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
        )
        http = httpx.AsyncClient(limits=limits, timeout=600)
        return openai.AsyncOpenAI(api_key=API_KEY, base_url=url, max_retries=0, http_client=http)

    chat, stream = client(urls["chat"]), client(urls["stream"])
    clients = {
        "float": client(urls["embeddings_float"]),
        "base64": client(urls["embeddings_base64"]),
    }
    session = Session()
    messages = cast(list[ChatCompletionMessageParam], MESSAGES)  # the SDK's TypedDicts

    async def do_chat() -> str:
        result = await chat.chat.completions.create(model=MODEL, messages=messages)
        return result.choices[0].message.content or ""

    async def do_stream() -> AsyncIterator[Any]:
        opened = await stream.chat.completions.create(model=MODEL, messages=messages, stream=True)
        async with opened:
            async for chunk in opened:
                yield chunk

    async def do_embeddings(inputs: list[str], encoding: str) -> int:
        result = await clients[encoding].embeddings.create(
            model="text-embedding-3-small",
            input=inputs,
            encoding_format=encoding,  # type: ignore[arg-type]
        )
        # asked for base64 explicitly, the SDK returns the strings: decode them as users must
        return _decode_vectors([item.embedding for item in result.data])

    session.chat, session.stream, session.embeddings = do_chat, do_stream, do_embeddings
    try:
        yield session
    finally:
        for c in (chat, stream, *clients.values()):
            await c.close()


def _origin_and_paths(urls: dict[str, str]) -> tuple[tuple[bytes, bytes, int], dict[str, bytes]]:
    import urllib.parse

    parsed = urllib.parse.urlsplit(urls["chat"])
    origin = (parsed.scheme.encode(), (parsed.hostname or "").encode(), parsed.port or 80)
    paths = {
        "chat": urllib.parse.urlsplit(urls["chat"]).path.encode() + b"/chat/completions",
        "stream": urllib.parse.urlsplit(urls["stream"]).path.encode() + b"/chat/completions",
        "float": urllib.parse.urlsplit(urls["embeddings_float"]).path.encode() + b"/embeddings",
        "base64": urllib.parse.urlsplit(urls["embeddings_base64"]).path.encode() + b"/embeddings",
    }
    return origin, paths


def _headers(origin: tuple[bytes, bytes, int], body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"host", b"%s:%d" % (origin[1], origin[2])),
        (b"authorization", b"Bearer " + API_KEY.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]


def _embedding_body(inputs: list[str], encoding: str) -> bytes:
    return json.dumps(
        {"model": "text-embedding-3-small", "input": inputs, "encoding_format": encoding}
    ).encode()


def _decode_vectors(vectors: list[Any]) -> int:
    """Decode base64 vectors (little-endian float32) to lists of floats; return the count."""
    import base64
    import struct

    decoded = []
    for vector in vectors:
        if isinstance(vector, str):
            raw = base64.b64decode(vector)
            vector = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        decoded.append(vector)
    return len(decoded)


def _decode_embeddings(body: bytes) -> int:
    """What every client must do with an embeddings answer: parse it, and decode base64."""
    return _decode_vectors([item["embedding"] for item in json.loads(body)["data"]])


@asynccontextmanager
async def _httpcore_pool(urls: dict[str, str]) -> AsyncIterator[Session]:
    import httpcore

    origin, paths = _origin_and_paths(urls)
    base = b"%s://%s:%d" % origin
    chat_body, stream_body = _payload(), _payload(stream=True)
    session = Session()
    async with httpcore.AsyncConnectionPool(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
    ) as pool:

        async def do_chat() -> str:
            response = await pool.request(
                b"POST",
                base + paths["chat"],
                headers=_headers(origin, chat_body),
                content=chat_body,
            )
            return str(json.loads(response.content)["choices"][0]["message"]["content"])

        async def do_stream() -> AsyncIterator[Any]:
            buffer = bytearray()
            async with pool.stream(
                b"POST",
                base + paths["stream"],
                headers=_headers(origin, stream_body),
                content=stream_body,
            ) as response:
                async for data in response.aiter_stream():
                    for event in _sse_events(buffer, data):
                        yield event

        async def do_embeddings(inputs: list[str], encoding: str) -> int:
            body = _embedding_body(inputs, encoding)
            response = await pool.request(
                b"POST", base + paths[encoding], headers=_headers(origin, body), content=body
            )
            return _decode_embeddings(response.content)

        session.chat, session.stream, session.embeddings = do_chat, do_stream, do_embeddings
        yield session


@asynccontextmanager
async def _httpcore_conn(urls: dict[str, str]) -> AsyncIterator[Session]:
    import httpcore

    origin_tuple, paths = _origin_and_paths(urls)
    origin = httpcore.Origin(*origin_tuple)
    idle: list[Any] = []
    chat_body, stream_body = _payload(), _payload(stream=True)
    session = Session()

    def checkout() -> Any:
        while idle:
            connection = idle.pop()
            if connection.is_available():
                return connection
        return httpcore.AsyncHTTPConnection(origin)

    def request(path: bytes, body: bytes) -> httpcore.Request:
        url = httpcore.URL(scheme=origin.scheme, host=origin.host, port=origin.port, target=path)
        return httpcore.Request(b"POST", url, headers=_headers(origin_tuple, body), content=body)

    async def call(path: bytes, body: bytes) -> bytes:
        connection = checkout()
        response = await connection.handle_async_request(request(path, body))
        try:
            return b"".join([part async for part in response.stream])
        finally:
            await response.aclose()
            idle.append(connection)

    async def do_chat() -> str:
        body = await call(paths["chat"], chat_body)
        return str(json.loads(body)["choices"][0]["message"]["content"])

    async def do_stream() -> AsyncIterator[Any]:
        connection = checkout()
        response = await connection.handle_async_request(request(paths["stream"], stream_body))
        buffer = bytearray()
        try:
            async for data in response.stream:
                for event in _sse_events(buffer, data):
                    yield event
        finally:
            await response.aclose()
            idle.append(connection)

    async def do_embeddings(inputs: list[str], encoding: str) -> int:
        return _decode_embeddings(await call(paths[encoding], _embedding_body(inputs, encoding)))

    session.chat, session.stream, session.embeddings = do_chat, do_stream, do_embeddings
    try:
        yield session
    finally:
        for connection in idle:
            await connection.aclose()


@asynccontextmanager
async def _aiohttp(urls: dict[str, str]) -> AsyncIterator[Session]:
    import aiohttp

    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    chat_body, stream_body = _payload(), _payload(stream=True)
    session = Session()
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def do_chat() -> str:
            async with http.post(
                urls["chat"] + "/chat/completions", data=chat_body, headers=headers
            ) as response:
                body = await response.read()
            return str(json.loads(body)["choices"][0]["message"]["content"])

        async def do_stream() -> AsyncIterator[Any]:
            buffer = bytearray()
            async with http.post(
                urls["stream"] + "/chat/completions", data=stream_body, headers=headers
            ) as response:
                async for data in response.content.iter_any():
                    for event in _sse_events(buffer, data):
                        yield event

        async def do_embeddings(inputs: list[str], encoding: str) -> int:
            url = urls["embeddings_float" if encoding == "float" else "embeddings_base64"]
            async with http.post(
                url + "/embeddings", data=_embedding_body(inputs, encoding), headers=headers
            ) as response:
                body = await response.read()
            return _decode_embeddings(body)

        session.chat, session.stream, session.embeddings = do_chat, do_stream, do_embeddings
        yield session
