"""The soak: 200 calls in flight for a bounded while, with random faults, random cancellations
and a backend that flaps; then nothing may be left behind.

Bounded: at most ``ANYOAI_SOAK_REQUESTS`` calls (20,000) and ``ANYOAI_SOAK_SECONDS`` (60 s) per
event-loop backend, all on loopback. At the end: no in-flight slot borrowed, no connection in
use, the client's open sockets are exactly its idle pooled connections, no ResourceWarning,
and every failure a typed ``AnyoaiError``. With ``ANYOAI_SOAK_REPORT=PATH`` the counts are
appended to PATH as a JSON line (docs/reliability.md quotes them).
"""

from __future__ import annotations

import gc
import json
import os
import random
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import sniffio

import anyoai
from anyoai.testing import FakeServer

from ..helpers import API_KEY, HELLO

pytestmark = pytest.mark.anyio

REQUESTS = int(os.environ.get("ANYOAI_SOAK_REQUESTS", "20000"))
SECONDS = float(os.environ.get("ANYOAI_SOAK_SECONDS", "60"))
IN_FLIGHT = 200

#: the faults a call may ask for (the fake server's x-fake-fault header), with their weights
FAULTS: list[tuple[dict[str, Any] | None, int]] = [
    (None, 60),
    ({"status": 500}, 5),
    ({"status": 503}, 5),
    ({"status": 429, "retry_after_ms": 20}, 5),
    ({"status": 429, "retry_after": "Wed, 01 Jan 2099 00:00:00 GMT"}, 2),
    ({"drop": "before_headers"}, 5),
    ({"drop": "mid_body"}, 5),
    ({"malformed": True}, 4),
    ({"latency": 0.05}, 5),
    ({"status": 400}, 2),
]
STREAM_FAULTS: list[tuple[dict[str, Any] | None, int]] = [
    (None, 70),
    ({"drop": "mid_stream", "after_events": 1}, 10),
    ({"error_event": True}, 10),
    ({"malformed": True}, 10),
]


def pick(rng: random.Random, table: list[tuple[dict[str, Any] | None, int]]) -> Any:
    return rng.choices([f for f, _ in table], weights=[w for _, w in table])[0]


def client_sockets(ports: set[int]) -> int:
    """The open TCP sockets (held by a file descriptor: a socket closed by its owner has inode
    0 while the kernel finishes it) whose far end is one of *ports*: the client side of every
    connection to the fake servers."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port in ports and fields[9] != "0":
                count += 1
    return count


@pytest.fixture
def no_resource_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield caught
        gc.collect()
    leaked = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == [], [str(w.message) for w in leaked]


@pytest.mark.skipif(sys.platform != "linux", reason="counts sockets through /proc/net/tcp")
async def test_soak(no_resource_warnings: list[warnings.WarningMessage]) -> None:
    rng = random.Random(20261205)
    outcomes: Counter[str] = Counter()
    faults_injected = 0
    flaps = 0
    failover = anyoai.FailoverPolicy(cooldown=0.2, max_cooldown=0.5)
    async with (
        FakeServer(api_key=API_KEY, latency=0.002) as a,
        FakeServer(api_key=API_KEY, latency=0.002) as b,
    ):
        backends = [
            anyoai.CompatibleBackend(name=name, base_url=server.url, api_key=API_KEY)
            for name, server in (("a", a), ("b", b))
        ]
        async with anyoai.open_pool(
            backends=backends,
            failover=failover,
            limits=anyoai.Limits(max_in_flight=IN_FLIGHT),
            timeout=anyoai.Timeout(total=5, connect=2, read=2, write=2, pool=30),
        ) as pool:
            deadline = anyio.current_time() + SECONDS
            slots = anyio.Semaphore(IN_FLIGHT)

            async def one(fault: dict[str, Any] | None, stream: bool, cancel_after: float | None):
                headers = {"x-fake-fault": json.dumps(fault)} if fault else {}
                try:
                    with anyio.CancelScope() as scope:
                        if cancel_after is not None:
                            scope.deadline = anyio.current_time() + cancel_after
                        if stream:
                            async with await pool.chat.completions.create(
                                model="m", messages=HELLO, stream=True, extra_headers=headers
                            ) as chunks:
                                async for _ in chunks:
                                    pass
                        else:
                            await pool.chat.completions.create(
                                model="m", messages=HELLO, extra_headers=headers
                            )
                    outcomes["cancelled" if scope.cancelled_caught else "ok"] += 1
                except anyoai.AnyoaiError as exc:
                    outcomes[type(exc).__name__] += 1
                finally:
                    slots.release()

            async def flap() -> None:
                nonlocal flaps
                while True:
                    await anyio.sleep(0.7)
                    await a.go_down()
                    await anyio.sleep(0.3)
                    await a.come_up()
                    flaps += 1

            async with anyio.create_task_group() as tg:
                tg.start_soon(flap)
                async with anyio.create_task_group() as calls:
                    for _ in range(REQUESTS):
                        if anyio.current_time() > deadline:
                            break
                        stream = rng.random() < 0.2
                        fault = pick(rng, STREAM_FAULTS if stream else FAULTS)
                        faults_injected += fault is not None
                        cancel = rng.uniform(0, 0.05) if rng.random() < 0.05 else None
                        await slots.acquire()
                        calls.start_soon(one, fault, stream, cancel)
                tg.cancel_scope.cancel()
            await a.come_up()

            total = sum(outcomes.values())
            stats = pool.statistics()
            # nothing left behind
            assert pool.limits.statistics().borrowed_tokens == 0
            assert stats.in_use == 0 and stats.waiting == 0
            assert stats.connections == stats.idle
            assert client_sockets({a.port, b.port}) == stats.idle
            for limiter in pool.limits.rate_limiters.values():
                assert limiter.statistics().waiting == 0
        assert client_sockets({a.port, b.port}) == 0  # the pool closed every one
    # every failure was typed (anything else would have ended the task group), and most
    # calls without a fault succeeded despite the flapping backend
    assert total >= min(REQUESTS, 1000)
    assert outcomes["ok"] > total // 2, outcomes
    report = os.environ.get("ANYOAI_SOAK_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as out:  # noqa: ASYNC230 (a test's last line)
            line = {
                "backend": sniffio.current_async_library(),
                "requests": total,
                "faults_injected": faults_injected,
                "flaps": flaps,
                "outcomes": dict(outcomes),
                "leaks": 0,
            }
            out.write(json.dumps(line) + "\n")
