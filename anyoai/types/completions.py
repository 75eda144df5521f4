"""Legacy text completions (``/completions``) and their stream chunks."""

from __future__ import annotations

import attrs

from .._model import ChoicesMixin, Metered
from .shared import CompletionUsage, ContentFilterResult, PromptFilterResult

__all__ = ["Completion", "CompletionChoice", "CompletionLogprobs"]


@attrs.frozen(kw_only=True)
class CompletionLogprobs:
    """Per-token log probabilities of a completion choice (``logprobs=N``)."""

    tokens: list[str] | None = None
    token_logprobs: list[float | None] | None = None
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int] | None = None


@attrs.frozen(kw_only=True)
class CompletionChoice:
    """One of the ``n`` completions (or, in a stream, a piece of one)."""

    index: int = 0
    text: str = ""
    finish_reason: str | None = None
    logprobs: CompletionLogprobs | None = None
    #: Azure OpenAI's content-filter verdict on this answer
    content_filter_results: dict[str, ContentFilterResult] | None = None


@attrs.frozen(kw_only=True)
class Completion(ChoicesMixin, Metered):
    """The result of ``completions.create``, and also each chunk of its stream.

    Seed conveniences: :attr:`text`, :attr:`texts`, ``len(result)`` and :attr:`usage`.
    """

    id: str = ""
    created: int = 0
    model: str = ""
    choices: list[CompletionChoice] = attrs.field(factory=list)
    object_: str = "text_completion"
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    #: Azure OpenAI's content-filter verdict on the prompt(s)
    prompt_filter_results: list[PromptFilterResult] | None = None
