"""Failover that never turns a blip into an outage: the reproductions of the reliability issue.

Each scenario has two backends (fake servers on loopback). The rule they prove: no request fails
while some backend is serving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

import anyoai
import anyoai.types
from anyoai.testing import FakeServer, Fault

from ..helpers import API_KEY, HELLO, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
async def two_servers() -> AsyncIterator[tuple[FakeServer, FakeServer]]:
    async with FakeServer(api_key=API_KEY) as a, FakeServer(api_key=API_KEY) as b:
        yield a, b


def backends(a: FakeServer, b: FakeServer) -> list[anyoai.CompatibleBackend]:
    return [
        anyoai.CompatibleBackend(name="a", base_url=a.url, api_key=API_KEY),
        anyoai.CompatibleBackend(name="b", base_url=b.url, api_key=API_KEY),
    ]


async def concurrently(pool: anyoai.Pool, n: int, **extra: object) -> list[object]:
    """*n* chat calls at once; each outcome (a result or the exception) in a list."""
    outcomes: list[object] = []

    async def one() -> None:
        try:
            outcomes.append(
                await pool.chat.completions.create(model="m", messages=HELLO, **extra)  # type: ignore[call-overload]
            )
        except anyoai.AnyoaiError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return outcomes


def failures(outcomes: list[object]) -> list[object]:
    return [o for o in outcomes if isinstance(o, BaseException)]


def states(pool: anyoai.Pool) -> dict[str, str]:
    return {s.name: s.state for s in pool.status()}


async def take_down(pool: anyoai.Pool, name: str) -> None:
    """Fail *name* until it goes down (connections refused: its server is down)."""
    for _ in range(pool.status()[0].backend.priority + 3):  # the default threshold: 3
        if states(pool)[name] != "healthy":
            return
        with pytest.raises(anyoai.APIConnectionError):
            await pool[name].models.list(max_retries=0)


async def test_a_recovering_backend_takes_the_waiting_requests_after_its_probe(
    two_servers: tuple[FakeServer, FakeServer],
) -> None:
    """A is dead; B had an outage and is back. 50 calls at once all succeed: while B's single
    probe is in flight, the others wait for its answer instead of failing."""
    a, b = two_servers
    await a.go_down()
    await b.go_down()
    failover = anyoai.FailoverPolicy(cooldown=0.5, max_cooldown=0.5)
    async with anyoai.open_pool(backends=backends(a, b), failover=failover) as pool:
        await take_down(pool, "a")
        await take_down(pool, "b")
        assert states(pool) == {"a": "open", "b": "open"}
        assert "consecutive failures" in pool.status()[1].reason
        await b.come_up()
        await wait_for(lambda: states(pool)["b"] == "half-open", "b's cooldown to end")
        outcomes = await concurrently(pool, 50)
        assert failures(outcomes) == []
        assert {o.backend for o in outcomes} == {"b"}  # type: ignore[attr-defined]
        assert states(pool)["b"] == "healthy"
        assert pool.limits.in_flight == 0


async def test_a_callers_tight_timeout_does_not_take_healthy_backends_out() -> None:
    async with (
        FakeServer(api_key=API_KEY, latency=0.2) as a,
        FakeServer(api_key=API_KEY, latency=0.2) as b,
    ):
        async with anyoai.open_pool(backends=backends(a, b)) as pool:
            await concurrently(pool, 2)  # the backends' usual latency is known: 0.2 s
            tight = await concurrently(pool, 6, timeout=0.05, max_retries=0)
            assert len(failures(tight)) == 6
            assert all(isinstance(f, anyoai.APITimeoutError) for f in failures(tight))
            assert states(pool) == {"a": "healthy", "b": "healthy"}
            assert failures(await concurrently(pool, 20)) == []
        # the control: the same timeouts from the pool's own setting do count
        async with anyoai.open_pool(backends=backends(a, b), timeout=0.05, max_retries=0) as pool:
            await concurrently(pool, 6)
            assert "healthy" not in states(pool).values()


async def test_one_transient_500_and_a_dead_second_backend_lose_nothing(
    two_servers: tuple[FakeServer, FakeServer],
) -> None:
    a, b = two_servers
    await a.go_down()
    events: list[anyoai.RetryEvent] = []
    async with anyoai.open_pool(backends=backends(a, b), on_retry=events.append) as pool:
        pool.rotate()  # round robin starts with b
        b.add_fault(Fault(status=500, times=1))
        result = await pool.chat.completions.create(model="m", messages=HELLO)
        assert result.backend == "b"
        # each retry event names the backend that failed
        assert [e.backend for e in events] == ["b", "a"][: len(events)]
        assert isinstance(events[0].error, anyoai.InternalServerError)
        assert all(not isinstance(e.error, anyoai.AllBackendsDownError) for e in events)


async def test_a_few_resets_in_a_burst_with_the_other_backend_dead_lose_nothing(
    two_servers: tuple[FakeServer, FakeServer],
) -> None:
    a, b = two_servers
    await b.go_down()
    a.add_fault(Fault(drop="before_headers", times=3))  # a listen backlog overflowing
    async with anyoai.open_pool(backends=backends(a, b)) as pool:
        outcomes = await concurrently(pool, 60)
        assert failures(outcomes) == []
        assert pool.statistics().in_use == 0


async def test_a_backend_flapping_every_second_under_200_calls_fails_none(
    two_servers: tuple[FakeServer, FakeServer],
) -> None:
    a, b = two_servers
    failover = anyoai.FailoverPolicy(cooldown=0.2, max_cooldown=0.4)
    outcomes: list[object] = []
    async with anyoai.open_pool(backends=backends(a, b), failover=failover) as pool:
        async with anyio.create_task_group() as tg:

            async def flap() -> None:
                for _ in range(3):
                    await anyio.sleep(0.5)
                    await a.go_down()
                    await anyio.sleep(0.5)
                    await a.come_up()

            tg.start_soon(flap)
            for _ in range(4):
                outcomes += await concurrently(pool, 200)
                await anyio.sleep(0.25)
        assert len(outcomes) == 800
        assert failures(outcomes) == []
        assert pool.limits.in_flight == 0
        assert pool.statistics().in_use == 0


async def test_every_backend_down_waits_for_the_first_to_come_back_within_the_deadline(
    two_servers: tuple[FakeServer, FakeServer],
) -> None:
    a, b = two_servers
    failover = anyoai.FailoverPolicy(cooldown=0.3, max_cooldown=0.3, failure_threshold=1)
    async with anyoai.open_pool(backends=backends(a, b), failover=failover) as pool:
        a.add_fault(Fault(status=503, times=1))
        b.add_fault(Fault(status=503, times=1))
        with pytest.raises(anyoai.InternalServerError):
            await pool["a"].models.list(max_retries=0)
        with pytest.raises(anyoai.InternalServerError):
            await pool["b"].models.list(max_retries=0)
        assert set(states(pool).values()) == {"cooldown"}
        # both cool down for 0.3 s: the call waits for the first, spending no retry
        result = await pool.chat.completions.create(model="m", messages=HELLO, max_retries=0)
        assert result.attempts == 1
