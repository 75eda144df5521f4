"""Embeddings (``/embeddings``)."""

from __future__ import annotations

from typing import NewType

import attrs

from ._base import APIObject

__all__ = ["CreateEmbeddingResponse", "Embedding", "EmbeddingUsage", "EmbeddingVector"]

#: A list of floats. The server may send it as a JSON array or, with
#: ``encoding_format="base64"``, as base64 of little-endian float32: both arrive here decoded.
EmbeddingVector = NewType("EmbeddingVector", list[float])


@attrs.frozen(kw_only=True)
class Embedding:
    """The vector of one input."""

    index: int
    embedding: EmbeddingVector
    object_: str = "embedding"


@attrs.frozen(kw_only=True)
class EmbeddingUsage:
    """Tokens used by an embeddings request."""

    prompt_tokens: int = 0
    total_tokens: int = 0


@attrs.frozen(kw_only=True)
class CreateEmbeddingResponse(APIObject):
    """The result of ``embeddings.create``: one :class:`Embedding` per input, in input order."""

    data: list[Embedding]
    model: str
    object_: str = "list"
    usage: EmbeddingUsage | None = None

    @property
    def vectors(self) -> list[list[float]]:
        """The vectors, ordered by input index."""
        return [item.embedding for item in sorted(self.data, key=lambda item: item.index)]

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return True
