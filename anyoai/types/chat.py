"""Chat completions: the result, its stream chunks, and their parts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

import attrs

from .._model import ChoicesMixin, Metered, UnknownVariant
from .._tools import ParsedToolCall, parse_tool_calls
from .shared import CompletionUsage, ContentFilterResult, PromptFilterResult

T = TypeVar("T")

__all__ = [
    "Annotation",
    "ChatCompletion",
    "ChatCompletionAudio",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionMessageCustomToolCall",
    "ChatCompletionMessageToolCall",
    "ChatCompletionTokenLogprob",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaFunctionCall",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CustomToolCallInput",
    "FunctionCall",
    "ParsedChatCompletion",
    "ToolCall",
    "TopLogprob",
    "UnknownToolCall",
    "UrlCitation",
]


@attrs.frozen(kw_only=True)
class FunctionCall:
    """A function the model wants called: its name and its arguments as a JSON string."""

    name: str
    arguments: str = ""


@attrs.frozen(kw_only=True)
class ChatCompletionMessageToolCall:
    """A call of a function tool."""

    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


@attrs.frozen(kw_only=True)
class CustomToolCallInput:
    """The name and free-form input of a custom tool call."""

    name: str
    input: str = ""


@attrs.frozen(kw_only=True)
class ChatCompletionMessageCustomToolCall:
    """A call of a custom (free-form input) tool."""

    id: str
    custom: CustomToolCallInput
    type: Literal["custom"] = "custom"


@attrs.frozen(kw_only=True)
class UnknownToolCall(UnknownVariant):
    """A tool call of a ``type`` this version of anyoai does not know; ``raw`` has it whole."""


ToolCall = ChatCompletionMessageToolCall | ChatCompletionMessageCustomToolCall | UnknownToolCall


@attrs.frozen(kw_only=True)
class UrlCitation:
    """A web page the answer cites, and where in the text."""

    url: str
    title: str | None = None
    start_index: int | None = None
    end_index: int | None = None


@attrs.frozen(kw_only=True)
class Annotation:
    """An annotation of the message text (a URL citation, when using web search)."""

    type: str
    url_citation: UrlCitation | None = None


@attrs.frozen(kw_only=True)
class ChatCompletionAudio:
    """Audio the model produced, when the ``audio`` modality was asked for."""

    id: str
    data: str = ""
    expires_at: int | None = None
    transcript: str | None = None


@attrs.frozen(kw_only=True)
class ChatCompletionMessage:
    """The message of one choice. Pass it back in ``messages=`` to continue the conversation."""

    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None
    annotations: list[Annotation] | None = None
    audio: ChatCompletionAudio | None = None
    #: the reasoning text some compatible servers (vLLM, DeepSeek, llama.cpp) return
    reasoning_content: str | None = None

    def _as_param(self, unstructure: Callable[[Any], Any]) -> dict[str, Any]:
        """This message as an assistant message parameter, to send back.

        Only the fields the API accepts in an assistant message are kept (not
        ``annotations``, not a server's ``reasoning_content``); audio is referred to by its id.
        """
        param: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.refusal is not None:
            param["refusal"] = self.refusal
        if self.tool_calls:
            param["tool_calls"] = [unstructure(call) for call in self.tool_calls]
        if self.function_call is not None:
            param["function_call"] = unstructure(self.function_call)
        if self.audio is not None:
            param["audio"] = {"id": self.audio.id}
        return param


@attrs.frozen(kw_only=True)
class TopLogprob:
    """One of the most likely tokens at a position."""

    token: str
    logprob: float
    bytes: list[int] | None = None


@attrs.frozen(kw_only=True)
class ChatCompletionTokenLogprob:
    """The log probability of one output token, with the most likely alternatives."""

    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class ChoiceLogprobs:
    """Log probabilities of a choice's content and refusal tokens."""

    content: list[ChatCompletionTokenLogprob] | None = None
    refusal: list[ChatCompletionTokenLogprob] | None = None


@attrs.frozen(kw_only=True)
class Choice:
    """One of the ``n`` answers."""

    index: int = 0
    message: ChatCompletionMessage = attrs.field(factory=ChatCompletionMessage)
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None
    #: Azure OpenAI's content-filter verdict on this answer
    content_filter_results: dict[str, ContentFilterResult] | None = None


@attrs.frozen(kw_only=True)
class ChatCompletion(ChoicesMixin, Metered):
    """The result of ``chat.completions.create``.

    Besides the API's fields it offers the seed library's conveniences: :attr:`text`,
    :attr:`texts`, :attr:`messages`, ``len(result)`` (the number of choices) and :attr:`usage`.
    """

    id: str
    created: int
    model: str
    choices: list[Choice] = attrs.field(factory=list)
    object_: str = "chat.completion"
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    metadata: dict[str, str] | None = None
    #: Azure OpenAI's content-filter verdict on the prompt(s)
    prompt_filter_results: list[PromptFilterResult] | None = None

    @property
    def messages(self) -> list[ChatCompletionMessage]:
        """The message of every choice, in choice order."""
        return [choice.message for choice in self.choices]

    @staticmethod
    def _text_of(choice: Any) -> str:
        return str(choice.message.content or "")

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls of the first choice, as the model wrote them (``[]`` if none)."""
        return list(self.choices[0].message.tool_calls or ()) if self.choices else []

    @property
    def function_results(self) -> list[FunctionCall]:
        """The function calls of the first choice, raw: the legacy ``function_call`` or the
        functions of its tool calls (the seed library's name)."""
        if not self.choices:
            return []
        message = self.choices[0].message
        calls = [c.function for c in message.tool_calls or () if hasattr(c, "function")]
        if message.function_call is not None and not calls:
            calls.append(message.function_call)  # legacy; some servers send both forms
        return calls

    def parse_tool_calls(self, *targets: Any) -> list[ParsedToolCall[Any]]:
        """Parse the first choice's tool (or function) calls into *targets*: attrs classes or
        typed functions, matched by name (see :func:`anyoai.tool`); a mapping
        ``{"name": target}`` matches a tool sent under another name.

        :raises ToolCallError: for a call naming no target, or arguments that do not fit.
        """
        return parse_tool_calls(self, targets)


@attrs.frozen(kw_only=True)
class ParsedChatCompletion(ChatCompletion, Generic[T]):
    """The result of ``chat.completions.parse``: a :class:`ChatCompletion` whose choices'
    contents were parsed into the requested attrs class."""

    parsed_choices: list[T | None] = attrs.field(factory=list)

    @property
    def parsed(self) -> T | None:
        """The first choice's content as an instance of the requested class (``None`` when
        the model refused: see :attr:`refusal`)."""
        return self.parsed_choices[0] if self.parsed_choices else None

    @property
    def refusal(self) -> str | None:
        """The first choice's refusal, when the model refused to answer."""
        return self.choices[0].message.refusal if self.choices else None


@attrs.frozen(kw_only=True)
class ChoiceDeltaFunctionCall:
    """A piece of a legacy function call."""

    name: str | None = None
    arguments: str | None = None


@attrs.frozen(kw_only=True)
class ChoiceDeltaToolCallFunction(ChoiceDeltaFunctionCall):
    """A piece of a function tool call: the name comes once, the arguments in pieces."""


@attrs.frozen(kw_only=True)
class ChoiceDeltaToolCall:
    """A piece of the tool call at ``index``; ``id`` and ``type`` come with its first piece."""

    index: int = 0
    id: str | None = None
    type: str | None = None
    function: ChoiceDeltaToolCallFunction | None = None
    custom: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ChoiceDelta:
    """What a chunk adds to a choice's message."""

    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None
    function_call: ChoiceDeltaFunctionCall | None = None
    reasoning_content: str | None = None


@attrs.frozen(kw_only=True)
class ChunkChoice:
    """One choice's part of a stream chunk."""

    index: int = 0
    delta: ChoiceDelta = attrs.field(factory=ChoiceDelta)
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None
    content_filter_results: dict[str, ContentFilterResult] | None = None


@attrs.frozen(kw_only=True)
class ChatCompletionChunk:
    """One event of a streamed chat completion.

    With ``stream_options={"include_usage": True}`` the last chunk has no choices and carries
    :attr:`usage`. Azure OpenAI sends a first chunk with empty ``id`` and ``model`` that carries
    only :attr:`prompt_filter_results`.
    """

    id: str = ""
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = attrs.field(factory=list)
    object_: str = "chat.completion.chunk"
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    obfuscation: str | None = None
    prompt_filter_results: list[PromptFilterResult] | None = None

    @property
    def text(self) -> str:
        """The content this chunk adds to the first choice (``""`` if none)."""
        for choice in self.choices:
            if choice.index == 0:
                return choice.delta.content or ""
        return ""
