"""A symbol's bars as at most a few thousand candlesticks, kept while it
runs: the report writes them to ``candles.csv`` (:mod:`engine_core.report.candles`),
and the dashboard draws a report's trades on them.

:class:`Candles` is fed every bar the symbol's worker processes, in chunks of
any length, and keeps between ``max_candles / 2`` and ``max_candles``
candles: each holds ``size`` consecutive bars (a power of two, counted from
the symbol's first bar), and when they would be more than ``max_candles``,
pairs of neighbours merge into one and ``size`` doubles. The candles kept
depend only on the bars, not on how they were cut into chunks, and memory
stays bounded however long the run. A chunk costs a few numpy reductions; a
single bar (live, or a backtest stepped bar by bar) a few float comparisons.
"""

from __future__ import annotations

import numpy as np

MAX_CANDLES = 2000


class Candles:
    __slots__ = ("max", "size", "t", "o", "h", "l", "c", "_n", "_pt", "_po", "_ph", "_pl", "_pc")

    def __init__(self, max_candles: int = MAX_CANDLES) -> None:
        self.max = max_candles
        self.size = 1  # bars per candle
        self.t: list[int] = []  # complete candles: the time of the first bar, open, high, low, close
        self.o: list[float] = []
        self.h: list[float] = []
        self.l: list[float] = []  # noqa: E741 - low, as o, h and c
        self.c: list[float] = []
        self._n = 0  # bars in the candle being filled
        self._pt = 0
        self._po = self._ph = self._pl = self._pc = 0.0

    def add(self, ts: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray) -> None:
        """Feed consecutive bars (columns of equal length)."""
        n = len(ts)
        if n < 8:
            for k in range(n):
                self.bar(int(ts[k]), float(o[k]), float(h[k]), float(low[k]), float(c[k]))
            return
        i = self._fill(ts, o, h, low, c, 0)
        while len(self.t) + (n - i) // self.size > self.max:
            self._halve()
            i = self._fill(ts, o, h, low, c, i)
        size = self.size
        whole = (n - i) // size
        if whole:
            end = i + whole * size
            starts = np.arange(i, end, size)
            self.t.extend(ts[starts].tolist())
            self.o.extend(o[starts].tolist())
            self.h.extend(np.maximum.reduceat(h[i:end], starts - i).tolist())
            self.l.extend(np.minimum.reduceat(low[i:end], starts - i).tolist())
            self.c.extend(c[starts + size - 1].tolist())
            i = end
        if i < n:
            self._pt, self._po, self._pc = int(ts[i]), float(o[i]), float(c[n - 1])
            self._ph, self._pl = float(h[i:].max()), float(low[i:].min())
            self._n = n - i

    def bar(self, ts: int, o: float, h: float, low: float, c: float) -> None:
        """Feed one bar."""
        if self._n == 0:
            self._pt, self._po, self._ph, self._pl = ts, o, h, low
        else:
            if h > self._ph:
                self._ph = h
            if low < self._pl:
                self._pl = low
        self._pc = c
        self._n += 1
        if self._n == self.size:
            self._close()
            if len(self.t) > self.max:
                self._halve()

    def _fill(self, ts: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, i: int) -> int:
        """Complete the candle being filled from bars ``i``...; the first bar not used."""
        if self._n == 0 or i >= len(ts):
            return i
        take = min(self.size - self._n, len(ts) - i)
        self._ph = max(self._ph, float(h[i : i + take].max()))
        self._pl = min(self._pl, float(low[i : i + take].min()))
        self._pc = float(c[i + take - 1])
        self._n += take
        if self._n == self.size:
            self._close()
        return i + take

    def _close(self) -> None:
        self.t.append(self._pt)
        self.o.append(self._po)
        self.h.append(self._ph)
        self.l.append(self._pl)
        self.c.append(self._pc)
        self._n = 0

    def _halve(self) -> None:
        """Merge neighbouring candles in pairs: ``size`` doubles. An odd last
        candle becomes the start of the candle being filled."""
        if len(self.t) % 2:
            t, o, h, low, c = self.t.pop(), self.o.pop(), self.h.pop(), self.l.pop(), self.c.pop()
            if self._n:
                h, low, c = max(h, self._ph), min(low, self._pl), self._pc
            self._pt, self._po, self._ph, self._pl, self._pc = t, o, h, low, c
            self._n += self.size
        hs, ls = self.h, self.l
        self.t, self.o, self.c = self.t[0::2], self.o[0::2], self.c[1::2]
        self.h = [a if a > b else b for a, b in zip(hs[0::2], hs[1::2])]
        self.l = [a if a < b else b for a, b in zip(ls[0::2], ls[1::2])]
        self.size *= 2

    def candles(self) -> tuple[np.ndarray, ...]:
        """``(ts, open, high, low, close, bars)`` of every candle, the last one
        possibly holding fewer than ``size`` bars."""
        t, o, h, low, c = list(self.t), list(self.o), list(self.h), list(self.l), list(self.c)
        bars = [self.size] * len(t)
        if self._n:
            t.append(self._pt)
            o.append(self._po)
            h.append(self._ph)
            low.append(self._pl)
            c.append(self._pc)
            bars.append(self._n)
        return (
            np.asarray(t, dtype=np.int64),
            *(np.asarray(x, dtype=np.float64) for x in (o, h, low, c)),
            np.asarray(bars, dtype=np.int64),
        )
