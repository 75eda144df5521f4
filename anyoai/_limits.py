"""The governor of a pool: in-flight caps, and a rate limiter per backend (or backend and model).

Two kinds of limit govern a pool:

- **in flight**: an ``anyio.CapacityLimiter`` for the pool (held by a request across its
  retries, and by a stream until it closes) and, optionally, one per backend;
- **per minute**: a :class:`~anyoai._ratelimit.RateLimiter` per backend (or per backend and
  model, where limits are set per model, or learned from the server, whose limits are per
  model), holding two sliding windows: requests and tokens (see :mod:`anyoai._ratelimit`).

:class:`Limits` states the limits, :class:`Governor` holds the limiters by key and creates the
rate limiters (set, or learned from the server's headers), and :class:`PoolLimits` is
``pool.limits``: the same, adjustable at runtime. The governor is given the pool's
:class:`~anyoai._clock.Clock` and hands it to every rate limiter for its pauses after a 429.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import attrs

from ._clock import Clock
from ._exceptions import ConfigurationError
from ._ratelimit import SYSTEM_CLOCK, RateLimiter, TimeSource, has_rate_headers

__all__ = ["Governor", "Limits", "PoolLimits"]

Key = tuple[str, str | None]  # backend name, model (None: all models of the backend)


def _positive_or_none(name: str) -> Callable[[Any, Any, int | None], None]:
    def check(_instance: Any, _attribute: Any, value: int | None) -> None:
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ConfigurationError(
                f"{name} must be a whole number >= 1 or None, got {value!r}", setting=name
            )

    return check


@attrs.frozen(kw_only=True)
class Limits:
    """Limits for a pool, a backend or a model. ``None`` means no limit set.

    :param max_in_flight: requests (and open streams) at once.
    :param rpm: requests per minute.
    :param tpm: tokens per minute (prompt plus completion, as OpenAI counts them).
    """

    max_in_flight: int | None = attrs.field(
        default=None, validator=_positive_or_none("max_in_flight")
    )
    rpm: int | None = attrs.field(default=None, validator=_positive_or_none("rpm"))
    tpm: int | None = attrs.field(default=None, validator=_positive_or_none("tpm"))


class Governor:
    """All the limits of a pool: the in-flight limiters and the rate limiters, by key.

    :param limits: the pool's limits (``max_in_flight``, and rpm/tpm for every backend).
    :param backend_limits: limits of individual backends, by name.
    :param model_limits: rpm/tpm of individual models (on every backend).
    :param period: the rate window in seconds (60; shorter only for tests and benchmarks).
    :param learn: whether limits are learned from the server's ``x-ratelimit-*`` headers.
    :param clock: the clock of the pauses after a 429, handed to every rate limiter (real time
        by default; a pool passes its own).
    :param window_clock: the time source of the sliding windows (the event loop's clock).
    """

    def __init__(
        self,
        *,
        limits: Limits,
        backend_limits: Mapping[str, Limits] | None = None,
        model_limits: Mapping[str, Limits] | None = None,
        period: float = 60.0,
        learn: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        window_clock: TimeSource = anyio.current_time,
    ) -> None:
        self.limits = limits
        self.backend_limits = dict(backend_limits or {})
        self.model_limits = dict(model_limits or {})
        self.period = period
        self.learn = learn
        self.clock = clock
        self._window_clock = window_clock
        self.pool_limiter = anyio.CapacityLimiter(limits.max_in_flight or math.inf)
        self.backend_limiters: dict[str, anyio.CapacityLimiter] = {
            name: anyio.CapacityLimiter(lim.max_in_flight)
            for name, lim in self.backend_limits.items()
            if lim.max_in_flight is not None
        }
        self.rate_limiters: dict[Key, RateLimiter] = {}

    def _configured(self, backend: str, model: str | None) -> tuple[Key, Limits] | None:
        if model is not None and model in self.model_limits:
            return (backend, model), self.model_limits[model]
        own = self.backend_limits.get(backend)
        if own is not None and (own.rpm or own.tpm):
            return (backend, None), own
        if self.limits.rpm or self.limits.tpm:
            return (backend, None), self.limits
        return None

    def rate_limiter(self, backend: str, model: str | None) -> RateLimiter | None:
        """The rate limiter a request for *model* on *backend* goes through, if any."""
        configured = self._configured(backend, model)
        key: Key = configured[0] if configured else (backend, model)
        limiter = self.rate_limiters.get(key)
        if limiter is None and configured is not None:
            _, limits = configured
            limiter = self.rate_limiters[key] = RateLimiter(
                rpm=limits.rpm,
                tpm=limits.tpm,
                period=self.period,
                clock=self._window_clock,
                pause_clock=self.clock,
                name=f"{key[0]}/{key[1] or '*'}",
            )
        return limiter

    def learned_limiter(self, backend: str, model: str | None) -> RateLimiter:
        """The limiter for a key the server told us about (created on first word from it)."""
        existing = self.rate_limiter(backend, model)
        if existing is not None:
            return existing
        limiter = self.rate_limiters[(backend, model)] = RateLimiter(
            period=self.period,
            learned=True,
            clock=self._window_clock,
            pause_clock=self.clock,
            name=f"{backend}/{model or '*'}",
        )
        return limiter

    def observe(self, backend: str, model: str | None, headers: Mapping[str, str]) -> None:
        """Feed a response's rate-limit headers to the limiter of its key."""
        limiter = self.rate_limiter(backend, model)
        if limiter is None:
            if not (self.learn and has_rate_headers(headers)):
                return
            limiter = self.learned_limiter(backend, model)
        limiter.observe(headers)

    def pause(self, backend: str, model: str | None, seconds: float) -> None:
        """Hold back every request of this key for *seconds* (a 429 said so)."""
        self.learned_limiter(backend, model).pause(seconds)


class PoolLimits:
    """``pool.limits``: the pool's limits, adjustable at runtime, and their statistics."""

    def __init__(self, governor: Governor) -> None:
        self._governor = governor

    @property
    def max_in_flight(self) -> int | None:
        """Requests (and open streams) of the pool at once; ``None`` for no cap."""
        total = self._governor.pool_limiter.total_tokens
        return None if math.isinf(total) else int(total)

    @max_in_flight.setter
    def max_in_flight(self, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigurationError(
                f"max_in_flight must be >= 1 or None, got {value!r}", setting="max_in_flight"
            )
        self._governor.pool_limiter.total_tokens = math.inf if value is None else value

    @property
    def in_flight(self) -> int:
        """Requests (and open streams) in flight now."""
        return int(self._governor.pool_limiter.borrowed_tokens)

    def statistics(self) -> anyio.CapacityLimiterStatistics:
        """The pool's in-flight limiter statistics (borrowed, total, waiting)."""
        return self._governor.pool_limiter.statistics()

    def rate_limiter(
        self, backend: str = "default", model: str | None = None
    ) -> RateLimiter | None:
        """The rate limiter that governs *model* on *backend*, if one is set or learned."""
        return self._governor.rate_limiters.get((backend, model)) or self._governor.rate_limiter(
            backend, model
        )

    @property
    def rate_limiters(self) -> dict[Key, RateLimiter]:
        """Every rate limiter, by ``(backend, model)`` (model ``None``: the whole backend)."""
        return dict(self._governor.rate_limiters)

    def set(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        backend: str = "default",
        model: str | None = None,
    ) -> RateLimiter:
        """Set (or change) the requests and tokens per minute of a backend, or of one model."""
        lim = Limits(rpm=rpm, tpm=tpm)
        if model is not None:
            self._governor.model_limits[model] = lim
        else:
            previous = self._governor.backend_limits.get(backend, Limits())
            self._governor.backend_limits[backend] = attrs.evolve(previous, rpm=rpm, tpm=tpm)
        limiter = self._governor.rate_limiter(backend, model)
        assert limiter is not None
        limiter.learned = False
        limiter.set_limits(rpm=rpm, tpm=tpm)
        return limiter
