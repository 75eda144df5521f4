"""A sans-IO decoder of server-sent events (the WHATWG ``text/event-stream`` format).

Feed it bytes as they arrive, in chunks of any size; it returns the events completed so far.
Lines may end in ``\\n``, ``\\r\\n`` or ``\\r``, even when a chunk boundary splits the pair.
"""

from __future__ import annotations

import attrs

__all__ = ["SSEDecoder", "ServerSentEvent"]


@attrs.frozen(slots=True)
class ServerSentEvent:
    """One event. ``event`` defaults to ``"message"``; ``data`` joins its lines with ``\\n``."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: ``feed(chunk) -> [events]``, then ``close() -> [last event]``."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_last_id", "_retry", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Add *chunk*; return the events it completes."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._started:
            if len(buffer) < 3 and b"\xef\xbb\xbf".startswith(buffer):
                self._buffer = buffer  # maybe the start of a byte-order mark
                return []
            if buffer.startswith(b"\xef\xbb\xbf"):
                buffer = buffer[3:]
            self._started = True
        # a trailing \r may be the first half of a \r\n split across chunks: keep it back
        held = b"\r" if buffer.endswith(b"\r") else b""
        if held:
            buffer = buffer[:-1]
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        last = buffer.rfind(b"\n")
        if last < 0:
            self._buffer = buffer + held
            return []
        self._buffer = buffer[last + 1 :] + held
        events: list[ServerSentEvent] = []
        for line in buffer[:last].split(b"\n"):
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of the stream: dispatch a last event that was not followed by a blank line."""
        events: list[ServerSentEvent] = []
        if self._buffer and self._buffer != b"\r":
            event = self._line(self._buffer.rstrip(b"\r"))
            if event is not None:
                events.append(event)
        self._buffer = b""
        event = self._line(b"")
        if event is not None:
            events.append(event)
        return events

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        if not raw:
            return self._dispatch()
        if raw[:1] == b":":
            return None  # a comment, often a keep-alive
        line = raw.decode("utf-8", "replace")
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\x00" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self._last_id = self._id
        if not self._data:
            # per the spec, an event without data lines is not dispatched
            self._event = None
            self._id = None
            self._retry = None
            return None
        event = ServerSentEvent(
            data="\n".join(self._data),
            event=self._event or "message",
            id=self._last_id,
            retry=self._retry,
        )
        self._data = []
        self._event = None
        self._id = None
        self._retry = None
        return event
