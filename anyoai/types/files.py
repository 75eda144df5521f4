"""Files (``/files``) and uploads (``/uploads``)."""

from __future__ import annotations

import attrs

from .._model import APIObject, CursorPage

__all__ = ["FileDeleted", "FileList", "FileObject", "Upload", "UploadPart"]


@attrs.frozen(kw_only=True)
class FileObject(APIObject):
    """A file uploaded to the API.

    :ivar id: its id (``file-...``), to give to batches and fine-tuning jobs.
    :ivar bytes: its size.
    :ivar created_at: when it was uploaded (Unix seconds).
    :ivar filename: its name.
    :ivar purpose: ``"batch"``, ``"fine-tune"``, ``"batch_output"``, ``"assistants"``, ...
    :ivar status: deprecated by the API: ``"uploaded"``, ``"processed"`` or ``"error"``.
    :ivar expires_at: when it expires, if it does.
    """

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    object_: str = "file"
    status: str | None = None
    status_details: str | None = None
    expires_at: int | None = None


@attrs.frozen(kw_only=True)
class FileList(CursorPage[FileObject]):
    """One page of ``files.list``."""

    data: list[FileObject]


@attrs.frozen(kw_only=True)
class FileDeleted(APIObject):
    """The result of ``files.delete``."""

    id: str
    deleted: bool
    object_: str = "file"


@attrs.frozen(kw_only=True)
class Upload(APIObject):
    """An upload in parts (``/uploads``), for files over the single-request limit.

    :ivar status: ``"pending"``, ``"completed"``, ``"cancelled"`` or ``"expired"``.
    :ivar file: the file, once completed.
    """

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str
    expires_at: int | None = None
    object_: str = "upload"
    file: FileObject | None = None


@attrs.frozen(kw_only=True)
class UploadPart(APIObject):
    """One part of an upload."""

    id: str
    created_at: int
    upload_id: str
    object_: str = "upload.part"
