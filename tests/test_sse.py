"""The SSE decoder, fed the same bytes split at every possible place."""

from __future__ import annotations

import pytest

from anyoai._sse import ServerSentEvent, SSEDecoder

STREAM = (
    b"\xef\xbb\xbfdata: first\r\n"
    b"data: line two\r\n\r\n"
    b": a comment, ignored\n"
    b"event: error\n"
    b'data: {"error": {"message": "boom"}}\n\n'
    b"id: 7\n"
    b"retry: 1500\n"
    b"data:no-space\n\n"
    b"event: lonely\n\n"
    b"data: [DONE]\n\n"
)

EXPECTED = [
    ServerSentEvent(data="first\nline two"),
    ServerSentEvent(data='{"error": {"message": "boom"}}', event="error"),
    ServerSentEvent(data="no-space", id="7", retry=1500),
    ServerSentEvent(data="[DONE]", id="7"),
]


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 1000])
def test_any_chunking_gives_the_same_events(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert decode(chunks) == EXPECTED


def test_every_split_point() -> None:
    for cut in range(len(STREAM) + 1):
        assert decode([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_lone_carriage_returns_end_lines() -> None:
    assert decode([b"data: a\rdata: b\r\r"]) == [ServerSentEvent(data="a\nb")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    assert decode([b"data: a\r", b"\n\r", b"\n"]) == [ServerSentEvent(data="a")]


def test_last_event_without_blank_line_is_dispatched_at_close() -> None:
    assert decode([b"data: tail"]) == [ServerSentEvent(data="tail")]


def test_empty_data_line_is_an_event_with_empty_data() -> None:
    assert decode([b"data:\n\n"]) == [ServerSentEvent(data="")]


def test_multibyte_utf8_split_across_chunks() -> None:
    raw = "data: héllo ✓\n\n".encode()
    assert decode([raw[:8], raw[8:12], raw[12:]]) == [ServerSentEvent(data="héllo ✓")]
