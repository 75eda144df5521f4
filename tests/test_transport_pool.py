"""The transport's pool of connections, over a mock network backend (no sockets, no server).

In the style of httpcore's ``tests/_async/test_connection_pool.py``: connections read canned
response bytes from :class:`httpcore.AsyncMockBackend`'s streams, so checkout, release and the
hand-over to waiters can be driven step by step. What is checked is the transport's rule book:
idle connections are reused last in first out; ``max_connections`` is a cap, and requests beyond
it wait in FIFO order; a waiter that times out leaves nothing behind; a connection released
while the head waiter wants another origin gives up its slot; a waiter cancelled after being
woken passes what it got to the next in line; a stale idle connection is replaced at checkout;
a reused connection the server closed unseen is tried once more on a new one; closing the
transport fails its waiters.

Waiting for another task to reach a point is done by yielding to the event loop (never by
sleeping), so nothing here depends on timing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
import anyio.lowlevel
import httpcore
import pytest

import anyoai
from anyoai._config import Timeout
from anyoai._transport import Response, Transport

pytestmark = pytest.mark.anyio

A = (b"http", b"a.test", 80)
B = (b"http", b"b.test", 80)

RESPONSE = [
    b"HTTP/1.1 200 OK\r\n",
    b"Content-Type: text/plain\r\n",
    b"Content-Length: 2\r\n",
    b"\r\n",
    b"ok",
]

WAIT = Timeout(connect=None, read=None, write=None, pool=None, total=None)


class MockStream(httpcore.AsyncMockStream):
    """httpcore's mock stream (canned bytes), counting the requests written to it and able to
    look closed by the server (its socket reads as readable while the connection is idle)."""

    def __init__(self, buffer: list[bytes], host: str) -> None:
        super().__init__(buffer)
        self.host = host
        self.requests = 0
        self.closed = False
        self.server_closed = False

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer.startswith(b"GET "):
            self.requests += 1

    async def aclose(self) -> None:
        self.closed = True
        await super().aclose()

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return self.server_closed
        return super().get_extra_info(info)


class MockBackend(httpcore.AsyncMockBackend):
    """httpcore's mock backend, keeping every stream it opens; each connection can answer
    *responses* requests, then reads EOF (the server closed it)."""

    def __init__(self, responses: int = 10) -> None:
        super().__init__(RESPONSE * responses)
        self.buffer = RESPONSE * responses
        self.streams: list[MockStream] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = MockStream(list(self.buffer), host)
        self.streams.append(stream)
        return stream

    @property
    def hosts(self) -> list[str]:
        return [stream.host for stream in self.streams]


@contextlib.asynccontextmanager
async def opened(backend: MockBackend, **options: Any) -> AsyncIterator[Transport]:
    transport = Transport(network_backend=backend, keepalive_expiry=None, **options)
    try:
        yield transport
    finally:
        await transport.aclose()


async def send(
    transport: Transport, origin: tuple[bytes, bytes, int], timeout: Timeout = WAIT
) -> Response:
    headers = [(b"Host", origin[1])]
    return await transport.send(b"GET", origin, b"/", headers, None, timeout)


async def queued(transport: Transport, count: int) -> None:
    """Let the other tasks run until *count* requests wait for a connection (turns of the
    event loop, not time)."""
    for _ in range(1000):
        if transport.statistics().waiting == count:
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError(f"never {count} waiting: {transport!r}")


def counts(transport: Transport) -> tuple[int, int, int, int]:
    stats = transport.statistics()
    return stats.connections, stats.idle, stats.in_use, stats.waiting


async def test_an_idle_connection_is_reused_last_in_first_out() -> None:
    backend = MockBackend()
    async with opened(backend, max_connections=4) as transport:
        first, second = await send(transport, A), await send(transport, A)
        assert counts(transport) == (2, 0, 2, 0)
        assert await first.aread() == b"ok"
        assert await second.aread() == b"ok"
        assert counts(transport) == (2, 2, 0, 0)

        third = await send(transport, A)  # the last one released comes out first
        assert await third.aread() == b"ok"
        assert [stream.requests for stream in backend.streams] == [1, 2]
        assert counts(transport) == (2, 2, 0, 0)


async def test_max_connections_makes_requests_wait_in_fifo_order() -> None:
    backend = MockBackend()
    served: list[int] = []
    async with opened(backend, max_connections=1) as transport:
        holder = await send(transport, A)

        async def request(number: int) -> None:
            response = await send(transport, A)
            served.append(number)
            assert await response.aread() == b"ok"

        async with anyio.create_task_group() as group:
            for number in range(3):
                group.start_soon(request, number)
                await queued(transport, number + 1)
            assert counts(transport) == (1, 0, 1, 3)  # the cap holds; three are queued
            assert await holder.aread() == b"ok"
        assert served == [0, 1, 2]
        assert len(backend.streams) == 1  # each was handed the one connection in turn
        assert backend.streams[0].requests == 4
        assert counts(transport) == (1, 1, 0, 0)


async def test_a_waiter_that_times_out_names_the_pool_timeout_and_leaks_nothing() -> None:
    backend = MockBackend()
    async with opened(backend, max_connections=1) as transport:
        holder = await send(transport, A)
        with pytest.raises(anyoai.APITimeoutError, match=r"pool timeout \(0\.01s\)") as info:
            await send(transport, A, Timeout(pool=0.01))
        assert info.value.request_sent is False
        assert counts(transport) == (1, 0, 1, 0)  # the waiter is gone from the queue
        assert await holder.aread() == b"ok"
        assert counts(transport) == (1, 1, 0, 0)  # no slot was lost: the next one reuses it
        assert await (await send(transport, A)).aread() == b"ok"
        assert len(backend.streams) == 1
        assert counts(transport) == (1, 1, 0, 0)


async def test_a_connection_released_while_the_head_waiter_wants_another_origin() -> None:
    """The released connection (origin A) is closed and its slot handed to the waiter for B,
    which opens its own; the cap is never exceeded."""
    backend = MockBackend()
    bodies: list[bytes] = []
    async with opened(backend, max_connections=1) as transport:
        holder = await send(transport, A)

        async def request_b() -> None:
            response = await send(transport, B)
            bodies.append(await response.aread())

        async with anyio.create_task_group() as group:
            group.start_soon(request_b)
            await queued(transport, 1)
            assert await holder.aread() == b"ok"
        assert bodies == [b"ok"]
        assert backend.hosts == ["a.test", "b.test"]
        assert backend.streams[0].closed  # the idle A connection made way for B
        assert not backend.streams[1].closed
        assert counts(transport) == (1, 1, 0, 0)


async def test_a_waiter_cancelled_after_being_woken_passes_the_connection_on() -> None:
    backend = MockBackend()
    bodies: list[bytes] = []
    async with opened(backend, max_connections=1) as transport:
        holder = await send(transport, A)
        assert await holder.read_chunk() == b"ok"
        assert await holder.read_chunk() == b""  # read to its end: reusable once released
        scope = anyio.CancelScope()

        async def first() -> None:
            with scope:
                await send(transport, A)
                raise AssertionError("the cancelled waiter got through")  # pragma: no cover

        async def second() -> None:
            response = await send(transport, A)
            bodies.append(await response.aread())

        async with anyio.create_task_group() as group:
            group.start_soon(first)
            await queued(transport, 1)
            group.start_soon(second)
            await queued(transport, 2)
            # cancelled, then woken with the connection before it runs again
            scope.cancel()
            await holder.aclose()
        assert scope.cancelled_caught
        assert bodies == [b"ok"]
        assert len(backend.streams) == 1  # the second waiter got the very same connection
        assert backend.streams[0].requests == 2  # the cancelled one sent nothing
        assert counts(transport) == (1, 1, 0, 0)


async def test_a_stale_idle_connection_is_replaced_at_checkout() -> None:
    backend = MockBackend()
    async with opened(backend, max_connections=1) as transport:
        assert await (await send(transport, A)).aread() == b"ok"
        backend.streams[0].server_closed = True  # the server closed it while it sat idle
        assert await (await send(transport, A)).aread() == b"ok"
        assert len(backend.streams) == 2
        assert backend.streams[0].closed
        assert backend.streams[0].requests == 1  # nothing was sent on the stale one
        assert counts(transport) == (1, 1, 0, 0)  # it made way within the cap


async def test_a_reused_connection_closed_without_a_word_is_retried_on_a_new_one() -> None:
    """The server closed the connection unseen (EOF only when the response is read): the
    request goes once more on a fresh connection, which is not a retry of the caller's."""
    backend = MockBackend(responses=1)
    async with opened(backend, max_connections=1) as transport:
        assert await (await send(transport, A)).aread() == b"ok"
        assert await (await send(transport, A)).aread() == b"ok"
        assert [stream.requests for stream in backend.streams] == [2, 1]
        assert backend.streams[0].closed
        assert counts(transport) == (1, 1, 0, 0)


async def test_closing_the_transport_fails_its_waiters() -> None:
    backend = MockBackend()
    errors: list[BaseException] = []
    transport = Transport(network_backend=backend, max_connections=1)
    holder = await send(transport, A)

    async def wait() -> None:
        with pytest.raises(anyoai.PoolClosedError, match="while waiting") as info:
            await send(transport, A)
        errors.append(info.value)

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await queued(transport, 1)
        await transport.aclose()
    assert len(errors) == 1
    await holder.aclose()
    assert counts(transport) == (0, 0, 0, 0)
    assert backend.streams[0].closed
