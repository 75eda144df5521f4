"""``pool.embeddings``: vectors for texts or token arrays, one request or a whole job."""

from __future__ import annotations

import base64
import os
import sys
from array import array
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio.to_thread
import attrs

from .._compat import Unpack
from .._concurrency import Progress, map_concurrent
from .._exceptions import InvalidParameterError, ResponseValidationError
from .._model import NOT_GIVEN, NotGiven
from .._params import ParamSpec
from .._tokens import count_text, ensure_encoding, estimate_input, truncate_to_tokens
from ..types.embeddings import CreateEmbeddingResponse
from ..types.params import EmbeddingCreateParams
from ._simple import SimpleResource

__all__ = ["MAX_INPUTS_PER_REQUEST", "Embeddings"]

_SPEC = ParamSpec.compile("embeddings.create", EmbeddingCreateParams)

#: the API's cap on inputs in one embeddings request
MAX_INPUTS_PER_REQUEST = 2048
#: the API's cap on the tokens summed over the inputs of one request
MAX_TOKENS_PER_REQUEST = 300_000
#: the longest input the OpenAI embedding models take
MAX_INPUT_TOKENS = 8191


@attrs.frozen
class _Batch:
    """Consecutive inputs sent as one request (its JSON is its checkpoint fingerprint)."""

    start: int
    inputs: list[str | list[int]]


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError(
            f"embeddings.create_many: {name} must be a whole number >= 1, got {value!r}",
            param=name,
        )


def _pack(
    inputs: Sequence[str | list[int]],
    tokens: Sequence[int],
    *,
    batch_size: int,
    max_tokens_per_request: int,
) -> list[_Batch]:
    """Greedy, order-keeping packing under both caps: inputs per request and tokens per request.

    Texts and token arrays go in separate requests (the API takes a list of one kind).
    """
    batches: list[_Batch] = []
    current: list[str | list[int]] = []
    current_tokens = 0
    start = 0
    for index, (item, count) in enumerate(zip(inputs, tokens, strict=True)):
        if current and (
            len(current) >= batch_size
            or current_tokens + count > max_tokens_per_request
            # a request holds texts or token arrays, never both
            or isinstance(item, str) != isinstance(current[0], str)
        ):
            batches.append(_Batch(start, current))
            current, current_tokens, start = [], 0, index
        current.append(item)
        current_tokens += count
    if current:
        batches.append(_Batch(start, current))
    return batches


def _pack_vectors(vectors: Sequence[Sequence[float]]) -> list[str]:
    """Vectors as base64 float32 (little-endian): exact, and a quarter of JSON's size."""
    packed = []
    for vector in vectors:
        floats = array("f", vector)
        if sys.byteorder == "big":  # pragma: no cover
            floats.byteswap()
        packed.append(base64.b64encode(floats.tobytes()).decode("ascii"))
    return packed


def _unpack_vector(text: str) -> list[float]:
    floats = array("f", base64.b64decode(text))
    if sys.byteorder == "big":  # pragma: no cover
        floats.byteswap()
    return floats.tolist()


