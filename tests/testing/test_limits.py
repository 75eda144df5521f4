"""Tests of the fake server's OpenAI-style rate limits and latency, under asyncio and trio.

Raw httpcore clients, as in ``test_server.py``: the point is the server, not anyoai. Nothing
here asserts how long something took, only lower bounds; waits use the server's own
``retry-after-ms``. A long ``rate_limit_period`` (1e6 s) makes refill negligible where exact
counts matter.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpcore
import pytest

from anyoai._ratelimit import parse_duration
from anyoai.testing import FakeServer, Fault, RateLimitStats, run_in_thread
from anyoai.testing._ratelimit import Bucket, ceil_ms, format_duration, format_retry_after

from ..helpers import (
    CHAT,
    call,
    chat_body,
    error_of,
    fake_server_process,
    header,
    raw_request,
    wait_for,
)

pytestmark = pytest.mark.anyio

LONG = 1e6  # a period so long that nothing refills during a test
LIMIT_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)


@pytest.fixture
async def pool() -> AsyncIterator[httpcore.AsyncConnectionPool]:
    async with httpcore.AsyncConnectionPool(max_connections=20) as client:
        yield client


def remaining(response: httpcore.Response, kind: str) -> int:
    value = header(response, f"x-ratelimit-remaining-{kind}")
    assert value is not None
    return int(value)


def embed_body(words: int) -> dict[str, Any]:
    return {"model": "text-embedding-3-small", "input": " ".join(["w"] * words)}


async def embed(
    pool: httpcore.AsyncConnectionPool, server: FakeServer, words: int
) -> httpcore.Response:
    return await call(pool, server, "/embeddings", embed_body(words))


def retry_after_ms(response: httpcore.Response) -> int:
    value = header(response, "retry-after-ms")
    assert value is not None and value.isdigit()
    return int(value)


# ------------------------------------------------------------------------------ pure parts


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-3, "0s"),
        (0.0004, "1ms"),
        (0.02, "20ms"),
        (0.0201, "21ms"),
        (1 / 6, "167ms"),
        (0.999, "999ms"),
        (0.9991, "1s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (12.34, "12.34s"),
        (59.9999, "1m0s"),
        (60, "1m0s"),
        (71.339, "1m11.339s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (3723.5, "1h2m3.5s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    parsed = parse_duration(text)  # anyoai's own parser reads it back
    assert parsed is not None
    assert parsed >= seconds - 1e-9
    assert parsed - max(seconds, 0) < 0.001


def test_retry_after_format() -> None:
    assert [format_retry_after(ms) for ms in (1, 20, 250, 1000, 1500, 60001)] == [
        "0.001",
        "0.02",
        "0.25",
        "1",
        "1.5",
        "60.001",
    ]
    assert (ceil_ms(0.25), ceil_ms(0.2501), ceil_ms(1.5), ceil_ms(0)) == (250, 251, 1500, 0)


def test_bucket() -> None:
    bucket = Bucket(10, 10.0)  # one token a second
    assert bucket.level(100.0) == 10  # starts full, whenever its clock starts
    assert bucket.wait(10, 100.0) == 0
    assert bucket.wait(11, 100.0) == math.inf
    bucket.take(10, 100.0)
    assert bucket.level(105.0) == pytest.approx(5)
    assert bucket.wait(8, 105.0) == pytest.approx(3)
    assert bucket.until_full(105.0) == pytest.approx(5)
    assert bucket.remaining(105.5) == 5
    assert bucket.level(1000.0) == 10  # never above capacity
    assert bucket.level(999.0) == 10  # time never goes backwards

    bucket.take(6, 1000.0, hold=4)  # 2 used, 4 reserved
    assert bucket.level(1000.0) == 4
    assert bucket.level(2000.0) == 6  # refills only up to capacity minus the reservation
    assert bucket.until_full(2000.0) == 0
    bucket.release(4, 2000.0)
    assert bucket.level(2000.0) == 10
    bucket.release(4, 2000.0)  # nothing more is held
    assert bucket.level(2000.0) == 10

    with pytest.raises(ValueError, match="capacity"):
        Bucket(0, 1.0)
    with pytest.raises(ValueError, match="period"):
        Bucket(1, 0.0)
    with pytest.raises(ValueError, match="hold"):
        bucket.take(1, 2000.0, hold=2)


def test_stats_peak() -> None:
    stats = RateLimitStats(
        accepted=4,
        events=((0.0, 1, 5), (0.4, 1, 5), (0.5, 1, 7), (1.2, 1, 1)),
    )
    assert stats.peak(0.5) == (2, 12)  # [0, 0.5) holds 2 requests; [0.4, 0.9) 12 tokens
    assert stats.peak(0.6) == (3, 17)
    assert stats.peak(0.1) == (1, 7)
    assert stats.peak(10) == (4, 18)
    assert RateLimitStats().peak(1) == (0, 0)
    with pytest.raises(ValueError, match="window"):
        stats.peak(0)


def test_options_are_validated() -> None:
    for bad in ({"rpm": 0}, {"tpm": -1}, {"rpm": True}, {"tpm": 1.5}):
        with pytest.raises(ValueError, match=r"rpm|tpm"):
            FakeServer(**bad)
    for period in (0, -1, math.inf):
        with pytest.raises(ValueError, match="rate_limit_period"):
            FakeServer(rate_limit_period=period)
    with pytest.raises(ValueError, match="latency"):
        FakeServer(latency=-0.1)


# ------------------------------------------------------------------------------ headers


async def test_no_limits_no_headers_but_stats(pool: httpcore.AsyncConnectionPool) -> None:
    async with FakeServer() as server:
        for _ in range(3):
            response = await call(pool, server, CHAT, chat_body("a b c", max_tokens=50))
            assert response.status == 200
            assert all(header(response, name) is None for name in LIMIT_HEADERS)
        stats = server.rate_limit_stats()
    assert (stats.accepted, stats.rejected, stats.requests_charged) == (3, 0, 3)
    assert stats.tokens_charged == 3 * (3 + 9)


async def test_headers_on_every_response(pool: httpcore.AsyncConnectionPool) -> None:
    async with FakeServer(rpm=5, tpm=1000, rate_limit_period=LONG) as server:
        first = await call(pool, server, CHAT, chat_body("hello there world"))
        assert first.status == 200
        assert header(first, "x-ratelimit-limit-requests") == "5"
        assert header(first, "x-ratelimit-limit-tokens") == "1000"
        assert remaining(first, "requests") == 4
        # no max_tokens: only the 3 prompt words are charged
        assert remaining(first, "tokens") == 1000 - 3
        reset = parse_duration(header(first, "x-ratelimit-reset-requests") or "")
        assert reset == pytest.approx(LONG / 5, abs=0.01)
        reset = parse_duration(header(first, "x-ratelimit-reset-tokens") or "")
        assert reset == pytest.approx(3 * LONG / 1000, abs=0.01)

        second = await call(pool, server, "/models", method="GET")  # a request, no tokens
        assert (remaining(second, "requests"), remaining(second, "tokens")) == (3, 997)

        invalid = await call(pool, server, CHAT, {"model": "m"})  # errors are not charged
        assert invalid.status == 400
        assert (remaining(invalid, "requests"), remaining(invalid, "tokens")) == (3, 997)
        missing = await call(pool, server, "/nowhere", method="GET")
        assert missing.status == 404
        assert remaining(missing, "requests") == 3

        server.add_fault(Fault(status=503))  # nor are faults that replace the answer
        faulted = await call(pool, server, CHAT, chat_body())
        assert faulted.status == 503
        assert (remaining(faulted, "requests"), remaining(faulted, "tokens")) == (3, 997)
        stats = server.rate_limit_stats()
    assert (stats.accepted, stats.rejected, stats.tokens_charged) == (2, 0, 3)


async def test_only_the_limits_set_have_headers(pool: httpcore.AsyncConnectionPool) -> None:
    async with FakeServer(tpm=50) as server:
        response = await call(pool, server, CHAT, chat_body("x"))
    assert header(response, "x-ratelimit-limit-tokens") == "50"
    assert header(response, "x-ratelimit-limit-requests") is None
    assert header(response, "x-ratelimit-remaining-requests") is None


async def test_unauthenticated_requests_are_not_charged(
    pool: httpcore.AsyncConnectionPool,
) -> None:
    async with FakeServer(api_key="sk-limits-0123456789", rpm=1, rate_limit_period=LONG) as server:
        denied = await call(pool, server, CHAT, chat_body())
        assert denied.status == 401
        assert remaining(denied, "requests") == 1
        auth = {"authorization": "Bearer sk-limits-0123456789"}
        assert (await call(pool, server, CHAT, chat_body(), headers=auth)).status == 200
        assert (await call(pool, server, CHAT, chat_body(), headers=auth)).status == 429


# ------------------------------------------------------------------------------ 429s


async def test_rpm_exhausted(pool: httpcore.AsyncConnectionPool) -> None:
    async with FakeServer(rpm=3, rate_limit_period=LONG) as server:
        statuses = [(await call(pool, server, CHAT, chat_body())).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = await call(pool, server, CHAT, chat_body())
        assert refused.status == 429
        error = error_of(refused)
        assert error["type"] == "requests"
        assert error["code"] == "rate_limit_exceeded"
        assert error["param"] is None
        ms = retry_after_ms(refused)
        assert ms == pytest.approx(LONG / 3 * 1000, abs=1000)
        assert header(refused, "retry-after") == format_retry_after(ms)
        wait = format_duration(ms / 1000)
        assert error["message"] == (
            "Rate limit reached for gpt-4o-mini in organization org-fake on requests per min "
            f"(RPM): Limit 3, Used 3, Requested 1. Please try again in {wait}."
        )
        assert remaining(refused, "requests") == 0
        stats = server.rate_limit_stats()
        assert (stats.accepted, stats.rejected, stats.requests_charged) == (3, 1, 3)

        server.clear()  # resets the statistics, not the buckets
        assert server.rate_limit_stats() == RateLimitStats()
        assert (await call(pool, server, "/models", method="GET")).status == 429
        assert server.rate_limit_stats().rejected == 1


async def test_tpm_charge_reserves_max_tokens_times_n_and_refunds(
    pool: httpcore.AsyncConnectionPool,
) -> None:
    async with FakeServer(tpm=100, rate_limit_period=LONG) as server:
        # charge 3 + 20 * 2 = 43; used 3 + 2 * 9 = 21; 22 refunded
        first = await call(pool, server, CHAT, chat_body("a b c", max_tokens=20, n=2))
        assert first.status == 200
        assert json.loads(first.content)["usage"]["total_tokens"] == 21
        assert remaining(first, "tokens") == 79

        # charge 3 + 40 * 2 = 83 > 79: refused, nothing taken
        refused = await call(pool, server, CHAT, chat_body("a b c", max_tokens=40, n=2))
        assert refused.status == 429
        error = error_of(refused)
        assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
        assert error["message"].startswith(
            "Rate limit reached for gpt-4o-mini in organization org-fake on tokens per min "
            "(TPM): Limit 100, Used 21, Requested 83. Please try again in "
        )
        assert retry_after_ms(refused) == pytest.approx(4 * LONG / 100 * 1000, abs=1000)
        assert remaining(refused, "tokens") == 79

        # max_completion_tokens wins over max_tokens: charge 3 + 30 * 2 = 63 fits
        body = chat_body("a b c", max_tokens=40, max_completion_tokens=30, n=2, stream=True)
        streamed = await call(pool, server, CHAT, body)
        assert streamed.status == 200
        assert remaining(streamed, "tokens") == 58

        # no max_tokens: only the prompt is charged
        plain = await call(pool, server, CHAT, chat_body("x y"))
        assert remaining(plain, "tokens") == 56
        # legacy completions reserve max_tokens * n for every prompt: 3 + 5 * 2 * 2 = 23
        completion = {"model": "m", "prompt": ["a b", "c"], "n": 2, "max_tokens": 5}
        answer = await call(pool, server, "/completions", completion)
        assert json.loads(answer.content)["usage"]["total_tokens"] == 23
        assert remaining(answer, "tokens") == 33
        # embeddings and moderations cost their input words
        assert remaining(await embed(pool, server, 3), "tokens") == 30
        moderation = await call(pool, server, "/moderations", {"input": ["kill it", "hate"]})
        assert remaining(moderation, "tokens") == 27
        stats = server.rate_limit_stats()
    assert stats.tokens_charged == 100 - 27
    assert [tokens for _, _, tokens in stats.events] == [21, 21, 2, 23, 3, 3]
    assert (stats.accepted, stats.rejected) == (6, 1)


async def test_request_too_large(pool: httpcore.AsyncConnectionPool) -> None:
    async with FakeServer(rpm=10, tpm=10, rate_limit_period=LONG) as server:
        response = await call(pool, server, CHAT, chat_body("hello", max_tokens=20))
        assert response.status == 429
        assert error_of(response) == {
            "message": "Request too large for gpt-4o-mini in organization org-fake on tokens "
            "per min (TPM): Limit 10, Requested 21. The input or output tokens must be reduced "
            "in order to run successfully.",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        assert header(response, "retry-after") is None
        assert header(response, "retry-after-ms") is None
        assert (remaining(response, "requests"), remaining(response, "tokens")) == (10, 10)
        assert (await embed(pool, server, 10)).status == 200  # the whole limit is fine
        stats = server.rate_limit_stats()
    assert (stats.accepted, stats.rejected, stats.tokens_charged) == (1, 1, 10)


@pytest.mark.parametrize(
    ("kind", "rpm", "tpm", "words"),
    [("requests", 2, None, 1), ("tokens", None, 30, 12)],
)
async def test_refill_after_the_servers_retry_after(
    pool: httpcore.AsyncConnectionPool, kind: str, rpm: int | None, tpm: int | None, words: int
) -> None:
    async with FakeServer(rpm=rpm, tpm=tpm, rate_limit_period=0.5) as server:
        with anyio.fail_after(10):
            for _ in range(3):
                while True:  # until the bucket runs short, however slow the machine
                    refused = await embed(pool, server, words)
                    if refused.status == 429:
                        break
                    assert refused.status == 200
                assert error_of(refused)["type"] == kind
                await anyio.sleep(retry_after_ms(refused) / 1000)
                accepted = await embed(pool, server, words)
                assert accepted.status == 200


async def test_window_property_under_load(pool: httpcore.AsyncConnectionPool) -> None:
    rpm, tpm, period = 6, 20, 0.5
    statuses: list[int] = []
    async with FakeServer(rpm=rpm, tpm=tpm, rate_limit_period=period) as server:
        deadline = anyio.current_time() + 1.5

        async def client() -> None:
            while anyio.current_time() < deadline:
                response = await embed(pool, server, 5)
                statuses.append(response.status)
                if response.status == 429:
                    await anyio.sleep(retry_after_ms(response) / 1000)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                for _ in range(4):
                    group.start_soon(client)
        stats = server.rate_limit_stats()

    assert set(statuses) <= {200, 429}
    assert stats.accepted == statuses.count(200) > tpm // 5
    assert stats.rejected == statuses.count(429) > 0
    assert stats.requests_charged == stats.accepted == len(stats.events)
    assert stats.tokens_charged == 5 * stats.accepted
    times = [when for when, _, _ in stats.events]
    assert times == sorted(times)
    # the token-bucket bound: what [s, t] holds <= limit + limit * (t - s) / period
    for (i, first), (j, last) in itertools.combinations_with_replacement(
        enumerate(stats.events), 2
    ):
        span = stats.events[i : j + 1]
        elapsed = last[0] - first[0]
        assert sum(entry[1] for entry in span) <= rpm + rpm * elapsed / period + 1e-6
        assert sum(entry[2] for entry in span) <= tpm + tpm * elapsed / period + 1e-6
    # so a window of one period holds at most twice the limit (a burst, then a refill)
    most_requests, most_tokens = stats.peak(period)
    assert most_requests <= 2 * rpm
    assert most_tokens <= 2 * tpm


# ------------------------------------------------------------------------------ faults, latency


async def test_faults_take_priority(pool: httpcore.AsyncConnectionPool) -> None:
    async with FakeServer(rpm=1, rate_limit_period=LONG) as server:
        server.add_fault(Fault(status=429, retry_after=7))
        faulted = await call(pool, server, CHAT, chat_body())
        assert faulted.status == 429
        assert header(faulted, "retry-after") == "7"
        assert error_of(faulted)["message"] == (
            "Rate limit reached for requests. Please try again later."
        )
        assert remaining(faulted, "requests") == 1  # a fault's 429 takes nothing
        assert (await call(pool, server, CHAT, chat_body())).status == 200

        # the bucket is empty, but a fault that replaces the answer still comes first
        fault = json.dumps({"status": 500})
        headers = {"x-fake-fault": fault}
        assert (await call(pool, server, CHAT, chat_body(), headers=headers)).status == 500
        override = {"headers": {"x-ratelimit-remaining-requests": "42"}, "status": 503}
        headers = {"x-fake-fault": json.dumps(override)}
        response = await call(pool, server, CHAT, chat_body(), headers=headers)
        assert response.status == 503
        assert remaining(response, "requests") == 42  # fault headers win
        # a fault that leaves the answer to the endpoint leaves it to the limiter too
        headers = {"x-fake-fault": json.dumps({"latency": 0.01})}
        limited = await call(pool, server, CHAT, chat_body(), headers=headers)
        assert limited.status == 429
        assert error_of(limited)["type"] == "requests"
        stats = server.rate_limit_stats()
    assert (stats.accepted, stats.rejected) == (1, 1)


async def test_latency_applies_to_every_answer(pool: httpcore.AsyncConnectionPool) -> None:
    latency = 0.2
    async with FakeServer(latency=latency, rpm=1, rate_limit_period=LONG) as server:
        for expected in (200, 429):
            started = anyio.current_time()
            response = await call(pool, server, CHAT, chat_body())
            assert response.status == expected
            assert anyio.current_time() - started >= latency - 0.005
            assert int(header(response, "openai-processing-ms") or 0) >= latency * 1000 - 5


async def test_reservation_is_held_during_latency(pool: httpcore.AsyncConnectionPool) -> None:
    async with FakeServer(tpm=100, rate_limit_period=LONG, latency=0.5) as server:
        first: list[httpcore.Response] = []

        async def slow() -> None:
            first.append(await call(pool, server, CHAT, chat_body("a b c", max_tokens=20, n=2)))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(slow)
                await wait_for(
                    lambda: server.rate_limit_stats().accepted, "the first request", timeout=5
                )
                # 43 reserved while the first answer is on its way: 63 does not fit
                refused = await call(pool, server, CHAT, chat_body("a b c", max_tokens=30, n=2))
                assert refused.status == 429
                assert "Used 43, Requested 63" in error_of(refused)["message"]
        assert remaining(first[0], "tokens") == 79  # refunded once answered
        again = await call(pool, server, CHAT, chat_body("a b c", max_tokens=30, n=2))
        assert again.status == 200


async def test_latency_is_cancelled_when_the_client_leaves() -> None:
    async with FakeServer(latency=3600, tpm=100, rate_limit_period=LONG) as server:
        with anyio.fail_after(10):
            async with await anyio.connect_tcp(server.host, server.port) as stream:
                body = json.dumps(chat_body("a b", max_tokens=10)).encode()
                await stream.send(raw_request("POST", "/v1/chat/completions", body))
                await wait_for(lambda: server.rate_limit_stats().accepted, "the request", timeout=5)
                assert server.open_connections == 1
            await wait_for(
                lambda: server.open_connections == 0, "the connection to close", timeout=5
            )
        assert server.open_connections == 0
        # the reservation came back: only the 2 + 8 tokens of the answer stay used
        bucket = server._limiter.tokens
        assert bucket is not None
        assert bucket.remaining(anyio.current_time()) == 100 - 10
        assert server.rate_limit_stats().tokens_charged == 10


# ------------------------------------------------------------------------------ blocking use


def test_run_in_thread_with_limits() -> None:
    with run_in_thread(rpm=2, rate_limit_period=LONG) as server:
        for _ in range(2):
            with urllib.request.urlopen(server.url + "/models", timeout=10) as response:
                assert response.headers["x-ratelimit-remaining-requests"] in ("0", "1")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(server.url + "/models", timeout=10)
        assert caught.value.code == 429
        assert caught.value.headers["retry-after-ms"].isdigit()
        caught.value.close()
        stats = server.rate_limit_stats()
    assert (stats.accepted, stats.rejected, stats.tokens_charged) == (2, 1, 0)


def test_command_line_flags() -> None:
    flags = ["--rpm", "1", "--tpm", "500", "--rate-limit-period", "3600", "--latency", "0.01"]
    with fake_server_process(*flags) as (process, url):
        with urllib.request.urlopen(url + "/models", timeout=10) as response:
            assert response.headers["x-ratelimit-limit-requests"] == "1"
            assert response.headers["x-ratelimit-limit-tokens"] == "500"
            assert re.fullmatch(
                r"\d+m[\d.]+s|[\d.]+s", response.headers["x-ratelimit-reset-requests"]
            )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url + "/models", timeout=10)
        assert caught.value.code == 429
        caught.value.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
