"""Token counts and estimates with tiktoken, and a documented fallback when it cannot load.

The encoding follows the model (``o200k_base`` for the gpt-4o, gpt-4.1, gpt-5 and o-series
families, ``cl100k_base`` for gpt-4, gpt-3.5 and the embedding models; tiktoken's own table
first). tiktoken downloads an encoding on first use; without a network it needs
``TIKTOKEN_CACHE_DIR`` pointing at a copy. When an encoding cannot be loaded, counting falls
back to a heuristic and warns once:

    **fallback: one token per 3 bytes of UTF-8, rounded up.**

That over-counts English (about 4 characters a token) and matches CJK text roughly, so limits
err on the safe side; settlement with the server's ``usage`` corrects the difference.

Chat messages are counted as OpenAI's cookbook describes: 3 tokens per message, plus its role,
content and name (+1), plus 3 to prime the reply. Images cost what the API documents for the
gpt-4o family: 85 tokens at ``detail="low"``, else 85 + 170 per 512-pixel tile after scaling
the image to fit 2048x2048 and then its short side to 768 (the size is read from data URLs;
an image by URL is assumed to be 1024x1024: 765 tokens). Tool and function definitions count
as their JSON text.

Loading an encoding takes about half a second, so the async path loads it in a worker thread
(:func:`ensure_encoding`); the sync helpers load it inline.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import struct
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "Estimator",
    "TokenEstimate",
    "count_messages",
    "count_text",
    "count_tokens",
    "encoding_name",
    "ensure_encoding",
    "estimate_chat",
    "estimate_completion",
    "estimate_edit",
    "estimate_input",
    "truncate_to_tokens",
]

logger = logging.getLogger("anyoai")

#: the fallback's rate: one token per this many bytes of UTF-8
FALLBACK_BYTES_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
IMAGE_LOW = 85
IMAGE_TILE = 170
DEFAULT_IMAGE_SIZE = (1024, 1024)
#: the API's default max_tokens for legacy completions
COMPLETIONS_DEFAULT_MAX_TOKENS = 16

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "omni")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding", "ft:gpt-4", "ft:gpt-3.5")


def encoding_name(model: str | None) -> str:
    """The name of the tiktoken encoding for *model* (``o200k_base`` when unknown)."""
    if not model:
        return "o200k_base"
    try:
        from tiktoken.model import encoding_name_for_model

        return encoding_name_for_model(model)
    except (KeyError, ImportError):
        pass
    name = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" on some compatible servers
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


class _Encodings:
    """Loaded encodings, and the ones that failed (counted with the fallback)."""

    def __init__(self) -> None:
        self._loaded: dict[str, tiktoken.Encoding] = {}
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        self._warned = False

    def get(self, name: str) -> tiktoken.Encoding | None:
        """The encoding *name*, loading it (blocking) the first time; ``None`` if it cannot load."""
        found = self._loaded.get(name)
        if found is not None or name in self._failed:
            return found
        with self._lock:
            if name in self._loaded or name in self._failed:
                return self._loaded.get(name)
            try:
                import tiktoken

                encoding = tiktoken.get_encoding(name)
            except Exception as exc:
                self._failed.add(name)
                self._warn(name, exc)
                return None
            self._loaded[name] = encoding
            return encoding

    def is_settled(self, name: str) -> bool:
        """Whether *name* was already loaded (or failed): counting it will not block."""
        return name in self._loaded or name in self._failed

    def _warn(self, name: str, exc: BaseException) -> None:
        if self._warned:
            return
        self._warned = True
        message = (
            f"anyoai could not load the tiktoken encoding {name!r} ({type(exc).__name__}: "
            f"{exc}); token counts fall back to one token per {FALLBACK_BYTES_PER_TOKEN} bytes. "
            "Set TIKTOKEN_CACHE_DIR to a folder holding tiktoken's encodings to count exactly."
        )
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


ENCODINGS = _Encodings()


async def ensure_encoding(model: str | None) -> None:
    """Load the encoding for *model* in a worker thread if it is not loaded yet."""
    name = encoding_name(model)
    if not ENCODINGS.is_settled(name):
        import anyio.to_thread

        await anyio.to_thread.run_sync(ENCODINGS.get, name)


def count_text(text: str, model: str | None = None) -> int:
    """The number of tokens of *text* for *model*."""
    if not text:
        return 0
    encoding = ENCODINGS.get(encoding_name(model))
    if encoding is None:
        return math.ceil(len(text.encode("utf-8")) / FALLBACK_BYTES_PER_TOKEN)
    return len(encoding.encode(text, disallowed_special=()))


def truncate_to_tokens(text: str, max_tokens: int, *, model: str | None = None) -> str:
    """Cut *text* to at most *max_tokens* tokens of *model*'s encoding.

    With the fallback (no encoding), it cuts at ``max_tokens * 3`` bytes on a character
    boundary.

    :raises ValueError: if *max_tokens* is negative.
    """
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    encoding = ENCODINGS.get(encoding_name(model))
    if encoding is None:
        raw = text.encode("utf-8")[: max_tokens * FALLBACK_BYTES_PER_TOKEN]
        return raw.decode("utf-8", "ignore")
    tokens = encoding.encode(text, disallowed_special=())
    if len(tokens) <= max_tokens:
        return text
    cut = encoding.decode(tokens[:max_tokens])
    # a cut inside a multi-byte character decodes to U+FFFD: drop it
    return cut.rstrip("\ufffd")


# -- images -------------------------------------------------------------------------------------


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header of a PNG, GIF or JPEG image."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:2] == b"\xff\xd8":
        index = 2
        while index + 9 < len(data):
            if data[index] != 0xFF:
                return None
            marker = data[index + 1]
            (length,) = struct.unpack(">H", data[index + 2 : index + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[index + 5 : index + 9])
                return int(width), int(height)
            index += 2 + length
    return None


def _data_url_size(url: str) -> tuple[int, int] | None:
    if not url.startswith("data:") or ";base64," not in url:
        return None
    payload = url.split(";base64,", 1)[1][:4096]  # the header is near the start
    payload = payload[: len(payload) - len(payload) % 4]
    try:
        return _image_size(base64.b64decode(payload))
    except (binascii.Error, ValueError, struct.error):
        return None


def image_tokens(url: str, detail: str = "auto") -> int:
    """The documented token cost of one image input (gpt-4o family)."""
    if detail == "low":
        return IMAGE_LOW
    size = _data_url_size(url) or DEFAULT_IMAGE_SIZE
    if size[0] <= 0 or size[1] <= 0:
        return IMAGE_LOW
    width, height = float(size[0]), float(size[1])
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    tiles = math.ceil(width / 512) * math.ceil(height / 512)
    return IMAGE_LOW + IMAGE_TILE * tiles


# -- messages and requests ----------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _content_tokens(content: Any, model: str | None) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return count_text(content, model)
    total = 0
    for part in content if isinstance(content, Iterable) else ():
        kind = _get(part, "type")
        if kind == "text":
            total += count_text(str(_get(part, "text") or ""), model)
        elif kind == "image_url":
            image = _get(part, "image_url") or {}
            total += image_tokens(
                str(_get(image, "url") or ""), str(_get(image, "detail") or "auto")
            )
        elif kind == "refusal":
            total += count_text(str(_get(part, "refusal") or ""), model)
    return total


def _json_tokens(value: Any, model: str | None) -> int:
    from ._serde import encode_json

    return count_text(encode_json(value).decode("utf-8"), model)


def count_messages(
    messages: Iterable[Any],
    model: str | None = None,
    *,
    tools: Any = None,
    functions: Any = None,
) -> int:
    """The prompt tokens of chat *messages* (mappings or message objects), tools included."""
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += count_text(str(_get(message, "role") or ""), model)
        total += _content_tokens(_get(message, "content"), model)
        name = _get(message, "name")
        if name:
            total += TOKENS_PER_NAME + count_text(str(name), model)
        for call in _get(message, "tool_calls") or ():
            function = _get(call, "function")
            if function is not None:
                total += count_text(str(_get(function, "name") or ""), model)
                total += count_text(str(_get(function, "arguments") or ""), model)
        function_call = _get(message, "function_call")
        if function_call is not None:
            total += count_text(str(_get(function_call, "name") or ""), model)
            total += count_text(str(_get(function_call, "arguments") or ""), model)
    if tools:
        total += _json_tokens(list(tools), model)
    if functions:
        total += _json_tokens(list(functions), model)
    return total


def _prompt_tokens(prompt: Any, model: str | None) -> int:
    """Tokens of an embedding input or completion prompt: text(s) or token array(s)."""
    if prompt is None:
        return 0
    if isinstance(prompt, str):
        return count_text(prompt, model)
    items = list(prompt)
    if not items:
        return 0
    if all(isinstance(x, int) for x in items):
        return len(items)
    total = 0
    for item in items:
        if isinstance(item, str):
            total += count_text(item, model)
        elif isinstance(item, (list, tuple)):
            total += len(item)  # a token array
        else:
            total += count_text(str(item), model)
    return total


def count_tokens(messages_or_text: Any, *, model: str | None = None) -> int:
    """Count the tokens of a text, a list of texts, or a list of chat messages, for *model*.

    >>> count_tokens("hello world", model="gpt-4o")
    2
    """
    if isinstance(messages_or_text, str):
        return count_text(messages_or_text, model)
    items = list(messages_or_text)
    if items and all(isinstance(m, Mapping) or hasattr(m, "role") for m in items):
        return count_messages(items, model)
    return _prompt_tokens(items, model)


#: What a request costs against a tokens-per-minute limit, estimated before sending:
#: ``(prompt_tokens, reserved_completion_tokens)``.
Estimator = Callable[[Mapping[str, Any]], "tuple[int, int]"]


def _model_and_n(params: Mapping[str, Any]) -> tuple[str | None, int]:
    model = params.get("model")
    n = params.get("n") or 1
    return (model if isinstance(model, str) else None), (n if isinstance(n, int) else 1)


def estimate_chat(params: Mapping[str, Any]) -> tuple[int, int]:
    """A chat completion: its messages, tools and functions, and ``max_completion_tokens``
    (or ``max_tokens``) times ``n`` reserved, which is how OpenAI charges a request against
    its limit until the real usage is known."""
    model, n = _model_and_n(params)
    prompt = count_messages(
        params.get("messages") or (),
        model,
        tools=params.get("tools"),
        functions=params.get("functions"),
    )
    completion = params.get("max_completion_tokens") or params.get("max_tokens") or 0
    return prompt, int(completion) * n


def estimate_completion(params: Mapping[str, Any]) -> tuple[int, int]:
    """A legacy completion: its prompt(s), and ``max_tokens`` (default 16) times ``n`` times
    ``best_of`` reserved for each prompt."""
    model, n = _model_and_n(params)
    prompts = params.get("prompt")
    count = 1 if isinstance(prompts, str) or prompts is None else max(1, len(list(prompts)))
    completion = params.get("max_tokens")
    if completion is None:
        completion = COMPLETIONS_DEFAULT_MAX_TOKENS
    best_of = params.get("best_of") or 1
    return _prompt_tokens(prompts, model), int(completion) * n * int(best_of) * count


def estimate_input(params: Mapping[str, Any]) -> tuple[int, int]:
    """An embedding or moderation: its ``input`` (texts, token arrays, or moderation parts,
    whose texts count); nothing is reserved for a completion."""
    model, _ = _model_and_n(params)
    value = params.get("input")
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        value = [str(part.get("text") or "") for part in value]
    return _prompt_tokens(value, model), 0


def estimate_edit(params: Mapping[str, Any]) -> tuple[int, int]:
    """A legacy edit: its input and instruction."""
    model, _ = _model_and_n(params)
    text = f"{params.get('input') or ''} {params.get('instruction') or ''}"
    return count_text(text, model), 0


class TokenEstimate:
    """A request's token cost, estimated by its resource's :data:`Estimator` on first use and
    then kept: the rate limiter reserves it, and a stream without a usage chunk reuses its
    prompt count. Nothing is counted when no token limit asks for it.
    """

    __slots__ = ("_estimator", "_params", "_value", "model")

    def __init__(self, estimator: Estimator, params: Mapping[str, Any]) -> None:
        self._estimator = estimator
        self._params = params
        model = params.get("model")
        #: the model whose encoding counts the tokens
        self.model: str | None = model if isinstance(model, str) else None
        self._value: tuple[int, int] | None = None

    async def compute(self) -> tuple[int, int]:
        """``(prompt_tokens, reserved_completion_tokens)``, loading the encoding first."""
        if self._value is None:
            await ensure_encoding(self.model)
            self._value = self._estimator(self._params)
        return self._value

    @property
    def prompt(self) -> int | None:
        """The prompt tokens, if :meth:`compute` has run (``None`` if nothing asked yet)."""
        return None if self._value is None else self._value[0]

    def __repr__(self) -> str:
        return f"<TokenEstimate {self._estimator.__name__} {self._value}>"
