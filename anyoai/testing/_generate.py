"""Generated content of the fake server's answers: fake text, token counts, log probabilities,
and values that fit a JSON Schema (tool-call arguments, structured outputs).

Tokens
    The fake "tokenizer" counts whitespace-separated words: ``len(text.split())``. Streams send
    one word per chunk, each with the whitespace that follows it, so joining the pieces gives
    back the text exactly.

Log probabilities
    The token at position *i* of an answer has log probability ``-0.1 * (i + 1)``; its *k*-th
    alternative is ``<token>~k`` (the token stripped), with a log probability *k* lower.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from ._framework import dumps

__all__ = [
    "FINGERPRINT",
    "chat_token_logprobs",
    "chunks_of",
    "completion_logprobs",
    "count_words",
    "example_value",
    "split_pieces",
    "tool_arguments",
    "truncate_words",
]

#: The ``system_fingerprint`` of every chat and text completion.
FINGERPRINT: Final = "fp_fake"

# --------------------------------------------------------------------------------------------
# text helpers

_PIECE = re.compile(r"\s*\S+\s*")


def count_words(text: str) -> int:
    """The fake token count: the number of whitespace-separated words."""
    return len(text.split())


def split_pieces(text: str) -> list[str]:
    """*text* cut into words, each with the whitespace after it: ``"".join(pieces) == text``."""
    pieces: list[str] = _PIECE.findall(text)
    if not pieces:
        return [text] if text else []
    return pieces


def truncate_words(text: str, limit: int | None) -> tuple[str, bool]:
    """The first *limit* words of *text* (trailing whitespace dropped), and whether it was cut."""
    if limit is None:
        return text, False
    pieces = split_pieces(text)
    if len(pieces) <= limit:
        return text, False
    return "".join(pieces[:limit]).rstrip(), True


def chunks_of(text: str, size: int) -> list[str]:
    """*text* cut into pieces of *size* characters (the last may be shorter)."""
    return [text[start : start + size] for start in range(0, len(text), size)]


def _logprob(position: int) -> float:
    return round(-0.1 * (position + 1), 6)


def chat_token_logprobs(pieces: Sequence[str], top: int, start: int = 0) -> list[dict[str, Any]]:
    """Chat-style log probabilities: one entry per piece, with *top* alternatives each."""
    entries: list[dict[str, Any]] = []
    for position, token in enumerate(pieces, start):
        logprob = _logprob(position)
        alternatives = [{"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}]
        for rank in range(1, top):
            other = f"{token.strip()}~{rank}"
            alternatives.append(
                {
                    "token": other,
                    "logprob": round(logprob - rank, 6),
                    "bytes": list(other.encode("utf-8")),
                }
            )
        entries.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode("utf-8")),
                "top_logprobs": alternatives[:top],
            }
        )
    return entries


def completion_logprobs(pieces: Sequence[str], top: int, offset: int, start: int = 0) -> Any:
    """Text-completion log probabilities of *pieces* (``tokens``, ``token_logprobs``,
    ``top_logprobs`` with *top* alternatives, ``text_offset`` from *offset*)."""
    tokens = list(pieces)
    values = [_logprob(position) for position in range(start, start + len(tokens))]
    tops: list[dict[str, float]] = []
    offsets: list[int] = []
    for token, logprob in zip(tokens, values, strict=True):
        alternatives = {token: logprob}
        for rank in range(1, top):
            alternatives[f"{token.strip()}~{rank}"] = round(logprob - rank, 6)
        tops.append(dict(list(alternatives.items())[:top]))
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "top_logprobs": tops,
        "text_offset": offsets,
    }


# --------------------------------------------------------------------------------------------
# JSON-schema examples (tool arguments, structured outputs)

_MAX_DEPTH: Final = 32


def _resolve_ref(root: Any, ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def example_value(schema: Any, name: str, *, root: Any, recurse: bool, depth: int = 0) -> Any:
    """A value that fits *schema*: the rules the fake uses for tool arguments and outputs.

    string: its first ``enum`` value, else ``"<name>-value"``; integer: 1; number: 1.5;
    boolean: true; null: null; array: ``[]``, or with *recurse* one item; object: ``{}``, or with
    *recurse* every property. ``const``, ``enum``, ``anyOf``/``oneOf``/``allOf`` (first option)
    and, with *recurse*, local ``$ref`` are understood.
    """
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "$ref" in schema and recurse:
        return example_value(
            _resolve_ref(root, schema["$ref"]), name, root=root, recurse=recurse, depth=depth + 1
        )
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            choices = [option for option in options if option != {"type": "null"}] or options
            return example_value(choices[0], name, root=root, recurse=recurse, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [entry for entry in kind if entry != "null"] or kind
        kind = kinds[0] if kinds else None
    if kind is None:
        if "properties" in schema:
            kind = "object"
        elif "items" in schema:
            kind = "array"
    if kind == "string":
        return f"{name}-value"
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        items = schema.get("items")
        if not recurse or not isinstance(items, dict):
            return []
        return [example_value(items, name, root=root, recurse=True, depth=depth + 1)]
    if kind == "object":
        properties = schema.get("properties")
        if not recurse or not isinstance(properties, dict):
            return {}
        return {
            key: example_value(value, key, root=root, recurse=True, depth=depth + 1)
            for key, value in properties.items()
        }
    return None


def tool_arguments(parameters: Any) -> str:
    """The arguments of a fake tool call: a value for every property (nested objects and one
    item of each array included), compact JSON."""
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    if not isinstance(properties, dict):
        return "{}"
    values = {
        key: example_value(value, key, root=parameters, recurse=True)
        for key, value in properties.items()
    }
    return dumps(values)
