"""The Uploads API of the fake server: a file sent in parts, then joined.

``POST /v1/uploads`` (JSON ``bytes``, ``filename``, ``mime_type``, ``purpose``) opens an upload
for an hour; ``POST /v1/uploads/{upload_id}/parts`` adds a part (a multipart ``data`` field of
at most 64 MiB); ``POST /v1/uploads/{upload_id}/complete`` joins the parts given in
``part_ids``, in that order (their sizes must add up to ``bytes``; an ``md5`` is checked when
given) into a file of the Files API (:mod:`anyoai.testing._files`);
``POST /v1/uploads/{upload_id}/cancel`` cancels it. Time does not pass in the fake server: an
upload expires only when a test says so
(:meth:`AppState.expire_upload <anyoai.testing._state.AppState.expire_upload>`).

Ids follow the server's sequence numbers: ``upload_fake_000002``, ``part_fake_000003``;
``created_at`` is ``1700000000 + seq``. Unknown ids are 404 (``No such Upload object: ...``).
"""

from __future__ import annotations

import hashlib
from typing import Final

import attrs

from ._files import (
    check_filename,
    check_size,
    form_fields,
    format_size,
    lifetime_of,
    new_file,
    required_property,
)
from ._framework import EndpointError, Reply, RequestContext, Route, found_or_404, json_reply
from ._state import StoredPart, StoredUpload
from ._validation import invalid_type, invalid_value, missing, quoted_choices, require_str

__all__ = ["UPLOAD_PURPOSES", "UPLOAD_ROUTES"]

#: The purposes ``POST /v1/uploads`` accepts (``CreateUploadRequest.purpose``).
UPLOAD_PURPOSES: Final = ("assistants", "batch", "fine-tune", "vision")
#: The largest part an upload takes.
MAX_PART_BYTES: Final = 64 * 1024 * 1024
#: The largest upload (``bytes``).
MAX_UPLOAD_BYTES: Final = 8 * 1024 * 1024 * 1024
#: How long an upload stays open (its ``expires_at`` is ``created_at`` plus this).
UPLOAD_LIFETIME: Final = 3600


def _upload_or_404(ctx: RequestContext) -> StoredUpload:
    upload_id = ctx.params["upload_id"]
    return found_or_404(ctx.state.upload(upload_id), "Upload", upload_id, "upload_id")


def _pending(upload: StoredUpload, action: str) -> None:
    if upload.status != "pending":
        raise EndpointError(
            400,
            f"Cannot {action} upload {upload.id}: its status is '{upload.status}', not 'pending'.",
        )


def create_upload(ctx: RequestContext) -> Reply:
    """``POST /v1/uploads``: open an upload (JSON ``bytes``, ``filename``, ``mime_type``,
    ``purpose``, optional ``expires_after``)."""
    body = ctx.body_object()
    filename = require_str(body, "filename")
    purpose = require_str(body, "purpose")
    size = body.get("bytes")
    if size is None:
        raise missing("bytes")
    if isinstance(size, bool) or not isinstance(size, int):
        raise invalid_type("bytes", "an integer", size)
    mime_type = require_str(body, "mime_type")
    if purpose not in UPLOAD_PURPOSES:
        raise invalid_value(
            "purpose",
            f"Invalid value: '{purpose}'. Supported values are: {quoted_choices(UPLOAD_PURPOSES)}.",
        )
    if size < 0 or size > MAX_UPLOAD_BYTES:
        raise invalid_value(
            "bytes",
            f"Invalid 'bytes': an upload holds 0 to {format_size(MAX_UPLOAD_BYTES)}, "
            f"not {size} bytes.",
        )
    if not filename:
        raise invalid_value("filename", "Invalid 'filename': empty string.")
    check_filename(purpose, filename)
    lifetime = lifetime_of(body, "expires_after")
    upload = StoredUpload(
        id=f"upload_fake_{ctx.seq:06d}",
        seq=ctx.seq,
        filename=filename,
        purpose=purpose,
        size=size,
        mime_type=mime_type,
        created_at=ctx.created,
        expires_at=ctx.created + UPLOAD_LIFETIME,
        file_lifetime=lifetime,
    )
    ctx.state.save_upload(upload)
    return json_reply(upload.to_json())


