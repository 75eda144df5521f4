"""``pool.batches``: the Batch API, and :meth:`Batches.run`, a whole batch job in one call.

``run`` writes (or reads) the JSONL input in storage, uploads it, creates the batch, polls it
with backoff in the pool's task group, downloads the output and error files into storage when
it ends, and returns the results keyed by ``custom_id``, typed as the endpoint's results and
priced at batch prices. A batch that ends failed, expired or cancelled raises
:class:`BatchFailedError` with its errors and whatever results it did produce.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Final

import anyio
import attrs

from .._compat import Unpack
from .._exceptions import (
    AnyoaiError,
    BatchFailedError,
    InvalidParameterError,
    ResponseValidationError,
)
from .._model import NOT_GIVEN, NotGiven, ResponseMeta
from .._pager import AsyncPager
from .._serde import structure_value
from ..storage import StorageURL, parse_url
from ..types.batches import Batch, BatchList, BatchResult, BatchResultError
from ..types.chat import ChatCompletion
from ..types.completions import Completion
from ..types.embeddings import CreateEmbeddingResponse
from ..types.moderations import ModerationCreateResponse
from ..types.params import RequestOptions
from ._base import Resource, options_from, quote_id
from .files import Files, cursor_pager

__all__ = ["BatchFailedError", "BatchRun", "Batches"]

logger = logging.getLogger("anyoai")

#: the result type of each endpoint a batch can run (others stay raw dicts)
RESULT_TYPES: Final[dict[str, type]] = {
    "/v1/chat/completions": ChatCompletion,
    "/v1/completions": Completion,
    "/v1/embeddings": CreateEmbeddingResponse,
    "/v1/moderations": ModerationCreateResponse,
}
ENDPOINTS: Final = (*RESULT_TYPES, "/v1/responses")


@attrs.frozen
class BatchRun:
    """What :meth:`Batches.run` did.

    :ivar batch: the batch, completed.
    :ivar results: one :class:`BatchResult` per ``custom_id``, successes and failures.
    :ivar output_url: where the output file was saved, if a place was given.
    :ivar errors_url: where the error file was saved, if there was one and a place was given.
    """

    batch: Batch
    results: dict[str, BatchResult]
    output_url: str | None = None
    errors_url: str | None = None

    @property
    def succeeded(self) -> dict[str, BatchResult]:
        """The results of the requests that succeeded."""
        return {key: result for key, result in self.results.items() if result.ok}

    @property
    def failed(self) -> dict[str, BatchResult]:
        """The results of the requests that failed."""
        return {key: result for key, result in self.results.items() if not result.ok}

    @property
    def consumption(self) -> float | None:
        """The cost of the answers, in US dollars at batch prices (``None`` if a model has no
        price)."""
        total = 0.0
        for result in self.succeeded.values():
            cost = getattr(result.response, "consumption", None)
            if cost is None:
                return None
            total += cost
        return total


def _lines_of(requests: Iterable[Mapping[str, Any]], endpoint: str) -> tuple[list[bytes], set[str]]:
    lines: list[bytes] = []
    seen: set[str] = set()
    for index, request in enumerate(requests):
        if not isinstance(request, Mapping):
            raise InvalidParameterError(
                f"batches.run: requests[{index}] must be a dict with custom_id and body, got "
                f"{type(request).__name__}",
                param=f"requests[{index}]",
            )
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise InvalidParameterError(
                f"batches.run: requests[{index}] needs a custom_id (a non-empty string)",
                param=f"requests[{index}].custom_id",
            )
        if custom_id in seen:
            raise InvalidParameterError(
                f"batches.run: requests[{index}] repeats custom_id {custom_id!r}",
                param=f"requests[{index}].custom_id",
            )
        seen.add(custom_id)
        body = request.get("body")
        if not isinstance(body, Mapping):
            raise InvalidParameterError(
                f"batches.run: requests[{index}].body must be the request's parameters (a dict)",
                param=f"requests[{index}].body",
            )
        url = request.get("url", endpoint)
        if url != endpoint:
            raise InvalidParameterError(
                f"batches.run: requests[{index}].url is {url!r}, but the batch runs {endpoint}",
                param=f"requests[{index}].url",
            )
        line = {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": dict(body)}
        lines.append(json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode())
    if not lines:
        raise InvalidParameterError("batches.run: requests is empty", param="requests")
    return lines, seen


def parse_result(line: Mapping[str, Any], endpoint: str) -> BatchResult:
    """One line of a batch's output or error file, its answer typed as *endpoint*'s result and
    marked as a batch result (priced at batch prices)."""
    custom_id = str(line.get("custom_id"))
    response = line.get("response") or None
    status = response.get("status_code") if isinstance(response, Mapping) else None
    request_id = response.get("request_id") if isinstance(response, Mapping) else None
    body = response.get("body") if isinstance(response, Mapping) else None
    typed: Any = None
    error: Any = line.get("error")
    if isinstance(status, int) and status < 400 and isinstance(body, Mapping):
        cls = RESULT_TYPES.get(endpoint)
        if cls is None:
            typed = dict(body)
        else:
            try:
                typed = structure_value(body, cls)
            except ResponseValidationError as exc:
                raise ResponseValidationError(
                    f"batch result {custom_id!r}: {exc.message}", path=exc.path, body=body
                ) from None
            typed._attach(
                ResponseMeta(
                    raw=body,
                    headers={},
                    status_code=status,
                    request_id=request_id,
                    batch=True,
                )
            )
    elif error is None and body is not None:
        error = body  # the API's error body for a failed request
    if isinstance(error, Mapping) and set(error) <= {"code", "message"}:
        error = BatchResultError(code=error.get("code"), message=error.get("message"))
    return BatchResult(
        custom_id=custom_id,
        status_code=status if isinstance(status, int) else None,
        response=typed,
        error=error,
        request_id=request_id if isinstance(request_id, str) else None,
        raw=dict(line),
    )


async def _jsonl(chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of a JSONL stream, one per line, as the bytes arrive."""
    pending = b""
    number = 0
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            number += 1
            if raw.strip():
                yield _decode_line(raw, number)
    if pending.strip():
        yield _decode_line(pending, number + 1)


