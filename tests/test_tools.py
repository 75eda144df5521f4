"""Tools from attrs classes and typed functions, their calls parsed back, and ``.parse``.

The fake server answers a request with tools by calling every tool it was given (one call per
tool, so two tools make parallel calls), with arguments built from each tool's JSON Schema; the
checks below compare what anyoai parsed with the raw JSON the server sent, read independently.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest

import anyoai
from anyoai.testing import FakeServer, Fault

from .helpers import API_KEY, function_calls
from .models import Location, Unit

pytestmark = pytest.mark.anyio

MODEL = "gpt-4o-mini"
ASK = [{"role": "user", "content": "What is the weather in Paris, and the time there?"}]


@attrs.frozen
class Weather:
    """Get the current weather in a given location."""

    location: Location
    unit: Unit = Unit.fahrenheit
    days: int = 1
    kind: Literal["current", "forecast"] = "current"
    tags: list[str] = attrs.field(factory=list)
    extra: dict[str, int] = attrs.field(factory=dict)


def get_time(timezone: str, twelve_hour: bool = False) -> str:
    """Get the current time in a time zone.

    :param timezone: An IANA time zone, e.g. Europe/Paris.
    :param twelve_hour: Use a 12-hour clock.
    """
    return f"12:00 in {timezone}" + (" (12h)" if twelve_hour else "")


async def lookup_order(order_id: str) -> dict[str, str]:
    """Find an order."""
    return {"order_id": order_id, "status": "shipped"}


def tool_call_body(name: str, arguments: str, model: str = MODEL) -> str:
    """A chat completion calling one tool with *arguments* (raw text), as OpenAI sends it."""
    call = {
        "id": "call_abc123",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    return json.dumps(
        {
            "id": "chatcmpl-tools",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
        }
    )


# --------------------------------------------------------------------------------------------
# what is sent


async def test_classes_and_functions_are_sent_as_strict_tools(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    await pool.chat.completions.create(model=MODEL, messages=ASK, tools=[Weather, get_time])
    sent = server.requests[-1].json["tools"]
    assert sent == [anyoai.tool(Weather), anyoai.tool(get_time)]
    weather, clock = (entry["function"] for entry in sent)
    assert weather["name"] == "Weather" and weather["strict"] is True
    assert weather["description"] == "Get the current weather in a given location."
    assert weather["parameters"]["additionalProperties"] is False
    assert clock["name"] == "get_time"
    assert clock["description"] == "Get the current time in a time zone."
    assert clock["parameters"]["properties"]["timezone"] == {
        "type": "string",
        "description": "An IANA time zone, e.g. Europe/Paris.",
    }
    assert clock["parameters"]["required"] == ["timezone", "twelve_hour"]


async def test_dict_tools_pass_through_and_mix_with_classes(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    handmade = {
        "type": "function",
        "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}},
    }
    await pool.chat.completions.create(model=MODEL, messages=ASK, tools=[handmade, get_time])
    assert server.requests[-1].json["tools"] == [handmade, anyoai.tool(get_time)]


async def test_unsupported_tool_type_is_refused_before_sending(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    def schedule(when: set[str]) -> None:
        """Schedule something."""

    with pytest.raises(anyoai.SchemaError, match=r"set\[str\]") as info:
        await pool.chat.completions.create(model=MODEL, messages=ASK, tools=[schedule])
    assert "schedule.when" in info.value.where
    assert server.requests == []


# --------------------------------------------------------------------------------------------
# tool calls parsed back


async def test_parallel_tool_calls_parse_into_instances(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(
        model=MODEL, messages=ASK, tools=[Weather, get_time]
    )
    assert result.choices[0].finish_reason == "tool_calls"
    assert [call.function.name for call in function_calls(result)] == ["Weather", "get_time"]
    assert result.function_results == [call.function for call in function_calls(result)]

    weather, clock = result.parse_tool_calls(Weather, get_time)
    raw_weather = json.loads(function_calls(result)[0].function.arguments)
    raw_clock = json.loads(function_calls(result)[1].function.arguments)

    assert weather.id == function_calls(result)[0].id and weather.name == "Weather"
    assert weather.target is Weather
    assert isinstance(weather.arguments, Weather)
    assert isinstance(weather.arguments.location, Location)
    assert weather.arguments.location.city == raw_weather["location"]["city"]
    assert isinstance(weather.arguments.unit, Unit)
    assert weather.arguments.unit.value == raw_weather["unit"]
    assert weather.arguments.tags == raw_weather["tags"]
    # strict mode sends dict[str, int] as key/value pairs; it comes back a dict
    assert weather.arguments.extra == {p["key"]: p["value"] for p in raw_weather["extra"]}
    assert weather.invoke() is weather.arguments

    assert clock.target is get_time
    assert clock.arguments.timezone == raw_clock["timezone"]
    assert clock.arguments.twelve_hour is raw_clock["twelve_hour"]
    assert clock.invoke() == get_time(raw_clock["timezone"], raw_clock["twelve_hour"])


async def test_parallel_tool_calls_false_gives_one_call(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(
        model=MODEL, messages=ASK, tools=[Weather, get_time], parallel_tool_calls=False
    )
    assert [call.name for call in result.parse_tool_calls(Weather, get_time)] == ["Weather"]


async def test_async_function_target_is_awaited_by_the_caller(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(model=MODEL, messages=ASK, tools=[lookup_order])
    (call,) = result.parse_tool_calls(lookup_order)
    order_id = json.loads(function_calls(result)[0].function.arguments)["order_id"]
    assert await call.invoke() == {"order_id": order_id, "status": "shipped"}


async def test_calls_split_over_stream_chunks_parse_the_same(pool: anyoai.Pool) -> None:
    whole = await pool.chat.completions.create(model=MODEL, messages=ASK, tools=[Weather, get_time])
    stream = await pool.chat.completions.create(
        model=MODEL, messages=ASK, tools=[Weather, get_time], stream=True
    )
    pieces: dict[int, int] = {}
    async with stream:
        async for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or ():
                    if call.function is not None and call.function.arguments:
                        pieces[call.index] = pieces.get(call.index, 0) + 1
    assert pieces[0] > 3 and pieces[1] > 3  # really split
    final = await stream.get_final_completion()
    assert final.parse_tool_calls(Weather, get_time) == whole.parse_tool_calls(Weather, get_time)
    assert stream.accumulator.snapshot().parse_tool_calls(Weather, get_time) == (
        whole.parse_tool_calls(Weather, get_time)
    )


async def test_a_tool_loop_sends_results_back_and_gets_an_answer(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    messages: list[Any] = [{"role": "user", "content": "What time is it in Paris?"}]
    result = await pool.chat.completions.create(model=MODEL, messages=messages, tools=[get_time])
    messages.append(result.choices[0].message)
    for call in result.parse_tool_calls(get_time):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": call.invoke()})
    final = await pool.chat.completions.create(model=MODEL, messages=messages, tools=[get_time])
    assert final.choices[0].finish_reason == "stop" and final.text
    sent = server.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "get_time",
        "arguments": function_calls(result)[0].function.arguments,
    }
    assert sent[2] == {
        "role": "tool",
        "tool_call_id": function_calls(result)[0].id,
        "content": get_time(**json.loads(function_calls(result)[0].function.arguments)),
    }


async def test_a_tool_sent_under_another_name_is_matched_by_mapping(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(
        model=MODEL, messages=ASK, tools=[anyoai.tool(get_time, name="clock")]
    )
    (call,) = result.parse_tool_calls({"clock": get_time})
    assert call.name == "clock" and call.target is get_time
    with pytest.raises(anyoai.ToolCallError, match="'clock'"):
        result.parse_tool_calls(get_time)


async def test_a_call_to_a_tool_not_given_to_parse_is_an_error(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.create(
        model=MODEL, messages=ASK, tools=[Weather, get_time]
    )
    with pytest.raises(anyoai.ToolCallError) as info:
        result.parse_tool_calls(Weather)
    assert info.value.name == "get_time"
    assert info.value.arguments == function_calls(result)[1].function.arguments
    assert info.value.call_id == function_calls(result)[1].id


@pytest.mark.parametrize(
    ("arguments", "problem", "path"),
    [
        ('{"timezone": "Europe/Par', "not valid JSON", None),
        ('{"timezone": 5}', "expected a string", "$.timezone"),
        ('{"twelve_hour": true}', "timezone", "$.timezone"),
        ("[1, 2]", "get_time", "$"),
    ],
)
async def test_invalid_arguments_raise_with_the_raw_text(
    pool: anyoai.Pool, server: FakeServer, arguments: str, problem: str, path: str | None
) -> None:
    server.add_fault(Fault(body=tool_call_body("get_time", arguments)))
    result = await pool.chat.completions.create(model=MODEL, messages=ASK, tools=[get_time])
    with pytest.raises(anyoai.ToolCallError, match=problem) as info:
        result.parse_tool_calls(get_time)
    assert isinstance(info.value, ValueError)
    assert info.value.arguments == arguments
    assert info.value.name == "get_time"
    assert info.value.call_id == "call_abc123"
    if path is not None:
        assert info.value.path == path


async def test_an_unknown_enum_value_names_the_allowed_ones(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    arguments = '{"location": {"city": "Paris", "country": null}, "unit": "kelvin"}'
    server.add_fault(Fault(body=tool_call_body("Weather", arguments)))
    result = await pool.chat.completions.create(model=MODEL, messages=ASK, tools=[Weather])
    with pytest.raises(anyoai.ToolCallError, match="'celsius', 'fahrenheit'") as info:
        result.parse_tool_calls(Weather)
    assert info.value.path == "$.unit"


async def test_a_call_sent_in_both_forms_is_parsed_once(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    """llama.cpp's server sends a forced call as a tool call and as a legacy function call."""
    body = json.loads(tool_call_body("get_time", '{"timezone": "UTC"}'))
    message = body["choices"][0]["message"]
    message["function_call"] = dict(message["tool_calls"][0]["function"])
    server.add_fault(Fault(body=json.dumps(body)))
    result = await pool.chat.completions.create(model=MODEL, messages=ASK, tools=[get_time])
    (call,) = result.parse_tool_calls(get_time)
    assert call.id == "call_abc123" and call.invoke() == "12:00 in UTC"
    assert len(result.function_results) == 1


