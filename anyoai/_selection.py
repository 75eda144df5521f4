"""Choosing a backend for each attempt, and keeping track of every backend's health.

**Selection.** The candidates for a request are the backends that serve its model and are not
cooling down. Among them, the lowest ``priority`` number wins (a group with a higher number is
used only when no backend of a lower one is a candidate; ``prioritize="azure"`` puts the Azure
backends first). Within the group the strategy picks: ``"round_robin"`` (the default: in turn,
exactly), ``"weighted"`` (smooth weighted round robin: in proportion to ``weight``, exactly
and evenly spread), or a callable of your own.

**Failover and cooldown.** A 429, a 5xx, a timeout or a connection error puts the backend in
cooldown: until its Retry-After (for a 429 that gives one), else for ``cooldown`` seconds
doubling with each consecutive failure up to ``max_cooldown``. After ``circuit_threshold``
consecutive failures its circuit is *open*. When a cooldown ends the backend is *half-open*:
a single request probes it while the others keep away; success makes it healthy again, failure
puts it back in a (longer) cooldown. So a dead backend costs at most one failed attempt per
cooldown. A backend that is the only one serving a model is always tried (there is nowhere else
to go: the retry policy governs). 4xx errors that are the caller's fault (400, 404, 422, and
401/403) are not failures of the backend.

When every candidate is cooling down, selection raises :class:`AllBackendsDownError`, which
lists each backend's last failure and says when the first one comes back; the retry policy
waits that long and tries again, if its budget allows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import anyio
import attrs

from ._backends import Backend
from ._exceptions import (
    AllBackendsDownError,
    APIConnectionError,
    APIStatusError,
    ConfigurationError,
    InternalServerError,
    InvalidParameterError,
    RateLimitError,
)

__all__ = [
    "BackendSelector",
    "BackendStatus",
    "FailoverPolicy",
    "Strategy",
]

State = Literal["healthy", "cooldown", "open", "half-open"]


@attrs.frozen(kw_only=True)
class FailoverPolicy:
    """When a backend is taken out of rotation, and for how long.

    :param cooldown: seconds of the first cooldown after a failure (doubled per consecutive
        failure).
    :param max_cooldown: the longest cooldown.
    :param circuit_threshold: consecutive failures after which the circuit is open.
    """

    cooldown: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    max_cooldown: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    circuit_threshold: int = attrs.field(default=3, validator=attrs.validators.ge(1))


@attrs.frozen
class BackendStatus:
    """A snapshot of one backend, as ``pool.backends`` reports it.

    :ivar backend: the backend itself.
    :ivar state: ``"healthy"``, ``"cooldown"``, ``"open"`` (circuit open) or ``"half-open"``.
    :ivar in_flight: requests (and open streams) on it now.
    :ivar requests: attempts sent to it.
    :ivar failures: attempts that failed in a way that counts against it.
    :ivar consecutive_failures: failures since its last success.
    :ivar cooldown_until: when it may be tried again (``anyio.current_time()`` clock), or None.
    :ivar cooldown_remaining: seconds until then (0 when available).
    :ivar latency_ewma: exponentially weighted mean seconds to an answer (None before one).
    :ivar tokens_used: tokens of the requests it answered (from their usage).
    :ivar last_failure: a description of its last failure, or None.
    """

    backend: Backend
    state: State
    in_flight: int
    requests: int
    failures: int
    consecutive_failures: int
    cooldown_until: float | None
    cooldown_remaining: float
    latency_ewma: float | None
    tokens_used: int
    last_failure: str | None

    @property
    def name(self) -> str:
        """The backend's name."""
        return self.backend.name


class _Health:
    """The mutable health record of one backend."""

    __slots__ = (
        "consecutive",
        "cooldown_until",
        "failed_at",
        "failures",
        "in_flight",
        "last_failure",
        "latency",
        "probing",
        "requests",
        "tokens",
    )

    def __init__(self) -> None:
        self.cooldown_until = -math.inf
        self.failed_at = -math.inf
        self.consecutive = 0
        self.probing = False
        self.requests = 0
        self.failures = 0
        self.in_flight = 0
        self.tokens = 0
        self.latency: float | None = None
        self.last_failure: str | None = None


#: a selection strategy of your own: ``(candidates, model) -> the chosen one``
Strategy = Callable[[Sequence[BackendStatus], str | None], "Backend | str"]

_LATENCY_ALPHA = 0.2


