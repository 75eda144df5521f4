"""Streams: server-sent events turned into typed chunks, owning their connection until closed.

A stream is an async iterator and an async context manager. It releases its connection when it
is exhausted (``data: [DONE]`` or the end of the body), closed, broken, or cancelled: a
connection whose body was read to the end goes back to the idle list, any other is closed.
Nothing is retried once the stream exists. An event longer than the pool's ``max_event_bytes``
raises :class:`ResponseValidationError` and closes the connection.

A stream dropped without being closed (no ``async with``, no ``aclose()``) is closed by the
garbage collector: its socket is closed and its slots released at once, without I/O, and a
``ResourceWarning`` says where the stream was created (the caller's ``file:line``, found when
the stream is made by walking out of anyoai's own frames; with :mod:`tracemalloc` on, the
warning also shows the traceback of the allocation).
"""

from __future__ import annotations

import abc
import functools
import json
import os
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import anyio.lowlevel

from ._accumulate import ChatCompletionAccumulator, CompletionAccumulator
from ._compat import AsyncByteReader, AsyncClosingIterator
from ._errors import check_content_filter
from ._exceptions import APIConnectionError, ResponseValidationError, StreamError
from ._model import Metered, ResponseMeta
from ._secrets import redact
from ._serde import structure_value
from ._sse import DEFAULT_MAX_EVENT_BYTES, EventTooLargeError, ServerSentEvent, SSEDecoder
from ._tokens import count_text, ensure_encoding

if TYPE_CHECKING:
    from ._exchange import Exchange
    from ._transport import Response
from .types.chat import ChatCompletion, ChatCompletionChunk
from .types.completions import Completion
from .types.shared import CompletionUsage

__all__ = [
    "AccumulatingStream",
    "Accumulator",
    "AsyncStream",
    "ByteStream",
    "ChatCompletionStream",
    "CompletionStream",
]

ChunkT = TypeVar("ChunkT")
FinalT = TypeVar("FinalT", bound=Metered)
ChunkT_contra = TypeVar("ChunkT_contra", contravariant=True)
FinalT_co = TypeVar("FinalT_co", covariant=True)

#: after ``data: [DONE]``, read at most this much more to let the connection be reused
_DRAIN_LIMIT = 64 * 1024

#: the directory of anyoai's own modules: frames there are skipped to find a stream's creator
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def creation_site() -> tuple[str, int] | None:
    """The ``(file, line)`` of the code outside anyoai that is creating an object now (the
    first frame, walking out from the caller, that is not anyoai's own); ``None`` if unknown.

    It costs a few frame hops (well under a microsecond), so every stream records it."""
    frame: FrameType | None
    try:
        frame = sys._getframe(1)
    except (AttributeError, ValueError):  # pragma: no cover - not CPython
        return None
    while frame is not None:
        code = frame.f_code
        if not code.co_filename.startswith(_PACKAGE_DIR):
            return code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None


def _loop_handle() -> tuple[int, Callable[[Callable[[], object]], object] | None]:
    """This thread, and how to run a callback soon in this event loop from any thread (the
    loop's ``call_soon_threadsafe``, trio's ``run_sync_soon``): what a stream collected in
    another thread hands its release to."""
    thread = threading.get_ident()
    try:
        native = anyio.lowlevel.current_token().native_token
    except Exception:  # no event loop here
        return thread, None
    soon = getattr(native, "run_sync_soon", None) or getattr(native, "call_soon_threadsafe", None)
    return thread, soon


def describe_site(site: tuple[str, int] | None) -> str:
    """``"created at file:line"`` for a warning, or a hint when the site is unknown."""
    if site is None:
        return "created at an unknown place (run with tracemalloc on to see where)"
    return f"created at {site[0]}:{site[1]}"


def _generated_texts(result: Any) -> list[str]:
    """Everything the model wrote in *result*: texts, refusals, tool calls' names and
    arguments (what a stream's completion tokens are estimated from)."""
    texts: list[str] = []
    for choice in getattr(result, "choices", None) or ():
        message = getattr(choice, "message", None)
        if message is None:  # a legacy completion
            texts.append(getattr(choice, "text", None) or "")
            continue
        texts += [message.content or "", message.refusal or ""]
        calls = [getattr(c, "function", None) for c in message.tool_calls or ()]
        calls.append(message.function_call)
        texts += [
            part for call in calls if call is not None for part in (call.name, call.arguments)
        ]
    return texts