async def test_legacy_functions_take_an_attrs_class_as_parameters(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    """The seed library's form: ``functions=[{"name", "description", "parameters": Class}]``."""
    result = await pool.chat.completions.create(
        model=MODEL,
        messages=ASK,
        functions=[
            {"name": "get_weather", "description": "Get the weather", "parameters": Weather},
            get_time,
        ],
    )
    sent = server.requests[-1].json["functions"]
    assert sent[0] == {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": anyoai.json_schema(Weather, strict=False),
    }
    # a function in the legacy list: not strict, so defaults are keywords and not required
    assert sent[1]["name"] == "get_time" and "strict" not in sent[1]
    assert sent[1]["description"] == "Get the current time in a time zone."
    assert sent[1]["parameters"]["required"] == ["timezone"]
    assert sent[1]["parameters"]["properties"]["twelve_hour"] == {
        "type": "boolean",
        "description": "Use a 12-hour clock.",
        "default": False,
    }
    assert result.choices[0].finish_reason == "function_call"
    (raw,) = result.function_results
    assert raw.name == "get_weather"
    (call,) = result.parse_tool_calls({"get_weather": Weather})
    assert call.id is None
    assert call.arguments.location.city == json.loads(raw.arguments)["location"]["city"]


# --------------------------------------------------------------------------------------------
# structured outputs


@attrs.frozen
class Forecast:
    """A weather forecast."""

    city: str
    unit: Unit
    highs: list[float]
    summary: str | None


async def test_parse_sends_a_strict_schema_and_returns_an_instance(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    result = await pool.chat.completions.parse(model=MODEL, messages=ASK, response_format=Forecast)
    assert server.requests[-1].json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Forecast", "schema": anyoai.json_schema(Forecast), "strict": True},
    }
    raw = json.loads(result.choices[0].message.content or "")
    assert isinstance(result.parsed, Forecast)
    assert result.parsed == Forecast(
        city=raw["city"], unit=Unit(raw["unit"]), highs=raw["highs"], summary=raw["summary"]
    )
    assert result.parsed_choices == [result.parsed]
    assert result.refusal is None
    assert result.usage is not None and result.request_id


async def test_parse_with_n_choices_parses_each(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.parse(
        model=MODEL, messages=ASK, response_format=Forecast, n=3
    )
    assert len(result.parsed_choices) == 3
    assert all(isinstance(p, Forecast) for p in result.parsed_choices)


async def test_parse_exposes_a_refusal(pool: anyoai.Pool) -> None:
    result = await pool.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Please refuse this one."}],
        response_format=Forecast,
    )
    assert result.parsed is None
    assert result.refusal and result.refusal == result.choices[0].message.refusal


async def test_parse_cut_by_the_token_limit_raises(pool: anyoai.Pool) -> None:
    with pytest.raises(anyoai.LengthFinishReasonError) as info:
        await pool.chat.completions.parse(
            model=MODEL, messages=ASK, response_format=Forecast, max_completion_tokens=2
        )
    assert info.value.result.choices[0].finish_reason == "length"
    assert info.value.request_id == info.value.result.request_id
    assert "max_completion_tokens" in str(info.value)


async def test_parse_cut_by_the_content_filter_raises() -> None:
    async with (
        FakeServer(azure=True, api_key=API_KEY) as azure,
        anyoai.open_pool(
            backends=[anyoai.AzureBackend(endpoint=azure.endpoint, api_key=API_KEY)]
        ) as pool,
    ):
        with pytest.raises(anyoai.ContentFilterError) as info:
            await pool.chat.completions.parse(
                model="gpt-3.5-turbo",
                messages=[{"role": "user", "content": "tell me about the cutoff"}],
                response_format=Forecast,
            )
    assert info.value.result is not None
    assert info.value.result.choices[0].finish_reason == "content_filter"


def structured_body(content: str, model: str = MODEL) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-structured",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
        }
    )


