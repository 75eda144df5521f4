"""What the fake server remembers between requests: sequence numbers, files, uploads, batches.

The completion endpoints are pure functions of their request; the Files, Uploads and Batch APIs
are not. Their objects live in one :class:`AppState` per :class:`~anyoai.testing.FakeServer`
(per :class:`~anyoai.testing._framework.FakeApp`), from its creation to its end: recorded
requests may be cleared, the state is kept.

Every stored object is frozen: a change stores a new version, so what
:attr:`FakeServer.files <anyoai.testing.FakeServer.files>` (``uploads``, ``batches``) hands out
is a read-only snapshot. Endpoints change the state from the server's event loop only; a lock
makes snapshots safe to take from other threads (:func:`~anyoai.testing.run_in_thread`).

Nothing here does I/O or knows HTTP: the endpoints are in :mod:`anyoai.testing._files`,
:mod:`anyoai.testing._uploads` and :mod:`anyoai.testing._batches`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar

import attrs

__all__ = [
    "AppState",
    "BatchLine",
    "BatchUsage",
    "RequestCounts",
    "StoredBatch",
    "StoredFile",
    "StoredPart",
    "StoredUpload",
]

#: The statuses a batch (``Batch.status``) never leaves.
FINAL_BATCH_STATUSES: Final = frozenset({"failed", "completed", "expired", "cancelled"})


@attrs.frozen(kw_only=True)
class StoredFile:
    """A file of the fake server (``OpenAIFile``): uploaded, made by an upload, or a batch's output.

    :ivar id: ``file-fake-<seq:06d>``.
    :ivar seq: the sequence number it was made with (``created_at`` is ``1700000000 + seq``).
    :ivar filename: the name it was uploaded with.
    :ivar purpose: ``assistants``, ``batch``, ``fine-tune``, ``vision``, ``user_data``,
        ``evals``, or ``batch_output`` for the output and error files of a batch.
    :ivar data: its bytes.
    :ivar created_at: its ``created_at`` timestamp.
    :ivar expires_at: its ``expires_at`` timestamp, or ``None``: it does not expire.
    """

    id: str
    seq: int
    filename: str
    purpose: str
    data: bytes = attrs.field(repr=False)
    created_at: int
    expires_at: int | None = None

    @property
    def size(self) -> int:
        """Its size in bytes (``bytes`` in the API)."""
        return len(self.data)

    def to_json(self) -> dict[str, Any]:
        """The ``OpenAIFile`` object the API answers with."""
        return {
            "object": "file",
            "id": self.id,
            "purpose": self.purpose,
            "filename": self.filename,
            "bytes": self.size,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "status": "processed",
            "status_details": None,
        }


@attrs.frozen(kw_only=True)
class StoredPart:
    """One part of an upload (``UploadPart``).

    :ivar id: ``part_fake_<seq:06d>``.
    :ivar data: its bytes.
    """

    id: str
    seq: int
    upload_id: str
    created_at: int
    data: bytes = attrs.field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """The ``UploadPart`` object the API answers with."""
        return {
            "id": self.id,
            "object": "upload.part",
            "created_at": self.created_at,
            "upload_id": self.upload_id,
        }


@attrs.frozen(kw_only=True)
class StoredUpload:
    """An upload (``Upload``): a file sent in parts.

    :ivar id: ``upload_fake_<seq:06d>``.
    :ivar size: the number of bytes announced at creation (``bytes`` in the API).
    :ivar status: ``pending``, ``completed``, ``cancelled`` or ``expired``.
    :ivar parts: the parts added, in order of arrival.
    :ivar file: the file it made once completed.
    :ivar file_lifetime: seconds from the file's creation to its ``expires_at``
        (``expires_after``), or ``None``.
    """

    id: str
    seq: int
    filename: str
    purpose: str
    size: int
    mime_type: str
    created_at: int
    expires_at: int
    status: str = "pending"
    parts: tuple[StoredPart, ...] = ()
    file: StoredFile | None = None
    file_lifetime: int | None = None

    def part(self, part_id: str) -> StoredPart | None:
        """The part with this id, if it is one of this upload's."""
        for part in self.parts:
            if part.id == part_id:
                return part
        return None

    def to_json(self) -> dict[str, Any]:
        """The ``Upload`` object the API answers with."""
        return {
            "id": self.id,
            "object": "upload",
            "bytes": self.size,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "expires_at": self.expires_at,
            "file": self.file.to_json() if self.file is not None else None,
        }


@attrs.frozen(kw_only=True)
class BatchLine:
    """A valid line of a batch's input file.

    :ivar number: its line number in the file, from 1.
    :ivar custom_id: its ``custom_id``.
    :ivar body: its ``body``, the request body the line sends to the batch's endpoint.
    """

    number: int
    custom_id: str
    body: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class RequestCounts:
    """``request_counts`` of a batch: its requests, those answered 2xx, the others."""

    total: int = 0
    completed: int = 0
    failed: int = 0

    def to_json(self) -> dict[str, int]:
        """The ``BatchRequestCounts`` object."""
        return {"total": self.total, "completed": self.completed, "failed": self.failed}


