"""Exchange: a request that succeeded, and the one way its result comes back.

The dispatcher returns an :class:`Exchange` for every successful request, streamed or not. A
resource structures the body into a model and calls :meth:`Exchange.complete`, which attaches
the metadata (built here and nowhere else), settles the rate limiter with the real token usage
and counts the result in ``pool.usage``. A stream calls the same method when it ends. Whatever
the exchange still holds (in-flight slots, a backend's in-flight count) is released by
:meth:`Exchange.finish`, at once for a body read whole, when the stream closes otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._headers import Headers
from ._model import APIObject, Metered, ResponseMeta

if TYPE_CHECKING:
    from ._backends import Backend
    from ._ratelimit import Reservation
    from ._request import APIRequest
    from ._transport import Response
    from ._usage import UsageTracker

__all__ = ["Exchange"]

ResultT = TypeVar("ResultT", bound=APIObject)


@attrs.define(eq=False, kw_only=True)
class Exchange:
    """A request that succeeded: its response, and what it holds until :meth:`finish`.

    :ivar response: the response; its body is read (:attr:`body`) unless the request streams.
    :ivar headers: the response's headers, decoded once.
    :ivar body: the whole body of a non-streamed response; ``None`` for a stream.
    :ivar backend: the backend that answered.
    :ivar request: the request.
    :ivar attempts: how many attempts it took (1 when the first succeeded).
    :ivar started: when the first attempt started (``time.monotonic()``).
    """

    response: Response
    headers: Headers
    body: bytes | None
    backend: Backend
    request: APIRequest
    attempts: int
    started: float
    reservation: Reservation | None
    held: list[Callable[[], None]]
    usage: UsageTracker
    #: adds the real tokens to the backend's statistics
    count_tokens: Callable[[Backend, int], None]
    #: when the exchange was made: the end of the body, or a stream's response head
    ended: float = attrs.field(init=False, factory=time.monotonic)
    _meta: ResponseMeta | None = attrs.field(init=False, default=None)
    _settled: bool = False
    _recorded: bool = False

    def _build_meta(self, raw: Any, estimated_usage: Any) -> ResponseMeta:
        headers = self.headers
        return ResponseMeta(
            raw=raw,
            headers=headers,
            status_code=self.response.status,
            request_id=headers.get("x-request-id") or headers.get("apim-request-id"),
            backend=self.backend.name,
            attempts=self.attempts,
            elapsed=self.ended - self.started,
            http_version=self.response.http_version.decode("ascii"),
            estimated_usage=estimated_usage,
        )

    @property
    def meta(self) -> ResponseMeta:
        """The metadata every result of this exchange carries (``elapsed`` runs to the end of
        the body, or to a stream's response head), built once."""
        if self._meta is None:
            self._meta = self._build_meta(None, None)
        return self._meta

    @property
    def prompt_tokens(self) -> int | None:
        """The prompt tokens estimated before sending, when a token limit asked for them."""
        estimate = self.request.estimate
        return estimate.prompt if estimate is not None else None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The backend's secrets, to keep out of error messages."""
        return self.backend.secrets()

    def complete(self, result: ResultT, raw: Any = None, *, estimated_usage: Any = None) -> ResultT:
        """Finish *result*: attach the metadata (with the decoded body *raw*, and the usage
        estimated for a stream that reported none); for a :class:`Metered` result, settle the
        rate limiter with its real usage and count it in ``pool.usage``. Returns *result*.

        Only the first call settles and counts.
        """
        if self._meta is None:  # a body read whole: built once, with its raw JSON
            meta = self._meta = self._build_meta(raw, estimated_usage)
        elif raw is not None or estimated_usage is not None:
            meta = attrs.evolve(self._meta, raw=raw, estimated_usage=estimated_usage)
        else:
            meta = self._meta
        result._attach(meta)
        if not isinstance(result, Metered):
            return result
        usage = result.usage
        if usage is not None:
            self.settle(usage.total_tokens)
        if (usage is not None or estimated_usage is not None) and not self._recorded:
            self._recorded = True
            self.usage.record(result)  # after _attach: it reads the backend from the metadata
        return result

    def settle(self, actual_tokens: int) -> None:
        """Charge the real token usage: to the rate limiter (instead of the estimate) and to
        the backend's statistics. Only the first call counts."""
        if self._settled:
            return
        self._settled = True
        if self.reservation is not None:
            self.reservation.settle(actual_tokens)
        self.count_tokens(self.backend, actual_tokens)

    def finish(self, actual_tokens: int | None = None) -> None:
        """Settle the tokens (when the real usage is known) and release what the exchange
        holds. Idempotent: a second call does nothing."""
        if actual_tokens is not None:
            self.settle(actual_tokens)
        held, self.held = self.held, []
        for release in held:
            release()
