"""``pool.completions``: legacy text completions, streamed or not."""

from __future__ import annotations

from typing import Any, Literal, overload

from .._compat import Unpack
from .._errors import check_content_filter
from .._model import NOT_GIVEN, NotGiven
from .._params import ParamSpec
from .._streaming import CompletionStream
from .._tokens import estimate_completion
from ..types.completions import Completion
from ..types.params import CompletionCreateParams
from ._base import Resource

__all__ = ["Completions"]

_SPEC = ParamSpec.compile("completions.create", CompletionCreateParams)


class Completions(Resource):
    """``/completions``."""

    __slots__ = ()

    @overload
    async def create(
        self, *, stream: Literal[True], **params: Unpack[CompletionCreateParams]
    ) -> CompletionStream: ...

    @overload
    async def create(
        self,
        *,
        stream: Literal[False] | NotGiven = NOT_GIVEN,
        **params: Unpack[CompletionCreateParams],
    ) -> Completion: ...

    @overload
    async def create(
        self, *, stream: bool, **params: Unpack[CompletionCreateParams]
    ) -> Completion | CompletionStream: ...

    async def create(
        self, *, stream: bool | NotGiven = NOT_GIVEN, **params: Any
    ) -> Completion | CompletionStream:
        """Create a legacy completion for ``prompt`` with ``model``.

        See :class:`~anyoai.types.params.CompletionCreateParams` for the parameters; also takes
        ``extra_headers``, ``extra_query``, ``extra_body``, ``timeout`` and ``max_retries``.

        :param stream: ``True`` returns a :class:`CompletionStream` of :class:`Completion`
            chunks; otherwise a :class:`Completion`.
        :raises InvalidParameterError: for an unknown, missing or ill-typed parameter.
        """
        body, options = _SPEC.split(params)
        result = await self._create(
            "/completions",
            body,
            options,
            Completion,
            stream=stream,
            stream_cls=CompletionStream,
            estimator=estimate_completion,
        )
        if isinstance(result, Completion) and self._client.raise_on_content_filter:
            check_content_filter(result)
        return result