@pytest.mark.parametrize(
    ("content", "problem", "path"),
    [
        ('{"city": "Paris", "unit": "celsius", "highs": [', "not valid JSON", None),
        (
            '{"city": "Paris", "unit": "celsius", "highs": ["hot"], "summary": null}',
            "Forecast",
            "$.highs[0]",
        ),
    ],
)
async def test_parse_of_content_that_does_not_fit_keeps_the_completion(
    pool: anyoai.Pool, server: FakeServer, content: str, problem: str, path: str | None
) -> None:
    server.add_fault(Fault(body=structured_body(content)))
    with pytest.raises(anyoai.StructuredOutputError, match=problem) as info:
        await pool.chat.completions.parse(model=MODEL, messages=ASK, response_format=Forecast)
    assert isinstance(info.value, anyoai.ResponseValidationError)
    assert info.value.path == path
    assert info.value.body == content
    assert info.value.result.choices[0].message.content == content  # nothing paid for is lost
    assert info.value.result.consumption is not None


async def test_parse_refuses_bad_input_naming_the_parameter(
    pool: anyoai.Pool, server: FakeServer
) -> None:
    with pytest.raises(anyoai.InvalidParameterError, match="attrs class") as info:
        await pool.chat.completions.parse(
            model=MODEL,
            messages=ASK,
            response_format={"type": "json_object"},  # type: ignore[arg-type]
        )
    assert info.value.param == "response_format"
    with pytest.raises(anyoai.InvalidParameterError) as info:
        await pool.chat.completions.parse(
            model=MODEL,
            messages=ASK,
            response_format=Forecast,
            stream=True,  # type: ignore[call-arg]
        )
    assert info.value.param == "stream"

    @attrs.frozen
    class Bad:
        payload: bytes

    with pytest.raises(anyoai.SchemaError, match="bytes"):
        await pool.chat.completions.parse(model=MODEL, messages=ASK, response_format=Bad)
    assert server.requests == []


