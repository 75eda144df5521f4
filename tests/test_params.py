"""Bad input is caught before anything is sent, with a typed error that names the parameter."""

from __future__ import annotations

from typing import Any

import pytest

from anyoai import NOT_GIVEN, InvalidParameterError, Timeout
from anyoai._params import ParamSpec, check_messages
from anyoai.types import ChatCompletionMessage
from anyoai.types.params import ChatCompletionCreateParams, EmbeddingCreateParams

CHAT = ParamSpec.compile(
    "chat.completions.create", ChatCompletionCreateParams, extra_checks={"messages": check_messages}
)
EMBED = ParamSpec.compile("embeddings.create", EmbeddingCreateParams)
OK = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def fails(spec: ParamSpec, **params: Any) -> InvalidParameterError:
    with pytest.raises(InvalidParameterError) as info:
        spec.split(params)
    return info.value


def test_valid_call_splits_body_and_options() -> None:
    body, options = CHAT.split(
        {**OK, "temperature": 0.2, "n": 2, "timeout": 5, "extra_headers": {"X-A": "1"}}
    )
    assert body == {**OK, "temperature": 0.2, "n": 2}
    assert options.timeout == Timeout.coerce(5)
    assert options.extra_headers == {"X-A": "1"}


def test_not_given_is_omitted_and_none_is_sent() -> None:
    body, _ = CHAT.split({**OK, "temperature": NOT_GIVEN, "seed": None})
    assert "temperature" not in body
    assert body["seed"] is None


def test_generators_are_materialised() -> None:
    body, _ = CHAT.split({"model": "m", "messages": (m for m in OK["messages"])})
    assert body["messages"] == OK["messages"]


def test_misspelt_parameter_gets_a_suggestion() -> None:
    error = fails(CHAT, **OK, temprature=0.2)
    assert error.param == "temprature"
    assert "did you mean 'temperature'" in str(error)
    assert isinstance(error, TypeError)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("temperature", "hot", "a number"),
        ("n", 1.5, "an integer"),
        ("n", True, "an integer"),
        ("logprobs", "yes", "true or false"),
        ("stop", 3, "a string"),
        ("tools", {"type": "function"}, "a list"),
        ("response_format", "json", "a mapping"),
        ("messages", "hello", "a list"),
        ("model", 4, "a string"),
    ],
)
def test_ill_typed_parameters_name_the_parameter(name: str, value: Any, expected: str) -> None:
    error = fails(CHAT, **{**OK, name: value})
    assert error.param == name
    assert expected in str(error)
    assert "chat.completions.create" in str(error)


def test_missing_required_parameters() -> None:
    error = fails(CHAT, model="m")
    assert error.param == "messages"
    assert "missing required" in str(error)


def test_message_without_role_names_its_index() -> None:
    error = fails(CHAT, model="m", messages=[{"role": "user", "content": "a"}, {"content": "b"}])
    assert error.param == "messages[1].role"


def test_message_that_is_not_a_mapping() -> None:
    error = fails(CHAT, model="m", messages=[["user", "hi"]])
    assert error.param == "messages"


def test_empty_messages() -> None:
    assert fails(CHAT, model="m", messages=[]).param == "messages"


def test_result_messages_are_accepted() -> None:
    body, _ = CHAT.split({"model": "m", "messages": [ChatCompletionMessage(content="hi")]})
    assert isinstance(body["messages"][0], ChatCompletionMessage)


def test_open_string_sets_are_not_second_guessed() -> None:
    body, _ = EMBED.split({"model": "m", "input": "x", "encoding_format": "float16-next-year"})
    assert body["encoding_format"] == "float16-next-year"


@pytest.mark.parametrize("value", ["text", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_embedding_inputs(value: Any) -> None:
    body, _ = EMBED.split({"model": "m", "input": value})
    assert body["input"] == value


def test_bad_timeout_and_retries() -> None:
    assert fails(CHAT, **OK, timeout="soon").param == "timeout"
    assert fails(CHAT, **OK, timeout=-1).param == "timeout"
    assert fails(CHAT, **OK, max_retries=-1).param == "max_retries"
