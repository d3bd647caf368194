"""Per-symbol windowed storage: a fixed-size, numpy-backed ring buffer.

Each bar is written twice, at ``i`` and ``i + capacity`` of a buffer twice
the capacity, so the last bars are always one contiguous slice: reading the
window needs no copy and no wrap-around. Appending is O(1) per bar and the
buffer never grows. ``Ring.snapshot`` returns copies, so a reader on
another thread never sees a half-written bar.

Rows appended one at a time (live bars, and the indicators' outputs at
each) are written behind: they wait in a list until something reads the
columns, or ``WRITE_BEHIND`` of them have come, and are then written
together. A live bar whose arrays nobody reads (a Lua strategy reads the
bar's numbers) so touches none of the buffers' memory, which idle time
between bursts has evicted from the caches (``bench/cold_bar.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine_core.model import Bar, BarChunk

COLUMNS = ("ts", "open", "high", "low", "close", "volume")
WRITE_BEHIND = 64  # rows appended one at a time that wait before they are written together
SCALAR_ROWS = 16  # fewer rows waiting than this are written value by value


class Ring:
    """Named columns keeping their last ``capacity`` rows (thread-safe writes and copies)."""

    __slots__ = ("capacity", "_cols", "_arrays", "_next", "_count", "_rows", "_lock")

    def __init__(self, dtypes: Mapping[str, Any], capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._cols = {name: np.zeros(2 * capacity, dtype=dtype) for name, dtype in dtypes.items()}
        self._arrays = tuple(self._cols.values())  # the buffers in column order (the one-row path)
        self._next = 0  # ring position the next row is written at
        self._count = 0  # rows held, those waiting to be written included
        self._rows: list[Sequence[Any]] = []  # rows appended, not written yet (oldest first)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def extend(self, values: Mapping[str, np.ndarray]) -> None:
        """Append rows: one array per column, all of the same length."""
        n = len(next(iter(values.values())))
        if n == 0:
            return
        with self._lock:
            self._write_rows()  # the rows appended before come first
            self._write([values[name] for name in self._cols], n)
            self._count = min(self._count + n, self.capacity)

    def _write(self, columns: Sequence[Any], n: int) -> None:
        """Write ``n`` rows, given column by column in column order, at the
        ring's position (the lock held; the count is the caller's). Rows
        appended one at a time are written value by value (``_write_rows``)."""
        cap = self.capacity
        i = self._next
        if n >= cap:
            for dst, src in zip(self._arrays, columns):
                tail = src[n - cap :]
                dst[:cap] = tail
                dst[cap:] = tail
            i = -n  # lands _next on 0 below
        else:
            first = min(n, cap - i)
            for dst, src in zip(self._arrays, columns):
                dst[i : i + first] = src[:first]
                dst[i + cap : i + cap + first] = src[:first]
                dst[: n - first] = src[first:]
                dst[cap : cap + n - first] = src[first:]
        self._next = (i + n) % cap

    def _write_rows(self) -> None:
        """Write the rows waiting (``append_row``), the lock held."""
        rows = self._rows
        if not rows:
            return
        self._rows = []
        n = len(rows)
        if n < SCALAR_ROWS:  # a few rows: scalar writes cost less than making arrays of them
            cap, i = self.capacity, self._next
            arrays = self._arrays
            for row in rows:
                for dst, value in zip(arrays, row):
                    dst[i] = dst[i + cap] = value
                i = i + 1 if i + 1 < cap else 0
            self._next = i
        else:
            self._write([np.array(c, dtype=a.dtype) for a, c in zip(self._arrays, zip(*rows))], n)

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
        """Append one row, its values in column order; return how many rows
        the ring holds. The row is written when the columns are next read,
        or with the ``WRITE_BEHIND`` rows appended after it."""
        with self._lock:
            rows = self._rows
            rows.append(row)
            if len(rows) >= WRITE_BEHIND:
                self._write_rows()
            count = self._count
            if count < self.capacity:
                count = self._count = count + 1
            return count

    def columns(self, count: int) -> list[np.ndarray]:
        """The last ``count`` rows of every column, in column order, oldest
        first: views, valid until the next write."""
        if self._rows:
            with self._lock:
                self._write_rows()
        end = self._next + self.capacity
        return [dst[end - count : end] for dst in self._arrays]

    def _tail(self, name: str, count: int) -> np.ndarray:
        """The last ``count`` values of a column, oldest first: a view, valid
        until the next write (the rows waiting written, the lock held)."""
        self._write_rows()
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
            with self._lock:
                return {name: self._tail(name, offset + n) for name in self._cols}, offset
        past = self.snapshot(history)
        self.extend(values)
        if offset == 0:
            return dict(values), 0
        return {name: np.concatenate((past[name], values[name])) for name in self._cols}, offset


class BarWindow:
    """The last ``capacity`` bars of one symbol."""

    __slots__ = ("symbol", "capacity", "_ring")

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
        """Store a live bar (written behind: ``Ring.append_row``); return its
        offset: how many earlier bars (up to ``history``, below the capacity)
        ``columns(offset + 1)`` shows before it. No array is made or written
        here: a live bar nobody reads the arrays of touches none."""
        count = self._ring.append_row((bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume)) - 1
        return min(history, count, self.capacity - 1)

    def columns(self, count: int) -> dict[str, np.ndarray]:
        """The last ``count`` bars, column by column: views, valid until the next write."""
        return dict(zip(COLUMNS, self._ring.columns(count)))


def _columns(chunk: BarChunk) -> dict[str, np.ndarray]:
    return {name: getattr(chunk, name) for name in COLUMNS}


class Series:
    """A growable numpy array (amortised O(1) extend), for per-bar results."""

    __slots__ = ("_data", "_n")

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

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._data.dtype

    def clear(self) -> None:
        """Empty (the capacity kept)."""
        self._n = 0
