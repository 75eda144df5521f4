"""Rate-limit utilisation: embed many short texts through a server with a tokens-per-minute quota.

The fake server (``anyoai.testing``) enforces the quota as OpenAI does (a token bucket per
"minute", ``x-ratelimit-*`` headers, 429 with ``retry-after-ms``) and answers after a fixed
latency. Two clients do the same job, in the same run, each against a fresh server:

- **anyoai**: ``pool.embeddings.create_many(texts, ...)``, which packs the texts into requests
  and runs them under the pool's rate limiter; the limiter learns the quota from the headers
  (nothing is configured);
- **naive**: the official ``openai`` package, ``AsyncOpenAI`` with its default retries, and
  ``asyncio.gather`` over the same batches behind an ``asyncio.Semaphore``.

Reported per client: the quota used (tokens the server accepted per minute of the run, over the
per-minute quota), the bucket allowance used (the same tokens over what the server's bucket could
have let through in that time: its capacity at the start plus the refill; stricter), the share
of requests answered 429, the batches lost (failed after the client's retries) and the wall
time. Time is scaled: the
server's "minute" is ``--period`` seconds, and the clients are told the same.

    python -m benchmarks.ratelimit                 # 100,000 texts (about a minute per client)
    python -m benchmarks.ratelimit --smoke         # a few seconds, to check it still runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import anyoai
from anyoai.testing import run_in_thread

API_KEY = "sk-bench-0000000000000000"
MODEL = "text-embedding-3-small"


def make_texts(n: int) -> list[str]:
    """Short texts of three words each (the fake server counts a token per word)."""
    return [f"text number {i}" for i in range(n)]


def batches_of(texts: Sequence[str], size: int) -> list[list[str]]:
    return [list(texts[i : i + size]) for i in range(0, len(texts), size)]


def summarise(
    name: str, stats: Any, elapsed: float, tpm: int, period: float, lost: int, batches: int
) -> dict[str, Any]:
    """The figures of one run, from the server's own statistics."""
    allowance = tpm + tpm * elapsed / period  # what the server's bucket could have let through
    total = stats.accepted + stats.rejected
    return {
        "client": name,
        "tokens_accepted": stats.tokens_charged,
        # tokens per minute achieved over the quota per minute: what users plan and pay by
        "quota_used": stats.tokens_charged / (elapsed / period) / tpm,
        # over what the server's bucket could have let through (capacity + refill): stricter
        "allowance_used": stats.tokens_charged / allowance,
        "requests": total,
        "rejected_429": stats.rejected,
        "share_429": stats.rejected / total if total else 0.0,
        "batches": batches,
        "batches_lost": lost,
        "wall_time_s": elapsed,
    }


async def run_anyoai(args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    with run_in_thread(
        api_key=API_KEY,
        tpm=args.tpm,
        rate_limit_period=args.period,
        latency=args.latency,
    ) as server:
        started = time.perf_counter()
        async with anyoai.open_pool(
            api_key=API_KEY, base_url=server.url, rate_limit_period=args.period
        ) as pool:
            vectors = await pool.embeddings.create_many(
                texts, model=MODEL, batch_size=args.batch, limit=args.concurrency
            )
        elapsed = time.perf_counter() - started
        assert len(vectors) == len(texts)
        stats = server.rate_limit_stats()
    return summarise(
        "anyoai", stats, elapsed, args.tpm, args.period, 0, len(batches_of(texts, args.batch))
    )


async def run_naive(args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    import openai

    batches = batches_of(texts, args.batch)
    lost = 0
    with run_in_thread(
        api_key=API_KEY,
        tpm=args.tpm,
        rate_limit_period=args.period,
        latency=args.latency,
    ) as server:
        client = openai.AsyncOpenAI(api_key=API_KEY, base_url=server.url)
        semaphore = asyncio.Semaphore(args.concurrency)

        async def one(batch: list[str]) -> None:
            nonlocal lost
            async with semaphore:
                try:
                    await client.embeddings.create(model=MODEL, input=batch)
                except openai.APIError:
                    lost += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(batch) for batch in batches))
        elapsed = time.perf_counter() - started
        await client.close()
        stats = server.rate_limit_stats()
    return summarise("naive", stats, elapsed, args.tpm, args.period, lost, len(batches))


def table(results: list[dict[str, Any]]) -> str:
    """The results as a markdown table."""
    lines = [
        "| client | quota used (tokens/min ÷ TPM) | bucket allowance used | 429 share "
        "| batches lost | wall time |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['client']} | {r['quota_used']:.1%} | {r['allowance_used']:.1%} | "
            f"{r['share_429']:.2%} | {r['batches_lost']}/{r['batches']} | "
            f"{r['wall_time_s']:.1f} s |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100, help="texts per request")
    parser.add_argument("--tpm", type=int, default=40_000, help="tokens per period")
    parser.add_argument("--period", type=float, default=6.0, help="the server's 'minute', s")
    parser.add_argument("--latency", type=float, default=0.05, help="per request, s")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--clients", default="anyoai,naive")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.texts, args.batch, args.tpm, args.period = 600, 20, 1_200, 0.5
        args.latency, args.concurrency = 0.01, 8
    return args


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; print and return the results."""
    args = parse_args(argv)
    texts = make_texts(args.texts)
    runners = {"anyoai": run_anyoai, "naive": run_naive}
    results = [asyncio.run(runners[name](args, texts)) for name in args.clients.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"{args.texts} texts in batches of {args.batch}, quota {args.tpm} tokens per "
            f"{args.period:g} s, latency {args.latency * 1000:g} ms, concurrency {args.concurrency}"
        )
        print(table(results))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
