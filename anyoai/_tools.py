"""Tool calls parsed back into attrs objects, and structured outputs.

:func:`parse_tool_calls` turns the tool calls of a chat completion into
:class:`ParsedToolCall` objects whose ``arguments`` are instances of the attrs class (or of the
arguments class of the function) the call names, structured by the one converter. Arguments
that are not JSON, or do not fit, raise :class:`ToolCallError` with the raw text.

:func:`parse_structured` checks a completion asked for with a JSON Schema response format and
parses each choice's content into the requested class.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from ._errors import check_content_filter
from ._exceptions import (
    LengthFinishReasonError,
    ResponseValidationError,
    StructuredOutputError,
    ToolCallError,
)
from ._schema import arguments_class, name_of
from ._serde import structure_value

__all__ = [
    "ParsedToolCall",
    "parse_structured",
    "parse_tool_calls",
]

T = TypeVar("T")


@attrs.frozen
class ParsedToolCall(Generic[T]):
    """A tool call with its arguments parsed.

    :ivar id: the call's id (``None`` for a legacy function call).
    :ivar name: the tool's name.
    :ivar arguments: an instance of the target attrs class, or of the function's arguments
        class (its fields are the function's parameters).
    :ivar target: the class or function the call was matched to.
    """

    id: str | None
    name: str
    arguments: T
    target: Any

    def invoke(self) -> Any:
        """Call the target function with the arguments (its coroutine, for an async one); for
        a class target, return the arguments instance."""
        if attrs.has(self.target) and self.target is type(self.arguments):
            return self.arguments
        arguments: Any = self.arguments
        values = {f.name: getattr(arguments, f.name) for f in attrs.fields(type(arguments))}
        return self.target(**values)


def _argument_type(target: Any) -> type:
    if attrs.has(target):
        return target
    if callable(target) and (inspect.isfunction(target) or inspect.ismethod(target)):
        return arguments_class(target)
    raise TypeError(f"a tool target must be an attrs class or a function, got {target!r}")


def parse_arguments(target: Any, name: str, arguments: str, call_id: str | None) -> Any:
    """Parse one call's *arguments* text into *target*'s arguments type.

    :raises ToolCallError: if the text is not JSON or does not fit.
    """
    cls = _argument_type(target)
    try:
        data = json.loads(arguments) if arguments.strip() else {}
    except ValueError as exc:
        raise ToolCallError(
            f"the arguments of the {name!r} call are not valid JSON ({exc}): {arguments[:200]!r}",
            name=name,
            arguments=arguments,
            call_id=call_id,
        ) from None
    try:
        return structure_value(data, cls)
    except ResponseValidationError as exc:
        raise ToolCallError(
            f"the arguments of the {name!r} call do not fit {cls.__name__}: {exc.message}",
            name=name,
            arguments=arguments,
            call_id=call_id,
            path=exc.path,
        ) from None


def parse_tool_calls(result: Any, targets: Sequence[Any]) -> list[ParsedToolCall[Any]]:
    """The function calls of the first choice of *result* (tool calls, or a legacy function
    call), parsed into the class or function among *targets* that each one names. A target is
    matched by its class or function name; a mapping ``{"name": target}`` matches a tool sent
    under another name (``anyoai.tool(Target, name="name")``).

    :raises ToolCallError: for a call naming no target, or arguments that do not fit.
    """
    by_name: dict[str, Any] = {}
    for target in targets:
        if isinstance(target, Mapping):  # {"custom_name": Target} for tool(Target, name=...)
            by_name.update(target)
        else:
            by_name[name_of(target)] = target
    choices = getattr(result, "choices", None) or []
    if not choices:
        return []
    message = choices[0].message
    calls: list[tuple[str | None, str, str]] = []
    for call in message.tool_calls or ():
        function = getattr(call, "function", None)
        if function is not None:  # custom and unknown tool kinds carry no function
            calls.append((call.id, function.name, function.arguments))
    if message.function_call is not None and not calls:
        # the legacy form; some servers (llama.cpp) send it as well as the tool calls
        calls.append((None, message.function_call.name, message.function_call.arguments))
    parsed = []
    for call_id, name, arguments in calls:
        target = by_name.get(name)
        if target is None:
            raise ToolCallError(
                f"the model called {name!r}, which is not among the tools given to parse "
                f"({sorted(by_name)})",
                name=name,
                arguments=arguments,
                call_id=call_id,
            )
        parsed.append(
            ParsedToolCall(call_id, name, parse_arguments(target, name, arguments, call_id), target)
        )
    return parsed


def parse_structured(result: Any, cls: type[T]) -> list[T | None]:
    """Each choice's content parsed into *cls*; ``None`` for a choice that refused.

    :raises LengthFinishReasonError: if a choice was cut by the token limit.
    :raises ContentFilterError: if a choice was cut by the content filter.
    :raises StructuredOutputError: if a content is not JSON or does not fit *cls*.
    """
    check_content_filter(result)
    parsed: list[T | None] = []
    for choice in result.choices:
        if choice.finish_reason == "length":
            raise LengthFinishReasonError(
                f"the structured output of choice {choice.index} was cut by the token limit "
                "(finish_reason='length'): raise max_completion_tokens; the partial result is "
                "on exc.result",
                result=result,
            )
        message = choice.message
        if message.refusal is not None or message.content is None:
            parsed.append(None)
            continue
        try:
            data = json.loads(message.content)
        except ValueError as exc:
            raise StructuredOutputError(
                f"the structured output of choice {choice.index} is not valid JSON ({exc})",
                result=result,
                body=message.content,
            ) from None
        try:
            parsed.append(structure_value(data, cls))
        except ResponseValidationError as exc:
            raise StructuredOutputError(
                f"the structured output of choice {choice.index} does not fit "
                f"{cls.__name__}: {exc.message}",
                result=result,
                path=exc.path,
                body=message.content,
            ) from None
    return parsed
