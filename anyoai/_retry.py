r"""The retry policy: what is retried, how long to wait, when to give up. Built on tenacity.

**What is retried.** Connection errors and timeouts; the statuses 408, 409, 429 and 5xx. Never
400, 401, 403, 404 or 422, and never a 429 whose code is ``insufficient_quota`` (waiting will not
refill a quota). A response header ``x-should-retry: true`` or ``false`` overrides the decision.

**How long to wait** before retry *n* (n = 1, 2, ...):

.. math::

    wait_n = \begin{cases}
      \text{retry-after-ms} / 1000 & \text{if the server sent it} \\
      \text{Retry-After} & \text{(seconds, or an HTTP date) if the server sent it} \\
      U(0,\ \min(\text{max\_backoff},\ \text{initial\_backoff} \cdot 2^{n-1})) & \text{otherwise}
    \end{cases}

The last line is "full jitter" exponential backoff: a uniform random wait in a window that
doubles with each retry, capped at ``max_backoff``. A server-given wait above
``max_retry_after`` is not waited for: the error is raised at once, carrying the value in
``exc.retry_after``.

**When to give up.** After ``max_retries`` retries (so ``max_retries + 1`` attempts), or when the
next wait would end after ``deadline`` seconds from the first attempt.

The first attempt runs without any tenacity machinery; tenacity takes over only after a
retryable failure, so the cost of a policy on a successful call is nil. For tests,
:func:`set_testing` makes every wait instant.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import anyio
import anyio.lowlevel
import attrs

from ._errors import APIConnectionError, APIError, APIStatusError
from ._waits import instant, set_testing

__all__ = ["RetryPolicy", "parse_retry_after", "set_testing"]

logger = logging.getLogger("anyoai")

T = TypeVar("T")

_NEVER_RETRIED = frozenset({400, 401, 403, 404, 422})
_RETRIED = frozenset({408, 409, 429})


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The wait a response asks for, in seconds: ``retry-after-ms``, then ``Retry-After``.

    ``Retry-After`` may be a number of seconds or an HTTP date. Unparseable or negative values
    are ignored (``None``).
    """
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            ms = float(value)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return ms / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - (time.time() if now is None else now)
        seconds = max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How failed requests are retried. Keyword-only, with the official SDK's defaults.

    :param max_retries: retries after the first attempt (default 2, as the official SDK).
    :param initial_backoff: the first backoff window, in seconds.
    :param max_backoff: the cap of the backoff window, in seconds.
    :param max_retry_after: the longest server-requested wait that is honoured; above it the
        error is raised at once.
    :param deadline: give up when the next wait would end later than this many seconds after
        the first attempt (``None``: no deadline).
    """

    max_retries: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    initial_backoff: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    max_backoff: float = attrs.field(default=8.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    deadline: float | None = None

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether *exc* is worth another attempt under this policy."""
        if isinstance(exc, APIStatusError):
            override = exc.headers.get("x-should-retry")
            if override == "true":
                return self._within_ceiling(exc)
            if override == "false":
                return False
            status = exc.status_code
            if status in _NEVER_RETRIED:
                return False
            if status == 429 and exc.code == "insufficient_quota":
                return False
            if status in _RETRIED or status >= 500:
                return self._within_ceiling(exc)
            return False
        return isinstance(exc, APIConnectionError)

    def _within_ceiling(self, exc: APIStatusError) -> bool:
        return exc.retry_after is None or exc.retry_after <= self.max_retry_after

    def backoff(self, retry: int) -> float:
        """The upper end of the jittered backoff window before retry number *retry* (1-based)."""
        return min(self.max_backoff, self.initial_backoff * 2.0 ** (retry - 1))

    def wait_for(self, exc: BaseException, retry: int) -> float:
        """How long to wait before retry number *retry* after *exc*."""
        import random

        server_wait = getattr(exc, "retry_after", None) if isinstance(exc, APIError) else None
        if isinstance(server_wait, (int, float)):
            return float(server_wait)
        return random.uniform(0, self.backoff(retry))

    async def call(
        self,
        attempt: Callable[[int], Awaitable[T]],
        *,
        max_retries: int | None = None,
        on_retry: Callable[[BaseException, int, float], None] | None = None,
        adjust_wait: Callable[[BaseException, float], float] | None = None,
    ) -> T:
        """Run ``attempt(n)`` for n = 1, 2, ... until it succeeds or the policy gives up.

        :param attempt: makes one attempt; gets the attempt number (1-based).
        :param max_retries: overrides the policy's for this call.
        :param on_retry: told ``(exception, attempt_number, wait)`` before each wait.
        :param adjust_wait: may change a planned wait (the pool sends a retry to another
            backend at once when one is available).
        :raises: the last attempt's exception when giving up.
        """
        retries = self.max_retries if max_retries is None else max_retries
        try:
            return await attempt(1)
        except APIError as exc:
            if retries == 0 or not self.is_retryable(exc):
                raise
            first: APIError = exc
        return await self._retry_loop(attempt, first, retries, on_retry, adjust_wait)

    async def _retry_loop(
        self,
        attempt: Callable[[int], Awaitable[T]],
        first: BaseException,
        retries: int,
        on_retry: Callable[[BaseException, int, float], None] | None,
        adjust_wait: Callable[[BaseException, float], float] | None,
    ) -> T:
        import tenacity

        pending: list[BaseException] = [first]
        plans: dict[int, float] = {}  # attempt number -> the wait planned after it
        started = time.monotonic()
        skipped: list[float] = [0.0]  # waits not slept under set_testing(True), still counted

        def plan(state: tenacity.RetryCallState) -> float:
            # tenacity versions differ on whether wait() or stop() is asked first: both ask here
            number = state.attempt_number
            if number not in plans:
                assert state.outcome is not None
                exc = state.outcome.exception()
                assert exc is not None
                seconds = self.wait_for(exc, number)
                plans[number] = adjust_wait(exc, seconds) if adjust_wait else seconds
            return plans[number]

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number > retries:
                return True
            seconds = plan(state)
            spent = time.monotonic() - started + skipped[0]
            if self.deadline is not None and spent + seconds > self.deadline:
                return True  # the wait would end after the deadline: give up now
            assert state.outcome is not None
            exc = state.outcome.exception()
            assert exc is not None
            if on_retry is not None:
                on_retry(exc, state.attempt_number, seconds)
            logger.info(
                "retrying after %s (attempt %d of %d) in %.3fs",
                type(exc).__name__,
                state.attempt_number,
                retries + 1,
                seconds,
            )
            return False

        async def sleep(seconds: float) -> None:
            if instant():
                skipped[0] += seconds
                await anyio.lowlevel.checkpoint()
            else:
                await anyio.sleep(seconds)

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(self.is_retryable),
            stop=stop,
            wait=plan,
            sleep=sleep,
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                if pending:
                    raise pending.pop()  # the first attempt, already made outside tenacity
                return await attempt(try_.retry_state.attempt_number)
        raise AssertionError("unreachable")  # pragma: no cover
