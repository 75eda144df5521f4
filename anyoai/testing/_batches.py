"""The Batch API of the fake server: batches whose requests run through the app's own endpoints.

Endpoints (:data:`BATCH_ROUTES`)
    ``POST /v1/batches`` (JSON ``input_file_id``, ``endpoint``, ``completion_window`` ``"24h"``,
    optional ``metadata`` and ``output_expires_after``) creates a batch in status
    ``validating``; ``GET /v1/batches/{batch_id}`` retrieves it, ``POST
    /v1/batches/{batch_id}/cancel`` cancels it, ``GET /v1/batches`` lists them, newest first
    (``after``, ``limit`` 1-100, default 20). The endpoint must be one the app answers
    (:meth:`FakeApp.batch_target <anyoai.testing._framework.FakeApp.batch_target>`): chat
    completions, completions, embeddings and moderations; the input file must exist and have
    purpose ``batch``.

Lifecycle: one step per retrieval
    Time does not pass in the fake server. Instead **every** ``GET /v1/batches/{batch_id}``
    moves the batch one step on, then answers it:

    ``validating`` -> ``in_progress``
        The input file is read: every line must be a JSON object with a unique ``custom_id``
        (a string), ``method`` ``"POST"``, ``url`` equal to the batch's endpoint and a ``body``
        object that does not ask to ``stream``; the bodies that name a ``model`` must name the
        same one. Otherwise the batch goes to ``failed`` instead, with ``errors.data`` listing
        the first problem of every bad line: ``{"code", "message", "param", "line"}`` with
        codes ``invalid_json_line``, ``missing_required_parameter``, ``invalid_type``,
        ``invalid_value``, ``mismatched_endpoint``, ``unsupported_value`` (streaming),
        ``duplicate_custom_id`` and ``model_mismatch``, or for the whole file ``empty_file``,
        ``too_many_tasks`` (over 50,000 lines) and ``file_not_found``.
    ``in_progress`` -> ``finalizing``
        Every request runs through the app (:meth:`FakeApp.execute
        <anyoai.testing._framework.FakeApp.execute>`: the route table and the very handlers the
        HTTP layer uses, credentials aside, rate limits aside, not recorded in
        ``server.requests``), each with a sequence number of its own. ``request_counts`` and
        ``usage`` are filled in.
    ``finalizing`` -> ``completed``
        The output file (the 2xx answers) and the error file (the others) are stored, purpose
        ``batch_output``, named ``<batch id>_output.jsonl`` and ``<batch id>_error.jsonl``;
        ``output_file_id`` / ``error_file_id`` is ``null`` when there is no such line.

    Each line of those files is a ``BatchRequestOutput``: ``{"id": "batch_req_fake_<seq>",
    "custom_id", "response": {"status_code", "request_id": "req_<seq in hex>", "body"},
    "error": null}``, in input order; the ``seq`` is the one the request ran with, so its body
    has the ids and ``created`` the endpoint gives that sequence number.

Cancelling
    ``POST /v1/batches/{batch_id}/cancel`` moves a ``validating``, ``in_progress`` or
    ``finalizing`` batch to ``cancelling``; the next retrieval makes it ``cancelled``, with the
    files of what ran (a ``finalizing`` batch's answers), and requests that never ran in the
    error file with ``"response": null`` and ``"error": {"code": "batch_cancelled", ...}``. A
    ``cancelling`` batch is answered as it is; a finished one cannot be cancelled (400).

Knobs (the batch's ``metadata``)
    ``"fake_outcome": "expired"``: the batch validates, then goes ``in_progress`` ->
    ``expired`` (``expired_at``) without running anything; its error file holds every request
    with ``"response": null`` and ``"error": {"code": "batch_expired", ...}``.
    ``"fake_outcome": "failed"``: the batch goes ``validating`` -> ``failed`` with one error,
    code ``fake_outcome``, whatever its file holds. Other values are refused at creation.

Ids and timestamps: ``batch_fake_<seq:06d>``; ``created_at`` is ``1700000000 + seq`` of the
creating request, ``expires_at`` 24 hours later, and every ``*_at`` of a step is ``1700000000 +
seq`` of the request that made the step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._files import BATCH_OUTPUT, lifetime_of, list_page, new_file, query_int
from ._framework import (
    EndpointError,
    RecordedRequest,
    Reply,
    RequestContext,
    Route,
    describe,
    dumps,
    error_body,
    found_or_404,
    json_reply,
    request_id,
)
from ._state import (
    FINAL_BATCH_STATUSES,
    BatchLine,
    BatchUsage,
    RequestCounts,
    StoredBatch,
)
from ._validation import invalid_type, invalid_value, quoted_choices, require_str

__all__ = ["BATCH_ROUTES", "FAKE_OUTCOME", "FAKE_OUTCOMES"]

logger = logging.getLogger("anyoai.testing")

#: The ``metadata`` key that scripts a batch's fate (see the module docstring).
FAKE_OUTCOME: Final = "fake_outcome"
#: Its values.
FAKE_OUTCOMES: Final = ("expired", "failed")

#: The only ``completion_window``.
COMPLETION_WINDOW: Final = "24h"
#: Seconds from a batch's creation to its ``expires_at``.
BATCH_LIFETIME: Final = 24 * 3600
#: The most requests one batch holds.
MAX_BATCH_REQUESTS: Final = 50_000
#: ``limit`` of ``GET /v1/batches``: the default and the maximum.
DEFAULT_LIST_BATCHES: Final = 20
MAX_LIST_BATCHES: Final = 100

_MAX_METADATA_KEYS: Final = 16
_MAX_METADATA_KEY: Final = 64
_MAX_METADATA_VALUE: Final = 512
_NOT_JSON: Final = "This line is not parseable as valid JSON."
_EXPIRED: Final = "This request could not be executed before the completion window expired."
_CANCELLED: Final = "This request was not executed because the batch was cancelled."
_DUPLICATE: Final = (
    "The custom_id for this request is a duplicate of another request. The custom_id "
    "parameter must be unique for each individual request in a batch."
)
_STREAMED: Final = (
    "The fake server answered with a stream; batch requests cannot stream. Sorry about that!"
)


def _runs(ctx: RequestContext, endpoint: str) -> bool:
    """Whether the app answers requests a batch sends to *endpoint*."""
    app = ctx.require_app()
    path, _ = app.batch_target(endpoint, {"model": "model"}, {})
    return app.answers("POST", path)


def _metadata(body: Mapping[str, Any]) -> dict[str, str] | None:
    value = body.get("metadata")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_type("metadata", "an object", value)
    if len(value) > _MAX_METADATA_KEYS:
        raise invalid_value(
            "metadata",
            f"Invalid 'metadata': too many properties. Expected an object with at most "
            f"{_MAX_METADATA_KEYS} properties, but got an object with {len(value)} properties "
            "instead.",
        )
    for key, item in value.items():
        if len(key) > _MAX_METADATA_KEY:
            raise invalid_value(
                "metadata",
                f"Invalid 'metadata': keys are at most {_MAX_METADATA_KEY} characters long.",
            )
        if not isinstance(item, str):
            raise invalid_type(f"metadata.{key}", "a string", item)
        if len(item) > _MAX_METADATA_VALUE:
            raise invalid_value(
                f"metadata.{key}",
                f"Invalid 'metadata.{key}': values are at most {_MAX_METADATA_VALUE} "
                "characters long.",
            )
    outcome = value.get(FAKE_OUTCOME)
    if outcome is not None and outcome not in FAKE_OUTCOMES:
        raise invalid_value(
            f"metadata.{FAKE_OUTCOME}",
            f"Invalid value: '{outcome}'. The fake server knows: {quoted_choices(FAKE_OUTCOMES)}.",
        )
    return dict(value)


def _batch_or_404(ctx: RequestContext) -> StoredBatch:
    batch_id = ctx.params["batch_id"]
    return found_or_404(ctx.state.batch(batch_id), "Batch", batch_id, "id")


def _batch_key(batch: StoredBatch) -> tuple[int, int]:
    return (batch.created_at, batch.seq)


# --------------------------------------------------------------------------------------------
# validation


def _error(code: str, message: str, param: str | None, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _line_problem(
    value: Any, endpoint: str, number: int
) -> tuple[dict[str, Any] | None, BatchLine | None]:
    """The first problem of a parsed line, or the line it makes."""

    def missing(name: str) -> dict[str, Any]:
        return _error(
            "missing_required_parameter", f"Missing required parameter: '{name}'.", name, number
        )

    def wrong_type(name: str, expected: str, found: Any) -> dict[str, Any]:
        return _error(
            "invalid_type",
            f"Invalid type for '{name}': expected {expected}, but got {describe(found)} instead.",
            name,
            number,
        )

    if not isinstance(value, dict):
        return _error("invalid_json_line", "This line is not a JSON object.", None, number), None
    for name in ("custom_id", "method", "url", "body"):
        if value.get(name) is None:
            return missing(name), None
    custom_id, method, url, body = (value[name] for name in ("custom_id", "method", "url", "body"))
    for name, found in (("custom_id", custom_id), ("method", method), ("url", url)):
        if not isinstance(found, str):
            return wrong_type(name, "a string", found), None
    if not isinstance(body, dict):
        return wrong_type("body", "an object", body), None
    if method != "POST":
        message = f"Invalid value: '{method}'. Supported values are: 'POST'."
        return _error("invalid_value", message, "method", number), None
    if url != endpoint:
        message = f"The url '{url}' does not match the batch's endpoint '{endpoint}'."
        return _error("mismatched_endpoint", message, "url", number), None
    if body.get("stream") is True:
        message = "Unsupported value: 'stream' cannot be true: batch requests do not stream."
        return _error("unsupported_value", message, "body.stream", number), None
    return None, BatchLine(number=number, custom_id=custom_id, body=body)


def _validate(
    ctx: RequestContext, batch: StoredBatch
) -> tuple[tuple[BatchLine, ...], list[dict[str, Any]], str | None]:
    """The input file's requests, the errors that fail the batch, and the model they use."""
    file = ctx.state.file(batch.input_file_id)
    if file is None:
        message = f"The input file {batch.input_file_id} no longer exists."
        return (), [_error("file_not_found", message, "input_file_id", None)], None
    raw_lines = file.data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()  # the file's final newline
    if not raw_lines:
        message = (
            "The batch input file is empty. Please ensure that the batch contains at least "
            "one request."
        )
        return (), [_error("empty_file", message, None, None)], None
    if len(raw_lines) > MAX_BATCH_REQUESTS:
        message = (
            f"The batch input file has {len(raw_lines)} requests; a batch holds at most "
            f"{MAX_BATCH_REQUESTS}."
        )
        return (), [_error("too_many_tasks", message, None, None)], None
    lines: list[BatchLine] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None
    for number, raw in enumerate(raw_lines, start=1):
        try:
            value = json.loads(raw.removesuffix(b"\r")) if raw.strip() else None
        except (ValueError, RecursionError):
            value = None
        if value is None:
            errors.append(_error("invalid_json_line", _NOT_JSON, None, number))
            continue
        problem, line = _line_problem(value, batch.endpoint, number)
        if problem is None and line is not None:
            named = line.body.get("model")
            if line.custom_id in seen:
                problem = _error("duplicate_custom_id", _DUPLICATE, "custom_id", number)
            elif isinstance(named, str) and model is not None and named != model:
                message = (
                    f"The model '{named}' does not match the model '{model}' of the other "
                    "requests: a batch uses a single model."
                )
                problem = _error("model_mismatch", message, "body.model", number)
            else:
                seen.add(line.custom_id)
                if isinstance(named, str):
                    model = named
                lines.append(line)
        if problem is not None:
            errors.append(problem)
    return tuple(lines), errors, model


