"""``pool.edits``: the legacy edits endpoint, kept for parity with the seed library.

OpenAI retired ``/edits`` in January 2024 (use chat completions instead); some
OpenAI-compatible servers still serve it, and the bundled fake server does.
"""

from __future__ import annotations

from .._compat import Unpack
from .._params import ParamSpec
from .._tokens import estimate_edit
from ..types.edits import Edit
from ..types.params import EditCreateParams
from ._simple import SimpleResource

__all__ = ["Edits"]

_SPEC = ParamSpec.compile("edits.create", EditCreateParams)


class Edits(SimpleResource):
    """``/edits`` (legacy)."""

    __slots__ = ()

    async def create(self, **params: Unpack[EditCreateParams]) -> Edit:
        """Edit ``input`` following ``instruction`` with ``model``.

        :raises InvalidParameterError: for an unknown, missing or ill-typed parameter.
        """
        return await self._post_create(_SPEC, params, "/edits", Edit, estimator=estimate_edit)
