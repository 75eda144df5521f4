"""What requests cost: ``result.consumption`` for every kind of result, and ``pool.usage``.

Prices are written out here by hand, in US dollars per 1M tokens, from OpenAI's price list (the
same figures ``anyoai/pricing.json`` ships), and token counts are read from the raw JSON the
server sent, so the expected costs do not go through anyoai's own arithmetic.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import anyoai
from anyoai.testing import FakeServer, Fault

from .helpers import API_KEY, function_calls

pytestmark = pytest.mark.anyio

ASK = [{"role": "user", "content": "What does a token cost these days, roughly?"}]

# US dollars per 1M tokens: input, output (and cached input where it is used)
GPT_4O_MINI = (0.15, 0.60)
GPT_4O = (2.50, 10.00)
GPT_4O_CACHED_INPUT = 1.25
INSTRUCT = (1.50, 2.00)
EMBEDDING_3_SMALL = 0.02


def priced(prompt: int, completion: int, prices: tuple[float, float]) -> float:
    return (prompt * prices[0] + completion * prices[1]) / 1_000_000


async def test_chat_consumption(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    usage = result.raw["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    cost = result.consumption
    assert cost is not None
    assert cost == pytest.approx(
        priced(usage["prompt_tokens"], usage["completion_tokens"], GPT_4O_MINI)
    )
    assert isinstance(cost, float) and not cost.estimated and not cost.batch
    assert (cost.prompt_tokens, cost.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert cost.model == "gpt-4o-mini"
    assert "gpt-4o-mini" in repr(cost) and "estimated" not in repr(cost)


async def test_dated_snapshots_and_aliases_find_their_model(pool: anyoai.Pool) -> None:
    for model, prices in [
        ("gpt-4o-2024-08-06", GPT_4O),
        ("gpt-4o-mini-2024-07-18", GPT_4O_MINI),
        ("chatgpt-4o-latest", GPT_4O),
        ("gpt-4o-mini-2099-01-01", GPT_4O_MINI),  # a snapshot newer than the table
    ]:
        result = await pool.chat.completions.create(model=model, messages=ASK)
        usage = result.raw["usage"]
        expected = priced(usage["prompt_tokens"], usage["completion_tokens"], prices)
        assert result.consumption == pytest.approx(expected), model


async def test_cached_input_tokens_are_billed_at_the_cached_price(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    body = {
        "id": "chatcmpl-cached",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Cheap, when cached."},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 2048,
            "completion_tokens": 100,
            "total_tokens": 2148,
            "prompt_tokens_details": {"cached_tokens": 1536},
        },
    }
    server.add_fault(Fault(body=json.dumps(body)))
    result = await pool.chat.completions.create(model="gpt-4o", messages=ASK)
    expected = (512 * GPT_4O[0] + 1536 * GPT_4O_CACHED_INPUT + 100 * GPT_4O[1]) / 1_000_000
    assert result.consumption == pytest.approx(expected)
    assert result.consumption is not None and result.consumption.cached_tokens == 1536


async def test_stream_with_usage_chunk(pool: anyoai.Pool) -> None:
    stream = await pool.chat.completions.create(
        model="gpt-4o-mini",
        messages=ASK,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage: dict[str, Any] = {}
    async with stream:
        async for chunk in stream:
            if chunk.usage is not None:
                usage = {
                    "prompt_tokens": chunk.usage.prompt_tokens,
                    "completion_tokens": chunk.usage.completion_tokens,
                }
    final = await stream.get_final_completion()
    assert usage, "the server sent a usage chunk"
    cost = final.consumption
    assert cost is not None and not cost.estimated
    assert cost == pytest.approx(
        priced(usage["prompt_tokens"], usage["completion_tokens"], GPT_4O_MINI)
    )
    assert final.meta is not None and final.meta.estimated_usage is None


async def test_stream_without_usage_is_estimated_with_tiktoken(pool: anyoai.Pool) -> None:
    stream = await pool.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True)
    final = await stream.get_final_completion()
    assert final.usage is None  # the server sent none
    text = final.choices[0].message.content or ""
    assert text
    prompt = anyoai.count_tokens(ASK, model="gpt-4o-mini")
    completion = anyoai.count_tokens(text, model="gpt-4o-mini")
    cost = final.consumption
    assert cost is not None and cost.estimated
    assert (cost.prompt_tokens, cost.completion_tokens) == (prompt, completion)
    assert cost == pytest.approx(priced(prompt, completion, GPT_4O_MINI))
    assert "estimated" in repr(cost)
    assert final.meta is not None and final.meta.estimated_usage is not None


async def test_estimate_of_a_streamed_tool_call_counts_its_arguments(pool: anyoai.Pool) -> None:
    def get_time(timezone: str) -> str:
        """Get the time."""
        return timezone

    stream = await pool.chat.completions.create(
        model="gpt-4o-mini", messages=ASK, tools=[get_time], stream=True
    )
    final = await stream.get_final_completion()
    call = function_calls(final)[0].function
    cost = final.consumption
    assert cost is not None and cost.estimated
    assert cost.completion_tokens == (
        anyoai.count_tokens(call.name, model="gpt-4o-mini")
        + anyoai.count_tokens(call.arguments, model="gpt-4o-mini")
    )


async def test_completions_and_embeddings_consumption(pool: anyoai.Pool) -> None:
    completion = await pool.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test"
    )
    usage = completion.raw["usage"]
    assert completion.consumption == pytest.approx(
        priced(usage["prompt_tokens"], usage["completion_tokens"], INSTRUCT)
    )
    embeddings = await pool.embeddings.create(
        model="text-embedding-3-small", input=["one text", "and another one"]
    )
    tokens = embeddings.raw["usage"]["prompt_tokens"]
    assert tokens > 0
    assert embeddings.consumption == pytest.approx(tokens * EMBEDDING_3_SMALL / 1_000_000)


async def test_unknown_model_gives_none_and_one_warning(
    pool: anyoai.Pool, anyio_backend: str
) -> None:
    model = f"acme-unpriced-model-{anyio_backend}"  # the warning comes once per process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = await pool.chat.completions.create(model=model, messages=ASK)
        second = await pool.chat.completions.create(model=model, messages=ASK)
        assert first.consumption is None and second.consumption is None
    mine = [w for w in caught if model in str(w.message)]
    assert len(mine) == 1
    assert issubclass(mine[0].category, RuntimeWarning)
    assert "anyoai.pricing.set_price" in str(mine[0].message)
    totals = pool.usage.by_model[model]
    assert totals.requests == 2 and totals.unpriced == 2 and totals.cost == 0.0


async def test_prices_set_at_run_time(pool: anyoai.Pool, tmp_path: Path) -> None:
    anyoai.pricing.set_price("acme-finetune-1", input=3.0, output=12.0, aliases=["acme-ft"])
    result = await pool.chat.completions.create(model="acme-ft", messages=ASK)
    usage = result.raw["usage"]
    assert result.consumption == pytest.approx(
        priced(usage["prompt_tokens"], usage["completion_tokens"], (3.0, 12.0))
    )
    prices = {"models": {"acme-local-2": {"input": 0.5, "output": 1.0, "snapshots": ["acme-l2"]}}}
    (tmp_path / "prices.json").write_text(json.dumps(prices))
    anyoai.pricing.load(tmp_path / "prices.json")
    assert anyoai.pricing.lookup("acme-l2") == anyoai.pricing.Price(input=0.5, output=1.0)
    result = await pool.chat.completions.create(model="acme-local-2", messages=ASK)
    usage = result.raw["usage"]
    assert result.consumption == pytest.approx(
        priced(usage["prompt_tokens"], usage["completion_tokens"], (0.5, 1.0))
    )


def test_the_shipped_table() -> None:
    table = anyoai.pricing.table()
    assert table.as_of
    assert anyoai.pricing.lookup("gpt-4o-mini") == anyoai.pricing.Price(
        input=0.15, output=0.6, cached_input=0.075, batch_input=0.075, batch_output=0.3
    )
    assert anyoai.pricing.lookup("gpt-35-turbo") == anyoai.pricing.lookup("gpt-3.5-turbo")
    assert anyoai.pricing.lookup("openai/gpt-4o") == anyoai.pricing.lookup("gpt-4o")
    assert anyoai.pricing.lookup("no-such-model") is None


def test_batch_prices() -> None:
    cost = anyoai.pricing.cost_of(
        "gpt-4o-mini", prompt_tokens=1000, completion_tokens=500, batch=True
    )
    assert cost == pytest.approx((1000 * 0.075 + 500 * 0.30) / 1_000_000)
    assert cost is not None and cost.batch
    # a model the table lists no batch price for: half the standard one
    anyoai.pricing.set_price("acme-nobatch", input=1.0, output=4.0)
    cost = anyoai.pricing.cost_of(
        "acme-nobatch", prompt_tokens=1000, completion_tokens=500, batch=True
    )
    assert cost == pytest.approx((1000 * 0.5 + 500 * 2.0) / 1_000_000)


# --------------------------------------------------------------------------------------------
# pool.usage


@pytest.fixture
async def two_servers() -> AsyncIterator[tuple[FakeServer, FakeServer]]:
    async with FakeServer(api_key=API_KEY) as first, FakeServer(api_key=API_KEY) as second:
        yield first, second


async def test_pool_usage_totals_under_500_concurrent_calls(
    two_servers: tuple[FakeServer, FakeServer],
) -> None:
    first, second = two_servers
    backends = [
        anyoai.OpenAIBackend(name="a", base_url=first.url, api_key=API_KEY),
        anyoai.OpenAIBackend(name="b", base_url=second.url, api_key=API_KEY),
    ]
    results: list[Any] = []
    async with anyoai.open_pool(backends=backends) as pool:

        async def one(index: int) -> None:
            model = "gpt-4o-mini" if index % 2 else "gpt-4o"
            messages = [{"role": "user", "content": "word " * (1 + index % 7)}]
            if index % 5 == 0:  # a stream without usage: estimated
                stream = await pool.chat.completions.create(
                    model=model, messages=messages, stream=True
                )
                results.append(await stream.get_final_completion())
            else:
                results.append(await pool.chat.completions.create(model=model, messages=messages))

        async with anyio.create_task_group() as tg:
            for index in range(500):
                tg.start_soon(one, index)

        usage = pool.usage
        total = usage.total
        assert total.requests == 500
        assert total.estimated == 100
        assert total.unpriced == 0

        def tokens(result: Any) -> tuple[int, int]:
            counted = result.usage or result.meta.estimated_usage
            return counted.prompt_tokens, counted.completion_tokens

        assert total.prompt_tokens == sum(tokens(r)[0] for r in results)
        assert total.completion_tokens == sum(tokens(r)[1] for r in results)
        assert total.total_tokens == total.prompt_tokens + total.completion_tokens
        expected_cost = sum(
            priced(*tokens(r), GPT_4O if r.model == "gpt-4o" else GPT_4O_MINI) for r in results
        )
        assert total.cost == pytest.approx(expected_cost)

        assert set(usage.by_backend) == {"a", "b"}
        assert usage.by_backend["a"].requests == len(first.requests)
        assert usage.by_backend["b"].requests == len(second.requests)
        assert usage.by_backend["a"] + usage.by_backend["b"] == total
        assert {m: t.requests for m, t in usage.by_model.items()} == {
            "gpt-4o": 250,
            "gpt-4o-mini": 250,
        }
        assert usage.by_model["gpt-4o"].cost == pytest.approx(
            sum(priced(*tokens(r), GPT_4O) for r in results if r.model == "gpt-4o")
        )
        assert "500 requests" in repr(usage)

        usage.reset()
        assert usage.total == anyoai.UsageTotals()
        await pool.chat.completions.create(model="gpt-4o-mini", messages=ASK)
        assert pool.usage.total.requests == 1


async def test_failed_requests_cost_nothing(pool: anyoai.Pool, server: FakeServer) -> None:
    server.add_fault(Fault(status=400, times=1))
    with pytest.raises(anyoai.BadRequestError):
        await pool.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    assert pool.usage.total.requests == 0