# --------------------------------------------------------------------------------------------
# running


def _usage_of(body: Any) -> BatchUsage:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return BatchUsage()

    def number(*names: str, within: str | None = None) -> int:
        source = usage.get(within) if within is not None else usage
        for name in names:
            value = source.get(name) if isinstance(source, dict) else None
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return 0

    return BatchUsage(
        input_tokens=number("prompt_tokens", "input_tokens"),
        cached_tokens=number("cached_tokens", within="prompt_tokens_details")
        or number("cached_tokens", within="input_tokens_details"),
        output_tokens=number("completion_tokens", "output_tokens"),
        reasoning_tokens=number("reasoning_tokens", within="completion_tokens_details")
        or number("reasoning_tokens", within="output_tokens_details"),
    )


def _add(total: BatchUsage, more: BatchUsage) -> BatchUsage:
    return BatchUsage(
        input_tokens=total.input_tokens + more.input_tokens,
        cached_tokens=total.cached_tokens + more.cached_tokens,
        output_tokens=total.output_tokens + more.output_tokens,
        reasoning_tokens=total.reasoning_tokens + more.reasoning_tokens,
    )


def _answer(ctx: RequestContext, request: RecordedRequest, seq: int) -> Reply:
    app = ctx.require_app()
    try:
        reply = app.execute(request, seq)
    except Exception:  # as the HTTP layer does: a broken endpoint is a 500, not a crash
        logger.exception("fake server: the endpoint failed on a batch request to %s", request.path)
        body = error_body(
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
            code="server_error",
        )
        return json_reply(body, status=500)
    if reply.streaming:
        return json_reply(error_body(_STREAMED, type="server_error"), status=500)
    return reply


