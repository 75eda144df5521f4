"""Choosing a backend for each attempt, and keeping track of every backend's health.

**Selection.** The candidates for a request are the backends that serve its model and are not
cooling down. Among them, the lowest ``priority`` number wins (a group with a higher number is
used only when no backend of a lower one is a candidate; ``prioritize="azure"`` puts the Azure
backends first). Within the group the strategy picks: ``"round_robin"`` (the default: in turn,
exactly), ``"weighted"`` (smooth weighted round robin: in proportion to ``weight``, exactly
and evenly spread), or a callable of your own.

**Failover and cooldown.** A 429, a 5xx, a timeout or a connection error is a failure of the
backend, and the retry of that request goes to another backend when one can take it. One
failure during a burst does not take a backend out: it goes down (into cooldown) after
``failure_threshold`` consecutive failures, or when ``failure_rate`` of its attempts in the
last ``rate_window`` seconds failed (with at least ``min_attempts`` of them). A cooldown lasts
until its Retry-After (for a 429 that gives one), else ``cooldown`` seconds doubling with each
further failure up to ``max_cooldown``. After ``circuit_threshold`` consecutive failures its
circuit is *open*. When a cooldown ends the backend is *half-open*: a single request probes it
while the others go elsewhere or wait for the probe's answer; success makes it healthy again,
failure puts it back in a (longer) cooldown. A backend that is the only one serving a model is
always tried (there is nowhere else to go: the retry policy governs).

Failures that say nothing about the backend never count against it: a 4xx that is the caller's
fault (400, 404, 422, and 401/403), a cancellation, and a timeout the caller chose for one call
that is tighter than the backend's usual latency (the dispatcher decides, and says so with
``blame=False``).

When every candidate is cooling down or being probed, :meth:`BackendSelector.wait_for`
waits for the first to come back (a cooldown's end, or a probe's answer), within the caller's
deadline; only when that wait would pass the deadline does it raise
:class:`AllBackendsDownError`, which lists each backend's last failure. Waiting for a backend
is not an attempt: it spends no retry.
"""

from __future__ import annotations

import math
from collections import deque
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

    :param failure_threshold: consecutive failures that take a backend down.
    :param failure_rate: ... or the share of failed attempts (0 to 1) over the last
        *rate_window* seconds that does, once there were at least *min_attempts* of them.
    :param rate_window: the window of *failure_rate*, in seconds.
    :param min_attempts: the fewest attempts in the window for *failure_rate* to apply.
    :param cooldown: seconds of the first cooldown (doubled per further consecutive failure).
    :param max_cooldown: the longest cooldown.
    :param circuit_threshold: consecutive failures after which the circuit is reported open.
    """

    failure_threshold: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    failure_rate: float = attrs.field(
        default=0.5, validator=[attrs.validators.gt(0), attrs.validators.le(1)]
    )
    rate_window: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    min_attempts: int = attrs.field(default=10, validator=attrs.validators.ge(1))
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
    :ivar reason: why it is in its state, in words.
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
    reason: str = ""

    @property
    def name(self) -> str:
        """The backend's name."""
        return self.backend.name