class _ExchangeMeta:
    """What a streamed response tells about its exchange (shared by the stream classes)."""

    _meta: ResponseMeta
    _response: Response
    _exchange: Exchange
    _finished: bool
    #: where the stream was created (``file``, ``line``), for the warning of a forgotten one
    _site: tuple[str, int] | None = None
    #: the thread of its event loop, and how to call into that loop from another thread
    _loop: tuple[int, Callable[[Callable[[], object]], object] | None] = (0, None)

    @property
    def meta(self) -> ResponseMeta:
        """The exchange: headers, request id, backend, attempts, time to the response head."""
        return self._meta

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (lower-case names)."""
        return self._meta.headers

    @property
    def request_id(self) -> str | None:
        """The server's id for this request."""
        return self._meta.request_id

    @property
    def closed(self) -> bool:
        """Whether the stream has ended or been closed (its connection released)."""
        return self._finished

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the connection (subclasses say how)."""

    async def _read_chunk(self) -> bytes:
        """The next piece of the body (``b""`` at its end); the stream is closed if that fails."""
        try:
            return await self._response.read_chunk()
        except BaseException:
            await self.aclose()
            raise

    def _discard_nowait(self) -> bool:
        """Release everything at once, without I/O: close the socket, free the connection's
        slot and the exchange's (in-flight slots, the backend's count). Returns whether the
        stream was still open; a closed stream is left alone."""
        if self._finished:
            return False
        self._finished = True
        _release_now(self._response, self._exchange)
        return True

    def __del__(
        self,
        _finalizing: Any = sys.is_finalizing,
        _warn: Any = warnings.warn,
        _thread: Any = threading.get_ident,
    ) -> None:
        # a stream the garbage collector found open: release what it holds (at once in its
        # event loop's thread; collected in another thread, handed to that loop, or done here
        # if the loop is gone) and say where it was made. Never raises (a ResourceWarning
        # turned into an error by a warnings filter goes where any __del__'s exception goes);
        # nothing at interpreter shutdown.
        if getattr(self, "_finished", True) or _finalizing():
            return
        try:
            thread, soon = self._loop
            if thread == _thread() or soon is None:
                self._discard_nowait()
            else:
                self._finished = True
                release = functools.partial(_release_now, self._response, self._exchange)
                try:
                    soon(release)
                except Exception:  # that loop has ended: nothing else runs there now
                    release()
            message = (
                f"unclosed {type(self).__name__} {describe_site(self._site)}: the garbage "
                "collector released its connection; use `async with` (or `await "
                "stream.aclose()`) so that it is released when you are done with it"
            )
        except Exception:
            return
        _warn(message, ResourceWarning, source=self)


def _release_now(response: Response, exchange: Exchange) -> None:
    """Close *response*'s connection without I/O and release what *exchange* holds."""
    try:
        response.discard_nowait()
    finally:
        exchange.finish()


