"""Run every benchmark, side by side, in one run: ``python -m benchmarks`` (or ``tox -e bench``).

Each measurement runs in a fresh process (:mod:`benchmarks.worker`); the peers alternate within
each repetition, against the same nginx server (fixed bodies: the server costs next to nothing).
Medians of the repetitions are reported with their spread (min-max), as absolute figures and as
ratios anyoai / peer, into ``benchmarks/results.json``, ``docs/benchmarks.md`` and one PNG plot
per scenario in ``docs/img/`` (matplotlib, the ``bench`` extra).

``--smoke`` runs every scenario at tiny sizes and writes nothing unless ``--out`` is given: the
test suite uses it so that the benchmarks never rot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from . import report
from .nginx import NginxServer
from .peers import API_KEY, PEERS

HERE = Path(__file__).parent
ROOT = HERE.parent
CONCURRENCY = (1, 16, 256, 1024)
#: requests per measurement, by concurrency
CHAT_REQUESTS = {1: 2000, 16: 4000, 256: 6000, 1024: 8000}


def _peers_available(wanted: Sequence[str]) -> list[str]:
    import importlib.util

    needs = {"anyoai-uvloop": "uvloop", "anyoai-trio": "trio", "aiohttp": "aiohttp"}
    return [p for p in wanted if p not in needs or importlib.util.find_spec(needs[p]) is not None]


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec['peer']} {spec['scenario']} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summary(values: list[float]) -> dict[str, float]:
    """Median and spread of repeated figures."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(
    scenario: str,
    peers: list[str],
    urls: dict[str, str],
    repeat: int,
    variants: list[dict[str, Any]],
    figures: Sequence[str],
    budget: float = 15.0,
) -> list[dict[str, Any]]:
    """Every variant (concurrency, encoding...) for every peer, *repeat* times, alternating."""
    rows = []
    cost: dict[str, float] = {}  # CPU seconds per request of each peer at the previous variant
    broken: set[str] = set()  # peers that failed every run of the previous variant
    for variant in variants:
        samples: dict[str, list[dict[str, Any]]] = {peer: [] for peer in peers}
        failures: dict[str, str] = {}
        # a peer that got slow (a pool that scans its connections) does fewer requests, so that
        # a measurement stays within the time budget; its figures stay per request. A peer
        # that failed every run of the previous variant does the fewest: one per connection
        fewest, wanted = int(variant.get("concurrency", 1)), int(variant["requests"])
        counts = {
            peer: fewest
            if peer in broken
            else max(fewest, min(wanted, int(budget / cost[peer]) if peer in cost else wanted))
            for peer in peers
        }
        for _ in range(repeat):
            for peer in peers:
                spec = {
                    "peer": peer,
                    "scenario": scenario,
                    "urls": urls,
                    **variant,
                    "requests": counts[peer],
                }
                try:
                    samples[peer].append(run_worker(spec))
                except RuntimeError as exc:  # reported in the table, not hidden
                    failures.setdefault(peer, str(exc).strip().splitlines()[-1][:200])
        broken.clear()
        for peer in peers:
            row: dict[str, Any] = {"peer": peer, **variant, "requests": counts[peer]}
            if not samples[peer]:
                row["error"] = failures[peer]
                rows.append(row)
                broken.add(peer)
                cost.pop(peer, None)
                print(f"  {scenario} {variant} {peer}: FAILED {row['error']}", flush=True)
                continue
            if peer in failures:  # some runs failed: the others are reported, with the error
                row["failed_runs"] = repeat - len(samples[peer])
                row["failure"] = failures[peer]
            cost[peer] = statistics.median(s["cpu_s"] / s["requests"] for s in samples[peer])
            for figure in figures:
                row[figure] = summary([sample[figure] for sample in samples[peer]])
            rows.append(row)
            shown = ", ".join(f"{f}={row[f]['median']:.1f}" for f in figures)
            print(f"  {scenario} {variant} {peer}: {shown}", flush=True)
    return rows


