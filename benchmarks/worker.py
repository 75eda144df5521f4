"""One measurement, in a fresh process: ``python -m benchmarks.worker '<json spec>'``.

The spec names the peer, the scenario (``chat``, ``stream``, ``embeddings``), the base URLs,
the concurrency, the number of requests and (for embeddings) the encoding. The worker opens the
peer's session, warms it up (connections opened, code paths taken), then measures the process's
CPU time (``resource.getrusage``: user + system) and the wall time over the requests, and prints
one JSON object.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from typing import Any

import anyio

from .peers import PEERS, open_session


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def system_seconds() -> float:
    """The kernel's share of :func:`cpu_seconds` (system calls: sockets, polling)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


async def drive(count: int, concurrency: int, one: Any) -> None:
    """Run ``one()`` *count* times, *concurrency* at once (workers pulling from a counter)."""
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    async with anyio.create_task_group() as group:
        for _ in range(min(concurrency, count)):
            group.start_soon(worker)


async def measure(spec: dict[str, Any]) -> dict[str, Any]:
    scenario = spec["scenario"]
    if scenario == "memory":
        return await _memory(spec)
    concurrency = int(spec["concurrency"])
    requests = int(spec["requests"])
    first_chunk: list[float] = []
    chunks = 0
    async with open_session(spec["peer"], spec["urls"]) as session:
        if scenario == "chat":

            async def one() -> None:
                await session.chat()

        elif scenario == "stream":

            async def one() -> None:
                nonlocal chunks
                start = time.perf_counter()
                seen = 0
                async for _ in session.stream():
                    if seen == 0:
                        first_chunk.append(time.perf_counter() - start)
                    seen += 1
                chunks += seen

        elif scenario == "embeddings":
            inputs = [f"text number {i}" for i in range(int(spec.get("inputs", 256)))]
            encoding = spec.get("encoding", "float")

            async def one() -> None:
                assert await session.embeddings(inputs, encoding) > 0

        else:
            raise SystemExit(f"unknown scenario {scenario!r}")
        await drive(int(spec.get("warmup", max(concurrency, 20))), concurrency, one)
        chunks = 0
        first_chunk.clear()
        cpu, system, wall = cpu_seconds(), system_seconds(), time.perf_counter()
        await drive(requests, concurrency, one)
        cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
        system = system_seconds() - system
    result = {
        "cpu_s": cpu,
        "wall_s": wall,
        "requests": requests,
        "cpu_us_per_request": cpu / requests * 1e6,
        "system_us_per_request": system / requests * 1e6,
        "requests_per_s": requests / wall,
    }
    if scenario == "stream":
        result["chunks"] = chunks
        result["cpu_us_per_chunk"] = cpu / max(chunks, 1) * 1e6
        result["first_chunk_ms"] = statistics.median(first_chunk) * 1e3
    return result


async def _memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS while ``map_concurrent`` pushes ``requests`` chat calls at ``limit``."""
    import anyoai

    requests, limit = int(spec["requests"]), int(spec["limit"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with anyoai.open_pool(api_key=spec["api_key"], base_url=spec["urls"]["chat"]) as pool:

        async def ask(i: int) -> str:
            result = await pool.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"question {i}"}]
            )
            return result.text

        start = time.perf_counter()
        answers = await anyoai.map_concurrent(ask, range(requests), limit=limit)
        wall = time.perf_counter() - start
    assert len(answers) == requests
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "requests": requests,
        "limit": limit,
        "peak_rss_mib": peak / 1024,
        "rss_before_mib": before / 1024,
        "requests_per_s": requests / wall,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    loop = PEERS[spec["peer"]][0]
    if loop == "trio":
        result = anyio.run(measure, spec, backend="trio")
    elif loop == "uvloop":
        result = anyio.run(measure, spec, backend="asyncio", backend_options={"use_uvloop": True})
    else:
        result = anyio.run(measure, spec)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
