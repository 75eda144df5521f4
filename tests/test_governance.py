"""The pool's limits against a fake server that enforces RPM/TPM as OpenAI does."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import anyoai
import anyoai.types
from anyoai.testing import FakeServer, Fault, SystemClock

from .helpers import API_KEY, hello

pytestmark = pytest.mark.anyio

HELLO = hello("hello there friend")
PERIOD = 1.0  # a time-scaled "minute" on both sides


async def burst(pool: anyoai.Pool, n: int, **params: Any) -> list[anyoai.types.ChatCompletion]:
    results: list[anyoai.types.ChatCompletion] = []

    async def one() -> None:
        results.append(await pool.chat.completions.create(model="m", messages=HELLO, **params))

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return results


async def test_configured_rpm_is_kept_without_a_single_429() -> None:
    async with (
        FakeServer(api_key=API_KEY, rpm=5, rate_limit_period=PERIOD) as server,
        anyoai.open_pool(
            api_key=API_KEY,
            base_url=server.url,
            limits=anyoai.Limits(rpm=5),
            rate_limit_period=PERIOD,
        ) as pool,
    ):
        results = await burst(pool, 12)
        assert len(results) == 12
        stats = server.rate_limit_stats()
        assert stats.rejected == 0
        assert stats.accepted == 12
        assert stats.peak(PERIOD * 0.95)[0] <= 5
        assert all(r.attempts == 1 for r in results)


async def test_configured_tpm_with_settlement_keeps_the_server_happy() -> None:
    async with (
        FakeServer(api_key=API_KEY, tpm=200, rate_limit_period=PERIOD) as server,
        anyoai.open_pool(
            api_key=API_KEY,
            base_url=server.url,
            limits=anyoai.Limits(tpm=200),
            rate_limit_period=PERIOD,
        ) as pool,
    ):
        # each request reserves its prompt plus max_tokens; the real usage is far smaller
        results = await burst(pool, 10, max_tokens=60)
        assert len(results) == 10
        assert server.rate_limit_stats().rejected == 0
        limiter = pool.limits.rate_limiter()
        assert limiter is not None
        # settled: the window holds the real usage, not the 60-token reservations
        in_window = limiter.statistics().tokens
        assert in_window <= sum(r.usage.total_tokens for r in results if r.usage)


async def test_limits_are_learned_from_the_servers_headers() -> None:
    async with (
        FakeServer(api_key=API_KEY, rpm=4, tpm=10_000, rate_limit_period=PERIOD) as server,
        anyoai.open_pool(api_key=API_KEY, base_url=server.url, rate_limit_period=PERIOD) as pool,
    ):
        assert pool.limits.rate_limiter(model="m") is None  # nothing known yet
        await pool.chat.completions.create(model="m", messages=HELLO)
        limiter = pool.limits.rate_limiter(model="m")
        assert limiter is not None
        stats = limiter.statistics()
        assert stats.learned
        assert (stats.rpm, stats.tpm) == (4, 10_000)
        # from now on the client keeps to what it learned: no 429 at all
        server.clear()
        assert len(await burst(pool, 9)) == 9
        assert server.rate_limit_stats().rejected == 0


async def test_429s_before_anything_is_known_are_absorbed_and_paused() -> None:
    async with (
        FakeServer(api_key=API_KEY, rpm=3, rate_limit_period=0.3) as server,
        # real retry-after waits (short ones)
        anyoai.open_pool(
            api_key=API_KEY, base_url=server.url, rate_limit_period=0.3, clock=SystemClock()
        ) as pool,
    ):
        results = await burst(pool, 8)  # the first wave goes out before any header is seen
        assert len(results) == 8
        stats = server.rate_limit_stats()
        assert stats.accepted == 8
        assert stats.rejected >= 1  # the unknowing first wave
        limiter = pool.limits.rate_limiter(model="m")
        assert limiter is not None and limiter.statistics().rpm == 3


async def test_a_429_pause_holds_back_the_waiters() -> None:
    async with (
        FakeServer(api_key=API_KEY) as server,
        anyoai.open_pool(
            api_key=API_KEY, base_url=server.url, max_retries=0, clock=SystemClock()
        ) as pool,
    ):
        server.add_fault(Fault(status=429, retry_after_ms=400))
        with pytest.raises(anyoai.RateLimitError):
            await pool.chat.completions.create(model="m", messages=HELLO)
        limiter = pool.limits.rate_limiter(model="m")
        assert limiter is not None
        assert limiter.statistics().paused_for > 0
        done: list[int] = []

        async def later(n: int) -> None:
            await pool.chat.completions.create(model="m", messages=HELLO)
            done.append(n)

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(later, n)
            await anyio.sleep(0.05)
            # still paused: nobody went out, everybody waits in line
            assert limiter.statistics().paused_for > 0
            assert len(server.requests) == 1
            assert limiter.statistics().waiting == 5
        assert sorted(done) == list(range(5))
        assert len(server.requests) == 6


async def test_limits_from_the_environment(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_RPM_LIMIT", "120")
    monkeypatch.setenv("OPENAI_TPM_LIMIT", "90000")
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool:
        limiter = pool.limits.rate_limiter()
        assert limiter is not None
        assert (limiter.rpm, limiter.tpm) == (120, 90000)
        await pool.models.list()
        assert limiter.statistics().requests == 1


async def test_per_model_limits(server: FakeServer) -> None:
    async with anyoai.open_pool(
        api_key=API_KEY,
        base_url=server.url,
        limits=anyoai.Limits(rpm=1000),
        model_limits={"gpt-4o": anyoai.Limits(rpm=2)},
    ) as pool:
        await pool.chat.completions.create(model="gpt-4o", messages=HELLO)
        await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        per_model = pool.limits.rate_limiter(model="gpt-4o")
        shared = pool.limits.rate_limiter(model="gpt-4o-mini")
        assert per_model is not None and shared is not None
        assert per_model is not shared
        assert per_model.rpm == 2
        assert shared.rpm == 1000
        assert per_model.statistics().requests == 1


async def test_in_flight_cap_is_adjustable_at_runtime(server: FakeServer) -> None:
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, limits=anyoai.Limits(max_in_flight=3)
    ) as pool:
        assert pool.limits.max_in_flight == 3
        server.add_fault(Fault(latency=0.05, times=20))
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(pool.models.list)
            await anyio.sleep(0.01)
            in_flight, waiting = pool.limits.in_flight, pool.limits.statistics().tasks_waiting
            assert in_flight <= 3
            assert waiting >= 1
            pool.limits.max_in_flight = 10
            # raised: every waiter goes at once, past the old cap
            assert pool.limits.statistics().tasks_waiting == 0
            assert pool.limits.in_flight == in_flight + waiting > 3
        assert pool.limits.in_flight == 0
        with pytest.raises(anyoai.ConfigurationError):
            pool.limits.max_in_flight = 0


async def test_a_stream_holds_its_slot_until_it_closes_and_settles_its_usage(
    server: FakeServer,
) -> None:
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, limits=anyoai.Limits(max_in_flight=5, tpm=100_000)
    ) as pool:
        stream = await pool.chat.completions.create(
            model="m", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        assert pool.limits.in_flight == 1
        final = await stream.get_final_completion()
        assert pool.limits.in_flight == 0
        limiter = pool.limits.rate_limiter()
        assert limiter is not None
        assert final.usage is not None
        assert limiter.statistics().tokens == final.usage.total_tokens
