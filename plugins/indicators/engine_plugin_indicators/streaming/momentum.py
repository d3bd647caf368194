"""Momentum oscillators, O(1) per bar: RSI, MACD, STOCH (TA-Lib's numbers)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_plugin_indicators.streaming.base import FiniteMemory, O1Indicator, extend_recent
from engine_plugin_indicators.streaming.recurrences import (
    TALIB_MIN,
    RunningMean,
    atr_continue,
    ema_continue,
    fma,
    ordered_sum,
)

if TYPE_CHECKING:
    from engine_plugin_indicators.catalog import TalibKind


def _rsi(gain: float, loss: float) -> float:
    total = gain + loss
    return 100.0 * (gain / total) if total != 0.0 else 0.0


class RsiStream(O1Indicator):
    """TA-Lib's RSI: average gain and loss over the first ``period`` changes,
    then Wilder smoothing of each, in the form TA-Lib's build computes ATR's
    (``fma(avg, w, change * (1 - w))``, ``w = (period - 1) / period``, the
    change 0 for the side that did not move), so that ``update_many`` can
    continue both averages exactly in ``talib.ATR``'s C loop."""

    __slots__ = ("_period", "_gain", "_loss", "_prev", "_v", "_w")

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self._period = p = params["period"]
        self._w = float(p - 1) / float(p)
        self._v = 1.0 - self._w
        self._prev = self._gain = self._loss = 0.0

    def _push(self, x: float) -> None:  # type: ignore[override]
        change, self._prev = x - self._prev, x
        if self._n == 1:
            return
        p = self._period
        if self._n <= p + 1:
            if change < 0:
                self._loss -= change
            else:
                self._gain += change
            if self._n < p + 1:
                return
            self._gain /= p
            self._loss /= p
        elif change < 0:  # fma(avg, w, 0.0) is avg * w rounded once: the product
            self._gain *= self._w
            self._loss = fma(self._loss, self._w, -change * self._v)
        else:
            self._gain = fma(self._gain, self._w, change * self._v)
            self._loss *= self._w
        self._value = (_rsi(self._gain, self._loss),)

    _vectorised = True

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Gains and losses each through ``talib.ATR`` as true ranges (high =
        the move, low = close = 0 gives exactly that true range)."""
        x = columns[0]
        size = len(x)
        out = np.empty(size)
        i = 0
        while i < size:
            if size - i >= TALIB_MIN:
                rest = x[i:]
                change = np.diff(rest, prepend=self._prev)
                zeros = np.zeros(len(rest))
                up = np.where(change < 0, 0.0, change)
                down = np.where(change < 0, -change, 0.0)
                gain = atr_continue(self._gain, 0.0, up, zeros, zeros, self._period)
                loss = atr_continue(self._loss, 0.0, down, zeros, zeros, self._period)
                if gain is not None and loss is not None:
                    total = gain + loss
                    with np.errstate(divide="ignore", invalid="ignore"):
                        out[i:] = np.where(total != 0.0, 100.0 * (gain / total), 0.0)
                    self._gain, self._loss, self._prev = float(gain[-1]), float(loss[-1]), float(x[-1])
                    self._n += size - i
                    break
            self._n += 1  # one exact step in Python, then try again
            self._push(float(x[i]))
            out[i] = self._value[0]
            i += 1
        return (out,)


class MacdStream(O1Indicator):
    """TA-Lib's MACD: both EMAs start at the slow lookback (the fast one seeded
    with the SMA of the ``fast`` values ending there), the signal is an EMA of
    the MACD line seeded with the SMA of its first ``signal`` values."""

    __slots__ = ("_fast", "_fast_ema", "_kf", "_kg", "_ks", "_seed", "_sig", "_signal", "_slow", "_slow_ema")

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        fast, slow = sorted((params["fast"], params["slow"]))  # TA-Lib swaps them too
        self._fast, self._slow, self._signal = fast, slow, params["signal"]
        self._kf, self._ks, self._kg = (2.0 / (p + 1) for p in (fast, slow, self._signal))
        self._seed: deque[float] = deque(maxlen=fast)
        self._fast_ema = self._slow_ema = self._sig = 0.0

    def _push(self, x: float) -> None:  # type: ignore[override]
        n, slow = self._n, self._slow
        if n <= slow:
            self._seed.append(x)
            self._slow_ema += x
            if n < slow:
                return
            self._slow_ema /= slow
            self._fast_ema = ordered_sum(self._seed) / self._fast
        else:
            self._fast_ema = fma(x - self._fast_ema, self._kf, self._fast_ema)
            self._slow_ema = fma(x - self._slow_ema, self._ks, self._slow_ema)
        macd = self._fast_ema - self._slow_ema
        m = n - slow + 1  # MACD values so far
        if m <= self._signal:
            self._sig += macd
            if m < self._signal:
                return
            self._sig /= self._signal
        else:
            self._sig = fma(macd - self._sig, self._kg, self._sig)
        self._value = (macd, self._sig, macd - self._sig)

    _vectorised = True

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        x = columns[0]
        fast = ema_continue(self._fast_ema, x, self._fast, self._kf)
        slow = ema_continue(self._slow_ema, x, self._slow, self._ks)
        macd = fast - slow
        sig = ema_continue(self._sig, macd, self._signal, self._kg)
        self._fast_ema, self._slow_ema, self._sig = float(fast[-1]), float(slow[-1]), float(sig[-1])
        self._n += len(x)
        return (macd, sig, macd - sig)


def _tail(recent: deque[float], count: int) -> np.ndarray:
    """The last ``count`` values of a deque as an array."""
    values = np.fromiter(recent, np.float64, len(recent))
    return values[len(values) - count :]


def _rolling(x: np.ndarray, span: int, pick: Any) -> np.ndarray:
    """``pick`` (np.maximum or np.minimum) over each window of ``span``
    consecutive values of ``x`` (``len(x) - span + 1`` windows), by doubling:
    extremes over windows of 1, 2, 4, ... then two overlapping windows of the
    largest power of two cover ``span``; max and min are exact, so any
    grouping gives the same values."""
    count = len(x) - span + 1
    width, cur = 1, x
    while 2 * width <= span:
        cur = pick(cur[:-width], cur[width:])
        width *= 2
    return pick(cur[:count], cur[span - width : span - width + count])


class StochStream(FiniteMemory):
    """Slow stochastic: %K over rolling high/low (monotonic deques), then two
    SMAs; O(1) for the default SMA smoothing (matype 0) only."""

    __slots__ = ("_highs", "_lows", "_slowd", "_slowk", "_span")

    @classmethod
    def supports(cls, params: Mapping[str, Any]) -> bool:
        return params["slowk_matype"] == 0 and params["slowd_matype"] == 0

    def _reset(self) -> None:
        p = self._params
        self._highs: deque[tuple[int, float]] = deque()
        self._lows: deque[tuple[int, float]] = deque()
        self._slowk = RunningMean(p["slowk_period"])
        self._slowd = RunningMean(p["slowd_period"])
        self._span = p["fastk_period"]

    def _extremes(self, high: float, low: float) -> None:
        """Keep the monotonic deques of the last ``span`` highs and lows."""
        n, span = self._n, self._span
        highs, lows = self._highs, self._lows
        while highs and highs[-1][1] <= high:
            highs.pop()
        highs.append((n, high))
        while lows and lows[-1][1] >= low:
            lows.pop()
        lows.append((n, low))
        if highs[0][0] <= n - span:
            highs.popleft()
        if lows[0][0] <= n - span:
            lows.popleft()

    def _step(self, high: float, low: float, close: float) -> None:  # type: ignore[override]
        self._extremes(high, low)
        if self._n < self._span:
            return
        highs, lows = self._highs, self._lows
        lowest = lows[0][1]
        diff = highs[0][1] - lowest  # TA-Lib's build: (close - lowest) / diff * 100
        slowk = self._slowk.push((close - lowest) / diff * 100.0 if diff != 0.0 else 0.0)
        if not math.isnan(slowk):
            slowd = self._slowd.push(slowk)
            if not math.isnan(slowd):
                self._value = (slowk, slowd)

    _vectorised = True

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Rolling extremes over the chunk (exact whatever the method), %K
        with the same operations as ``_step``, then both running means
        vectorised; the monotonic deques are rebuilt from the last bars."""
        high, low, close = columns
        size = len(high)
        span = self._span
        highs = np.concatenate((_tail(self._recent[0], span - 1), high))
        lows = np.concatenate((_tail(self._recent[1], span - 1), low))
        highest = _rolling(highs, span, np.maximum)
        lowest = _rolling(lows, span, np.minimum)
        diff = highest - lowest
        with np.errstate(divide="ignore", invalid="ignore"):
            fastk = np.where(diff != 0.0, (close - lowest) / diff * 100.0, 0.0)
        slowk = self._slowk.bulk(fastk)
        slowd = self._slowd.bulk(slowk)
        for recent, col in zip(self._recent, columns):
            extend_recent(recent, col)
        n = self._n + size
        self._highs.clear()
        self._lows.clear()
        self._n = n - span
        for h, lo in zip(highs[-span:].tolist(), lows[-span:].tolist()):
            self._n += 1
            self._extremes(h, lo)
        return (slowk, slowd)
