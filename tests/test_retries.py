"""Retries against the fake server: what is retried, how often, how long it waits."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator

import pytest

import anyoai
from anyoai.testing import FakeServer, Fault

from .helpers import API_KEY, HELLO

pytestmark = pytest.mark.anyio


class Recorder:
    """An on_retry hook that keeps every RetryEvent."""

    def __init__(self) -> None:
        self.events: list[anyoai.RetryEvent] = []

    def __call__(self, event: anyoai.RetryEvent) -> None:
        self.events.append(event)

    @property
    def waits(self) -> list[float]:
        return [e.wait for e in self.events]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def retry_pool(server: FakeServer, recorder: Recorder) -> AsyncIterator[anyoai.Pool]:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, on_retry=recorder) as pool:
        yield pool


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried_up_to_max_retries(
    retry_pool: anyoai.Pool, server: FakeServer, recorder: Recorder, status: int
) -> None:
    server.add_fault(Fault(status=status, times=2))
    result = await retry_pool.chat.completions.create(model="m", messages=HELLO)
    assert result.attempts == 3
    assert len(server.requests) == 3
    assert [e.attempt for e in recorder.events] == [1, 2]
    assert all(e.backend == "default" for e in recorder.events)
    assert all(isinstance(e.error, anyoai.APIStatusError) for e in recorder.events)

    server.clear()
    server.add_fault(Fault(status=status, times=3))
    with pytest.raises(anyoai.APIStatusError) as info:
        await retry_pool.chat.completions.create(model="m", messages=HELLO)
    assert info.value.status_code == status
    assert len(server.requests) == 3  # 1 + max_retries (2)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_caller_errors_are_never_retried(
    retry_pool: anyoai.Pool, server: FakeServer, recorder: Recorder, status: int
) -> None:
    server.add_fault(Fault(status=status, times=3))
    with pytest.raises(anyoai.APIStatusError):
        await retry_pool.chat.completions.create(model="m", messages=HELLO)
    assert len(server.requests) == 1
    assert recorder.events == []


async def test_insufficient_quota_is_not_retried(
    retry_pool: anyoai.Pool, server: FakeServer
) -> None:
    server.add_fault(Fault(status=429, code="insufficient_quota", times=3))
    with pytest.raises(anyoai.RateLimitError) as info:
        await retry_pool.chat.completions.create(model="m", messages=HELLO)
    assert info.value.code == "insufficient_quota"
    assert len(server.requests) == 1


async def test_max_retries_per_call_and_per_pool(server: FakeServer) -> None:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, max_retries=4) as pool:
        server.add_fault(Fault(status=503, times=4))
        assert (await pool.models.list()).attempts == 5
        server.add_fault(Fault(status=503, times=4))
        with pytest.raises(anyoai.InternalServerError):
            await pool.models.list(max_retries=1)


async def test_connection_errors_are_retried(retry_pool: anyoai.Pool, server: FakeServer) -> None:
    server.add_fault(Fault(drop="before_headers", times=2))
    result = await retry_pool.chat.completions.create(model="m", messages=HELLO)
    assert result.attempts == 3


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(status=429, retry_after=2), 2.0),
        (Fault(status=503, retry_after="7"), 7.0),
        (Fault(status=429, retry_after_ms=250), 0.25),
        (Fault(status=429, retry_after=9, retry_after_ms=120), 0.12),  # ms wins
    ],
)
async def test_waits_honour_the_server(
    retry_pool: anyoai.Pool, server: FakeServer, recorder: Recorder, fault: Fault, expected: float
) -> None:
    server.add_fault(fault)
    await retry_pool.chat.completions.create(model="m", messages=HELLO)
    assert recorder.waits == [pytest.approx(expected)]


async def test_wait_from_an_http_date(
    retry_pool: anyoai.Pool, server: FakeServer, recorder: Recorder
) -> None:
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.add_fault(Fault(status=429, retry_after=date))
    await retry_pool.chat.completions.create(model="m", messages=HELLO)
    (wait,) = recorder.waits
    assert 25 <= wait <= 31


async def test_backoff_without_a_server_wait_is_jittered_within_its_window(
    server: FakeServer, recorder: Recorder
) -> None:
    policy = anyoai.RetryPolicy(max_retries=4, initial_backoff=0.5, max_backoff=2)
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, retry=policy, on_retry=recorder
    ) as pool:
        server.add_fault(Fault(status=500, times=4))
        await pool.models.list()
    windows = [0.5, 1.0, 2.0, 2.0]
    assert len(recorder.waits) == 4
    assert all(0 <= w <= window for w, window in zip(recorder.waits, windows, strict=True))


async def test_a_wait_above_the_ceiling_is_an_immediate_error(
    server: FakeServer, recorder: Recorder
) -> None:
    policy = anyoai.RetryPolicy(max_retry_after=60)
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, retry=policy, on_retry=recorder
    ) as pool:
        server.add_fault(Fault(status=429, retry_after=3600, times=3))
        with pytest.raises(anyoai.RateLimitError) as info:
            await pool.models.list()
    assert info.value.retry_after == 3600
    assert len(server.requests) == 1
    assert recorder.events == []


async def test_x_should_retry_overrides_the_decision(
    retry_pool: anyoai.Pool, server: FakeServer
) -> None:
    server.add_fault(Fault(status=400, headers={"x-should-retry": "true"}))
    assert (await retry_pool.models.list()).attempts == 2
    server.clear()
    server.add_fault(Fault(status=503, headers={"x-should-retry": "false"}, times=3))
    with pytest.raises(anyoai.InternalServerError):
        await retry_pool.models.list()
    assert len(server.requests) == 1


async def test_deadline_stops_retries_whose_wait_would_overrun_it(
    server: FakeServer, recorder: Recorder
) -> None:
    policy = anyoai.RetryPolicy(max_retries=5, deadline=5)
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, retry=policy, on_retry=recorder
    ) as pool:
        server.add_fault(Fault(status=503, retry_after=3, times=5))
        with pytest.raises(anyoai.InternalServerError):
            await pool.models.list()
    assert recorder.waits == [3.0]  # a second 3 s wait would end after 6 s > 5 s
    assert len(server.requests) == 2


async def test_idempotency_key_is_the_same_on_every_attempt(
    retry_pool: anyoai.Pool, server: FakeServer
) -> None:
    server.add_fault(Fault(status=503, times=2))
    await retry_pool.chat.completions.create(model="m", messages=HELLO)
    await retry_pool.chat.completions.create(model="m", messages=HELLO)
    keys = [r.headers["idempotency-key"] for r in server.requests]
    assert len(keys) == 4
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] != keys[0]
    assert "idempotency-key" not in (await _get_headers(retry_pool, server))


async def _get_headers(pool: anyoai.Pool, server: FakeServer) -> dict[str, str]:
    await pool.models.list()
    return server.requests[-1].headers


async def test_stream_is_retried_before_its_head_but_never_after_its_first_event(
    retry_pool: anyoai.Pool, server: FakeServer
) -> None:
    server.add_fault(Fault(status=503))
    stream = await retry_pool.chat.completions.create(model="m", messages=HELLO, stream=True)
    assert stream.attempts == 2
    await stream.aclose()
    server.clear()
    server.add_fault(Fault(drop="mid_stream", after_events=2, times=5))
    seen = 0
    with pytest.raises(anyoai.APIConnectionError):
        async with await retry_pool.chat.completions.create(
            model="m", messages=HELLO, stream=True
        ) as stream:
            async for _ in stream:
                seen += 1
    assert seen == 2
    assert len(server.requests) == 1


async def test_a_failing_hook_does_not_fail_the_request(server: FakeServer) -> None:
    def broken(event: anyoai.RetryEvent) -> None:
        raise RuntimeError("metrics backend down")

    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, on_retry=broken) as pool:
        server.add_fault(Fault(status=503))
        assert (await pool.models.list()).attempts == 2