class AsyncStream(_ExchangeMeta, AsyncClosingIterator[ChunkT]):
    """An async iterator of typed chunks over one streamed response.

    Use it as ``async with await pool.chat.completions.create(..., stream=True) as stream:``;
    the ``async with`` guarantees the connection is released even if you stop early.
    """

    _chunk_type: type[ChunkT]

    def __init__(
        self,
        exchange: Exchange,
        *,
        model: str | None = None,
        raise_on_content_filter: bool = False,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._site = creation_site()
        self._loop = _loop_handle()
        self._exchange = exchange
        self._raise_on_content_filter = raise_on_content_filter
        self._response = exchange.response
        self._meta = exchange.meta
        self._secrets = exchange.secrets
        self._model = model
        self._decoder = SSEDecoder(max_event_bytes=max_event_bytes)
        self._pending: deque[ServerSentEvent] = deque()
        self._finished = False
        self._completed = False  # the server ended the stream (not a close by the caller)
        self._saw_done = False
        self._end_checked = False

    # -- metadata --------------------------------------------------------------------------

    @property
    def backend(self) -> str | None:
        """The name of the backend that answered."""
        return self._meta.backend

    @property
    def attempts(self) -> int:
        """How many attempts it took to get the response head."""
        return self._meta.attempts

    # -- iteration -------------------------------------------------------------------------

    async def __anext__(self) -> ChunkT:
        while True:
            if self._pending:
                event = self._pending.popleft()
                if event.data == "[DONE]":
                    self._completed = True
                    self._saw_done = True
                    await self._drain_and_close()
                    await self._end()
                    raise StopAsyncIteration
                try:
                    chunk = self._decode(event)
                except BaseException:
                    await self.aclose()
                    raise
                self._on_chunk(chunk)
                return chunk
            if self._finished:
                if self._completed:
                    await self._end()
                raise StopAsyncIteration
            data = await self._read_chunk()
            try:
                if data:
                    self._pending.extend(self._decoder.feed(data))
                    continue
                # the body ended (a server may omit [DONE]): the connection is reusable
                self._pending.extend(self._decoder.close())
            except EventTooLargeError as exc:
                await self.aclose()  # the body was not read to its end: the connection closes
                raise self._too_large(exc.limit) from None
            self._completed = True
            await self.aclose()

    def _too_large(self, limit: int) -> ResponseValidationError:
        return ResponseValidationError(
            f"a server-sent event of the stream is longer than max_event_bytes ({limit} "
            "bytes); the stream's connection was closed. Raise the limit with "
            "open_pool(max_event_bytes=...) if such events are expected.",
            backend=self._meta.backend,
            request_id=self._meta.request_id,
        )

    def _decode(self, event: ServerSentEvent) -> ChunkT:
        try:
            data = json.loads(event.data)
        except ValueError as exc:
            raise ResponseValidationError(
                f"a stream event is not valid JSON ({exc}): {event.data[:200]!r}",
                body=event.data,
                backend=self._meta.backend,
                request_id=self._meta.request_id,
            ) from None
        if event.event == "error" or (isinstance(data, dict) and data.get("error")):
            raise self._stream_error(data)
        return structure_value(data, self._chunk_type)

    def _stream_error(self, data: Any) -> StreamError:
        fields = data.get("error") if isinstance(data, dict) else None
        if not isinstance(fields, dict):
            fields = data if isinstance(data, dict) else {"message": str(data)}
        message = str(fields.get("message") or "the server sent an error event")
        code = fields.get("code")
        return StreamError(
            redact(f"error event in the stream: {message}", self._secrets),
            body=data,
            code=str(code) if code is not None else None,
            type=fields.get("type") if isinstance(fields.get("type"), str) else None,
            param=fields.get("param") if isinstance(fields.get("param"), str) else None,
            request_id=self._meta.request_id,
            backend=self._meta.backend,
        )

    def _on_chunk(self, chunk: ChunkT) -> None:
        """Called with every chunk, in order; subclasses accumulate here."""

    async def _end(self) -> None:
        """Called once when the server has ended the stream; subclasses may raise here."""
        if not self._end_checked:
            self._end_checked = True
            if not self._saw_done and not self._finished_by_content():
                raise APIConnectionError(
                    "the stream ended before it was finished (no `data: [DONE]`, and no "
                    "finish_reason for every choice): the server or a proxy cut it short",
                    request_id=self._meta.request_id,
                    backend=self._meta.backend,
                )
            await self._check_end()

    def _finished_by_content(self) -> bool:
        """Whether the chunks themselves show the stream finished (for servers that omit
        ``[DONE]``). A plain stream cannot tell, so it trusts a clean end of the body."""
        return True

    async def _check_end(self) -> None:
        """What to do with a complete stream (nothing here)."""

    async def _drain_and_close(self) -> None:
        drained = 0
        try:
            while drained <= _DRAIN_LIMIT:
                data = await self._response.read_chunk()
                if not data:
                    break
                drained += len(data)
        except APIConnectionError:
            pass  # the server closed after [DONE]: nothing lost
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream and release its connection. Safe to call more than once."""
        self._finished = True
        self._pending.clear()
        try:
            await self._response.aclose()
        finally:
            self._exchange.finish(self._used_tokens())

    def _used_tokens(self) -> int | None:
        """The tokens the stream really used, when known (subclasses know more)."""
        return None

    def __repr__(self) -> str:
        state = "closed" if self._finished else "open"
        return f"<{type(self).__name__} {state} backend={self.backend!r}>"


class Accumulator(Protocol[ChunkT_contra, FinalT_co]):
    """Rebuilds a stream's final result from its chunks."""

    def add(self, chunk: ChunkT_contra, /) -> None:
        """Take one chunk into account."""

    def snapshot(self) -> FinalT_co:
        """The result as accumulated so far."""


class AccumulatingStream(AsyncStream[ChunkT], Generic[ChunkT, FinalT]):
    """A stream that feeds every chunk to an accumulator as it goes.

    :attr:`accumulator` holds what was received so far (``accumulator.snapshot()``);
    :meth:`get_final_completion` reads the rest of the stream and returns the whole result.
    """

    accumulator: Accumulator[ChunkT, FinalT]
    _final: FinalT | None = None

    def _on_chunk(self, chunk: ChunkT) -> None:
        self.accumulator.add(chunk)

    def _used_tokens(self) -> int | None:
        usage = getattr(self.accumulator, "usage", None)
        if usage is not None:
            return int(usage.total_tokens)
        prompt = self._exchange.prompt_tokens
        if prompt is None:
            return None  # nothing was estimated: no token limit to settle
        final = self.accumulator.snapshot()
        texts = getattr(final, "texts", [])
        return prompt + sum(count_text(text, self._model) for text in texts)

    def _finished_by_content(self) -> bool:
        choices = getattr(self.accumulator.snapshot(), "choices", [])
        return bool(choices) and all(choice.finish_reason for choice in choices)

    async def _check_end(self) -> None:
        result = self.accumulator.snapshot()
        estimated = None if result.usage is not None else await self._estimate_usage(result)
        self._final = self._exchange.complete(result, estimated_usage=estimated)
        if self._raise_on_content_filter:
            check_content_filter(result)

    async def _estimate_usage(self, result: Any) -> CompletionUsage:
        """The usage of a stream the server sent no usage for, estimated with tiktoken."""
        await ensure_encoding(self._model)
        estimate = self._exchange.request.estimate
        prompt = (await estimate.compute())[0] if estimate is not None else 0
        completion = sum(count_text(text, self._model) for text in _generated_texts(result))
        return CompletionUsage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
        )

    async def get_final_completion(self) -> FinalT:
        """Consume what is left of the stream; return the accumulated result (with
        ``meta.estimated_usage`` when the server sent no usage chunk)."""
        async for _ in self:
            pass
        if self._final is not None:
            return self._final
        result = self.accumulator.snapshot()  # closed early: what arrived
        result._attach(self._meta)
        return result