# --------------------------------------------------------------------------------------------
# real traffic (recorded exchanges, when ANYOAI_RECORDINGS is set)


def recording(name: str) -> dict[str, Any]:
    folder = os.environ.get("ANYOAI_RECORDINGS")
    if not folder:
        pytest.skip("set ANYOAI_RECORDINGS to the recorded exchanges (../shared/recordings)")
    data: dict[str, Any] = json.loads((Path(folder) / name).read_text())
    return data


@pytest.fixture
async def replay(server: FakeServer) -> AsyncIterator[tuple[FakeServer, anyoai.Pool]]:
    async with anyoai.open_pool(api_key=API_KEY, base_url=server.url, max_retries=0) as opened:
        yield server, opened


def serve(server: FakeServer, data: dict[str, Any]) -> None:
    response = data["response"]
    content_type = response["headers"].get("content-type", "application/json")
    server.add_fault(
        Fault(body=response["body_text"].encode(), headers={"content-type": content_type})
    )


def get_current_weather(location: str) -> str:
    """Get the current weather in a given location

    :param location: The geographic location to get the weather for
    """
    return location


def get_delivery_date(order_id: str) -> str:
    """Get the delivery date for a customer's order."""
    return order_id


async def test_recorded_parallel_tool_calls(replay: tuple[FakeServer, anyoai.Pool]) -> None:
    data = recording("002_chat_tool_calls_parallel.json")
    server, pool = replay
    serve(server, data)
    result = await pool.chat.completions.create(
        model="gpt-3.5-turbo", messages=ASK, tools=[get_current_weather], tool_choice="required"
    )
    recorded = json.loads(data["response"]["body_text"])["choices"][0]["message"]["tool_calls"]
    calls = result.parse_tool_calls(get_current_weather)
    assert [c.id for c in calls] == [c["id"] for c in recorded]
    assert [c.invoke() for c in calls] == [
        json.loads(c["function"]["arguments"])["location"] for c in recorded
    ]
    assert len(calls) > 1


