"""The parameters of each API method, as TypedDicts: the shape users write, plain dicts included.

Each ``...CreateParams`` is the single description of a method's keyword arguments: the method's
signature unpacks it (``**params: Unpack[ChatCompletionCreateParams]``), and the runtime check
in ``anyoai._params`` is compiled from it, so the two cannot drift apart.

Value types follow the API reference. Where the API accepts an open set of strings (model names,
reasoning efforts) the type is ``str``: anyoai does not reject a value the server may accept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from .._compat import Required, TypedDict
from .._config import Timeout
from .chat import ChatCompletionMessage

__all__ = [
    "ChatCompletionAssistantMessageParam",
    "ChatCompletionContentPartParam",
    "ChatCompletionCreateParams",
    "ChatCompletionDeveloperMessageParam",
    "ChatCompletionFunctionMessageParam",
    "ChatCompletionMessageParam",
    "ChatCompletionParseParams",
    "ChatCompletionSystemMessageParam",
    "ChatCompletionToolMessageParam",
    "ChatCompletionToolParam",
    "ChatCompletionUserMessageParam",
    "CompletionCreateParams",
    "EditCreateParams",
    "EmbeddingCreateParams",
    "FunctionDefinitionParam",
    "ModerationCreateParams",
    "RequestOptions",
    "ResponseFormatParam",
    "StreamOptionsParam",
]


class RequestOptions(TypedDict, total=False):
    """Options every API method takes besides the API's own parameters."""

    #: headers to add to (or override in) this request; a header given as None is not sent
    extra_headers: Mapping[str, str | None]
    #: query parameters to add to the URL
    extra_query: Mapping[str, Any]
    #: keys to add to (or override in) the JSON body, for parameters anyoai does not know yet
    extra_body: Mapping[str, Any]
    #: seconds (the total) or a :class:`~anyoai.Timeout`, for this request only
    timeout: float | Timeout | None
    #: retries for this request only
    max_retries: int


# -- messages ---------------------------------------------------------------------------------


class ImageURLParam(TypedDict, total=False):
    """An image by URL or data URL."""

    url: Required[str]
    detail: Literal["auto", "low", "high"]


class InputAudioParam(TypedDict, total=False):
    """Base64 audio and its format."""

    data: Required[str]
    format: Required[str]


class FileContentParam(TypedDict, total=False):
    """A file by id, or inline as base64."""

    file_id: str
    file_data: str
    filename: str


class ChatCompletionContentPartTextParam(TypedDict, total=False):
    """A text part."""

    type: Required[Literal["text"]]
    text: Required[str]


class ChatCompletionContentPartImageParam(TypedDict, total=False):
    """An image part."""

    type: Required[Literal["image_url"]]
    image_url: Required[ImageURLParam]


class ChatCompletionContentPartInputAudioParam(TypedDict, total=False):
    """An audio part."""

    type: Required[Literal["input_audio"]]
    input_audio: Required[InputAudioParam]


class ChatCompletionContentPartFileParam(TypedDict, total=False):
    """A file part."""

    type: Required[Literal["file"]]
    file: Required[FileContentParam]


class ChatCompletionContentPartRefusalParam(TypedDict, total=False):
    """A refusal part (in an assistant message)."""

    type: Required[Literal["refusal"]]
    refusal: Required[str]


ChatCompletionContentPartParam = (
    ChatCompletionContentPartTextParam
    | ChatCompletionContentPartImageParam
    | ChatCompletionContentPartInputAudioParam
    | ChatCompletionContentPartFileParam
)


class ChatCompletionSystemMessageParam(TypedDict, total=False):
    """A system message."""

    role: Required[Literal["system"]]
    content: Required[str | Iterable[ChatCompletionContentPartTextParam]]
    name: str


class ChatCompletionDeveloperMessageParam(TypedDict, total=False):
    """A developer message (replaces system messages for reasoning models)."""

    role: Required[Literal["developer"]]
    content: Required[str | Iterable[ChatCompletionContentPartTextParam]]
    name: str


class ChatCompletionUserMessageParam(TypedDict, total=False):
    """A user message: text, or parts with images, audio and files."""

    role: Required[Literal["user"]]
    content: Required[str | Iterable[ChatCompletionContentPartParam]]
    name: str


class FunctionCallParam(TypedDict):
    """A function call, as an assistant message carries it."""

    name: str
    arguments: str


class ChatCompletionMessageToolCallParam(TypedDict):
    """A tool call, as an assistant message carries it."""

    id: str
    type: Literal["function"]
    function: FunctionCallParam


class ChatCompletionAssistantMessageParam(TypedDict, total=False):
    """An assistant message, possibly with the tool calls it made."""

    role: Required[Literal["assistant"]]
    content: (
        str
        | Iterable[ChatCompletionContentPartTextParam | ChatCompletionContentPartRefusalParam]
        | None
    )
    refusal: str | None
    name: str
    tool_calls: Iterable[ChatCompletionMessageToolCallParam]
    function_call: FunctionCallParam | None
    audio: Mapping[str, str] | None


class ChatCompletionToolMessageParam(TypedDict, total=False):
    """The output of a tool call."""

    role: Required[Literal["tool"]]
    content: Required[str | Iterable[ChatCompletionContentPartTextParam]]
    tool_call_id: Required[str]