def _is_failover_error(exc: BaseException) -> bool:
    """Whether *exc* counts against the backend (and sends the retry elsewhere)."""
    if isinstance(exc, AllBackendsDownError):
        return False
    if isinstance(exc, (RateLimitError, InternalServerError, APIConnectionError)):
        return True
    if isinstance(exc, APIStatusError):
        return exc.status_code in (408, 409) or exc.status_code >= 500
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class BackendSelector:
    """The backends of a pool: selection for each attempt, health, and statistics.

    :param backends: the backends, in order (``pool[0]`` is the first).
    :param strategy: ``"round_robin"``, ``"weighted"``, or a callable (see :data:`Strategy`).
    :param prioritize: ``"azure"``, ``"openai"`` or ``"compatible"``: that kind goes first,
        the others serve when it is down (the seed library's ``prioritize="azure"``).
    :param failover: the cooldown policy.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        strategy: Literal["round_robin", "weighted"] | Strategy = "round_robin",
        prioritize: str | None = None,
        failover: FailoverPolicy | None = None,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        if not backends:
            raise ConfigurationError(
                "a pool needs at least one backend: set OPENAI_API_KEY (or AZURE_OPENAI_ENDPOINT "
                "and AZURE_OPENAI_API_KEY), or pass api_key=... or backends=[...]",
                setting="OPENAI_API_KEY",
            )
        if strategy not in ("round_robin", "weighted") and not callable(strategy):
            raise ConfigurationError(
                f"strategy must be 'round_robin', 'weighted' or a callable, got {strategy!r}",
                setting="strategy",
            )
        if prioritize is not None and prioritize not in ("azure", "openai", "compatible"):
            raise ConfigurationError(
                f"prioritize must be 'azure', 'openai' or 'compatible', got {prioritize!r}",
                setting="prioritize",
            )
        self.backends: tuple[Backend, ...] = tuple(backends)
        self._by_name = {b.name: b for b in self.backends}
        self.strategy = strategy
        self.prioritize = prioritize
        self.failover = failover or FailoverPolicy()
        self._clock = clock
        self._health = {b.name: _Health() for b in self.backends}
        self._turns: dict[tuple[str, ...], int] = {}
        self._weights: dict[tuple[str, ...], dict[str, int]] = {}
        self._offset = 0

    # -- lookup ------------------------------------------------------------------------------

    def __getitem__(self, key: int | str) -> Backend:
        if isinstance(key, int):
            return self.backends[key]
        try:
            return self._by_name[key]
        except KeyError:
            names = [b.name for b in self.backends]
            raise KeyError(f"no backend named {key!r}; the backends are {names}") from None

    def __len__(self) -> int:
        return len(self.backends)

    def _priority(self, backend: Backend) -> tuple[int, int]:
        first = 0 if self.prioritize is None or backend.kind == self.prioritize else 1
        return first, backend.priority

    # -- health ------------------------------------------------------------------------------

    def _state(self, name: str, now: float) -> State:
        health = self._health[name]
        if health.cooldown_until > now:
            return "open" if health.consecutive >= self.failover.circuit_threshold else "cooldown"
        if health.consecutive > 0:
            return "half-open"
        return "healthy"

    def _available(self, backend: Backend, now: float) -> bool:
        health = self._health[backend.name]
        if health.cooldown_until > now:
            return False
        return not (health.consecutive > 0 and health.probing)

    def started(self, backend: Backend) -> float:
        """An attempt goes to *backend*; returns its start time, for :meth:`succeeded`."""
        health = self._health[backend.name]
        health.requests += 1
        health.in_flight += 1
        if health.consecutive > 0:
            health.probing = True  # half-open: this attempt is the probe
        return self._clock()

    def succeeded(self, backend: Backend, latency: float, since: float) -> None:
        """An attempt on *backend*, started at *since*, got its answer after *latency* s.

        Only an attempt started after the backend's last failure proves it healthy again:
        one that was already in flight says nothing about the failure that followed.
        """
        health = self._health[backend.name]
        if since >= health.failed_at:
            health.consecutive = 0
            health.probing = False
            health.cooldown_until = -math.inf
        health.latency = (
            latency
            if health.latency is None
            else health.latency + _LATENCY_ALPHA * (latency - health.latency)
        )

    def failed(self, backend: Backend, exc: BaseException) -> None:
        """An attempt on *backend* failed with *exc*; cool it down if the failure is its own."""
        health = self._health[backend.name]
        health.probing = False
        if not _is_failover_error(exc):
            return
        health.failures += 1
        health.consecutive += 1
        health.failed_at = self._clock()
        health.last_failure = _describe(exc)
        server_wait = exc.retry_after if isinstance(exc, APIStatusError) else None
        if server_wait is not None:
            cooldown = float(server_wait)
        else:
            steps = health.consecutive - 1
            cooldown = min(self.failover.max_cooldown, self.failover.cooldown * 2.0**steps)
        health.cooldown_until = max(health.cooldown_until, self._clock() + cooldown)

    def finished(self, backend: Backend) -> None:
        """An attempt on *backend* is over (its answer read, or its stream closed)."""
        health = self._health[backend.name]
        health.in_flight = max(0, health.in_flight - 1)

    def add_tokens(self, backend: Backend, tokens: int) -> None:
        """*backend* answered with *tokens* of usage."""
        self._health[backend.name].tokens += tokens

    # -- selection ---------------------------------------------------------------------------

    def serving(self, model: str | None, only: str | None = None) -> list[Backend]:
        """The backends that serve *model* (restricted to *only* if given).

        :raises InvalidParameterError: when none does, naming the model and the backends.
        """
        pool = [self[only]] if only is not None else list(self.backends)
        serving = [b for b in pool if b.serves(model)]
        if not serving:
            if len(pool) == 1 and pool[0].kind == "azure":
                pool[0].deployment_for(model)  # raises, naming the deployments
            names = ", ".join(repr(b.name) for b in pool)
            raise InvalidParameterError(
                f"no backend serves model {model!r} (backends: {names}); check their models=, "
                "exclude_models= and Azure deployments=",
                param="model",
            )
        return serving

    def select(self, model: str | None, *, only: str | None = None) -> Backend:
        """The backend for the next attempt of a request for *model*.

        :raises InvalidParameterError: when no backend serves *model*.
        :raises AllBackendsDownError: when every one that does is cooling down.
        """
        serving = self.serving(model, only)
        if len(serving) == 1:
            return serving[0]  # nowhere else to go: the retry policy governs
        now = self._clock()
        candidates = [b for b in serving if self._available(b, now)]
        if not candidates:
            raise self._all_down(serving, now)
        best = min(self._priority(b) for b in candidates)
        group = [b for b in candidates if self._priority(b) == best]
        if len(group) == 1:
            return group[0]
        return self._pick(group, model)

    def _pick(self, group: list[Backend], model: str | None) -> Backend:
        strategy = self.strategy
        if strategy == "round_robin":
            key = tuple(b.name for b in group)
            turn = self._turns.get(key, 0)
            self._turns[key] = turn + 1
            return group[(turn + self._offset) % len(group)]
        if strategy == "weighted":
            key = tuple(b.name for b in group)
            current = self._weights.setdefault(key, {b.name: 0 for b in group})
            total = 0
            for backend in group:
                current[backend.name] += backend.weight
                total += backend.weight
            chosen = max(group, key=lambda b: current[b.name])
            current[chosen.name] -= total
            return chosen
        assert callable(strategy)
        now = self._clock()
        picked = strategy([self._status(b, now) for b in group], model)
        name = picked if isinstance(picked, str) else picked.name
        for backend in group:
            if backend.name == name:
                return backend
        raise ConfigurationError(
            f"the selection strategy chose {name!r}, which is not one of the candidates "
            f"{[b.name for b in group]}",
            setting="strategy",
        )

    def _all_down(self, serving: list[Backend], now: float) -> AllBackendsDownError:
        failures = {b.name: self._health[b.name].last_failure or "busy probing" for b in serving}
        ready = [self._health[b.name].cooldown_until for b in serving]
        retry_after = max(0.0, min(ready) - now) if ready else 0.0
        if all(not self._health[b.name].cooldown_until > now for b in serving):
            retry_after = 0.05  # only probes in flight: look again shortly
        listing = "; ".join(f"{name}: {failure}" for name, failure in failures.items())
        return AllBackendsDownError(
            f"every backend is down ({listing}); the first may be tried again in "
            f"{retry_after:.2f}s",
            failures=failures,
            retry_after=retry_after,
        )

    def available_now(
        self, model: str | None, *, only: str | None = None, but: str | None = None
    ) -> bool:
        """Whether a backend other than *but* could take a request for *model* right now."""
        try:
            serving = self.serving(model, only)
        except InvalidParameterError:
            return False
        now = self._clock()
        return any(b.name != but and self._available(b, now) for b in serving)

    # -- rotation and status -----------------------------------------------------------------

    def rotate(self) -> Backend:
        """Move round robin on by one; return the backend now first in turn."""
        self._offset += 1
        return self.current

    @property
    def current(self) -> Backend:
        """The backend round robin would give a request that names no model."""
        now = self._clock()
        candidates = [b for b in self.backends if self._available(b, now)] or list(self.backends)
        best = min(self._priority(b) for b in candidates)
        group = [b for b in candidates if self._priority(b) == best]
        turn = self._turns.get(tuple(b.name for b in group), 0)
        return group[(turn + self._offset) % len(group)]

    def _status(self, backend: Backend, now: float) -> BackendStatus:
        health = self._health[backend.name]
        until = health.cooldown_until if health.cooldown_until > now else None
        return BackendStatus(
            backend=backend,
            state=self._state(backend.name, now),
            in_flight=health.in_flight,
            requests=health.requests,
            failures=health.failures,
            consecutive_failures=health.consecutive,
            cooldown_until=until,
            cooldown_remaining=max(0.0, health.cooldown_until - now),
            latency_ewma=health.latency,
            tokens_used=health.tokens,
            last_failure=health.last_failure,
        )

    def status(self) -> tuple[BackendStatus, ...]:
        """A snapshot of every backend, in order."""
        now = self._clock()
        return tuple(self._status(b, now) for b in self.backends)

    def __repr__(self) -> str:
        return f"<BackendSelector {[s.name + ':' + s.state for s in self.status()]}>"
