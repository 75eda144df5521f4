"""A sans-IO decoder of server-sent events (the WHATWG ``text/event-stream`` format).

Feed it bytes as they arrive, in chunks of any size; it returns the events completed so far.
Lines may end in ``\\n``, ``\\r\\n`` or ``\\r``, even when a chunk boundary splits the pair.

Its cost is linear in the bytes fed: a chunk is split into lines once, and a line still
incomplete at the end of a chunk is appended to a buffer (a ``bytearray``: amortised O(1) per
byte, whatever the size of the pieces); only the new chunk is searched for that line's end,
never the bytes already kept. An event longer than ``max_event_bytes`` raises
:class:`EventTooLargeError` as soon as the bytes kept for it pass the limit, so no more than the
limit (plus one chunk) is ever held. The bytes of a comment line are not kept at all.
"""

from __future__ import annotations

import attrs

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "EventTooLargeError", "SSEDecoder", "ServerSentEvent"]

#: the longest event a decoder accepts unless told otherwise: 16 MiB
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_COLON = 58  # b":"[0]: a line starting with it is a comment


@attrs.frozen(slots=True)
class ServerSentEvent:
    """One event. ``event`` defaults to ``"message"``; ``data`` joins its lines with ``\\n``."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class EventTooLargeError(ValueError):
    """An event (its field lines, or one line) is longer than the decoder's limit.

    :ivar limit: the limit, in bytes.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"a server-sent event is longer than {limit} bytes")
        self.limit = limit


class SSEDecoder:
    """Incremental decoder: ``feed(chunk) -> [events]``, then ``close() -> [last event]``.

    :param max_event_bytes: the most bytes one event may take (the lengths of its lines,
        comments excluded); more raises :class:`EventTooLargeError` while the event arrives.
    """

    __slots__ = (
        "_data",
        "_event",
        "_id",
        "_last_id",
        "_limit",
        "_pending",
        "_retry",
        "_size",
        "_skip_lf",
        "_started",
    )

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if isinstance(max_event_bytes, bool) or not isinstance(max_event_bytes, int):
            raise TypeError(f"max_event_bytes must be an integer, got {max_event_bytes!r}")
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be >= 1, got {max_event_bytes!r}")
        self._limit = max_event_bytes
        #: a line not yet ended (only ``b":"`` of a comment): its first piece, then a buffer
        #: once more arrive; before the first byte that is not one, the start of a byte-order mark
        self._pending: bytes | bytearray = b""
        #: the bytes of the current event's lines so far
        self._size = 0
        #: the last chunk ended in ``\r``: a ``\n`` opening the next one belongs to it
        self._skip_lf = False
        self._started = False
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None

    @property
    def max_event_bytes(self) -> int:
        """The longest event accepted, in bytes."""
        return self._limit

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Add *chunk*; return the events it completes.

        :raises EventTooLargeError: the current event has grown past ``max_event_bytes``.
        """
        if not chunk:
            return []
        if not self._started:
            if self._pending:  # the start of a byte-order mark, kept back
                chunk = bytes(self._pending) + chunk
                self._pending = b""
            if len(chunk) < 3 and _BOM.startswith(chunk):
                self._pending = chunk
                return []
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
            self._started = True
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        events: list[ServerSentEvent] = []
        if self._pending:
            # only the new chunk is searched for the end of the pending line
            lf = chunk.find(b"\n")
            cr = chunk.find(b"\r", 0, lf if lf >= 0 else len(chunk))
            end = cr if cr >= 0 else lf
            if end < 0:
                self._keep(chunk)
                return []
            whole = self._pending
            if whole[0] != _COLON:  # a comment's bytes are not kept
                whole += chunk[:end]
            self._pending = b""
            self._line(whole, events)
            if end == cr and chunk[cr + 1 : cr + 2] == b"\n":
                end += 1
            elif end == cr and end == len(chunk) - 1:
                self._skip_lf = True
            chunk = chunk[end + 1 :]
            if not chunk:
                return events
        if b"\r" in chunk:
            if chunk[-1] == 13:  # b"\r": the first half of a "\r\n" split in two, maybe
                self._skip_lf = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        tail = lines.pop()
        for line in lines:
            self._line(line, events)
        if tail:
            self._keep(tail)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of the stream: dispatch a last event that was not followed by a blank line."""
        events: list[ServerSentEvent] = []
        if self._pending:
            whole, self._pending = self._pending, b""
            self._line(whole, events)
        self._started = True
        self._skip_lf = False
        self._line(b"", events)
        return events

    def _keep(self, piece: bytes) -> None:
        """Keep *piece* of a line whose end has not arrived (a comment's need not be kept)."""
        pending = self._pending
        if not pending:
            # the first piece is kept as it is; of a comment, all that tells it is one
            self._pending = pending = b":" if piece[0] == _COLON else piece
        elif pending[0] == _COLON:
            return
        elif type(pending) is bytes:
            self._pending = pending = bytearray(pending)  # more pieces: appended in place
            pending += piece
        else:
            pending += piece
        if self._size + len(pending) > self._limit:
            raise EventTooLargeError(self._limit)

    def _line(self, line: bytes | bytearray, events: list[ServerSentEvent]) -> None:
        """Take one whole line (without its end); append the event it completes, if any."""
        if not line:
            self._size = 0
            event = self._dispatch()
            if event is not None:
                events.append(event)
            return
        if line[0] == _COLON:
            return  # a comment, often a keep-alive
        size = self._size + len(line)
        if size > self._limit:
            raise EventTooLargeError(self._limit)
        self._size = size
        if line[:5] == b"data:":  # the common case, without decoding the name
            value = line[6:] if line[5:6] == b" " else line[5:]
            self._data.append(value.decode("utf-8", "replace"))
            return
        name, sep, text = line.decode("utf-8", "replace").partition(":")
        if sep and text[:1] == " ":
            text = text[1:]
        if name == "data":
            self._data.append(text)
        elif name == "event":
            self._event = text
        elif name == "id" and "\x00" not in text:
            self._id = text
        elif name == "retry" and text.isascii() and text.isdigit():
            self._retry = int(text)

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
