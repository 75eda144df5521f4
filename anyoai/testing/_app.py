"""The endpoints of the fake OpenAI server: routing, validation and deterministic bodies.

Nothing here does I/O. :class:`FakeApp` takes a :class:`RecordedRequest` and a sequence number
and returns a :class:`Reply` (a JSON body, or the list of server-sent events of a stream); the
HTTP layer in :mod:`anyoai.testing._server` puts it on the wire and applies wire-level faults.

Endpoints live in a route table (:data:`CORE_ROUTES`; ``_routes.DEFAULT_ROUTES`` for all): a
later endpoint is one more :class:`Route`, added there or with :meth:`FakeApp.add_route`.
Azure OpenAI's deployment paths are the route table of :class:`~anyoai.testing._azure.AzureApp`.
The Files and Uploads APIs (:mod:`anyoai.testing._files`) and the Batch API
(:mod:`anyoai.testing._batches`) have modules of their own, and keep their objects in the app's
:class:`~anyoai.testing._state.AppState`: the only state that outlives a request.

Determinism
    Every answer is a pure function of the request, except ids and timestamps, which come from
    the request's sequence number ``seq`` (1 for the first request the server received):
    ids are ``<prefix>-fake-<seq:06d>`` (``chatcmpl-fake-000001``) and ``created`` is
    ``1700000000 + seq``. Objects the server makes on its own (a batch's requests, its output
    files) take sequence numbers of their own from the same counter
    (:meth:`AppState.next_seq <anyoai.testing._state.AppState.next_seq>`), so ids never repeat.

Tokens
    The fake "tokenizer" counts whitespace-separated words: ``len(text.split())``. Streams send
    one word per chunk, each with the whitespace that follows it, so joining the pieces gives
    back the text exactly.

Rate limits
    Every answer carries its :class:`Cost`: the tokens the server's rate limiter charges on
    arrival (prompt tokens, plus the completion tokens that ``max_tokens`` reserves) and the
    tokens the answer actually used. The limiter itself lives in the HTTP layer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final
from urllib.parse import unquote

import attrs

from ._state import AppState

__all__ = [
    "CORE_ROUTES",
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
    "error_body",
    "error_reply",
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
_FINGERPRINT: Final = "fp_fake"
_REFUSAL: Final = "I'm sorry, I can't help with that."


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
        return error_reply(
            self.status,
            self.message,
            type=self.type,
            param=self.param,
            code=self.code,
            headers=self.headers,
        )


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


def error_reply(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> Reply:
    """A JSON answer with the OpenAI error shape."""
    body = error_body(message, type=type, param=param, code=code)
    return json_reply(body, status=status, headers=headers)


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
                f"Invalid type for body: expected an object, but got {_describe(value)} instead.",
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
    :param routes: the route table; :data:`CORE_ROUTES` (the model endpoints) unless given.
        The fake server gives every endpoint (``_routes.DEFAULT_ROUTES``).
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
        routes: Iterable[Route] | None = None,
        state: AppState | None = None,
    ) -> None:
        self.config = config
        self.routes: list[Route] = list(CORE_ROUTES if routes is None else routes)
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


# --------------------------------------------------------------------------------------------
# validation helpers


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unknown value"


def _missing(param: str) -> EndpointError:
    return EndpointError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def _invalid_type(param: str, expected: str, value: Any) -> EndpointError:
    return EndpointError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {_describe(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _invalid_value(param: str, message: str) -> EndpointError:
    return EndpointError(400, message, param=param, code="invalid_value")


def _require(body: Mapping[str, Any], name: str) -> Any:
    value = body.get(name)
    if value is None:
        raise _missing(name)
    return value


def _require_str(body: Mapping[str, Any], name: str) -> str:
    value = _require(body, name)
    if not isinstance(value, str):
        raise _invalid_type(name, "a string", value)
    return value


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid_type(name, "a string", value)
    return value


def _optional_int(
    body: Mapping[str, Any], name: str, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(name, "an integer", value)
    if minimum is not None and value < minimum:
        raise EndpointError(
            400,
            f"Invalid '{name}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise EndpointError(
            400,
            f"Invalid '{name}': integer above maximum value. Expected a value <= {maximum}, "
            f"but got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def _optional_bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid_type(name, "a boolean", value)
    return value


def _include_usage(body: Mapping[str, Any], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise EndpointError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    if not isinstance(options, dict):
        raise _invalid_type("stream_options", "an object", options)
    return options.get("include_usage") is True


# --------------------------------------------------------------------------------------------
# text helpers

_PIECE = re.compile(r"\s*\S+\s*")


def count_words(text: str) -> int:
    """The fake token count: the number of whitespace-separated words."""
    return len(text.split())


def split_pieces(text: str) -> list[str]:
    """*text* cut into words, each with the whitespace after it: ``"".join(pieces) == text``."""
    pieces: list[str] = _PIECE.findall(text)
    if not pieces:
        return [text] if text else []
    return pieces


def truncate_words(text: str, limit: int | None) -> tuple[str, bool]:
    """The first *limit* words of *text* (trailing whitespace dropped), and whether it was cut."""
    if limit is None:
        return text, False
    pieces = split_pieces(text)
    if len(pieces) <= limit:
        return text, False
    return "".join(pieces[:limit]).rstrip(), True


def _chunks_of(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def _logprob(position: int) -> float:
    return round(-0.1 * (position + 1), 6)


def _chat_token_logprobs(pieces: Sequence[str], top: int, start: int = 0) -> list[dict[str, Any]]:
    """Chat-style log probabilities: one entry per piece, with *top* alternatives each."""
    entries: list[dict[str, Any]] = []
    for position, token in enumerate(pieces, start):
        logprob = _logprob(position)
        alternatives = [{"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}]
        for rank in range(1, top):
            other = f"{token.strip()}~{rank}"
            alternatives.append(
                {
                    "token": other,
                    "logprob": round(logprob - rank, 6),
                    "bytes": list(other.encode("utf-8")),
                }
            )
        entries.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode("utf-8")),
                "top_logprobs": alternatives[:top],
            }
        )
    return entries


# --------------------------------------------------------------------------------------------
# JSON-schema examples (tool arguments, structured outputs)

_MAX_DEPTH: Final = 32


def _resolve_ref(root: Any, ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def example_value(schema: Any, name: str, *, root: Any, recurse: bool, depth: int = 0) -> Any:
    """A value that fits *schema*: the rules the fake uses for tool arguments and outputs.

    string: its first ``enum`` value, else ``"<name>-value"``; integer: 1; number: 1.5;
    boolean: true; null: null; array: ``[]``, or with *recurse* one item; object: ``{}``, or with
    *recurse* every property. ``const``, ``enum``, ``anyOf``/``oneOf``/``allOf`` (first option)
    and, with *recurse*, local ``$ref`` are understood.
    """
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "$ref" in schema and recurse:
        return example_value(
            _resolve_ref(root, schema["$ref"]), name, root=root, recurse=recurse, depth=depth + 1
        )
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            choices = [option for option in options if option != {"type": "null"}] or options
            return example_value(choices[0], name, root=root, recurse=recurse, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [entry for entry in kind if entry != "null"] or kind
        kind = kinds[0] if kinds else None
    if kind is None:
        if "properties" in schema:
            kind = "object"
        elif "items" in schema:
            kind = "array"
    if kind == "string":
        return f"{name}-value"
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        items = schema.get("items")
        if not recurse or not isinstance(items, dict):
            return []
        return [example_value(items, name, root=root, recurse=True, depth=depth + 1)]
    if kind == "object":
        properties = schema.get("properties")
        if not recurse or not isinstance(properties, dict):
            return {}
        return {
            key: example_value(value, key, root=root, recurse=True, depth=depth + 1)
            for key, value in properties.items()
        }
    return None


def tool_arguments(parameters: Any) -> str:
    """The arguments of a fake tool call: a value for every property (nested objects and one
    item of each array included), compact JSON."""
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    if not isinstance(properties, dict):
        return "{}"
    values = {
        key: example_value(value, key, root=parameters, recurse=True)
        for key, value in properties.items()
    }
    return dumps(values)


# --------------------------------------------------------------------------------------------
# chat completions


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return " ".join(texts)
    return ""


@attrs.frozen(kw_only=True)
class _FunctionSpec:
    name: str
    parameters: Any


@attrs.frozen(kw_only=True)
class _ChatOutcome:
    content: str | None = None
    refusal: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    function_call: dict[str, Any] | None = None
    finish_reason: str = "stop"

    def completion_tokens(self) -> int:
        words = count_words(self.content or "") + count_words(self.refusal or "")
        for call in self.tool_calls:
            function = call["function"]
            words += count_words(function["name"]) + count_words(function["arguments"])
        if self.function_call is not None:
            words += count_words(self.function_call["name"])
            words += count_words(self.function_call["arguments"])
        return words


def _function_tools(tools: Any) -> list[_FunctionSpec]:
    if not isinstance(tools, list):
        raise _invalid_type("tools", "an array", tools)
    functions: list[_FunctionSpec] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _invalid_type(f"tools[{index}]", "an object", tool)
        if tool.get("type", "function") != "function":
            continue
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _missing(f"tools[{index}].function")
        name = function.get("name")
        if not isinstance(name, str):
            raise _missing(f"tools[{index}].function.name")
        functions.append(_FunctionSpec(name=name, parameters=function.get("parameters")))
    return functions


def _legacy_functions(functions: Any) -> list[_FunctionSpec]:
    if not isinstance(functions, list):
        raise _invalid_type("functions", "an array", functions)
    specs: list[_FunctionSpec] = []
    for index, function in enumerate(functions):
        if not isinstance(function, dict):
            raise _invalid_type(f"functions[{index}]", "an object", function)
        name = function.get("name")
        if not isinstance(name, str):
            raise _missing(f"functions[{index}].name")
        specs.append(_FunctionSpec(name=name, parameters=function.get("parameters")))
    return specs


def _select_tools(body: Mapping[str, Any], functions: list[_FunctionSpec]) -> list[_FunctionSpec]:
    choice = body.get("tool_choice")
    if choice == "none":
        return []
    if isinstance(choice, dict):
        names: list[str] = []
        if choice.get("type") == "allowed_tools":
            allowed = choice.get("allowed_tools")
            entries = allowed.get("tools") if isinstance(allowed, dict) else None
            for entry in entries if isinstance(entries, list) else []:
                function = entry.get("function") if isinstance(entry, dict) else None
                if isinstance(function, dict) and isinstance(function.get("name"), str):
                    names.append(function["name"])
        else:
            function = choice.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
        selected = [spec for spec in functions if spec.name in names]
        if not selected:
            raise _invalid_value(
                "tool_choice",
                "Invalid value for 'tool_choice': the tool named in 'tool_choice' is not in "
                "'tools'.",
            )
        functions = selected
    if body.get("parallel_tool_calls") is False:
        return functions[:1]
    return functions


def _select_legacy_function(
    body: Mapping[str, Any], functions: list[_FunctionSpec]
) -> _FunctionSpec | None:
    choice = body.get("function_call")
    if choice == "none" or not functions:
        return None
    if isinstance(choice, dict):
        name = choice.get("name")
        for spec in functions:
            if spec.name == name:
                return spec
        raise _invalid_value(
            "function_call",
            "Invalid value for 'function_call': the function named is not in 'functions'.",
        )
    return functions[0]


def _structured_content(response_format: Any, answer: str) -> str:
    if response_format is None:
        return answer
    if not isinstance(response_format, dict):
        raise _invalid_type("response_format", "an object", response_format)
    kind = response_format.get("type")
    if kind == "text":
        return answer
    # structured content is spaced JSON, so that it has words and max_tokens can cut it
    # mid-value, as it cuts a real model's output (then finish_reason is "length")
    if kind == "json_object":
        return json.dumps({"answer": answer}, ensure_ascii=False)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise _missing("response_format.json_schema")
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            return "{}"
        value = example_value(schema, "value", root=schema, recurse=True)
        return json.dumps(value, ensure_ascii=False)
    raise _invalid_value(
        "response_format.type",
        f"Invalid value: {dumps(kind)}. Supported values are: 'text', 'json_object' and "
        "'json_schema'.",
    )


def _chat_outcome(body: Mapping[str, Any], user_text: str, max_tokens: int | None) -> _ChatOutcome:
    if re.search(r"\brefuse\b", user_text, re.IGNORECASE):
        return _ChatOutcome(refusal=_REFUSAL, finish_reason="stop")
    messages = body.get("messages") or [{}]
    answering = messages[-1].get("role") in ("tool", "function")  # results are in: answer
    if body.get("tools") is not None:
        selected = _select_tools(body, _function_tools(body["tools"]))
        if answering and body.get("tool_choice") in (None, "auto"):
            selected = []
        if selected:
            calls = tuple(
                {
                    "id": f"call_fake_{index}",
                    "type": "function",
                    "function": {"name": spec.name, "arguments": tool_arguments(spec.parameters)},
                }
                for index, spec in enumerate(selected)
            )
            return _ChatOutcome(tool_calls=calls, finish_reason="tool_calls")
    if body.get("functions") is not None:
        spec = _select_legacy_function(body, _legacy_functions(body["functions"]))
        if spec is not None and not (answering and body.get("function_call") in (None, "auto")):
            call = {"name": spec.name, "arguments": tool_arguments(spec.parameters)}
            return _ChatOutcome(function_call=call, finish_reason="function_call")
    answer = f"This is a fake answer to: {user_text}"
    content = _structured_content(body.get("response_format"), answer)
    content, cut = truncate_words(content, max_tokens)
    return _ChatOutcome(content=content, finish_reason="length" if cut else "stop")


def _chat_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_logprobs(outcome: _ChatOutcome, top: int) -> dict[str, Any]:
    content = None
    refusal = None
    if outcome.content is not None and not outcome.tool_calls:
        content = _chat_token_logprobs(split_pieces(outcome.content), top)
    if outcome.refusal is not None:
        refusal = _chat_token_logprobs(split_pieces(outcome.refusal), top)
    return {"content": content, "refusal": refusal}


# one step of a streamed choice: (delta, logprobs, finish_reason)
_Step = tuple[dict[str, Any], dict[str, Any] | None, str | None]


def _chat_steps(outcome: _ChatOutcome, logprobs: bool, top: int) -> list[_Step]:
    steps: list[_Step] = []
    if outcome.tool_calls:
        steps.append(({"role": "assistant", "content": None, "refusal": None}, None, None))
        for index, call in enumerate(outcome.tool_calls):
            function = call["function"]
            header = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            steps.append(({"tool_calls": [header]}, None, None))
            for piece in _chunks_of(function["arguments"], 4):
                delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                steps.append((delta, None, None))
    elif outcome.function_call is not None:
        steps.append(({"role": "assistant", "content": None, "refusal": None}, None, None))
        name = outcome.function_call["name"]
        steps.append(({"function_call": {"name": name, "arguments": ""}}, None, None))
        for piece in _chunks_of(outcome.function_call["arguments"], 4):
            steps.append(({"function_call": {"arguments": piece}}, None, None))
    elif outcome.refusal is not None:
        steps.append(({"role": "assistant", "content": None, "refusal": ""}, None, None))
        for position, piece in enumerate(split_pieces(outcome.refusal)):
            entry = (
                {"content": None, "refusal": _chat_token_logprobs([piece], top, position)}
                if logprobs
                else None
            )
            steps.append(({"refusal": piece}, entry, None))
    else:
        steps.append(({"role": "assistant", "content": "", "refusal": None}, None, None))
        for position, piece in enumerate(split_pieces(outcome.content or "")):
            entry = (
                {"content": _chat_token_logprobs([piece], top, position), "refusal": None}
                if logprobs
                else None
            )
            steps.append(({"content": piece}, entry, None))
    steps.append(({}, None, outcome.finish_reason))
    return steps


def chat_completions(ctx: RequestContext) -> Reply:
    """``POST /v1/chat/completions``."""
    body = ctx.body_object()
    model = _require_str(body, "model")
    messages = _require(body, "messages")
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array", messages)
    if not messages:
        raise EndpointError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid_type(f"messages[{index}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise _missing(f"messages[{index}].role")
        if not isinstance(role, str):
            raise _invalid_type(f"messages[{index}].role", "a string", role)
    n = _optional_int(body, "n", 1, 128) or 1
    max_tokens = _optional_int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_tokens", 1)
    logprobs = _optional_bool(body, "logprobs")
    top = _optional_int(body, "top_logprobs", 0, 20)
    if top is not None and not logprobs:
        raise _invalid_value(
            "top_logprobs", "Invalid value: 'logprobs' must be true when 'top_logprobs' is set."
        )
    stream = _optional_bool(body, "stream")
    include_usage = _include_usage(body, stream)

    user_text = ""
    for message in reversed(messages):
        if message["role"] == "user":
            user_text = _message_text(message.get("content"))
            break
    prompt_tokens = sum(count_words(_message_text(message.get("content"))) for message in messages)
    outcome = _chat_outcome(body, user_text, max_tokens)
    usage = _chat_usage(prompt_tokens, outcome.completion_tokens() * n)
    completion_id = ctx.make_id("chatcmpl")
    cost = Cost(
        model=model,
        charge=prompt_tokens + (max_tokens * n if max_tokens is not None else 0),
        used=usage["total_tokens"],
    )

    if stream:
        steps = _chat_steps(outcome, logprobs, top or 0)
        events: list[str] = []
        for delta, entry, finish_reason in steps:
            for index in range(n):
                chunk: dict[str, Any] = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": ctx.created,
                    "model": model,
                    "service_tier": "default",
                    "system_fingerprint": _FINGERPRINT,
                    "choices": [
                        {
                            "index": index,
                            "delta": delta,
                            "logprobs": entry,
                            "finish_reason": finish_reason,
                        }
                    ],
                }
                if include_usage:
                    chunk["usage"] = None
                events.append(dumps(chunk))
        if include_usage:
            final = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": ctx.created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": _FINGERPRINT,
                "choices": [],
                "usage": usage,
            }
            events.append(dumps(final))
        events.append("[DONE]")
        return attrs.evolve(stream_reply(events), cost=cost)

    message_body: dict[str, Any] = {
        "role": "assistant",
        "content": outcome.content,
        "refusal": outcome.refusal,
        "annotations": [],
    }
    if outcome.tool_calls:
        message_body["tool_calls"] = list(outcome.tool_calls)
    if outcome.function_call is not None:
        message_body["function_call"] = outcome.function_call
    choice_logprobs = _chat_logprobs(outcome, top or 0) if logprobs else None
    choices = [
        {
            "index": index,
            "message": message_body,
            "logprobs": choice_logprobs,
            "finish_reason": outcome.finish_reason,
        }
        for index in range(n)
    ]
    answer = json_reply(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": ctx.created,
            "model": model,
            "choices": choices,
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
    )
    return attrs.evolve(answer, cost=cost)


# --------------------------------------------------------------------------------------------
# legacy completions


def _is_token_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    )


def _prompts(value: Any, param: str) -> list[tuple[str, int]]:
    """Each prompt as (text, token count): strings, a token list, or a list of either."""
    if isinstance(value, str):
        return [(value, count_words(value))]
    if _is_token_list(value):
        return [(" ".join(str(token) for token in value), len(value))]
    if isinstance(value, list):
        if not value:
            raise _invalid_value(
                param, f"Invalid '{param}': empty array. Expected at least one item."
            )
        prompts: list[tuple[str, int]] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                prompts.append((item, count_words(item)))
            elif _is_token_list(item):
                prompts.append((" ".join(str(token) for token in item), len(item)))
            else:
                raise _invalid_type(f"{param}[{index}]", "a string or an array of integers", item)
        return prompts
    raise _invalid_type(param, "a string or an array", value)


def _completion_logprobs(pieces: Sequence[str], top: int, offset: int, start: int = 0) -> Any:
    tokens = list(pieces)
    values = [_logprob(position) for position in range(start, start + len(tokens))]
    tops: list[dict[str, float]] = []
    offsets: list[int] = []
    for token, logprob in zip(tokens, values, strict=True):
        alternatives = {token: logprob}
        for rank in range(1, top):
            alternatives[f"{token.strip()}~{rank}"] = round(logprob - rank, 6)
        tops.append(dict(list(alternatives.items())[:top]))
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "top_logprobs": tops,
        "text_offset": offsets,
    }


def completions(ctx: RequestContext) -> Reply:
    """``POST /v1/completions`` (legacy text completions)."""
    body = ctx.body_object()
    model = _require_str(body, "model")
    prompts = _prompts(_require(body, "prompt"), "prompt")
    n = _optional_int(body, "n", 1, 128) or 1
    max_tokens = _optional_int(body, "max_tokens", 1)
    echo = _optional_bool(body, "echo")
    logprobs = _optional_int(body, "logprobs", 0, 5)
    stream = _optional_bool(body, "stream")
    include_usage = _include_usage(body, stream)

    generated: list[tuple[str, str, str]] = []  # (prompt, text, finish_reason) per prompt
    completion_tokens = 0
    for prompt, _ in prompts:
        text, cut = truncate_words(f" This is a fake completion of: {prompt}", max_tokens)
        generated.append((prompt, text, "length" if cut else "stop"))
        completion_tokens += count_words(text) * n
    prompt_tokens = sum(tokens for _, tokens in prompts)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    completion_id = ctx.make_id("cmpl")
    # every prompt gets n completions of up to max_tokens each
    reserved = max_tokens * n * len(prompts) if max_tokens is not None else 0
    cost = Cost(model=model, charge=prompt_tokens + reserved, used=usage["total_tokens"])

    def envelope(choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "text_completion",
            "created": ctx.created,
            "model": model,
            "system_fingerprint": _FINGERPRINT,
            "choices": choices,
        }

    if stream:
        # per prompt: the text each chunk carries, its logprobs and finish reason
        events: list[str] = []
        per_choice: list[list[tuple[str, Any, str | None]]] = []
        for prompt, text, finish_reason in generated:
            steps: list[tuple[str, Any, str | None]] = []
            offset = len(prompt)
            position = 0
            if echo and prompt:
                entry = (
                    _completion_logprobs([prompt], logprobs, 0) if logprobs is not None else None
                )
                steps.append((prompt, entry, None))
                position = 1
            for piece in split_pieces(text):
                entry = (
                    _completion_logprobs([piece], logprobs, offset, position)
                    if logprobs is not None
                    else None
                )
                steps.append((piece, entry, None))
                offset += len(piece)
                position += 1
            steps.append(("", None, finish_reason))
            per_choice.append(steps)
        longest = max(len(steps) for steps in per_choice)
        for step in range(longest):
            for prompt_index, steps in enumerate(per_choice):
                if step >= len(steps):
                    continue
                piece, piece_logprobs, piece_finish = steps[step]
                for copy in range(n):
                    choice = {
                        "index": prompt_index * n + copy,
                        "text": piece,
                        "logprobs": piece_logprobs,
                        "finish_reason": piece_finish,
                    }
                    chunk = envelope([choice])
                    if include_usage:
                        chunk["usage"] = None
                    events.append(dumps(chunk))
        if include_usage:
            final = envelope([])
            final["usage"] = usage
            events.append(dumps(final))
        events.append("[DONE]")
        return attrs.evolve(stream_reply(events), cost=cost)

    choices: list[dict[str, Any]] = []
    for prompt_index, (prompt, text, finish_reason) in enumerate(generated):
        full = prompt + text if echo else text
        entry = None
        if logprobs is not None:
            pieces = ([prompt] if echo and prompt else []) + split_pieces(text)
            entry = _completion_logprobs(pieces, logprobs, 0 if echo else len(prompt))
        for copy in range(n):
            choices.append(
                {
                    "index": prompt_index * n + copy,
                    "text": full,
                    "logprobs": entry,
                    "finish_reason": finish_reason,
                }
            )
    result = envelope(choices)
    result["usage"] = usage
    return attrs.evolve(json_reply(result), cost=cost)


# --------------------------------------------------------------------------------------------
# embeddings


def _float32(value: float) -> float:
    rounded: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return rounded


def embedding_vector(data: bytes, dimensions: int) -> list[float]:
    """The fake embedding of *data*: unit length, float32-exact, seeded by SHA-256 of *data*."""
    seed = int.from_bytes(hashlib.sha256(data).digest(), "big")
    generator = random.Random(seed)
    raw = [generator.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [_float32(value / norm) for value in raw]


def _embedding_inputs(value: Any) -> list[tuple[bytes, int]]:
    """Each input as (bytes to hash, token count)."""
    if isinstance(value, str):
        return [(value.encode("utf-8"), count_words(value))]
    if _is_token_list(value):
        return [(b"tokens:" + dumps(value).encode("ascii"), len(value))]
    if isinstance(value, list):
        if not value:
            raise _invalid_value("input", "Invalid 'input': empty array. Expected at least one.")
        inputs: list[tuple[bytes, int]] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                inputs.append((item.encode("utf-8"), count_words(item)))
            elif _is_token_list(item):
                inputs.append((b"tokens:" + dumps(item).encode("ascii"), len(item)))
            else:
                raise _invalid_type(f"input[{index}]", "a string or an array of integers", item)
        return inputs
    raise _invalid_type("input", "a string or an array", value)


def embeddings(ctx: RequestContext) -> Reply:
    """``POST /v1/embeddings``."""
    body = ctx.body_object()
    model = _require_str(body, "model")
    inputs = _embedding_inputs(_require(body, "input"))
    dimensions = _optional_int(body, "dimensions", 1, 16384) or ctx.config.embedding_dimensions
    encoding = _optional_str(body, "encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise _invalid_value(
            "encoding_format",
            f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
        )
    data: list[dict[str, Any]] = []
    for index, (key, _) in enumerate(inputs):
        vector = embedding_vector(key, dimensions)
        encoded: Any = vector
        if encoding == "base64":
            packed = struct.pack(f"<{len(vector)}f", *vector)
            encoded = base64.b64encode(packed).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count for _, count in inputs)
    answer = json_reply(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
    return attrs.evolve(answer, cost=Cost(model=model, charge=tokens, used=tokens))


# --------------------------------------------------------------------------------------------
# models


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": EPOCH, "owned_by": "system"}


def list_models(ctx: RequestContext) -> Reply:
    """``GET /v1/models``."""
    return json_reply(
        {"object": "list", "data": [_model_object(model) for model in ctx.config.models]}
    )


def retrieve_model(ctx: RequestContext) -> Reply:
    """``GET /v1/models/{model}``: the model, or 404 ``model_not_found``."""
    model_id = ctx.params["model"]
    if model_id not in ctx.config.models:
        raise EndpointError(
            404,
            f"The model '{model_id}' does not exist",
            param="model",
            code="model_not_found",
        )
    return json_reply(_model_object(model_id))


def delete_model(ctx: RequestContext) -> Reply:
    """``DELETE /v1/models/{model}``: allowed for fine-tuned (``ft:``) models only."""
    model_id = ctx.params["model"]
    if not model_id.startswith("ft:"):
        raise EndpointError(403, "You have insufficient permissions for this operation.")
    return json_reply({"id": model_id, "object": "model", "deleted": True})


# --------------------------------------------------------------------------------------------
# moderations

#: The 13 moderation categories, in the API's order.
MODERATION_CATEGORIES: Final[tuple[str, ...]] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
_IMAGE_CATEGORIES: Final = frozenset(
    {
        "self-harm",
        "self-harm/instructions",
        "self-harm/intent",
        "sexual",
        "violence",
        "violence/graphic",
    }
)
_TRIGGERS: Final = (("kill", "violence"), ("hate", "hate"))


def _moderation_inputs(value: Any) -> list[tuple[str, bool, bool]]:
    """Each input as (text, has text, has image). A list of parts is one input."""
    if isinstance(value, str):
        return [(value, True, False)]
    if isinstance(value, list):
        if not value:
            raise _invalid_value("input", "Invalid 'input': empty array. Expected at least one.")
        if all(isinstance(item, str) for item in value):
            return [(item, True, False) for item in value]
        texts: list[str] = []
        has_image = False
        for index, part in enumerate(value):
            if not isinstance(part, dict):
                raise _invalid_type(f"input[{index}]", "an object", part)
            kind = part.get("type")
            if kind == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise _missing(f"input[{index}].text")
                texts.append(text)
            elif kind == "image_url":
                has_image = True
            else:
                raise _invalid_value(
                    f"input[{index}].type",
                    f"Invalid value: {dumps(kind)}. Supported values are: 'text' and 'image_url'.",
                )
        return [(" ".join(texts), bool(texts), has_image)]
    raise _invalid_type("input", "a string or an array", value)


def _moderation_result(text: str, has_text: bool, has_image: bool) -> dict[str, Any]:
    lowered = text.lower()
    scores = dict.fromkeys(MODERATION_CATEGORIES, 0.0001)
    for trigger, category in _TRIGGERS:
        if trigger in lowered:
            scores[category] = 0.95
    categories = {name: score >= 0.5 for name, score in scores.items()}
    applied: dict[str, list[str]] = {}
    for name in MODERATION_CATEGORIES:
        kinds = ["text"] if has_text else []
        if has_image and name in _IMAGE_CATEGORIES:
            kinds.append("image")
        applied[name] = kinds
    return {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": applied,
    }


def moderations(ctx: RequestContext) -> Reply:
    """``POST /v1/moderations``: flags ``violence`` for "kill" and ``hate`` for "hate"."""
    body = ctx.body_object()
    inputs = _moderation_inputs(_require(body, "input"))
    model = _optional_str(body, "model") or "omni-moderation-latest"
    words = sum(count_words(text) for text, _, _ in inputs)
    answer = json_reply(
        {
            "id": ctx.make_id("modr"),
            "model": model,
            "results": [_moderation_result(*entry) for entry in inputs],
        }
    )
    return attrs.evolve(answer, cost=Cost(model=model, charge=words, used=words))


# --------------------------------------------------------------------------------------------
# edits (legacy)


def edits(ctx: RequestContext) -> Reply:
    """``POST /v1/edits`` (legacy): the input with ``" (edited: <instruction>)"`` appended."""
    body = ctx.body_object()
    model = _require_str(body, "model")
    instruction = _require_str(body, "instruction")
    text_input = _optional_str(body, "input") or ""
    n = _optional_int(body, "n", 1, 20) or 1
    text = f"{text_input} (edited: {instruction})"
    prompt_tokens = count_words(text_input) + count_words(instruction)
    completion_tokens = count_words(text) * n
    answer = json_reply(
        {
            "object": "edit",
            "created": ctx.created,
            "choices": [{"text": text, "index": index} for index in range(n)],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )
    cost = Cost(model=model, charge=prompt_tokens, used=prompt_tokens + completion_tokens)
    return attrs.evolve(answer, cost=cost)


#: The model endpoints. The Files, Uploads and Batch APIs build on this module (their own
#: modules import it); :data:`anyoai.testing._routes.DEFAULT_ROUTES` assembles them all.
CORE_ROUTES: Final[tuple[Route, ...]] = (
    Route("POST", "/v1/chat/completions", chat_completions),
    Route("POST", "/v1/completions", completions),
    Route("POST", "/v1/embeddings", embeddings),
    Route("GET", "/v1/models", list_models),
    Route("GET", "/v1/models/{model:path}", retrieve_model),
    Route("DELETE", "/v1/models/{model:path}", delete_model),
    Route("POST", "/v1/moderations", moderations),
    Route("POST", "/v1/edits", edits),
)
