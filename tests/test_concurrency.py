"""map_concurrent / imap_concurrent: bounded concurrency, order, failures, progress, checkpoints."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

import anyoai
from anyoai._concurrency import Progress, imap_concurrent, map_concurrent
from anyoai.testing import FakeServer

from .helpers import API_KEY, hello, wait_for

pytestmark = pytest.mark.anyio

HERE = Path(__file__).parent


class MyError(Exception):
    pass


class Tracker:
    """Counts the calls of a job: started, running now, most running at once, finished."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.finished: list[Any] = []
        self.cancelled: list[Any] = []
        self.active = 0
        self.max_active = 0

    def enter(self, item: Any) -> None:
        self.started.append(item)
        self.active += 1
        self.max_active = max(self.max_active, self.active)

    def leave(self, item: Any) -> None:
        self.active -= 1
        self.finished.append(item)


def journal_lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a journal, decoded."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


# -- order, sources, concurrency ------------------------------------------------------------------


def _as_list(n: int) -> list[int]:
    return list(range(n))


def _as_generator(n: int) -> Iterator[int]:
    yield from range(n)


async def _as_async_generator(n: int) -> AsyncIterator[int]:
    for i in range(n):
        if i % 7 == 0:
            await anyio.lowlevel.checkpoint()
        yield i


@pytest.mark.parametrize("source", [_as_list, _as_generator, _as_async_generator])
async def test_results_in_input_order_with_random_delays(source: Any) -> None:
    rng = random.Random(1234)
    delays = [rng.uniform(0, 0.003) for _ in range(120)]
    tracker = Tracker()

    async def fn(i: int) -> int:
        tracker.enter(i)
        await anyio.sleep(delays[i])
        tracker.leave(i)
        return i * 10

    results = await map_concurrent(fn, source(120), limit=9)
    assert results == [i * 10 for i in range(120)]
    assert sorted(tracker.started) == list(range(120))
    assert 1 < tracker.max_active <= 9


@pytest.mark.parametrize("limit", [1, 3, 16])
async def test_never_more_than_limit_in_flight(limit: int) -> None:
    tracker = Tracker()

    async def fn(i: int) -> int:
        tracker.enter(i)
        for _ in range(i % 4 + 1):
            await anyio.lowlevel.checkpoint()
        tracker.leave(i)
        return i

    assert await map_concurrent(fn, _as_generator(200), limit=limit) == list(range(200))
    assert tracker.max_active == limit
    assert tracker.active == 0


async def test_empty_input() -> None:
    async def fn(i: int) -> int:
        raise AssertionError("not called")

    assert await map_concurrent(fn, []) == []
    assert await map_concurrent(fn, _as_async_generator(0)) == []


async def test_async_source_is_pulled_by_one_worker_at_a_time() -> None:
    pulling = 0
    overlapped = False

    class Source:
        def __init__(self) -> None:
            self.i = 0

        def __aiter__(self) -> Source:
            return self

        async def __anext__(self) -> int:
            nonlocal pulling, overlapped
            pulling += 1
            overlapped = overlapped or pulling > 1
            await anyio.lowlevel.checkpoint()
            pulling -= 1
            if self.i == 50:
                raise StopAsyncIteration
            self.i += 1
            return self.i - 1

    async def fn(i: int) -> int:
        return i

    assert await map_concurrent(fn, Source(), limit=8) == list(range(50))
    assert not overlapped


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"limit": 0}, "limit"), ({"limit": -3}, "limit"), ({"on_error": "ignore"}, "on_error")],
)
async def test_invalid_options(kwargs: dict[str, Any], word: str) -> None:
    async def fn(i: int) -> int:
        return i

    with pytest.raises(ValueError, match=word):
        await map_concurrent(fn, [1], **kwargs)
    with pytest.raises(ValueError, match=word):
        imap_concurrent(fn, [1], **kwargs)


# -- failures -------------------------------------------------------------------------------------


async def test_raise_policy_raises_the_original_exception_and_cancels_the_rest() -> None:
    tracker = Tracker()
    error = MyError("item 2")

    async def fn(i: int) -> int:
        tracker.enter(i)
        try:
            if i == 2:
                await anyio.sleep(0.001)
                raise error
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            tracker.cancelled.append(i)
            raise
        finally:
            tracker.active -= 1
        raise AssertionError("unreachable")

    with pytest.raises(MyError) as info:
        await map_concurrent(fn, _as_generator(100), limit=4)
    assert type(info.value) is MyError
    assert info.value is error
    assert info.value.__context__ is None  # not the cancellation that delivered it
    assert set(tracker.started) <= set(range(4))  # nothing started after the failure
    assert 2 in tracker.started
    assert sorted(tracker.cancelled) == sorted(set(tracker.started) - {2})
    assert tracker.active == 0


