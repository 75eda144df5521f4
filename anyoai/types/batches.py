"""Batches (``/batches``): jobs over a JSONL file of requests, at half price."""

from __future__ import annotations

from typing import Any

import attrs

from .._model import APIObject, CursorPage

__all__ = [
    "Batch",
    "BatchError",
    "BatchErrors",
    "BatchList",
    "BatchRequestCounts",
    "BatchResult",
    "BatchResultError",
    "BatchUsage",
]

#: the statuses after which a batch does not change any more
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


@attrs.frozen(kw_only=True)
class BatchError:
    """A problem with the batch as a whole, usually one line of its input file.

    :ivar line: the 1-based line of the input file, when the problem is a line.
    """

    code: str | None = None
    message: str | None = None
    param: str | None = None
    line: int | None = None


@attrs.frozen(kw_only=True)
class BatchErrors:
    """``batch.errors``."""

    data: list[BatchError] = attrs.field(factory=list)
    object_: str = "list"


@attrs.frozen(kw_only=True)
class BatchRequestCounts:
    """How many requests the batch holds, and how many completed or failed."""

    total: int = 0
    completed: int = 0
    failed: int = 0


@attrs.frozen(kw_only=True)
class BatchUsage:
    """Tokens used by the whole batch (batches created after September 2025)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


@attrs.frozen(kw_only=True)
class Batch(APIObject):
    """A batch job.

    :ivar status: ``"validating"``, ``"in_progress"``, ``"finalizing"``, ``"completed"``,
        ``"failed"``, ``"expired"``, ``"cancelling"`` or ``"cancelled"``.
    :ivar output_file_id: the file with the answers of the requests that succeeded.
    :ivar error_file_id: the file with the requests that failed.
    """

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: str
    created_at: int
    object_: str = "batch"
    model: str | None = None
    errors: BatchErrors | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts | None = None
    usage: BatchUsage | None = None
    metadata: dict[str, str] | None = None

    @property
    def done(self) -> bool:
        """Whether the batch has reached a final status."""
        return self.status in TERMINAL_STATUSES

    @property
    def error_list(self) -> list[BatchError]:
        """``errors.data``, or ``[]``."""
        return list(self.errors.data) if self.errors is not None else []


@attrs.frozen(kw_only=True)
class BatchList(CursorPage[Batch]):
    """One page of ``batches.list``."""

    data: list[Batch]


@attrs.frozen(kw_only=True)
class BatchResultError:
    """Why one request of a batch got no answer (``error`` of an output line)."""

    code: str | None = None
    message: str | None = None


@attrs.frozen
class BatchResult:
    """The outcome of one request of a batch, found by its ``custom_id``.

    :ivar custom_id: the id the request had in the input.
    :ivar status_code: the HTTP status its answer had (``None`` when it never ran).
    :ivar response: the answer, typed as the endpoint's result (a ``ChatCompletion``...), when
        the request succeeded; it is priced at batch prices (``response.consumption``).
    :ivar error: the API's error body for a failed request (``{"error": {...}}``), or the
        line's own error (expired, cancelled).
    :ivar request_id: the id the API gave the request.
    :ivar raw: the output line, as data.
    """

    custom_id: str
    status_code: int | None
    response: Any
    error: Any
    request_id: str | None
    raw: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return (
            self.response is not None and self.status_code is not None and (self.status_code < 400)
        )
