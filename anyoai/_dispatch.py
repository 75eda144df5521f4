"""One request, end to end: limits, backend choice, retries, transport, error mapping.

:meth:`Dispatcher.exchange` runs in the caller's task:

1. take a slot of the pool's in-flight limiter (held across retry waits, and by a stream until
   it closes);
2. for each attempt: pick a backend, take a slot of its own in-flight limiter if it has one,
   wait on its rate limiter for one request and the estimated tokens, send over the transport
   under the total timeout, read the body (unless streaming), turn an error status into a typed
   exception, and feed the response's rate-limit headers back to the limiter;
3. between attempts, the :class:`~anyoai.RetryPolicy` decides and waits. A 429 gives its tokens
   back and pauses the rate limiter for its Retry-After.

Everything taken is given back in a ``finally`` (or handed to the stream that owns it), so a
cancellation at any point leaves the limiters, the windows and the transport at rest. Tokens
are refunded when a request never left (cancelled while waiting, or the connection could not
be opened); a request that did leave keeps its estimate until it is settled with real usage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import attrs

from ._backends import Backend
from ._clock import Clock, SystemClock
from ._config import Timeout
from ._errors import error_from_status
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
)
from ._exchange import Exchange
from ._headers import Headers
from ._limits import Governor
from ._ratelimit import RateLimiter, Reservation, pause_hint
from ._request import APIRequest, BodySource
from ._retry import RetryPolicy, parse_retry_after
from ._selection import BackendSelector
from ._usage import UsageTracker

if TYPE_CHECKING:
    from ._transport import Response, Transport

__all__ = ["Dispatcher", "RetryEvent"]

logger = logging.getLogger("anyoai")

#: how long a 429 with neither Retry-After nor x-ratelimit-reset-* pauses its rate limiter
DEFAULT_429_PAUSE = 1.0


@attrs.frozen
class RetryEvent:
    """What ``open_pool(on_retry=...)`` is told before each retry wait.

    :ivar attempt: the attempt that failed (1-based).
    :ivar wait: the seconds the retry will wait.
    :ivar error: the failure.
    :ivar backend: the name of the backend of the failed attempt.
    """

    attempt: int
    wait: float
    error: BaseException
    backend: str | None


@attrs.frozen
class _Answer:
    """What one successful attempt got: the response, its body and what it holds."""

    response: Response
    headers: Headers
    body: bytes | None
    backend: Backend
    reservation: Reservation | None


@attrs.define(kw_only=True, eq=False)
class Dispatcher:
    """Sends :class:`APIRequest` s: see the module docstring for the path each one takes.

    :ivar backends: the pool's backends, their selection and health.
    :ivar transport: the connections.
    :ivar retry: the retry policy of every request (a call may override its count).
    :ivar governor: the in-flight limiters and the rate limiters.
    :ivar timeout: the pool's timeouts (a backend's or a call's own come first).
    :ivar on_retry: told of each retry before its wait.
    :ivar usage: ``pool.usage``.
    :ivar clock: what retry waits run on (the pool's clock).
    """

    backends: BackendSelector
    transport: Transport
    retry: RetryPolicy
    governor: Governor
    timeout: Timeout
    on_retry: Callable[[RetryEvent], object] | None = None
    usage: UsageTracker = attrs.field(factory=UsageTracker)
    clock: Clock = attrs.field(factory=SystemClock)

    async def exchange(self, request: APIRequest, *, only: str | None = None) -> Exchange:
        """Send *request* (with retries); return the successful exchange.

        For a stream the body is left unread, and the caller must call :meth:`Exchange.finish`
        when the stream ends; otherwise the body is read and the slots are already released.

        :param only: the name of the one backend to use (``pool["name"]``).
        :raises APIError: (a subclass) the last attempt's failure, when the policy gives up.
        :raises InvalidParameterError: when no backend serves the request's model.
        """
        borrower = object()
        pool_limiter = self.governor.pool_limiter
        pool_timeout = (request.timeout or self.timeout).pool
        # a call made in a cancelled or expired scope sends nothing: the fast path below never
        # yields, and trio notices an expired deadline only at a yield
        deadline = anyio.current_effective_deadline()
        if deadline != math.inf and deadline <= anyio.current_time():
            await anyio.lowlevel.checkpoint()
        try:
            pool_limiter.acquire_on_behalf_of_nowait(borrower)  # a free slot: no timeout scope
        except anyio.WouldBlock:
            await self._wait_for_slot(pool_limiter, borrower, pool_timeout)
        held: list[Callable[[], None]] = [lambda: pool_limiter.release_on_behalf_of(borrower)]
        started = time.monotonic()
        # waits of the call's own (for a backend to come back, for the rate limit) end here
        timeout = request.timeout or self.timeout
        budget = [t for t in (timeout.total, timeout.pool) if t is not None]
        wait_deadline = anyio.current_time() + min(budget) if budget else math.inf
        backends: list[Backend] = []
        failed_on: list[str] = []  # backends this request failed on: tried last

        async def attempt(number: int) -> _Answer:
            # waiting for a backend is not an attempt: it spends no retry
            backend = await self.backends.wait_for(
                request.model, only=only, avoid=failed_on, deadline=wait_deadline
            )
            backends.append(backend)
            try:
                return await self._attempt(request, backend, borrower, held, wait_deadline)
            except APIError:
                failed_on.append(backend.name)
                raise

        def failover(error: BaseException, planned: float) -> float:
            # another backend can take the retry right now: do not wait for this one
            failed = getattr(error, "backend", None)
            if failed is not None and self.backends.available_now(
                request.model, only=only, but=failed
            ):
                return 0.0
            return planned

        try:
            answer = await self.retry.call(
                attempt,
                max_retries=request.max_retries,
                on_retry=self._retrying(),
                adjust_wait=failover,
                clock=self.clock,
            )
        except BaseException:
            for release in held:
                release()
            raise
        exchange = Exchange(
            response=answer.response,
            headers=answer.headers,
            body=answer.body,
            backend=answer.backend,
            request=request,
            attempts=len(backends),
            started=started,
            reservation=answer.reservation,
            held=held,
            usage=self.usage,
            count_tokens=self.backends.add_tokens,
        )
        if not request.stream:
            exchange.finish()
        return exchange

    @staticmethod
    async def _wait_for_slot(
        limiter: anyio.CapacityLimiter, borrower: object, timeout: float | None
    ) -> None:
        try:
            with anyio.fail_after(timeout):
                await limiter.acquire_on_behalf_of(borrower)
        except TimeoutError:
            error = APITimeoutError(
                f"no in-flight slot became free within the pool timeout ({timeout}s); "
                f"all {limiter.total_tokens:g} are busy (raise limits.max_in_flight, or "
                "use anyoai.map_concurrent to queue work without a deadline)"
            )
            error.request_sent = False
            raise error from None

    def _retrying(self) -> Callable[[BaseException, int, float], None] | None:
        hook = self.on_retry
        if hook is None:
            return None

        def tell(error: BaseException, attempt: int, wait: float) -> None:
            # the backend that failed, as the error says (None when none was reached)
            failed = error.backend if isinstance(error, APIError) else None
            try:
                hook(RetryEvent(attempt, wait, error, failed))
            except Exception:
                logger.warning("the on_retry hook raised", exc_info=True)

        return tell

    async def _attempt(
        self,
        request: APIRequest,
        backend: Backend,
        borrower: object,
        held: list[Callable[[], None]],
        wait_deadline: float,
    ) -> _Answer:
        own: list[Callable[[], None]] = []
        limiter = self.governor.backend_limiters.get(backend.name)
        if limiter is not None:
            await limiter.acquire_on_behalf_of(borrower)
            own.append(lambda: limiter.release_on_behalf_of(borrower))
        reservation: Reservation | None = None
        sent = False
        started_at: float | None = None
        try:
            rate = self.governor.rate_limiter(backend.name, request.model)
            if rate is not None:
                tokens = 0
                if rate.counts_tokens and request.estimate is not None:
                    tokens = sum(await request.estimate.compute())
                try:
                    reservation = await rate.acquire(tokens, deadline=wait_deadline)
                except TimeoutError:
                    raise self._rate_wait_timeout(request, backend, rate) from None
            if backend.ad_token_provider is not None:
                await backend.prepare()

            def mark_sent() -> None:
                nonlocal sent
                sent = True

            since = self.backends.started(backend)
            started_at = time.monotonic()
            response, body = await self._send(request, backend, mark_sent)
        except BaseException as exc:
            if started_at is not None:
                blame = not self._callers_own_timeout(request, backend, exc)
                self.backends.failed(backend, exc, blame=blame)
                self.backends.finished(backend)
            never_left = not sent or (isinstance(exc, APIConnectionError) and not exc.request_sent)
            if reservation is not None and (never_left or isinstance(exc, RateLimitError)):
                reservation.cancel()  # it never reached the server, or was refused
            if isinstance(exc, RateLimitError):
                self.governor.pause(backend.name, request.model, self._pause_for(exc))
            if isinstance(exc, APIStatusError):
                self.governor.observe(backend.name, request.model, exc.headers)
            for release in own:
                release()
            raise
        self.backends.succeeded(backend, time.monotonic() - started_at, since)
        headers = Headers(response.headers)
        self.governor.observe(backend.name, request.model, headers)
        held.extend(own)
        backends = self.backends
        held.append(lambda: backends.finished(backend))
        return _Answer(response, headers, body, backend, reservation)

    def _pause_for(self, exc: RateLimitError) -> float:
        """How long a 429 holds back its rate limiter: its Retry-After (0 means 0), else until
        the exhausted limit resets, else a second; never longer than the retry policy's
        ``max_retry_after`` (a hostile Retry-After must not stall the pool)."""
        pause = exc.retry_after
        if pause is None:
            pause = pause_hint(exc.headers)
        if pause is None:
            pause = DEFAULT_429_PAUSE
        return min(pause, self.retry.max_retry_after)

    @staticmethod
    def _rate_wait_timeout(
        request: APIRequest, backend: Backend, rate: RateLimiter
    ) -> APITimeoutError:
        stats = rate.statistics()
        why = f"paused {stats.paused_for:.1f}s more after a 429" if stats.paused_for else "full"
        error = APITimeoutError(
            f"the call's timeout ran out waiting for the rate limit of backend "
            f"{backend.name!r} (model {request.model!r}; the limiter is {why}): nothing was sent",
            backend=backend.name,
        )
        error.request_sent = False
        return error

    def _callers_own_timeout(
        self, request: APIRequest, backend: Backend, exc: BaseException
    ) -> bool:
        """Whether *exc* is a timeout the caller chose for this call, tighter than the pool's
        and than twice the backend's usual latency: it says nothing about the backend."""
        if not isinstance(exc, APITimeoutError) or request.timeout is None:
            return False
        own = request.timeout.total
        pools = (backend.timeout or self.timeout).total
        if own is None or (pools is not None and own >= pools):
            return False
        latency = self.backends.latency(backend)
        return latency is None or own < 2 * latency

    async def _send(
        self, request: APIRequest, backend: Backend, mark_sent: Callable[[], None]
    ) -> tuple[Response, bytes | None]:
        """One HTTP exchange with *backend*: the 2xx response (body read unless streaming)."""
        timeout = request.timeout or backend.timeout or self.timeout
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> backend %r", request.method, request.path, backend.name)
        # a bare scope, not fail_after (two generator layers more, on every request)
        total = timeout.total
        scope = anyio.CancelScope(
            deadline=anyio.current_time() + total if total is not None else math.inf
        )
        try:
            with scope:
                response = await self.transport.send(
                    request.method.encode(),
                    backend.origin,
                    backend.target(request),
                    backend.request_headers(request),
                    request.body.open if isinstance(request.body, BodySource) else request.body,
                    timeout,
                    on_send=mark_sent,
                )
                if response.status < 400 and request.stream:
                    return response, None
                body = await response.aread()
            if scope.cancelled_caught:
                raise APITimeoutError(
                    f"request timed out after {total}s (total timeout) on backend {backend.name!r}",
                    backend=backend.name,
                )
        except APIError as exc:
            if exc.backend is None:
                exc.backend = backend.name
            raise
        if response.status < 400:
            return response, body
        headers = Headers(response.headers)
        raise error_from_status(
            response.status,
            body,
            headers,
            backend=backend.name,
            secrets=backend.secrets(),
            retry_after=parse_retry_after(headers),
        )
