"""multipart/form-data bodies whose file part is streamed, with the exact length known upfront.

The Files API takes ``multipart/form-data``. A file of hundreds of megabytes must not be held in
memory, so :func:`form_body` builds a :class:`~anyoai._request.BodySource`: the short text
fields and part headers are bytes, the file part comes from an opener (a storage read, a local
file) each time the body is sent, and ``Content-Length`` is computed from the parts' sizes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence

from ._exceptions import BodyLengthError
from ._request import BodySource

__all__ = ["form_body"]


def _quote(value: str) -> str:
    # RFC 7578: names and filenames in quotes; a quote or line break cannot appear raw
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def form_body(
    fields: Sequence[tuple[str, str]],
    *,
    file_field: str,
    filename: str,
    content_type: str,
    size: int | None,
    open_file: Callable[[], AsyncIterator[bytes]],
    replayable: bool = True,
) -> tuple[BodySource, str]:
    """A multipart body of text *fields* followed by one file part; and its content type.

    :param size: the file's size in bytes; ``None`` sends the body chunked.
    :param open_file: makes a new iterator of the file's bytes (called once per attempt).
    :raises BodyLengthError: (while sending) if the file's bytes do not add up to *size*.
    """
    boundary = f"anyoai-{uuid.uuid4().hex}"
    head = bytearray()
    for name, value in fields:
        disposition = f'Content-Disposition: form-data; name="{_quote(name)}"'
        head += f"--{boundary}\r\n{disposition}\r\n\r\n".encode()
        head += value.encode("utf-8") + b"\r\n"
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(file_field)}"; '
        f'filename="{_quote(filename)}"\r\nContent-Type: {content_type}\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    prefix = bytes(head)

    async def chunks() -> AsyncIterator[bytes]:
        yield prefix
        sent = 0
        source = open_file()
        try:
            async for chunk in source:
                sent += len(chunk)
                if size is not None and sent > size:
                    raise BodyLengthError(
                        f"{filename}: the file gave more than its declared {size} bytes"
                    )
                yield chunk
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
        if size is not None and sent != size:
            raise BodyLengthError(
                f"{filename}: the file gave {sent} bytes, not its declared {size}"
            )
        yield tail

    length = None if size is None else len(prefix) + size + len(tail)
    source = BodySource(open=chunks, length=length, replayable=replayable)
    return source, f"multipart/form-data; boundary={boundary}"