def _run(
    ctx: RequestContext, batch: StoredBatch, lines: tuple[BatchLine, ...]
) -> tuple[tuple[str, ...], tuple[str, ...], BatchUsage]:
    """Run every request: (output lines, error lines, usage of the successful ones)."""
    app = ctx.require_app()
    outputs: list[str] = []
    failures: list[str] = []
    usage = BatchUsage()
    for line in lines:
        seq = ctx.state.next_seq()
        path, query = app.batch_target(batch.endpoint, line.body, ctx.request.query)
        body = dict(line.body)
        request = RecordedRequest(
            "POST",
            path,
            query,
            {"content-type": "application/json"},
            dumps(body).encode("utf-8"),
            body,
        )
        reply = _answer(ctx, request, seq)
        try:
            answer: Any = json.loads(reply.body)
        except ValueError:
            answer = reply.body.decode("utf-8", "replace")
        result = {
            "id": f"batch_req_fake_{seq:06d}",
            "custom_id": line.custom_id,
            "response": {
                "status_code": reply.status,
                "request_id": request_id(seq),
                "body": answer,
            },
            "error": None,
        }
        if 200 <= reply.status < 300:
            outputs.append(dumps(result))
            usage = _add(usage, _usage_of(answer))
        else:
            failures.append(dumps(result))
    return tuple(outputs), tuple(failures), usage


