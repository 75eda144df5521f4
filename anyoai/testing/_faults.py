"""Fault injection for the fake server: what should go wrong with a request, and how.

:class:`Fault` describes it (an error status, a delay, a connection dropped before the headers
or in the middle of a body or stream, a malformed body, an error event); :class:`FaultQueue`
holds the faults scripted with :meth:`FakeServer.add_fault <anyoai.testing.FakeServer.add_fault>`
and hands each request the one it matches, or the one its ``x-fake-fault`` header carries.
:func:`fault_reply` and :func:`fault_headers` are the answer and the headers a fault makes; the
HTTP layer (:mod:`anyoai.testing._http`) applies the rest (delays, broken connections) on the
wire.
"""

from __future__ import annotations

import http
import json
import math
import re
import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Final, Literal

import attrs

from ._framework import EndpointError, RecordedRequest, Reply

__all__ = [
    "FAULT_HEADER",
    "MALFORMED_EVENT",
    "SERVER_ERROR",
    "Fault",
    "FaultQueue",
    "fault_headers",
    "fault_reply",
    "is_number",
    "reason_phrase",
]

#: The request header that carries a one-request :class:`Fault` as a JSON object.
FAULT_HEADER: Final = "x-fake-fault"
#: The ``data:`` line a *malformed* fault puts in a stream.
MALFORMED_EVENT: Final = b"data: {this is not JSON\n\n"
#: The message of the server's own 500s (and of a fault's, unless it says otherwise).
SERVER_ERROR: Final = "The server had an error while processing your request. Sorry about that!"
_DROP_MODES: Final = ("before_headers", "mid_body", "mid_stream")
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


def is_number(value: object) -> bool:
    """Whether *value* is a finite number >= 0 (not a boolean)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


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
            isinstance(self.retry_after, str) or is_number(self.retry_after)
        ):
            raise ValueError("retry_after must be a number of seconds >= 0 or a string")
        if self.retry_after_ms is not None and not is_number(self.retry_after_ms):
            raise ValueError("retry_after_ms must be a number >= 0")
        if not is_number(self.latency):
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
    500: ("server_error", "server_error", SERVER_ERROR),
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


def fault_reply(fault: Fault) -> Reply:
    """The answer of a fault that replaces the endpoint's (:attr:`Fault.replaces_answer`)."""
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
        message = f"{status} {reason_phrase(status).decode('ascii')} (injected by the fake server)."
    return EndpointError(
        status,
        fault.message if fault.message is not None else message,
        type=kind,
        code=fault.code if fault.code is not None else code,
    ).reply()


def _format_seconds(value: float | str) -> str:
    if isinstance(value, str):
        return value
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def fault_headers(fault: Fault) -> Iterator[tuple[str, str]]:
    """The headers *fault* adds to its answer: ``Retry-After``, ``retry-after-ms`` and its own
    (``content-length`` and ``transfer-encoding`` left out). They replace generated ones of the
    same name."""
    if fault.retry_after is not None:
        yield "retry-after", _format_seconds(fault.retry_after)
    if fault.retry_after_ms is not None:
        yield "retry-after-ms", _format_seconds(fault.retry_after_ms)
    for name, value in fault.headers.items():
        if name.lower() not in ("content-length", "transfer-encoding"):
            yield name, value


def reason_phrase(status: int) -> bytes:
    """The reason phrase of *status* (``b"Not Found"``), empty for an unknown status."""
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


@attrs.define
class _Pending:
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


class FaultQueue:
    """The faults scripted with :meth:`FakeServer.add_fault
    <anyoai.testing.FakeServer.add_fault>`, taken first in, first out. Safe to use from any
    thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []

    def add(self, fault: Fault, *, path: str | None = None, method: str | None = None) -> None:
        """Script *fault* for the next ``fault.times`` requests that match *path* and *method*."""
        pending = _Pending(
            fault=fault,
            path=path,
            method=method.upper() if method is not None else None,
            remaining=fault.times,
        )
        with self._lock:
            self._pending.append(pending)

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._pending.clear()

    def take(self, request: RecordedRequest) -> tuple[Fault | None, Reply | None]:
        """The fault for *request*: the one of its ``x-fake-fault`` header (which consumes
        nothing), else the oldest pending one it matches (used once more), else none. The reply
        is a 400 for a header that is not a valid fault."""
        raw = request.headers.get(FAULT_HEADER)
        if raw is not None:
            try:
                return _fault_from_header(raw), None
            except (TypeError, ValueError) as exc:
                message = f"Invalid {FAULT_HEADER} header: {exc}"
                return None, EndpointError(400, message, param=FAULT_HEADER).reply()
        with self._lock:
            for index, pending in enumerate(self._pending):
                if pending.matches(request):
                    pending.remaining -= 1
                    if pending.remaining <= 0:
                        del self._pending[index]
                    return pending.fault, None
        return None, None
