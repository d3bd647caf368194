"""Volatility, O(1) per bar: ATR and Bollinger Bands (TA-Lib's numbers)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_plugin_indicators.streaming.base import FiniteMemory, O1Indicator, extend_recent
from engine_plugin_indicators.streaming.recurrences import (
    TALIB_MIN,
    RunningMean,
    atr_continue,
    fma,
    ordered_sum,
)

if TYPE_CHECKING:
    from engine_plugin_indicators.catalog import TalibKind


class AtrStream(O1Indicator):
    """TA-Lib's ATR: the SMA of the first ``period`` true ranges (the first bar
    has none), then Wilder smoothing as TA-Lib's build computes it:
    ``fma(atr, w, tr * (1 - w))`` with ``w = (period - 1) / period``."""

    __slots__ = ("_period", "_atr", "_close", "_v", "_w")

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self._period = p = params["period"]
        self._w = float(p - 1) / float(p)
        self._v = 1.0 - self._w
        self._close = self._atr = 0.0

    def _push(self, high: float, low: float, close: float) -> None:  # type: ignore[override]
        prev, self._close = self._close, close
        if self._n == 1:
            return
        tr = max(high - low, abs(prev - high), abs(prev - low))
        p = self._period
        if self._n <= p + 1:
            self._atr += tr
            if self._n < p + 1:
                return
            self._atr /= p
        else:
            self._atr = fma(self._atr, self._w, tr * self._v)
        self._value = (self._atr,)

    _vectorised = True

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """TA-Lib's ATR continued in its own C loop: ``period + 1`` seed bars
        whose true ranges are ``[z, 0, ..., 0]`` with ``z / period == atr``
        exactly (TA-Lib's initial SMA), the last closing at the real previous
        close; the bars of the chunk follow. Where no such ``z`` exists one
        exact Python step moves the state on first."""
        high, low, close = columns
        size = len(high)
        out = np.empty(size)
        i = 0
        while i < size:
            if size - i >= TALIB_MIN:
                rest = atr_continue(self._atr, self._close, high[i:], low[i:], close[i:], self._period)
                if rest is not None:
                    out[i:] = rest
                    self._atr, self._close = float(out[-1]), float(close[-1])
                    self._n += size - i
                    break
            self._n += 1  # one exact step in Python, then try again
            self._push(float(high[i]), float(low[i]), float(close[i]))
            out[i] = self._atr
            i += 1
        return (out,)


def _accumulate_rows(grid: np.ndarray) -> None:
    """``np.cumsum(grid, axis=0)`` in place: the same sequential additions
    down each column, but one vectorised row add at a time (numpy's
    accumulate does not vectorise across columns, so this is faster once
    rows are long)."""
    if grid.shape[1] < 64:
        np.cumsum(grid, axis=0, out=grid)
        return
    for i in range(1, grid.shape[0]):
        np.add(grid[i - 1], grid[i], out=grid[i])


class BbandsStream(FiniteMemory):
    """Bollinger Bands over TA-Lib's SMA with population stddev; O(1) for
    matype 0 only.

    TA-Lib (0.6+) computes the deviation without the cancellation of a naive
    sum of squares (a flat window gives exactly 0), so the variance here comes
    from running sums of deviations from an anchor near the prices, re-anchored
    every ``period`` bars (amortised O(1)), and is exactly 0 on a flat window.
    """

    __slots__ = ("_anchor", "_dn", "_mean", "_s1", "_s2", "_same", "_up")

    @classmethod
    def supports(cls, params: Mapping[str, Any]) -> bool:
        return params["matype"] == 0

    def _reset(self) -> None:
        self._mean = RunningMean(self._params["period"])
        self._anchor: float | None = None
        self._s1 = self._s2 = 0.0
        self._same = 0  # bars in a row equal to the previous one, plus one
        self._up, self._dn = self._params["nbdevup"], self._params["nbdevdn"]

    def _step(self, x: float) -> None:  # type: ignore[override]
        window = self._recent[0]
        period = self._lookback + 1
        self._same = self._same + 1 if len(window) > 1 and window[-2] == x else 1
        if self._anchor is None:
            self._anchor = x
        d = x - self._anchor
        self._s1 += d
        self._s2 += d * d
        mean = self._mean.push(x)
        if self._n < period:
            return
        std = 0.0
        if self._same < period:
            dm = self._s1 / period
            variance = self._s2 / period - dm * dm
            std = math.sqrt(variance) if variance > 0.0 else 0.0
        old = window[0] - self._anchor
        self._s1 -= old
        self._s2 -= old * old
        if self._n % period == 0:
            self._anchor = x
            kept = [v - x for v in list(window)[1:]]
            self._s1 = ordered_sum(kept)
            self._s2 = ordered_sum(v * v for v in kept)
        self._value = (mean + std * self._up, mean, mean - std * self._dn)

    _vectorised = True

    BLOCK = 8192  # bars per vectorised pass: keeps the temporaries small and cached

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        x = columns[0]
        if len(x) <= self.BLOCK:
            return self._bulk_block(x)
        parts = [self._bulk_block(x[i : i + self.BLOCK]) for i in range(0, len(x), self.BLOCK)]
        return tuple(np.concatenate(p) for p in zip(*parts))

    def _bulk_block(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """``_step`` vectorised with the same operations in the same order.

        Between re-anchorings (bar counts that are multiples of ``period``)
        each deviation sum is a sequential accumulate: the segment the chunk
        starts in over ``[s, d0, -old0, d1, -old1, ...]``, each later one as a
        column ``[kept..., d0, -old0, ...]`` of a grid accumulated down its
        columns, where ``kept`` are the ``period - 1`` values the re-anchoring
        sums. Chunks go in blocks of ``BLOCK`` bars (larger temporaries cost
        page faults on every call)."""
        size = len(x)
        p = self._lookback + 1
        n0 = self._n
        # the state is ready (``_bulk`` continues a ready state), so its first bar set the anchor
        assert self._anchor is not None
        window = self._recent[0]
        full = np.concatenate((np.fromiter(window, np.float64, p), x))
        mean = self._mean.bulk(x)
        # bars in a row equal to the one before, plus one
        j = np.arange(size)
        reset = np.where(full[p:] != full[p - 1 : -1], j, -1)
        last = np.maximum.accumulate(reset)
        same = np.where(last >= 0, j - last + 1, self._same + j + 1)
        # the anchor of each bar: x at the last multiple of p before its count
        counts = n0 + 1 + j
        at = (counts - 1) // p * p  # count of the anchoring bar
        anchor = np.where(at > n0, full[np.maximum(at - n0 + p - 1, 0)], self._anchor)
        d = x - anchor
        old = full[1 : size + 1] - anchor
        first = min(size, (n0 // p + 1) * p - n0)  # bars up to the next re-anchoring
        s1 = np.empty(size)
        s2 = np.empty(size)
        end = []
        for out, state, plus, minus in ((s1, self._s1, d, old), (s2, self._s2, d * d, old * old)):
            seq = np.empty(2 * first + 1)
            seq[0] = state
            seq[1::2] = plus[:first]
            np.negative(minus[:first], out=seq[2::2])
            sums = np.cumsum(seq)
            out[:first] = sums[1::2]
            end.append(float(sums[-1]))
        if first < size:
            rows = -(-(size - first) // p)
            starts = first - 1 + p * np.arange(rows)  # the re-anchoring bars
            anchors = x[starts]
            # one column per segment (s1's, then s2's): running down the
            # columns adds each segment's terms in order, vectorised across them
            kept = full[np.arange(p - 1)[:, None] + (starts + 2)[None, :]] - anchors[None, :]
            tail = size - first
            grid = np.empty((3 * p - 1, 2 * rows))
            grid[: p - 1, :rows] = kept
            np.multiply(kept, kept, out=grid[: p - 1, rows:])
            terms = np.zeros((4, rows * p))
            terms[0, :tail] = d[first:]
            np.negative(old[first:], out=terms[1, :tail])
            np.multiply(terms[0, :tail], terms[0, :tail], out=terms[2, :tail])
            np.multiply(old[first:], old[first:], out=terms[3, :tail])
            np.negative(terms[3, :tail], out=terms[3, :tail])
            grid[p - 1 :: 2, :rows] = terms[0].reshape(rows, p).T
            grid[p::2, :rows] = terms[1].reshape(rows, p).T
            grid[p - 1 :: 2, rows:] = terms[2].reshape(rows, p).T
            grid[p::2, rows:] = terms[3].reshape(rows, p).T
            _accumulate_rows(grid)
            last_row, last_col = p + 2 * ((tail - 1) % p), rows - 1
            s1[first:] = grid[p - 1 :: 2, :rows].T.ravel()[:tail]
            s2[first:] = grid[p - 1 :: 2, rows:].T.ravel()[:tail]
            end = [float(grid[last_row, last_col]), float(grid[last_row, rows + last_col])]
        dm = s1 / p
        variance = s2 / p - dm * dm
        std = np.sqrt(np.where(variance > 0.0, variance, 0.0))
        std[same >= p] = 0.0
        self._s1, self._s2 = end
        self._same = int(same[-1])
        self._anchor = float(anchor[-1])
        extend_recent(window, x)
        self._n = n = n0 + size
        if n % p == 0:  # the last bar re-anchors
            self._anchor = xl = float(x[-1])
            kept_last = [v - xl for v in list(window)[1:]]
            self._s1 = ordered_sum(kept_last)
            self._s2 = ordered_sum(v * v for v in kept_last)
        return (mean + std * self._up, mean, mean - std * self._dn)
