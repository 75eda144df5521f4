"""Property tests (hypothesis) of the sans-IO parts: the SSE decoder, the converter, Retry-After.

- The SSE decoder gives the same events as a plain reference decoder written from the WHATWG
  spec below, on random event streams (every field, comments, unicode and invalid UTF-8, CRLF,
  CR and LF mixed, a byte-order mark) cut into random chunks; with a limit, it refuses exactly
  the streams that have an event longer than the limit.
- Structuring JSON shaped like each result model succeeds; the same JSON damaged at random
  places, or any JSON at all, either fits or raises a typed ``ResponseValidationError``.
- ``parse_retry_after`` never raises and returns ``None`` or a finite number of seconds >= 0,
  and reads plain numbers exactly.

Examples are bounded (``max_examples=200``) and no example database is written.
"""

from __future__ import annotations

import base64
import copy
import email.utils
import enum
import functools
import itertools
import math
import re
import struct
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anyoai
from anyoai._model import EmbeddingVector, UnknownVariant
from anyoai._retry import parse_retry_after
from anyoai._serde import structure_value
from anyoai._sse import EventTooLargeError, ServerSentEvent, SSEDecoder
from anyoai.types import (
    Batch,
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CreateEmbeddingResponse,
    Edit,
    FileDeleted,
    FileObject,
    Model,
    ModelDeleted,
    ModelList,
    ModerationCreateResponse,
    Upload,
)
from anyoai.types.batches import BatchList
from anyoai.types.files import FileList

BOUNDED = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# =============================================================================== SSE decoder


def reference_events(stream: bytes) -> list[ServerSentEvent]:
    """The events of a whole *stream*, straight from the WHATWG spec ("Interpreting an event
    stream"), plus anyoai's two documented choices: a last event that is not followed by a
    blank line is dispatched when the stream ends, and ``retry`` is reported on the event it
    came with (the spec sets the reconnection time, which a client of this API has no use for).
    """
    text = stream.decode("utf-8", "replace")  # the stream is decoded first...
    if text.startswith("\ufeff"):  # ...and one leading byte-order mark dropped
        text = text[1:]
    lines = re.split("\r\n|\r|\n", text)
    events: list[ServerSentEvent] = []
    data = ""
    event_type = ""
    last_id: str | None = None
    retry: int | None = None

    def dispatch() -> None:
        nonlocal data, event_type, retry
        if data == "":
            data, event_type, retry = "", "", None
            return
        if data.endswith("\n"):
            data = data[:-1]
        events.append(
            ServerSentEvent(data=data, event=event_type or "message", id=last_id, retry=retry)
        )
        data, event_type, retry = "", "", None

    if lines[-1] == "":
        lines.pop()  # the stream ended with a line end: no incomplete last line
    for line in [*lines, ""]:  # the stream's end dispatches what is left
        if line == "":
            dispatch()
        elif line.startswith(":"):
            continue
        else:
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "event":
                event_type = value
            elif name == "data":
                data += value + "\n"
            elif name == "id" and "\x00" not in value:
                last_id = value
            elif name == "retry" and value and all(c in "0123456789" for c in value):
                retry = int(value)
    return events


def event_sizes(stream: bytes) -> list[int]:
    """The size of each event as the decoder's limit counts it: the bytes of its lines
    (comments and line ends excluded), from one blank line to the next."""
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    sizes = [0]
    for line in re.split(rb"\r\n|\r|\n", stream):
        if not line:
            sizes.append(0)
        elif not line.startswith(b":"):
            sizes[-1] += len(line)
    return sizes


TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12
) | st.sampled_from(["", " ", "  x", ":", "a:b", "[DONE]", "é✓😀", "\x00", "²", "١٢", "12"])
EOL = st.sampled_from(["\n", "\r\n", "\r"])
#: the kinds of line, data and blank ones twice as likely
LINE_KINDS = ["data", "data", "data-nospace", "event", "id", "retry", "comment", "unknown"]
LINE_KINDS += ["nocolon", "blank", "blank"]


@st.composite
def sse_lines(draw: st.DrawFn) -> str:
    """One line of an event stream, without its end."""
    kind = draw(st.sampled_from(LINE_KINDS))
    value = draw(TEXT)
    if kind == "data":
        return "data: " + value
    if kind == "data-nospace":
        return "data:" + value
    if kind in ("event", "id"):
        return f"{kind}:{draw(st.sampled_from(['', ' ']))}{value}"
    if kind == "retry":
        return "retry: " + draw(st.sampled_from([value, str(draw(st.integers(0, 10**6)))]))
    if kind == "comment":
        return ":" + value
    if kind == "unknown":
        return draw(st.sampled_from(["foo", "Data", "DATA", "ev", "data "])) + ":" + value
    if kind == "nocolon":
        return draw(st.sampled_from(["data", "event", "id", "retry", "x"]))
    return ""


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    """A random event stream: lines ending in \\n, \\r\\n or \\r, maybe a BOM, maybe an
    unfinished last line; sometimes with raw (possibly invalid UTF-8) bytes inside."""
    lines = draw(st.lists(sse_lines(), max_size=25))
    ends = [draw(EOL) for _ in lines]
    text = "".join(line + end for line, end in zip(lines, ends, strict=True))
    if draw(st.booleans()):
        text += draw(sse_lines())  # no line end: the stream stops mid-line
    raw = text.encode("utf-8")
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(max_size=6)) + raw[at:]
    if draw(st.integers(0, 3)) == 0:
        raw = b"\xef\xbb\xbf" + raw
    return raw


