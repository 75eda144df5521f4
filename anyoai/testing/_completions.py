"""The legacy text endpoints of the fake server: ``POST /v1/completions`` and ``POST /v1/edits``.

A completion is ``" This is a fake completion of: <prompt>"``, one choice per prompt and ``n``,
cut after ``max_tokens`` words; ``echo``, ``logprobs=N`` and streaming work as the API's. An edit
is the input with ``" (edited: <instruction>)"`` appended.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from ._framework import Cost, Reply, RequestContext, Route, dumps, json_reply, stream_reply
from ._generate import FINGERPRINT, completion_logprobs, count_words, split_pieces, truncate_words
from ._validation import (
    invalid_type,
    invalid_value,
    is_token_list,
    optional_bool,
    optional_int,
    optional_str,
    require,
    require_str,
    wants_usage,
)

__all__ = ["COMPLETION_ROUTES", "completions", "edits", "parse_prompts"]


def parse_prompts(value: Any, param: str) -> list[tuple[str, int]]:
    """Each prompt as (text, token count): strings, a token list, or a list of either."""
    if isinstance(value, str):
        return [(value, count_words(value))]
    if is_token_list(value):
        return [(" ".join(str(token) for token in value), len(value))]
    if isinstance(value, list):
        if not value:
            raise invalid_value(
                param, f"Invalid '{param}': empty array. Expected at least one item."
            )
        prompts: list[tuple[str, int]] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                prompts.append((item, count_words(item)))
            elif is_token_list(item):
                prompts.append((" ".join(str(token) for token in item), len(item)))
            else:
                raise invalid_type(f"{param}[{index}]", "a string or an array of integers", item)
        return prompts
    raise invalid_type(param, "a string or an array", value)


def completions(ctx: RequestContext) -> Reply:
    """``POST /v1/completions`` (legacy text completions)."""
    body = ctx.body_object()
    model = require_str(body, "model")
    prompts = parse_prompts(require(body, "prompt"), "prompt")
    n = optional_int(body, "n", 1, 128) or 1
    max_tokens = optional_int(body, "max_tokens", 1)
    echo = optional_bool(body, "echo")
    logprobs = optional_int(body, "logprobs", 0, 5)
    stream = optional_bool(body, "stream")
    include_usage = wants_usage(body, stream)

    generated: list[tuple[str, str, str]] = []  # (prompt, text, finish_reason) per prompt
    completion_tokens = 0
    for prompt, _ in prompts:
        text, cut = truncate_words(f" This is a fake completion of: {prompt}", max_tokens)
        generated.append((prompt, text, "length" if cut else "stop"))
        completion_tokens += count_words(text) * n
    prompt_tokens = sum(tokens for _, tokens in prompts)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    completion_id = ctx.make_id("cmpl")
    # every prompt gets n completions of up to max_tokens each
    reserved = max_tokens * n * len(prompts) if max_tokens is not None else 0
    cost = Cost(model=model, charge=prompt_tokens + reserved, used=usage["total_tokens"])

    def envelope(choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "text_completion",
            "created": ctx.created,
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }

    if stream:
        # per prompt: the text each chunk carries, its logprobs and finish reason
        events: list[str] = []
        per_choice: list[list[tuple[str, Any, str | None]]] = []
        for prompt, text, finish_reason in generated:
            steps: list[tuple[str, Any, str | None]] = []
            offset = len(prompt)
            position = 0
            if echo and prompt:
                entry = completion_logprobs([prompt], logprobs, 0) if logprobs is not None else None
                steps.append((prompt, entry, None))
                position = 1
            for piece in split_pieces(text):
                entry = (
                    completion_logprobs([piece], logprobs, offset, position)
                    if logprobs is not None
                    else None
                )
                steps.append((piece, entry, None))
                offset += len(piece)
                position += 1
            steps.append(("", None, finish_reason))
            per_choice.append(steps)
        longest = max(len(steps) for steps in per_choice)
        for step in range(longest):
            for prompt_index, steps in enumerate(per_choice):
                if step >= len(steps):
                    continue
                piece, piece_logprobs, piece_finish = steps[step]
                for copy in range(n):
                    choice = {
                        "index": prompt_index * n + copy,
                        "text": piece,
                        "logprobs": piece_logprobs,
                        "finish_reason": piece_finish,
                    }
                    chunk = envelope([choice])
                    if include_usage:
                        chunk["usage"] = None
                    events.append(dumps(chunk))
        if include_usage:
            final = envelope([])
            final["usage"] = usage
            events.append(dumps(final))
        events.append("[DONE]")
        return attrs.evolve(stream_reply(events), cost=cost)

    choices: list[dict[str, Any]] = []
    for prompt_index, (prompt, text, finish_reason) in enumerate(generated):
        full = prompt + text if echo else text
        entry = None
        if logprobs is not None:
            pieces = ([prompt] if echo and prompt else []) + split_pieces(text)
            entry = completion_logprobs(pieces, logprobs, 0 if echo else len(prompt))
        for copy in range(n):
            choices.append(
                {
                    "index": prompt_index * n + copy,
                    "text": full,
                    "logprobs": entry,
                    "finish_reason": finish_reason,
                }
            )
    result = envelope(choices)
    result["usage"] = usage
    return attrs.evolve(json_reply(result), cost=cost)


# --------------------------------------------------------------------------------------------
# edits (legacy)


def edits(ctx: RequestContext) -> Reply:
    """``POST /v1/edits`` (legacy): the input with ``" (edited: <instruction>)"`` appended."""
    body = ctx.body_object()
    model = require_str(body, "model")
    instruction = require_str(body, "instruction")
    text_input = optional_str(body, "input") or ""
    n = optional_int(body, "n", 1, 20) or 1
    text = f"{text_input} (edited: {instruction})"
    prompt_tokens = count_words(text_input) + count_words(instruction)
    completion_tokens = count_words(text) * n
    answer = json_reply(
        {
            "object": "edit",
            "created": ctx.created,
            "choices": [{"text": text, "index": index} for index in range(n)],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )
    cost = Cost(model=model, charge=prompt_tokens, used=prompt_tokens + completion_tokens)
    return attrs.evolve(answer, cost=cost)


#: The legacy completions and edits endpoints (part of
#: :data:`~anyoai.testing._table.DEFAULT_ROUTES`).
COMPLETION_ROUTES: Final[tuple[Route, ...]] = (
    Route("POST", "/v1/completions", completions),
    Route("POST", "/v1/edits", edits),
)