async def test_raise_policy_fails_fast_among_successes() -> None:
    calls = 0

    async def fn(i: int) -> int:
        nonlocal calls
        calls += 1
        await anyio.lowlevel.checkpoint()
        if i == 10:
            raise MyError(i)
        return i

    with pytest.raises(MyError):
        await map_concurrent(fn, range(1000), limit=5)
    assert calls < 20


async def test_return_policy_puts_exceptions_in_place() -> None:
    async def fn(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        if i % 3 == 0:
            raise MyError(i)
        return i

    results = await map_concurrent(fn, range(10), limit=4, on_error="return")
    assert len(results) == 10
    for i, result in enumerate(results):
        if i % 3 == 0:
            assert type(result) is MyError
            assert result.args == (i,)
        else:
            assert result == i


async def test_an_error_of_the_source_ends_the_job() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise MyError("source")

    async def fn(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        return i

    with pytest.raises(MyError, match="source"):
        await map_concurrent(fn, source(), limit=2, on_error="return")


async def test_caller_cancellation_cancels_the_workers() -> None:
    tracker = Tracker()

    async def fn(i: int) -> int:
        tracker.enter(i)
        try:
            await anyio.sleep_forever()
        finally:
            tracker.active -= 1
        raise AssertionError("unreachable")

    with anyio.move_on_after(0.05) as scope:
        await map_concurrent(fn, range(100), limit=6)
    assert scope.cancelled_caught
    assert len(tracker.started) == 6
    assert tracker.active == 0


# -- progress -------------------------------------------------------------------------------------


async def test_progress_reports_every_item() -> None:
    seen: list[Progress] = []

    async def fn(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        if i in (3, 7):
            raise MyError(i)
        return i

    await map_concurrent(fn, range(20), limit=4, on_error="return", progress=seen.append)
    assert len(seen) == 20
    final = seen[-1]
    assert (final.done, final.failed, final.skipped, final.total) == (18, 2, 0, 20)
    assert final.in_flight == 0
    assert all(0 <= p.in_flight <= 4 for p in seen)
    assert [p.done + p.failed for p in seen] == list(range(1, 21))
    assert final.elapsed >= 0 and final.rate >= 0
    assert str(final).startswith("18/20 done, 2 failed, 0 in flight, ")
    assert str(final).endswith("/s")


async def test_progress_total_from_argument_or_unknown() -> None:
    seen: list[Progress] = []

    async def fn(i: int) -> int:
        return i

    await map_concurrent(fn, _as_generator(5), progress=seen.append)
    assert seen[-1].total is None
    assert str(seen[-1]).startswith("5 done, 0 failed")
    await map_concurrent(fn, _as_generator(5), progress=seen.append, total=5)
    assert seen[-1].total == 5


async def test_a_raising_progress_callback_is_logged_once_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    def broken(progress: Progress) -> None:
        nonlocal calls
        calls += 1
        if calls >= 3:
            raise RuntimeError("progress bar broke")

    async def fn(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        return i

    with caplog.at_level(logging.WARNING, logger="anyoai"):
        results = await map_concurrent(fn, range(30), limit=3, progress=broken)
    assert results == list(range(30))
    assert calls == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "progress" in warnings[0].getMessage()
    assert warnings[0].exc_info is not None


# -- imap_concurrent ------------------------------------------------------------------------------


async def test_imap_yields_every_index_once() -> None:
    rng = random.Random(99)
    delays = [rng.uniform(0, 0.002) for _ in range(80)]

    async def fn(i: int) -> str:
        await anyio.sleep(delays[i])
        return f"r{i}"

    seen: list[tuple[int, str]] = []
    async with imap_concurrent(fn, _as_async_generator(80), limit=7) as results:
        async for index, result in results:
            seen.append((index, result))
    assert sorted(seen) == [(i, f"r{i}") for i in range(80)]


async def test_imap_break_cancels_the_rest_and_leaves_nothing_running() -> None:
    tracker = Tracker()

    async def fn(i: int) -> int:
        tracker.enter(i)
        try:
            await anyio.sleep(0.001 * (i % 5))
        except anyio.get_cancelled_exc_class():
            tracker.cancelled.append(i)
            raise
        finally:
            tracker.active -= 1
        return i

    got = []
    async with imap_concurrent(fn, _as_generator(10_000), limit=5) as results:
        async for index, _ in results:
            got.append(index)
            if len(got) == 10:
                break
    assert tracker.active == 0
    started = len(tracker.started)
    assert started < 100  # lazily pulled: nowhere near the 10,000 items
    for _ in range(20):
        await anyio.lowlevel.checkpoint()
    assert len(tracker.started) == started  # nothing runs after the block
    assert len(got) == 10


async def test_imap_raise_policy_raises_from_the_block() -> None:
    async def fn(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        if i == 5:
            raise MyError(i)
        return i

    with pytest.raises(MyError) as info:
        async with imap_concurrent(fn, range(100), limit=3) as results:
            async for _ in results:
                pass
    assert type(info.value) is MyError


async def test_imap_error_in_the_block_propagates_unwrapped() -> None:
    tracker = Tracker()

    async def fn(i: int) -> int:
        tracker.enter(i)
        try:
            await anyio.sleep(0.001)
        finally:
            tracker.active -= 1
        return i

    with pytest.raises(KeyError) as info:
        async with imap_concurrent(fn, range(100), limit=3) as results:
            async for _ in results:
                raise KeyError("consumer")
    assert type(info.value) is KeyError
    assert tracker.active == 0


async def test_imap_slow_consumer_applies_back_pressure() -> None:
    limit = 4
    started = 0

    async def fn(i: int) -> int:
        nonlocal started
        started += 1
        return i

    consumed = 0
    async with imap_concurrent(fn, _as_generator(200), limit=limit) as results:
        async for _ in results:
            consumed += 1
            for _ in range(10):
                await anyio.lowlevel.checkpoint()
            # each worker holds at most one item, the buffer holds at most limit results
            assert started - consumed <= 2 * limit + 1
    assert consumed == 200


# -- checkpoints ----------------------------------------------------------------------------------


async def test_checkpoint_resumes_where_a_failed_run_stopped(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"
    items = [f"item-{i}" for i in range(60)]

    async def failing(item: str) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        if item == "item-25":
            raise MyError(item)
        return {"item": item, "length": len(item)}

    with pytest.raises(MyError):
        await map_concurrent(failing, items, limit=4, checkpoint=journal)
    first = journal_lines(journal)
    recorded = {line["i"] for line in first}
    assert 0 < len(recorded) < 60
    assert 25 not in recorded

    called: list[str] = []
    seen: list[Progress] = []

    async def working(item: str) -> dict[str, Any]:
        called.append(item)
        await anyio.lowlevel.checkpoint()
        return {"item": item, "length": len(item)}

    results = await map_concurrent(
        working, items, limit=4, checkpoint=journal, progress=seen.append
    )
    assert results == [{"item": item, "length": len(item)} for item in items]
    assert sorted(called) == sorted(items[i] for i in range(60) if i not in recorded)
    lines = journal_lines(journal)
    assert sorted(line["i"] for line in lines) == list(range(60))
    assert (seen[-1].done, seen[-1].skipped, seen[-1].failed, seen[-1].total) == (
        60 - len(recorded),
        len(recorded),
        0,
        60,
    )

    # a third run calls nothing at all
    called.clear()
    assert await map_concurrent(working, iter(items), checkpoint=journal) == results
    assert called == []
    assert len(journal_lines(journal)) == 60


async def test_checkpoint_with_return_policy_retries_failures(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"

    async def flaky(i: int) -> int:
        if i % 4 == 0:
            raise MyError(i)
        return i * 2

    results = await map_concurrent(flaky, range(20), on_error="return", checkpoint=journal)
    assert sum(isinstance(r, MyError) for r in results) == 5
    assert len(journal_lines(journal)) == 15

    called = []

    async def fixed(i: int) -> int:
        called.append(i)
        return i * 2

    assert await map_concurrent(fixed, _as_generator(20), checkpoint=journal) == [
        i * 2 for i in range(20)
    ]
    assert called == [0, 4, 8, 12, 16]


async def test_imap_yields_resumed_results_too(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"

    async def fn(i: int) -> int:
        return -i

    await map_concurrent(fn, range(10), checkpoint=journal)
    async with imap_concurrent(fn, _as_async_generator(15), checkpoint=journal) as results:
        pairs = [pair async for pair in results]
    assert sorted(pairs) == [(i, -i) for i in range(15)]
    assert sorted(line["i"] for line in journal_lines(journal)) == list(range(15))


async def test_checkpoint_partial_last_line_is_repaired(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"

    async def fn(i: int) -> int:
        return i + 100

    await map_concurrent(fn, range(10), checkpoint=journal)
    lines = journal.read_bytes().splitlines(keepends=True)
    # keep 6 lines and half of the 7th, as a kill in the middle of a write would
    journal.write_bytes(b"".join(lines[:6]) + lines[6][: len(lines[6]) // 2])
    kept = {json.loads(line)["i"] for line in lines[:6]}

    called = []

    async def counting(i: int) -> int:
        called.append(i)
        return i + 100

    assert await map_concurrent(counting, range(10), checkpoint=journal) == list(range(100, 110))
    assert sorted(called) == sorted(set(range(10)) - kept)
    data = journal.read_bytes()
    assert data.endswith(b"\n")
    assert sorted(line["i"] for line in journal_lines(journal)) == list(range(10))


async def test_checkpoint_mismatch_raises_before_any_work(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"
    called = []

    async def fn(item: str) -> str:
        called.append(item)
        return item.upper()

    await map_concurrent(fn, ["a", "b", "c"], checkpoint=journal)
    called.clear()
    with pytest.raises(ValueError, match="does not match the items"):
        await map_concurrent(fn, ["a", "X", "c", "d"], checkpoint=journal)
    with pytest.raises(ValueError, match="does not match the items"):
        await map_concurrent(fn, ["a", "b"], checkpoint=journal)  # records item 2

    async def two() -> AsyncIterator[str]:
        yield "a"
        yield "b"

    with pytest.raises(ValueError, match="does not match the items"):
        await map_concurrent(fn, two(), checkpoint=journal)  # runs out before item 2
    assert called == []
    assert len(journal_lines(journal)) == 3


async def test_checkpoint_malformed_line_raises(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"
    journal.write_bytes(b'{"i": 0, "f": "x", "r": 1}\nnot json\n')

    async def fn(i: int) -> int:
        return i

    with pytest.raises(ValueError, match="line 2"):
        await map_concurrent(fn, range(3), checkpoint=journal)


@attrs.frozen
class Scored:
    index: int
    label: str
    score: float


async def test_checkpoint_result_type_restores_attrs_objects(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"

    async def score(i: int) -> Scored:
        return Scored(index=i, label=f"L{i}", score=i / 4)

    expected = await map_concurrent(score, range(8), checkpoint=journal)
    assert journal_lines(journal)[0]["r"] == {"index": 0, "label": "L0", "score": 0.0}

    async def never(i: int) -> Scored:
        raise AssertionError("resumed items are not called again")

    restored = await map_concurrent(never, range(8), checkpoint=journal, result_type=Scored)
    assert restored == expected
    assert all(type(r) is Scored for r in restored)
    # without result_type the recorded JSON comes back as it is
    raw: list[Any] = await map_concurrent(never, range(8), checkpoint=journal)
    assert raw[3] == {"index": 3, "label": "L3", "score": 0.75}


async def test_checkpoint_result_that_is_not_json_ends_the_job(tmp_path: Path) -> None:
    async def fn(i: int) -> object:
        return object()

    with pytest.raises(TypeError, match="cannot be encoded as JSON"):
        await map_concurrent(fn, range(3), checkpoint=tmp_path / "job.jsonl", on_error="return")


async def test_checkpoint_survives_sigkill(tmp_path: Path, anyio_backend: str) -> None:
    journal = tmp_path / "job.jsonl"
    calls_first = tmp_path / "calls-1.txt"
    calls_second = tmp_path / "calls-2.txt"
    script = str(HERE / "_checkpoint_job.py")
    n = 200

    process = await anyio.open_process(
        [sys.executable, script, str(journal), str(calls_first), anyio_backend],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def fifty_done() -> bool:
        if journal.exists() and len(journal_lines(journal)) >= 50:
            return True
        assert process.returncode is None, "the job ended before it could be killed"
        return False

    try:
        await wait_for(fifty_done, "50 items in the journal", timeout=60)
        process.send_signal(signal.SIGKILL)
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
    assert process.returncode == -signal.SIGKILL
    before = [line["i"] for line in journal_lines(journal)]
    assert 50 <= len(before) < n
    assert len(set(before)) == len(before)

    with anyio.fail_after(60):
        second = await anyio.run_process(
            [sys.executable, script, str(journal), str(calls_second), anyio_backend]
        )
    results = json.loads(second.stdout)
    assert results == [{"n": i, "square": i * i} for i in range(n)]

    after = journal_lines(journal)
    assert journal.read_bytes().endswith(b"\n")
    assert sorted(line["i"] for line in after) == list(range(n))  # each index exactly once
    called_again = [int(line) for line in calls_second.read_text().split()]
    assert len(called_again) == len(set(called_again))
    assert not set(called_again) & set(before)
    assert set(called_again) == set(range(n)) - set(before)


# -- a million lazily generated items -------------------------------------------------------------


async def test_a_million_lazily_generated_items() -> None:
    n = 1_000_000
    limit = 50
    produced = consumed = max_ahead = 0
    active = max_active = 0

    def source() -> Iterator[int]:
        nonlocal produced, max_ahead
        for i in range(n):
            produced += 1
            max_ahead = max(max_ahead, produced - consumed)
            yield i

    async def fn(i: int) -> int:
        nonlocal active, max_active
        active += 1
        max_active = max(max_active, active)
        if i % 64 == 0:  # let some calls overlap
            await anyio.lowlevel.checkpoint()
        active -= 1
        return i

    total = 0
    start = time.perf_counter()
    async with imap_concurrent(fn, source(), limit=limit) as results:
        async for _, result in results:
            consumed += 1
            total += result
    elapsed = time.perf_counter() - start
    print(f"1,000,000 items in {elapsed:.1f} s")
    assert consumed == produced == n
    assert total == n * (n - 1) // 2
    assert 1 < max_active <= limit
    # each worker holds at most one item, the stream buffers at most `limit` results
    assert max_ahead <= limit + limit + 2


# -- the optional progress bar --------------------------------------------------------------------


def test_progress_module_and_tqdm_are_not_imported_by_anyoai() -> None:
    code = "import sys, anyoai; print('anyoai.progress' in sys.modules, 'tqdm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_progress_bar_without_tqdm_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from anyoai.progress import progress_bar

    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r"pip install 'anyoai\[progress\]'"):
        progress_bar()


async def test_progress_bar_follows_the_job() -> None:
    pytest.importorskip("tqdm")
    import io

    from anyoai.progress import progress_bar

    async def fn(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        return i

    out = io.StringIO()
    with progress_bar(description="test", file=out) as bar:
        await map_concurrent(fn, range(25), limit=5, progress=bar)
        assert bar._bar.n == 25
        assert bar._bar.total == 25
    assert "test" in out.getvalue()


def test_progress_str() -> None:
    progress = Progress(
        done=1200, failed=3, in_flight=64, skipped=0, total=10000, elapsed=2.0, rate=512.34
    )
    assert str(progress) == "1200/10000 done, 3 failed, 64 in flight, 512.3/s"
    resumed = attrs.evolve(progress, skipped=500)
    assert str(resumed) == "1700/10000 done (500 resumed), 3 failed, 64 in flight, 512.3/s"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        progress.done = 5  # type: ignore[misc]


async def test_journal_line_format(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"

    async def fn(item: dict[str, int]) -> list[int]:
        return [item["a"], item["a"] + 1]

    await map_concurrent(fn, [{"a": 1}], checkpoint=os.fspath(journal))
    (line,) = journal_lines(journal)
    assert set(line) == {"i", "f", "r"}
    assert line["i"] == 0
    assert line["r"] == [1, 2]
    assert len(line["f"]) == 16
    int(line["f"], 16)


async def test_a_resumed_item_is_sent_again_under_the_same_idempotency_key(
    tmp_path: Path, server: FakeServer
) -> None:
    """What a resume sends again carries the key it had the first time (docs/governance.md)."""
    journal = tmp_path / "job.jsonl"
    first_run = True

    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url) as pool:

        async def ask(n: int) -> str:
            result = await pool.chat.completions.create(model="m", messages=hello(f"item {n}"))
            await pool.chat.completions.create(model="m", messages=hello(f"again {n}"))
            if first_run and n == 2:
                raise RuntimeError("the process dies with item 2 in flight")
            return result.text

        outcomes = await anyoai.map_concurrent(
            ask, range(4), limit=2, checkpoint=journal, on_error="return"
        )
        assert isinstance(outcomes[2], RuntimeError)
        keys_by_text = {
            r.json["messages"][0]["content"]: r.headers["idempotency-key"] for r in server.requests
        }
        first = dict(keys_by_text)
        server.clear()
        first_run = False
        await anyoai.map_concurrent(ask, range(4), limit=2, checkpoint=journal)
        resent = {
            r.json["messages"][0]["content"]: r.headers["idempotency-key"] for r in server.requests
        }
    assert set(resent) == {"item 2", "again 2"}  # only the unfinished item runs again
    assert resent["item 2"] == first["item 2"]
    assert resent["again 2"] == first["again 2"]
    assert first["item 2"] != first["again 2"]  # each call of an item has its own key
    assert len(set(first.values())) == 8
    assert all(key.startswith("anyoai-job-") for key in first.values())
