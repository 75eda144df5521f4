"""What every model shares: the NOT_GIVEN sentinel, response metadata, the metered-result base,
unknown variants. Below the converter (which keys hooks on its types) and the models in `types`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, Generic, Literal, NewType, Protocol, TypeVar

import attrs

from ._pricing import Consumption, consumption_of  # a leaf module: prices and arithmetic

__all__ = [
    "NOT_GIVEN",
    "APIObject",
    "ChoicesMixin",
    "CursorPage",
    "DataMixin",
    "EmbeddingVector",
    "Metered",
    "NotGiven",
    "ResponseMeta",
    "SentBack",
    "TokenUsage",
    "UnknownVariant",
]

#: A list of floats. The server may send it as a JSON array or, with
#: ``encoding_format="base64"``, as base64 of little-endian float32: both arrive decoded (the
#: converter's hook is keyed on this type).
EmbeddingVector = NewType("EmbeddingVector", list[float])


class TokenUsage(Protocol):
    """What every ``usage`` of a :class:`Metered` result has (chat, completion, embeddings,
    edit)."""

    @property
    def prompt_tokens(self) -> int:
        """Input tokens."""

    @property
    def completion_tokens(self) -> int:
        """Output tokens (0 for embeddings)."""

    @property
    def total_tokens(self) -> int:
        """All tokens the request used."""


class SentBack(Protocol):
    """A model that goes back to the API in another shape than it came (an assistant message
    from a result, sent again as a message parameter). The converter calls
    :meth:`_as_param` instead of unstructuring its fields."""

    def _as_param(self, unstructure: Callable[[Any], Any]) -> dict[str, Any]:
        """The parameter to send; *unstructure* turns nested models into JSON data."""


class NotGiven:
    """The type of :data:`NOT_GIVEN`: marks a parameter as omitted (``None`` sends ``null``)."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


#: Pass it for a parameter to omit it, as if it had not been written (``None`` sends ``null``).
NOT_GIVEN: Final = NotGiven()


@attrs.frozen(kw_only=True)
class ResponseMeta:
    """What anyoai knows about the HTTP exchange behind a result.

    :ivar raw: the decoded JSON body, as the server sent it (unknown keys included).
    :ivar headers: the response headers, lower-case names.
    :ivar status_code: the HTTP status.
    :ivar request_id: ``x-request-id`` (OpenAI) or ``apim-request-id`` (Azure), if sent.
    :ivar backend: the name of the backend that answered.
    :ivar attempts: how many attempts the request took (1 when it succeeded at once).
    :ivar elapsed: seconds from the first attempt to the end of the body.
    :ivar http_version: ``"HTTP/1.1"`` or ``"HTTP/2"``.
    :ivar estimated_usage: for a stream that sent no usage, the usage estimated with tiktoken.
    :ivar batch: whether the result came from the Batch API (priced at batch prices).
    """

    raw: Any
    headers: Mapping[str, str]
    status_code: int = 200
    request_id: str | None = None
    backend: str | None = None
    attempts: int = 1
    elapsed: float = 0.0
    http_version: str = "HTTP/1.1"
    estimated_usage: Any = None
    batch: bool = False


@attrs.frozen(kw_only=True)
class APIObject:
    """Base of every top-level result. Gives access to the exchange that produced it."""

    _meta: ResponseMeta | None = attrs.field(default=None, init=False, eq=False, repr=False)

    @property
    def meta(self) -> ResponseMeta | None:
        """The :class:`ResponseMeta` of the exchange, or ``None`` for an object built by hand."""
        return self._meta

    @property
    def raw(self) -> Any:
        """The decoded JSON body as the server sent it."""
        return self._meta.raw if self._meta else None

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (lower-case names)."""
        return self._meta.headers if self._meta else {}

    @property
    def request_id(self) -> str | None:
        """The server's id for this request, for support tickets."""
        return self._meta.request_id if self._meta else None

    @property
    def backend(self) -> str | None:
        """The name of the backend that answered."""
        return self._meta.backend if self._meta else None

    @property
    def attempts(self) -> int:
        """How many attempts the request took."""
        return self._meta.attempts if self._meta else 0

    @property
    def elapsed(self) -> float:
        """Seconds from the first attempt to the end of the body."""
        return self._meta.elapsed if self._meta else 0.0

    @property
    def consumption(self) -> Consumption | None:
        """What this result cost, in US dollars (a ``float`` with details), from its usage and
        the pricing table; ``None`` when it has no usage or its model has no price. For a
        stream without a usage chunk the tokens are estimated (``consumption.estimated``)."""
        return consumption_of(self)

    def _attach(self, meta: ResponseMeta) -> None:
        object.__setattr__(self, "_meta", meta)


@attrs.frozen(kw_only=True)
class Metered(APIObject):
    """Base of the results that report the tokens their request used (chat, completion,
    embeddings, edit): the rate limiter is settled with them, and ``pool.usage`` and the
    cost count them. (A batch's ``usage`` is the batch's, not its request's: a
    :class:`~anyoai.types.Batch` is not metered.)"""

    @property
    def usage(self) -> TokenUsage | None:
        """The tokens the request used, if the server said (the subclasses' field)."""
        return None

    @property
    def model(self) -> str | None:
        """The model that answered, if the result names it (the subclasses' field)."""
        return None


class ChoicesMixin:
    """The seed library's conveniences for results with choices: ``text``, ``texts``, ``len()``.

    A class using it has a ``choices`` list; :meth:`_text_of` reads one choice's text (its
    ``text`` attribute, unless the class says otherwise).
    """

    __slots__ = ()

    choices: Sequence[Any]

    @staticmethod
    def _text_of(choice: Any) -> str:
        return str(getattr(choice, "text", "") or "")

    @property
    def texts(self) -> list[str]:
        """The text of every choice (``""`` where a choice has none), in choice order."""
        return [self._text_of(choice) for choice in self.choices]

    @property
    def text(self) -> str:
        """The choices' texts concatenated, as the seed library did; the answer when ``n=1``."""
        return "".join(self.texts)

    def __len__(self) -> int:
        return len(self.choices)

    def __bool__(self) -> bool:
        # a result is truthy even with no choices (e.g. a usage-only stream chunk)
        return True


ItemT = TypeVar("ItemT")


class DataMixin(Generic[ItemT]):
    """The conveniences of a list result: iterate over its ``data``, take its ``len()``.

    A class using it has a ``data`` list; it is truthy even when that list is empty.
    """

    __slots__ = ()

    data: Sequence[ItemT]

    def __iter__(self) -> Iterator[ItemT]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return True


@attrs.frozen(kw_only=True)
class CursorPage(APIObject, DataMixin[ItemT]):
    """One page of a list paged by cursor (``after``); the subclass declares its ``data``."""

    object_: str = "list"
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


@attrs.frozen(kw_only=True)
class UnknownVariant:
    """A member of a tagged union whose ``type`` this version of anyoai does not know.

    It keeps the tag and the whole raw object, so nothing the server sent is lost.
    """

    type: str
    raw: Mapping[str, Any] = attrs.field(factory=dict)
