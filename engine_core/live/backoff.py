"""Reconnect delays: exponential backoff with jitter.

Each failed attempt doubles the ceiling (``base``, ``2 * base``, ... up to
``cap``); the delay is drawn between ``(1 - jitter)`` and 1 times that
ceiling, so many clients dropped at once do not come back at once. A
successful connection calls :meth:`Backoff.reset`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable


class Backoff:
    """Delays before reconnect attempts (seconds)."""

    __slots__ = ("base", "cap", "factor", "jitter", "attempts", "_random")

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.5,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if base <= 0 or cap < base or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("Backoff needs 0 < base <= cap, factor >= 1 and 0 <= jitter <= 1")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.attempts = 0
        self._random = rng

    def next(self) -> float:
        """The delay before the next attempt; counts the attempt."""
        ceiling = min(self.cap, self.base * self.factor**self.attempts)
        self.attempts += 1
        return ceiling * (1 - self.jitter * self._random())

    async def wait(self) -> float:
        """Sleep for :meth:`next` and return how long."""
        delay = self.next()
        await asyncio.sleep(delay)
        return delay

    def reset(self) -> None:
        """A connection succeeded: start again from ``base``."""
        self.attempts = 0
