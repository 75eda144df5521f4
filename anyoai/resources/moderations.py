"""``pool.moderations``: classify text (and images) against the usage policies."""

from __future__ import annotations

from .._compat import Unpack
from .._params import ParamSpec
from .._tokens import estimate_input
from ..types.moderations import ModerationCreateResponse
from ..types.params import ModerationCreateParams
from ._simple import SimpleResource

__all__ = ["Moderations"]

_SPEC = ParamSpec.compile("moderations.create", ModerationCreateParams)


class Moderations(SimpleResource):
    """``/moderations``."""

    __slots__ = ()

    async def create(self, **params: Unpack[ModerationCreateParams]) -> ModerationCreateResponse:
        """Classify ``input`` (a string, strings, or text and image parts).

        :raises InvalidParameterError: for an unknown, missing or ill-typed parameter.
        """
        return await self._post_create(
            _SPEC,
            params,
            "/moderations",
            ModerationCreateResponse,
            estimator=estimate_input,
            deployment_scoped=False,
        )
