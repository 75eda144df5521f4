"""Accumulators: rebuild the final result of a stream from its chunks.

A chat stream sends each choice's message in pieces: the role once, the content in fragments,
and each tool call as an ``index`` with its ``id`` and name first and its JSON arguments split
over many chunks; several tool calls may interleave. :class:`ChatCompletionAccumulator` puts it
back together into the :class:`~anyoai.types.chat.ChatCompletion` a non-streamed call would have
returned. :class:`CompletionAccumulator` does the same for legacy completions.
"""

from __future__ import annotations

from typing import Any

from .types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageCustomToolCall,
    ChatCompletionMessageToolCall,
    ChatCompletionTokenLogprob,
    Choice,
    ChoiceLogprobs,
    CustomToolCallInput,
    FunctionCall,
    ToolCall,
)
from .types.completions import Completion, CompletionChoice, CompletionLogprobs
from .types.shared import CompletionUsage, ContentFilterResult, PromptFilterResult

__all__ = ["ChatCompletionAccumulator", "CompletionAccumulator"]


def _merge_name(current: str, piece: str | None) -> str:
    """Names and ids come whole in one chunk; some servers repeat them, a few split them."""
    if not piece or piece == current:
        return current
    return piece if not current else current + piece


class _ToolCallState:
    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id = ""
        self.type = "function"
        self.name = ""
        self.arguments: list[str] = []

    def build(self) -> ToolCall:
        if self.type == "custom":
            return ChatCompletionMessageCustomToolCall(
                id=self.id,
                custom=CustomToolCallInput(name=self.name, input="".join(self.arguments)),
            )
        return ChatCompletionMessageToolCall(
            id=self.id, function=FunctionCall(name=self.name, arguments="".join(self.arguments))
        )


class _ChoiceState:
    __slots__ = (
        "content",
        "content_filter_results",
        "finish_reason",
        "function_arguments",
        "function_name",
        "has_function_call",
        "logprobs_content",
        "logprobs_refusal",
        "reasoning",
        "refusal",
        "role",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, _ToolCallState] = {}
        self.has_function_call = False
        self.function_name = ""
        self.function_arguments: list[str] = []
        self.finish_reason: str | None = None
        self.logprobs_content: list[ChatCompletionTokenLogprob] | None = None
        self.logprobs_refusal: list[ChatCompletionTokenLogprob] | None = None
        self.content_filter_results: dict[str, ContentFilterResult] | None = None


class _Envelope:
    """What every chunk of a stream repeats or adds once: ids, model, usage, prompt filters."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.system_fingerprint: str | None = None
        self.service_tier: str | None = None
        self.usage: CompletionUsage | None = None
        self.prompt_filter_results: list[PromptFilterResult] | None = None
        self.chunks = 0

    def _envelope(self) -> dict[str, Any]:
        """The accumulated result's fields that the envelope holds (both kinds of result)."""
        return {
            "id": self.id,
            "created": self.created,
            "model": self.model,
            "usage": self.usage,
            "system_fingerprint": self.system_fingerprint,
            "prompt_filter_results": self.prompt_filter_results,
        }

    def _add_envelope(self, chunk: ChatCompletionChunk | Completion) -> None:
        self.chunks += 1
        if chunk.id:
            self.id = chunk.id
        if chunk.model:
            self.model = chunk.model
        if chunk.created:
            self.created = chunk.created
        if chunk.system_fingerprint:
            self.system_fingerprint = chunk.system_fingerprint
        service_tier = getattr(chunk, "service_tier", None)  # chat chunks only
        if service_tier:
            self.service_tier = service_tier
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.prompt_filter_results:
            self.prompt_filter_results = (self.prompt_filter_results or []) + list(
                chunk.prompt_filter_results
            )


