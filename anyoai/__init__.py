"""anyoai: an OpenAI API client native to structured concurrency.

::

    async with anyoai.open_pool() as pool:
        result = await pool.chat.completions.create(model="gpt-4o-mini", messages=[...])

Runs under asyncio or trio (through anyio); ``open_pool_sync`` and ``run_sync`` serve blocking
code. ``import anyoai`` stays light: httpcore, tiktoken, obstore, trio and h2 load when first
needed.
"""

from __future__ import annotations

from . import _exceptions, pricing, storage
from ._backends import (
    DEFAULT_AZURE_DEPLOYMENTS,
    AzureBackend,
    Backend,
    CompatibleBackend,
    OpenAIBackend,
)
from ._concurrency import Progress, imap_concurrent, map_concurrent
from ._config import Settings, Timeout
from ._dispatch import RetryEvent
from ._exceptions import *  # noqa: F403  (the exception tree: all of its __all__)
from ._limits import Limits
from ._model import NOT_GIVEN, NotGiven
from ._pool import Pool, PoolView, open_pool
from ._pricing import Consumption
from ._ratelimit import RateLimiter
from ._retry import RetryPolicy
from ._schema import json_schema, tool
from ._selection import BackendStatus, FailoverPolicy
from ._streaming import AsyncStream, ChatCompletionStream, CompletionStream
from ._sync import SyncPool, SyncStream, open_pool_sync, run_sync
from ._tokens import count_tokens, truncate_to_tokens
from ._tools import ParsedToolCall
from ._usage import UsageTotals
from ._version import __version__
from .resources.batches import BatchRun
from .storage import Storage, StorageURL

__all__ = [
    "DEFAULT_AZURE_DEPLOYMENTS",
    "NOT_GIVEN",
    "AsyncStream",
    "AzureBackend",
    "Backend",
    "BackendStatus",
    "BatchRun",
    "ChatCompletionStream",
    "CompatibleBackend",
    "CompletionStream",
    "Consumption",
    "FailoverPolicy",
    "Limits",
    "NotGiven",
    "OpenAIBackend",
    "ParsedToolCall",
    "Pool",
    "PoolView",
    "Progress",
    "RateLimiter",
    "RetryEvent",
    "RetryPolicy",
    "Settings",
    "Storage",
    "StorageURL",
    "SyncPool",
    "SyncStream",
    "Timeout",
    "UsageTotals",
    "__version__",
    "count_tokens",
    "imap_concurrent",
    "json_schema",
    "map_concurrent",
    "open_pool",
    "open_pool_sync",
    "pricing",
    "run_sync",
    "storage",
    "tool",
    "truncate_to_tokens",
]
__all__ += _exceptions.__all__
