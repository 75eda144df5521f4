"""The one result path (Exchange.complete), the token estimate on the request, and the clock."""

from __future__ import annotations

import time

import pytest

import anyoai
from anyoai._clock import default_clock
from anyoai._tokens import TokenEstimate, estimate_chat
from anyoai.testing import FakeServer, Fault, InstantClock, SystemClock, set_testing

from .helpers import API_KEY, HELLO

pytestmark = pytest.mark.anyio


async def test_a_result_carries_its_real_attempts_and_the_time_from_the_first(
    server: FakeServer,
) -> None:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool:
        server.add_fault(Fault(status=503, times=2))
        result = await pool.chat.completions.create(model="m", messages=HELLO)
        assert result.attempts == 3
        assert result.meta is not None and result.meta.raw["object"] == "chat.completion"
        assert result.elapsed > 0
        assert result.request_id is not None and result.request_id.startswith("req_")
        assert len(server.requests) == 3


async def test_usage_is_recorded_once_per_metered_result_and_never_for_other_objects(
    pool: anyoai.Pool,
) -> None:
    await pool.chat.completions.create(model="m", messages=HELLO)
    await pool.embeddings.create(model="e", input=["a", "b"])
    await pool.models.list()
    by_model = pool.usage.by_model
    assert sorted(by_model) == ["e", "m"]
    assert pool.usage.total.requests == 2
    line = (
        b'{"custom_id":"1","method":"POST","url":"/v1/chat/completions",'
        b'"body":{"model":"m","messages":[{"role":"user","content":"hi"}]}}\n'
    )
    batch_file = await pool.files.create(file=("in.jsonl", line), purpose="batch")
    batch = await pool.batches.create(
        input_file_id=batch_file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await pool.batches.wait(batch.id, poll_interval=0.01)
    again = await pool.batches.retrieve(batch.id)
    assert done.usage is not None and again.usage is not None  # the batch's own usage
    # ... is the batch's, not this request's: retrieving it twice counts nothing
    assert pool.usage.total.requests == 2


async def test_a_stream_without_usage_reuses_the_requests_token_estimate(
    server: FakeServer,
) -> None:
    limits = anyoai.Limits(tpm=1_000_000)  # a token limit makes the estimate run
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, limits=limits) as pool:
        stream = await pool.chat.completions.create(model="m", messages=HELLO, stream=True)
        async with stream:
            final = await stream.get_final_completion()
    assert final.usage is None
    assert final.meta is not None
    estimated = final.meta.estimated_usage
    assert estimated is not None
    assert estimated.prompt_tokens == estimate_chat({"model": "m", "messages": HELLO})[0]
    assert pool.usage.total.estimated == 1


async def test_a_token_estimate_is_computed_once() -> None:
    calls: list[int] = []

    def counting(params: object) -> tuple[int, int]:
        calls.append(1)
        return 7, 3

    estimate = TokenEstimate(counting, {"model": "gpt-4o"})
    assert estimate.prompt is None  # nothing asked yet
    assert await estimate.compute() == (7, 3)
    assert await estimate.compute() == (7, 3)
    assert estimate.prompt == 7
    assert calls == [1]


async def test_an_instant_clock_skips_waits_but_counts_them() -> None:
    clock = InstantClock()
    before_real = time.monotonic()
    before = clock.now()
    await clock.sleep(30)
    await clock.sleep(-1)  # a negative wait is none
    assert clock.skipped == 30
    assert clock.now() - before >= 30
    assert time.monotonic() - before_real < 5


async def test_retry_waits_run_on_the_pools_clock(server: FakeServer) -> None:
    clock = InstantClock()
    policy = anyoai.RetryPolicy(max_retries=3, deadline=25)
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, retry=policy, clock=clock
    ) as pool:
        assert pool.clock is clock
        server.add_fault(Fault(status=503, retry_after=10, times=3))
        with pytest.raises(anyoai.InternalServerError):
            await pool.models.list()
    # two 10 s waits were skipped; a third would end after the 25 s deadline on this clock
    assert clock.skipped == 20
    assert len(server.requests) == 3


async def test_set_testing_chooses_the_clock_of_pools_opened_afterwards() -> None:
    assert isinstance(default_clock(), InstantClock)  # tests/conftest.py set it
    first, second = default_clock(), default_clock()
    assert first is not second  # each pool counts its own skipped time
    set_testing(False)
    try:
        assert isinstance(default_clock(), SystemClock)
    finally:
        set_testing(True)
