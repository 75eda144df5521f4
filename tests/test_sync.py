"""The blocking facade: one portal, many threads, streams as iterators, refusals inside loops."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import pytest

import anyoai
from anyoai.testing import FakeServer, run_in_thread

from .helpers import API_KEY, HELLO


@pytest.fixture
def threaded_server() -> Iterator[FakeServer]:
    with run_in_thread(api_key=API_KEY) as server:
        yield server


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sync_pool_from_8_threads(threaded_server: FakeServer, backend: str) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    loop_threads: set[int] = set()
    with anyoai.open_pool_sync(
        api_key=API_KEY, base_url=threaded_server.url, backend=backend
    ) as pool:

        def worker(index: int) -> None:
            try:
                for n in range(10):
                    result = pool.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": f"t{index} n{n}"}]
                    )
                    results.append(result.text)
                    loop_threads.add(pool.portal.call(_thread_id))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert pool.statistics().in_use == 0
    assert errors == []
    assert len(results) == 80
    assert len(set(results)) == 80
    assert len(loop_threads) == 1  # one portal, one event loop thread, for the pool's life


async def _thread_id() -> int:
    return threading.get_ident()


def test_sync_stream_is_a_plain_iterator(threaded_server: FakeServer) -> None:
    with anyoai.open_pool_sync(api_key=API_KEY, base_url=threaded_server.url) as pool:
        plain = pool.chat.completions.create(model="m", messages=HELLO)
        with pool.chat.completions.create(model="m", messages=HELLO, stream=True) as stream:
            text = "".join(chunk.text for chunk in stream)
        assert text == plain.text
        again = pool.chat.completions.create(model="m", messages=HELLO, stream=True)
        final = again.get_final_completion()
        assert final.text == plain.text
        assert len(pool.models.list()) > 0
        with pytest.raises(anyoai.NotFoundError):
            pool.models.retrieve("nope")


def test_run_sync(threaded_server: FakeServer) -> None:
    async def job(word: str) -> str:
        async with anyoai.open_pool(api_key=API_KEY, base_url=threaded_server.url) as pool:
            result = await pool.chat.completions.create(
                model="m", messages=[{"role": "user", "content": word}]
            )
            return result.text

    assert anyoai.run_sync(job, "once").endswith("once")
    assert anyoai.run_sync(job, word="twice", backend="trio").endswith("twice")


@pytest.mark.anyio
async def test_blocking_helpers_refuse_to_run_inside_an_event_loop() -> None:
    with pytest.raises(anyoai.AsyncContextError, match="await"):
        anyoai.run_sync(anyio.sleep, 0)
    with (
        pytest.raises(anyoai.AsyncContextError, match=r"async with anyoai\.open_pool"),
        anyoai.open_pool_sync(api_key=API_KEY),
    ):
        pass


def test_sync_pool_method_called_inside_a_loop_is_refused(threaded_server: FakeServer) -> None:
    with anyoai.open_pool_sync(api_key=API_KEY, base_url=threaded_server.url) as pool:

        async def misuse() -> None:
            pool.models.list()

        with pytest.raises(anyoai.AsyncContextError, match="await"):
            anyio.run(misuse)
