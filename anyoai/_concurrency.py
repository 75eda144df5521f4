"""Run an async function over many items, at most ``limit`` at a time, resumably.

:func:`map_concurrent` returns every result in input order; :func:`imap_concurrent` yields
``(index, result)`` pairs as they complete. Both run ``limit`` worker tasks in one anyio task group;
the workers pull items lazily from the source (a sequence, any iterable, or an async iterable), so a
generator of a million items is never materialised: an item is taken only when a worker is free,
and a bounded stream of results between the workers and the consumer applies back-pressure.

**Failures.** With ``on_error="raise"`` the first exception raised by the function cancels every
worker and is raised itself (not wrapped in an exception group). With ``on_error="return"`` the
exception object takes the place of the result and the job goes on.

**Checkpoints.** With ``checkpoint=PATH`` each item that succeeds appends one line to a JSONL
journal::

    {"i": 17, "f": "3b0c44298fc1c149", "r": <the result as JSON>}

``i`` is the item's index in the input, ``f`` the first 16 hex digits of the SHA-256 of the item's
JSON encoding (of its ``repr`` if it has none) and ``r`` the result. A line is written by a single
``os.write`` on a descriptor opened with ``O_APPEND``, so a process killed at any moment leaves at
worst a partial last line, which the next run drops. A run over an existing journal does not call
the function for the indices it records: it yields their recorded results (structured back into
``result_type`` if given) and runs the rest. Failed items are not recorded, so a re-run retries
them.

**What a resume sends again.** The items that were in flight when the process died are not in
the journal, so the re-run sends them again: up to ``limit`` items may reach the server twice.
Every API call made for an item carries an ``Idempotency-Key`` derived from the job (the
checkpoint's path) and the item (its index and fingerprint), the same on every run, so a server
that honours the header can recognise the repeat; the journal never holds two results for one
item.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sized,
)
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, cast, overload

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _serde
from ._keys import item_scope, job_id

__all__ = ["Progress", "imap_concurrent", "map_concurrent"]

logger = logging.getLogger("anyoai")

T = TypeVar("T")
R = TypeVar("R")

OnError = Literal["raise", "return"]

_END: Any = object()  # the source is exhausted


@attrs.frozen
class Progress:
    """A snapshot of a running :func:`map_concurrent` / :func:`imap_concurrent` job.

    :ivar done: items whose call succeeded in this run.
    :ivar failed: items whose call raised in this run (``on_error="return"``; with ``"raise"``
        the first failure ends the job).
    :ivar in_flight: calls running right now.
    :ivar skipped: items resumed from the checkpoint journal instead of being called.
    :ivar total: the number of items: the ``total=`` argument, else ``len(items)`` when the items
        have a length, else ``None``.
    :ivar elapsed: seconds since the job started.
    :ivar rate: items finished (done or failed) per second since the job started.
    """

    done: int
    failed: int
    in_flight: int
    skipped: int
    total: int | None
    elapsed: float
    rate: float

    def __str__(self) -> str:
        """One line such as ``"1200/10000 done, 3 failed, 64 in flight, 512.3/s"``.

        Resumed items count as done here, and are also shown as ``(n resumed)``.
        """
        completed = self.done + self.skipped
        text = f"{completed}/{self.total} done" if self.total is not None else f"{completed} done"
        if self.skipped:
            text += f" ({self.skipped} resumed)"
        return f"{text}, {self.failed} failed, {self.in_flight} in flight, {self.rate:.1f}/s"


def _fingerprint(item: Any) -> str:
    try:
        encoded = _serde.encode_json(item)
    except Exception:
        encoded = repr(item).encode("utf-8", "backslashreplace")
    return hashlib.sha256(encoded).hexdigest()[:16]


def _check_options(limit: int, on_error: str) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
    if on_error not in ("raise", "return"):
        raise ValueError(f'on_error must be "raise" or "return", got {on_error!r}')


class _Journal:
    """The checkpoint file: read once at the start, then appended to one line per success."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
        self._fd: int | None = os.open(self.path, flags, 0o666)

    def read(self) -> dict[int, tuple[str, Any]]:
        """The recorded ``{index: (fingerprint, result)}``; a partial last line is cut off.

        :raises ValueError: if a complete line is not a journal entry.
        """
        assert self._fd is not None
        os.lseek(self._fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self._fd, 1 << 20):
            chunks.append(chunk)
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1
        if end < len(data):
            logger.warning(
                "checkpoint %s: dropping a partial last line (%d bytes)", self.path, len(data) - end
            )
            os.ftruncate(self._fd, end)
        recorded: dict[int, tuple[str, Any]] = {}
        for lineno, line in enumerate(data[:end].split(b"\n")[:-1], 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not (
                isinstance(entry, dict)
                and type(entry.get("i")) is int
                and entry["i"] >= 0
                and isinstance(entry.get("f"), str)
                and "r" in entry
            ):
                raise ValueError(
                    f"checkpoint {self.path} line {lineno} is not a journal entry: {line[:200]!r}"
                )
            recorded.setdefault(entry["i"], (entry["f"], entry["r"]))
        return recorded

    def write(self, index: int, fingerprint: str, result: Any) -> None:
        """Append the line for a success.

        :raises TypeError: if the result cannot be encoded as JSON.
        :raises OSError: if the file cannot be written.
        """
        assert self._fd is not None
        try:
            encoded = _serde.encode_json(result)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"checkpoint {self.path}: the result for item {index} cannot be encoded as JSON "
                f"({exc})"
            ) from exc
        line = b'{"i":%d,"f":"%s","r":%b}\n' % (index, fingerprint.encode("ascii"), encoded)
        written = os.write(self._fd, line)
        while written < len(line):  # pragma: no cover - regular files take it in one write
            written += os.write(self._fd, line[written:])

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class _Results(AsyncIterator[tuple[int, Any]]):
    """What ``imap_concurrent(...)`` gives on entering: the resumed results, then live ones."""

    def __init__(
        self, run: _Run[Any, Any], receive: MemoryObjectReceiveStream[tuple[int, Any]]
    ) -> None:
        self._run = run
        self._resumed: Iterator[tuple[int, Any]] | None = iter(run.resumed)
        self._receive = receive

    async def __anext__(self) -> tuple[int, Any]:
        if self._resumed is not None:
            entry = next(self._resumed, None)
            if entry is not None:
                return entry
            self._resumed = None
            self._run.resumed = []
        try:
            # fast path: a waiting result needs no trip through the event loop
            await anyio.lowlevel.checkpoint_if_cancelled()
            try:
                return self._receive.receive_nowait()
            except anyio.WouldBlock:
                return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        if self._run.error is not None:
            raise self._run.error
        raise StopAsyncIteration


