"""Per-symbol windowed storage: a fixed-size, numpy-backed ring buffer.

Appending is O(1) per bar (O(n) for n bars at once) and the buffer never
grows. Reads return copies in time order, so a reader on another thread
never sees a half-written bar.
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
        self._cols = {name: np.zeros(capacity, dtype=np.int64 if name == "ts" else np.float64) for name in COLUMNS}
        self._next = 0  # index the next bar is written at
        self._count = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def append(self, bar: Bar) -> None:
        with self._lock:
            i = self._next
            cols = self._cols
            cols["ts"][i] = bar.ts
            cols["open"][i] = bar.open
            cols["high"][i] = bar.high
            cols["low"][i] = bar.low
            cols["close"][i] = bar.close
            cols["volume"][i] = bar.volume
            self._next = (i + 1) % self.capacity
            self._count = min(self._count + 1, self.capacity)

    def extend(self, chunk: BarChunk) -> None:
        n = len(chunk)
        if n == 0:
            return
        cap = self.capacity
        with self._lock:
            if n >= cap:
                for name in COLUMNS:
                    self._cols[name][:] = getattr(chunk, name)[n - cap :]
                self._next, self._count = 0, cap
                return
            first = min(n, cap - self._next)
            for name in COLUMNS:
                src = getattr(chunk, name)
                dst = self._cols[name]
                dst[self._next : self._next + first] = src[:first]
                dst[: n - first] = src[first:]
            self._next = (self._next + n) % cap
            self._count = min(self._count + n, cap)

    def last(self, column: str, n: int | None = None) -> np.ndarray:
        """The last ``n`` values of a column (all stored if None), oldest first."""
        with self._lock:
            return self._last_locked(column, n)

    def _last_locked(self, column: str, n: int | None) -> np.ndarray:
        count = self._count if n is None else max(0, min(n, self._count))
        src = self._cols[column]
        start = self._next - count
        if start >= 0:
            return src[start : self._next].copy()
        return np.concatenate((src[start:], src[: self._next]))

    def snapshot(self, n: int | None = None) -> dict[str, np.ndarray]:
        """The last ``n`` bars of every column, consistent with each other."""
        with self._lock:
            return {name: self._last_locked(name, n) for name in COLUMNS}

    def with_chunk(self, chunk: BarChunk, history: int) -> tuple[dict[str, np.ndarray], int]:
        """Up to ``history`` stored bars followed by ``chunk``, and the chunk's offset."""
        past = self.snapshot(history)
        offset = len(past["ts"])
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
