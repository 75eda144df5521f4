"""JSON Schema from attrs classes and typed functions: snapshots checked by hand, and refusals."""

from __future__ import annotations

import datetime
from typing import Any, Literal

import attrs
import pytest

import anyoai

from .models import Location, Unit


@attrs.frozen
class Weather:
    """Get the current weather in a given location."""

    location: Location
    unit: Unit = Unit.fahrenheit
    days: int = 1
    threshold: float = 0.5
    alerts: bool = False
    kind: Literal["current", "forecast"] = "current"
    tags: list[str] = attrs.field(factory=list)
    history: tuple[float, ...] = ()
    extra: dict[str, int] = attrs.field(factory=dict)
    either: int | str = 0


WEATHER_STRICT: dict[str, Any] = {
    "type": "object",
    "description": "Get the current weather in a given location.",
    "properties": {
        "location": {"$ref": "#/$defs/Location"},
        "unit": {
            "type": "string",
            "enum": ["celsius", "fahrenheit"],
            "description": 'Default: "fahrenheit".',
        },
        "days": {"type": "integer", "description": "Default: 1."},
        "threshold": {"type": "number", "description": "Default: 0.5."},
        "alerts": {"type": "boolean", "description": "Default: false."},
        "kind": {
            "type": "string",
            "enum": ["current", "forecast"],
            "description": 'Default: "current".',
        },
        "tags": {"type": "array", "items": {"type": "string"}, "description": "Default: []."},
        "history": {"type": "array", "items": {"type": "number"}, "description": "Default: []."},
        "extra": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"key": {"type": "string"}, "value": {"type": "integer"}},
                "required": ["key", "value"],
                "additionalProperties": False,
            },
            "description": "Default: {}.",
        },
        "either": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "description": "Default: 0.",
        },
    },
    "required": [
        "location",
        "unit",
        "days",
        "threshold",
        "alerts",
        "kind",
        "tags",
        "history",
        "extra",
        "either",
    ],
    "additionalProperties": False,
    "$defs": {
        "Location": {
            "type": "object",
            "description": "Where.",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. San Francisco, CA."},
                "country": {
                    "anyOf": [{"type": "string"}, {"type": "null"}],
                    "description": "Default: null.",
                },
            },
            "required": ["city", "country"],
            "additionalProperties": False,
        }
    },
}


def test_attrs_class_schema_in_strict_mode() -> None:
    assert anyoai.json_schema(Weather) == WEATHER_STRICT


def test_non_strict_mode_keeps_defaults_and_open_maps() -> None:
    schema = anyoai.json_schema(Weather, strict=False)
    assert "additionalProperties" not in schema
    assert schema["required"] == ["location"]
    assert schema["properties"]["days"] == {"type": "integer", "default": 1}
    assert schema["properties"]["unit"]["default"] == "fahrenheit"
    assert schema["properties"]["extra"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "default": {},
    }
    assert schema["$defs"]["Location"]["required"] == ["city"]


def get_weather(
    location: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: int = 1
) -> str:
    """Get the current weather in a given location.

    More text that is not the summary.

    :param location: The city and state, e.g. San Francisco, CA.
    :param days: How many days ahead.
    """
    return f"{location} {unit} {days}"


def test_function_schema_from_its_signature_and_docstring() -> None:
    assert anyoai.tool(get_weather) == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a given location.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA.",
                    },
                    "unit": {
                        "type": "string",
                        "enum": ["celsius", "fahrenheit"],
                        "description": 'Default: "celsius".',
                    },
                    "days": {"type": "integer", "description": "How many days ahead. Default: 1."},
                },
                "required": ["location", "unit", "days"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }


def test_tool_from_a_class() -> None:
    entry = anyoai.tool(Weather)
    assert entry["type"] == "function"
    assert entry["function"]["name"] == "Weather"
    assert entry["function"]["description"] == "Get the current weather in a given location."
    assert entry["function"]["strict"] is True
    parameters = entry["function"]["parameters"]
    assert "description" not in parameters
    assert parameters["properties"] == WEATHER_STRICT["properties"]
    assert (
        anyoai.tool(Weather, name="weather", description="Other.")["function"]["name"] == "weather"
    )


@attrs.frozen
class Node:
    """A tree."""

    value: int
    children: list[Node] = attrs.field(factory=list)


def test_recursive_classes() -> None:
    schema = anyoai.json_schema(Node)
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert schema["$defs"]["Node"]["properties"]["value"] == {"type": "integer"}


@attrs.frozen
class HasSet:
    values: set[int]


@attrs.frozen
class HasBytes:
    blob: bytes


@attrs.frozen
class HasDatetime:
    when: datetime.datetime


@attrs.frozen
class HasAny:
    anything: Any


@attrs.frozen
class HasPair:
    pair: tuple[int, str]


@attrs.frozen
class HasIntKeys:
    table: dict[int, str]


@attrs.frozen
class Nested:
    inner: HasSet


@pytest.mark.parametrize(
    ("cls", "where", "named"),
    [
        (HasSet, "HasSet.values", "set"),
        (HasBytes, "HasBytes.blob", "bytes"),
        (HasDatetime, "HasDatetime.when", "datetime"),
        (HasAny, "HasAny.anything", "Any"),
        (HasPair, "HasPair.pair", "tuple"),
        (HasIntKeys, "HasIntKeys.table", "dict"),
        (Nested, "HasSet.values", "set"),
    ],
)
def test_unsupported_types_are_refused_naming_the_type(cls: type, where: str, named: str) -> None:
    with pytest.raises(anyoai.SchemaError) as info:
        anyoai.json_schema(cls)
    assert info.value.where == where
    assert named in str(info.value)
    assert isinstance(info.value, TypeError)


def test_functions_need_annotations_and_no_varargs() -> None:
    def untyped(x):
        return x

    def varargs(*names: str) -> None:
        return None

    with pytest.raises(anyoai.SchemaError, match="needs a type annotation"):
        anyoai.tool(untyped)
    with pytest.raises(anyoai.SchemaError, match=r"\*names"):
        anyoai.tool(varargs)


def test_mixed_enums_are_refused() -> None:
    @attrs.frozen
    class Mixed:
        value: Literal[1, "one"]

    with pytest.raises(anyoai.SchemaError, match="one kind"):
        anyoai.json_schema(Mixed)
