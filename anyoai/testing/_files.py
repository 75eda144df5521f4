"""The Files API of the fake server, its multipart/form-data parser, and paged lists.

Files (:data:`FILE_ROUTES`)
    ``POST /v1/files`` takes a multipart/form-data body with a ``file`` part (a filename and
    the bytes) and a ``purpose`` field (``assistants``, ``batch``, ``fine-tune``, ``vision``,
    ``user_data`` or ``evals``), and optionally ``expires_after[anchor]`` (``created_at``) and
    ``expires_after[seconds]`` (3600 to 2592000); ``batch`` and ``fine-tune`` files must be named
    ``*.jsonl``, files with purpose ``batch`` expire after 30 days unless told otherwise, and a
    file above :attr:`AppConfig.max_file_bytes <anyoai.testing._framework.AppConfig.max_file_bytes>`
    is refused. The content of a batch input is only read when a batch validates it
    (:mod:`anyoai.testing._batches`). ``GET /v1/files`` lists them (``purpose``, ``order``,
    ``limit``, ``after``), ``GET``/``DELETE /v1/files/{file_id}`` retrieve and delete one, and
    ``GET /v1/files/{file_id}/content`` answers its bytes as ``application/octet-stream``.

The Uploads API (:mod:`anyoai.testing._uploads`) and the Batch API build on the parser, the
lists and the file store of this module.

Ids follow the server's sequence numbers: ``file-fake-000001``; ``created_at`` is
``1700000000 + seq``. Lists are ordered by ``created_at`` and then by sequence number, so pages
are stable even for objects of the same second. Errors have the OpenAI shape; unknown ids are
404 (``No such File object: file-...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import quote, unquote

import attrs

from ._framework import (
    EPOCH,
    EndpointError,
    RecordedRequest,
    Reply,
    RequestContext,
    Route,
    found_or_404,
    json_reply,
)
from ._state import StoredFile
from ._validation import invalid_type, invalid_value, missing, within_bounds

__all__ = [
    "FILE_PURPOSES",
    "FILE_ROUTES",
    "FormPart",
    "parse_form_data",
]

#: The purposes ``POST /v1/files`` accepts (``CreateFileRequest.purpose``).
FILE_PURPOSES: Final = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
#: The purpose of the output and error files of a batch.
BATCH_OUTPUT: Final = "batch_output"
#: How long a ``batch`` file lives unless ``expires_after`` says otherwise.
BATCH_FILE_LIFETIME: Final = 30 * 24 * 3600
#: The bounds of ``expires_after.seconds``.
MIN_LIFETIME: Final = 3600
MAX_LIFETIME: Final = 30 * 24 * 3600
#: ``limit`` of ``GET /v1/files``: the default and the maximum.
MAX_LIST_FILES: Final = 10_000

_FILE_FIELDS: Final = ("file", "purpose", "expires_after[anchor]", "expires_after[seconds]")
_JSONL_PURPOSES: Final = {"batch": "Batch API", "fine-tune": "Fine-Tuning API"}
_FAKE_ID: Final = re.compile(r"[-_]fake[-_](?P<seq>\d+)")
_OCTET_STREAM: Final = "application/octet-stream"

# --------------------------------------------------------------------------------------------
# multipart/form-data

# the most header bytes one part may have
_MAX_PART_HEADERS: Final = 16 * 1024
# the longest boundary RFC 2046 allows
_MAX_BOUNDARY: Final = 70
_PARAM: Final = re.compile(
    r';\s*(?P<name>[^\s=;"]+)\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^\s;"]*))\s*'
)
_ESCAPED: Final = re.compile(r"\\(.)")


@attrs.frozen(kw_only=True)
class FormPart:
    """One part of a multipart/form-data body.

    :ivar name: the ``name`` of its ``Content-Disposition``.
    :ivar filename: its ``filename`` (``filename*`` preferred), or ``None`` for a plain field.
    :ivar content_type: its ``Content-Type`` header, if it has one.
    :ivar data: its bytes.
    """

    name: str
    filename: str | None
    content_type: str | None
    data: bytes = attrs.field(repr=False)

    def text(self) -> str:
        """The value of a plain field: its bytes as UTF-8 (400 if they are not)."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise _form_error(f"the value of '{self.name}' is not UTF-8") from None


def _form_error(reason: str) -> EndpointError:
    return EndpointError(400, f"Invalid multipart/form-data body: {reason}.")