class ChatCompletionStream(AccumulatingStream[ChatCompletionChunk, ChatCompletion]):
    """A streamed chat completion: yields :class:`ChatCompletionChunk`; accumulates into a
    :class:`ChatCompletion` (tool calls and their split arguments reassembled)."""

    _chunk_type = ChatCompletionChunk

    def __init__(self, exchange: Exchange, **kwargs: Any) -> None:
        super().__init__(exchange, **kwargs)
        self.accumulator = ChatCompletionAccumulator()


class CompletionStream(AccumulatingStream[Completion, Completion]):
    """A streamed legacy completion: yields :class:`Completion` chunks; accumulates into one."""

    _chunk_type = Completion

    def __init__(self, exchange: Exchange, **kwargs: Any) -> None:
        super().__init__(exchange, **kwargs)
        self.accumulator = CompletionAccumulator()


class ByteStream(_ExchangeMeta, AsyncByteReader):
    """The raw bytes of a response, streamed (a file's content): ``async for chunk in it``.

    Use ``async with`` (or :meth:`aclose`) so the connection is released if you stop early; read
    to the end, it goes back to the pool for reuse.

    :ivar size: the ``Content-Length`` the server announced, if any.
    """

    def __init__(self, exchange: Exchange) -> None:
        self._site = creation_site()
        self._loop = _loop_handle()
        self._exchange = exchange
        self._response = exchange.response
        self._meta = exchange.meta
        length = self._meta.headers.get("content-length")
        self.size: int | None = int(length) if length and length.isdigit() else None
        self._finished = False

    async def __anext__(self) -> bytes:
        while not self._finished:
            data = await self._read_chunk()
            if data:
                return data
            await self.aclose()  # the whole body arrived: the connection can be reused
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Release the connection (closed unless the body was read to its end). Idempotent."""
        self._finished = True
        try:
            await self._response.aclose()
        finally:
            self._exchange.finish()

    def __repr__(self) -> str:
        state = "closed" if self._finished else "open"
        return f"<ByteStream {state} size={self.size}>"
