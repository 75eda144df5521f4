"""The framework of the fake OpenAI server's endpoints: requests, replies, routes and the app.

Nothing here does I/O, and nothing here knows an endpoint. :class:`FakeApp` takes a
:class:`RecordedRequest` and a sequence number, checks the credentials, finds the
:class:`Route` of the table it was given, and returns the handler's :class:`Reply` (a JSON body,
or the list of server-sent events of a stream); the HTTP layer (:mod:`anyoai.testing._http`)
puts it on the wire and applies wire-level faults.

The endpoints are modules of their own, each with its routes (chat in
:mod:`anyoai.testing._chat`, the Files API in :mod:`anyoai.testing._files`, ...);
:data:`anyoai.testing._table.DEFAULT_ROUTES` assembles them. A later endpoint is one more
:class:`Route`, added there or with :meth:`FakeApp.add_route`. Azure OpenAI's deployment paths
are the route table of :class:`~anyoai.testing._azure.AzureApp`. The Files, Uploads and Batch
APIs keep their objects in the app's :class:`~anyoai.testing._state.AppState`: the only state
that outlives a request.

Determinism
    Every answer is a pure function of the request, except ids and timestamps, which come from
    the request's sequence number ``seq`` (1 for the first request the server received):
    ids are ``<prefix>-fake-<seq:06d>`` (``chatcmpl-fake-000001``) and ``created`` is
    ``1700000000 + seq``. Objects the server makes on its own (a batch's requests, its output
    files) take sequence numbers of their own from the same counter
    (:meth:`AppState.next_seq <anyoai.testing._state.AppState.next_seq>`), so ids never repeat.

Rate limits
    Every answer carries its :class:`Cost`: the tokens the server's rate limiter charges on
    arrival (prompt tokens, plus the completion tokens that ``max_tokens`` reserves) and the
    tokens the answer actually used. The limiter itself lives in the HTTP layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, TypeVar
from urllib.parse import unquote

import attrs

from ._state import AppState

__all__ = [
    "DEFAULT_MODELS",
    "EPOCH",
    "AppConfig",
    "Cost",
    "EndpointError",
    "FakeApp",
    "Handler",
    "RecordedRequest",
    "Reply",
    "RequestContext",
    "Route",
    "describe",
    "dumps",
    "error_body",
    "found_or_404",
    "json_reply",
    "mask_key",
    "request_id",
    "stream_reply",
]

#: ``created`` of every object is this epoch plus the request's sequence number.
EPOCH: Final = 1_700_000_000

#: The models ``GET /v1/models`` lists unless the server is given others. Other endpoints accept
#: any model name: only ``GET /v1/models/{id}`` checks against this list.
DEFAULT_MODELS: Final[tuple[str, ...]] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "o3",
    "o4-mini",
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "omni-moderation-latest",
    "text-moderation-latest",
    "ft:gpt-4o-mini-2024-07-18:fake-org::abc12345",
)

_JSON_TYPE: Final = "application/json"
_SSE_TYPE: Final = "text/event-stream; charset=utf-8"


@attrs.frozen
class RecordedRequest:
    """One request as the fake server received it.

    :ivar method: the HTTP method, upper case (``"POST"``).
    :ivar path: the path without the query string, percent-encoding kept as sent
        (``"/v1/chat/completions"``).
    :ivar query: the query parameters, decoded; the last value wins for a repeated name.
    :ivar headers: the headers, names in lower case; repeated headers are joined with ``", "``.
    :ivar body: the body, de-chunked.
    :ivar json: the body parsed as JSON, or ``None`` when it is empty, not JSON, or a
        ``multipart/*`` body (never parsed, however large).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any


@attrs.frozen(kw_only=True)
class Cost:
    """What an answer costs against the server's token rate limit (``FakeServer(tpm=...)``).

    :ivar model: the model named in rate-limit errors (``None``: the body's ``model``).
    :ivar charge: the tokens charged when the request arrives: its prompt tokens, plus the
        completion tokens ``max_tokens`` (or ``max_completion_tokens``) reserves.
    :ivar used: the tokens the answer used (prompt plus completion tokens of its ``usage``);
        the part of *charge* above it is refunded once the answer goes out. ``None``: all of
        *charge*.
    """

    model: str | None = None
    charge: int = 0
    used: int | None = None

    @property
    def refund(self) -> int:
        """The reserved tokens the answer did not use: ``charge - used`` when positive."""
        if self.used is None:
            return 0
        return max(0, self.charge - self.used)


@attrs.frozen(kw_only=True)
class Reply:
    """What an endpoint answers: a status, headers, and a body or a stream of events.

    :ivar status: the HTTP status.
    :ivar headers: extra headers (``content-type`` included); the HTTP layer adds
        ``x-request-id`` and ``openai-processing-ms``.
    :ivar body: the body of a non-streamed answer.
    :ivar events: for a streamed answer, the ``data:`` payload of every server-sent event in
        order (the last is ``[DONE]``); ``None`` for a non-streamed answer.
    :ivar cost: what a successful answer costs against the rate limits (nothing by default:
        one request, no tokens).
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    events: tuple[str, ...] | None = None
    cost: Cost = attrs.field(factory=Cost)

    @property
    def streaming(self) -> bool:
        """Whether this is a streamed (``text/event-stream``) answer."""
        return self.events is not None


class EndpointError(Exception):
    """Raised by a handler to answer with an OpenAI-shaped error body.

    ``{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`` with ``status``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = tuple(headers)

    def reply(self) -> Reply:
        """The :class:`Reply` this error stands for."""
        body = error_body(self.message, type=self.type, param=self.param, code=self.code)
        return json_reply(body, status=self.status, headers=self.headers)


FoundT = TypeVar("FoundT")


def found_or_404(found: FoundT | None, kind: str, object_id: str, param: str) -> FoundT:
    """*found*, or (when ``None``) the 404 ``No such <kind> object: <object_id>`` for *param*."""
    if found is None:
        raise EndpointError(404, f"No such {kind} object: {object_id}", param=param)
    return found


def dumps(value: Any) -> str:
    """Compact JSON (separators ``(",", ":")``), non-ASCII characters kept as they are."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_reply(value: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Reply:
    """A non-streamed JSON answer."""
    return Reply(
        status=status,
        headers=(("content-type", _JSON_TYPE), *headers),
        body=dumps(value).encode("utf-8"),
    )


def stream_reply(events: Iterable[str], headers: Sequence[tuple[str, str]] = ()) -> Reply:
    """A streamed answer: one server-sent event per item of *events* (``data:`` payloads)."""
    return Reply(
        status=200,
        headers=(("content-type", _SSE_TYPE), ("cache-control", "no-cache"), *headers),
        events=tuple(events),
    )


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The OpenAI error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def request_id(seq: int) -> str:
    """The ``x-request-id`` of the server's *seq*-th request: ``req_<seq in 12 hex digits>``."""
    return f"req_{seq:012x}"


def mask_key(key: str) -> str:
    """Mask an API key for an error message: ``sk-...abcd``; short keys are hidden entirely."""
    if len(key) < 12:
        return "***"
    return f"{key[:3]}...{key[-4:]}"


@attrs.frozen(kw_only=True)
class AppConfig:
    """The server's settings that endpoints read.

    :ivar models: the ids ``GET /v1/models`` lists.
    :ivar embedding_dimensions: the vector length when a request gives no ``dimensions``.
    :ivar api_key: when set, every request must carry ``Authorization: Bearer <api_key>``.
    :ivar max_file_bytes: the largest file ``POST /v1/files`` accepts (512 MiB by default).
    """

    models: tuple[str, ...] = DEFAULT_MODELS
    embedding_dimensions: int = 16
    api_key: str | None = None
    max_file_bytes: int = 512 * 1024 * 1024


@attrs.frozen(kw_only=True)
class RequestContext:
    """What a handler gets: the request, the path parameters, its sequence number, the config.

    :ivar params: the route's path parameters, percent-decoded.
    :ivar seq: the request's sequence number (1 for the first request the server received).
    :ivar app: the app answering, for handlers that need more than the request (its
        :attr:`~FakeApp.state`, or its routes to run a batch's requests); ``None`` for a context
        made by hand, which only the stateless endpoints accept.
    """

    request: RecordedRequest
    params: Mapping[str, str]
    seq: int
    config: AppConfig
    app: FakeApp | None = None

    @property
    def state(self) -> AppState:
        """The app's server-lifetime :class:`~anyoai.testing._state.AppState`."""
        return self.require_app().state

    def require_app(self) -> FakeApp:
        """:attr:`app`, or ``RuntimeError`` for a context that has none."""
        if self.app is None:
            raise RuntimeError("this endpoint needs a RequestContext made by a FakeApp")
        return self.app

    @property
    def created(self) -> int:
        """The ``created`` timestamp of this request's objects: ``1700000000 + seq``."""
        return EPOCH + self.seq

    def make_id(self, prefix: str) -> str:
        """A deterministic id, e.g. ``make_id("chatcmpl") == "chatcmpl-fake-000001"``."""
        return f"{prefix}-fake-{self.seq:06d}"

    def body_object(self) -> dict[str, Any]:
        """The JSON body as an object, or :class:`EndpointError` 400 if it is not one."""
        value = self.request.json
        if value is None and self.request.body.strip() != b"null":
            raise EndpointError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.)",
            )
        if not isinstance(value, dict):
            raise EndpointError(
                400,
                f"Invalid type for body: expected an object, but got {describe(value)} instead.",
                code="invalid_type",
            )
        return value


#: An endpoint: takes the request's context, returns the reply (or raises :class:`EndpointError`).
Handler = Callable[[RequestContext], Reply]

_PLACEHOLDER = re.compile(r"\{(?P<name>[A-Za-z_]\w*)(?P<path>:path)?\}")


def _compile_template(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[position : match.start()]))
        body = ".+" if match.group("path") else "[^/]+"
        parts.append(f"(?P<{match.group('name')}>{body})")
        position = match.end()
    parts.append(re.escape(template[position:]))
    return re.compile("".join(parts))


@attrs.frozen
class Route:
    """One entry of the route table: a method, a path template and its handler.

    The template is matched against the raw (percent-encoded) path: ``{name}`` matches one path
    segment, ``{name:path}`` the rest of the path, slashes included. The handler gets the
    parameters percent-decoded in :attr:`RequestContext.params`.
    """

    method: str
    template: str
    handler: Handler = attrs.field(eq=False)
    pattern: re.Pattern[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "pattern", _compile_template(self.template))

    def match(self, path: str) -> dict[str, str] | None:
        """The decoded path parameters if *path* matches the template, else ``None``."""
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


class FakeApp:
    """The fake API: authentication, routing by (method, path), and the endpoints.

    :param config: the server's settings.
    :param routes: the route table; the fake server gives every endpoint
        (:data:`anyoai.testing._table.DEFAULT_ROUTES`).
    :param state: the files, uploads and batches; a new, empty :class:`AppState` unless given.

    :ivar state: the server-lifetime state (see :mod:`anyoai.testing._state`).
    """

    #: The endpoints a batch may name (``CreateBatchRequest.endpoint``); a batch can only use
    #: those the route table answers (:meth:`batch_target`).
    batch_endpoints: ClassVar[tuple[str, ...]] = (
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/videos",
    )

    def __init__(
        self,
        config: AppConfig,
        routes: Iterable[Route],
        state: AppState | None = None,
    ) -> None:
        self.config = config
        self.routes: list[Route] = list(routes)
        self.state = AppState() if state is None else state

    def add_route(self, method: str, template: str, handler: Handler) -> None:
        """Add an endpoint (it takes precedence over existing routes with the same template)."""
        self.routes.insert(0, Route(method, template, handler))

    def handle(self, request: RecordedRequest, seq: int) -> Reply:
        """Answer *request*, the server's ``seq``-th. Never raises :class:`EndpointError`."""
        try:
            self._authenticate(request)
        except EndpointError as error:
            return error.reply()
        return self.execute(request, seq)

    def execute(self, request: RecordedRequest, seq: int) -> Reply:
        """Answer *request* as :meth:`handle` does, without checking its credentials.

        The Batch API runs the requests of a batch through it. Never raises
        :class:`EndpointError`.
        """
        self.state.observe(seq)
        try:
            route, params = self._route(request)
            return route.handler(self.context(request, params, seq))
        except EndpointError as error:
            return error.reply()

    def context(
        self, request: RecordedRequest, params: Mapping[str, str], seq: int
    ) -> RequestContext:
        """The :class:`RequestContext` a handler of this app gets."""
        return RequestContext(request=request, params=params, seq=seq, config=self.config, app=self)

    def answers(self, method: str, path: str) -> bool:
        """Whether a route of the table matches *method* and *path*."""
        method = method.upper()
        return any(
            route.method == method and route.match(path) is not None for route in self.routes
        )

    def batch_target(
        self, endpoint: str, body: Mapping[str, Any], query: Mapping[str, str]
    ) -> tuple[str, dict[str, str]]:
        """Where a batch sends a request for *endpoint*: its path and query parameters.

        *body* is the request's body and *query* the query of the request that runs the batch.
        The OpenAI API: the endpoint itself (``/v1/chat/completions``), no query.
        """
        return endpoint, {}

    def response_headers(self, seq: int) -> Sequence[tuple[str, str]]:
        """Headers the server adds to every answer of request *seq*, errors and faults included.

        None for OpenAI; the Azure app (:mod:`anyoai.testing._azure`) adds its own.
        """
        return ()

    def _authenticate(self, request: RecordedRequest) -> None:
        key = self.config.api_key
        if key is None:
            return
        authorization = request.headers.get("authorization")
        if authorization is None:
            raise EndpointError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
            )
        scheme, _, token = authorization.strip().partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else authorization.strip()
        if scheme.lower() == "bearer" and given == key:
            return
        raise EndpointError(
            401,
            f"Incorrect API key provided: {mask_key(given)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def _route(self, request: RecordedRequest) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route in self.routes:
            params = route.match(request.path)
            if params is None:
                continue
            if route.method == request.method:
                return route, params
            if route.method not in allowed:
                allowed.append(route.method)
        if allowed:
            raise EndpointError(
                405,
                f"Not allowed to {request.method} on {request.path}. (HINT: Perhaps you "
                "meant to use a different HTTP method?)",
                headers=(("allow", ", ".join(allowed)),),
            )
        raise EndpointError(404, f"Invalid URL ({request.method} {request.path})")


#: The JSON type names of the API's errors, by Python type (``bool`` before ``int``, its base).
_JSON_TYPE_NAMES: Final = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a decimal"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def describe(value: Any) -> str:
    """How the API's errors name the JSON type of *value* (``"a string"``, ``"null"``, ...)."""
    if value is None:
        return "null"
    for kind, name in _JSON_TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return "an unknown value"