def split_header(value: str) -> tuple[str, dict[str, str]] | None:
    """A header value such as ``form-data; name="file"`` as its main value, lower case, and its
    parameters (names lower case, quoted values unescaped); ``None`` if it is malformed or
    names a parameter twice."""
    main, _, _ = value.partition(";")
    position = len(main)
    params: dict[str, str] = {}
    while position < len(value):
        if not value[position:].strip(" \t;"):
            break  # a trailing ";"
        match = _PARAM.match(value, position)
        if match is None:
            return None
        name = match["name"].lower()
        if name in params:
            return None
        quoted = match["quoted"]
        params[name] = _ESCAPED.sub(r"\1", quoted) if quoted is not None else match["token"]
        position = match.end()
    return main.strip().lower(), params


def _extended_value(value: str) -> str | None:
    """An RFC 5987 value (``UTF-8''na%C3%AFve.txt``) decoded, or ``None`` if malformed."""
    charset, quote_mark, rest = value.partition("'")
    _, quote_mark2, encoded = rest.partition("'")
    if not quote_mark or not quote_mark2 or charset.lower() not in ("utf-8", "iso-8859-1"):
        return None
    try:
        return unquote(encoded, encoding=charset, errors="strict")
    except (UnicodeDecodeError, LookupError):
        return None


