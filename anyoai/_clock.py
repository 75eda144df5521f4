"""The clock that anyoai's own waits run on: retry backoffs, 429 pauses, batch polls.

These are waits that anyoai chooses, not waits for the network. A pool is given one clock when
it opens (``open_pool(clock=...)``) and hands it to the retry loop, the rate limiters' pauses
and the batch poller, so none of them reads a global switch. :class:`SystemClock` is real time.
:class:`InstantClock` is for test suites: a wait ends at once and moves the clock's own time
forward instead, so that deadlines counted on it still run out when they would have.

Network timeouts and the rate limiters' sliding windows always use real time: they are what
the tests check. :func:`anyoai.testing.set_testing` chooses the clock a pool gets when
``open_pool`` is given none, as stamina's ``set_testing`` does for its retries.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ["Clock", "InstantClock", "SystemClock", "default_clock", "set_testing"]


class Clock(Protocol):
    """What anyoai's own waits need of a clock."""

    def now(self) -> float:
        """The time in seconds, monotonic (its origin means nothing)."""

    async def sleep(self, seconds: float) -> None:
        """Wait *seconds* (cancellable, like :func:`anyio.sleep`)."""


class SystemClock:
    """Real time: :func:`time.monotonic` and :func:`anyio.sleep`."""

    __slots__ = ()

    def now(self) -> float:
        """:func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """:func:`anyio.sleep`."""
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class InstantClock:
    """A clock whose waits end at once: each one moves its time forward by the wait instead.

    Its :meth:`now` is real time plus every wait it skipped, so that a deadline counted on it
    runs out after as many waits as it would in real time. A wait still yields to the event
    loop (and is still cancellable).
    """

    __slots__ = ("skipped",)

    def __init__(self) -> None:
        #: the seconds of waiting skipped so far
        self.skipped = 0.0

    def now(self) -> float:
        """Real monotonic time plus the waits skipped."""
        return time.monotonic() + self.skipped

    async def sleep(self, seconds: float) -> None:
        """Skip the wait: add it to :attr:`skipped`, then yield once."""
        self.skipped += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        return f"InstantClock(skipped={self.skipped:.3f})"


_default: type[SystemClock] | type[InstantClock] = SystemClock


def set_testing(testing: bool) -> None:
    """Give every pool opened from now on (without ``clock=``) an :class:`InstantClock`
    (``True``: retry waits, 429 pauses and batch polls end at once) or real time (``False``).

    Exported as :func:`anyoai.testing.set_testing`, for test suites.
    """
    global _default
    _default = InstantClock if testing else SystemClock


def default_clock() -> Clock:
    """A new clock of the kind :func:`set_testing` chose (real time unless it was called)."""
    return _default()
