"""``pool.chat.completions``: chat completions, streamed or not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from .._compat import Unpack
from .._errors import check_content_filter
from .._params import ParamSpec, check_messages
from .._streaming import ChatCompletionStream
from ..types._base import NOT_GIVEN, NotGiven
from ..types.chat import ChatCompletion
from ..types.params import ChatCompletionCreateParams
from ._base import Resource

if TYPE_CHECKING:
    from ._base import Sender

__all__ = ["Chat", "ChatCompletions"]

_SPEC = ParamSpec.compile(
    "chat.completions.create", ChatCompletionCreateParams, extra_checks={"messages": check_messages}
)


class ChatCompletions(Resource):
    """``/chat/completions``."""

    __slots__ = ()

    @overload
    async def create(
        self, *, stream: Literal[True], **params: Unpack[ChatCompletionCreateParams]
    ) -> ChatCompletionStream: ...

    @overload
    async def create(
        self,
        *,
        stream: Literal[False] | NotGiven = NOT_GIVEN,
        **params: Unpack[ChatCompletionCreateParams],
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self, *, stream: bool, **params: Unpack[ChatCompletionCreateParams]
    ) -> ChatCompletion | ChatCompletionStream: ...

    async def create(
        self, *, stream: bool | NotGiven = NOT_GIVEN, **params: Any
    ) -> ChatCompletion | ChatCompletionStream:
        """Create a chat completion.

        Takes the API's parameters as keywords (``model``, ``messages``, ``tools``,
        ``tool_choice``, ``functions``, ``response_format``, ``logprobs``, ``n``,
        ``stream_options``, ... see :class:`~anyoai.types.params.ChatCompletionCreateParams`),
        plus ``extra_headers``, ``extra_query``, ``extra_body``, ``timeout`` and ``max_retries``.

        :param stream: ``True`` returns a :class:`ChatCompletionStream` once the response head
            has arrived; use it as ``async with``. Otherwise a :class:`ChatCompletion`.
        :raises InvalidParameterError: for an unknown, missing or ill-typed parameter.
        :raises APIStatusError: (a subclass) for an error answer, after retries.
        :raises APIConnectionError: when no answer came, after retries.
        """
        body, options = _SPEC.split(params)
        result = await self._create(
            "/chat/completions",
            body,
            options,
            ChatCompletion,
            stream=stream,
            stream_cls=ChatCompletionStream,
        )
        if isinstance(result, ChatCompletion) and self._pool.raise_on_content_filter:
            check_content_filter(result)
        return result


class Chat:
    """``pool.chat``: holds :attr:`completions`."""

    __slots__ = ("completions",)

    def __init__(self, pool: Sender) -> None:
        self.completions = ChatCompletions(pool)