def _decode_header(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _part(headers_block: bytes, data: bytes) -> FormPart:
    headers: dict[str, str] = {}
    for line in headers_block.split(b"\r\n") if headers_block else ():
        name, colon, value = _decode_header(line).partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise _form_error(f"malformed part header {line[:100]!r}")
        key = name.lower()
        if key in headers:
            raise _form_error(f"a part has two {name} headers")
        headers[key] = value.strip()
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise _form_error("a part has no Content-Disposition header")
    parsed = split_header(disposition)
    if parsed is None or parsed[0] != "form-data" or not parsed[1].get("name"):
        raise _form_error(f"malformed Content-Disposition {disposition!r}")
    params = parsed[1]
    filename = params.get("filename")
    if "filename*" in params:
        filename = _extended_value(params["filename*"])
        if filename is None:
            raise _form_error(f"malformed filename* in {disposition!r}")
    return FormPart(
        name=params["name"],
        filename=filename,
        content_type=headers.get("content-type"),
        data=data,
    )


def parse_form_data(request: RecordedRequest) -> list[FormPart]:
    """The parts of a multipart/form-data request body, in order; 400 if it is not one.

    Strict: the ``Content-Type`` must be ``multipart/form-data`` with a ``boundary``, the body
    must start with the first boundary and end with the closing one (anything after it is
    ignored), every part needs a ``Content-Disposition: form-data; name=...`` header, and lines
    end in CRLF. Part contents are slices of the body: nothing is copied twice.
    """
    content_type = request.headers.get("content-type", "")
    parsed = split_header(content_type)
    if parsed is None or parsed[0] != "multipart/form-data":
        shown = content_type or "none"
        raise EndpointError(
            400,
            f"Invalid Content-Type header ({shown}), expected multipart/form-data. (HINT: If "
            "you're using curl, you can pass -H 'Content-Type: multipart/form-data')",
        )
    boundary = parsed[1].get("boundary")
    if not boundary:
        raise _form_error("the Content-Type header has no boundary")
    if len(boundary) > _MAX_BOUNDARY or not boundary.isascii():
        raise _form_error("the boundary is not 1 to 70 ASCII characters")
    body = request.body
    dash_boundary = b"--" + boundary.encode("ascii")
    delimiter = b"\r\n" + dash_boundary
    if not body.startswith(dash_boundary):
        raise _form_error("the body does not start with the boundary")
    position = len(dash_boundary)
    parts: list[FormPart] = []
    while True:
        if body.startswith(b"--", position):
            return parts  # the closing boundary
        if not body.startswith(b"\r\n", position):
            raise _form_error("a boundary is not followed by a line break")
        position += 2
        if body.startswith(b"\r\n", position):  # a part without headers
            headers_block, start = b"", position + 2
        else:
            end = body.find(b"\r\n\r\n", position, position + _MAX_PART_HEADERS)
            if end < 0:
                raise _form_error("the headers of a part are unterminated or too long")
            headers_block, start = body[position:end], end + 4
        stop = body.find(delimiter, start)
        if stop < 0:
            raise _form_error("the body does not end with the closing boundary")
        parts.append(_part(headers_block, body[start:stop]))
        position = stop + len(delimiter)


def form_fields(request: RecordedRequest, allowed: Sequence[str]) -> dict[str, FormPart]:
    """The parts of a multipart/form-data body by name: each at most once, all in *allowed*."""
    fields: dict[str, FormPart] = {}
    for part in parse_form_data(request):
        if part.name not in allowed:
            raise EndpointError(
                400, f"Additional properties are not allowed ('{part.name}' was unexpected)"
            )
        if part.name in fields:
            raise _form_error(f"the field '{part.name}' is given twice")
        fields[part.name] = part
    return fields


def required_property(name: str) -> EndpointError:
    """The 400 the Files and Uploads APIs answer when a form field *name* is missing."""
    return EndpointError(400, f"'{name}' is a required property")


# --------------------------------------------------------------------------------------------
# shared: ids, sizes, lists

_T = TypeVar("_T")


def seq_of(object_id: str) -> int | None:
    """The sequence number in a fake id (``file-fake-000012`` -> 12), or ``None``."""
    match = _FAKE_ID.search(object_id)
    return int(match["seq"]) if match is not None else None


def format_size(size: int) -> str:
    """``512 MB`` for a whole number of MiB, else ``N bytes``."""
    mebibyte = 1024 * 1024
    if size >= mebibyte and size % mebibyte == 0:
        return f"{size // mebibyte} MB"
    return f"{size} bytes"


def check_size(data: bytes, limit: int, param: str, message: str) -> None:
    """400 (*param*) if *data* holds more than *limit* bytes.

    *message* says so, with ``{size}`` (the bytes sent) and ``{limit}`` (:func:`format_size`).
    """
    if len(data) > limit:
        text = message.format(size=len(data), limit=format_size(limit))
        raise EndpointError(400, text, param=param)


def query_int(ctx: RequestContext, name: str, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds (400 otherwise)."""
    raw = ctx.request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EndpointError(
            400,
            f"Invalid type for '{name}': expected an integer, but got a string instead.",
            param=name,
            code="invalid_type",
        ) from None
    return within_bounds(name, value, minimum, maximum)


def list_page(
    ctx: RequestContext,
    items: Iterable[_T],
    key: Callable[[_T], tuple[int, int]],
    lookup: Callable[[str], _T | None],
    *,
    limit: int,
    descending: bool,
    to_json: Callable[[_T], dict[str, Any]],
    id_of: Callable[[_T], str],
) -> Reply:
    """One page of a cursor-paginated list: ``{"object": "list", "data", "first_id",
    "last_id", "has_more"}``.

    *items* are ordered by *key*, ``(created_at, seq)``; the ``after`` query parameter names
    the last object of the previous page, which may have been deleted since (its id still tells
    its place).
    """
    ordered = sorted(items, key=key, reverse=descending)
    after = ctx.request.query.get("after")
    if after is not None:
        found = lookup(after)
        cursor: tuple[int, int] | None
        if found is not None:
            cursor = key(found)
        else:
            seq = seq_of(after)
            cursor = (EPOCH + seq, seq) if seq is not None else None
        if cursor is None:
            raise invalid_value("after", f"Invalid 'after': no object has the id '{after}'.")
        mark = cursor
        if descending:
            ordered = [item for item in ordered if key(item) < mark]
        else:
            ordered = [item for item in ordered if key(item) > mark]
    page = ordered[:limit]
    return json_reply(
        {
            "object": "list",
            "data": [to_json(item) for item in page],
            "first_id": id_of(page[0]) if page else None,
            "last_id": id_of(page[-1]) if page else None,
            "has_more": len(ordered) > len(page),
        }
    )


def _file_key(file: StoredFile) -> tuple[int, int]:
    return (file.created_at, file.seq)


def _lifetime(anchor: str | None, seconds: Any, param: str) -> int | None:
    """``expires_after`` as a number of seconds, or ``None`` when not given (400 if invalid)."""
    if anchor is None and seconds is None:
        return None
    if anchor is None:
        raise missing(f"{param}.anchor")
    if seconds is None:
        raise missing(f"{param}.seconds")
    if anchor != "created_at":
        raise invalid_value(
            f"{param}.anchor",
            f"Invalid value: '{anchor}'. Supported values are: 'created_at'.",
        )
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise invalid_type(f"{param}.seconds", "an integer", seconds)
    if not MIN_LIFETIME <= seconds <= MAX_LIFETIME:
        raise invalid_value(
            f"{param}.seconds",
            f"Invalid '{param}.seconds': expected a value between {MIN_LIFETIME} and "
            f"{MAX_LIFETIME}, but got {seconds} instead.",
        )
    return seconds


def lifetime_of(body: Mapping[str, Any], name: str) -> int | None:
    """The ``expires_after`` object *name* of a JSON body as seconds, or ``None``."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_type(name, "an object", value)
    return _lifetime(value.get("anchor"), value.get("seconds"), name)


def check_filename(purpose: str, filename: str) -> None:
    """400 unless *filename* suits *purpose* (``batch`` and ``fine-tune`` files are ``*.jsonl``)."""
    api = _JSONL_PURPOSES.get(purpose)
    if api is not None and not filename.lower().endswith(".jsonl"):
        raise EndpointError(400, f"Invalid file format for {api}. Must be .jsonl", param="file")


def _expiry(purpose: str, created_at: int, lifetime: int | None) -> int | None:
    if lifetime is None and purpose == "batch":
        lifetime = BATCH_FILE_LIFETIME
    return created_at + lifetime if lifetime is not None else None


def new_file(
    ctx: RequestContext,
    seq: int,
    *,
    filename: str,
    purpose: str,
    data: bytes,
    lifetime: int | None = None,
) -> StoredFile:
    """Store and return a new file made with sequence number *seq*."""
    created_at = EPOCH + seq
    file = StoredFile(
        id=f"file-fake-{seq:06d}",
        seq=seq,
        filename=filename,
        purpose=purpose,
        data=data,
        created_at=created_at,
        expires_at=_expiry(purpose, created_at, lifetime),
    )
    ctx.state.save_file(file)
    return file


# --------------------------------------------------------------------------------------------
# files


def _file_or_404(ctx: RequestContext) -> StoredFile:
    file_id = ctx.params["file_id"]
    return found_or_404(ctx.state.file(file_id), "File", file_id, "id")


def create_file(ctx: RequestContext) -> Reply:
    """``POST /v1/files``: store a file sent as multipart/form-data."""
    fields = form_fields(ctx.request, _FILE_FIELDS)
    upload = fields.get("file")
    if upload is None:
        raise required_property("file")
    if "purpose" not in fields:
        raise required_property("purpose")
    if not upload.filename:
        raise EndpointError(
            400, "'file' must be a file: a form-data part with a filename.", param="file"
        )
    purpose = fields["purpose"].text()
    if purpose not in FILE_PURPOSES:
        raise EndpointError(400, f"'{purpose}' is not one of {list(FILE_PURPOSES)} - 'purpose'")
    check_size(
        upload.data,
        ctx.config.max_file_bytes,
        "file",
        "File is too large: {size} bytes. The maximum size of a file is {limit}.",
    )
    check_filename(purpose, upload.filename)
    anchor = fields["expires_after[anchor]"].text() if "expires_after[anchor]" in fields else None
    seconds: Any = None
    if "expires_after[seconds]" in fields:
        text = fields["expires_after[seconds]"].text()
        seconds = int(text) if text.strip().isdigit() else text
    lifetime = _lifetime(anchor, seconds, "expires_after")
    file = new_file(
        ctx,
        ctx.seq,
        filename=upload.filename,
        purpose=purpose,
        data=upload.data,
        lifetime=lifetime,
    )
    return json_reply(file.to_json())


def list_files(ctx: RequestContext) -> Reply:
    """``GET /v1/files``: ``purpose``, ``order`` (``desc`` by default), ``limit``, ``after``."""
    purpose = ctx.request.query.get("purpose")
    order = ctx.request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_value(
            "order", f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'."
        )
    limit = query_int(ctx, "limit", MAX_LIST_FILES, 1, MAX_LIST_FILES)
    files = [
        file for file in ctx.state.files.values() if purpose is None or file.purpose == purpose
    ]
    return list_page(
        ctx,
        files,
        _file_key,
        ctx.state.file,
        limit=limit,
        descending=order == "desc",
        to_json=StoredFile.to_json,
        id_of=lambda file: file.id,
    )


def retrieve_file(ctx: RequestContext) -> Reply:
    """``GET /v1/files/{file_id}``."""
    return json_reply(_file_or_404(ctx).to_json())


def delete_file(ctx: RequestContext) -> Reply:
    """``DELETE /v1/files/{file_id}``."""
    file = _file_or_404(ctx)
    ctx.state.delete_file(file.id)
    return json_reply({"id": file.id, "object": "file", "deleted": True})


def _content_disposition(filename: str) -> str:
    if filename.isascii() and filename.isprintable() and '"' not in filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename*=UTF-8''{quote(filename, safe='')}"


def file_content(ctx: RequestContext) -> Reply:
    """``GET /v1/files/{file_id}/content``: the bytes, as ``application/octet-stream``."""
    file = _file_or_404(ctx)
    return Reply(
        headers=(
            ("content-type", _OCTET_STREAM),
            ("content-disposition", _content_disposition(file.filename)),
        ),
        body=file.data,
    )


#: The Files endpoints (part of :data:`~anyoai.testing._table.DEFAULT_ROUTES`).
FILE_ROUTES: Final[tuple[Route, ...]] = (
    Route("POST", "/v1/files", create_file),
    Route("GET", "/v1/files", list_files),
    Route("GET", "/v1/files/{file_id}", retrieve_file),
    Route("DELETE", "/v1/files/{file_id}", delete_file),
    Route("GET", "/v1/files/{file_id}/content", file_content),
)
