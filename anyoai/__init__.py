"""anyoai: an OpenAI API client native to structured concurrency.

::

    async with anyoai.open_pool() as pool:
        result = await pool.chat.completions.create(model="gpt-4o-mini", messages=[...])

Runs under asyncio or trio (through anyio); ``open_pool_sync`` and ``run_sync`` serve blocking
code. ``import anyoai`` stays light: httpcore, tiktoken, obstore, trio and h2 load when first
needed.
"""

from __future__ import annotations

from ._config import Settings, Timeout
from ._errors import (
    AnyoaiError,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncContextError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ContentFilterError,
    InternalServerError,
    InvalidParameterError,
    NotFoundError,
    PermissionDeniedError,
    PoolClosedError,
    RateLimitError,
    ResponseValidationError,
    StreamError,
    UnprocessableEntityError,
)
from ._pool import Pool, open_pool
from ._retry import RetryPolicy
from ._streaming import AsyncStream, ChatCompletionStream, CompletionStream
from ._sync import SyncPool, SyncStream, open_pool_sync, run_sync
from ._version import __version__
from .types._base import NOT_GIVEN, NotGiven

__all__ = [
    "NOT_GIVEN",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AnyoaiError",
    "AsyncContextError",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ChatCompletionStream",
    "CompletionStream",
    "ConfigurationError",
    "ConflictError",
    "ContentFilterError",
    "InternalServerError",
    "InvalidParameterError",
    "NotFoundError",
    "NotGiven",
    "PermissionDeniedError",
    "Pool",
    "PoolClosedError",
    "RateLimitError",
    "ResponseValidationError",
    "RetryPolicy",
    "Settings",
    "StreamError",
    "SyncPool",
    "SyncStream",
    "Timeout",
    "UnprocessableEntityError",
    "__version__",
    "open_pool",
    "open_pool_sync",
    "run_sync",
]
