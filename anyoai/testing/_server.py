"""The HTTP/1.1 layer of the fake OpenAI server: anyio sockets, h11, and wire-level faults.

:class:`FakeServer` listens on loopback, serves every connection in its own task (keep-alive,
``Connection: close``, ``Expect: 100-continue``, chunked request bodies), records every request,
asks :class:`~anyoai.testing._app.FakeApp` for the answer, has the rate limiter
(:mod:`anyoai.testing._ratelimit`) admit it, and writes it: with ``Content-Length``, or chunked
for streams. :class:`Fault` scripts what should go wrong on the way.

Large bodies (file uploads and downloads of tens of MiB) go through without extra copies: a
request body is kept once (in :attr:`RecordedRequest.body
<anyoai.testing._app.RecordedRequest.body>`, not parsed as JSON when it is multipart), and a
large answer is written straight from its bytes.
"""

from __future__ import annotations

import contextlib
import errno
import http
import json
import logging
import math
import re
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, Final, Literal

import anyio
import anyio.abc
import anyio.from_thread
import attrs
import h11

from .._compat import TypedDict, Unpack
from ._app import (
    DEFAULT_MODELS,
    AppConfig,
    FakeApp,
    RecordedRequest,
    Reply,
    dumps,
    error_reply,
    request_id,
)
from ._azure import DEFAULT_DEPLOYMENTS, AzureApp, AzureConfig
from ._ratelimit import Limiter, RateLimitStats
from ._routes import DEFAULT_ROUTES
from ._state import StoredBatch, StoredFile, StoredUpload

__all__ = ["FAULT_HEADER", "FakeServer", "Fault", "run_in_thread"]

logger = logging.getLogger("anyoai.testing")

#: The request header that carries a one-request :class:`Fault` as a JSON object.
FAULT_HEADER: Final = "x-fake-fault"

_RECEIVE_SIZE: Final = 65536
# an answer body above this is sent on its own, straight from its bytes
_INLINE_BODY: Final = 1 << 20
#: The largest file ``POST /v1/files`` accepts unless told otherwise: 512 MiB.
DEFAULT_MAX_FILE_BYTES: Final = 512 * 1024 * 1024
# while an answer is delayed or streamed, read at most this much of what the client pipelines
_WATCH_LIMIT: Final = 1 << 20
_DISCONNECTS: Final = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
)
_DROP_MODES: Final = ("before_headers", "mid_body", "mid_stream")
_MALFORMED_EVENT: Final = b"data: {this is not JSON\n\n"
_SERVER_ERROR: Final = "The server had an error while processing your request. Sorry about that!"
# come_up: how long to retry binding the port while the OS still holds it
_REBIND_TIMEOUT: Final = 5.0
_REBIND_INTERVAL: Final = 0.02
_AZURE_DEPLOYMENT: Final = re.compile(r"/openai/deployments/[^/]+(?P<rest>/.*)")


def _freeze_headers(value: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"headers must be a mapping of str to str, not {type(value).__name__}")
    frozen: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise TypeError("headers must be a mapping of str to str")
        frozen[name] = text
    return MappingProxyType(frozen)


