"""``POST /v1/embeddings`` of the fake server: deterministic unit vectors.

Each input's vector is seeded by the SHA-256 of the input, has unit length and is exact in
float32, so ``encoding_format="base64"`` gives back the same floats; ``dimensions`` sets its
length (the server's ``embedding_dimensions`` otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from typing import Any, Final

import attrs

from ._framework import Cost, Reply, RequestContext, Route, dumps, json_reply
from ._generate import count_words
from ._validation import (
    invalid_type,
    invalid_value,
    is_token_list,
    optional_int,
    optional_str,
    require,
    require_str,
)

__all__ = ["EMBEDDING_ROUTES", "embedding_vector", "embeddings"]


def _float32(value: float) -> float:
    rounded: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return rounded


def embedding_vector(data: bytes, dimensions: int) -> list[float]:
    """The fake embedding of *data*: unit length, float32-exact, seeded by SHA-256 of *data*."""
    seed = int.from_bytes(hashlib.sha256(data).digest(), "big")
    generator = random.Random(seed)
    raw = [generator.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [_float32(value / norm) for value in raw]


def _embedding_inputs(value: Any) -> list[tuple[bytes, int]]:
    """Each input as (bytes to hash, token count)."""
    if isinstance(value, str):
        return [(value.encode("utf-8"), count_words(value))]
    if is_token_list(value):
        return [(b"tokens:" + dumps(value).encode("ascii"), len(value))]
    if isinstance(value, list):
        if not value:
            raise invalid_value("input", "Invalid 'input': empty array. Expected at least one.")
        inputs: list[tuple[bytes, int]] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                inputs.append((item.encode("utf-8"), count_words(item)))
            elif is_token_list(item):
                inputs.append((b"tokens:" + dumps(item).encode("ascii"), len(item)))
            else:
                raise invalid_type(f"input[{index}]", "a string or an array of integers", item)
        return inputs
    raise invalid_type("input", "a string or an array", value)


def embeddings(ctx: RequestContext) -> Reply:
    """``POST /v1/embeddings``."""
    body = ctx.body_object()
    model = require_str(body, "model")
    inputs = _embedding_inputs(require(body, "input"))
    dimensions = optional_int(body, "dimensions", 1, 16384) or ctx.config.embedding_dimensions
    encoding = optional_str(body, "encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid_value(
            "encoding_format",
            f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
        )
    data: list[dict[str, Any]] = []
    for index, (key, _) in enumerate(inputs):
        vector = embedding_vector(key, dimensions)
        encoded: Any = vector
        if encoding == "base64":
            packed = struct.pack(f"<{len(vector)}f", *vector)
            encoded = base64.b64encode(packed).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count for _, count in inputs)
    answer = json_reply(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
    return attrs.evolve(answer, cost=Cost(model=model, charge=tokens, used=tokens))


#: The embeddings endpoint (part of :data:`~anyoai.testing._table.DEFAULT_ROUTES`).
EMBEDDING_ROUTES: Final[tuple[Route, ...]] = (Route("POST", "/v1/embeddings", embeddings),)