def _not_run(
    ctx: RequestContext, lines: tuple[BatchLine, ...], code: str, message: str
) -> tuple[str, ...]:
    """Error lines for requests that never ran."""
    results: list[str] = []
    for line in lines:
        seq = ctx.state.next_seq()
        result = {
            "id": f"batch_req_fake_{seq:06d}",
            "custom_id": line.custom_id,
            "response": None,
            "error": {"code": code, "message": message},
        }
        results.append(dumps(result))
    return tuple(results)


def _with_files(ctx: RequestContext, batch: StoredBatch) -> StoredBatch:
    """*batch* with its output and error files stored (those that have lines)."""
    ids: dict[str, str | None] = {"output": None, "error": None}
    for kind, results in (("output", batch.outputs), ("error", batch.failures)):
        if results:
            data = "".join(f"{result}\n" for result in results).encode("utf-8")
            file = new_file(
                ctx,
                ctx.state.next_seq(),
                filename=f"{batch.id}_{kind}.jsonl",
                purpose=BATCH_OUTPUT,
                data=data,
                lifetime=batch.output_lifetime,
            )
            ids[kind] = file.id
    return attrs.evolve(batch, output_file_id=ids["output"], error_file_id=ids["error"])


def _step(ctx: RequestContext, batch: StoredBatch) -> StoredBatch:
    """*batch* one step further along its lifecycle (the module docstring tells which)."""
    now = ctx.created
    outcome = (batch.metadata or {}).get(FAKE_OUTCOME)
    if batch.status == "validating":
        if outcome == "failed":
            message = f"The batch failed because its metadata says {FAKE_OUTCOME}=failed."
            error = _error(FAKE_OUTCOME, message, None, None)
            return attrs.evolve(batch, status="failed", failed_at=now, errors=(error,))
        lines, errors, model = _validate(ctx, batch)
        if errors:
            return attrs.evolve(batch, status="failed", failed_at=now, errors=tuple(errors))
        return attrs.evolve(
            batch,
            status="in_progress",
            in_progress_at=now,
            lines=lines,
            model=model,
            request_counts=RequestCounts(total=len(lines)),
        )
    lines = batch.lines or ()
    total = len(lines)
    if batch.status == "in_progress":
        if outcome == "expired":
            failures = _not_run(ctx, lines, "batch_expired", _EXPIRED)
            expired = attrs.evolve(
                batch,
                status="expired",
                expired_at=now,
                outputs=(),
                failures=failures,
                request_counts=RequestCounts(total=total, failed=total),
            )
            return _with_files(ctx, expired)
        outputs, failures, usage = _run(ctx, batch, lines)
        return attrs.evolve(
            batch,
            status="finalizing",
            finalizing_at=now,
            outputs=outputs,
            failures=failures,
            usage=usage,
            request_counts=RequestCounts(total=total, completed=len(outputs), failed=len(failures)),
        )
    if batch.status == "finalizing":
        return _with_files(ctx, attrs.evolve(batch, status="completed", completed_at=now))
    if batch.status == "cancelling":
        if batch.lines is not None and batch.outputs is None:  # validated, never ran
            batch = attrs.evolve(
                batch,
                outputs=(),
                failures=_not_run(ctx, lines, "batch_cancelled", _CANCELLED),
                request_counts=RequestCounts(total=total, failed=total),
            )
        return _with_files(ctx, attrs.evolve(batch, status="cancelled", cancelled_at=now))
    return batch  # finished: failed, completed, expired or cancelled


