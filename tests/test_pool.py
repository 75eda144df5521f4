"""The pool's lifetime and its transport: reuse, limits, stale connections, closing."""

from __future__ import annotations

import sys

import anyio
import anyio.lowlevel
import pytest

import anyoai
from anyoai.testing import FakeServer, Fault

from .helpers import API_KEY, HELLO, wait_for

pytestmark = pytest.mark.anyio


async def test_missing_api_key_names_the_variable() -> None:
    with pytest.raises(anyoai.ConfigurationError) as info:
        async with anyoai.open_pool():
            pass
    assert info.value.setting == "OPENAI_API_KEY"
    assert "OPENAI_API_KEY" in str(info.value)


async def test_settings_from_the_environment(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_API_BASE", server.url)  # the seed library's name
    monkeypatch.setenv("OPENAI_ORGANIZATION", "org-seed")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_42")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", '{"X-Team": "search"}')
    async with anyoai.open_pool() as pool:
        await pool.models.list()
    headers = server.requests[-1].headers
    assert headers["openai-organization"] == "org-seed"
    assert headers["openai-project"] == "proj_42"
    assert headers["x-team"] == "search"


async def test_malformed_environment_setting_fails_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_MAX_CONNECTIONS", "lots")
    with pytest.raises(anyoai.ConfigurationError, match="OPENAI_MAX_CONNECTIONS"):
        async with anyoai.open_pool():
            pass


async def test_closed_pool_raises_a_clear_error(server: FakeServer) -> None:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool:
        await pool.models.list()
    assert pool.closed
    with pytest.raises(anyoai.PoolClosedError, match="open_pool"):
        await pool.models.list()
    assert pool.statistics().connections == 0
    assert server.open_connections == 0 or await _eventually_zero(server)


async def _eventually_zero(server: FakeServer) -> bool:
    # the server notices closed sockets when it next reads them; give it turns, not time
    for _ in range(1000):
        if server.open_connections == 0:
            return True
        await anyio.lowlevel.checkpoint()
    return server.open_connections == 0


async def test_exception_in_the_block_comes_out_unwrapped(server: FakeServer) -> None:
    with pytest.raises(KeyError):
        async with anyoai.open_pool(api_key=API_KEY, base_url=server.url):
            raise KeyError("mine")


async def test_keep_alive_reuses_one_connection(pool: anyoai.Pool, server: FakeServer) -> None:
    for _ in range(5):
        await pool.chat.completions.create(model="m", messages=HELLO)
    stats = pool.statistics()
    assert stats.connections == 1
    assert stats.idle == 1
    assert stats.in_use == 0
    assert server.open_connections == 1


async def test_max_connections_is_respected(server: FakeServer) -> None:
    peak = 0
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, max_connections=4) as pool:

        async def one() -> None:
            nonlocal peak
            await pool.chat.completions.create(model="m", messages=HELLO)
            peak = max(peak, pool.statistics().connections)

        server.add_fault(Fault(latency=0.05, times=40))
        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(one)
        assert pool.statistics().connections <= 4
        assert peak <= 4
        assert pool.statistics().waiting == 0
        assert pool.statistics().in_use == 0


async def test_pool_timeout_when_every_connection_is_busy(server: FakeServer) -> None:
    timeout = anyoai.Timeout(pool=0.05, total=10)
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, max_connections=1, timeout=timeout
    ) as pool:
        server.add_fault(Fault(latency=5))
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: pool.models.list(max_retries=0))
            await wait_for(lambda: pool.statistics().in_use == 1, "the first request")
            with pytest.raises(anyoai.APITimeoutError, match="pool timeout") as info:
                await pool.models.list(max_retries=0)
            assert info.value.request_sent is False
            tg.cancel_scope.cancel()
        assert pool.statistics().waiting == 0
        assert pool.statistics().in_use == 0


async def test_stale_idle_connection_is_replaced_transparently(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    await pool.models.list()
    assert pool.statistics().idle == 1
    await server.close_idle_connections()  # the server closes it while it sits idle
    result = await pool.models.list(max_retries=0)  # no retry budget: the transport handles it
    assert len(result) > 0
    assert result.attempts == 1


async def test_keepalive_expiry_closes_old_connections(server: FakeServer) -> None:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, keepalive_expiry=0) as pool:
        await pool.models.list()
        await pool.models.list()
        assert pool.statistics().connections == 1  # the expired one made way for a new one
        assert len(server.requests) == 2


async def test_max_keepalive_connections_caps_the_idle_list(server: FakeServer) -> None:
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, max_keepalive_connections=2
    ) as pool:
        server.add_fault(Fault(latency=0.02, times=10))
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(pool.models.list)
        assert pool.statistics().idle <= 2
        assert pool.statistics().connections == pool.statistics().idle


async def test_http2_without_h2_is_a_configuration_error(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "h2", None)
    with pytest.raises(anyoai.ConfigurationError, match=r"anyoai\[http2\]"):
        async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, http2=True):
            pass


async def test_pool_is_bound_to_its_thread(pool: anyoai.Pool) -> None:
    def use_from_another_thread() -> None:
        anyio.run(pool.models.list)

    with pytest.raises(RuntimeError, match="belongs to the event loop"):
        await anyio.to_thread.run_sync(use_from_another_thread)


async def test_requests_go_through_the_proxy(server: FakeServer) -> None:
    """The fake server stands in for a forward proxy: it receives the absolute-form request."""
    proxy = server.url.removesuffix("/v1")
    async with anyoai.open_pool(
        api_key=API_KEY, base_url="http://api.openai.invalid/v1", proxies=proxy
    ) as pool:
        assert len(await pool.models.list()) > 0
    request = server.requests[-1]
    assert request.path == "/v1/models"
    assert request.headers["host"] == "api.openai.invalid"


async def test_proxy_credentials_never_show(server: FakeServer) -> None:
    proxy = server.url.replace("http://", "http://user:hunter2@").removesuffix("/v1")
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, proxies=proxy) as pool:
        assert "hunter2" not in repr(pool)
        assert "hunter2" not in repr(pool.settings)
