"""Several backends in one pool: selection, weights, priorities, failover, cooldown, views."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import anyio
import pytest

import anyoai
import anyoai.types
from anyoai.testing import FakeServer, Fault

from .helpers import API_KEY, HELLO

pytestmark = pytest.mark.anyio


@pytest.fixture
async def trio_of_servers() -> AsyncIterator[tuple[FakeServer, FakeServer, FakeServer]]:
    async with (
        FakeServer(api_key=API_KEY) as a,
        FakeServer(api_key=API_KEY) as b,
        FakeServer(api_key=API_KEY) as c,
    ):
        yield a, b, c


def spec(server: FakeServer, name: str, **kwargs: object) -> anyoai.CompatibleBackend:
    return anyoai.CompatibleBackend(name=name, base_url=server.url, api_key=API_KEY, **kwargs)  # type: ignore[arg-type]


async def many(pool: anyoai.Pool, n: int, model: str = "m") -> list[anyoai.types.ChatCompletion]:
    results: list[anyoai.types.ChatCompletion] = []

    async def one() -> None:
        results.append(await pool.chat.completions.create(model=model, messages=HELLO))

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return results


async def test_round_robin_is_exact_over_300_requests(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, c = trio_of_servers
    backends = [spec(a, "a"), spec(b, "b"), spec(c, "c")]
    async with anyoai.open_pool(backends=backends) as pool:
        results = await many(pool, 300)
    assert Counter(r.backend for r in results) == {"a": 100, "b": 100, "c": 100}
    assert (len(a.requests), len(b.requests), len(c.requests)) == (100, 100, 100)


async def test_weights_split_traffic_in_proportion(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, c = trio_of_servers
    backends = [spec(a, "a", weight=5), spec(b, "b", weight=2), spec(c, "c", weight=1)]
    async with anyoai.open_pool(backends=backends, strategy="weighted") as pool:
        results = await many(pool, 400)
    assert Counter(r.backend for r in results) == {"a": 250, "b": 100, "c": 50}


async def test_custom_strategy(trio_of_servers: tuple[FakeServer, FakeServer, FakeServer]) -> None:
    a, b, c = trio_of_servers

    def fastest(candidates: Sequence[anyoai.BackendStatus], model: str | None) -> str:
        assert all(isinstance(s, anyoai.BackendStatus) for s in candidates)
        return "c" if any(s.name == "c" for s in candidates) else candidates[0].name

    async with anyoai.open_pool(
        backends=[spec(a, "a"), spec(b, "b"), spec(c, "c")], strategy=fastest
    ) as pool:
        results = await many(pool, 20)
    assert {r.backend for r in results} == {"c"}


def primary(pool: anyoai.Pool) -> anyoai.BackendStatus:
    return next(s for s in pool.backends if s.backend.name == "primary")


async def test_priority_groups_fail_over_and_come_back(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, c = trio_of_servers
    # long enough that ten requests surely fit in it, even on a loaded machine; one failure
    # takes a backend down here (the default waits for three)
    failover = anyoai.FailoverPolicy(cooldown=1.0, max_cooldown=1.0, failure_threshold=1)
    backends = [spec(a, "primary"), spec(b, "secondary", priority=1), spec(c, "last", priority=2)]
    async with anyoai.open_pool(backends=backends, failover=failover) as pool:
        assert {r.backend for r in await many(pool, 10)} == {"primary"}
        a.add_fault(Fault(status=503, times=1))
        result = await pool.chat.completions.create(model="m", messages=HELLO)
        assert result.backend == "secondary"  # failed over at once, within the same call
        assert result.attempts == 2
        assert primary(pool).state == "cooldown"
        assert {r.backend for r in await many(pool, 10)} == {"secondary"}  # primary cools down
        # wait for the cooldown's end, however long the above took
        await anyio.sleep(primary(pool).cooldown_remaining + 0.01)
        # the cooldown is over: one request probes the primary, and it is back
        assert (await pool.chat.completions.create(model="m", messages=HELLO)).backend == "primary"
        assert {r.backend for r in await many(pool, 10)} == {"primary"}
        assert len(c.requests) == 0


async def test_every_request_succeeds_while_a_backend_degrades_then_dies(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    """503, then 429 with Retry-After, then dead: callers never notice, and the sick backend
    gets at most one attempt per cooldown."""
    sick, b, c = trio_of_servers
    cooldown = 0.1
    failover = anyoai.FailoverPolicy(cooldown=cooldown, max_cooldown=cooldown)
    backends = [spec(sick, "sick"), spec(b, "b"), spec(c, "c")]
    sick.add_fault(Fault(status=503, times=1))
    sick.add_fault(Fault(status=429, retry_after=0.3, times=1))
    async with anyoai.open_pool(backends=backends, failover=failover, max_retries=2) as pool:
        started = anyio.current_time()
        results = await many(pool, 30)  # meets the 503 and the 429
        await sick.go_down()  # ...and now it is dead: connections are refused
        for _ in range(8):
            results += await many(pool, 30)
            await anyio.sleep(0.05)
        elapsed = anyio.current_time() - started
        status = {s.name: s for s in pool.backends}
    assert len(results) == 270
    assert all(r.backend in ("b", "c") or r.attempts == 1 for r in results)
    sick_attempts = status["sick"].requests
    # without cooldown it would have had a third of 270; with it, one attempt per cooldown
    # (at most), plus the ones already in flight when it failed: in the first burst (the 503
    # is a blip, the 429's Retry-After takes it out) and in the first burst after it died
    assert sick_attempts <= 2 * (30 // 3) + math.ceil(elapsed / cooldown) + 1
    assert status["sick"].failures >= 3
    assert status["sick"].last_failure is not None


async def test_recovery_after_cooldown(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, _ = trio_of_servers
    failover = anyoai.FailoverPolicy(
        cooldown=0.1, max_cooldown=0.1, circuit_threshold=2, failure_threshold=1
    )
    async with anyoai.open_pool(backends=[spec(a, "a"), spec(b, "b")], failover=failover) as pool:
        a.add_fault(Fault(status=500, times=1))
        assert (await pool.chat.completions.create(model="m", messages=HELLO)).backend == "b"
        assert {s.name: s.state for s in pool.backends}["a"] == "cooldown"
        await anyio.sleep(0.15)
        assert {s.name: s.state for s in pool.backends}["a"] == "half-open"
        # one request probes it; once it has answered, round robin includes it again
        await pool["a"].models.list()
        assert {s.name: s.state for s in pool.backends}["a"] == "healthy"
        results = await many(pool, 10)
        assert Counter(r.backend for r in results) == {"a": 5, "b": 5}


async def test_all_backends_down_lists_each_last_failure(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, _ = trio_of_servers
    a.add_fault(Fault(status=503, message="a is overloaded", times=10))
    await b.go_down()
    # both go down at their first failure, for longer than the call's 2 s: the pool does not
    # wait for them in vain, and says why
    failover = anyoai.FailoverPolicy(cooldown=30, failure_threshold=1)
    async with anyoai.open_pool(
        backends=[spec(a, "a"), spec(b, "b")], max_retries=2, failover=failover, timeout=2
    ) as pool:
        with anyio.fail_after(1):  # raised at once, not after waiting
            with pytest.raises(anyoai.AllBackendsDownError) as info:
                await pool.chat.completions.create(model="m", messages=HELLO)
    failures = info.value.failures
    assert set(failures) == {"a", "b"}
    assert "InternalServerError" in failures["a"]
    assert "APIConnectionError" in failures["b"]
    assert "a: " in str(info.value)
    assert "b: " in str(info.value)
    assert isinstance(info.value, anyoai.APIConnectionError)


async def test_caller_errors_are_not_failovers(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, _ = trio_of_servers
    a.add_fault(Fault(status=404, code="model_not_found"))
    async with anyoai.open_pool(backends=[spec(a, "a"), spec(b, "b")]) as pool:
        with pytest.raises(anyoai.NotFoundError):
            await pool.chat.completions.create(model="m", messages=HELLO)
        assert len(b.requests) == 0  # not retried elsewhere
        assert {s.name: s.state for s in pool.backends}["a"] == "healthy"


async def test_model_filters(trio_of_servers: tuple[FakeServer, FakeServer, FakeServer]) -> None:
    a, b, c = trio_of_servers
    backends = [
        spec(a, "big", models=["gpt-4o"]),
        spec(b, "small", exclude_models=["gpt-4o"]),
        spec(c, "embed", models=["text-embedding-3-small"]),
    ]
    async with anyoai.open_pool(backends=backends) as pool:
        assert {r.backend for r in await many(pool, 6, model="gpt-4o")} == {"big"}
        assert {r.backend for r in await many(pool, 6, model="gpt-4o-mini")} == {"small"}
        embeddings = await pool.embeddings.create(model="text-embedding-3-small", input="x")
        assert embeddings.backend in ("small", "embed")
        with pytest.raises(anyoai.InvalidParameterError) as info:
            await pool["big"].chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert info.value.param == "model"
        assert "'big'" in str(info.value)


async def test_views_by_name_and_index(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, c = trio_of_servers
    async with anyoai.open_pool(backends=[spec(a, "a"), spec(b, "b"), spec(c, "c")]) as pool:
        for _ in range(3):
            assert (
                await pool["b"].chat.completions.create(model="m", messages=HELLO)
            ).backend == "b"
        assert (await pool[0].models.list()).backend == "a"
        assert (await pool[-1].embeddings.create(model="e", input="x")).backend == "c"
        stream = await pool["c"].chat.completions.create(model="m", messages=HELLO, stream=True)
        assert (await stream.get_final_completion()).backend == "c"
        assert repr(pool["a"]).startswith("<PoolView")
        with pytest.raises(KeyError, match="'a', 'b', 'c'"):
            pool["nope"]
        with pytest.raises(IndexError):
            pool[7]
    assert len(a.requests) == 1
    assert len(b.requests) == 3


async def test_rotate_and_current(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, c = trio_of_servers
    async with anyoai.open_pool(backends=[spec(a, "a"), spec(b, "b"), spec(c, "c")]) as pool:
        assert pool.current.name == "a"
        assert pool.rotate().name == "b"
        assert pool.current.name == "b"
        assert (await pool.models.list()).backend == "b"
        assert pool.current.name == "c"


async def test_backend_status_reports_traffic_and_health(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, _ = trio_of_servers
    async with anyoai.open_pool(backends=[spec(a, "a"), spec(b, "b")]) as pool:
        results = await many(pool, 10)
        status = {s.name: s for s in pool.backends}
    for name in ("a", "b"):
        assert status[name].requests == 5
        assert status[name].in_flight == 0
        assert status[name].state == "healthy"
        latency = status[name].latency_ewma
        assert latency is not None and latency > 0
        expected = sum(r.usage.total_tokens for r in results if r.backend == name and r.usage)
        assert status[name].tokens_used == expected


async def test_backend_limits_and_timeouts(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, _ = trio_of_servers
    backends = [
        spec(a, "a", limits=anyoai.Limits(max_in_flight=1, rpm=1000), timeout=0.2),
        spec(b, "b"),
    ]
    async with anyoai.open_pool(backends=backends, max_retries=0) as pool:
        limiter = pool.limits.rate_limiter("a")
        assert limiter is not None and limiter.rpm == 1000
        a.add_fault(Fault(latency=5))
        with pytest.raises(anyoai.APITimeoutError):
            await pool["a"].models.list()


async def test_names_default_to_the_kind_and_must_be_unique(
    trio_of_servers: tuple[FakeServer, FakeServer, FakeServer],
) -> None:
    a, b, _ = trio_of_servers
    backends = [
        anyoai.CompatibleBackend(base_url=a.url, api_key=API_KEY),
        anyoai.CompatibleBackend(base_url=b.url, api_key=API_KEY),
    ]
    async with anyoai.open_pool(backends=backends) as pool:
        assert [s.name for s in pool.backends] == ["compatible", "compatible-2"]
    with pytest.raises(anyoai.ConfigurationError, match="unique"):
        async with anyoai.open_pool(backends=[spec(a, "x"), spec(b, "x")]):
            pass
