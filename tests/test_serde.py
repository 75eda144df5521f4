"""The converter: renames, strict primitives, tagged and kind unions, vectors, error paths."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from anyoai import ResponseValidationError
from anyoai._serde import decode_json, encode_json, structure, structure_value, unstructure
from anyoai.types import (
    ChatCompletion,
    ChatCompletionMessage,
    ChatCompletionMessageCustomToolCall,
    ChatCompletionMessageToolCall,
    CreateEmbeddingResponse,
    UnknownToolCall,
)

BASE = {"id": "chatcmpl-1", "created": 1, "model": "m"}


def chat(**message: object) -> dict[str, object]:
    return {**BASE, "object": "chat.completion", "choices": [{"index": 0, "message": message}]}


def test_object_key_is_renamed_both_ways() -> None:
    result = structure_value(chat(role="assistant", content="hi"), ChatCompletion)
    assert result.object_ == "chat.completion"
    assert unstructure(result)["object"] == "chat.completion"


def test_unknown_keys_are_ignored() -> None:
    data = chat(role="assistant", content="hi", brand_new_field={"x": 1})
    data["another_new_top_level_key"] = [1, 2]
    assert structure_value(data, ChatCompletion).text == "hi"


def test_tool_calls_dispatch_on_type_and_keep_unknown_variants() -> None:
    calls = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "custom", "custom": {"name": "g", "input": "free text"}},
        {"id": "c", "type": "mcp_call", "server": "x"},
    ]
    message = structure_value(chat(role="assistant", tool_calls=calls), ChatCompletion).messages[0]
    assert message.tool_calls is not None
    first, second, third = message.tool_calls
    assert isinstance(first, ChatCompletionMessageToolCall) and first.function.name == "f"
    assert isinstance(second, ChatCompletionMessageCustomToolCall)
    assert second.custom.input == "free text"
    assert isinstance(third, UnknownToolCall)
    assert third.raw == calls[2]
    # and an unknown variant goes back out exactly as it came in
    assert unstructure(third) == calls[2]


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"created": "yesterday"}, "$.created"),
        ({"choices": [{"index": 0, "message": {"content": 5}}]}, "$.choices[0].message.content"),
        ({"choices": [{"index": True}]}, "$.choices[0].index"),
        ({"choices": "none"}, "$.choices"),
        ({"choices": [{"message": "text"}]}, "$.choices[0].message"),
    ],
)
def test_type_errors_name_the_json_path(patch: dict[str, object], path: str) -> None:
    data = {**chat(role="assistant", content="x"), **patch}
    with pytest.raises(ResponseValidationError) as info:
        structure_value(data, ChatCompletion)
    assert info.value.path == path
    assert path in str(info.value)


def test_missing_required_field_names_it() -> None:
    with pytest.raises(ResponseValidationError) as info:
        structure_value({"id": "x", "model": "m", "choices": []}, ChatCompletion)
    assert info.value.path == "$.created"


def test_not_an_object_at_the_top() -> None:
    with pytest.raises(ResponseValidationError):
        structure_value([1, 2, 3], ChatCompletion)


def test_invalid_json_is_a_validation_error_not_json_decode_error() -> None:
    with pytest.raises(ResponseValidationError, match="not valid JSON"):
        decode_json(b'{"id": "chatcmpl-1", "choices": [')


def test_integral_float_accepted_for_int() -> None:
    data = {**chat(role="assistant", content="x"), "created": 1700000000.0}
    assert structure_value(data, ChatCompletion).created == 1700000000


def test_embedding_float_and_base64_decode_to_the_same_floats() -> None:
    floats = [0.5, -1.25, 3.0, 1e-3]
    packed = struct.pack("<4f", *floats)
    expected = list(struct.unpack("<4f", packed))
    for encoded in (expected, base64.b64encode(packed).decode()):
        body = {
            "object": "list",
            "model": "e",
            "data": [{"object": "embedding", "index": 0, "embedding": encoded}],
        }
        result, _ = structure(json.dumps(body).encode(), CreateEmbeddingResponse)
        assert result.data[0].embedding == expected


@pytest.mark.parametrize("bad", [["a", 1.0], "not base64!", base64.b64encode(b"abc").decode()])
def test_bad_embeddings_are_validation_errors(bad: object) -> None:
    body = {"object": "list", "model": "e", "data": [{"index": 0, "embedding": bad}]}
    with pytest.raises(ResponseValidationError) as info:
        structure_value(body, CreateEmbeddingResponse)
    assert info.value.path == "$.data[0].embedding"


def test_message_from_a_result_is_sent_back_as_a_valid_parameter() -> None:
    message = ChatCompletionMessage(
        role="assistant",
        content=None,
        annotations=[],
        tool_calls=[
            ChatCompletionMessageToolCall(
                id="call_1",
                function=__import__("anyoai").types.FunctionCall(name="f", arguments='{"a":1}'),
            )
        ],
        reasoning_content="thinking",
    )
    sent = json.loads(encode_json({"messages": [message]}))
    assert sent == {
        "messages": [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            }
        ]
    }


def test_encode_is_compact_utf8() -> None:
    assert encode_json({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}'.encode()
