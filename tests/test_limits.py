"""Rate limiters: the sliding-window guarantee, FIFO waiting, settlement, pauses, headers."""

from __future__ import annotations

import random

import anyio
import pytest

from anyoai import ConfigurationError, Limits, RateLimiter
from anyoai._clock import InstantClock, SystemClock
from anyoai._limits import Governor
from anyoai._ratelimit import parse_duration

pytestmark = pytest.mark.anyio


class FakeClock:
    """A clock the test moves by hand; limiters told to recheck look at it again."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ManualClock:
    """A pause clock the test moves by hand: a sleep ends once the time has passed its end."""

    def __init__(self) -> None:
        self.time = 0.0
        self.sleeps: list[float] = []
        self._moved = anyio.Event()

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        end = self.time + seconds
        while self.time < end:
            await self._moved.wait()

    def advance(self, seconds: float) -> None:
        self.time += seconds
        self._moved.set()
        self._moved = anyio.Event()


async def turns(n: int = 20) -> None:
    for _ in range(n):
        await anyio.lowlevel.checkpoint()


def max_in_any_window(events: list[tuple[float, float]], period: float) -> float:
    """The largest sum of amounts inside any half-open window [t, t + period)."""
    events = sorted(events)
    best = 0.0
    for i, (start, _) in enumerate(events):
        total = sum(a for t, a in events[i:] if t < start + period)
        best = max(best, total)
    return best


@pytest.mark.parametrize(("rpm", "tpm"), [(5, None), (None, 100), (8, 60)])
async def test_no_window_ever_holds_more_than_the_limit(rpm: int | None, tpm: int | None) -> None:
    period = 0.25  # a small window: the property is checked on the limiter's own clock
    limiter = RateLimiter(rpm=rpm, tpm=tpm, period=period)
    rng = random.Random(7)
    grants: list[tuple[float, float]] = []

    async def one(tokens: int) -> None:
        await anyio.sleep(rng.random() * 0.1)
        await limiter.acquire(tokens)
        grants.append((anyio.current_time(), tokens))

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(one, rng.randint(1, 20))
    assert len(grants) == 30
    if rpm is not None:
        assert max_in_any_window([(t, 1) for t, _ in grants], period) <= rpm
    if tpm is not None:
        assert max_in_any_window(grants, period) <= tpm
    assert limiter.statistics().waiting == 0


async def test_waiters_are_served_in_order_and_only_when_room_frees() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=2, period=60, clock=clock)
    await limiter.acquire()
    await limiter.acquire()
    arrived: list[int] = []
    served: list[int] = []

    async def waiter(n: int) -> None:
        arrived.append(n)
        await limiter.acquire()
        served.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(waiter, n)
        await turns()
        assert served == []
        assert limiter.statistics().waiting == 3
        clock.now += 61.1  # not yet: the entries stay the period plus 2% (61.2 s)
        limiter.recheck()
        await turns()
        assert served == []
        clock.now += 0.2  # both entries left the window: two fit, in order
        limiter.recheck()
        await turns()
        assert served == arrived[:2]
        clock.now += 62
        limiter.recheck()
    assert served == arrived


async def test_settlement_refunds_an_over_estimate_at_once() -> None:
    clock = FakeClock()  # never advanced: only a refund can make room
    limiter = RateLimiter(tpm=100, period=60, clock=clock)
    first = await limiter.acquire(90)
    done = anyio.Event()

    async def second() -> None:
        await limiter.acquire(50)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await turns()
        assert not done.is_set()
        first.settle(40)  # the real usage was 40: 50 tokens come back
        with anyio.fail_after(5):
            await done.wait()
    assert limiter.statistics().tokens == 90


async def test_settlement_can_also_charge_more() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=100, period=60, clock=clock)
    reservation = await limiter.acquire(10)
    reservation.settle(70)
    assert limiter.statistics().tokens == 70
    reservation.settle(5)  # settling twice is ignored
    assert limiter.statistics().tokens == 70


async def test_cancelled_reservation_gives_everything_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=1, tpm=100, period=60, clock=clock)
    reservation = await limiter.acquire(80)
    reservation.cancel()
    stats = limiter.statistics()
    assert (stats.requests, stats.tokens) == (0, 0)
    await limiter.acquire(100)  # the room is there again


async def test_cancelling_a_waiter_leaves_nothing_behind() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=1, period=60, clock=clock)
    await limiter.acquire()
    with anyio.move_on_after(0.05):
        await limiter.acquire()
    stats = limiter.statistics()
    assert stats.waiting == 0
    assert stats.requests == 1


async def test_pause_holds_back_every_waiter() -> None:
    clock = FakeClock()  # never moved: the pause runs on the pause clock, in real time here
    limiter = RateLimiter(rpm=1000, period=60, clock=clock, pause_clock=SystemClock())
    limiter.pause(0.3)
    arrived: list[int] = []
    served: list[int] = []

    async def waiter(n: int) -> None:
        arrived.append(n)  # no checkpoint between this and joining the queue
        await limiter.acquire()
        served.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(waiter, n)
        await turns()
        assert served == []
        assert 0.2 < limiter.statistics().paused_for <= 0.3
    # the pause ended by itself, on its clock: nothing had to tell the waiters
    assert served == arrived  # first come, first served
    assert sorted(served) == list(range(10))
    assert limiter.statistics().paused_for == 0


async def test_an_instant_clock_ends_a_pause_at_once() -> None:
    pause_clock = InstantClock()
    limiter = RateLimiter(rpm=1000, period=60, clock=FakeClock(), pause_clock=pause_clock)
    limiter.pause(30)
    assert limiter.statistics().paused_for == pytest.approx(30, abs=1)
    with anyio.fail_after(5):
        await limiter.acquire()
    # the pause was planned and waited out on the clock, which moved instead of sleeping
    assert pause_clock.skipped == pytest.approx(30, abs=1)
    assert limiter.statistics().paused_for == 0


async def test_a_longer_pause_set_during_a_pause_is_honoured() -> None:
    pause_clock = ManualClock()
    limiter = RateLimiter(rpm=1000, period=60, clock=FakeClock(), pause_clock=pause_clock)
    limiter.pause(5)
    served: list[int] = []

    async def waiter() -> None:
        await limiter.acquire()
        served.append(1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await turns()
        assert pause_clock.sleeps == [5]
        limiter.pause(20)  # another 429 meanwhile
        limiter.pause(1)  # a shorter pause never cuts a longer one
        limiter.recheck()  # a wake-up does not end a pause either
        pause_clock.advance(5)
        await turns()
        assert served == []
        assert pause_clock.sleeps == [5, 15]
        pause_clock.advance(15)
        await turns()
        assert served == [1]


async def test_after_a_pause_a_refund_still_wakes_the_window_wait() -> None:
    clock = FakeClock()  # never advanced: after the pause, only a refund can make room
    limiter = RateLimiter(tpm=100, period=60, clock=clock, pause_clock=InstantClock())
    first = await limiter.acquire(90)
    limiter.pause(10)
    done = anyio.Event()

    async def second() -> None:
        await limiter.acquire(50)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await turns()
        assert not done.is_set()  # the pause is over, the window is still full
        assert limiter.statistics().paused_for == 0
        first.settle(40)
        with anyio.fail_after(5):
            await done.wait()


async def test_the_governor_hands_its_clock_to_every_rate_limiter() -> None:
    pause_clock = InstantClock()
    governor = Governor(
        limits=Limits(),
        backend_limits={"b": Limits(rpm=1000)},
        model_limits={"m": Limits(rpm=5)},
        clock=pause_clock,
    )
    governor.pause("b", None, 10)  # the backend's configured limiter
    governor.pause("b", "m", 20)  # the model's
    governor.pause("other", "x", 40)  # a key nobody configured: a learned limiter
    assert governor.rate_limiter("other", "x") is not None
    for backend, model in (("b", None), ("b", "m"), ("other", "x")):
        limiter = governor.rate_limiter(backend, model)
        assert limiter is not None
        with anyio.fail_after(5):
            await limiter.acquire()
    # one clock: each pause was waited out on it, so together they moved it by the longest
    assert pause_clock.skipped == pytest.approx(40, abs=1)
    assert isinstance(Governor(limits=Limits()).clock, SystemClock)


async def test_request_bigger_than_the_limit_goes_alone_when_the_window_is_empty() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=100, period=60, clock=clock)
    reservation = await limiter.acquire(5000)
    assert reservation.tokens == 100


async def test_limits_learned_from_headers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(period=60, learned=True, clock=clock)
    limiter.observe(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-remaining-tokens": "29000",
        }
    )
    stats = limiter.statistics()
    assert (stats.rpm, stats.tpm) == (500, 30000)
    # the server saw 1,000 tokens and 1 request we did not send: they are counted as used
    assert (stats.requests, stats.tokens) == (1, 1000)


async def test_configured_limits_are_not_overridden_by_headers() -> None:
    limiter = RateLimiter(rpm=10, period=60, clock=FakeClock())
    limiter.observe({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "9"})
    stats = limiter.statistics()
    assert stats.rpm == 10
    assert stats.requests == 1  # the server's remaining (9) is less than ours (10)


async def test_limits_can_change_at_runtime() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=1, period=60, clock=clock)
    await limiter.acquire()
    done = anyio.Event()

    async def waiter() -> None:
        await limiter.acquire()
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await turns()
        assert not done.is_set()
        limiter.set_limits(rpm=2)
    assert done.is_set()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1m11.339s", 71.339),
        ("1.5s", 1.5),
        ("20ms", 0.02),
        ("1h2m3s", 3723.0),
        ("0s", 0.0),
        ("7", 7.0),
        ("soon", None),
        ("5x", None),
        ("", None),
    ],
)
def test_openai_durations(text: str, seconds: float | None) -> None:
    result = parse_duration(text)
    assert result == (pytest.approx(seconds) if seconds is not None else None)


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="rpm"):
        Limits(rpm=0)
    with pytest.raises(ConfigurationError, match="tpm"):
        Limits(tpm=1.5)  # type: ignore[arg-type]


async def test_unknown_usage_leaves_the_window_when_the_server_says_it_resets() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=1000, period=60, clock=clock)
    limiter.observe({"x-ratelimit-remaining-tokens": "400", "x-ratelimit-reset-tokens": "6s"})
    assert limiter.statistics().tokens == 600
    clock.now += 5.9  # it leaves when the server said its limit resets: after 6 s
    assert limiter.statistics().tokens == 600
    clock.now += 0.2
    assert limiter.statistics().tokens == 0


def test_pause_hint_reads_the_exhausted_limits_reset() -> None:
    from anyoai._ratelimit import pause_hint

    headers = {
        "x-ratelimit-remaining-requests": "10",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m30s",
    }
    assert pause_hint(headers) == 90.0
    assert pause_hint({"x-ratelimit-remaining-tokens": "5"}) is None
