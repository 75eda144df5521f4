"""The testing switch that makes anyoai's own waits instant.

Retry backoffs and the pause a 429 puts on a rate limiter are real waits in production. A test
suite that exercises them would crawl, so :func:`set_testing` turns them into zero-length
waits; the waits are still planned, reported (``on_retry``) and counted against deadlines.
The limits' sliding windows are not affected: they are what the tests check.
"""

from __future__ import annotations

__all__ = ["instant", "set_testing"]

_instant = False


def set_testing(instant: bool) -> None:
    """Make retry waits and 429 pauses instant (``True``) or real again (``False``)."""
    global _instant
    _instant = instant


def instant() -> bool:
    """Whether :func:`set_testing` made waits instant."""
    return _instant