def _to_bytes(value: bytes | str | None) -> bytes | None:
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _check_limit(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be an integer >= 1 or None, not {value!r}")


def _model_of(request: RecordedRequest, reply: Reply) -> str:
    if reply.cost.model is not None:
        return reply.cost.model
    named = request.json.get("model") if isinstance(request.json, dict) else None
    return named if isinstance(named, str) else "default"


@attrs.frozen(kw_only=True)
class Fault:
    """Something to go wrong with a request: an error status, a delay, a broken connection...

    Give it to :meth:`FakeServer.add_fault`, or send it with one request as the JSON object of
    its fields in the ``x-fake-fault`` header (``{"status": 429, "retry_after": 1}``). Fields
    combine: *latency* first, then *drop* ``"before_headers"``, then the answer (the error of
    *status*/*body*, or the endpoint's own), then its wire-level breakage.

    :ivar status: answer with this status and an OpenAI-shaped error body instead of the
        endpoint's answer. The error's ``code`` defaults by status: 400
        ``invalid_request_error``, 401 ``invalid_api_key``, 404 ``not_found``, 429
        ``rate_limit_exceeded`` (type ``requests``), 500 ``server_error``, 503 ``overloaded``;
        other statuses ``null``.
    :ivar code: the error's ``code`` (replaces the default).
    :ivar message: the error's ``message`` (and the message of an *error_event*).
    :ivar body: a raw body to send instead of the generated one (``str`` is UTF-8 encoded);
        with it, *status* defaults to 200 and ``content-type`` to ``application/json``.
    :ivar headers: extra response headers; they replace generated ones of the same name
        (``content-length`` and ``transfer-encoding`` are ignored).
    :ivar retry_after: sent as ``Retry-After``: seconds, or a string such as an HTTP date.
    :ivar retry_after_ms: sent as ``retry-after-ms``.
    :ivar latency: seconds to wait before answering. The wait ends early, and the connection
        closes, if the client disconnects; server shutdown cancels it too.
    :ivar drop: ``"before_headers"``: read the request, close without answering.
        ``"mid_body"``: send the headers (with the full ``Content-Length``) and half the body,
        then close. ``"mid_stream"``: send *after_events* events of a stream, then close
        without the final chunk. On a non-streamed answer ``"mid_stream"`` acts as
        ``"mid_body"``, on a streamed one ``"mid_body"`` acts as ``"mid_stream"``.
    :ivar after_events: how many events of a stream go out before *drop*, *malformed* or
        *error_event* strikes; never more than the events before ``[DONE]``, so a faulted
        stream never sends ``[DONE]`` before the fault.
    :ivar malformed: non-streamed: status 200 (unless *status* is set) with the body cut in
        half, so it is not valid JSON. Streamed: after *after_events* events one ``data:`` line
        that is not JSON, then the rest of the stream as usual.
    :ivar error_event: streamed only: after *after_events* events, send ``data: {"error":
        {"message", "type": "server_error", "param": null, "code": "stream_error"}}`` and end
        the stream cleanly (no ``[DONE]``).
    :ivar times: for :meth:`FakeServer.add_fault` only: how many matching requests it
        applies to before it is used up.
    """

    status: int | None = None
    code: str | None = None
    message: str | None = None
    body: bytes | None = attrs.field(default=None, converter=_to_bytes)
    headers: Mapping[str, str] = attrs.field(
        factory=lambda: MappingProxyType({}), converter=_freeze_headers, hash=False
    )
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    latency: float = 0.0
    drop: Literal["before_headers", "mid_body", "mid_stream"] | None = None
    after_events: int = 2
    malformed: bool = False
    error_event: bool = False
    times: int = 1

    def __attrs_post_init__(self) -> None:
        if self.status is not None and (
            isinstance(self.status, bool)
            or not isinstance(self.status, int)
            or not 100 <= self.status <= 599
        ):
            raise ValueError(f"status must be an HTTP status (100-599), not {self.status!r}")
        for name in ("code", "message"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string or None")
        if self.retry_after is not None and not (
            isinstance(self.retry_after, str) or _is_number(self.retry_after)
        ):
            raise ValueError("retry_after must be a number of seconds >= 0 or a string")
        if self.retry_after_ms is not None and not _is_number(self.retry_after_ms):
            raise ValueError("retry_after_ms must be a number >= 0")
        if not _is_number(self.latency):
            raise ValueError("latency must be a number of seconds >= 0")
        if self.drop is not None and self.drop not in _DROP_MODES:
            raise ValueError(f"drop must be one of {', '.join(_DROP_MODES)} or None")
        for name, minimum in (("after_events", 0), ("times", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}")
        for name in ("malformed", "error_event"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a boolean")

    @property
    def replaces_answer(self) -> bool:
        """Whether the fault answers in place of the endpoint (*status* or *body* is set)."""
        return self.status is not None or self.body is not None


_FAULT_FIELDS: Final = frozenset(field.name for field in attrs.fields(Fault))

# status -> (error type, default code, default message)
_FAULT_ERRORS: Final[dict[int, tuple[str, str | None, str]]] = {
    400: ("invalid_request_error", "invalid_request_error", "Bad request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    404: ("invalid_request_error", "not_found", "The requested resource was not found."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later.",
    ),
    500: ("server_error", "server_error", _SERVER_ERROR),
    503: (
        "server_error",
        "overloaded",
        "The engine is currently overloaded, please try again later.",
    ),
}


def _fault_from_header(raw: str) -> Fault:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object of Fault fields")
    unknown = sorted(set(value) - _FAULT_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    return Fault(**value)


def _fault_reply(fault: Fault) -> Reply:
    if fault.body is not None:
        return Reply(
            status=fault.status if fault.status is not None else 200,
            headers=(("content-type", "application/json"),),
            body=fault.body,
        )
    status = fault.status if fault.status is not None else 500
    if status in _FAULT_ERRORS:
        kind, code, message = _FAULT_ERRORS[status]
    else:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        code = None
        message = f"{status} {_reason(status).decode('ascii')} (injected by the fake server)."
    return error_reply(
        status,
        fault.message if fault.message is not None else message,
        type=kind,
        code=fault.code if fault.code is not None else code,
    )


def _format_seconds(value: float | str) -> str:
    if isinstance(value, str):
        return value
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _record(event: h11.Request, body: bytes) -> RecordedRequest:
    target = _decode(event.target)
    if target.startswith("/"):
        path, _, query = target.partition("?")
    else:  # absolute-form ("http://host/v1/models") or "*"
        parts = urllib.parse.urlsplit(target)
        path, query = parts.path or target, parts.query
    headers: dict[str, str] = {}
    for raw_name, raw_value in event.headers:
        name = raw_name.decode("ascii", "replace").lower()
        value = _decode(raw_value)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    parsed: Any = None
    # a multipart body (a file upload, possibly large) is never JSON: do not decode it
    multipart = headers.get("content-type", "").lstrip().lower().startswith("multipart/")
    if body and not multipart and not body.isspace():
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
    return RecordedRequest(
        event.method.decode("ascii", "replace").upper(),
        path,
        dict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
        headers,
        body,
        parsed,
    )


def _encode(conn: h11.Connection, event: h11.Event) -> bytes:
    return conn.send(event) or b""


@attrs.define
class _PendingFault:
    fault: Fault
    path: str | None
    method: str | None
    remaining: int

    def matches(self, request: RecordedRequest) -> bool:
        if self.method is not None and self.method != request.method:
            return False
        if self.path is None:
            return True
        if request.path in (self.path, "/v1" + self.path, "/openai" + self.path):
            return True
        scoped = _AZURE_DEPLOYMENT.fullmatch(request.path)
        return scoped is not None and scoped.group("rest") == self.path


@attrs.define(eq=False)
class _Connection:
    scope: anyio.CancelScope
    closed: anyio.Event
    idle: bool = False


@attrs.define(eq=False)
class _Listening:
    """One period of listening: from entry (or :meth:`FakeServer.come_up`) to going down."""

    listener: anyio.abc.Listener[anyio.abc.SocketStream]
    sockets: list[anyio.abc.SocketListener]
    generation: int
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    stopped: anyio.Event = attrs.field(factory=anyio.Event)


class FakeServer:
    """A fake OpenAI API on a real HTTP/1.1 socket, for tests.

    ::

        async with FakeServer() as server:
            async with anyoai.open_pool(base_url=server.url, api_key="sk-test") as pool:
                ...
            assert server.requests[0].json["model"] == "gpt-4o-mini"

    Use it as an async context manager (enter and exit it in the same task): it binds on entry,
    serves in its own anyio task group (asyncio or trio), and on exit stops accepting, closes
    every connection and cancels every handler. :func:`run_in_thread` serves blocking tests.

    **Rate limits**, when *rpm* or *tpm* is set, work as OpenAI's: one pair of token buckets
    for the whole server (one organisation, ``org-fake``), each holding the limit, starting
    full and refilling continuously at ``limit / rate_limit_period`` per second. A request the
    endpoint would answer (not a 400/401/404 of the endpoint, not a fault that replaces the
    answer) takes 1 request and its token charge: its prompt tokens as ``usage`` counts them
    (words), plus for chat ``max_completion_tokens`` or ``max_tokens`` times ``n``, and for
    completions ``max_tokens`` times ``n`` times the number of prompts; embeddings and
    moderations cost their input words, ``GET /models`` nothing. If a bucket lacks it the
    answer is a 429 ``rate_limit_exceeded`` (type ``requests`` or ``tokens``) with
    ``retry-after`` (seconds, up to 3 decimals) and ``retry-after-ms``: the wait until both
    buckets hold enough; nothing is taken. A charge above the whole token limit gets the 429
    "Request too large", without retry headers. The reserved completion tokens the answer
    does not use are refunded when it goes out. Every response carries
    ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for the limits that are set.
    :meth:`rate_limit_stats` tells what was let through. Faults come first, as without limits:
    a fault's 429 is the fault's.

    While an answer is delayed (:attr:`Fault.latency`, *latency*) or streamed, the server
    watches the connection: when the client closes it (or only shuts down its sending side)
    the answer is abandoned and the connection closed. Disconnections are logged at debug
    level on the ``anyoai.testing`` logger, never as errors; an endpoint that raises is logged
    with its traceback and answered with a 500.

    **Azure OpenAI**: with *azure*, the server is an Azure OpenAI resource instead
    (:mod:`anyoai.testing._azure`): :attr:`url` is the resource endpoint
    ``http://127.0.0.1:PORT``, the endpoints are ``/openai/deployments/{deployment}/...``
    (chat completions, completions, embeddings) and ``/openai/models``, every request needs the
    ``api-version`` query parameter, the key goes in an ``api-key`` header, and answers carry
    Azure's content-filter results and its ``apim-request-id`` and ``x-ms-region`` headers.
    Rate limits, faults, latency and recording work as for OpenAI.

    **Files, uploads and batches** (:mod:`anyoai.testing._files`,
    :mod:`anyoai.testing._batches`) keep their objects for the server's lifetime: read them
    with :attr:`files`, :attr:`uploads` and :attr:`batches`. A batch moves one step along its
    lifecycle at every ``GET /v1/batches/{id}`` and runs its requests through the server's own
    endpoints; ``metadata={"fake_outcome": "expired"}`` (or ``"failed"``) scripts its end.

    **Outages**: :meth:`go_down` stops listening and drops every connection (new ones are
    refused) until :meth:`come_up` listens again on the same port, so a client's failover and
    recovery can be tested. Recorded requests, pending faults and the rate limits are kept.

    :param host: the address to listen on.
    :param port: the port; 0 picks a free one (read :attr:`port` or :attr:`url` after entry).
    :param api_key: when set, every request must carry ``Authorization: Bearer <api_key>``,
        else 401 ``invalid_api_key``. With *azure*: an ``api-key: <api_key>`` header (or the
        *ad_token*), else Azure's 401.
    :param models: the model ids ``GET /v1/models`` lists (:attr:`DEFAULT_MODELS` by default).
    :param embedding_dimensions: the vector length of embeddings without ``dimensions``.
    :param stream_chunk_delay: seconds to wait between the events of a stream.
    :param rpm: requests per *rate_limit_period*, or ``None``: no request limit.
    :param tpm: tokens per *rate_limit_period*, or ``None``: no token limit.
    :param rate_limit_period: the "minute" of *rpm* and *tpm*, in seconds; shorter to run tests
        and benchmarks time-scaled (1.0: limits per second).
    :param latency: seconds every answer waits after the rate-limit decision (after a fault's
        own latency), as a :attr:`Fault.latency` does: cancelled when the client leaves.
    :param azure: answer as an Azure OpenAI resource instead of the OpenAI API.
    :param api_version: with *azure*, the only ``api-version`` accepted (others get a 400);
        ``None``: any, but one is always required (else 404).
    :param deployments: with *azure*, deployment name -> model name
        (:attr:`DEFAULT_DEPLOYMENTS` by default). Answers name the deployment's model.
    :param ad_token: with *azure*, an Azure AD (Entra ID) token accepted as
        ``Authorization: Bearer <ad_token>``, instead of or besides *api_key*.
    :param max_file_bytes: the largest file ``POST /v1/files`` accepts (512 MiB by default);
        a larger one gets a 400 that names the limit.

    :ivar host: the address it listens on.
    :ivar port: the port it listens on (the requested one until entry).
    :ivar requests: every request received, in order of arrival. Appended from the server's
        thread under a lock: read it once the requests you care about have been answered.
    :ivar app: the endpoints; :meth:`FakeApp.add_route <anyoai.testing._app.FakeApp.add_route>`
        adds one.
    """

    #: The models listed when none are given.
    DEFAULT_MODELS: ClassVar[tuple[str, ...]] = DEFAULT_MODELS
    #: The deployments (name -> model) of an Azure server given none.
    DEFAULT_DEPLOYMENTS: ClassVar[Mapping[str, str]] = DEFAULT_DEPLOYMENTS

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        embedding_dimensions: int = 16,
        stream_chunk_delay: float = 0.0,
        rpm: int | None = None,
        tpm: int | None = None,
        rate_limit_period: float = 60.0,
        latency: float = 0.0,
        azure: bool = False,
        api_version: str | None = None,
        deployments: Mapping[str, str] | None = None,
        ad_token: str | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        if not azure and (api_version, deployments, ad_token) != (None, None, None):
            raise ValueError("api_version, deployments and ad_token need azure=True")
        if isinstance(models, str):
            raise TypeError("models must be a sequence of model ids, not a string")
        if isinstance(embedding_dimensions, bool) or embedding_dimensions < 1:
            raise ValueError("embedding_dimensions must be an integer >= 1")
        if not _is_number(stream_chunk_delay):
            raise ValueError("stream_chunk_delay must be a number of seconds >= 0")
        _check_limit("rpm", rpm)
        _check_limit("tpm", tpm)
        if not _is_number(rate_limit_period) or rate_limit_period <= 0:
            raise ValueError("rate_limit_period must be a number of seconds > 0")
        if not _is_number(latency):
            raise ValueError("latency must be a number of seconds >= 0")
        if isinstance(max_file_bytes, bool) or not isinstance(max_file_bytes, int):
            raise TypeError("max_file_bytes must be an integer")
        if max_file_bytes < 1:
            raise ValueError("max_file_bytes must be >= 1")
        self.host = host
        self.port = port
        self.stream_chunk_delay = float(stream_chunk_delay)
        self.latency = float(latency)
        self._limiter = Limiter(rpm=rpm, tpm=tpm, period=float(rate_limit_period))
        self.requests: list[RecordedRequest] = []
        self.azure = bool(azure)
        config = AppConfig(
            models=tuple(models),
            embedding_dimensions=embedding_dimensions,
            api_key=api_key,
            max_file_bytes=max_file_bytes,
        )
        self.app: FakeApp
        if self.azure:
            settings = AzureConfig(
                api_version=api_version,
                deployments=DEFAULT_DEPLOYMENTS if deployments is None else deployments,
                api_key=api_key,
                ad_token=ad_token,
            )
            self.app = AzureApp(config, settings)
        else:
            self.app = FakeApp(config, DEFAULT_ROUTES)
        self._requested_port = port
        self._lock = threading.Lock()
        self._faults: list[_PendingFault] = []
        self._open = 0
        self._connections: set[_Connection] = set()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._listening: _Listening | None = None
        self._generation = 0
        self._portal: anyio.from_thread.BlockingPortal | None = None

    def __repr__(self) -> str:
        state = "stopped" if self._task_group is None else "serving" if self.is_up else "down"
        kind = " azure" if self.azure else ""
        return f"<FakeServer{kind} {self.url} {state}>"

    @property
    def endpoint(self) -> str:
        """The server's root URL, ``http://127.0.0.1:PORT`` (an Azure resource endpoint)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL a client uses.

        ``http://127.0.0.1:PORT/v1``; for an Azure server the resource endpoint,
        ``http://127.0.0.1:PORT`` (the same as :attr:`endpoint`).
        """
        return self.endpoint if self.azure else self.endpoint + "/v1"

    @property
    def is_up(self) -> bool:
        """Whether the server is running and listening (entered, and not :meth:`go_down`)."""
        return self._task_group is not None and self._listening is not None

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        with self._lock:
            return self._open

    def add_fault(
        self, fault: Fault, *, path: str | None = None, method: str | None = None
    ) -> None:
        """Script *fault* for the next ``fault.times`` requests that match.

        Faults are consumed first in, first out: a request takes the oldest pending fault it
        matches. *path* matches the request path exactly, with or without the ``/v1`` prefix
        (``"/chat/completions"`` or ``"/v1/chat/completions"``), or for Azure with or without
        the ``/openai`` or ``/openai/deployments/{any deployment}`` prefix
        (``"/chat/completions"`` matches every deployment's chat completions, ``"/models"``
        ``/openai/models``); *method* matches case-insensitively; ``None`` matches anything. An
        ``x-fake-fault`` header takes precedence (and consumes nothing). Safe to call from any
        thread.
        """
        pending = _PendingFault(
            fault=fault,
            path=path,
            method=method.upper() if method is not None else None,
            remaining=fault.times,
        )
        with self._lock:
            self._faults.append(pending)

    @property
    def files(self) -> Mapping[str, StoredFile]:
        """The files the server holds, by id, oldest first: a read-only snapshot.

        Uploaded ones, those completed uploads made, and batch output and error files (purpose
        ``batch_output``); each with its ``data``, ``purpose`` and ``filename``. Safe to read
        from any thread.
        """
        return self.app.state.files

    @property
    def uploads(self) -> Mapping[str, StoredUpload]:
        """The uploads, by id, oldest first (with ``status``, ``parts``, ``file``): a snapshot."""
        return self.app.state.uploads

    @property
    def batches(self) -> Mapping[str, StoredBatch]:
        """The batches, by id, oldest first, as they are now: a read-only snapshot.

        Reading them does not move them on (only ``GET /v1/batches/{id}`` does).
        """
        return self.app.state.batches

    def clear(self) -> None:
        """Forget the recorded requests, the pending faults and the rate-limit statistics.

        Ids keep counting up, the rate-limit buckets keep their levels, and the files, uploads
        and batches stay.
        """
        with self._lock:
            self.requests.clear()
            self._faults.clear()
        self._limiter.clear_stats()

    def rate_limit_stats(self) -> RateLimitStats:
        """What the rate limiter let through and refused since the start (or :meth:`clear`).

        Counted even without limits. ``events`` holds ``(time, 1, net tokens)`` per accepted
        request, time on the server's clock (``anyio.current_time()`` in its event loop), so a
        test can check how much of a quota any window held
        (:meth:`~anyoai.testing.RateLimitStats.peak`). Safe to call from any thread.
        """
        return self._limiter.stats()

    async def close_idle_connections(self) -> int:
        """Close every keep-alive connection that sits idle between requests; return how many.

        It returns once those sockets are closed, so a client that reuses one next finds it
        closed (a stale pooled connection). Call it from the server's event loop.
        """
        idle = [connection for connection in self._connections if connection.idle]
        for connection in idle:
            connection.scope.cancel()
        for connection in idle:
            await connection.closed.wait()
        return len(idle)

    # ---------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FakeServer:
        if self._task_group is not None:
            raise RuntimeError("this FakeServer is already running")
        listener, sockets = await self._bind(self._requested_port)
        try:
            self.port = sockets[0].extra(anyio.abc.SocketAttribute.local_port)
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            raise
        self._task_group = task_group
        self._listen(listener, sockets)
        logger.debug("fake server listening on %s", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group, listening = self._task_group, self._listening
        self._task_group = self._listening = None
        if task_group is None:
            return
        task_group.cancel_scope.cancel()
        # hand the task group a cancellation, never another exception: that would come back
        # wrapped in an exception group instead of propagating as it is
        passed = exc if isinstance(exc, anyio.get_cancelled_exc_class()) else None
        try:
            await task_group.__aexit__(
                type(passed) if passed is not None else None,
                passed,
                passed.__traceback__ if passed is not None else None,
            )
        finally:
            if listening is not None:
                with anyio.CancelScope(shield=True):
                    await listening.listener.aclose()
            logger.debug("fake server on %s stopped", self.url)

    async def go_down(self) -> None:
        """Stop listening and close every connection, as a crashed server would.

        New connections are refused (``ECONNREFUSED``) until :meth:`come_up`; requests in
        flight are dropped (their clients see the connection close without an answer, or in
        the middle of one), idle keep-alive connections closed. :attr:`port`, the recorded
        requests, the pending faults and the rate limits are kept. It returns once the port is
        closed and every connection is. Does nothing if the server is already down.

        Await it in the server's event loop; from another thread (:func:`run_in_thread`) call
        :meth:`go_down_blocking`.
        """
        if self._task_group is None:
            raise RuntimeError("this FakeServer is not running")
        listening = self._listening
        if listening is None:
            return
        self._listening = None
        self._generation += 1  # connections accepted before this, not yet served, are dropped
        listening.scope.cancel()
        with anyio.CancelScope(shield=True):
            await listening.stopped.wait()
            await listening.listener.aclose()
            connections = list(self._connections)
            for connection in connections:
                connection.scope.cancel()
            for connection in connections:
                await connection.closed.wait()
        logger.debug("fake server on %s went down", self.url)

    async def come_up(self) -> None:
        """Listen again on the same :attr:`port` after :meth:`go_down`.

        Binding is retried for a few seconds while the OS still holds the port (``OSError``
        if it is still taken then, by another program for instance). Does nothing if the server
        is up. Await it in the server's event loop; from another thread (:func:`run_in_thread`)
        call :meth:`come_up_blocking`.
        """
        if self._task_group is None:
            raise RuntimeError("this FakeServer is not running")
        if self._listening is not None:
            return
        listener, sockets = await self._bind(self.port, retry=True)
        if not self._is_down():  # stopped, or came up in another task, meanwhile
            await listener.aclose()
            return
        self._listen(listener, sockets)
        logger.debug("fake server on %s came up", self.url)

    def go_down_blocking(self) -> None:
        """:meth:`go_down`, from the thread that entered :func:`run_in_thread` (or any other)."""
        self._blocking_portal().call(self.go_down)

    def come_up_blocking(self) -> None:
        """:meth:`come_up`, from the thread that entered :func:`run_in_thread` (or any other)."""
        self._blocking_portal().call(self.come_up)

    def _is_down(self) -> bool:
        return self._task_group is not None and self._listening is None

    def _blocking_portal(self) -> anyio.from_thread.BlockingPortal:
        portal = self._portal
        if portal is None:
            raise RuntimeError(
                "only a server started with run_in_thread() has blocking controls: "
                "await go_down() / come_up() in the server's event loop instead"
            )
        return portal

    async def _bind(
        self, port: int, *, retry: bool = False
    ) -> tuple[anyio.abc.Listener[anyio.abc.SocketStream], list[anyio.abc.SocketListener]]:
        deadline = anyio.current_time() + _REBIND_TIMEOUT
        while True:
            try:
                listener = await anyio.create_tcp_listener(local_host=self.host, local_port=port)
                break
            except OSError as exc:
                if not retry or exc.errno != errno.EADDRINUSE or anyio.current_time() > deadline:
                    raise
                logger.debug("fake server: port %d still taken, retrying", port)
                await anyio.sleep(_REBIND_INTERVAL)
        sockets = [
            inner for inner in listener.listeners if isinstance(inner, anyio.abc.SocketListener)
        ]
        if not sockets:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
            raise RuntimeError(f"could not listen on {self.host}")
        return listener, sockets

    def _listen(
        self,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        sockets: list[anyio.abc.SocketListener],
    ) -> None:
        assert self._task_group is not None
        listening = _Listening(listener=listener, sockets=sockets, generation=self._generation)
        self._listening = listening
        self._task_group.start_soon(self._accept_all, listening, self._task_group)

    async def _accept_all(self, listening: _Listening, task_group: anyio.abc.TaskGroup) -> None:
        try:
            with listening.scope:
                async with anyio.create_task_group() as accepting:
                    for socket_listener in listening.sockets:
                        accepting.start_soon(
                            self._accept_loop, socket_listener, task_group, listening.generation
                        )
        finally:
            listening.stopped.set()

    async def _accept_loop(
        self,
        listener: anyio.abc.SocketListener,
        task_group: anyio.abc.TaskGroup,
        generation: int,
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError as exc:  # e.g. too many open files: wait for some to close
                logger.debug("fake server: accept failed: %r", exc)
                await anyio.sleep(0.01)
                continue
            task_group.start_soon(self._connection, stream, generation)

    # --------------------------------------------------------------------------- connections

    async def _connection(self, stream: anyio.abc.SocketStream, generation: int) -> None:
        if generation != self._generation:  # accepted just before the server went down
            await anyio.aclose_forcefully(stream)
            return
        connection = _Connection(scope=anyio.CancelScope(), closed=anyio.Event())
        self._connections.add(connection)
        with self._lock:
            self._open += 1
        try:
            with connection.scope:
                await self._serve(stream, connection)
        except (*_DISCONNECTS, h11.ProtocolError) as exc:
            logger.debug("fake server: connection ended: %r", exc)
        except Exception:
            logger.exception("fake server: unexpected error while serving a connection")
        finally:
            try:
                await anyio.aclose_forcefully(stream)
            finally:
                with self._lock:
                    self._open -= 1
                self._connections.discard(connection)
                connection.closed.set()

    async def _serve(self, stream: anyio.abc.SocketStream, connection: _Connection) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            received = await self._receive_request(stream, conn, connection)
            if received is None:
                return
            if not await self._exchange(stream, conn, *received):
                return
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # Connection: close, HTTP/1.0, or an unfinished exchange
            conn.start_next_cycle()

    async def _receive_request(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, connection: _Connection
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._reject(stream, conn, exc)
                return None
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    continue_event = h11.InformationalResponse(status_code=100, headers=[])
                    await stream.send(_encode(conn, continue_event))
                # idle: between requests, with nothing of the next one received yet
                connection.idle = request is None and not conn.trailing_data[0]
                try:
                    data = await stream.receive(_RECEIVE_SIZE)
                except anyio.EndOfStream:
                    data = b""
                finally:
                    connection.idle = False
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return request, bytes(body)
            else:  # ConnectionClosed: the client is done with this connection
                return None

    async def _reject(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, exc: h11.RemoteProtocolError
    ) -> None:
        logger.debug("fake server: unreadable request: %s", exc)
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with self._lock:
            seq = self.app.state.next_seq()
        status = exc.error_status_hint
        reply = error_reply(status, f"Could not read the HTTP request: {exc}")
        headers = self._headers(reply, seq, 0, None)
        headers.append(("connection", "close"))
        headers.append(("content-length", str(len(reply.body))))
        try:
            response = h11.Response(status_code=status, headers=headers, reason=_reason(status))
            data = _encode(conn, response) + _encode(conn, h11.Data(data=reply.body))
            await stream.send(data + _encode(conn, h11.EndOfMessage()))
        except (*_DISCONNECTS, h11.ProtocolError) as error:
            logger.debug("fake server: could not send the 400: %r", error)

    # ----------------------------------------------------------------------------- exchanges

    async def _exchange(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, event: h11.Request, body: bytes
    ) -> bool:
        """Answer one request; return whether the connection may serve another."""
        started = anyio.current_time()
        request = _record(event, body)
        with self._lock:
            seq = self.app.state.next_seq()
            self.requests.append(request)
        fault, reply = self._fault_for(request)
        if (
            fault is not None
            and fault.latency > 0
            and not await self._sleep(stream, conn, fault.latency)
        ):
            logger.debug("fake server: client left during the latency of request %d", seq)
            return False
        if fault is not None and fault.drop == "before_headers":
            logger.debug("fake server: dropping request %d before the headers", seq)
            return False
        refund = 0
        if reply is None:
            if fault is not None and fault.replaces_answer:
                reply = _fault_reply(fault)
            else:
                reply = self._answer(request, seq)
                if reply.status < 400:  # a real answer: the rate limiter decides
                    admission = self._limiter.admit(
                        reply.cost, _model_of(request, reply), anyio.current_time()
                    )
                    reply = admission.rejection or reply
                    refund = admission.refund
        try:
            if self.latency > 0 and not await self._sleep(stream, conn, self.latency):
                logger.debug("fake server: client left during the latency of request %d", seq)
                return False
        finally:
            # the answer is known (or abandoned): give back the reserved tokens it did not use
            self._limiter.release(refund, anyio.current_time())
        if fault is not None and fault.malformed and not reply.streaming:
            cut = reply.body[: max(1, len(reply.body) // 2)] if reply.body else b'{"'
            status = fault.status if fault.status is not None else 200
            reply = attrs.evolve(reply, status=status, body=cut)
        elapsed_ms = int((anyio.current_time() - started) * 1000)
        headers = self._headers(reply, seq, elapsed_ms, fault)
        if reply.streaming:
            streamed = reply

            async def send_stream() -> bool:
                return await self._send_stream(stream, conn, streamed, headers, fault)

            return await self._watching(stream, conn, send_stream)
        return await self._send_body(stream, conn, reply, headers, fault, request.method)

    async def _sleep(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, delay: float
    ) -> bool:
        """Wait *delay* seconds unless the client leaves; return whether it stayed."""

        async def wait() -> bool:
            await anyio.sleep(delay)
            return True

        return await self._watching(stream, conn, wait)

    def _fault_for(self, request: RecordedRequest) -> tuple[Fault | None, Reply | None]:
        raw = request.headers.get(FAULT_HEADER)
        if raw is not None:
            try:
                return _fault_from_header(raw), None
            except (TypeError, ValueError) as exc:
                message = f"Invalid {FAULT_HEADER} header: {exc}"
                return None, error_reply(400, message, param=FAULT_HEADER)
        with self._lock:
            for index, pending in enumerate(self._faults):
                if pending.matches(request):
                    pending.remaining -= 1
                    if pending.remaining <= 0:
                        del self._faults[index]
                    return pending.fault, None
        return None, None

    def _answer(self, request: RecordedRequest, seq: int) -> Reply:
        try:
            return self.app.handle(request, seq)
        except Exception:
            logger.exception(
                "fake server: the endpoint failed on %s %s", request.method, request.path
            )
            return error_reply(500, _SERVER_ERROR, type="server_error", code="server_error")

    def _headers(
        self, reply: Reply, seq: int, elapsed_ms: int, fault: Fault | None
    ) -> list[tuple[str, str]]:
        merged: dict[str, tuple[str, str]] = {}
        for name, value in reply.headers:
            merged[name.lower()] = (name, value)
        merged["x-request-id"] = ("x-request-id", request_id(seq))
        merged["openai-version"] = ("openai-version", "2020-10-01")
        merged["openai-processing-ms"] = ("openai-processing-ms", str(elapsed_ms))
        for name, value in self.app.response_headers(seq):
            merged[name.lower()] = (name, value)
        for name, value in self._limiter.headers(anyio.current_time()):
            merged[name] = (name, value)
        if fault is not None:
            if fault.retry_after is not None:
                merged["retry-after"] = ("retry-after", _format_seconds(fault.retry_after))
            if fault.retry_after_ms is not None:
                value = _format_seconds(fault.retry_after_ms)
                merged["retry-after-ms"] = ("retry-after-ms", value)
            for name, value in fault.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding"):
                    merged[name.lower()] = (name, value)
        return list(merged.values())

    async def _watching(
        self,
        stream: anyio.abc.SocketStream,
        conn: h11.Connection,
        action: Callable[[], Awaitable[bool]],
    ) -> bool:
        """Run *action* while watching for the client to leave; cancel it if it does."""
        lost = False
        result = False

        async def watch(scope: anyio.CancelScope) -> None:
            nonlocal lost
            received = 0
            try:
                while received < _WATCH_LIMIT:
                    data = await stream.receive(_RECEIVE_SIZE)
                    conn.receive_data(data)  # a pipelined request: keep it for later
                    received += len(data)
            except _DISCONNECTS:
                lost = True
                scope.cancel()

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(watch, task_group.cancel_scope)
            try:
                result = await action()
            except (*_DISCONNECTS, h11.ProtocolError) as exc:
                logger.debug("fake server: connection lost while answering: %r", exc)
                result = False
            task_group.cancel_scope.cancel()
        return result and not lost

    async def _send_body(
        self,
        stream: anyio.abc.SocketStream,
        conn: h11.Connection,
        reply: Reply,
        headers: list[tuple[str, str]],
        fault: Fault | None,
        method: str,
    ) -> bool:
        body = reply.body
        headers.append(("content-length", str(len(body))))
        response = h11.Response(
            status_code=reply.status, headers=_wire(headers), reason=_reason(reply.status)
        )
        if fault is not None and fault.drop in ("mid_body", "mid_stream"):
            data = _encode(conn, response) + _encode(conn, h11.Data(data=body[: len(body) // 2]))
            await stream.send(data)
            logger.debug("fake server: dropped the connection in the middle of a body")
            return False
        data = _encode(conn, response)
        if body and method != "HEAD":
            if len(body) <= _INLINE_BODY:
                data += _encode(conn, h11.Data(data=body))
            else:  # a large body (a file's content): no joined or concatenated copy of it
                await stream.send(data)
                data = b""
                for piece in conn.send_with_data_passthrough(h11.Data(data=body)) or ():
                    await stream.send(piece)
        await stream.send(data + _encode(conn, h11.EndOfMessage()))
        return True

    async def _send_stream(
        self,
        stream: anyio.abc.SocketStream,
        conn: h11.Connection,
        reply: Reply,
        headers: list[tuple[str, str]],
        fault: Fault | None,
    ) -> bool:
        events = reply.events or ()
        response = h11.Response(
            status_code=reply.status, headers=_wire(headers), reason=_reason(reply.status)
        )
        await stream.send(_encode(conn, response))
        strike = min(fault.after_events, len(events) - 1) if fault is not None else -1
        for index, payload in enumerate(events):
            if index == strike and fault is not None:
                if fault.drop is not None:
                    logger.debug("fake server: dropped the connection in the middle of a stream")
                    return False
                if fault.error_event:
                    error = {
                        "error": {
                            "message": fault.message or _SERVER_ERROR,
                            "type": "server_error",
                            "param": None,
                            "code": fault.code or "stream_error",
                        }
                    }
                    await self._send_event(stream, conn, dumps(error).encode("utf-8"))
                    await stream.send(_encode(conn, h11.EndOfMessage()))
                    return True
                if fault.malformed:
                    await stream.send(_encode(conn, h11.Data(data=_MALFORMED_EVENT)))
            if index and self.stream_chunk_delay > 0:
                await anyio.sleep(self.stream_chunk_delay)
            await self._send_event(stream, conn, payload.encode("utf-8"))
        await stream.send(_encode(conn, h11.EndOfMessage()))
        return True

    @staticmethod
    async def _send_event(
        stream: anyio.abc.SocketStream, conn: h11.Connection, data: bytes
    ) -> None:
        await stream.send(_encode(conn, h11.Data(data=b"data: " + data + b"\n\n")))


def _wire(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers]


class _ServerOptions(TypedDict, total=False):
    host: str
    port: int
    api_key: str | None
    models: Sequence[str]
    embedding_dimensions: int
    stream_chunk_delay: float
    rpm: int | None
    tpm: int | None
    rate_limit_period: float
    latency: float
    azure: bool
    api_version: str | None
    deployments: Mapping[str, str] | None
    ad_token: str | None
    max_file_bytes: int


def run_in_thread(
    **kwargs: Unpack[_ServerOptions],
) -> contextlib.AbstractContextManager[FakeServer]:
    """Run a :class:`FakeServer` in a background thread, for blocking tests.

    ::

        with run_in_thread(api_key="sk-test") as server:
            urllib.request.urlopen(server.url + "/models")

    The keyword arguments are :class:`FakeServer`'s. The thread runs its own event loop (anyio,
    asyncio backend); entering waits until the server listens, leaving stops it and joins the
    thread. :meth:`FakeServer.add_fault`, :meth:`FakeServer.clear`,
    :meth:`FakeServer.rate_limit_stats`, :attr:`FakeServer.requests`, :attr:`FakeServer.files`,
    :attr:`FakeServer.uploads` and :attr:`FakeServer.batches` are safe to use from the calling
    thread; so are :meth:`FakeServer.go_down_blocking` and
    :meth:`FakeServer.come_up_blocking`, which run :meth:`FakeServer.go_down` and
    :meth:`FakeServer.come_up` in the server's thread and wait for them.
    """
    return _serve_in_thread(FakeServer(**kwargs))


@contextlib.contextmanager
def _serve_in_thread(server: FakeServer) -> Iterator[FakeServer]:
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(server) as running,
    ):
        running._portal = portal
        try:
            yield running
        finally:
            running._portal = None
