"""The fake server's rate limiter: OpenAI-style token buckets, with no I/O and no clock of its own.

One organisation, one pair of buckets: requests and tokens per period (``rate_limit_period``,
60 s unless time-scaled). A bucket holds ``capacity`` (the limit), starts full and refills
continuously at ``capacity / period`` per second, never above ``capacity``. A request needs 1
request and its token charge (prompt tokens plus the completion tokens ``max_tokens``
reserves); when a bucket lacks it the answer is a 429, and nothing is taken. An accepted
request takes its whole charge; the part of it the answer does not use is held as a
reservation until the answer goes out, then refunded.

While a reservation is out, the bucket refills only up to ``capacity`` minus the reservations
out, so a refund never lifts it above what the net consumption allows: the tokens actually
used (the charge minus the refund) obey the token-bucket bound exactly, for any ``s <= t``::

    used in [s, t]  <=  capacity + capacity * (t - s) / period

That is up to twice the limit in one period (a full bucket spent at once, then a period of
refill): the server, like OpenAI's, enforces a bucket, not a sliding window.

Every time is a number of seconds on the caller's clock (the server passes
``anyio.current_time()``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Final

import attrs

from ._framework import Cost, EndpointError, Reply

__all__ = [
    "ORGANIZATION",
    "Admission",
    "Bucket",
    "Limiter",
    "RateLimitStats",
    "ceil_ms",
    "format_duration",
    "format_retry_after",
]

#: The organisation named in rate-limit errors.
ORGANIZATION: Final = "org-fake"

# float noise in a level (2.9999999999 for 3) must not refuse a request or lower a header
_EPSILON: Final = 1e-9


def ceil_ms(seconds: float) -> int:
    """*seconds* as whole milliseconds, rounded up (float noise aside); 0 for ``<= 0``."""
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite duration: {seconds!r}")
    if seconds <= 0:
        return 0
    return max(0, math.ceil(seconds * 1000 - 1e-6))


def _decimal_seconds(ms: int) -> str:
    whole, fraction = divmod(ms, 1000)
    return f"{whole}.{fraction:03d}".rstrip("0") if fraction else str(whole)


def format_duration(seconds: float) -> str:
    """A duration in OpenAI's format (Go's), rounded up to the millisecond.

    ``"0s"``; under a second ``"20ms"``; then seconds with up to 3 decimals and no trailing
    zeros (``"1.5s"``), after minutes (``"6m0s"``, ``"1m11.339s"``) and hours (``"1h0m0s"``).
    """
    ms = ceil_ms(seconds)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    text = _decimal_seconds(rest) + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def format_retry_after(ms: int) -> str:
    """*ms* milliseconds as a ``retry-after`` value: seconds, up to 3 decimals (``"0.25"``)."""
    return _decimal_seconds(ms)


class Bucket:
    """A token bucket: *capacity* tokens, refilled continuously over *period* seconds.

    It starts full; its clock starts at the first call. Every method takes ``now``, which must
    not go backwards (an earlier time counts as no time passing).

    :param capacity: the most it holds: the limit.
    :param period: seconds to refill from empty to full (the rate is ``capacity / period``).
    """

    def __init__(self, capacity: int, period: float) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, not {capacity!r}")
        if not (isinstance(period, (int, float)) and math.isfinite(period) and period > 0):
            raise ValueError(f"period must be a number of seconds > 0, not {period!r}")
        self.capacity = capacity
        self.period = float(period)
        self.rate = capacity / self.period
        self._level = float(capacity)
        self._held = 0.0
        self._updated: float | None = None

    def __repr__(self) -> str:
        return f"<Bucket {self._level:g}/{self.capacity} held={self._held:g} rate={self.rate:g}/s>"

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            ceiling = self.capacity - self._held
            if self._level < ceiling:
                gained = (now - self._updated) * self.rate
                self._level = min(ceiling, self._level + gained)
        if self._updated is None or now > self._updated:
            self._updated = now

    def level(self, now: float) -> float:
        """What it holds at *now*: what a request may take."""
        self._refill(now)
        return self._level

    def wait(self, amount: float, now: float) -> float:
        """Seconds from *now* until it holds *amount* (0: it does; ``inf``: above capacity).

        Reservations out are assumed to come back in time.
        """
        if amount > self.capacity:
            return math.inf
        level = self.level(now)
        if level + _EPSILON >= amount:
            return 0.0
        return (amount - level) / self.rate

    def until_full(self, now: float) -> float:
        """Seconds from *now* until it is full again, once the reservations out come back."""
        level = self.level(now)
        return max(0.0, (self.capacity - self._held - level) / self.rate)

    def take(self, amount: float, now: float, *, hold: float = 0.0) -> None:
        """Take *amount* (the caller checked :meth:`wait`); *hold* of it is a reservation.

        A reservation is given back by :meth:`release`; until then the bucket refills only up to
        ``capacity`` minus the reservations out.
        """
        if not 0 <= hold <= amount:
            raise ValueError("hold must be between 0 and the amount taken")
        self._refill(now)
        self._level -= amount
        self._held += hold

    def release(self, amount: float, now: float) -> None:
        """Give back *amount* of the reservations out (at most what is held)."""
        self._refill(now)
        amount = min(max(amount, 0.0), self._held)
        self._held -= amount
        self._level += amount

    def remaining(self, now: float) -> int:
        """What it holds, rounded down: ``x-ratelimit-remaining-*``."""
        return max(0, math.floor(self.level(now) + _EPSILON))


@attrs.frozen(kw_only=True)
class RateLimitStats:
    """What the fake server's rate limiter let through: :meth:`FakeServer.rate_limit_stats`.

    Counted whether or not limits are set; only answers the endpoint would really give count
    (not faults that replace the answer, not 4xx/5xx errors of the endpoint).

    :ivar accepted: requests the limiter let through.
    :ivar rejected: requests it answered with 429 (a :class:`Fault`'s 429 is not counted).
    :ivar tokens_charged: the tokens charged to the accepted requests, net of refunds.
    :ivar requests_charged: the requests charged: one per accepted request.
    :ivar events: for each accepted request, in order: ``(time, 1, net tokens)``; time is the
        server's clock (``anyio.current_time()`` in its event loop) when it was accepted.
    """

    accepted: int = 0
    rejected: int = 0
    tokens_charged: int = 0
    requests_charged: int = 0
    events: tuple[tuple[float, int, int], ...] = ()

    def peak(self, window: float) -> tuple[int, int]:
        """The most requests, and the most tokens, accepted within ``window`` seconds.

        Over every half-open span ``[t, t + window)`` (as a sliding window of that length
        counts them); the two maxima may come from different spans. To check that a client
        kept to a limit, allow for jitter between its clock and the server's arrival times
        (a *window* a little shorter than the period).
        """
        if not (math.isfinite(window) and window > 0):
            raise ValueError("window must be a number of seconds > 0")
        events = sorted(self.events)
        most_requests = most_tokens = 0
        requests = tokens = 0
        start = 0
        for when, request_count, token_count in events:
            requests += request_count
            tokens += token_count
            while events[start][0] <= when - window:
                requests -= events[start][1]
                tokens -= events[start][2]
                start += 1
            most_requests = max(most_requests, requests)
            most_tokens = max(most_tokens, tokens)
        return most_requests, most_tokens


@attrs.frozen(kw_only=True)
class Admission:
    """The limiter's decision on one request.

    :ivar rejection: the 429 to answer with, or ``None``: accepted.
    :ivar refund: tokens reserved by the accepted request and not used, to give back with
        :meth:`Limiter.release` once the answer goes out.
    """

    rejection: Reply | None = None
    refund: int = 0


class Limiter:
    """The server's two buckets (for the limits that are set) and its statistics.

    Thread-safe: the server admits in its own thread, tests read :meth:`stats` from theirs.

    :param rpm: requests per period, or ``None``.
    :param tpm: tokens per period, or ``None``.
    :param period: the period in seconds (60: per minute).
    """

    def __init__(self, *, rpm: int | None, tpm: int | None, period: float) -> None:
        self.requests = Bucket(rpm, period) if rpm is not None else None
        self.tokens = Bucket(tpm, period) if tpm is not None else None
        self._lock = threading.Lock()
        self._accepted = 0
        self._rejected = 0
        self._tokens_charged = 0
        self._events: list[tuple[float, int, int]] = []

    def admit(self, cost: Cost, model: str, now: float) -> Admission:
        """Take one request and ``cost.charge`` tokens, or answer why not (a 429)."""
        charge = max(0, cost.charge)
        refund = min(cost.refund, charge)
        with self._lock:
            rejection = self._rejection(charge, model, now)
            if rejection is not None:
                self._rejected += 1
                return Admission(rejection=rejection)
            if self.requests is not None:
                self.requests.take(1, now)
            if self.tokens is not None:
                self.tokens.take(charge, now, hold=refund)
            net = charge - refund
            self._accepted += 1
            self._tokens_charged += net
            self._events.append((now, 1, net))
        return Admission(refund=refund if self.tokens is not None else 0)

    def _rejection(self, charge: int, model: str, now: float) -> Reply | None:
        tokens, requests = self.tokens, self.requests
        if tokens is not None and charge > tokens.capacity:
            message = (
                f"Request too large for {model} in organization {ORGANIZATION} on tokens per "
                f"min (TPM): Limit {tokens.capacity}, Requested {charge}. The input or output "
                "tokens must be reduced in order to run successfully."
            )
            return EndpointError(429, message, type="tokens", code="rate_limit_exceeded").reply()
        request_wait = requests.wait(1, now) if requests is not None else 0.0
        token_wait = tokens.wait(charge, now) if tokens is not None else 0.0
        if request_wait <= 0 and token_wait <= 0:
            return None
        # name the first limit that is short; wait until both have refilled enough
        if requests is not None and request_wait > 0:
            bucket, kind, label, requested = requests, "requests", "requests per min (RPM)", 1
        elif tokens is not None:
            bucket, kind, label, requested = tokens, "tokens", "tokens per min (TPM)", charge
        else:  # pragma: no cover - a wait needs a bucket
            return None
        ms = max(1, ceil_ms(max(request_wait, token_wait)))
        used = bucket.capacity - bucket.remaining(now)
        message = (
            f"Rate limit reached for {model} in organization {ORGANIZATION} on {label}: "
            f"Limit {bucket.capacity}, Used {used}, Requested {requested}. "
            f"Please try again in {format_duration(ms / 1000)}."
        )
        headers = (("retry-after", format_retry_after(ms)), ("retry-after-ms", str(ms)))
        return EndpointError(
            429, message, type=kind, code="rate_limit_exceeded", headers=headers
        ).reply()

    def release(self, refund: int, now: float) -> None:
        """Give back the tokens an accepted request reserved and did not use."""
        if refund > 0 and self.tokens is not None:
            with self._lock:
                self.tokens.release(refund, now)

    def headers(self, now: float) -> Sequence[tuple[str, str]]:
        """OpenAI's ``x-ratelimit-*`` headers for the limits that are set, as of *now*."""
        buckets = [
            (kind, bucket)
            for kind, bucket in (("requests", self.requests), ("tokens", self.tokens))
            if bucket is not None
        ]
        if not buckets:
            return ()
        with self._lock:
            limits = [(f"x-ratelimit-limit-{kind}", str(b.capacity)) for kind, b in buckets]
            remaining = [
                (f"x-ratelimit-remaining-{kind}", str(b.remaining(now))) for kind, b in buckets
            ]
            resets = [
                (f"x-ratelimit-reset-{kind}", format_duration(b.until_full(now)))
                for kind, b in buckets
            ]
        return (*limits, *remaining, *resets)

    def stats(self) -> RateLimitStats:
        """A snapshot of the statistics."""
        with self._lock:
            return RateLimitStats(
                accepted=self._accepted,
                rejected=self._rejected,
                tokens_charged=self._tokens_charged,
                requests_charged=self._accepted,
                events=tuple(self._events),
            )

    def clear_stats(self) -> None:
        """Reset the statistics (the buckets keep their levels)."""
        with self._lock:
            self._accepted = self._rejected = self._tokens_charged = 0
            self._events.clear()
