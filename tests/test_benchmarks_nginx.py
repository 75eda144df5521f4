"""benchmarks/nginx.py: nginx serves the fixed OpenAI bodies, which the official SDK parses.

These need nginx (``bash benchmarks/install-nginx.sh``); without it they fail with that hint,
never skip.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import struct
from collections.abc import Iterator

import openai
import pytest

from benchmarks.nginx import NginxServer, bodies

CHUNKS = 5
INPUTS = 3
DIMENSIONS = 4


@pytest.fixture(scope="module")
def server() -> Iterator[NginxServer]:
    with NginxServer(chunks=CHUNKS, embedding_inputs=INPUTS, dimensions=DIMENSIONS) as running:
        yield running


def client(server: NginxServer, kind: str) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-bench", base_url=server.url(kind), max_retries=0)


def test_bodies_are_deterministic() -> None:
    assert bodies(3, 2, 5) == bodies(3, 2, 5)
    assert bodies(3, 2, 5) != bodies(4, 2, 5)


def test_chat(server: NginxServer) -> None:
    with client(server, "chat") as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        completion = raw.parse()
    assert raw.headers["x-request-id"] == "req_bench"
    assert raw.headers["openai-processing-ms"] == "1"
    assert raw.headers["content-type"] == "application/json"
    assert completion.choices[0].message.content == "Hello! How can I help you today?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 21


def test_stream(server: NginxServer) -> None:
    with client(server, "stream") as sdk:
        stream = sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = list(stream)
    assert len(chunks) == CHUNKS + 1
    contents = [chunk.choices[0].delta.content for chunk in chunks[:CHUNKS]]
    assert contents == [f"tok{i} " for i in range(CHUNKS)]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:CHUNKS])
    last = chunks[-1].choices[0]
    assert last.delta.content is None
    assert last.finish_reason == "stop"


def float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def test_embeddings(server: NginxServer) -> None:
    with client(server, "embeddings_float") as sdk:
        floats = sdk.embeddings.create(
            model="text-embedding-3-small", input=["a", "b", "c"], encoding_format="float"
        )
    assert [item.index for item in floats.data] == list(range(INPUTS))
    vectors = [item.embedding for item in floats.data]
    assert all(len(vector) == DIMENSIONS for vector in vectors)
    assert all(isinstance(value, float) for vector in vectors for value in vector)

    with client(server, "embeddings_base64") as sdk:
        packed = sdk.embeddings.create(
            model="text-embedding-3-small", input=["a", "b", "c"], encoding_format="base64"
        )
    assert len(packed.data) == INPUTS
    for item, vector in zip(packed.data, vectors, strict=True):
        embedding: object = item.embedding
        # this SDK hands an explicitly asked-for base64 embedding back as the string
        if isinstance(embedding, str):
            raw = base64.b64decode(embedding)
            assert len(raw) == 4 * DIMENSIONS
            decoded = list(struct.unpack(f"<{DIMENSIONS}f", raw))
        else:
            assert isinstance(embedding, list)
            decoded = embedding
        assert decoded == float32(vector)


def test_models(server: NginxServer) -> None:
    for kind in ("chat", "stream", "embeddings_float", "embeddings_base64"):
        with client(server, kind) as sdk:
            models = [model.id for model in sdk.models.list()]
        assert models == ["gpt-4o-mini", "text-embedding-3-small"]


def test_large_post_on_one_connection(server: NginxServer) -> None:
    expected = server.bodies["chat"]
    payload = json.dumps({"model": "gpt-4o-mini", "padding": "x" * 1_000_000}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sockets = set()
        for _ in range(2):
            connection.request(
                "POST",
                "/chat/v1/chat/completions",
                body=payload,
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200
            assert response.getheader("Content-Length") == str(len(expected))
            assert body == expected
            assert not response.will_close
            sockets.add(id(connection.sock))
        assert len(sockets) == 1
    finally:
        connection.close()


def test_stops_and_cleans_up() -> None:
    with NginxServer(chunks=CHUNKS, embedding_inputs=INPUTS, dimensions=DIMENSIONS) as running:
        pid = running.pid
        directory = running.directory
        assert pid is not None
        assert directory is not None
        assert os.path.isdir(directory)
        assert running.url("chat") == f"http://127.0.0.1:{running.port}/chat/v1"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # no worker is left either
    assert not os.path.exists(directory)
    assert running.pid is None


def test_startup_failure_cleans_up() -> None:

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = NginxServer(
            chunks=1, embedding_inputs=1, dimensions=1, port=taken.getsockname()[1]
        )
        with pytest.raises(RuntimeError, match="Address already in use"), server:
            pass
    assert server.pid is None
    assert server.directory is None