def _decode_line(raw: bytes, number: int) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ResponseValidationError(f"line {number} of a batch file is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ResponseValidationError(f"line {number} of a batch file is not a JSON object")
    return value


class Batches(Resource):
    """``/batches``: create, retrieve, list and cancel batches; :meth:`run` a whole job."""

    __slots__ = ()

    async def create(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        **options: Unpack[RequestOptions],
    ) -> Batch:
        """Start a batch over an uploaded JSONL file (``purpose="batch"``).

        :param endpoint: ``"/v1/chat/completions"``, ``"/v1/completions"``,
            ``"/v1/embeddings"``, ``"/v1/moderations"`` or ``"/v1/responses"``.
        """
        opts = options_from("batches.create", dict[str, Any](options))
        _check_endpoint("batches.create", endpoint)
        if not isinstance(input_file_id, str) or not input_file_id:
            raise InvalidParameterError(
                f"batches.create: input_file_id must be a file id, got {input_file_id!r}",
                param="input_file_id",
            )
        body: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
        }
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return await self._call(self._request("POST", "/batches", opts, body=body), Batch)

    async def retrieve(self, batch_id: str, **options: Unpack[RequestOptions]) -> Batch:
        """The batch as it is now."""
        opts = options_from("batches.retrieve", dict[str, Any](options))
        path = f"/batches/{quote_id('batch_id', batch_id)}"
        return await self._call(self._request("GET", path, opts), Batch)

    async def cancel(self, batch_id: str, **options: Unpack[RequestOptions]) -> Batch:
        """Ask to cancel a batch (it goes ``cancelling``, then ``cancelled``)."""
        opts = options_from("batches.cancel", dict[str, Any](options))
        path = f"/batches/{quote_id('batch_id', batch_id)}/cancel"
        return await self._call(self._request("POST", path, opts), Batch)

    def list(
        self, *, limit: int | NotGiven = NOT_GIVEN, **options: Unpack[RequestOptions]
    ) -> AsyncPager[BatchList, Batch]:
        """Every batch, newest first: ``async for batch in pool.batches.list()``."""
        opts = options_from("batches.list", dict[str, Any](options))
        query: dict[str, Any] = {}
        if not isinstance(limit, NotGiven):
            query["limit"] = limit
        return cursor_pager(self, "/batches", BatchList, opts, query)

    async def wait(
        self,
        batch_id: str,
        *,
        poll_interval: float = 2.0,
        max_poll_interval: float = 60.0,
        max_wait: float | None = None,
        **options: Unpack[RequestOptions],
    ) -> Batch:
        """Poll a batch until it ends (completed, failed, expired or cancelled); return it.

        The polling runs in the pool's task group, waiting *poll_interval* seconds at first and
        half as long again after each poll, up to *max_poll_interval*. Cancelling the caller
        stops the polling, not the batch: wait for it again later with its id.

        :raises TimeoutError: if it has not ended after *max_wait* seconds.
        """
        if poll_interval < 0 or max_poll_interval < poll_interval:
            raise InvalidParameterError(
                "batches.wait: need 0 <= poll_interval <= max_poll_interval",
                param="poll_interval",
            )
        done = anyio.Event()
        outcome: list[Batch | BaseException] = []
        scope = anyio.CancelScope()

        async def poll() -> None:
            interval = poll_interval
            try:
                with scope:
                    while True:
                        batch = await self.retrieve(batch_id, **options)
                        if batch.done:
                            outcome.append(batch)
                            return
                        logger.debug("batch %s is %s", batch_id, batch.status)
                        await self._client.clock.sleep(interval)
                        interval = min(interval * 1.5, max_poll_interval)
            except Exception as exc:
                outcome.append(exc)
            finally:
                done.set()

        try:
            with anyio.fail_after(max_wait):
                # a caller already cancelled or out of time starts no poller (trio notices an
                # expired deadline only at a checkpoint; the poller's first request would be
                # on the wire before the caller's next one)
                await anyio.lowlevel.checkpoint()
                self._client.spawn(poll, name=f"anyoai: polling batch {batch_id}")
                await done.wait()
        finally:
            scope.cancel()  # the caller left (cancelled, timed out): stop polling
        if not outcome:  # the poller was cancelled with the pool
            raise AnyoaiError(f"polling batch {batch_id} stopped: the pool closed")
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    async def results(
        self,
        batch: Batch | str,
        *,
        output_url: str | os.PathLike[str] | StorageURL | None = None,
        errors_url: str | os.PathLike[str] | StorageURL | None = None,
        **options: Unpack[RequestOptions],
    ) -> dict[str, BatchResult]:
        """The results of an ended batch, by ``custom_id``: its output file and its error file,
        streamed and parsed line by line (and saved to *output_url* / *errors_url* first, when
        given: then they are read back from there)."""
        if isinstance(batch, str):
            batch = await self.retrieve(batch, **options)
        results: dict[str, BatchResult] = {}
        for file_id, url in ((batch.output_file_id, output_url), (batch.error_file_id, errors_url)):
            if not file_id:
                continue
            async for line in self._lines(file_id, url, options):
                result = parse_result(line, batch.endpoint)
                results[result.custom_id] = result
        return results

    async def _lines(
        self,
        file_id: str,
        url: str | os.PathLike[str] | StorageURL | None,
        options: Mapping[str, Any],
    ) -> AsyncIterator[dict[str, Any]]:
        files = self._files()
        storage = self._client.storage
        if url is not None:
            await files.download(file_id, to=url, **options)
            reader = await storage.open(url)
            async with reader:
                async for line in _jsonl(reader):
                    yield line
            return
        body = await files.content(file_id, **options)
        async with body:
            async for line in _jsonl(body):
                yield line

    def _files(self) -> Files:
        return Files(self._client)

    async def run(
        self,
        requests: Iterable[Mapping[str, Any]] | str | os.PathLike[str] | StorageURL,
        *,
        endpoint: str = "/v1/chat/completions",
        completion_window: str = "24h",
        input_url: str | os.PathLike[str] | StorageURL | None = None,
        results_url: str | os.PathLike[str] | StorageURL | None = None,
        metadata: Mapping[str, str] | None = None,
        poll_interval: float = 2.0,
        max_poll_interval: float = 60.0,
        max_wait: float | None = None,
        **options: Unpack[RequestOptions],
    ) -> BatchRun:
        """Run a whole batch job: input, upload, batch, polling, results.

        :param requests: the requests (dicts with ``custom_id`` and ``body``, optionally
            ``method`` and ``url``), or the storage URL of a JSONL file of them.
        :param input_url: where to write the JSONL made from *requests* before uploading it
            (default: uploaded from memory).
        :param results_url: a folder URL (``az://container/run-1/``) where the output and error
            files are saved as ``output.jsonl`` and ``errors.jsonl``.
        :raises BatchFailedError: if the batch ends failed, expired or cancelled (with its
            errors, and the results it did produce).
        :raises TimeoutError: if it has not ended after *max_wait* seconds (the batch goes on:
            wait for it with ``pool.batches.wait(batch_id)``).
        """
        _check_endpoint("batches.run", endpoint)
        files = self._files()
        storage = self._client.storage
        if isinstance(requests, (str, os.PathLike, StorageURL)):
            source = parse_url(requests)
            uploaded = await files.create(file=source, purpose="batch", **options)
        else:
            lines, _ = _lines_of(requests, endpoint)
            data = b"\n".join(lines) + b"\n"
            name = f"batch-{uuid.uuid4().hex[:12]}.jsonl"
            if input_url is not None:
                target = parse_url(input_url)
                await storage.write(target, data)
                uploaded = await files.create(file=target, purpose="batch", **options)
            else:
                uploaded = await files.create(file=(name, data), purpose="batch", **options)
        batch = await self.create(
            input_file_id=uploaded.id,
            endpoint=endpoint,
            completion_window=completion_window,
            metadata=metadata,
            **options,
        )
        logger.info("batch %s created over file %s", batch.id, uploaded.id)
        batch = await self.wait(
            batch.id,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            max_wait=max_wait,
            **options,
        )
        folder = parse_url(results_url) if results_url is not None else None
        output_url = (
            str(folder.join("output.jsonl").url) if folder and batch.output_file_id else None
        )
        errors_url = (
            str(folder.join("errors.jsonl").url) if folder and batch.error_file_id else None
        )
        results = await self.results(batch, output_url=output_url, errors_url=errors_url, **options)
        if batch.status != "completed":
            problems = "; ".join(
                f"line {e.line}: {e.message}" if e.line is not None else str(e.message)
                for e in batch.error_list[:5]
            )
            raise BatchFailedError(
                f"batch {batch.id} ended {batch.status}"
                + (f": {problems}" if problems else "")
                + f" ({len(results)} results)",
                batch=batch,
                errors=batch.error_list,
                results=results,
            )
        return BatchRun(batch, results, output_url, errors_url)


def _check_endpoint(method: str, endpoint: Any) -> None:
    if endpoint not in ENDPOINTS:
        raise InvalidParameterError(
            f"{method}: endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}",
            param="endpoint",
        )