class ChatCompletionFunctionMessageParam(TypedDict, total=False):
    """The output of a legacy function call."""

    role: Required[Literal["function"]]
    content: Required[str | None]
    name: Required[str]


#: A message: one of the TypedDicts above, any mapping with a ``role``, or a
#: :class:`~anyoai.types.chat.ChatCompletionMessage` taken from an earlier result.
ChatCompletionMessageParam = (
    ChatCompletionSystemMessageParam
    | ChatCompletionDeveloperMessageParam
    | ChatCompletionUserMessageParam
    | ChatCompletionAssistantMessageParam
    | ChatCompletionToolMessageParam
    | ChatCompletionFunctionMessageParam
    | ChatCompletionMessage
    | Mapping[str, Any]
)


# -- tools and formats ------------------------------------------------------------------------


class FunctionDefinitionParam(TypedDict, total=False):
    """A function the model may call, with its JSON Schema parameters."""

    name: Required[str]
    description: str
    #: a JSON Schema, or an attrs class (the seed library took a pydantic model here)
    parameters: Mapping[str, Any] | type
    strict: bool | None


class ChatCompletionToolParam(TypedDict, total=False):
    """A function tool."""

    type: Required[Literal["function"]]
    function: Required[FunctionDefinitionParam]


class JSONSchemaParam(TypedDict, total=False):
    """A JSON Schema response format."""

    name: Required[str]
    description: str
    schema: Mapping[str, Any]
    strict: bool | None


class ResponseFormatParam(TypedDict, total=False):
    """``{"type": "text"}``, ``{"type": "json_object"}`` or a ``json_schema`` format."""

    type: Required[Literal["text", "json_object", "json_schema"]]
    json_schema: JSONSchemaParam


class StreamOptionsParam(TypedDict, total=False):
    """Options of a stream: ``include_usage`` adds a last chunk with the usage."""

    include_usage: bool
    include_obfuscation: bool


# -- the methods' parameters ------------------------------------------------------------------


class ChatCompletionParseParams(RequestOptions, total=False):
    """The keyword arguments of ``chat.completions.parse`` (besides ``response_format``)."""

    model: Required[str]
    messages: Required[Iterable[ChatCompletionMessageParam]]
    audio: Mapping[str, Any] | None
    frequency_penalty: float | None
    function_call: Literal["none", "auto"] | Mapping[str, str]
    functions: Iterable[FunctionDefinitionParam | Mapping[str, Any] | type | Callable[..., Any]]
    logit_bias: Mapping[str, int] | None
    logprobs: bool | None
    max_completion_tokens: int | None
    max_tokens: int | None
    metadata: Mapping[str, str] | None
    modalities: Sequence[str] | None
    moderation: Mapping[str, Any] | None
    n: int | None
    parallel_tool_calls: bool
    prediction: Mapping[str, Any] | None
    presence_penalty: float | None
    prompt_cache_key: str
    prompt_cache_retention: str | None
    prompt_cache_options: Mapping[str, Any] | None
    reasoning_effort: str | None
    safety_identifier: str
    seed: int | None
    service_tier: str | None
    stop: str | Sequence[str] | None
    store: bool | None
    stream_options: StreamOptionsParam | None
    temperature: float | None
    tool_choice: str | Mapping[str, Any]
    #: tool definitions; an attrs class or a typed function is turned into one (anyoai.tool)
    tools: Iterable[ChatCompletionToolParam | Mapping[str, Any] | type | Callable[..., Any]]
    top_logprobs: int | None
    top_p: float | None
    user: str
    verbosity: str | None
    web_search_options: Mapping[str, Any]


class ChatCompletionCreateParams(ChatCompletionParseParams, total=False):
    """The keyword arguments of ``chat.completions.create`` (besides ``stream``)."""

    #: a format dict, or an attrs class (sent as a strict json_schema format)
    response_format: ResponseFormatParam | Mapping[str, Any] | type


class CompletionCreateParams(RequestOptions, total=False):
    """The keyword arguments of ``completions.create`` (besides ``stream``)."""

    model: Required[str]
    prompt: Required[str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]] | None]
    best_of: int | None
    echo: bool | None
    frequency_penalty: float | None
    logit_bias: Mapping[str, int] | None
    logprobs: int | None
    max_tokens: int | None
    n: int | None
    presence_penalty: float | None
    seed: int | None
    stop: str | Sequence[str] | None
    stream_options: StreamOptionsParam | None
    suffix: str | None
    temperature: float | None
    top_p: float | None
    user: str


class EmbeddingCreateParams(RequestOptions, total=False):
    """The keyword arguments of ``embeddings.create``."""

    model: Required[str]
    input: Required[str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]]]
    dimensions: int
    encoding_format: Literal["float", "base64"]
    user: str


class ModerationCreateParams(RequestOptions, total=False):
    """The keyword arguments of ``moderations.create``."""

    input: Required[str | Sequence[str] | Sequence[Mapping[str, Any]]]
    model: str


class EditCreateParams(RequestOptions, total=False):
    """The keyword arguments of the legacy ``edits.create``."""

    model: Required[str]
    instruction: Required[str]
    input: str | None
    n: int | None
    temperature: float | None
    top_p: float | None