def add_upload_part(ctx: RequestContext) -> Reply:
    """``POST /v1/uploads/{upload_id}/parts``: a multipart ``data`` field, at most 64 MiB."""
    upload = _upload_or_404(ctx)
    fields = form_fields(ctx.request, ("data",))
    part_field = fields.get("data")
    if part_field is None:
        raise required_property("data")
    _pending(upload, "add a part to")
    check_size(
        part_field.data,
        MAX_PART_BYTES,
        "data",
        "The part is too large: {size} bytes. A part can be at most {limit}.",
    )
    part = StoredPart(
        id=f"part_fake_{ctx.seq:06d}",
        seq=ctx.seq,
        upload_id=upload.id,
        created_at=ctx.created,
        data=part_field.data,
    )
    ctx.state.save_upload(attrs.evolve(upload, parts=(*upload.parts, part)))
    return json_reply(part.to_json())


def complete_upload(ctx: RequestContext) -> Reply:
    """``POST /v1/uploads/{upload_id}/complete``: join ``part_ids`` (in order) into a file."""
    upload = _upload_or_404(ctx)
    body = ctx.body_object()
    part_ids = body.get("part_ids")
    if part_ids is None:
        raise missing("part_ids")
    if not isinstance(part_ids, list):
        raise invalid_type("part_ids", "an array", part_ids)
    md5 = body.get("md5")
    if md5 is not None and not isinstance(md5, str):
        raise invalid_type("md5", "a string", md5)
    _pending(upload, "complete")
    parts: list[StoredPart] = []
    for index, part_id in enumerate(part_ids):
        if not isinstance(part_id, str):
            raise invalid_type(f"part_ids[{index}]", "a string", part_id)
        part = upload.part(part_id)
        if part is None:
            raise invalid_value(
                "part_ids", f"Invalid 'part_ids': '{part_id}' is not a part of {upload.id}."
            )
        if part in parts:
            raise invalid_value(
                "part_ids", f"Invalid 'part_ids': '{part_id}' is given more than once."
            )
        parts.append(part)
    total = sum(len(part.data) for part in parts)
    if total != upload.size:
        raise EndpointError(
            400,
            f"The parts add up to {total} bytes, but the upload was created with "
            f"bytes={upload.size}.",
            param="part_ids",
        )
    data = b"".join(part.data for part in parts)
    if md5 is not None and hashlib.md5(data).hexdigest() != md5.lower():
        raise EndpointError(
            400,
            f"The md5 checksum of the uploaded bytes ({hashlib.md5(data).hexdigest()}) does not "
            f"match the one given ({md5}).",
            param="md5",
        )
    file = new_file(
        ctx,
        ctx.seq,
        filename=upload.filename,
        purpose=upload.purpose,
        data=data,
        lifetime=upload.file_lifetime,
    )
    completed = attrs.evolve(upload, status="completed", file=file)
    ctx.state.save_upload(completed)
    return json_reply(completed.to_json())


def cancel_upload(ctx: RequestContext) -> Reply:
    """``POST /v1/uploads/{upload_id}/cancel``: no more parts, no file."""
    upload = _upload_or_404(ctx)
    _pending(upload, "cancel")
    cancelled = attrs.evolve(upload, status="cancelled")
    ctx.state.save_upload(cancelled)
    return json_reply(cancelled.to_json())


#: The Uploads endpoints (part of :data:`~anyoai.testing._table.DEFAULT_ROUTES`).
UPLOAD_ROUTES: Final[tuple[Route, ...]] = (
    Route("POST", "/v1/uploads", create_upload),
    Route("POST", "/v1/uploads/{upload_id}/parts", add_upload_part),
    Route("POST", "/v1/uploads/{upload_id}/complete", complete_upload),
    Route("POST", "/v1/uploads/{upload_id}/cancel", cancel_upload),
)
