"""Idempotency keys: one per API call, the same on every attempt of it.

A key is a random prefix per process and a counter (a ``uuid4`` per request costs a system call
and more than the rest of building the request); a forked child draws a new prefix, so that
parent and child never share keys.

Inside a job with a checkpoint (:func:`anyoai.map_concurrent`), a key is instead derived from
the job and the item: the checkpoint's path, the item's index and fingerprint, and the call's
number within the item. A job killed and resumed sends an item that was in flight again under
the key it had the first time, so that a server which honours ``Idempotency-Key`` can
deduplicate it.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import itertools
import os
import uuid
from collections.abc import Iterator

__all__ = ["item_scope", "job_id", "next_key"]


class _Keys:
    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = f"anyoai-retry-{uuid.uuid4()}-"
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter)}"


_KEYS = _Keys()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_KEYS.reseed)

#: the item being worked on by a job with a checkpoint: (its key prefix, the call counter)
_ITEM: contextvars.ContextVar[tuple[str, Iterator[int]] | None] = contextvars.ContextVar(
    "anyoai_idempotency_item", default=None
)


def next_key() -> str:
    """The idempotency key of a new API call (see the module docstring)."""
    item = _ITEM.get()
    if item is None:
        return _KEYS.next()
    prefix, calls = item
    return f"{prefix}-{next(calls)}"


def job_id(checkpoint: str | os.PathLike[str]) -> str:
    """A job's id, the same on every run of it: from its checkpoint's absolute path."""
    path = os.path.abspath(os.fspath(checkpoint))
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@contextlib.contextmanager
def item_scope(job: str, index: int, fingerprint: str) -> Iterator[None]:
    """Within the block (in this task), calls get keys derived from *job* and the item."""
    token = _ITEM.set((f"anyoai-job-{job}-{index}-{fingerprint}", itertools.count(1)))
    try:
        yield
    finally:
        _ITEM.reset(token)