class Embeddings(SimpleResource):
    """``/embeddings``."""

    __slots__ = ()

    async def create(self, **params: Unpack[EmbeddingCreateParams]) -> CreateEmbeddingResponse:
        """Embed ``input`` (a string, a list of strings, or token arrays) with ``model``.

        With ``encoding_format="base64"`` the server sends packed float32, which is smaller and
        faster to parse; either way the result holds lists of floats.

        :raises InvalidParameterError: for an unknown, missing or ill-typed parameter.
        """
        return await self._post_create(
            _SPEC, params, "/embeddings", CreateEmbeddingResponse, estimator=estimate_input
        )

    async def create_many(
        self,
        inputs: Sequence[str | list[int]],
        *,
        model: str,
        dimensions: int | NotGiven = NOT_GIVEN,
        encoding_format: str = "base64",
        user: str | NotGiven = NOT_GIVEN,
        batch_size: int = MAX_INPUTS_PER_REQUEST,
        max_tokens_per_request: int = MAX_TOKENS_PER_REQUEST,
        max_input_tokens: int = MAX_INPUT_TOKENS,
        truncate: bool = False,
        limit: int = 16,
        checkpoint: str | os.PathLike[str] | None = None,
        progress: Callable[[Progress], object] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> list[list[float]]:
        """Embed many inputs: pack them into requests, run them concurrently, keep the order.

        The inputs are packed, in order, into requests of at most ``batch_size`` inputs (the
        API's cap is 2,048) and at most ``max_tokens_per_request`` tokens (counted with
        tiktoken for ``model``). The requests run through :func:`anyoai.map_concurrent` at most
        ``limit`` at a time, under the pool's rate limits, and the vectors come back in input
        order. Vectors travel as base64 float32 by default (``encoding_format``), which is
        exact and four times smaller than JSON floats.

        :param inputs: strings, or token arrays (lists of ints).
        :param max_input_tokens: the longest input the model takes (8,191 for OpenAI's models).
        :param truncate: cut over-long inputs to ``max_input_tokens`` instead of failing.
        :param checkpoint: a JSONL journal; a re-run with the same inputs and journal skips
            the requests already done (see :func:`anyoai.map_concurrent`).
        :param progress: called with a :class:`~anyoai.Progress` of *requests* (not inputs).
        :raises InvalidParameterError: for an empty input, or an input over
            ``max_input_tokens`` without ``truncate=True``, naming its index
            (``param="inputs[17]"``).
        :raises APIError: the first request that failed, after its retries.
        """
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise InvalidParameterError(
                "embeddings.create_many: inputs must be a list of strings or token arrays, "
                f"got {type(inputs).__name__}",
                param="inputs",
            )
        for name, value in (
            ("batch_size", batch_size),
            ("max_tokens_per_request", max_tokens_per_request),
            ("max_input_tokens", max_input_tokens),
            ("limit", limit),
        ):
            _check_positive(name, value)
        if batch_size > MAX_INPUTS_PER_REQUEST:
            raise InvalidParameterError(
                f"embeddings.create_many: batch_size is at most {MAX_INPUTS_PER_REQUEST} "
                f"(the API's cap), got {batch_size}",
                param="batch_size",
            )
        await ensure_encoding(model)
        prepared, tokens = await anyio.to_thread.run_sync(
            _prepare, list(inputs), model, max_input_tokens, truncate
        )
        batches = _pack(
            prepared, tokens, batch_size=batch_size, max_tokens_per_request=max_tokens_per_request
        )
        params: dict[str, Any] = {"model": model, "encoding_format": encoding_format}
        optional: tuple[tuple[str, object], ...] = (
            ("dimensions", dimensions),
            ("user", user),
            ("extra_headers", extra_headers),
            ("extra_body", extra_body),
            ("timeout", timeout),
        )
        for key, option in optional:
            if option is not None and not isinstance(option, NotGiven):
                params[key] = option

        async def embed(batch: _Batch) -> list[str]:
            # a mix of texts and token arrays is valid per item; the API takes either list kind
            response = await self.create(input=batch.inputs, **params)  # type: ignore[arg-type]
            if len(response.data) != len(batch.inputs):
                raise ResponseValidationError(
                    f"embeddings.create_many: the server returned {len(response.data)} vectors "
                    f"for the {len(batch.inputs)} inputs from inputs[{batch.start}]",
                    body=response.raw,
                    request_id=response.request_id,
                    backend=response.backend,
                )
            return _pack_vectors(response.vectors)

        packed = await map_concurrent(
            embed,
            batches,
            limit=limit,
            checkpoint=checkpoint,
            progress=progress,
        )
        return [_unpack_vector(text) for batch in packed for text in batch]


def _refuse_unless(truncate: bool, index: int, count: int, max_input_tokens: int) -> None:
    if not truncate:
        raise InvalidParameterError(
            f"embeddings.create_many: inputs[{index}] has {count} tokens, over the "
            f"{max_input_tokens} the model takes; shorten it or pass truncate=True",
            param=f"inputs[{index}]",
        )


def _prepare(
    inputs: list[str | list[int]], model: str, max_input_tokens: int, truncate: bool
) -> tuple[list[str | list[int]], list[int]]:
    """Check and count every input (in a worker thread: tiktoken on many texts takes a while)."""
    prepared: list[str | list[int]] = []
    counts: list[int] = []
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            if not item:
                raise InvalidParameterError(
                    f"embeddings.create_many: inputs[{index}] is empty (the API rejects empty "
                    "inputs)",
                    param=f"inputs[{index}]",
                )
            count = count_text(item, model)
            if count > max_input_tokens:
                _refuse_unless(truncate, index, count, max_input_tokens)
                item = truncate_to_tokens(item, max_input_tokens, model=model)
                count = count_text(item, model)
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        ):
            count = len(item)
            if count > max_input_tokens:
                _refuse_unless(truncate, index, count, max_input_tokens)
                item = item[:max_input_tokens]
                count = max_input_tokens
        else:
            raise InvalidParameterError(
                f"embeddings.create_many: inputs[{index}] must be a non-empty string or a "
                f"non-empty list of token ids, got {type(item).__name__}",
                param=f"inputs[{index}]",
            )
        prepared.append(item)
        counts.append(count)
    return prepared, counts
