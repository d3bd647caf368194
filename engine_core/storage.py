"""Per-symbol windowed storage: a fixed-size, numpy-backed ring buffer.

Each bar is written twice, at ``i`` and ``i + capacity`` of a buffer twice
the capacity, so the last bars are always one contiguous slice: reading the
window needs no copy and no wrap-around. Appending is O(1) per bar and the
buffer never grows. ``last`` and ``snapshot`` return copies, so a reader on
another thread never sees a half-written bar.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from engine_core.model import Bar, BarChunk

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class BarWindow:
    """The last ``capacity`` bars of one symbol."""

    def __init__(self, symbol: str, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.symbol = symbol
        self.capacity = capacity
        self._cols = {name: np.zeros(2 * capacity, dtype=np.int64 if name == "ts" else np.float64) for name in COLUMNS}
        self._next = 0  # ring position the next bar is written at
        self._count = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def append(self, bar: Bar) -> None:
        self.extend(BarChunk.from_bar(bar))

    def extend(self, chunk: BarChunk) -> None:
        n = len(chunk)
        if n == 0:
            return
        cap = self.capacity
        with self._lock:
            if n == 1:  # a live bar: scalar writes are far cheaper than slice copies
                i = self._next
                for name in COLUMNS:
                    dst = self._cols[name]
                    dst[i] = dst[i + cap] = getattr(chunk, name)[0]
                self._next = (i + 1) % cap
                self._count = min(self._count + 1, cap)
                return
            if n >= cap:
                for name in COLUMNS:
                    tail = getattr(chunk, name)[n - cap :]
                    dst = self._cols[name]
                    dst[:cap] = tail
                    dst[cap:] = tail
                self._next, self._count = 0, cap
                return
            first = min(n, cap - self._next)
            i = self._next
            for name in COLUMNS:
                src = getattr(chunk, name)
                dst = self._cols[name]
                dst[i : i + first] = src[:first]
                dst[i + cap : i + cap + first] = src[:first]
                dst[: n - first] = src[first:]
                dst[cap : cap + n - first] = src[first:]
            self._next = (i + n) % cap
            self._count = min(self._count + n, cap)

    def _tail(self, column: str, count: int) -> np.ndarray:
        """The last ``count`` values of a column, oldest first: a view, valid until the next write."""
        end = self._next + self.capacity
        return self._cols[column][end - count : end]

    def last(self, column: str, n: int | None = None) -> np.ndarray:
        """The last ``n`` values of a column (all stored if None), oldest first."""
        with self._lock:
            return self._tail(column, self._count if n is None else max(0, min(n, self._count))).copy()

    def snapshot(self, n: int | None = None) -> dict[str, np.ndarray]:
        """The last ``n`` bars of every column, consistent with each other."""
        with self._lock:
            count = self._count if n is None else max(0, min(n, self._count))
            return {name: self._tail(name, count).copy() for name in COLUMNS}

    def push(self, chunk: BarChunk, history: int) -> tuple[dict[str, np.ndarray], int]:
        """Store ``chunk``; return up to ``history`` earlier bars followed by the
        chunk, as columns, and the chunk's offset in them.

        When history and chunk fit in the window (a live bar), the columns are
        views of the buffer, valid until the next push: the worker that owns
        the window reads them while it processes the chunk, then pushes the next.
        """
        n = len(chunk)
        offset = min(history, self._count)
        if offset + n <= self.capacity:
            self.extend(chunk)
            return {name: self._tail(name, offset + n) for name in COLUMNS}, offset
        past = self.snapshot(history)
        self.extend(chunk)
        if offset == 0:
            return {name: getattr(chunk, name) for name in COLUMNS}, 0
        return {name: np.concatenate((past[name], getattr(chunk, name))) for name in COLUMNS}, offset


class Series:
    """A growable numpy array (amortised O(1) append), for per-bar results."""

    def __init__(self, dtype: Any, capacity: int = 1024) -> None:
        self._data = np.empty(capacity, dtype=dtype)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _room(self, extra: int) -> None:
        need = self._n + extra
        if need > len(self._data):
            grown = np.empty(max(need, 2 * len(self._data)), dtype=self._data.dtype)
            grown[: self._n] = self._data[: self._n]
            self._data = grown

    def append(self, value: Any) -> None:
        self._room(1)
        self._data[self._n] = value
        self._n += 1

    def extend(self, values: np.ndarray) -> None:
        self._room(len(values))
        self._data[self._n : self._n + len(values)] = values
        self._n += len(values)

    def array(self) -> np.ndarray:
        """The values so far (a view; copy it to keep it past the next append)."""
        return self._data[: self._n]
