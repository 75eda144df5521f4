"""Models shared by several endpoints: token usage, and Azure's content-filter results."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = [
    "CompletionTokensDetails",
    "CompletionUsage",
    "ContentFilterResult",
    "PromptFilterResult",
    "PromptTokensDetails",
]


@attrs.frozen(kw_only=True)
class PromptTokensDetails:
    """How the prompt's tokens break down."""

    cached_tokens: int | None = None
    audio_tokens: int | None = None


@attrs.frozen(kw_only=True)
class CompletionTokensDetails:
    """How the completion's tokens break down."""

    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


@attrs.frozen(kw_only=True)
class CompletionUsage:
    """Tokens used by a chat completion, a completion or an edit."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


@attrs.frozen(kw_only=True)
class ContentFilterResult:
    """One category of Azure OpenAI's content filter (``hate``, ``jailbreak``, ``error``, ...).

    Severity categories carry ``filtered`` and ``severity``; detection categories (``jailbreak``,
    ``protected_material_text``) carry ``filtered`` and ``detected``; ``protected_material_code``
    may add a ``citation``; ``custom_blocklists`` carries ``details``; the ``error`` entry carries
    ``code`` and ``message``.
    """

    filtered: bool | None = None
    severity: str | None = None
    detected: bool | None = None
    citation: dict[str, Any] | None = None
    details: list[dict[str, Any]] | None = None
    code: str | None = None
    message: str | None = None


@attrs.frozen(kw_only=True)
class PromptFilterResult:
    """Azure OpenAI's content-filter verdict on one prompt."""

    prompt_index: int = 0
    content_filter_results: dict[str, ContentFilterResult] | None = None