@st.composite
def split(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    """*stream* cut at random places (empty chunks included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def decode(chunks: list[bytes], limit: int = 1 << 30) -> list[ServerSentEvent]:
    decoder = SSEDecoder(max_event_bytes=limit)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


@BOUNDED
@given(st.data())
def test_sse_decoder_agrees_with_the_reference(data: st.DataObject) -> None:
    stream = data.draw(sse_streams(), label="stream")
    chunks = data.draw(split(stream), label="chunks")
    assert decode(chunks) == reference_events(stream)


@BOUNDED
@given(st.data())
def test_sse_decoder_one_byte_at_a_time(data: st.DataObject) -> None:
    stream = data.draw(sse_streams(), label="stream")
    assert decode([stream[i : i + 1] for i in range(len(stream))]) == reference_events(stream)


@BOUNDED
@given(st.data())
def test_sse_limit_refuses_exactly_the_events_over_it(data: st.DataObject) -> None:
    stream = data.draw(sse_streams(), label="stream")
    chunks = data.draw(split(stream), label="chunks")
    limit = data.draw(st.integers(1, 60), label="limit")
    if max(event_sizes(stream)) > limit:
        with pytest.raises(EventTooLargeError) as caught:
            decode(chunks, limit)
        assert caught.value.limit == limit
        assert str(limit) in str(caught.value)
    else:
        assert decode(chunks, limit) == reference_events(stream)


@BOUNDED
@given(st.binary(max_size=300), st.data())
def test_sse_decoder_on_arbitrary_bytes(stream: bytes, data: st.DataObject) -> None:
    chunks = data.draw(split(stream), label="chunks")
    assert decode(chunks) == reference_events(stream)


def test_sse_limit_is_checked_while_a_line_arrives() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    decoder.feed(b"data: ")
    for _ in range(15):
        decoder.feed(b"x" * 64)  # 6 + 960 bytes kept: under the limit
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"x" * 64)  # before the line (or the event) has ended


def test_sse_comment_lines_are_not_kept() -> None:
    decoder = SSEDecoder(max_event_bytes=10)
    decoder.feed(b": a keep-alive comment")
    for _ in range(100):
        assert decoder.feed(b" that goes on" * 10) == []
    assert decoder.feed(b"\ndata: ok\n\n") == [ServerSentEvent(data="ok")]


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "16"])
def test_sse_decoder_refuses_a_bad_limit(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        SSEDecoder(max_event_bytes=value)


# ================================================================================= converter

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=10)
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
VECTORS = st.lists(st.floats(allow_nan=False, width=32), max_size=4) | st.lists(
    st.floats(width=32), max_size=4
).map(lambda floats: base64.b64encode(struct.pack(f"<{len(floats)}f", *floats)).decode())


def _json_key(name: str) -> str:
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def _tags(member: Any) -> list[str]:
    """The ``type`` tags an attrs class of a tagged union accepts."""
    if not attrs.has(member) or issubclass(member, UnknownVariant):
        return []
    hint = typing.get_type_hints(member).get("type")
    return [a for a in typing.get_args(hint) if isinstance(a, str)]


@functools.cache
def shaped(tp: Any, avoid_tags: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
    """JSON with the shape of the type *tp* (an attrs model, a union, a list...); in a union
    with an ``Unknown...`` member, that member's tag avoids *avoid_tags*, the known ones."""
    if tp is Any or tp is object:
        return ANY_JSON
    if tp is EmbeddingVector:
        return VECTORS
    if tp is type(None):
        return st.none()
    if tp is str:
        return st.text(max_size=12)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers()
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (Union, types.UnionType):
        tags = tuple(tag for member in args for tag in _tags(member))
        return st.one_of([shaped(member, tags) for member in args])
    if origin in (list, Sequence, tuple):
        return st.lists(shaped(args[0]), max_size=2)
    if origin in (dict, Mapping):
        return st.dictionaries(st.text(max_size=8), shaped(args[1]), max_size=3)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from([member.value for member in tp])
    if isinstance(tp, type) and issubclass(tp, UnknownVariant):
        tag = st.text(max_size=8).filter(lambda text: text not in avoid_tags)
        return st.fixed_dictionaries({"type": tag}, optional={"extra": ANY_JSON})
    if attrs.has(tp):
        hints = typing.get_type_hints(tp)
        required: dict[str, st.SearchStrategy[Any]] = {}
        optional: dict[str, st.SearchStrategy[Any]] = {}
        for field in attrs.fields(tp):
            if not field.init:
                continue
            strategy = shaped(hints[field.name])  # the models are not recursive
            if field.default is attrs.NOTHING:
                required[_json_key(field.name)] = strategy
            else:
                optional[_json_key(field.name)] = strategy
        return st.fixed_dictionaries(required, optional=optional)
    raise NotImplementedError(f"no JSON shape for {tp!r}")  # pragma: no cover


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every node of *value* (the root's is ``()``)."""
    paths = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += _nodes(item, (*path, index))
    return paths


@st.composite
def damaged(draw: st.DrawFn, value: Any) -> Any:
    """*value* with one to three random nodes replaced by any JSON, or dropped from their
    object or array."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_nodes(value)))
        junk = draw(ANY_JSON)
        if not path:
            value = junk
            continue
        *parents, last = path
        node = value
        for step in parents:
            node = node[step]
        if draw(st.booleans()):
            node[last] = junk
        else:
            del node[last]
    return value


#: the results most calls return: each gets its own test (200 examples)
MODELS = [
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CreateEmbeddingResponse,
    Batch,
    FileObject,
    Model,
    ModerationCreateResponse,
]
#: the other results: one test shares its examples among them
OTHER_MODELS = [BatchList, FileList, FileDeleted, Upload, ModelList, ModelDeleted, Edit]


def structure_or_typed_error(data: Any, cls: type) -> None:
    """Structuring *data* returns a *cls*, or raises ``ResponseValidationError`` (with the
    JSON path of the misfit)."""
    error: anyoai.ResponseValidationError | None = None
    result: object = None
    try:
        result = structure_value(data, cls)
    except anyoai.ResponseValidationError as exc:
        error = exc
    if error is None:
        assert isinstance(result, cls)
    else:
        assert error.path is None or error.path.startswith("$"), error.path


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
@BOUNDED
@given(data=st.data())
def test_json_shaped_like_a_model_fits_and_damaged_is_a_typed_error(
    cls: type, data: st.DataObject
) -> None:
    value = data.draw(shaped(cls), label="json")
    result: object = structure_value(value, cls)
    assert isinstance(result, cls)
    structure_or_typed_error(data.draw(damaged(copy.deepcopy(value)), label="damaged"), cls)


@BOUNDED
@given(data=st.data())
def test_other_results_fit_and_damaged_is_a_typed_error(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(OTHER_MODELS), label="cls")
    value = data.draw(shaped(cls), label="json")
    assert isinstance(structure_value(value, cls), cls)
    structure_or_typed_error(data.draw(damaged(copy.deepcopy(value)), label="damaged"), cls)


@BOUNDED
@given(cls=st.sampled_from(MODELS + OTHER_MODELS), value=ANY_JSON)
def test_any_json_fits_or_is_a_typed_error(cls: type, value: Any) -> None:
    structure_or_typed_error(value, cls)


# ============================================================================== Retry-After

NUMBERS = st.integers(0, 10**12) | st.floats(
    min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False
)
DATES = st.builds(
    lambda stamp, gmt: email.utils.formatdate(stamp, usegmt=gmt),
    st.floats(min_value=-1e10, max_value=1e11, allow_nan=False),
    st.booleans(),
)
DATE_LIKE = st.builds(
    lambda day, num, month, year, clock, zone: f"{day}, {num} {month} {year} {clock} {zone}",
    st.sampled_from(["Mon", "Fri", "Xyz", ""]),
    st.integers(-5, 99).map(str),
    st.sampled_from(["Jan", "Feb", "Dec", "Foo", ""]),
    st.sampled_from(["0", "69", "70", "1970", "2099", "9999", "10000", "99999999", "-1"]),
    st.sampled_from(["00:00:00", "23:59:60", "99:99:99", "12:00", ""]),
    st.sampled_from(["GMT", "+0000", "-2400", "+9999", "EST", "", "UT"]),
)
HEADER_VALUES = (
    st.text(max_size=30)
    | NUMBERS.map(str)
    | st.integers(-(10**20), 10**20).map(str)
    | st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "0x10", " 5 ", "1_000", "١٢", "-1"])
    | DATES
    | DATE_LIKE
)
HEADERS = st.dictionaries(
    st.sampled_from(["retry-after", "retry-after-ms", "x-other"]), HEADER_VALUES, max_size=3
)


@BOUNDED
@given(headers=HEADERS, now=st.none() | st.floats(min_value=0, max_value=4e9))
def test_retry_after_never_raises_and_is_a_sane_number(
    headers: dict[str, str], now: float | None
) -> None:
    seconds = parse_retry_after(headers, now=now)
    assert seconds is None or (isinstance(seconds, float) and math.isfinite(seconds))
    assert seconds is None or seconds >= 0


@BOUNDED
@given(number=NUMBERS)
def test_retry_after_numbers_are_read_exactly(number: float) -> None:
    assert parse_retry_after({"retry-after-ms": str(number)}) == float(number) / 1000
    assert parse_retry_after({"retry-after": str(number)}) == float(number)
    # a usable retry-after-ms wins over retry-after
    both = {"retry-after-ms": str(number), "retry-after": "7"}
    assert parse_retry_after(both) == float(number) / 1000
