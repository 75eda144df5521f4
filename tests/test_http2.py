"""HTTP/2: negotiated over TLS (ALPN) with a real HTTP/2 server, and multiplexed."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import anyoai

from .helpers import API_KEY, wait_until

pytestmark = pytest.mark.anyio

MODELS = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal OpenAI look-alike: GET /v1/models, reporting the protocol it was served over."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-served-over", scope["http_version"].encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": MODELS})


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def h2_server() -> Iterator[tuple[str, ssl.SSLContext]]:
    """hypercorn serving HTTP/2 over TLS with a throwaway CA (trustme), in its own thread."""
    import asyncio

    import trustme
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    port = _free_port()
    with cert.private_key_and_cert_chain_pem.tempfile() as cert_path:
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.alpn_protocols = ["h2", "http/1.1"]
        config.certfile = config.keyfile = cert_path
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        server = serve(asgi_app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        thread = threading.Thread(target=loop.run_until_complete, args=(server,), daemon=True)
        thread.start()
        try:
            wait_until(lambda: _listening(port), f"the HTTP/2 test server on port {port}")
            context = ssl.create_default_context()
            ca.configure_trust(context)
            yield f"https://127.0.0.1:{port}/v1", context
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            if not thread.is_alive():
                loop.close()  # else it is left to the garbage collector, to warn in a later test


async def test_http2_is_negotiated_and_multiplexed(h2_server: tuple[str, ssl.SSLContext]) -> None:
    url, context = h2_server
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=url, http2=True, ssl_context=context
    ) as pool:
        first = await pool.models.list()
        assert first.meta is not None and first.meta.http_version == "HTTP/2"
        assert first.headers["x-served-over"] == "2"
        results = []

        async def one() -> None:
            results.append(await pool.models.list())

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        assert len(results) == 20
        assert all(r.meta is not None and r.meta.http_version == "HTTP/2" for r in results)
        assert pool.statistics().connections == 1  # one connection carried them all
        assert pool.statistics().in_use == 0


async def test_without_http2_the_same_server_speaks_http11(
    h2_server: tuple[str, ssl.SSLContext],
) -> None:
    url, context = h2_server
    async with anyoai.open_pool(api_key=API_KEY, base_url=url, ssl_context=context) as pool:
        result = await pool.models.list()
        assert result.meta is not None and result.meta.http_version == "HTTP/1.1"
        assert result.headers["x-served-over"] == "1.1"


async def test_an_untrusted_certificate_is_a_connection_error(
    h2_server: tuple[str, ssl.SSLContext],
) -> None:
    """TLS runs in anyoai's network layer: a failed handshake is a typed error, sent nothing,
    and leaves no connection behind."""
    url, _ = h2_server
    async with anyoai.open_pool(api_key=API_KEY, base_url=url, max_retries=0) as pool:
        with pytest.raises(anyoai.APIConnectionError) as info:
            await pool.models.list()
        assert "certificate" in str(info.value).lower()
        assert info.value.request_sent is False
        stats = pool.statistics()
        assert (stats.connections, stats.in_use) == (0, 0)