class _Health:
    """The mutable health record of one backend."""

    __slots__ = (
        "consecutive",
        "cooldown_until",
        "down",
        "down_because",
        "failed_at",
        "failures",
        "in_flight",
        "last_failure",
        "latency",
        "outcomes",
        "probing",
        "requests",
        "tokens",
    )

    def __init__(self) -> None:
        #: (when, failed?) of the attempts in the failure-rate window
        self.outcomes: deque[tuple[float, bool]] = deque()
        #: taken out of rotation (cooling down, or half-open until a probe succeeds)
        self.down = False
        self.down_because = ""
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
        self._event: anyio.Event | None = None

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
        if health.down:
            return "half-open"
        return "healthy"

    def _available(self, backend: Backend, now: float) -> bool:
        health = self._health[backend.name]
        if health.cooldown_until > now:
            return False
        return not (health.down and health.probing)

    def _changed(self) -> None:
        """Wake whoever waits for a backend: a probe answered, a backend went down or up."""
        event, self._event = self._event, None
        if event is not None:
            event.set()

    def latency(self, backend: Backend) -> float | None:
        """*backend*'s usual seconds to an answer (an exponentially weighted mean), if known."""
        return self._health[backend.name].latency

    def started(self, backend: Backend) -> float:
        """An attempt goes to *backend*; returns its start time, for :meth:`succeeded`."""
        health = self._health[backend.name]
        health.requests += 1
        health.in_flight += 1
        if health.down:
            health.probing = True  # half-open: this attempt is the probe
        return self._clock()

    def _record(self, health: _Health, now: float, failed: bool) -> None:
        outcomes = health.outcomes
        outcomes.append((now, failed))
        horizon = now - self.failover.rate_window
        while outcomes and outcomes[0][0] < horizon:
            outcomes.popleft()

    def _failure_rate(self, health: _Health) -> float | None:
        """The share of failed attempts in the window, once it holds enough of them."""
        outcomes = health.outcomes
        if len(outcomes) < self.failover.min_attempts:
            return None
        return sum(failed for _, failed in outcomes) / len(outcomes)

    def succeeded(self, backend: Backend, latency: float, since: float) -> None:
        """An attempt on *backend*, started at *since*, got its answer after *latency* s.

        Only an attempt started after the backend's last failure proves it healthy again:
        one that was already in flight says nothing about the failure that followed.
        """
        health = self._health[backend.name]
        self._record(health, self._clock(), failed=False)
        if since >= health.failed_at:
            was_down = health.down
            health.consecutive = 0
            health.probing = False
            health.down = False
            health.down_because = ""
            health.cooldown_until = -math.inf
            if was_down:
                self._changed()
        health.latency = (
            latency
            if health.latency is None
            else health.latency + _LATENCY_ALPHA * (latency - health.latency)
        )

    def failed(self, backend: Backend, exc: BaseException, *, blame: bool = True) -> None:
        """An attempt on *backend* failed with *exc*.

        It counts against the backend only if *blame* and the failure is the backend's own (see
        the module docstring); a backend goes down after enough of them. A probe's answer, of
        whatever kind, wakes the requests waiting for a backend.
        """
        health = self._health[backend.name]
        if health.probing:
            health.probing = False
            self._changed()
        if not blame or not _is_failover_error(exc):
            return
        now = self._clock()
        health.failures += 1
        health.consecutive += 1
        health.failed_at = now
        health.last_failure = _describe(exc)
        self._record(health, now, failed=True)
        policy = self.failover
        server_wait = exc.retry_after if isinstance(exc, RateLimitError) else None
        rate = self._failure_rate(health)
        if health.down:
            why = "its probe failed"
        elif server_wait is not None:
            why = f"a 429 asked for {server_wait:g}s"
        elif health.consecutive >= policy.failure_threshold:
            why = f"{health.consecutive} consecutive failures"
        elif rate is not None and rate >= policy.failure_rate:
            why = f"{rate:.0%} of {len(health.outcomes)} attempts in {policy.rate_window:g}s failed"
        else:
            return  # a blip: the retry goes elsewhere, the backend stays in rotation
        if server_wait is not None:
            cooldown = min(policy.max_cooldown, float(server_wait))
        else:
            steps = max(0, health.consecutive - policy.failure_threshold)
            cooldown = min(policy.max_cooldown, policy.cooldown * 2.0**steps)
        health.down = True
        health.down_because = f"{why}; last: {health.last_failure}"
        health.cooldown_until = max(health.cooldown_until, now + cooldown)
        self._changed()

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

    def select(
        self, model: str | None, *, only: str | None = None, avoid: Sequence[str] = ()
    ) -> Backend:
        """The backend for the next attempt of a request for *model*, now.

        :param avoid: the backends this request already failed on, in order: others are
            preferred; when none is left, the one failed on least, then longest ago.
        :raises InvalidParameterError: when no backend serves *model*.
        :raises AllBackendsDownError: when every one that does is cooling down or being
            probed (:meth:`wait_for` waits instead).
        """
        serving = self.serving(model, only)
        if len(serving) == 1:
            return serving[0]  # nowhere else to go: the retry policy governs
        now = self._clock()
        candidates = [b for b in serving if self._available(b, now)]
        if not candidates:
            raise self._all_down(serving, now)
        if avoid:
            fresh = [b for b in candidates if b.name not in avoid]
            if not fresh:
                # every candidate failed this request: the one it failed on least, then the
                # one it failed on longest ago (a blip is likelier over there)
                return min(
                    candidates,
                    key=lambda b: (
                        avoid.count(b.name),
                        len(avoid) - 1 - list(reversed(avoid)).index(b.name),
                    ),
                )
            candidates = fresh
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

    async def wait_for(
        self,
        model: str | None,
        *,
        only: str | None = None,
        avoid: Sequence[str] = (),
        deadline: float = math.inf,
    ) -> Backend:
        """The backend for the next attempt, waiting while every one is cooling down or being
        probed: until a cooldown ends or a probe answers, but not past *deadline*
        (``anyio.current_time()`` clock).

        :raises AllBackendsDownError: when no backend can come back before *deadline*.
        :raises InvalidParameterError: when no backend serves *model*.
        """
        while True:
            try:
                return self.select(model, only=only, avoid=avoid)
            except AllBackendsDownError:
                now = self._clock()
                back_at, probing = self._comeback(self.serving(model, only), now)
                if now >= deadline or (not probing and back_at > deadline):
                    raise  # nothing can come back in time
                if self._event is None:
                    self._event = anyio.Event()
                event = self._event
                # until a cooldown ends, or something changes (a probe's answer)
                with anyio.move_on_after(min(back_at, deadline) - now):
                    await event.wait()

    def _comeback(self, serving: list[Backend], now: float) -> tuple[float, bool]:
        """When the first cooling backend comes back (``inf`` if none is cooling), and
        whether a probe is in flight (which may bring one back any moment)."""
        cooling = [self._health[b.name].cooldown_until for b in serving]
        back_at = min((t for t in cooling if t > now), default=math.inf)
        probing = any(self._health[b.name].probing for b in serving)
        return back_at, probing

    def _all_down(self, serving: list[Backend], now: float) -> AllBackendsDownError:
        failures = {
            b.name: self._health[b.name].last_failure or "a probe is in flight" for b in serving
        }
        back_at, probing = self._comeback(serving, now)
        retry_after = 0.0 if back_at == math.inf else back_at - now
        when = f"the first may be tried again in {retry_after:.2f}s"
        if probing:
            when = "a probe is in flight" + (f"; {when}" if back_at != math.inf else "")
        listing = "; ".join(f"{name}: {failure}" for name, failure in failures.items())
        return AllBackendsDownError(
            f"every backend is down ({listing}); {when}",
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
            reason=self._reason(health, now),
        )

    def _reason(self, health: _Health, now: float) -> str:
        if health.cooldown_until > now:
            return f"cooling down for {health.cooldown_until - now:.2f}s: {health.down_because}"
        if health.down:
            probe = "its probe is in flight" if health.probing else "the next request probes it"
            return f"half-open ({probe}) after: {health.down_because}"
        if health.consecutive:
            return (
                f"serving; {health.consecutive} recent failure(s) below the threshold, last: "
                f"{health.last_failure}"
            )
        return "serving"

    def status(self) -> tuple[BackendStatus, ...]:
        """A snapshot of every backend, in order."""
        now = self._clock()
        return tuple(self._status(b, now) for b in self.backends)

    def __repr__(self) -> str:
        return f"<BackendSelector {[s.name + ':' + s.state for s in self.status()]}>"
