"""Moderations (``/moderations``)."""

from __future__ import annotations

import attrs

from ._base import APIObject

__all__ = ["Moderation", "ModerationCreateResponse"]


@attrs.frozen(kw_only=True)
class Moderation:
    """The verdict on one input. Category names are the API's, e.g. ``"self-harm/intent"``."""

    flagged: bool
    categories: dict[str, bool | None] = attrs.field(factory=dict)
    category_scores: dict[str, float] = attrs.field(factory=dict)
    category_applied_input_types: dict[str, list[str]] | None = None

    @property
    def flagged_categories(self) -> list[str]:
        """The names of the categories that were flagged."""
        return [name for name, flagged in self.categories.items() if flagged]


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
