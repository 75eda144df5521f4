"""A demonstration of anyoai against the bundled fake server: ``python -m anyoai.demo``.

It starts :class:`anyoai.testing.FakeServer` on a free loopback port, then, under asyncio and
under trio (when installed), runs a chat completion, a stream, a tool call, embeddings and 500
concurrent requests through one pool, and prints what happened. No API key or network needed.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import anyio

import anyoai
from anyoai.testing import FakeServer

KEY = "sk-demo-0000000000000000"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


async def demo(backend: str, concurrency: int) -> None:
    """Run every step once, printing as it goes."""
    print(f"\n== anyoai {anyoai.__version__} under {backend}")
    async with (
        FakeServer(api_key=KEY) as server,
        anyoai.open_pool(api_key=KEY, base_url=server.url) as pool,
    ):
        print(f"fake server at {server.url}")
        messages = [{"role": "user", "content": "What is structured concurrency?"}]
        result = await pool.chat.completions.create(model="gpt-4o-mini", messages=messages)
        tokens = result.usage.total_tokens if result.usage else 0
        print(f"chat:       {result.text!r} ({tokens} tokens)")

        print("stream:     ", end="")
        async with await pool.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True
        ) as stream:
            async for chunk in stream:
                print(chunk.text, end="", flush=True)
        print()

        result = await pool.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Weather in Lima?"}],
            tools=TOOLS,
        )
        for call in result.choices[0].message.tool_calls or []:
            print(f"tool call:  {call}")

        vectors = await pool.embeddings.create(
            model="text-embedding-3-small", input=["one", "two"], encoding_format="base64"
        )
        print(f"embeddings: {len(vectors)} vectors of {len(vectors.vectors[0])} floats")

        started = time.perf_counter()
        done = 0

        async def one(i: int) -> None:
            nonlocal done
            await pool.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"request {i}"}]
            )
            done += 1

        async with anyio.create_task_group() as tg:
            for i in range(concurrency):
                tg.start_soon(one, i)
        elapsed = time.perf_counter() - started
        stats = pool.statistics()
        print(
            f"concurrent: {done} requests in {elapsed:.2f}s over {stats.connections} "
            f"connections ({done / elapsed:.0f} req/s, client and server on one core)"
        )
        print(f"pool:       {stats}")


def main() -> None:
    """Run the demo under asyncio, then trio if it is installed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=500)
    args = parser.parse_args()
    backends = ["asyncio"]
    if importlib.util.find_spec("trio") is not None:  # anyio runs it; anyoai never imports it
        backends.append("trio")
    else:
        print("(trio is not installed: pip install 'anyoai[trio]' to see it run under trio too)")
    for backend in backends:
        anyio.run(demo, backend, args.concurrency, backend=backend)


if __name__ == "__main__":
    main()
