"""``pool.chat.completions``: chat completions, streamed or not."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

import attrs

from .._compat import Unpack
from .._errors import check_content_filter
from .._exceptions import InvalidParameterError
from .._model import NOT_GIVEN, NotGiven
from .._params import ParamSpec, check_messages
from .._schema import json_schema, name_of, tool
from .._streaming import ChatCompletionStream
from .._tokens import estimate_chat
from .._tools import parse_structured
from ..types.chat import ChatCompletion, ParsedChatCompletion
from ..types.params import ChatCompletionCreateParams, ChatCompletionParseParams
from ._base import Resource

if TYPE_CHECKING:
    from ._base import Sender

__all__ = ["Chat", "ChatCompletions", "response_format_for"]

T = TypeVar("T")

_SPEC = ParamSpec.compile(
    "chat.completions.create", ChatCompletionCreateParams, extra_checks={"messages": check_messages}
)


class ChatCompletions(Resource):
    """``/chat/completions``."""

    __slots__ = ()

    @overload
    async def create(
        self, *, stream: Literal[True], **params: Unpack[ChatCompletionCreateParams]
    ) -> ChatCompletionStream: ...

    @overload
    async def create(
        self,
        *,
        stream: Literal[False] | NotGiven = NOT_GIVEN,
        **params: Unpack[ChatCompletionCreateParams],
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self, *, stream: bool, **params: Unpack[ChatCompletionCreateParams]
    ) -> ChatCompletion | ChatCompletionStream: ...

    async def create(
        self, *, stream: bool | NotGiven = NOT_GIVEN, **params: Any
    ) -> ChatCompletion | ChatCompletionStream:
        """Create a chat completion.

        Takes the API's parameters as keywords (``model``, ``messages``, ``tools``,
        ``tool_choice``, ``functions``, ``response_format``, ``logprobs``, ``n``,
        ``stream_options``, ... see :class:`~anyoai.types.params.ChatCompletionCreateParams`),
        plus ``extra_headers``, ``extra_query``, ``extra_body``, ``timeout`` and ``max_retries``.

        :param stream: ``True`` returns a :class:`ChatCompletionStream` once the response head
            has arrived; use it as ``async with``. Otherwise a :class:`ChatCompletion`.
        :raises InvalidParameterError: for an unknown, missing or ill-typed parameter.
        :raises APIStatusError: (a subclass) for an error answer, after retries.
        :raises APIConnectionError: when no answer came, after retries.
        """
        body, options = _SPEC.split(_with_schemas(params))
        result = await self._create(
            "/chat/completions",
            body,
            options,
            ChatCompletion,
            stream=stream,
            stream_cls=ChatCompletionStream,
            estimator=estimate_chat,
        )
        if isinstance(result, ChatCompletion) and self._client.raise_on_content_filter:
            check_content_filter(result)
        return result

    async def parse(
        self, *, response_format: type[T], **params: Unpack[ChatCompletionParseParams]
    ) -> ParsedChatCompletion[T]:
        """Create a chat completion whose answer is an instance of *response_format*.

        *response_format* is an attrs class: it is sent as a strict ``json_schema`` response
        format (see :func:`anyoai.json_schema`), and each choice's content comes back parsed,
        in ``result.parsed`` (the first choice) and ``result.parsed_choices``. A refusal leaves
        ``parsed`` as ``None`` and sets ``result.refusal``. Tools given as attrs classes or
        functions work as in :meth:`create`; parse their calls with
        ``result.parse_tool_calls(...)``.

        :raises LengthFinishReasonError: if the answer was cut by the token limit.
        :raises ContentFilterError: if it was cut by the content filter.
        :raises SchemaError: if *response_format* cannot be described in strict mode.
        """
        if not attrs.has(response_format):
            raise InvalidParameterError(
                "chat.completions.parse: response_format must be an attrs class, got "
                f"{response_format!r} (use create() for a response_format dict)",
                param="response_format",
            )
        if "stream" in params:
            raise InvalidParameterError(
                "chat.completions.parse does not stream; use create(stream=True) and parse "
                "the final completion",
                param="stream",
            )
        fmt = response_format_for(response_format)
        result = await self.create(**params, response_format=fmt)
        parsed: list[T | None] = parse_structured(result, cast("type[T]", response_format))
        out: ParsedChatCompletion[T] = ParsedChatCompletion(
            **{a.name: getattr(result, a.name) for a in attrs.fields(ChatCompletion) if a.init},
            parsed_choices=parsed,
        )
        if result.meta is not None:
            out._attach(result.meta)
        return out


def response_format_for(cls: type) -> dict[str, Any]:
    """The strict ``json_schema`` response format of an attrs class."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name_of(cls), "schema": json_schema(cls), "strict": True},
    }


def _is_target(value: Any) -> bool:
    return attrs.has(value) or inspect.isfunction(value) or inspect.ismethod(value)


def _with_schemas(params: dict[str, Any]) -> dict[str, Any]:
    """Turn attrs classes and typed functions given as tools, legacy functions, their
    parameters or a response format into the JSON the API takes."""
    tools = params.get("tools")
    if isinstance(tools, (list, tuple)) and any(_is_target(t) for t in tools):
        params = {**params, "tools": [tool(t) if _is_target(t) else t for t in tools]}
    functions = params.get("functions")
    if isinstance(functions, (list, tuple)):
        converted = []
        for function in functions:
            if _is_target(function):
                function = tool(function, strict=False)["function"]
                function.pop("strict", None)
            elif isinstance(function, Mapping) and _is_target(function.get("parameters")):
                # the seed library's form: {"name", "description", "parameters": SomeClass}
                function = {
                    **function,
                    "parameters": json_schema(function["parameters"], strict=False),
                }
            converted.append(function)
        params = {**params, "functions": converted}
    if _is_target(params.get("response_format")):
        params = {**params, "response_format": response_format_for(params["response_format"])}
    return params


class Chat:
    """``pool.chat``: holds :attr:`completions`."""

    __slots__ = ("completions",)

    def __init__(self, client: Sender) -> None:
        self.completions = ChatCompletions(client)
