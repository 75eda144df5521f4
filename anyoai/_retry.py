r"""The retry policy: what is retried, how long to wait, when to give up. Built on tenacity.

**What is retried.** Connection errors and timeouts (not :class:`AllBackendsDownError`: the
pool waits for a backend within the call's deadline before raising it); the statuses 408, 409,
429 and 5xx. Never 400, 401, 403, 404 or 422, and never a 429 whose code is
``insufficient_quota`` (waiting will not refill a quota). A response header
``x-should-retry: true`` or ``false`` overrides the decision.

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

The loop is plain: tenacity provides the jittered backoff (``wait_random_exponential``), the
pool's :class:`~anyoai._clock.Clock` the sleeps and the time the deadline is counted on (an
``InstantClock`` in test suites makes every wait instant), and a successful first attempt costs
nothing more than a ``try``.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import attrs

from ._clock import Clock, SystemClock
from ._exceptions import AllBackendsDownError, APIConnectionError, APIError, APIStatusError

__all__ = ["RetryPolicy", "parse_retry_after"]

logger = logging.getLogger("anyoai")

T = TypeVar("T")

_SYSTEM_CLOCK = SystemClock()
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
        try:
            seconds = email.utils.mktime_tz(parsed) - (time.time() if now is None else now)
        except (ValueError, OverflowError):  # a date out of range ("1 Jan 10000")
            return None
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
        # every backend down: the pool already waited for one as long as the deadline allowed
        return isinstance(exc, APIConnectionError) and not isinstance(exc, AllBackendsDownError)

    def _within_ceiling(self, exc: APIStatusError) -> bool:
        return exc.retry_after is None or exc.retry_after <= self.max_retry_after

    def backoff(self, retry: int) -> float:
        """The upper end of the jittered backoff window before retry number *retry* (1-based)."""
        return min(self.max_backoff, self.initial_backoff * 2.0 ** (retry - 1))

    def wait_for(self, exc: BaseException, retry: int) -> float:
        """How long to wait before retry number *retry* after *exc*: the server's wait if it
        gave one, else tenacity's ``wait_random_exponential`` (full jitter)."""
        server_wait = (
            exc.retry_after if isinstance(exc, (APIStatusError, AllBackendsDownError)) else None
        )
        if server_wait is not None:
            return float(server_wait)
        import tenacity

        jitter = tenacity.wait_random_exponential(
            multiplier=self.initial_backoff, max=self.max_backoff
        )
        state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = retry  # all that tenacity's wait strategies read
        return float(jitter(state))

    async def call(
        self,
        attempt: Callable[[int], Awaitable[T]],
        *,
        max_retries: int | None = None,
        on_retry: Callable[[BaseException, int, float], None] | None = None,
        adjust_wait: Callable[[BaseException, float], float] | None = None,
        clock: Clock | None = None,
    ) -> T:
        """Run ``attempt(n)`` for n = 1, 2, ... until it succeeds or the policy gives up.

        :param attempt: makes one attempt; gets the attempt number (1-based).
        :param max_retries: overrides the policy's for this call.
        :param on_retry: told ``(exception, attempt_number, wait)`` before each wait.
        :param adjust_wait: may change a planned wait (the pool sends a retry to another
            backend at once when one is available).
        :param clock: what the waits and the deadline run on (the pool's clock; real time by
            default).
        :raises: the last attempt's exception when giving up.
        """
        retries = self.max_retries if max_retries is None else max_retries
        clock = clock if clock is not None else _SYSTEM_CLOCK
        started = clock.now() if self.deadline is not None else 0.0
        number = 1
        while True:
            try:
                return await attempt(number)
            except APIError as exc:
                if number > retries or not self.is_retryable(exc):
                    raise
                wait = self.wait_for(exc, number)
                if adjust_wait is not None:
                    wait = adjust_wait(exc, wait)
                if self.deadline is not None and clock.now() - started + wait > self.deadline:
                    raise  # the wait would end after the deadline: give up now
                if on_retry is not None:
                    on_retry(exc, number, wait)
                logger.info(
                    "retrying after %s (attempt %d of %d) in %.3fs",
                    type(exc).__name__,
                    number,
                    retries + 1,
                    wait,
                )
            await clock.sleep(wait)
            number += 1
