"""Per-symbol windowed storage: a fixed-size, numpy-backed ring buffer.

Each bar is written twice, at ``i`` and ``i + capacity`` of a buffer twice
the capacity, so the last bars are always one contiguous slice: reading the
window needs no copy and no wrap-around. Appending is O(1) per bar and the
buffer never grows. ``Ring.snapshot`` returns copies, so a reader on
another thread never sees a half-written bar.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine_core.model import Bar, BarChunk

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class Ring:
    """Named columns keeping their last ``capacity`` rows (thread-safe writes and copies)."""

    def __init__(self, dtypes: Mapping[str, Any], capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._cols = {name: np.zeros(2 * capacity, dtype=dtype) for name, dtype in dtypes.items()}
        self._arrays = tuple(self._cols.values())  # the buffers in column order (the one-row path)
        self._next = 0  # ring position the next row is written at
        self._count = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def extend(self, values: Mapping[str, np.ndarray]) -> None:
        """Append rows: one array per column, all of the same length."""
        n = len(next(iter(values.values())))
        if n == 0:
            return
        cap = self.capacity
        with self._lock:
            i = self._next
            if n == 1:  # a live bar: scalar writes are far cheaper than slice copies
                for name, dst in self._cols.items():
                    dst[i] = dst[i + cap] = values[name][0]
            elif n >= cap:
                for name, dst in self._cols.items():
                    tail = values[name][n - cap :]
                    dst[:cap] = tail
                    dst[cap:] = tail
                i = -n  # lands _next on 0 below
            else:
                first = min(n, cap - i)
                for name, dst in self._cols.items():
                    src = values[name]
                    dst[i : i + first] = src[:first]
                    dst[i + cap : i + cap + first] = src[:first]
                    dst[: n - first] = src[first:]
                    dst[cap : cap + n - first] = src[first:]
            self._next = (i + n) % cap
            self._count = min(self._count + n, cap)

    def push_row(self, row: Sequence[Any], history: int) -> tuple[list[np.ndarray], int]:
        """``push`` for one row (a live bar), its values in column order: the
        columns as views of the buffer, in that order, and where the row starts."""
        count = self._count
        offset = history if history < count else count
        if offset >= self.capacity:
            cols, offset = self.push({name: np.array((v,)) for name, v in zip(self._cols, row)}, history)
            return list(cols.values()), offset
        self.append_row(row)
        return self.columns(offset + 1), offset

    def append_row(self, row: Sequence[Any]) -> int:
        """Append one row, its values in column order (scalar writes); return
        how many rows the ring holds."""
        cap = self.capacity
        with self._lock:
            i = self._next
            for dst, value in zip(self._arrays, row):
                dst[i] = dst[i + cap] = value
            self._next = i + 1 if i + 1 < cap else 0
            if self._count < cap:
                self._count += 1
            return self._count

    def columns(self, count: int) -> list[np.ndarray]:
        """The last ``count`` rows of every column, in column order, oldest
        first: views, valid until the next write."""
        end = self._next + self.capacity
        return [dst[end - count : end] for dst in self._arrays]

    def _tail(self, name: str, count: int) -> np.ndarray:
        """The last ``count`` values of a column, oldest first: a view, valid until the next write."""
        end = self._next + self.capacity
        return self._cols[name][end - count : end]

    def snapshot(self, n: int | None = None) -> dict[str, np.ndarray]:
        """Copies of the last ``n`` rows (all if None), consistent with each other."""
        with self._lock:
            count = self._count if n is None else max(0, min(n, self._count))
            return {name: self._tail(name, count).copy() for name in self._cols}

    def push(self, values: Mapping[str, np.ndarray], history: int) -> tuple[dict[str, np.ndarray], int]:
        """Append ``values``; return up to ``history`` earlier rows followed by them,
        and where they start.

        When both fit in the ring (a live bar) the columns are views of the
        buffer, valid until the next write: the one writer reads them before
        it pushes again.
        """
        n = len(next(iter(values.values())))
        offset = min(history, self._count)
        if offset + n <= self.capacity:
            self.extend(values)
            return {name: self._tail(name, offset + n) for name in self._cols}, offset
        past = self.snapshot(history)
        self.extend(values)
        if offset == 0:
            return dict(values), 0
        return {name: np.concatenate((past[name], values[name])) for name in self._cols}, offset


class BarWindow:
    """The last ``capacity`` bars of one symbol."""

    def __init__(self, symbol: str, capacity: int) -> None:
        self.symbol = symbol
        self.capacity = capacity
        self._ring = Ring({name: np.int64 if name == "ts" else np.float64 for name in COLUMNS}, capacity)

    def __len__(self) -> int:
        return len(self._ring)

    def extend(self, chunk: BarChunk) -> None:
        self._ring.extend(_columns(chunk))

    def push(self, chunk: BarChunk, history: int) -> tuple[dict[str, np.ndarray], int]:
        """Store ``chunk``; return up to ``history`` earlier bars followed by it,
        and its offset."""
        if len(chunk.ts) == 1:  # one bar: scalar writes, no per-column dict
            row = (chunk.ts[0], chunk.open[0], chunk.high[0], chunk.low[0], chunk.close[0], chunk.volume[0])
        else:
            return self._ring.push(_columns(chunk), history)
        cols, offset = self._ring.push_row(row, history)
        return dict(zip(COLUMNS, cols)), offset

    def push_bar(self, bar: Bar, history: int) -> int:
        """Store a live bar, its values written as numbers read from it; return
        its offset: how many earlier bars (up to ``history``, below the
        capacity) ``columns(offset + 1)`` shows before it. No array is made
        here: a live bar nobody reads the arrays of makes none."""
        ring, cap = self._ring, self.capacity
        ts, o, h, low, c, v = ring._arrays
        with ring._lock:  # Ring.append_row, unrolled: a loop over six columns costs more than their writes
            i, count = ring._next, ring._count
            ts[i] = ts[i + cap] = bar.ts
            o[i] = o[i + cap] = bar.open
            h[i] = h[i + cap] = bar.high
            low[i] = low[i + cap] = bar.low
            c[i] = c[i + cap] = bar.close
            v[i] = v[i + cap] = bar.volume
            ring._next = i + 1 if i + 1 < cap else 0
            if count < cap:
                ring._count = count + 1
        return min(history, count, cap - 1)

    def columns(self, count: int) -> dict[str, np.ndarray]:
        """The last ``count`` bars, column by column: views, valid until the next write."""
        return dict(zip(COLUMNS, self._ring.columns(count)))


def _columns(chunk: BarChunk) -> dict[str, np.ndarray]:
    return {name: getattr(chunk, name) for name in COLUMNS}


class Series:
    """A growable numpy array (amortised O(1) extend), for per-bar results."""

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

    def extend(self, values: np.ndarray) -> None:
        self._room(len(values))
        self._data[self._n : self._n + len(values)] = values
        self._n += len(values)

    def array(self) -> np.ndarray:
        """The values so far (a view; copy it to keep it past the next append)."""
        return self._data[: self._n]
