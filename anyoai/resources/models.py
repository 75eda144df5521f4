"""``pool.models``: list, retrieve and delete models."""

from __future__ import annotations

from typing import Any

from .._compat import Unpack
from ..types.models import Model, ModelDeleted, ModelList
from ..types.params import RequestOptions
from ._base import Resource, options_from, quote_id

__all__ = ["Models"]


class Models(Resource):
    """``/models``."""

    __slots__ = ()

    async def list(self, **options: Unpack[RequestOptions]) -> ModelList:
        """List the models the backend offers. Iterate over the result, or read ``.data``."""
        opts = options_from("models.list", dict[str, Any](options))
        return await self._call(self._request("GET", "/models", opts), ModelList)

    async def retrieve(self, model: str, **options: Unpack[RequestOptions]) -> Model:
        """Describe one model.

        :raises NotFoundError: if there is no such model.
        """
        path = f"/models/{quote_id('model', model)}"
        opts = options_from("models.retrieve", dict[str, Any](options))
        return await self._call(self._request("GET", path, opts), Model)

    async def delete(self, model: str, **options: Unpack[RequestOptions]) -> ModelDeleted:
        """Delete a fine-tuned model you own."""
        path = f"/models/{quote_id('model', model)}"
        opts = options_from("models.delete", dict[str, Any](options))
        return await self._call(self._request("DELETE", path, opts), ModelDeleted)
