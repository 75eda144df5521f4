"""The one-step create calls: check the parameters, POST them, structure the answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._params import ParamSpec
from .._tokens import Estimator
from ._base import ModelT, Resource

__all__ = ["SimpleResource"]


class SimpleResource(Resource):
    """A resource whose ``create`` is one POST answered by one model (no stream, no paging)."""

    __slots__ = ()

    async def _post_create(
        self,
        spec: ParamSpec,
        params: Mapping[str, Any],
        path: str,
        cls: type[ModelT],
        *,
        estimator: Estimator,
        deployment_scoped: bool = True,
    ) -> ModelT:
        """Check *params* against *spec*, POST the body to *path* with its token *estimator*,
        and structure the answer into *cls*.

        :raises InvalidParameterError: for an unknown, missing or ill-typed parameter.
        """
        body, options = spec.split(dict[str, Any](params))
        request = self._request(
            "POST",
            path,
            options,
            body=body,
            deployment_scoped=deployment_scoped,
            estimator=estimator,
        )
        return await self._call(request, cls)
