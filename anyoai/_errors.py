"""From an HTTP status and body to the typed exception: the one mapping.

:func:`error_from_status` builds the exception of an error response (its class from the status
and the error code, its fields from the body, any secret the server echoed back redacted);
:func:`check_content_filter` raises for an answer the content filter cut. The exception classes
themselves, and their tree, are in :mod:`anyoai._exceptions`.

The translation of transport exceptions (httpcore's) lives at the transport boundary, in
``_transport.map_transport_errors``; this module knows nothing about HTTP libraries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ._exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ContentFilterError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from ._secrets import redact

__all__ = [
    "check_content_filter",
    "error_from_status",
    "parse_error_body",
    "status_error_class",
]


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
