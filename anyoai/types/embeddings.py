"""Embeddings (``/embeddings``)."""

from __future__ import annotations

import attrs

from .._model import EmbeddingVector, Metered

__all__ = ["CreateEmbeddingResponse", "Embedding", "EmbeddingUsage", "EmbeddingVector"]


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

    @property
    def completion_tokens(self) -> int:
        """Always 0: an embedding writes nothing (so every usage has the same three counts)."""
        return 0


@attrs.frozen(kw_only=True)
class CreateEmbeddingResponse(Metered):
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