@attrs.frozen(kw_only=True)
class BatchUsage:
    """``usage`` of a batch: the tokens its successful requests used, summed."""

    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        """The batch's ``usage`` object."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


@attrs.frozen(kw_only=True)
class StoredBatch:
    """A batch (``Batch``) and what the fake server keeps to run it.

    :ivar id: ``batch_fake_<seq:06d>``.
    :ivar status: ``validating``, ``failed``, ``in_progress``, ``finalizing``, ``completed``,
        ``expired``, ``cancelling`` or ``cancelled``; it never leaves those of
        :data:`FINAL_BATCH_STATUSES`.
    :ivar errors: the ``errors.data`` of a failed batch (``code``, ``message``, ``param``,
        ``line`` each), else ``None``.
    :ivar lines: the input file's requests once validated, else ``None``.
    :ivar outputs: the lines of the output file (answers 2xx), once the requests ran.
    :ivar failures: the lines of the error file (other answers, or requests that did not run
        because the batch expired or was cancelled), once known.
    :ivar output_lifetime: seconds from the output files' creation to their ``expires_at``
        (``output_expires_after``), or ``None``.
    """

    id: str
    seq: int
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: Mapping[str, str] | None
    created_at: int
    expires_at: int
    status: str = "validating"
    model: str | None = None
    errors: tuple[Mapping[str, Any], ...] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts = attrs.field(factory=RequestCounts)
    usage: BatchUsage = attrs.field(factory=BatchUsage)
    lines: tuple[BatchLine, ...] | None = attrs.field(default=None, repr=False)
    outputs: tuple[str, ...] | None = attrs.field(default=None, repr=False)
    failures: tuple[str, ...] | None = attrs.field(default=None, repr=False)
    output_lifetime: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``Batch`` object the API answers with."""
        errors = None
        if self.errors is not None:
            errors = {"object": "list", "data": [dict(error) for error in self.errors]}
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.in_progress_at,
            "expires_at": self.expires_at,
            "finalizing_at": self.finalizing_at,
            "completed_at": self.completed_at,
            "failed_at": self.failed_at,
            "expired_at": self.expired_at,
            "cancelling_at": self.cancelling_at,
            "cancelled_at": self.cancelled_at,
            "request_counts": self.request_counts.to_json(),
            "usage": self.usage.to_json(),
            "metadata": dict(self.metadata) if self.metadata is not None else None,
        }


_T = TypeVar("_T")


class _Stored(Protocol):
    @property
    def id(self) -> str: ...


_StoredT = TypeVar("_StoredT", bound=_Stored)


class AppState:
    """The server-lifetime state of a fake server: its sequence numbers and its objects.

    One per :class:`~anyoai.testing._framework.FakeApp`; handlers reach it as
    :attr:`RequestContext.state <anyoai.testing._framework.RequestContext.state>`.

    Sequence numbers count every request the server received and every object or internal
    request it made on its own (a batch's requests and its output files), so ids stay unique.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, StoredUpload] = {}
        self._batches: dict[str, StoredBatch] = {}

    def next_seq(self) -> int:
        """Take the next sequence number (1 first)."""
        with self._lock:
            self._seq += 1
            return self._seq

    def observe(self, seq: int) -> None:
        """Note that *seq* was used, so that :meth:`next_seq` answers above it."""
        with self._lock:
            self._seq = max(self._seq, seq)

    @property
    def files(self) -> Mapping[str, StoredFile]:
        """The files by id, oldest first: a read-only snapshot."""
        return self._snapshot(self._files)

    @property
    def uploads(self) -> Mapping[str, StoredUpload]:
        """The uploads by id, oldest first: a read-only snapshot."""
        return self._snapshot(self._uploads)

    @property
    def batches(self) -> Mapping[str, StoredBatch]:
        """The batches by id, oldest first: a read-only snapshot."""
        return self._snapshot(self._batches)

    def file(self, file_id: str) -> StoredFile | None:
        """The file with this id, or ``None``."""
        return self._get(self._files, file_id)

    def save_file(self, file: StoredFile) -> None:
        """Store *file* (a new one, or a new version)."""
        self._put(self._files, file)

    def delete_file(self, file_id: str) -> StoredFile | None:
        """Forget the file with this id; return it, or ``None`` if there was none."""
        with self._lock:
            return self._files.pop(file_id, None)

    def upload(self, upload_id: str) -> StoredUpload | None:
        """The upload with this id, or ``None``."""
        return self._get(self._uploads, upload_id)

    def save_upload(self, upload: StoredUpload) -> None:
        """Store *upload* (a new one, or a new version)."""
        self._put(self._uploads, upload)

    def expire_upload(self, upload_id: str) -> StoredUpload:
        """Make a pending upload ``expired``, as an hour without completion would.

        Uploads never expire on their own: time does not pass in the fake server. ``KeyError``
        for an unknown upload, ``ValueError`` if it is not pending.
        """
        with self._lock:
            upload = self._uploads[upload_id]
            if upload.status != "pending":
                raise ValueError(f"upload {upload_id} is {upload.status}, not pending")
            expired = attrs.evolve(upload, status="expired")
            self._uploads[upload_id] = expired
            return expired

    def batch(self, batch_id: str) -> StoredBatch | None:
        """The batch with this id, or ``None``."""
        return self._get(self._batches, batch_id)

    def save_batch(self, batch: StoredBatch) -> None:
        """Store *batch* (a new one, or a new version)."""
        self._put(self._batches, batch)

    def _get(self, objects: dict[str, _T], object_id: str) -> _T | None:
        with self._lock:
            return objects.get(object_id)

    def _put(self, objects: dict[str, _StoredT], stored: _StoredT) -> None:
        with self._lock:
            objects[stored.id] = stored

    def _snapshot(self, objects: dict[str, _T]) -> Mapping[str, _T]:
        with self._lock:
            return MappingProxyType(dict(objects))
