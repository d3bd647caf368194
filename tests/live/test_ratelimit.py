import asyncio

import pytest

from engine_core.live import RateLimited, RateLimiter


class Clock:
    def __init__(self, now=0.0):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def run(coro):
    return asyncio.run(coro)


def test_requests_wait_for_the_next_window_before_the_budget_is_spent():
    clock = Clock(10.0)
    lim = RateLimiter(100, 60, headroom=0.9, clock=clock, sleep=clock.sleep)

    async def go():
        for _ in range(9):
            await lim.acquire(10)  # 90 = the budget
        await lim.acquire(10)

    run(go())
    assert clock.slept == [50.0]  # to the minute's end
    assert lim.used == 10


def test_the_venue_figure_replaces_the_local_count():
    clock = Clock(0.0)
    lim = RateLimiter(6000, clock=clock, sleep=clock.sleep)
    lim.observe(5990)
    assert lim.delay(20) == 60.0
    lim.observe(10, reset_at=30.0)
    assert lim.delay(20) == 0.0


def test_retry_after_pauses_every_request():
    clock = Clock(0.0)
    lim = RateLimiter(6000, clock=clock, sleep=clock.sleep)
    lim.pause(7)
    run(lim.acquire(1))
    assert clock.slept == [7.0]


def test_a_wait_longer_than_allowed_raises():
    clock = Clock(0.0)
    lim = RateLimiter(6000, clock=clock, sleep=clock.sleep)
    lim.pause(120)
    with pytest.raises(RateLimited):
        run(lim.acquire(1, max_wait=5))
