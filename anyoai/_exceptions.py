"""Every exception anyoai raises on purpose, in one tree.

::

    AnyoaiError
    ├── ConfigurationError (ValueError)      bad or missing settings, found before any request
    ├── InvalidParameterError (TypeError)    bad arguments to an API method, found before any
    │   │                                    request
    │   └── BodyLengthError                  a streamed file gave more or fewer bytes than its
    │                                        declared size
    ├── SchemaError (TypeError)              a type has no JSON Schema (tools, structured outputs)
    ├── ToolCallError (ValueError)           a tool call's arguments cannot be parsed
    ├── PoolClosedError (RuntimeError)       a closed pool was used
    ├── AsyncContextError (RuntimeError)     a blocking helper was called inside a running
    │                                        event loop
    ├── BatchFailedError                     a batch ended failed, expired or cancelled
    ├── StorageError                         object storage failed
    │   ├── StorageURLError (ValueError)             a URL that names no storage
    │   ├── StorageNotFoundError (FileNotFoundError) no object, bucket or container there
    │   └── StoragePermissionError (PermissionError) credentials refused or missing
    └── APIError                             something went wrong talking to the API
        ├── APIStatusError                   the server answered with a 4xx or 5xx status
        │   ├── BadRequestError (400)
        │   │   └── ContentFilterError       the content filter refused the prompt or cut
        │   │                                the answer
        │   ├── AuthenticationError (401)
        │   ├── PermissionDeniedError (403)
        │   ├── NotFoundError (404)
        │   ├── ConflictError (409)
        │   ├── UnprocessableEntityError (422)
        │   ├── RateLimitError (429)
        │   └── InternalServerError (>= 500)
        ├── APIConnectionError               no usable answer: refused, reset, dropped
        │   │                                mid-stream
        │   ├── APITimeoutError
        │   └── AllBackendsDownError         every backend serving the model is cooling down
        ├── ResponseValidationError          the answer did not have the expected shape
        │   └── StructuredOutputError        a structured output is not JSON or does not fit
        ├── LengthFinishReasonError          a structured output was cut by the token limit
        └── StreamError                      the server sent an ``error`` event inside a stream

This module is a leaf: it imports nothing from anyoai at run time, so any layer may raise
these. The functions that *build* an exception from something else live where that something
is understood: an HTTP status and body in :mod:`anyoai._errors`, httpcore's exceptions in
``_transport.map_transport_errors``, obstore's in the storage package.

Two private control-flow signals are not part of the tree and stay beside their one user:
storage's ``UploadAbortError`` (makes obstore abort a multipart upload) and the transport's
``_body.BodyError`` (carries a failing request body's own exception through httpcore).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# ``anyoai`` re-exports this list as is. BodyLengthError stays out of it: it is caught as the
# InvalidParameterError it is, and only _multipart names it.
__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AllBackendsDownError",
    "AnyoaiError",
    "AsyncContextError",
    "AuthenticationError",
    "BadRequestError",
    "BatchFailedError",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "InternalServerError",
    "InvalidParameterError",
    "LengthFinishReasonError",
    "NotFoundError",
    "PermissionDeniedError",
    "PoolClosedError",
    "RateLimitError",
    "ResponseValidationError",
    "SchemaError",
    "StorageError",
    "StorageNotFoundError",
    "StoragePermissionError",
    "StorageURLError",
    "StreamError",
    "StructuredOutputError",
    "ToolCallError",
    "UnprocessableEntityError",
]


class AnyoaiError(Exception):
    """Base class of every exception anyoai raises on purpose."""


# --------------------------------------------------------------------------------------------
# before any request: settings, arguments, schemas, lifetimes


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


class BodyLengthError(InvalidParameterError):
    """A streamed file gave more or fewer bytes than its declared size (``param="size"``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="size")


class SchemaError(AnyoaiError, TypeError):
    """A type cannot be described in JSON Schema (in strict mode, when asked for).

    :ivar where: the path to the offending type, e.g. ``"Weather.readings[]"``.
    """

    def __init__(self, message: str, *, where: str) -> None:
        super().__init__(message)
        self.where = where


class ToolCallError(AnyoaiError, ValueError):
    """A tool call cannot be parsed: unknown tool, arguments not JSON, or not fitting.

    :ivar name: the tool the call named.
    :ivar arguments: the raw arguments text, as the model wrote it.
    :ivar call_id: the call's id.
    :ivar path: where the arguments did not fit (a JSON path), when that was the problem.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str,
        arguments: str,
        call_id: str | None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.arguments = arguments
        self.call_id = call_id
        self.path = path


class PoolClosedError(AnyoaiError, RuntimeError):
    """A pool (or a stream of it) was used after its ``async with`` block ended."""


class AsyncContextError(AnyoaiError, RuntimeError):
    """A blocking helper (``run_sync``, ``open_pool_sync``) was called in a running event loop."""


# --------------------------------------------------------------------------------------------
# batches and storage


class BatchFailedError(AnyoaiError):
    """A batch ended ``failed``, ``expired`` or ``cancelled``.

    :ivar batch: the :class:`~anyoai.types.Batch` as it ended.
    :ivar errors: its :class:`~anyoai.types.BatchError` s (``batch.errors.data``: for a failed
        batch, usually the input lines that were refused).
    :ivar results: the :class:`~anyoai.types.BatchResult` s it did produce, by ``custom_id``
        (an expired or cancelled batch keeps what it finished; the rest are there with their
        error).

    (Typed ``Any`` here: this module sits below the models, so that every layer can raise.)
    """

    def __init__(
        self,
        message: str,
        *,
        batch: Any,
        errors: list[Any],
        results: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.batch = batch
        self.errors = errors
        self.results = results or {}


class StorageError(AnyoaiError):
    """Object storage failed.

    :ivar url: the URL concerned, with any credentials masked.
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class StorageURLError(StorageError, ValueError):
    """A URL that names no storage anyoai knows, or is missing its bucket or key."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """No object (or no bucket, or no container) at the URL."""


class StoragePermissionError(StorageError, PermissionError):
    """The store refused the credentials, or they are missing."""


# --------------------------------------------------------------------------------------------
# talking to the API


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


class AllBackendsDownError(APIConnectionError):
    """Every backend that serves the model is cooling down after failures.

    :ivar failures: each backend's name and its last failure.
    :ivar retry_after: seconds until the first of them may be tried again.
    """

    def __init__(self, message: str, *, failures: dict[str, str], retry_after: float) -> None:
        super().__init__(message)
        self.failures = failures
        self.retry_after = retry_after
        self.request_sent = False


class ResponseValidationError(APIError):
    """The server's answer did not have the shape anyoai expects.

    :ivar path: where in the body it went wrong, as a JSON path such as ``$.choices[0].index``.
    """

    def __init__(self, message: str, *, path: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.path = path


class StructuredOutputError(ResponseValidationError):
    """A structured output is not valid JSON, or does not fit the requested class. The
    completion (paid for) is on :attr:`result`; :attr:`path` says where it did not fit."""

    def __init__(self, message: str, *, result: Any, path: str | None = None, body: Any) -> None:
        super().__init__(
            message, path=path, body=body, request_id=getattr(result, "request_id", None)
        )
        self.result = result


class LengthFinishReasonError(APIError):
    """A structured output was cut by the token limit (``finish_reason="length"``), so its
    JSON is incomplete. The partial result is on :attr:`result`."""

    def __init__(self, message: str, *, result: Any) -> None:
        super().__init__(message, request_id=getattr(result, "request_id", None))
        self.result = result


class StreamError(APIError):
    """The server sent an ``error`` event in the middle of a stream."""
