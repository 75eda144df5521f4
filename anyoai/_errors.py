"""The exception tree, and the one mapping from an HTTP status and body to an exception.

::

    AnyoaiError
    ├── ConfigurationError          bad or missing settings, found before any request
    ├── InvalidParameterError       bad arguments to an API method, found before any request
    ├── PoolClosedError             a closed pool was used
    ├── AsyncContextError           a blocking helper was called inside a running event loop
    └── APIError                    something went wrong talking to the API
        ├── APIStatusError          the server answered with a 4xx or 5xx status
        │   ├── BadRequestError (400) ── ContentFilterError
        │   ├── AuthenticationError (401)
        │   ├── PermissionDeniedError (403)
        │   ├── NotFoundError (404)
        │   ├── ConflictError (409)
        │   ├── UnprocessableEntityError (422)
        │   ├── RateLimitError (429)
        │   └── InternalServerError (>= 500)
        ├── APIConnectionError      no usable answer: refused, reset, dropped mid-stream
        │   └── APITimeoutError
        ├── ResponseValidationError the answer did not have the expected shape
        └── StreamError             the server sent an ``error`` event inside a stream

The translation of transport exceptions (httpcore's) lives at the transport boundary, in
``_transport.map_transport_errors``; this module knows nothing about HTTP libraries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ._secrets import redact

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AnyoaiError",
    "AsyncContextError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "InternalServerError",
    "InvalidParameterError",
    "NotFoundError",
    "PermissionDeniedError",
    "PoolClosedError",
    "RateLimitError",
    "ResponseValidationError",
    "StreamError",
    "UnprocessableEntityError",
    "error_from_status",
]


class AnyoaiError(Exception):
    """Base class of every exception anyoai raises on purpose."""


class ConfigurationError(AnyoaiError, ValueError):
    """A setting is missing or malformed. Raised before any request is sent.

    :ivar setting: the argument or environment variable at fault, e.g. ``"OPENAI_API_KEY"``.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class InvalidParameterError(AnyoaiError, TypeError):
    """An API method got an argument it cannot send. Raised before any request is sent.

    It subclasses :class:`TypeError`, as Python does for a bad keyword argument.

    :ivar param: the name of the parameter at fault, e.g. ``"messages"`` or ``"messages[2].role"``.
    """

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


class PoolClosedError(AnyoaiError, RuntimeError):
    """A pool (or a stream of it) was used after its ``async with`` block ended."""


class AsyncContextError(AnyoaiError, RuntimeError):
    """A blocking helper (``run_sync``, ``open_pool_sync``) was called in a running event loop."""


