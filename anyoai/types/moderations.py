"""Moderations (``/moderations``)."""

from __future__ import annotations

from typing import Any

import attrs

from .._model import APIObject

__all__ = ["Moderation", "ModerationCreateResponse"]


@attrs.frozen(kw_only=True)
class Moderation:
    """The verdict on one input. Category names are the API's, e.g. ``"self-harm/intent"``.

    The maps are kept as the server sends them: flags (``categories``) and scores
    (``category_scores``) by category, values untouched (a newer category may bring a newer
    shape).
    """

    flagged: bool
    categories: dict[str, Any] = attrs.field(factory=dict)
    category_scores: dict[str, Any] = attrs.field(factory=dict)
    category_applied_input_types: dict[str, Any] | None = None

    @property
    def flagged_categories(self) -> list[str]:
        """The names of the categories that were flagged."""
        return [name for name, flagged in self.categories.items() if flagged is True]


@attrs.frozen(kw_only=True)
class ModerationCreateResponse(APIObject):
    """The result of ``moderations.create``: one :class:`Moderation` per input."""

    id: str
    model: str
    results: list[Moderation]

    @property
    def flagged(self) -> bool:
        """Whether any input was flagged."""
        return any(result.flagged for result in self.results)
