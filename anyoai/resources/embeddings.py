"""``pool.embeddings``: vectors for texts or token arrays."""

from __future__ import annotations

from typing import Any

from .._compat import Unpack
from .._params import ParamSpec
from ..types.embeddings import CreateEmbeddingResponse
from ..types.params import EmbeddingCreateParams
from ._base import Resource

__all__ = ["Embeddings"]

_SPEC = ParamSpec.compile("embeddings.create", EmbeddingCreateParams)


class Embeddings(Resource):
    """``/embeddings``."""

    __slots__ = ()

    async def create(self, **params: Unpack[EmbeddingCreateParams]) -> CreateEmbeddingResponse:
        """Embed ``input`` (a string, a list of strings, or token arrays) with ``model``.

        With ``encoding_format="base64"`` the server sends packed float32, which is smaller and
        faster to parse; either way the result holds lists of floats.

        :raises InvalidParameterError: for an unknown, missing or ill-typed parameter.
        """
        body, options = _SPEC.split(dict[str, Any](params))
        request = self._request("POST", "/embeddings", options, body=body, deployment_scoped=True)
        return await self._call(request, CreateEmbeddingResponse)
