"""The network layer under httpcore, and the request path's fast lane.

Sockets are awaited only when not ready, so these check what that must not change: a call made
in a cancelled or expired scope sends nothing, a read timeout still fires between bytes, and
idempotency keys stay unique (per call, and across a fork)."""

from __future__ import annotations

import os
from typing import Any

import anyio
import pytest

import anyoai
from anyoai.testing import FakeServer, Fault

from .helpers import HELLO

pytestmark = pytest.mark.anyio


async def test_a_call_in_a_cancelled_or_expired_scope_sends_nothing(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    await pool.chat.completions.create(model="m", messages=HELLO)  # an idle connection is ready
    before = len(server.requests)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await pool.chat.completions.create(model="m", messages=HELLO)
    assert scope.cancelled_caught
    with pytest.raises(TimeoutError), anyio.fail_after(0):
        await pool.chat.completions.create(model="m", messages=HELLO)
    # one call that does go out: a stray request from above would have reached the server first
    await pool.chat.completions.create(model="m", messages=HELLO)
    assert len(server.requests) == before + 1
    stats = pool.statistics()
    assert (stats.in_use, stats.waiting) == (0, 0)


async def test_the_read_timeout_fires_while_waiting_for_bytes(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    server.add_fault(Fault(latency=30, times=1))
    with pytest.raises(anyoai.APITimeoutError) as info:
        await pool.chat.completions.create(
            model="m",
            messages=HELLO,
            timeout=anyoai.Timeout(read=0.2, total=None),
            max_retries=0,
        )
    assert "ReadTimeout" in str(info.value)
    assert info.value.request_sent
    assert pool.statistics().in_use == 0


async def test_the_total_timeout_names_itself(pool: anyoai.Pool, server: FakeServer) -> None:
    server.add_fault(Fault(latency=30, times=1))
    with pytest.raises(anyoai.APITimeoutError) as info:
        await pool.chat.completions.create(
            model="m", messages=HELLO, timeout=anyoai.Timeout(total=0.2), max_retries=0
        )
    assert "total timeout" in str(info.value)
    assert pool.statistics().in_use == 0


async def test_many_requests_share_few_connections(pool: anyoai.Pool, server: FakeServer) -> None:
    """Sixteen at a time, 200 in all: connections are reused, none is left busy."""

    async def ask() -> None:
        for _ in range(25):
            result = await pool.chat.completions.create(model="m", messages=HELLO)
            assert result.text

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(ask)
    stats = pool.statistics()
    assert stats.connections <= 8
    assert (stats.in_use, stats.waiting) == (0, 0)
    assert len(server.requests) == 200


def test_idempotency_keys_are_unique_and_a_forked_child_draws_its_own() -> None:
    from anyoai._keys import next_key as _idempotency_key

    keys = {_idempotency_key() for _ in range(1000)}
    assert len(keys) == 1000
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, _idempotency_key().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode()
    os.close(read)
    parent = _idempotency_key()
    assert child.startswith("anyoai-retry-")
    assert child.rsplit("-", 1)[0] != parent.rsplit("-", 1)[0]


async def test_happy_eyeballs_moves_past_an_address_that_hangs() -> None:
    """The first address never answers (a black hole); the second, a real listener, wins after
    the attempt delay, and the hanging attempt is cancelled."""
    import socket

    from anyoai._network import happy_eyeballs

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address = listener.getsockname()
    cancelled: list[bool] = []

    async def open_one(info: Any) -> socket.socket:
        if info[4] == "black hole":
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.append(True)
        sock = socket.create_connection(info[4])
        return sock

    infos = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", "black hole"),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", address),
    ]
    with listener, anyio.fail_after(5):
        sock = await happy_eyeballs(open_one, infos)
        with sock:
            assert sock.getpeername() == address
    assert cancelled == [True]


async def test_happy_eyeballs_reports_every_failure() -> None:
    import socket

    from anyoai._network import AddressInfo, happy_eyeballs

    async def open_one(info: AddressInfo) -> socket.socket:
        raise ConnectionRefusedError(f"refused by {info[4][0]}")

    infos: list[AddressInfo] = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (name, 443)) for name in ("a", "b")
    ]
    with pytest.raises(OSError, match="refused by a; refused by b"):
        await happy_eyeballs(open_one, infos)
