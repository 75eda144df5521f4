"""Streams dropped without being closed: the garbage collector releases them, and says where.

A stream opened without ``async with`` (or ``with``) and then dropped used to keep its
connection and its in-flight slot for ever: with ``max_in_flight=3``, three of them blocked
every later call. Now the stream's ``__del__`` closes its socket and frees its slots at once,
without I/O, and emits a ``ResourceWarning`` naming the ``file:line`` that created it (this
file's, here). The blocking facade's streams are closed in their event loop. A stream that was
closed is left alone: no warning, nothing released twice.
"""

from __future__ import annotations

import gc
import inspect
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

import anyoai
from anyoai.testing import FakeServer, run_in_thread

from ..helpers import API_KEY, HELLO, wait_for, wait_until

pytestmark = pytest.mark.anyio

THIS_FILE = __file__
MODEL = "gpt-4o-mini"


def here() -> int:
    """The line after the caller's: where the next statement creates a stream."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno + 1


async def chat_stream(pool: anyoai.Pool) -> anyoai.ChatCompletionStream:
    return await pool.chat.completions.create(model=MODEL, messages=HELLO, stream=True)


def sync_chat_stream(pool: anyoai.SyncPool) -> Any:
    return pool.chat.completions.create(model=MODEL, messages=HELLO, stream=True)


#: where the helpers above create their streams, as the warnings must say
CHAT_SITE = f"{THIS_FILE}:{chat_stream.__code__.co_firstlineno + 1}"
SYNC_CHAT_SITE = f"{THIS_FILE}:{sync_chat_stream.__code__.co_firstlineno + 1}"


def forget(held: list[Any]) -> None:
    """Drop the last references to what *held* holds, and run the garbage collector."""
    held.clear()
    gc.collect()


def resource_warnings(record: Any) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, ResourceWarning)]


def assert_all_released(pool: anyoai.Pool, *, idle: int = 0) -> None:
    stats = pool.statistics()
    assert stats.in_use == 0, stats
    assert stats.waiting == 0, stats
    assert stats.connections == idle, stats
    assert stats.idle == idle, stats
    assert pool.limits.in_flight == 0


async def test_three_forgotten_streams_free_their_slots_for_a_fourth_call(
    server: FakeServer,
) -> None:
    async with anyoai.open_pool(
        api_key=API_KEY, base_url=server.url, limits=anyoai.Limits(max_in_flight=3)
    ) as pool:
        streams = [await chat_stream(pool) for _ in range(3)]
        await streams[0].__anext__()  # one of them read a little
        assert pool.limits.in_flight == 3
        assert pool.statistics().in_use == 3
        with pytest.warns(ResourceWarning, match="test_forgotten_streams") as record:
            forget(streams)
        messages = resource_warnings(record)
        assert len(messages) == 3
        for message in messages:
            assert f"unclosed ChatCompletionStream created at {CHAT_SITE}:" in message
            assert "async with" in message
        assert_all_released(pool)  # sockets closed, nothing returned to the idle list
        # a fourth call finds a slot and a connection free at once: it may not wait for either
        result = await pool.chat.completions.create(
            model=MODEL, messages=HELLO, timeout=anyoai.Timeout(pool=0)
        )
        assert result.text
        assert_all_released(pool, idle=1)


@pytest.mark.parametrize("held", ["in-flight slot", "connection"])
async def test_a_waiting_call_proceeds_once_the_stream_is_collected(
    server: FakeServer, held: str
) -> None:
    options: dict[str, Any] = (
        {"limits": anyoai.Limits(max_in_flight=1)}
        if held == "in-flight slot"
        else {"max_connections": 1, "limits": anyoai.Limits(max_in_flight=5)}
    )
    results: list[str] = []
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, **options) as pool:
        streams = [await chat_stream(pool)]

        async def later() -> None:
            result = await pool.chat.completions.create(model=MODEL, messages=HELLO)
            results.append(result.text)

        with anyio.fail_after(30):  # a bound, so that a regression fails instead of hanging
            async with anyio.create_task_group() as group:
                group.start_soon(later)
                if held == "in-flight slot":
                    await wait_for(
                        lambda: pool.limits.statistics().tasks_waiting == 1, "a call to wait"
                    )
                else:
                    await wait_for(lambda: pool.statistics().waiting == 1, "a call to wait")
                with pytest.warns(ResourceWarning, match="test_forgotten_streams"):
                    forget(streams)
        assert len(results) == 1
        assert_all_released(pool, idle=1)


async def test_closed_streams_are_left_alone(server: FakeServer) -> None:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool:
        async with await pool.chat.completions.create(
            model=MODEL, messages=HELLO, stream=True
        ) as left_early:
            await left_early.__anext__()
        closed = await pool.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
        await closed.aclose()
        exhausted = await pool.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
        async for _ in exhausted:
            pass
        assert exhausted.closed and left_early.closed and closed.closed
        assert_all_released(pool, idle=1)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            for stream in (exhausted, left_early, closed):
                stream.__del__()  # as the collector would: nothing to do
            del exhausted, left_early, closed, stream
            gc.collect()
        assert resource_warnings(record) == []
        assert_all_released(pool, idle=1)


async def test_a_forgotten_byte_stream_is_released(server: FakeServer) -> None:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool:
        uploaded = await pool.files.create(
            file=("data.bin", b"0123456789" * 10_000), purpose="assistants"
        )
        line = here()
        bodies = [await pool.files.content(uploaded.id)]
        await bodies[0].__anext__()
        assert pool.statistics().in_use == 1
        with pytest.warns(ResourceWarning, match="test_forgotten_streams") as record:
            forget(bodies)
        [message] = resource_warnings(record)
        assert f"unclosed ByteStream created at {THIS_FILE}:{line}:" in message
        assert_all_released(pool)


async def test_a_stream_collected_in_another_thread_is_released_in_its_loop(
    server: FakeServer,
) -> None:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool:
        streams = [await chat_stream(pool)]
        with pytest.warns(ResourceWarning, match="test_forgotten_streams"):
            await anyio.to_thread.run_sync(forget, streams)  # the last reference dies there
        # the release was handed to this loop, which runs it soon
        await wait_for(lambda: pool.limits.in_flight == 0, "the stream's slot to be released")
        assert_all_released(pool)


async def test_a_stream_forgotten_after_its_pool_closed(server: FakeServer) -> None:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool:
        streams = [await chat_stream(pool)]
    # the pool closed every connection; the stream still holds its slots until collected
    with pytest.warns(ResourceWarning, match="test_forgotten_streams"):
        forget(streams)
    assert_all_released(pool)


# ------------------------------------------------------------------------- blocking facade


@pytest.fixture
def threaded_server() -> Iterator[FakeServer]:
    with run_in_thread(api_key=API_KEY) as fake:
        yield fake


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_sync_forgotten_streams_are_closed_in_their_loop(
    threaded_server: FakeServer, loop: str
) -> None:
    with anyoai.open_pool_sync(
        api_key=API_KEY,
        base_url=threaded_server.url,
        limits=anyoai.Limits(max_in_flight=3),
        backend=loop,
    ) as pool:
        streams = [sync_chat_stream(pool) for _ in range(3)]
        next(streams[0])
        assert pool.limits.in_flight == 3
        with pytest.warns(ResourceWarning, match="test_forgotten_streams") as record:
            forget(streams)
        messages = resource_warnings(record)
        assert len(messages) == 3
        for message in messages:
            assert (
                f"unclosed SyncStream of ChatCompletionStream created at {SYNC_CHAT_SITE}:"
                in message
            )
        # a fourth call gets through (the streams' slots are released in the loop)
        result = pool.chat.completions.create(model=MODEL, messages=HELLO, timeout=30)
        assert result.text
        wait_until(lambda: pool.statistics().in_use == 0, "every stream to be closed")
        assert pool.limits.in_flight == 0
        stats = pool.statistics()
        assert stats.connections == stats.idle == 1, stats


def test_sync_forgotten_byte_stream_and_a_collection_in_the_loop_thread(
    threaded_server: FakeServer,
) -> None:
    with anyoai.open_pool_sync(api_key=API_KEY, base_url=threaded_server.url) as pool:
        uploaded = pool.files.create(file=("data.bin", b"x" * 100_000), purpose="assistants")
        bodies = [pool.files.content(uploaded.id)]
        assert isinstance(bodies[0], anyoai.SyncStream)
        assert isinstance(next(bodies[0]), bytes)
        with pytest.warns(ResourceWarning, match="SyncStream of ByteStream created at"):
            forget(bodies)
        wait_until(lambda: pool.statistics().in_use == 0, "the byte stream to be closed")

        # a SyncStream collected in the event loop's own thread is released there, at once
        holder = [sync_chat_stream(pool)]

        async def collect_in_loop() -> int:
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                forget(holder)
            assert threading.current_thread() is not threading.main_thread()
            return len(resource_warnings(record))

        assert pool.portal.call(collect_in_loop) == 1
        assert pool.statistics().in_use == 0
        assert pool.limits.in_flight == 0
