"""``pool.usage``: tokens and cost since the pool opened, per backend and per model."""

from __future__ import annotations

from collections import defaultdict

import attrs

from ._model import Metered, TokenUsage

__all__ = ["UsageTotals", "UsageTracker"]


@attrs.frozen
class UsageTotals:
    """Totals over a set of requests.

    :ivar requests: requests with a usage.
    :ivar prompt_tokens: input tokens.
    :ivar completion_tokens: output tokens.
    :ivar total_tokens: both.
    :ivar cost: US dollars, over the requests whose model has a price.
    :ivar unpriced: requests whose model has no price (not in :attr:`cost`).
    :ivar estimated: requests whose tokens were estimated (streams without a usage chunk).
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    estimated: int = 0

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            self.requests + other.requests,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            self.cost + other.cost,
            self.unpriced + other.unpriced,
            self.estimated + other.estimated,
        )


class UsageTracker:
    """Adds up the usage and cost of every result; all totals since the last :meth:`reset`."""

    def __init__(self) -> None:
        self._by_backend: dict[str, UsageTotals] = defaultdict(UsageTotals)
        self._by_model: dict[str, UsageTotals] = defaultdict(UsageTotals)

    def record(self, result: Metered) -> None:
        """Count *result*: its ``usage``, or the usage estimated for a stream without one."""
        meta = result.meta
        usage: TokenUsage | None = result.usage
        estimated = False
        if usage is None and meta is not None and meta.estimated_usage is not None:
            usage, estimated = meta.estimated_usage, True
        if usage is None:
            return
        cost = result.consumption
        totals = UsageTotals(
            requests=1,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cost=float(cost) if cost is not None else 0.0,
            unpriced=1 if cost is None else 0,
            estimated=1 if estimated else 0,
        )
        backend = result.backend or "?"
        model = result.model or "?"
        self._by_backend[backend] += totals
        self._by_model[model] += totals

    @property
    def by_backend(self) -> dict[str, UsageTotals]:
        """Totals per backend name."""
        return dict(self._by_backend)

    @property
    def by_model(self) -> dict[str, UsageTotals]:
        """Totals per model (as the server named it in its answers)."""
        return dict(self._by_model)

    @property
    def total(self) -> UsageTotals:
        """Totals over everything."""
        return sum(self._by_backend.values(), UsageTotals())

    def reset(self) -> None:
        """Start counting from zero."""
        self._by_backend.clear()
        self._by_model.clear()

    def __repr__(self) -> str:
        total = self.total
        return f"<Usage {total.requests} requests, {total.total_tokens} tokens, ${total.cost:.6f}>"
