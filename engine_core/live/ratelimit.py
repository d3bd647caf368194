"""A venue's request-weight budget, shared by everything that calls it.

Venues count requests (or weighted requests) per fixed window and say how
much is used in each response (Binance: ``X-MBX-USED-WEIGHT-1M`` against
6,000 a minute; Alpaca: ``X-RateLimit-Remaining`` with the window's reset
time). :class:`RateLimiter` keeps a count, takes the venue's figure as the
truth whenever one comes (:meth:`observe`), and makes callers wait for the
next window before the budget's ``headroom`` is spent, so the limit is
never reached. A 429 with ``Retry-After`` pauses every caller
(:meth:`pause`). Async, for one event loop; clock and sleep are injectable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimited(Exception):
    """Raised by :meth:`RateLimiter.acquire` when a wait would exceed ``max_wait``."""


class RateLimiter:
    """``limit`` weight per ``window`` seconds; windows start at multiples of
    ``window`` on ``clock`` (wall time) unless the venue says when it resets."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        headroom: float = 0.9,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit <= 0 or window <= 0 or not 0 < headroom <= 1:
            raise ValueError("RateLimiter needs limit > 0, window > 0 and 0 < headroom <= 1")
        self.limit = limit
        self.window = window
        self.headroom = headroom
        self._clock = clock
        self._sleep = sleep
        self.used = 0
        self._window_end = 0.0
        self.paused_until = 0.0
        self.waits = 0  # how many times a caller had to wait

    @property
    def budget(self) -> int:
        return max(1, int(self.limit * self.headroom))

    def _roll(self, now: float) -> None:
        if now >= self._window_end:
            self.used = 0
            self._window_end = (now // self.window + 1) * self.window

    def delay(self, weight: int = 1) -> float:
        """Seconds a request of ``weight`` must wait now (0: it may go)."""
        now = self._clock()
        self._roll(now)
        if self.paused_until > now:
            return self.paused_until - now
        if self.used + weight > self.budget and self.used > 0:
            return self._window_end - now
        return 0.0

    async def acquire(self, weight: int = 1, *, max_wait: float | None = None) -> None:
        """Wait until a request of ``weight`` fits the budget, then count it."""
        while True:
            wait = self.delay(weight)
            if wait <= 0:
                self.used += weight
                return
            if max_wait is not None and wait > max_wait:
                raise RateLimited(f"rate limit: the next request may go in {wait:.1f}s")
            self.waits += 1
            await self._sleep(wait)

    def observe(self, used: int, reset_at: float | None = None) -> None:
        """The venue's count of weight used in the current window (and, if it
        says, when the window ends, in ``clock`` seconds)."""
        now = self._clock()
        self._roll(now)
        if reset_at is not None:
            self._window_end = reset_at
        self.used = used

    def pause(self, seconds: float) -> None:
        """Stop every request for ``seconds`` (a 429's ``Retry-After``)."""
        self.paused_until = max(self.paused_until, self._clock() + max(0.0, seconds))
