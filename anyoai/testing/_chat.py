"""``POST /v1/chat/completions`` of the fake server: answers, tool calls, structured outputs.

The answer is ``"This is a fake answer to: <last user message>"``, cut after ``max_tokens``
words (``finish_reason: "length"``); a message with the word "refuse" gets a refusal. Function
``tools`` get one parallel tool call per tool and legacy ``functions`` a ``function_call``, with
arguments built from their JSON Schema, until the last message is a tool's (or function's)
result; ``response_format`` gets JSON that fits it. ``stream=True`` streams the answer word by
word and tool-call arguments in 4-character pieces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

from ._framework import (
    Cost,
    EndpointError,
    Reply,
    RequestContext,
    Route,
    dumps,
    json_reply,
    stream_reply,
)
from ._generate import (
    FINGERPRINT,
    chat_token_logprobs,
    chunks_of,
    count_words,
    example_value,
    split_pieces,
    tool_arguments,
    truncate_words,
)
from ._validation import (
    invalid_type,
    invalid_value,
    missing,
    optional_bool,
    optional_int,
    require,
    require_str,
    wants_usage,
)

__all__ = ["CHAT_ROUTES", "chat_completions", "message_text"]

_REFUSAL: Final = "I'm sorry, I can't help with that."


def message_text(content: Any) -> str:
    """The text of a message's content: the string, or the text parts joined with spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return " ".join(texts)
    return ""


@attrs.frozen(kw_only=True)
class _FunctionSpec:
    name: str
    parameters: Any


@attrs.frozen(kw_only=True)
class _ChatOutcome:
    content: str | None = None
    refusal: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    function_call: dict[str, Any] | None = None
    finish_reason: str = "stop"

    def completion_tokens(self) -> int:
        words = count_words(self.content or "") + count_words(self.refusal or "")
        for call in self.tool_calls:
            function = call["function"]
            words += count_words(function["name"]) + count_words(function["arguments"])
        if self.function_call is not None:
            words += count_words(self.function_call["name"])
            words += count_words(self.function_call["arguments"])
        return words


