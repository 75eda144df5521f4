"""Cancelling in-flight requests and open streams leaks nothing, and the pool keeps working."""

from __future__ import annotations

import anyio
import pytest

import anyoai
import anyoai.types
from anyoai.testing import FakeServer, Fault

from .helpers import API_KEY, HELLO, wait_for

pytestmark = pytest.mark.anyio


def assert_at_rest(pool: anyoai.Pool) -> None:
    stats = pool.statistics()
    assert stats.in_use == 0, stats
    assert stats.waiting == 0, stats
    assert stats.connections == stats.idle, stats
    limits = pool.limits.statistics()
    assert limits.borrowed_tokens == 0, limits
    assert limits.tasks_waiting == 0, limits
    for limiter in pool.limits.rate_limiters.values():
        assert limiter.statistics().waiting == 0, limiter


@pytest.mark.parametrize("max_connections", [200, 1000])
async def test_cancel_1000_in_flight_requests(server: FakeServer, max_connections: int) -> None:
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, max_connections=max_connections
    ) as pool:
        server.add_fault(Fault(latency=60, times=1000))
        async with anyio.create_task_group() as tg:
            for _ in range(1000):
                tg.start_soon(lambda: pool.chat.completions.create(model="m", messages=HELLO))
            # all 1,000 are in flight: holding a connection, or queued for one (the pool's
            # in-flight cap defaults to max_connections)
            await wait_for(
                lambda: (
                    pool.limits.in_flight + pool.limits.statistics().tasks_waiting == 1000
                    and len(server.requests) == min(1000, max_connections)
                ),
                "1000 requests in flight",
                timeout=20,
            )
            assert pool.statistics().in_use == min(1000, max_connections)
            tg.cancel_scope.cancel()
        assert_at_rest(pool)
        # connections cut mid-request are closed, never reused
        assert pool.statistics().connections == 0
        server.clear()
        results = await _many(pool, 50)
        assert all(r.text for r in results)
        assert_at_rest(pool)


async def _many(pool: anyoai.Pool, n: int) -> list[anyoai.types.ChatCompletion]:
    results: list[anyoai.types.ChatCompletion] = []

    async def one() -> None:
        results.append(await pool.chat.completions.create(model="m", messages=HELLO))

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return results


async def test_cancel_100_open_streams() -> None:
    async with (
        FakeServer(api_key=API_KEY, stream_chunk_delay=0.05) as server,
        anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool,
    ):
        first_chunks = 0

        async def consume() -> None:
            nonlocal first_chunks
            async with await pool.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "a long " * 50}], stream=True
            ) as stream:
                async for _chunk in stream:
                    first_chunks += 1
                    await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(consume)
            await wait_for(lambda: first_chunks == 100, "100 streams yielding", timeout=20)
            assert pool.statistics().in_use == 100
            tg.cancel_scope.cancel()
        assert_at_rest(pool)
        assert pool.statistics().connections == 0
        results = await _many(pool, 10)
        assert len(results) == 10


async def test_cancel_while_iterating_without_async_with(server: FakeServer) -> None:
    """Cancellation inside __anext__ closes the stream even without `async with`."""
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool:
        stream = await pool.chat.completions.create(model="m", messages=HELLO, stream=True)
        with anyio.move_on_after(0.01):
            async for _ in stream:
                await anyio.sleep_forever()
        # the cancellation hit the body of the loop, not __anext__: the stream is still open
        assert not stream.closed
        await stream.aclose()
        assert_at_rest(pool)


async def test_cancel_during_connect_wait_and_body(server: FakeServer) -> None:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, max_connections=2) as pool:
        server.add_fault(Fault(latency=0.5, times=10))
        for delay in (0.0, 0.001, 0.01, 0.05):
            with anyio.move_on_after(delay):
                async with anyio.create_task_group() as tg:
                    for _ in range(6):
                        tg.start_soon(pool.models.list)
            assert_at_rest(pool)
        assert len(await pool.models.list()) > 0


async def test_random_cancellation_of_2000_requests_leaves_everything_at_rest(
    server: FakeServer,
) -> None:
    """Requests cancelled at random points: waiting for a slot, for the rate limiter, for a
    connection, mid-request, mid-stream. Afterwards nothing is held and nothing leaks."""
    import json
    import random

    rng = random.Random(20261124)
    limits = anyoai.Limits(max_in_flight=150, rpm=600, tpm=5_000_000)
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, max_connections=100, limits=limits
    ) as pool:
        await pool.chat.completions.create(model="m", messages=HELLO)  # loads the encoding
        server.clear()

        async def one(index: int) -> None:
            latency = json.dumps({"latency": rng.random() * 0.03})
            with anyio.move_on_after(rng.random() * 2.0):
                if index % 4 == 0:
                    async with await pool.chat.completions.create(
                        model="m",
                        messages=[{"role": "user", "content": "word " * 30}],
                        stream=True,
                        extra_headers={"x-fake-fault": latency},
                    ) as stream:
                        async for _ in stream:
                            await anyio.sleep(0.001)
                else:
                    await pool.chat.completions.create(
                        model="m", messages=HELLO, extra_headers={"x-fake-fault": latency}
                    )

        async with anyio.create_task_group() as tg:
            for index in range(2000):
                tg.start_soon(one, index)
        assert_at_rest(pool)
        limiter = pool.limits.rate_limiter()
        assert limiter is not None
        stats = limiter.statistics()
        # every request the server saw (+1: the warm-up) is counted; the ones cancelled
        # before they left are not, and the window never went over its limit
        assert len(server.requests) + 1 <= stats.requests <= 600
        assert stats.requests < 2000
        assert stats.tokens >= 0
        # and the pool still works (with room made in the window)
        pool.limits.set(rpm=100_000, tpm=5_000_000)
        results = await _many(pool, 20)
        assert len(results) == 20
        assert_at_rest(pool)
