"""What every resource shares: checked parameters into an APIRequest, a reply into a model."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._errors import InvalidParameterError
from .._params import ParamSpec
from .._request import APIRequest, Reply, RequestOptions
from .._serde import encode_json, structure
from .._streaming import AsyncStream
from ..types._base import APIObject, NotGiven, ResponseMeta
from ..types.params import RequestOptions as RequestOptionsParams

if TYPE_CHECKING:
    from .._dispatch import Exchange
    from ..storage import Storage


class Sender(Protocol):
    """What resources send through: a pool, or a view of one backend of it."""

    @property
    def raise_on_content_filter(self) -> bool:
        """Whether a content-filtered answer raises."""

    async def send(self, request: APIRequest) -> Reply:
        """Send a non-streamed request; return its reply."""

    async def open_stream(self, request: APIRequest) -> Exchange:
        """Send a streamed request; return its exchange."""

    @property
    def storage(self) -> Storage:
        """The pool's object storage (stores cached per bucket)."""

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, object]], name: str) -> None:
        """Run *fn* in the pool's task group (work that belongs to the pool's lifetime)."""


__all__ = ["Resource"]

ModelT = TypeVar("ModelT", bound=APIObject)
StreamT = TypeVar("StreamT", bound=AsyncStream[Any])


class _Keys:
    """Idempotency keys: a random prefix per process and a counter (a ``uuid4`` per request
    costs a system call and more than the rest of building the request). A forked child
    draws a new prefix, so that parent and child never share keys."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = f"anyoai-retry-{uuid.uuid4()}-"
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter)}"


_KEYS = _Keys()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_KEYS.reseed)


def _idempotency_key() -> str:
    return _KEYS.next()


def _stream_flag(stream: bool | NotGiven) -> bool | None:
    if isinstance(stream, NotGiven):
        return None
    if not isinstance(stream, bool):
        raise InvalidParameterError(
            f"parameter 'stream' must be true or false, got {stream!r}", param="stream"
        )
    return stream


def parse_reply(reply: Reply, cls: type[ModelT]) -> ModelT:
    """Structure a reply's JSON body into *cls*, attach the exchange's metadata, and settle the
    rate limiter with the real token usage when the body reports it."""
    model, raw = structure(reply.body, cls)
    usage = getattr(model, "usage", None)
    if usage is not None:
        reply.settle(usage.total_tokens)
    model._attach(
        ResponseMeta(
            raw=raw,
            headers=reply.headers,
            status_code=reply.status,
            request_id=reply.request_id,
            backend=reply.backend,
            attempts=reply.attempts,
            elapsed=reply.elapsed,
            http_version=reply.http_version,
        )
    )
    if usage is not None and reply.report is not None:
        reply.report(model)  # after _attach: pool.usage reads the backend from the metadata
    return model


class Resource:
    """A family of API methods bound to a pool."""

    __slots__ = ("_pool",)

    def __init__(self, pool: Sender) -> None:
        self._pool = pool

    def _request(
        self,
        method: str,
        path: str,
        options: RequestOptions,
        *,
        body: dict[str, Any] | None = None,
        stream: bool = False,
        deployment_scoped: bool = False,
    ) -> APIRequest:
        if options.extra_body:
            body = {**(body or {}), **options.extra_body}
        model = body.get("model") if body else None
        return APIRequest(
            method=method,
            path=path,
            body=encode_json(body) if body is not None else None,
            payload=body,
            query=options.extra_query,
            headers=options.extra_headers,
            model=model if isinstance(model, str) else None,
            deployment_scoped=deployment_scoped,
            stream=stream,
            idempotency_key=_idempotency_key() if method == "POST" else None,
            timeout=options.timeout,
            max_retries=options.max_retries,
        )

    async def _call(self, request: APIRequest, cls: type[ModelT]) -> ModelT:
        return parse_reply(await self._pool.send(request), cls)

    async def _create(
        self,
        path: str,
        body: dict[str, Any],
        options: RequestOptions,
        cls: type[ModelT],
        *,
        stream: bool | NotGiven,
        stream_cls: type[StreamT],
    ) -> ModelT | StreamT:
        """POST a create call; return the model, or the stream when ``stream=True``."""
        flag = _stream_flag(stream)
        if flag is not None:
            body["stream"] = flag
        request = self._request(
            "POST", path, options, body=body, stream=bool(flag), deployment_scoped=True
        )
        if not flag:
            return await self._call(request, cls)
        exchange = await self._pool.open_stream(request)
        return stream_cls(
            exchange,
            model=request.model,
            raise_on_content_filter=self._pool.raise_on_content_filter,
        )


def quote_id(name: str, value: Any) -> str:
    """Check a path parameter (a model or file id) and escape it for the URL."""
    import urllib.parse

    if not isinstance(value, str) or not value:
        raise InvalidParameterError(f"{name} must be a non-empty string, got {value!r}", param=name)
    return urllib.parse.quote(value, safe="")


_OPTIONS_SPEC = ParamSpec.compile("request options", RequestOptionsParams)


def options_from(endpoint: str, params: Mapping[str, Any]) -> RequestOptions:
    """Check the request options of a method that takes no body parameters."""
    try:
        _, options = _OPTIONS_SPEC.split(params)
    except InvalidParameterError as exc:
        raise InvalidParameterError(
            str(exc).replace("request options", endpoint, 1), param=exc.param
        ) from None
    return options
