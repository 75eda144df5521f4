"""Edits (``/edits``): a legacy endpoint, kept for parity with the seed library.

OpenAI retired it in January 2024; some OpenAI-compatible servers still serve it.
"""

from __future__ import annotations

import attrs

from .._model import ChoicesMixin, Metered
from .shared import CompletionUsage

__all__ = ["Edit", "EditChoice"]


@attrs.frozen(kw_only=True)
class EditChoice:
    """One edited version of the input."""

    index: int = 0
    text: str = ""
    finish_reason: str | None = None


@attrs.frozen(kw_only=True)
class Edit(ChoicesMixin, Metered):
    """The result of ``edits.create``. Seed conveniences: :attr:`text`, :attr:`texts`, ``len()``."""

    created: int
    choices: list[EditChoice] = attrs.field(factory=list)
    object_: str = "edit"
    usage: CompletionUsage | None = None
