"""Requests and tokens per minute: :class:`RateLimiter`, two sliding windows per key.

A sliding window admits a request only if the amounts recorded in the last ``period`` seconds
(60) plus the new one stay within the limit, so **no window of 60 s ever holds more than the
limit**. (Entries are kept 2% longer than the period, so that network jitter between the
client's clock and the server's cannot push a burst at the window's edge over the limit.)
Waiters are served first come, first served; only the head of the queue waits for the clock,
the others wait their turn, so nothing stampedes. Token amounts are estimates when a
request leaves (prompt plus ``max_tokens`` times ``n``); :meth:`Reservation.settle` replaces
the estimate with the real usage, refunding an over-estimate; :meth:`Reservation.cancel`
returns everything when the request never reached the server or was refused with a 429.

The server's ``x-ratelimit-*`` headers adapt the windows: limits the user did not set are
learned from ``x-ratelimit-limit-*``, and when ``x-ratelimit-remaining-*`` shows less room than
the window thinks (other clients share the key), the difference is recorded as used
(:meth:`RateLimiter.observe`; :func:`pause_hint`, :func:`parse_duration` and
:func:`has_rate_headers` read those headers).

A 429 pauses the limiter for its Retry-After, so waiting callers hold back instead of piling
in. The windows run on real time (the event loop's clock, or the ``clock`` a test passes); the
pause runs on the injected :class:`~anyoai._clock.Clock` (``pause_clock``), the clock of
anyoai's own waits: real time by default, and instant in test suites that ask for it.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final

import anyio
import attrs

from ._clock import Clock, SystemClock

__all__ = [
    "JITTER_MARGIN",
    "SYSTEM_CLOCK",
    "RateLimiter",
    "RateLimiterStatistics",
    "Reservation",
    "TimeSource",
    "has_rate_headers",
    "parse_duration",
    "pause_hint",
]

#: what the sliding windows read the time from (monotonic seconds)
TimeSource = Callable[[], float]

#: the pause clock when none is given: real time
SYSTEM_CLOCK: Final[Clock] = SystemClock()

_NOT_PAUSED: Final = -math.inf


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str) -> float | None:
    """Seconds in OpenAI's duration format (``"6m0s"``, ``"1.5s"``, ``"20ms"``, ``"1h2m"``).

    A bare number is seconds (Azure sends ``"7"``). ``None`` when unreadable.
    """
    text = text.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    total = 0.0
    position = 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            return None
        value, unit = float(match.group(1)), match.group(2)
        total += value * {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}[unit]
        position = match.end()
    return total if position == len(text) and position else None


#: entries stay in a window this much longer than its period (a fraction of it), so that the
#: jitter between the client's send times and the server's arrival times cannot push a burst
#: at the edge of the window over the server's limit
JITTER_MARGIN = 0.02


class _Window:
    """Amounts recorded in the last ``period`` seconds, against an optional limit."""

    __slots__ = ("entries", "limit", "period", "used")

    def __init__(self, limit: float | None, period: float) -> None:
        self.limit = limit
        self.period = period
        self.entries: deque[list[float]] = deque()  # [time, amount]
        self.used = 0.0

    def expire(self, now: float) -> None:
        horizon = now - self.period
        entries = self.entries
        while entries and entries[0][0] <= horizon:
            self.used -= entries.popleft()[1]
        if not entries:
            self.used = 0.0  # no drift from float sums

    def ready_at(self, amount: float, now: float) -> float:
        """The earliest time *amount* fits (``now`` if it fits now)."""
        self.expire(now)
        limit = self.limit
        if limit is None or self.used + amount <= limit:
            return now
        need = self.used + amount - limit
        freed = 0.0
        for when, size in self.entries:
            freed += size
            if freed >= need:
                return when + self.period
        return self.entries[-1][0] + self.period if self.entries else now

    def add(self, now: float, amount: float) -> list[float]:
        entry = [now, amount]
        self.entries.append(entry)
        self.used += amount
        return entry

    def add_expiring(self, now: float, amount: float, expires_in: float) -> None:
        """Record *amount* as used, leaving the window *expires_in* seconds from *now*."""
        when = now - self.period + min(max(expires_in, 0.0), self.period)
        if when <= now - self.period:
            return  # it would already have left the window
        entries = self.entries
        if not entries or when >= entries[-1][0]:
            entries.append([when, amount])
        else:  # rare (phantom usage): keep the entries sorted by time
            index = bisect.bisect_right([e[0] for e in entries], when)
            entries.insert(index, [when, amount])
        self.used += amount

    def adjust(self, entry: list[float], amount: float) -> None:
        """Change a recorded amount (if it is still in the window)."""
        if self.entries and entry[0] >= self.entries[0][0]:
            self.used += amount - entry[1]
            entry[1] = amount

    def in_window(self, now: float) -> float:
        self.expire(now)
        return self.used


@attrs.frozen
class RateLimiterStatistics:
    """A snapshot of one :class:`RateLimiter`.

    :ivar rpm: the requests-per-minute limit (``None``: none known).
    :ivar tpm: the tokens-per-minute limit.
    :ivar requests: requests recorded in the current window.
    :ivar tokens: tokens recorded in the current window.
    :ivar waiting: callers waiting for room.
    :ivar paused_for: seconds left of a pause after a 429 (0 when not paused).
    :ivar learned: whether the limits came from the server's headers.
    """

    rpm: float | None
    tpm: float | None
    requests: float
    tokens: float
    waiting: int
    paused_for: float
    learned: bool


class Reservation:
    """What one attempt took from a :class:`RateLimiter`: one request and some tokens."""

    __slots__ = ("_done", "_limiter", "_request", "_tokens")

    def __init__(self, limiter: RateLimiter, request: list[float], tokens: list[float]) -> None:
        self._limiter = limiter
        self._request = request
        self._tokens = tokens
        self._done = False

    @property
    def tokens(self) -> float:
        """The tokens currently charged for this attempt."""
        return self._tokens[1]

    def settle(self, actual_tokens: int) -> None:
        """Replace the estimate with the real token usage (refunding or charging the difference)."""
        if self._done:
            return
        self._done = True
        self._limiter._adjust_tokens(self._tokens, float(actual_tokens))

    def cancel(self) -> None:
        """Give everything back: the request never reached the server, or it was refused."""
        if self._done:
            return
        self._done = True
        self._limiter._refund(self._request, self._tokens)


class _Waiter:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = anyio.Event()


class RateLimiter:
    """Requests and tokens per minute for one key, as two sliding windows (see the module doc).

    :param rpm: requests per period, or ``None``.
    :param tpm: tokens per period, or ``None``.
    :param period: the window, in seconds (60: limits are per minute).
    :param learned: whether the limits are to be taken from the server's headers.
    :param clock: the time source of the sliding windows (anyio's clock by default; tests may
        pass their own).
    :param pause_clock: the clock a pause after a 429 is measured and waited on (real time by
        default; with an :class:`~anyoai._clock.InstantClock` a pause ends at once).
    """

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        period: float = 60.0,
        learned: bool = False,
        clock: TimeSource = anyio.current_time,
        pause_clock: Clock = SYSTEM_CLOCK,
        name: str = "",
    ) -> None:
        self.name = name
        self.learned = learned
        self._clock = clock
        self._pause_clock = pause_clock
        kept = period * (1 + JITTER_MARGIN)
        self._requests = _Window(rpm, kept)
        self._tokens = _Window(tpm, kept)
        self._paused_until = _NOT_PAUSED  # on the pause clock
        self._waiters: deque[_Waiter] = deque()

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<RateLimiter {self.name!r} rpm={stats.rpm} tpm={stats.tpm} "
            f"requests={stats.requests:g} tokens={stats.tokens:g} waiting={stats.waiting}>"
        )

    @property
    def rpm(self) -> float | None:
        """The requests-per-minute limit."""
        return self._requests.limit

    @property
    def tpm(self) -> float | None:
        """The tokens-per-minute limit."""
        return self._tokens.limit

    @property
    def counts_tokens(self) -> bool:
        """Whether requests need a token estimate (there is a token limit)."""
        return self._tokens.limit is not None

    def set_limits(self, *, rpm: int | None = None, tpm: int | None = None) -> None:
        """Change the limits at runtime; waiters re-check at once."""
        self._requests.limit = rpm
        self._tokens.limit = tpm
        self._wake_head()

    def statistics(self) -> RateLimiterStatistics:
        """A snapshot of the windows and the queue."""
        now = self._clock()
        return RateLimiterStatistics(
            rpm=self._requests.limit,
            tpm=self._tokens.limit,
            requests=self._requests.in_window(now),
            tokens=self._tokens.in_window(now),
            waiting=len(self._waiters),
            paused_for=self._pause_left(),
            learned=self.learned,
        )

    # -- acquiring -------------------------------------------------------------------------

    def _ready_at(self, tokens: float, now: float) -> float:
        """When the windows have room for one request of *tokens* (on the window clock)."""
        return max(self._requests.ready_at(1, now), self._tokens.ready_at(tokens, now))

    def _pause_left(self) -> float:
        """Seconds left of a pause after a 429, on the pause clock (0 when not paused)."""
        until = self._paused_until
        if until == _NOT_PAUSED:
            return 0.0
        left = until - self._pause_clock.now()
        if left > 0:
            return left
        self._paused_until = _NOT_PAUSED  # over: the fast path need not read the clock again
        return 0.0

    def _clamp(self, tokens: float) -> float:
        # a request bigger than the whole limit could never fit: let it go when the window is
        # empty (the server will say whether it is too large)
        limit = self._tokens.limit
        return min(tokens, limit) if limit is not None else tokens

    def _record(self, tokens: float, now: float) -> Reservation:
        return Reservation(self, self._requests.add(now, 1), self._tokens.add(now, tokens))

    async def acquire(self, tokens: int = 0, *, deadline: float = math.inf) -> Reservation:
        """Wait for room for one request of *tokens* tokens, then record it.

        Cancellation while waiting leaves nothing recorded.

        :param deadline: give up at this time (``anyio.current_time()`` clock): the caller's
            timeout counts the wait.
        :raises TimeoutError: when *deadline* passes first (nothing recorded).
        """
        amount = self._clamp(float(tokens))
        now = self._clock()
        if (
            not self._waiters
            and (self._paused_until == _NOT_PAUSED or not self._pause_left())
            and self._ready_at(amount, now) <= now
        ):
            return self._record(amount, now)
        with anyio.fail_after(deadline - anyio.current_time() if deadline != math.inf else None):
            return await self._wait_and_record(tokens)

    async def _wait_and_record(self, tokens: int) -> Reservation:
        waiter = _Waiter()
        self._waiters.append(waiter)
        try:
            while True:
                if self._waiters[0] is not waiter:
                    await waiter.event.wait()  # our turn comes when the one before us is served
                elif (paused := self._pause_left()) > 0:
                    # a pause is waited out on its own clock, then everything is looked at
                    # again (a longer pause set meanwhile is honoured the same way)
                    await self._pause_clock.sleep(paused)
                else:
                    now = self._clock()
                    ready = self._ready_at(self._clamp(float(tokens)), now)
                    if ready <= now:
                        self._waiters.popleft()
                        reservation = self._record(self._clamp(float(tokens)), now)
                        self._wake_head()
                        return reservation
                    # until the windows have room, or a refund or a limit change wakes us
                    with anyio.move_on_after(ready - now):
                        await waiter.event.wait()
                waiter.event = anyio.Event()
        except BaseException:
            was_head = bool(self._waiters) and self._waiters[0] is waiter
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if was_head:
                self._wake_head()
            raise

    def _wake_head(self) -> None:
        if self._waiters:
            self._waiters[0].event.set()

    def recheck(self) -> None:
        """Make the first waiter look at the clock again (after a clock change, in tests)."""
        self._wake_head()

    # -- settling and adapting ---------------------------------------------------------------

    def _adjust_tokens(self, entry: list[float], amount: float) -> None:
        previous = entry[1]
        self._tokens.adjust(entry, amount)
        if amount < previous:
            self._wake_head()

    def _refund(self, request: list[float], tokens: list[float]) -> None:
        self._requests.adjust(request, 0.0)
        self._tokens.adjust(tokens, 0.0)
        self._wake_head()

    def pause(self, seconds: float) -> None:
        """Admit nothing for *seconds* (after a 429 with Retry-After).

        The pause is measured on the pause clock, and the first waiter waits it out with the
        pause clock's ``sleep``: real time with a :class:`~anyoai._clock.SystemClock`, at once
        with an :class:`~anyoai._clock.InstantClock`. A shorter pause never cuts a longer one.
        """
        until = self._pause_clock.now() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adapt to the server's ``x-ratelimit-*`` headers (see the module docstring).

        Usage the server reports and the window does not know is recorded so that it leaves
        the window when the server says its limit resets (``x-ratelimit-reset-*``), or after a
        whole period when it does not say.
        """
        now = self._clock()
        for window, kind in ((self._requests, "requests"), (self._tokens, "tokens")):
            limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
            if limit is not None and self.learned and limit > 0:
                window.limit = limit
            remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
            if remaining is None or window.limit is None:
                continue
            room = window.limit - window.in_window(now)
            if remaining < room:
                # the server sees less room than we do: someone else uses this key too
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}") or "")
                window.add_expiring(
                    now, room - remaining, reset if reset is not None else window.period
                )


def pause_hint(headers: Mapping[str, str]) -> float | None:
    """How long a 429 without Retry-After should pause: until the exhausted limit resets."""
    waits = []
    for kind in ("requests", "tokens"):
        if _number(headers.get(f"x-ratelimit-remaining-{kind}")) == 0:
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}") or "")
            if reset is not None:
                waits.append(reset)
    return max(waits) if waits else None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def has_rate_headers(headers: Mapping[str, str]) -> bool:
    """Whether a response carries OpenAI's rate-limit headers."""
    return "x-ratelimit-limit-requests" in headers or "x-ratelimit-limit-tokens" in headers