class _Run(
    AbstractAsyncContextManager[AsyncIterator[tuple[int, "R | BaseException"]]], Generic[T, R]
):
    """One job: the source, the journal, the counters, the workers and their task group."""

    def __init__(
        self,
        fn: Callable[[T], Awaitable[R]],
        items: Iterable[T] | AsyncIterable[T],
        *,
        limit: int,
        on_error: OnError,
        progress: Callable[[Progress], object] | None,
        checkpoint: str | os.PathLike[str] | None,
        result_type: type[Any] | None,
        total: int | None,
    ) -> None:
        _check_options(limit, on_error)
        self._fn = fn
        self._items = items
        self._limit = limit
        self._return_errors = on_error == "return"
        self._progress = progress
        self._checkpoint = checkpoint
        self._job = ""
        self._result_type = result_type
        self._length: int | None = None
        if isinstance(items, Sized) and not isinstance(items, AsyncIterable):
            self._length = len(items)
        self._total = total if total is not None else self._length
        self._entered = False
        # the source
        self._iterator: Iterator[T] | None = None
        self._aiterator: AsyncIterator[T] | None = None
        self._lock: anyio.Lock | None = None
        self._pending: collections.deque[tuple[int, T]] = collections.deque()
        self._next_index = 0
        self._exhausted = False
        # state
        self._journal: _Journal | None = None
        self.resumed: list[tuple[int, Any]] = []
        self.error: BaseException | None = None
        self._error_context: BaseException | None = None
        self._done = self._failed = self._in_flight = self._skipped = 0
        self._started = time.monotonic()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._receive: MemoryObjectReceiveStream[tuple[int, Any]] | None = None

    # -- the source ------------------------------------------------------------------------------

    async def _next_item(self) -> Any:
        """The next item of the source, or ``_END``. Async iterators are advanced under a lock."""
        if self._aiterator is not None:
            assert self._lock is not None
            async with self._lock:
                if self._exhausted:
                    return _END
                try:
                    return await self._aiterator.__anext__()
                except StopAsyncIteration:
                    self._exhausted = True
                    return _END
        assert self._iterator is not None
        if self._exhausted:
            return _END
        try:
            return next(self._iterator)
        except StopIteration:
            self._exhausted = True
            return _END

    async def _pull(self) -> tuple[int, T] | None:
        """The next ``(index, item)`` to run, or ``None`` when there is none."""
        if self._pending:
            return self._pending.popleft()
        item = await self._next_item()
        if item is _END or self.error is not None:
            return None
        index = self._next_index
        self._next_index += 1
        return index, item

    # -- the journal -----------------------------------------------------------------------------

    async def _resume(self, journal: _Journal) -> None:
        recorded = journal.read()
        if not recorded:
            return
        last = max(recorded)
        if self._length is not None and last >= self._length:
            raise ValueError(
                f"checkpoint {journal.path} does not match the items: it records item {last}, "
                f"but there are only {self._length} items"
            )
        # read the source up to the last recorded index, checking every recorded item; the
        # unrecorded ones in between are kept to be run first
        resumed = []
        for index in range(last + 1):
            item = await self._next_item()
            if item is _END:
                raise ValueError(
                    f"checkpoint {journal.path} does not match the items: it records item {last}, "
                    f"but there are only {index} items"
                )
            entry = recorded.get(index)
            if entry is None:
                self._pending.append((index, item))
                continue
            fingerprint, data = entry
            if fingerprint != _fingerprint(item):
                raise ValueError(
                    f"checkpoint {journal.path} does not match the items given: item {index} has "
                    f"fingerprint {_fingerprint(item)}, the journal recorded {fingerprint}"
                )
            if self._result_type is not None:
                data = _serde.structure_value(data, self._result_type)
            resumed.append((index, data))
        self._next_index = last + 1
        self.resumed = resumed
        self._skipped = len(resumed)
        logger.info(
            "checkpoint %s: resuming with %d of the items already done", journal.path, len(resumed)
        )

    # -- progress --------------------------------------------------------------------------------

    def _report(self) -> None:
        callback = self._progress
        if callback is None:
            return
        elapsed = time.monotonic() - self._started
        finished = self._done + self._failed
        snapshot = Progress(
            done=self._done,
            failed=self._failed,
            in_flight=self._in_flight,
            skipped=self._skipped,
            total=self._total,
            elapsed=elapsed,
            rate=finished / elapsed if elapsed > 0 else 0.0,
        )
        try:
            callback(snapshot)
        except Exception:
            self._progress = None
            logger.warning(
                "the progress callback %r raised; it will not be called again in this job",
                callback,
                exc_info=True,
            )

    # -- the workers -----------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        """End the job with *exc* (the first one wins): cancel every worker and the consumer."""
        if self.error is None:
            self.error = exc
            self._error_context = exc.__context__
            self._exhausted = True
            assert self._task_group is not None
            self._task_group.cancel_scope.cancel()

    async def _work(self, send: MemoryObjectSendStream[tuple[int, Any]]) -> None:
        cancelled = anyio.get_cancelled_exc_class()
        with send:
            try:
                await self._work_loop(send)
            except cancelled:
                raise
            except BaseException as exc:  # the function (on_error="raise"), source or journal
                self._fail(exc)

    async def _work_loop(self, send: MemoryObjectSendStream[tuple[int, Any]]) -> None:
        fn = self._fn
        journal = self._journal
        while self.error is None:
            entry = await self._pull()
            if entry is None:
                return
            index, item = entry
            fingerprint = _fingerprint(item) if journal is not None else ""
            outcome: Any
            self._in_flight += 1
            try:
                if journal is None:
                    outcome = await fn(item)
                else:  # the item's calls get idempotency keys of their own: see _keys
                    with item_scope(self._job, index, fingerprint):
                        outcome = await fn(item)
            except Exception as exc:
                self._in_flight -= 1
                if not self._return_errors:
                    raise
                self._failed += 1
                outcome = exc
            except BaseException:
                self._in_flight -= 1
                raise
            else:
                self._in_flight -= 1
                if journal is not None:
                    journal.write(index, fingerprint, outcome)
                self._done += 1
            self._report()
            # fast path: a free slot in the buffer needs no trip through the event loop
            await anyio.lowlevel.checkpoint_if_cancelled()
            try:
                send.send_nowait((index, outcome))
            except anyio.WouldBlock:
                await send.send((index, outcome))

    # -- the context manager ---------------------------------------------------------------------

    async def __aenter__(self) -> AsyncIterator[tuple[int, R | BaseException]]:
        """Read the journal, check it against the items, and start the workers.

        :raises RuntimeError: if entered twice.
        :raises ValueError: if the journal is malformed or does not match the items.
        :raises OSError: if the journal cannot be opened.
        """
        if self._entered:
            raise RuntimeError("a concurrent map can be entered only once")
        self._entered = True
        self._started = time.monotonic()
        if isinstance(self._items, AsyncIterable):
            self._aiterator = self._items.__aiter__()
            self._lock = anyio.Lock()
        else:
            self._iterator = iter(self._items)
        if self._checkpoint is not None:
            self._journal = _Journal(self._checkpoint)
            self._job = job_id(self._checkpoint)
        try:
            if self._journal is not None:
                await self._resume(self._journal)
            if self._skipped:
                self._report()
            workers = self._limit
            if self._length is not None:
                workers = min(workers, len(self._pending) + self._length - self._next_index)
            send, receive = anyio.create_memory_object_stream[tuple[int, Any]](self._limit)
            self._receive = receive
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
        except BaseException:
            self._close()
            raise
        with send:
            for _ in range(workers):
                self._task_group.start_soon(self._work, send.clone())
        return _Results(self, receive)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Cancel the workers still running, wait for them, and close the journal.

        :raises BaseException: the job's error (on_error="raise": the function's first exception;
            either policy: an error of the source or of the journal), unless the block itself
            raised something else or was cancelled from outside.
        """
        task_group = self._task_group
        assert task_group is not None
        try:
            if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
                # the block raised: stop the job and let that exception through untouched
                task_group.cancel_scope.cancel()
                await task_group.__aexit__(None, None, None)
                return False
            task_group.cancel_scope.cancel()  # a block left early leaves nothing running
            suppress = await task_group.__aexit__(exc_type, exc, tb)
        finally:
            self._close()
        if exc is not None and not suppress:
            return False  # cancelled from outside: that wins
        if self.error is not None:
            try:
                raise self.error
            finally:
                self.forget_cancellation()
        return suppress

    def forget_cancellation(self) -> None:
        """Give the job's error back the context it was raised with.

        Raised again while a cancellation is being handled, it gets that cancellation as its
        ``__context__``; a traceback would show it as raised "during handling" of it.
        """
        if self.error is not None:
            self.error.__context__ = self._error_context

    def _close(self) -> None:
        if self._receive is not None:
            self._receive.close()
        if self._journal is not None:
            self._journal.close()


@overload
def imap_concurrent(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    limit: int = ...,
    on_error: Literal["raise"] = ...,
    progress: Callable[[Progress], object] | None = ...,
    checkpoint: str | os.PathLike[str] | None = ...,
    result_type: type[Any] | None = ...,
    total: int | None = ...,
) -> AbstractAsyncContextManager[AsyncIterator[tuple[int, R]]]: ...
@overload
def imap_concurrent(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    limit: int = ...,
    on_error: Literal["return"],
    progress: Callable[[Progress], object] | None = ...,
    checkpoint: str | os.PathLike[str] | None = ...,
    result_type: type[Any] | None = ...,
    total: int | None = ...,
) -> AbstractAsyncContextManager[AsyncIterator[tuple[int, R | BaseException]]]: ...
def imap_concurrent(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    limit: int = 64,
    on_error: OnError = "raise",
    progress: Callable[[Progress], object] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    result_type: type[Any] | None = None,
    total: int | None = None,
) -> AbstractAsyncContextManager[AsyncIterator[tuple[int, R | BaseException]]]:
    """Call ``await fn(item)`` for every item, at most *limit* at once; yield results as they come.

    ::

        async with anyoai.imap_concurrent(embed, texts, limit=8) as results:
            async for index, vector in results:
                ...

    Each result is yielded once, tagged with its item's index in the input, in order of
    completion (results resumed from *checkpoint* come first). The workers live in a task group
    owned by the ``async with`` block: none outlives it, and leaving the block early cancels the
    calls still running. At most *limit* finished results wait for the consumer; beyond that the
    workers wait too, so a slow consumer slows the job down instead of piling results up.

    :param fn: an async function of one item.
    :param items: a sequence, any iterable or an async iterable, read lazily (an item is taken
        only when a worker is free).
    :param limit: the number of worker tasks, hence the most calls running at once.
    :param on_error: ``"raise"``: the first exception raised by *fn* cancels the job and is raised
        from the ``async with`` block (the exception itself, not a group). ``"return"``: it is
        yielded in place of the result and the job goes on.
    :param progress: called after each item with a :class:`Progress` (and once at the start when
        items are resumed). If it raises, that is logged once as a warning and the callback is not
        called again; the job goes on.
    :param checkpoint: the path of a JSONL journal of results (see the module documentation),
        created if missing. Items it records are not run again; their recorded result is
        yielded: the decoded JSON, or, with *result_type*, that structured into it.
    :param result_type: the type recorded results are structured back into (an attrs class, or any
        type the anyoai converter knows).
    :param total: the number of items, for :class:`Progress` (default: ``len(items)`` if any).
    :returns: an async context manager giving an async iterator of ``(index, result)``.
    :raises ValueError: at once, if *limit* is below 1 or *on_error* is not one of the two; on
        entering, if the journal is malformed or does not match the items (an item's fingerprint
        differs, or it records an index beyond the items).
    :raises ResponseValidationError: on entering, if a recorded result does not fit *result_type*.
    :raises OSError: if the journal cannot be opened or written.
    :raises TypeError: if a result cannot be encoded as JSON for the journal (this ends the job
        whatever *on_error* says).
    :raises Exception: with ``on_error="raise"``, the first exception raised by *fn*; with either
        policy, an exception raised by the source of items.
    """
    return _Run(
        fn,
        items,
        limit=limit,
        on_error=on_error,
        progress=progress,
        checkpoint=checkpoint,
        result_type=result_type,
        total=total,
    )


@overload
async def map_concurrent(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    limit: int = ...,
    on_error: Literal["raise"] = ...,
    progress: Callable[[Progress], object] | None = ...,
    checkpoint: str | os.PathLike[str] | None = ...,
    result_type: type[Any] | None = ...,
    total: int | None = ...,
) -> list[R]: ...
@overload
async def map_concurrent(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    limit: int = ...,
    on_error: Literal["return"],
    progress: Callable[[Progress], object] | None = ...,
    checkpoint: str | os.PathLike[str] | None = ...,
    result_type: type[Any] | None = ...,
    total: int | None = ...,
) -> list[R | BaseException]: ...
async def map_concurrent(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    limit: int = 64,
    on_error: OnError = "raise",
    progress: Callable[[Progress], object] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    result_type: type[Any] | None = None,
    total: int | None = None,
) -> list[R] | list[R | BaseException]:
    """Call ``await fn(item)`` for every item, at most *limit* at once; return results in order.

    ::

        vectors = await anyoai.map_concurrent(embed, texts, limit=32, checkpoint="embed.jsonl")

    The same job as :func:`imap_concurrent` (see there for every parameter), collected into a
    list whose *n*-th element is the result for the *n*-th item. With ``on_error="return"`` a
    failed item's exception object stands in its place. Cancelling the caller cancels every call
    still running.

    :returns: the results, in input order.
    :raises ValueError: if *limit* is below 1, *on_error* is not one of the two, or the journal
        is malformed or does not match the items (raised before any item is run).
    :raises ResponseValidationError: if a recorded result does not fit *result_type*.
    :raises OSError: if the journal cannot be opened or written.
    :raises TypeError: if a result cannot be encoded as JSON for the journal.
    :raises Exception: with ``on_error="raise"``, the first exception raised by *fn* (itself, not
        an exception group); with either policy, an exception raised by the source of items.
    """
    collected: dict[int, Any] = {}
    run = _Run(
        fn,
        items,
        limit=limit,
        on_error=on_error,
        progress=progress,
        checkpoint=checkpoint,
        result_type=result_type,
        total=total,
    )
    try:
        async with run as results:
            async for index, result in results:
                collected[index] = result
    except BaseException as exc:
        if exc is run.error:
            run.forget_cancellation()  # asyncio chains it again on the way out of the block
        raise
    return cast("list[R | BaseException]", [collected[index] for index in range(len(collected))])