# --------------------------------------------------------------------------------------------
# endpoints


def create_batch(ctx: RequestContext) -> Reply:
    """``POST /v1/batches``: a new batch, ``validating``."""
    body = ctx.body_object()
    input_file_id = require_str(body, "input_file_id")
    endpoint = require_str(body, "endpoint")
    window = require_str(body, "completion_window")
    app = ctx.require_app()
    supported = [choice for choice in app.batch_endpoints if _runs(ctx, choice)]
    if endpoint not in supported:
        choices = quoted_choices(supported)
        raise invalid_value(
            "endpoint", f"Invalid value: '{endpoint}'. Supported values are: {choices}."
        )
    if window != COMPLETION_WINDOW:
        raise invalid_value(
            "completion_window",
            f"Invalid value: '{window}'. Supported values are: '{COMPLETION_WINDOW}'.",
        )
    metadata = _metadata(body)
    lifetime = lifetime_of(body, "output_expires_after")
    file = found_or_404(ctx.state.file(input_file_id), "File", input_file_id, "input_file_id")
    if file.purpose != "batch":
        raise invalid_value(
            "input_file_id",
            f"The input file must have purpose 'batch', but {input_file_id} has purpose "
            f"'{file.purpose}'.",
        )
    batch = StoredBatch(
        id=f"batch_fake_{ctx.seq:06d}",
        seq=ctx.seq,
        endpoint=endpoint,
        input_file_id=input_file_id,
        completion_window=window,
        metadata=metadata,
        created_at=ctx.created,
        expires_at=ctx.created + BATCH_LIFETIME,
        output_lifetime=lifetime,
    )
    ctx.state.save_batch(batch)
    return json_reply(batch.to_json())


def retrieve_batch(ctx: RequestContext) -> Reply:
    """``GET /v1/batches/{batch_id}``: the batch, one step further along (see above)."""
    batch = _step(ctx, _batch_or_404(ctx))
    ctx.state.save_batch(batch)
    return json_reply(batch.to_json())


def cancel_batch(ctx: RequestContext) -> Reply:
    """``POST /v1/batches/{batch_id}/cancel``: ``cancelling``, ``cancelled`` at the next step."""
    batch = _batch_or_404(ctx)
    if batch.status in FINAL_BATCH_STATUSES:
        raise EndpointError(400, f"Cannot cancel a batch with status '{batch.status}'.")
    if batch.status != "cancelling":
        batch = attrs.evolve(batch, status="cancelling", cancelling_at=ctx.created)
        ctx.state.save_batch(batch)
    return json_reply(batch.to_json())


def list_batches(ctx: RequestContext) -> Reply:
    """``GET /v1/batches``: newest first; ``after``, ``limit``. Batches do not move on."""
    limit = query_int(ctx, "limit", DEFAULT_LIST_BATCHES, 1, MAX_LIST_BATCHES)
    return list_page(
        ctx,
        ctx.state.batches.values(),
        _batch_key,
        ctx.state.batch,
        limit=limit,
        descending=True,
        to_json=StoredBatch.to_json,
        id_of=lambda batch: batch.id,
    )


#: The Batch API endpoints (part of :data:`~anyoai.testing._table.DEFAULT_ROUTES`).
BATCH_ROUTES: Final[tuple[Route, ...]] = (
    Route("POST", "/v1/batches", create_batch),
    Route("GET", "/v1/batches", list_batches),
    Route("GET", "/v1/batches/{batch_id}", retrieve_batch),
    Route("POST", "/v1/batches/{batch_id}/cancel", cancel_batch),
)
