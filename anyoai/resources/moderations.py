"""``pool.moderations``: classify text (and images) against the usage policies."""

from __future__ import annotations

from typing import Any

from .._compat import Unpack
from .._params import ParamSpec
from .._tokens import estimate_input
from ..types.moderations import ModerationCreateResponse
from ..types.params import ModerationCreateParams
from ._base import Resource

__all__ = ["Moderations"]

_SPEC = ParamSpec.compile("moderations.create", ModerationCreateParams)


class Moderations(Resource):
    """``/moderations``."""

    __slots__ = ()

    async def create(self, **params: Unpack[ModerationCreateParams]) -> ModerationCreateResponse:
        """Classify ``input`` (a string, strings, or text and image parts).

        :raises InvalidParameterError: for an unknown, missing or ill-typed parameter.
        """
        body, options = _SPEC.split(dict[str, Any](params))
        request = self._request(
            "POST", "/moderations", options, body=body, estimator=estimate_input
        )
        return await self._call(request, ModerationCreateResponse)