class ChatCompletionAccumulator(_Envelope):
    """Feed it every :class:`ChatCompletionChunk` with :meth:`add`; :meth:`snapshot` gives the
    :class:`ChatCompletion` so far (the final one once the stream has ended)."""

    def __init__(self) -> None:
        super().__init__()
        self._choices: dict[int, _ChoiceState] = {}

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Add one chunk."""
        self._add_envelope(chunk)
        for choice in chunk.choices:
            state = self._choices.get(choice.index)
            if state is None:
                state = self._choices[choice.index] = _ChoiceState()
            delta = choice.delta
            if delta.role:
                state.role = delta.role
            if delta.content:
                state.content.append(delta.content)
            if delta.refusal:
                state.refusal.append(delta.refusal)
            if delta.reasoning_content:
                state.reasoning.append(delta.reasoning_content)
            if delta.function_call is not None:
                state.has_function_call = True
                state.function_name = _merge_name(state.function_name, delta.function_call.name)
                if delta.function_call.arguments:
                    state.function_arguments.append(delta.function_call.arguments)
            if delta.tool_calls:
                for piece in delta.tool_calls:
                    call = state.tool_calls.get(piece.index)
                    if call is None:
                        call = state.tool_calls[piece.index] = _ToolCallState()
                    call.id = _merge_name(call.id, piece.id)
                    if piece.type:
                        call.type = piece.type
                    if piece.function is not None:
                        call.name = _merge_name(call.name, piece.function.name)
                        if piece.function.arguments:
                            call.arguments.append(piece.function.arguments)
                    if piece.custom is not None:
                        call.type = "custom"
                        call.name = _merge_name(call.name, piece.custom.get("name"))
                        if piece.custom.get("input"):
                            call.arguments.append(str(piece.custom["input"]))
            if choice.finish_reason:
                state.finish_reason = choice.finish_reason
            if choice.logprobs is not None:
                if choice.logprobs.content:
                    state.logprobs_content = (state.logprobs_content or []) + list(
                        choice.logprobs.content
                    )
                if choice.logprobs.refusal:
                    state.logprobs_refusal = (state.logprobs_refusal or []) + list(
                        choice.logprobs.refusal
                    )
            if choice.content_filter_results:
                state.content_filter_results = choice.content_filter_results

    def snapshot(self) -> ChatCompletion:
        """The completion as accumulated so far."""
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message = ChatCompletionMessage(
                role=state.role,
                content="".join(state.content) if state.content else None,
                refusal="".join(state.refusal) if state.refusal else None,
                tool_calls=[state.tool_calls[i].build() for i in sorted(state.tool_calls)]
                if state.tool_calls
                else None,
                function_call=FunctionCall(
                    name=state.function_name, arguments="".join(state.function_arguments)
                )
                if state.has_function_call
                else None,
                reasoning_content="".join(state.reasoning) if state.reasoning else None,
            )
            logprobs = None
            if state.logprobs_content is not None or state.logprobs_refusal is not None:
                logprobs = ChoiceLogprobs(
                    content=state.logprobs_content, refusal=state.logprobs_refusal
                )
            choices.append(
                Choice(
                    index=index,
                    message=message,
                    finish_reason=state.finish_reason,
                    logprobs=logprobs,
                    content_filter_results=state.content_filter_results,
                )
            )
        return ChatCompletion(choices=choices, service_tier=self.service_tier, **self._envelope())


class CompletionAccumulator(_Envelope):
    """Accumulates the chunks of a streamed legacy completion into one :class:`Completion`."""

    def __init__(self) -> None:
        super().__init__()
        self._texts: dict[int, list[str]] = {}
        self._finish: dict[int, str] = {}
        self._logprobs: dict[int, dict[str, list[Any]]] = {}
        self._filters: dict[int, dict[str, ContentFilterResult]] = {}

    def add(self, chunk: Completion) -> None:
        """Add one chunk."""
        self._add_envelope(chunk)
        for choice in chunk.choices:
            self._texts.setdefault(choice.index, []).append(choice.text)
            if choice.finish_reason:
                self._finish[choice.index] = choice.finish_reason
            if choice.content_filter_results:
                self._filters[choice.index] = choice.content_filter_results
            if choice.logprobs is not None:
                acc = self._logprobs.setdefault(choice.index, {})
                for name in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
                    values = getattr(choice.logprobs, name)
                    if values:
                        acc.setdefault(name, []).extend(values)

    def snapshot(self) -> Completion:
        """The completion as accumulated so far."""
        choices = [
            CompletionChoice(
                index=index,
                text="".join(self._texts[index]),
                finish_reason=self._finish.get(index),
                logprobs=CompletionLogprobs(**self._logprobs[index])
                if index in self._logprobs
                else None,
                content_filter_results=self._filters.get(index),
            )
            for index in sorted(self._texts)
        ]
        return Completion(choices=choices, **self._envelope())
