"""A real OpenAI-compatible inference server: llama.cpp's (llama-cpp-python) on a tiny model.

The model has random weights, so its text is gibberish: the checks are about the protocol
(real SSE streams ending in ``data: [DONE]``, chunk shapes, cancellation, concurrency), never
about the words.
"""

from __future__ import annotations

import enum
from contextlib import AbstractAsyncContextManager
from typing import Literal

import anyio
import attrs
import pytest

import anyoai
import anyoai.types

from ..helpers import hello
from .report import REPORT

pytestmark = pytest.mark.anyio

MODEL = "tiny"
HELLO = hello("Hello, how are you?")


class Unit(str, enum.Enum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


@attrs.frozen
class Place:
    zone: Literal["UTC", "Europe/Paris"]
    unit: Unit


@attrs.frozen
class Reading:
    """Read a gauge somewhere."""

    place: Place
    hourly: bool
    level: Literal[1, 2, 3]
    flags: list[bool]
    note: Literal["ok"] | None


def pool_for(url: str) -> AbstractAsyncContextManager[anyoai.Pool]:
    return anyoai.open_pool(
        backends=[anyoai.CompatibleBackend(name="llama", base_url=url)], max_retries=0
    )


async def test_models_list(llama_server: str) -> None:
    async with pool_for(llama_server) as pool:
        models = await pool.models.list()
    assert MODEL in models.ids
    REPORT.record("llama.cpp models.list", "real server", "ok")


async def test_chat_completion(llama_server: str) -> None:
    async with pool_for(llama_server) as pool:
        result = await pool.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=12, temperature=0, seed=1
        )
    assert len(result) == 1
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].finish_reason in ("stop", "length")
    assert result.usage is not None and result.usage.completion_tokens > 0
    assert result.backend == "llama"
    REPORT.record("llama.cpp chat.completions.create", "real server", "ok")


async def test_chat_stream_and_accumulator(llama_server: str) -> None:
    async with pool_for(llama_server) as pool:
        stream = await pool.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=12, temperature=0, seed=1, stream=True
        )
        async with stream:
            chunks = [chunk async for chunk in stream]
        assert stream.closed
        assert len(chunks) >= 2
        assert all(isinstance(c, anyoai.types.ChatCompletionChunk) for c in chunks)
        final = stream.accumulator.snapshot()
        assert final.text == "".join(c.text for c in chunks)
        assert final.choices[0].finish_reason in ("stop", "length")
        assert len({c.id for c in chunks}) == 1
        # the stream ended cleanly: the connection went back for reuse
        stats = pool.statistics()
        assert stats.in_use == 0
        assert stats.idle == 1
    REPORT.record("llama.cpp chat.completions.create", "real stream", "ok")


async def test_completion_and_its_stream(llama_server: str) -> None:
    async with pool_for(llama_server) as pool:
        plain = await pool.completions.create(
            model=MODEL, prompt="Once upon a time", max_tokens=10, temperature=0, seed=1
        )
        assert len(plain) == 1
        stream = await pool.completions.create(
            model=MODEL,
            prompt="Once upon a time",
            max_tokens=10,
            temperature=0,
            seed=1,
            stream=True,
        )
        final = await stream.get_final_completion()
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.text == plain.text  # same seed, temperature 0: the same tokens
    REPORT.record("llama.cpp completions.create", "real server", "ok")
    REPORT.record("llama.cpp completions.create", "real stream", "ok")


async def test_stream_cancelled_midway_releases_its_connection(llama_server: str) -> None:
    async with pool_for(llama_server) as pool:
        seen = 0
        with anyio.move_on_after(30):
            async with await pool.chat.completions.create(
                model=MODEL, messages=HELLO, max_tokens=64, stream=True
            ) as stream:
                async for _ in stream:
                    seen += 1
                    if seen == 2:
                        break  # leave mid-stream: the connection must be closed, not reused
        assert seen == 2
        assert pool.statistics().in_use == 0
        assert pool.statistics().connections == 0
        again = await pool.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=4)
        assert again.choices
    REPORT.record("llama.cpp chat.completions.create", "cancelled stream", "ok")


async def test_several_concurrent_streams(llama_server: str) -> None:
    async with pool_for(llama_server) as pool:
        finals: list[anyoai.types.ChatCompletion] = []

        async def one(n: int) -> None:
            stream = await pool.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"Count to {n}"}],
                max_tokens=8,
                stream=True,
            )
            finals.append(await stream.get_final_completion())

        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(one, n)
        assert len(finals) == 4
        assert all(f.choices and f.choices[0].finish_reason for f in finals)
        assert pool.statistics().in_use == 0
    REPORT.record("llama.cpp chat.completions.create", "concurrent streams", "ok (4)")


async def test_tool_schema_from_attrs_drives_a_real_grammar(llama_server: str) -> None:
    """llama.cpp compiles the strict JSON Schema anyoai made of an attrs class (``$defs``,
    ``$ref``, enums, literals, a nullable union) into a grammar that constrains its random
    model: whatever it writes, the arguments parse back into the class."""
    seen: list[Reading] = []
    async with pool_for(llama_server) as pool:
        for seed in range(6):
            result = await pool.chat.completions.create(
                model=MODEL,
                messages=HELLO,
                tools=[Reading],
                tool_choice={"type": "function", "function": {"name": "Reading"}},
                max_tokens=128,
                temperature=1.0,
                seed=seed,
            )
            assert result.choices[0].finish_reason == "tool_calls"
            (call,) = result.parse_tool_calls(Reading)  # also sent as function_call: once
            assert isinstance(call.arguments, Reading)
            assert isinstance(call.arguments.place.unit, Unit)
            seen.append(call.arguments)
    assert any(
        r != seen[0] for r in seen
    )  # the model really chose: different seeds, different readings
    REPORT.record("llama.cpp chat.completions.create", "tools from attrs", "ok (6 seeds)")
