"""What every resource shares: checked parameters into an APIRequest, a reply into a model."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._exceptions import InvalidParameterError
from .._keys import next_key
from .._model import APIObject, NotGiven
from .._params import ParamSpec
from .._request import APIRequest, CallOptions
from .._serde import encode_json, structure
from .._streaming import AsyncStream
from .._tokens import Estimator, TokenEstimate
from ..types.params import RequestOptions

if TYPE_CHECKING:
    from .._clock import Clock
    from .._exchange import Exchange
    from ..storage import Storage


class Sender(Protocol):
    """What resources send through: a pool, or a view of one backend of it."""

    @property
    def raise_on_content_filter(self) -> bool:
        """Whether a content-filtered answer raises."""

    @property
    def max_event_bytes(self) -> int:
        """The longest server-sent event a stream accepts."""

    async def send(self, request: APIRequest) -> Exchange:
        """Send a request; return its exchange (the body read, unless it streams)."""

    @property
    def storage(self) -> Storage:
        """The pool's object storage (stores cached per bucket)."""

    @property
    def clock(self) -> Clock:
        """What the pool's own waits (retries, pauses, polls) run on."""

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, object]], name: str) -> None:
        """Run *fn* in the pool's task group (work that belongs to the pool's lifetime)."""


__all__ = ["Resource"]

ModelT = TypeVar("ModelT", bound=APIObject)
StreamT = TypeVar("StreamT", bound=AsyncStream[Any])


def _stream_flag(stream: bool | NotGiven) -> bool | None:
    if isinstance(stream, NotGiven):
        return None
    if not isinstance(stream, bool):
        raise InvalidParameterError(
            f"parameter 'stream' must be true or false, got {stream!r}", param="stream"
        )
    return stream


class Resource:
    """A family of API methods bound to a pool."""

    __slots__ = ("_client",)

    def __init__(self, client: Sender) -> None:
        self._client = client

    def _request(
        self,
        method: str,
        path: str,
        options: CallOptions,
        *,
        body: dict[str, Any] | None = None,
        stream: bool = False,
        deployment_scoped: bool = False,
        estimator: Estimator | None = None,
    ) -> APIRequest:
        """The request for a call: *body* (with ``extra_body`` merged) encoded once; with an
        *estimator*, the request carries its token cost, estimated if a token limit asks."""
        if options.extra_body:
            body = {**(body or {}), **options.extra_body}
        model = body.get("model") if body else None
        return APIRequest(
            method=method,
            path=path,
            body=encode_json(body) if body is not None else None,
            estimate=TokenEstimate(estimator, body) if estimator and body is not None else None,
            query=options.extra_query,
            headers=options.extra_headers,
            model=model if isinstance(model, str) else None,
            deployment_scoped=deployment_scoped,
            stream=stream,
            idempotency_key=next_key() if method == "POST" else None,
            timeout=options.timeout,
            max_retries=options.max_retries,
        )

    async def _call(self, request: APIRequest, cls: type[ModelT]) -> ModelT:
        """Send a non-streamed request; its body structured into *cls*, completed by the
        exchange (metadata, token settlement, ``pool.usage``)."""
        exchange = await self._client.send(request)
        assert exchange.body is not None
        model, raw = structure(exchange.body, cls)
        return exchange.complete(model, raw)

    async def _create(
        self,
        path: str,
        body: dict[str, Any],
        options: CallOptions,
        cls: type[ModelT],
        *,
        stream: bool | NotGiven,
        stream_cls: type[StreamT],
        estimator: Estimator | None = None,
    ) -> ModelT | StreamT:
        """POST a create call; return the model, or the stream when ``stream=True``."""
        flag = _stream_flag(stream)
        if flag is not None:
            body["stream"] = flag
        request = self._request(
            "POST",
            path,
            options,
            body=body,
            stream=bool(flag),
            deployment_scoped=True,
            estimator=estimator,
        )
        if not flag:
            return await self._call(request, cls)
        exchange = await self._client.send(request)
        return stream_cls(
            exchange,
            model=request.model,
            raise_on_content_filter=self._client.raise_on_content_filter,
            max_event_bytes=self._client.max_event_bytes,
        )


def quote_id(name: str, value: Any) -> str:
    """Check a path parameter (a model or file id) and escape it for the URL."""
    import urllib.parse

    if not isinstance(value, str) or not value:
        raise InvalidParameterError(f"{name} must be a non-empty string, got {value!r}", param=name)
    return urllib.parse.quote(value, safe="")


_OPTIONS_SPEC = ParamSpec.compile("request options", RequestOptions)


def options_from(endpoint: str, params: Mapping[str, Any]) -> CallOptions:
    """Check the request options of a method that takes no body parameters."""
    try:
        _, options = _OPTIONS_SPEC.split(params)
    except InvalidParameterError as exc:
        raise InvalidParameterError(
            str(exc).replace("request options", endpoint, 1), param=exc.param
        ) from None
    return options