def import_time(module: str, runs: int) -> dict[str, float]:
    """``python -X importtime -c "import module"``: the module's cumulative time, in ms."""
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stderr.splitlines():
            found = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s?(\S+)\s*$", line)
            if found and found.group(2) == module:
                times.append(int(found.group(1)) / 1000)
    return summary(times)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fake_server() -> Iterator[str]:
    """anyoai's fake server in a process of its own: its base URL."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "anyoai.testing", "--port", str(port), "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url:
            raise RuntimeError("the fake server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def machine() -> dict[str, Any]:
    """The machine and the versions of everything measured."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = {}
    for name in (
        "anyoai",
        "openai",
        "httpx",
        "httpcore",
        "h11",
        "anyio",
        "trio",
        "uvloop",
        "aiohttp",
        "attrs",
        "cattrs",
        "tiktoken",
        "obstore",
    ):
        with suppress(PackageNotFoundError):
            packages[name] = version(name)
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "nginx": nginx.stderr.strip().split("/")[-1] if nginx.returncode == 0 else None,
        "packages": packages,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    smoke = args.smoke
    peers = _peers_available(args.peers.split(","))
    scenarios = args.scenarios.split(",")
    repeat = 1 if smoke else args.repeat
    sizes = (
        {"chunks": 5, "inputs": 4, "dims": 8}
        if smoke
        else {"chunks": 200, "inputs": 256, "dims": 1536}
    )
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "smoke": smoke,
        "repeat": repeat,
        "scenarios": {},
    }
    out = results["scenarios"]
    with NginxServer(
        chunks=sizes["chunks"], embedding_inputs=sizes["inputs"], dimensions=sizes["dims"]
    ) as server:
        urls = {
            kind: server.url(kind)
            for kind in ("chat", "stream", "embeddings_float", "embeddings_base64")
        }
        if "chat" in scenarios:
            print("non-streamed chat completions", flush=True)
            levels = (1, 16) if smoke else CONCURRENCY
            variants: list[dict[str, Any]] = [
                {"concurrency": c, "requests": 20 if smoke else int(CHAT_REQUESTS[c] * args.scale)}
                for c in levels
            ]
            out["chat"] = measure(
                "chat", peers, urls, repeat, variants, ("cpu_us_per_request", "requests_per_s")
            )
        if "stream" in scenarios:
            print(f"streamed chat completions ({sizes['chunks']} chunks)", flush=True)
            variants = [{"concurrency": 16, "requests": 10 if smoke else int(400 * args.scale)}]
            out["stream"] = measure(
                "stream", peers, urls, repeat, variants, ("cpu_us_per_chunk", "first_chunk_ms")
            )
        if "embeddings" in scenarios:
            print(f"embeddings ({sizes['inputs']} x {sizes['dims']} floats)", flush=True)
            variants = [
                {
                    "concurrency": 4,
                    "requests": 4 if smoke else int(60 * args.scale),
                    "inputs": sizes["inputs"],
                    "encoding": encoding,
                    "warmup": 2 if smoke else 8,
                }
                for encoding in ("float", "base64")
            ]
            out["embeddings"] = measure(
                "embeddings", peers, urls, repeat, variants, ("cpu_us_per_request",)
            )
    if "import" in scenarios:
        print("import time", flush=True)
        runs = 2 if smoke else 10
        out["import"] = [
            {"peer": name, "import_ms": import_time(name, runs)} for name in ("anyoai", "openai")
        ]
    if "memory" in scenarios:
        requests = 200 if smoke else args.memory_requests
        print(f"memory: map_concurrent, {requests} requests at limit 512", flush=True)
        with fake_server() as url:
            spec = {
                "peer": "anyoai-asyncio",
                "scenario": "memory",
                "urls": {"chat": url},
                "requests": requests,
                "limit": 512,
                "api_key": API_KEY,
            }
            out["memory"] = [run_worker(spec)]
    if "ratelimit" in scenarios:
        print("rate-limit utilisation", flush=True)
        from . import ratelimit

        out["ratelimit"] = ratelimit.main(["--json", *(["--smoke"] if smoke else [])])
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check that it runs")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--scenarios", default="chat,stream,embeddings,import,memory,ratelimit")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the requests per measurement"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for results.json, the page and plots"
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: nginx and workers are stopped


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    results = run(args)
    out: Path | None = args.out
    if out is None and not args.smoke:
        out = ROOT
    if out is not None:
        report.write(results, out)
    return results


if __name__ == "__main__":
    main()