def _objects(value: Any, param: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each object of the array parameter *param*, with its path (``tools[0]``)."""
    if not isinstance(value, list):
        raise invalid_type(param, "an array", value)
    for index, item in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(item, dict):
            raise invalid_type(where, "an object", item)
        yield where, item


def _function_spec(function: dict[str, Any], where: str) -> _FunctionSpec:
    name = function.get("name")
    if not isinstance(name, str):
        raise missing(f"{where}.name")
    return _FunctionSpec(name=name, parameters=function.get("parameters"))


def _function_tools(tools: Any) -> list[_FunctionSpec]:
    functions: list[_FunctionSpec] = []
    for where, tool in _objects(tools, "tools"):
        if tool.get("type", "function") != "function":
            continue
        function = tool.get("function")
        if not isinstance(function, dict):
            raise missing(f"{where}.function")
        functions.append(_function_spec(function, f"{where}.function"))
    return functions


def _legacy_functions(functions: Any) -> list[_FunctionSpec]:
    return [_function_spec(function, where) for where, function in _objects(functions, "functions")]


def _select_tools(body: Mapping[str, Any], functions: list[_FunctionSpec]) -> list[_FunctionSpec]:
    choice = body.get("tool_choice")
    if choice == "none":
        return []
    if isinstance(choice, dict):
        names: list[str] = []
        if choice.get("type") == "allowed_tools":
            allowed = choice.get("allowed_tools")
            entries = allowed.get("tools") if isinstance(allowed, dict) else None
            for entry in entries if isinstance(entries, list) else []:
                function = entry.get("function") if isinstance(entry, dict) else None
                if isinstance(function, dict) and isinstance(function.get("name"), str):
                    names.append(function["name"])
        else:
            function = choice.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
        selected = [spec for spec in functions if spec.name in names]
        if not selected:
            raise invalid_value(
                "tool_choice",
                "Invalid value for 'tool_choice': the tool named in 'tool_choice' is not in "
                "'tools'.",
            )
        functions = selected
    if body.get("parallel_tool_calls") is False:
        return functions[:1]
    return functions


def _select_legacy_function(
    body: Mapping[str, Any], functions: list[_FunctionSpec]
) -> _FunctionSpec | None:
    choice = body.get("function_call")
    if choice == "none" or not functions:
        return None
    if isinstance(choice, dict):
        name = choice.get("name")
        for spec in functions:
            if spec.name == name:
                return spec
        raise invalid_value(
            "function_call",
            "Invalid value for 'function_call': the function named is not in 'functions'.",
        )
    return functions[0]


def _structured_content(response_format: Any, answer: str) -> str:
    if response_format is None:
        return answer
    if not isinstance(response_format, dict):
        raise invalid_type("response_format", "an object", response_format)
    kind = response_format.get("type")
    if kind == "text":
        return answer
    # structured content is spaced JSON, so that it has words and max_tokens can cut it
    # mid-value, as it cuts a real model's output (then finish_reason is "length")
    if kind == "json_object":
        return json.dumps({"answer": answer}, ensure_ascii=False)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise missing("response_format.json_schema")
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            return "{}"
        value = example_value(schema, "value", root=schema, recurse=True)
        return json.dumps(value, ensure_ascii=False)
    raise invalid_value(
        "response_format.type",
        f"Invalid value: {dumps(kind)}. Supported values are: 'text', 'json_object' and "
        "'json_schema'.",
    )


def _chat_outcome(body: Mapping[str, Any], user_text: str, max_tokens: int | None) -> _ChatOutcome:
    if re.search(r"\brefuse\b", user_text, re.IGNORECASE):
        return _ChatOutcome(refusal=_REFUSAL, finish_reason="stop")
    messages = body.get("messages") or [{}]
    answering = messages[-1].get("role") in ("tool", "function")  # results are in: answer
    if body.get("tools") is not None:
        selected = _select_tools(body, _function_tools(body["tools"]))
        if answering and body.get("tool_choice") in (None, "auto"):
            selected = []
        if selected:
            calls = tuple(
                {
                    "id": f"call_fake_{index}",
                    "type": "function",
                    "function": {"name": spec.name, "arguments": tool_arguments(spec.parameters)},
                }
                for index, spec in enumerate(selected)
            )
            return _ChatOutcome(tool_calls=calls, finish_reason="tool_calls")
    if body.get("functions") is not None:
        spec = _select_legacy_function(body, _legacy_functions(body["functions"]))
        if spec is not None and not (answering and body.get("function_call") in (None, "auto")):
            call = {"name": spec.name, "arguments": tool_arguments(spec.parameters)}
            return _ChatOutcome(function_call=call, finish_reason="function_call")
    answer = f"This is a fake answer to: {user_text}"
    content = _structured_content(body.get("response_format"), answer)
    content, cut = truncate_words(content, max_tokens)
    return _ChatOutcome(content=content, finish_reason="length" if cut else "stop")


def _chat_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_logprobs(outcome: _ChatOutcome, top: int) -> dict[str, Any]:
    content = None
    refusal = None
    if outcome.content is not None and not outcome.tool_calls:
        content = chat_token_logprobs(split_pieces(outcome.content), top)
    if outcome.refusal is not None:
        refusal = chat_token_logprobs(split_pieces(outcome.refusal), top)
    return {"content": content, "refusal": refusal}


# one step of a streamed choice: (delta, logprobs, finish_reason)
_Step = tuple[dict[str, Any], dict[str, Any] | None, str | None]


def _chat_steps(outcome: _ChatOutcome, logprobs: bool, top: int) -> list[_Step]:
    steps: list[_Step] = []
    if outcome.tool_calls:
        steps.append(({"role": "assistant", "content": None, "refusal": None}, None, None))
        for index, call in enumerate(outcome.tool_calls):
            function = call["function"]
            header = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            steps.append(({"tool_calls": [header]}, None, None))
            for piece in chunks_of(function["arguments"], 4):
                delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                steps.append((delta, None, None))
    elif outcome.function_call is not None:
        steps.append(({"role": "assistant", "content": None, "refusal": None}, None, None))
        name = outcome.function_call["name"]
        steps.append(({"function_call": {"name": name, "arguments": ""}}, None, None))
        for piece in chunks_of(outcome.function_call["arguments"], 4):
            steps.append(({"function_call": {"arguments": piece}}, None, None))
    elif outcome.refusal is not None:
        steps.append(({"role": "assistant", "content": None, "refusal": ""}, None, None))
        for position, piece in enumerate(split_pieces(outcome.refusal)):
            entry = (
                {"content": None, "refusal": chat_token_logprobs([piece], top, position)}
                if logprobs
                else None
            )
            steps.append(({"refusal": piece}, entry, None))
    else:
        steps.append(({"role": "assistant", "content": "", "refusal": None}, None, None))
        for position, piece in enumerate(split_pieces(outcome.content or "")):
            entry = (
                {"content": chat_token_logprobs([piece], top, position), "refusal": None}
                if logprobs
                else None
            )
            steps.append(({"content": piece}, entry, None))
    steps.append(({}, None, outcome.finish_reason))
    return steps


def chat_completions(ctx: RequestContext) -> Reply:
    """``POST /v1/chat/completions``."""
    body = ctx.body_object()
    model = require_str(body, "model")
    messages = require(body, "messages")
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise EndpointError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_type(f"messages[{index}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise missing(f"messages[{index}].role")
        if not isinstance(role, str):
            raise invalid_type(f"messages[{index}].role", "a string", role)
    n = optional_int(body, "n", 1, 128) or 1
    max_tokens = optional_int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = optional_int(body, "max_tokens", 1)
    logprobs = optional_bool(body, "logprobs")
    top = optional_int(body, "top_logprobs", 0, 20)
    if top is not None and not logprobs:
        raise invalid_value(
            "top_logprobs", "Invalid value: 'logprobs' must be true when 'top_logprobs' is set."
        )
    stream = optional_bool(body, "stream")
    include_usage = wants_usage(body, stream)

    user_text = ""
    for message in reversed(messages):
        if message["role"] == "user":
            user_text = message_text(message.get("content"))
            break
    prompt_tokens = sum(count_words(message_text(message.get("content"))) for message in messages)
    outcome = _chat_outcome(body, user_text, max_tokens)
    usage = _chat_usage(prompt_tokens, outcome.completion_tokens() * n)
    completion_id = ctx.make_id("chatcmpl")
    cost = Cost(
        model=model,
        charge=prompt_tokens + (max_tokens * n if max_tokens is not None else 0),
        used=usage["total_tokens"],
    )

    if stream:
        steps = _chat_steps(outcome, logprobs, top or 0)
        events: list[str] = []
        envelope = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
        for delta, entry, finish_reason in steps:
            for index in range(n):
                chunk: dict[str, Any] = {
                    **envelope,
                    "choices": [
                        {
                            "index": index,
                            "delta": delta,
                            "logprobs": entry,
                            "finish_reason": finish_reason,
                        }
                    ],
                }
                if include_usage:
                    chunk["usage"] = None
                events.append(dumps(chunk))
        if include_usage:
            final = {**envelope, "choices": [], "usage": usage}
            events.append(dumps(final))
        events.append("[DONE]")
        return attrs.evolve(stream_reply(events), cost=cost)

    message_body: dict[str, Any] = {
        "role": "assistant",
        "content": outcome.content,
        "refusal": outcome.refusal,
        "annotations": [],
    }
    if outcome.tool_calls:
        message_body["tool_calls"] = list(outcome.tool_calls)
    if outcome.function_call is not None:
        message_body["function_call"] = outcome.function_call
    choice_logprobs = _chat_logprobs(outcome, top or 0) if logprobs else None
    choices = [
        {
            "index": index,
            "message": message_body,
            "logprobs": choice_logprobs,
            "finish_reason": outcome.finish_reason,
        }
        for index in range(n)
    ]
    answer = json_reply(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": ctx.created,
            "model": model,
            "choices": choices,
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    )
    return attrs.evolve(answer, cost=cost)


#: The chat completions endpoint (part of :data:`~anyoai.testing._table.DEFAULT_ROUTES`).
CHAT_ROUTES: Final[tuple[Route, ...]] = (Route("POST", "/v1/chat/completions", chat_completions),)