class APIError(AnyoaiError):
    """An error that came from talking to the API.

    :ivar message: a human-readable description, never containing a secret.
    :ivar body: the decoded error body (usually a dict), or the raw text, or ``None``.
    :ivar code: the ``error.code`` of the body, e.g. ``"invalid_api_key"``.
    :ivar type: the ``error.type`` of the body, e.g. ``"invalid_request_error"``.
    :ivar param: the ``error.param`` of the body.
    :ivar request_id: the server's request id, from ``x-request-id`` or ``apim-request-id``.
    :ivar backend: the name of the backend that answered.
    """

    def __init__(
        self,
        message: str,
        *,
        body: object = None,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.body = body
        self.code = code
        self.type = type
        self.param = param
        self.request_id = request_id
        self.backend = backend


class APIStatusError(APIError):
    """The server answered with an error status.

    :ivar status_code: the HTTP status.
    :ivar headers: the response headers (lower-case names).
    :ivar retry_after: the wait the server asked for (``retry-after-ms`` or ``Retry-After``), in
        seconds, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        headers: Mapping[str, str] | None = None,
        body: object = None,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        backend: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            body=body,
            code=code,
            type=type,
            param=param,
            request_id=request_id,
            backend=backend,
        )
        self.status_code = status_code
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """400: the request was malformed or not allowed."""


class ContentFilterError(BadRequestError):
    """The content filter (Azure OpenAI's, usually) refused the prompt or cut the answer.

    Raised for a 400 with code ``content_filter`` (the prompt was refused), and for an answer
    that ended with ``finish_reason="content_filter"`` (then ``status_code`` is the answer's,
    200, and :attr:`result` holds the partial result, filter verdicts included).

    :ivar result: the partial result, when the answer was cut; else ``None``.
    """

    result: Any = None


class AuthenticationError(APIStatusError):
    """401: the API key or token is missing, wrong or expired."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not do this."""


class NotFoundError(APIStatusError):
    """404: no such model, deployment, file or path."""


class ConflictError(APIStatusError):
    """409: the resource is in a state that conflicts with the request."""


class UnprocessableEntityError(APIStatusError):
    """422: the body was well-formed but invalid."""


class RateLimitError(APIStatusError):
    """429: a rate limit or the quota was exceeded. ``retry_after`` says how long to wait."""


class InternalServerError(APIStatusError):
    """5xx: the server failed."""


class APIConnectionError(APIError):
    """No usable answer arrived: the connection was refused, reset, or dropped mid-stream.

    :ivar request_sent: ``False`` when the request certainly never reached the server (the
        connection could not be opened, or no connection became free).
    """

    request_sent: bool = True


class APITimeoutError(APIConnectionError):
    """A timeout expired: connect, read, write, waiting for a connection, or the total."""


class ResponseValidationError(APIError):
    """The server's answer did not have the shape anyoai expects.

    :ivar path: where in the body it went wrong, as a JSON path such as ``$.choices[0].index``.
    """

    def __init__(self, message: str, *, path: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.path = path


class StreamError(APIError):
    """The server sent an ``error`` event in the middle of a stream."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int, code: str | None = None) -> type[APIStatusError]:
    """Return the exception class for an HTTP error *status* (and error *code*)."""
    if status == 400 and code == "content_filter":
        return ContentFilterError
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIStatusError)


def parse_error_body(body: bytes) -> tuple[object, dict[str, Any]]:
    """Decode an error body; return ``(decoded, fields)`` where fields is the ``error`` object.

    OpenAI and Azure wrap the error as ``{"error": {"message", "type", "param", "code"}}``;
    some compatible servers put the fields at the top level, or answer plain text.
    """
    text = body.decode("utf-8", "replace")
    try:
        decoded: object = json.loads(text) if text.strip() else None
    except ValueError:
        return (text or None), {}
    if isinstance(decoded, dict):
        inner = decoded.get("error")
        if isinstance(inner, dict):
            return decoded, inner
        if isinstance(inner, str):
            return decoded, {"message": inner, **{k: decoded.get(k) for k in ("type", "code")}}
        if "message" not in decoded and ("title" in decoded or "detail" in decoded):
            return decoded, _problem_fields(decoded)
        return decoded, decoded
    return decoded, {}


def _problem_fields(problem: dict[str, Any]) -> dict[str, Any]:
    """The fields of an RFC 7807 problem body (what validating proxies such as Prism send),
    its validation findings spelled out in the message."""
    parts = [str(problem[k]) for k in ("title", "detail") if problem.get(k)]
    findings = problem.get("validation")
    if isinstance(findings, list):
        for finding in findings:
            if isinstance(finding, dict):
                where = ".".join(str(p) for p in finding.get("location") or ())
                parts.append(f"{where}: {finding.get('message')}")
    first = findings[0] if isinstance(findings, list) and findings else {}
    location = first.get("location") if isinstance(first, dict) else None
    return {
        "message": "; ".join(parts),
        "type": problem.get("type"),
        "param": ".".join(str(p) for p in location[1:]) if isinstance(location, list) else None,
    }


def _as_str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def error_from_status(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    backend: str | None = None,
    secrets: Iterable[str] = (),
    retry_after: float | None = None,
) -> APIStatusError:
    """Build the typed exception for an error response.

    :param status: the HTTP status (>= 400).
    :param body: the raw response body.
    :param headers: the response headers, lower-case names.
    :param backend: the name of the backend that answered, for the message.
    :param secrets: values that must not appear in the message (the backend's key).
    :param retry_after: the wait the response asked for, in seconds.
    """
    secrets = tuple(secrets)
    decoded, fields = parse_error_body(body)
    if secrets:
        decoded = _redact_body(decoded, secrets)
        fields = _redact_body(fields, secrets)  # type: ignore[assignment]
    message = _as_str(fields.get("message"))
    code = _as_str(fields.get("code"))
    if not message:
        snippet = decoded if isinstance(decoded, str) else None
        message = (snippet or "no error message in the body")[:500]
    request_id = headers.get("x-request-id") or headers.get("apim-request-id")
    where = f" from backend {backend!r}" if backend else ""
    text = f"Error code: {status}{where} - {message}"
    if code:
        text += f" (code={code})"
    if request_id:
        text += f" [request_id={request_id}]"
    exc = status_error_class(status, code)(
        redact(text, secrets),
        status_code=status,
        headers=headers,
        body=decoded,
        code=code,
        type=_as_str(fields.get("type")),
        param=_as_str(fields.get("param")),
        request_id=request_id,
        backend=backend,
        retry_after=retry_after,
    )
    return exc


def check_content_filter(result: Any) -> None:
    """Raise :class:`ContentFilterError` if a choice of *result* (a chat completion or a
    completion) ended with ``finish_reason="content_filter"``; the error carries *result*."""
    cut = [c.index for c in getattr(result, "choices", ()) if c.finish_reason == "content_filter"]
    if not cut:
        return
    meta = getattr(result, "meta", None)
    error = ContentFilterError(
        f"the content filter cut the answer (choice(s) {cut} ended with "
        "finish_reason='content_filter'); the partial result is on exc.result",
        status_code=meta.status_code if meta is not None else 200,
        headers=meta.headers if meta is not None else None,
        body=meta.raw if meta is not None else None,
        code="content_filter",
        request_id=meta.request_id if meta is not None else None,
        backend=meta.backend if meta is not None else None,
    )
    error.result = result
    raise error


def _redact_body(value: object, secrets: tuple[str, ...]) -> object:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_body(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_body(v, secrets) for v in value]
    return value
