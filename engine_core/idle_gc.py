"""Live, the cyclic garbage collector runs while the engine is idle, not in
the middle of a burst of bars.

CPython collects when allocations pass a threshold, wherever that falls: in
`bench/live_latency.py` (100 symbols, 15 s) a full collection paused every
thread for up to 21 ms and a middle one for up to 3 ms, each landing on a
burst whose orders then left that much later (the p99). A live run turns
the automatic collector off; the baton's watcher, once no turn has run for
a lease (the burst is over), calls :meth:`IdleCollector.idle`, which
collects what CPython would have by now: the young generation past its
threshold, the middle one after ten of those, everything at most every
``full_every`` seconds. An engine that is never idle still collects the
young generation, past ``busy_limit`` allocations, wherever it is.
"""

from __future__ import annotations

import gc
import time

FULL_EVERY = 60.0  # seconds between two full collections, at most (idle)
BUSY_LIMIT = 100_000  # young objects after which a busy engine collects anyway


class IdleCollector:
    def __init__(self, full_every: float = FULL_EVERY, busy_limit: int = BUSY_LIMIT) -> None:
        self.full_every = full_every
        self.busy_limit = busy_limit
        self.young, self.middle, _ = gc.get_threshold()
        self.full_at = time.monotonic()
        self.collections = [0, 0, 0]  # by generation, made here
        self._was_enabled = False

    def start(self) -> None:
        """Turn CPython's automatic collections off (a live run begins)."""
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.full_at = time.monotonic()

    def stop(self) -> None:
        """Give collecting back to CPython (the run has ended)."""
        if self._was_enabled:
            gc.enable()

    def idle(self) -> None:
        """The engine is idle: collect what is due."""
        young, middle, _ = gc.get_count()
        now = time.monotonic()
        if now - self.full_at >= self.full_every:
            self._collect(2)
            self.full_at = now
        elif middle >= self.middle:
            self._collect(1)
        elif young >= self.young:
            self._collect(0)

    def busy(self) -> None:
        """The engine has not been idle for a while: collect the young
        generation only once it is far past its threshold."""
        if gc.get_count()[0] >= self.busy_limit:
            self._collect(0)

    def _collect(self, generation: int) -> None:
        gc.collect(generation)
        self.collections[generation] += 1
