"""A 429's Retry-After in every form: honoured when sane, capped when hostile, never a stall.

The pause a 429 puts on its rate limiter is capped by ``RetryPolicy.max_retry_after`` (60 s by
default, as the official SDK), and any wait in the limiter counts against the call's own
timeout, which names the rate limit when it runs out.
"""

from __future__ import annotations

import email.utils
import time

import anyio
import pytest

import anyoai
from anyoai.testing import FakeServer, Fault, SystemClock

from ..helpers import API_KEY, HELLO

pytestmark = pytest.mark.anyio

HTTP_DATE_2099 = email.utils.formatdate(4_070_908_800, usegmt=True)  # 2099-01-01


def in_seconds(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(Fault(status=429, retry_after=2), 2.0, id="seconds"),
        pytest.param(Fault(status=429, retry_after_ms=1500), 1.5, id="ms"),
        pytest.param(Fault(status=429, retry_after="0"), 0.0, id="zero"),
        pytest.param(Fault(status=429, retry_after="-5"), None, id="negative"),
        pytest.param(Fault(status=429, retry_after="soon, maybe"), None, id="garbage"),
        pytest.param(Fault(status=429, retry_after=99999), 99999.0, id="huge"),
        pytest.param(Fault(status=429, retry_after_ms=99999999), 99999.999, id="huge-ms"),
        pytest.param(Fault(status=429, retry_after=HTTP_DATE_2099), "2099", id="date-2099"),
    ],
)
async def test_every_retry_after_form_is_read_and_capped(
    server: FakeServer, fault: Fault, expected: float | str | None
) -> None:
    policy = anyoai.RetryPolicy(max_retries=0, max_retry_after=3)
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, retry=policy, clock=SystemClock()
    ) as pool:
        server.add_fault(fault)
        with anyio.fail_after(5), pytest.raises(anyoai.RateLimitError) as info:
            await pool.chat.completions.create(model="m", messages=HELLO)
        retry_after = info.value.retry_after
        if expected == "2099":
            assert retry_after is not None and retry_after > 2_000_000_000
        elif expected is None:
            assert retry_after is None
        else:
            assert retry_after == pytest.approx(expected, abs=0.01)
        limiter = pool.limits.rate_limiter(model="m")
        assert limiter is not None
        # the pause is the server's wait, but never longer than max_retry_after
        paused = limiter.statistics().paused_for
        assert paused <= 3.0
        if expected == 0.0:
            assert paused == 0.0  # Retry-After: 0 means zero, not a default second


async def test_a_hostile_retry_after_never_stalls_the_next_call_past_its_timeout(
    server: FakeServer,
) -> None:
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, max_retries=0, clock=SystemClock()
    ) as pool:
        server.add_fault(Fault(status=429, retry_after=HTTP_DATE_2099))
        with anyio.fail_after(2), pytest.raises(anyoai.RateLimitError):
            await pool.chat.completions.create(model="m", messages=HELLO)  # raises at once
        limiter = pool.limits.rate_limiter(model="m")
        assert limiter is not None and 50 < limiter.statistics().paused_for <= 60  # capped
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(anyoai.APITimeoutError) as info:
            await pool.chat.completions.create(model="m", messages=HELLO, timeout=1)
        assert anyio.current_time() - started < 3
        assert "rate limit" in str(info.value)
        assert info.value.request_sent is False
        assert len(server.requests) == 1  # nothing else was sent
        assert pool.limits.in_flight == 0


async def test_a_sane_retry_after_is_waited_for_and_the_call_succeeds(server: FakeServer) -> None:
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, max_retries=1, clock=SystemClock()
    ) as pool:
        server.add_fault(Fault(status=429, retry_after_ms=200))
        with anyio.fail_after(5):
            result = await pool.chat.completions.create(model="m", messages=HELLO)
        assert result.attempts == 2


async def test_retry_after_zero_retries_at_once(server: FakeServer) -> None:
    events: list[anyoai.RetryEvent] = []
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, on_retry=events.append, clock=SystemClock()
    ) as pool:
        server.add_fault(Fault(status=429, retry_after="0", times=2))
        with anyio.fail_after(2):
            result = await pool.chat.completions.create(model="m", messages=HELLO)
        assert result.attempts == 3
        assert [e.wait for e in events] == [0.0, 0.0]