async def test_recorded_stream_with_split_arguments(
    replay: tuple[FakeServer, anyoai.Pool],
) -> None:
    data = recording("009_chat_stream_tool_call_args_split.json")
    server, pool = replay
    serve(server, data)
    stream = await pool.chat.completions.create(
        model="gpt-4o-mini", messages=ASK, tools=[get_delivery_date], stream=True
    )
    final = await stream.get_final_completion()
    (call,) = final.parse_tool_calls(get_delivery_date)
    assert call.invoke() == "order_12345"  # as the recorded stream spelled it, in pieces


@attrs.frozen
class Step:
    explanation: str
    output: str


@attrs.frozen
class MathResponse:
    steps: list[Step]
    final_answer: str


def without_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: without_titles(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [without_titles(v) for v in schema]
    return schema


async def test_recorded_structured_output(replay: tuple[FakeServer, anyoai.Pool]) -> None:
    """The schema anyoai makes of the attrs twin of the official SDK's pydantic example is the
    one the SDK sent (titles aside), and the recorded answer parses into it."""
    data = recording("005_chat_json_schema_structured_output.json")
    server, pool = replay
    serve(server, data)
    body = data["request"]["body"]
    result = await pool.chat.completions.parse(
        model=body["model"], messages=body["messages"], response_format=MathResponse
    )
    assert server.requests[-1].json["response_format"] == without_titles(body["response_format"])
    content = json.loads(
        json.loads(data["response"]["body_text"])["choices"][0]["message"]["content"]
    )
    assert result.parsed == MathResponse(
        steps=[Step(**step) for step in content["steps"]], final_answer=content["final_answer"]
    )


@attrs.frozen
class StructuredAnswer:
    rating: int
    joke: str


async def test_recorded_refusal(replay: tuple[FakeServer, anyoai.Pool]) -> None:
    data = recording("004_chat_refusal_structured.json")
    server, pool = replay
    serve(server, data)
    body = data["request"]["body"]
    result = await pool.chat.completions.parse(
        model=body["model"], messages=body["messages"], response_format=StructuredAnswer
    )
    assert server.requests[-1].json["response_format"] == without_titles(body["response_format"])
    recorded = json.loads(data["response"]["body_text"])["choices"][0]["message"]["refusal"]
    assert result.parsed is None and result.refusal == recorded
