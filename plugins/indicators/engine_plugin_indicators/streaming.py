"""O(1) streaming indicators with their own incremental state.

Each follows TA-Lib's C code step by step (same seeding, same order of
floating-point operations), so ``update`` reproduces TA-Lib's numbers.
``update_many`` feeds bars one by one until the indicator is ready, then
continues vectorised: indicators with finite memory (SMA, WMA, BBANDS,
STOCH) call TA-Lib on the last lookback bars plus the chunk and rebuild
their state from the chunk's tail; recursive ones (EMA, RSI, ATR, MACD)
continue their state with :func:`ema_continue`; VWAP keeps running totals.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import talib

from engine_plugin_indicators.base import NAN, FedIndicator

if TYPE_CHECKING:
    from engine_plugin_indicators.catalog import TalibKind


def ema_continue(prev: float, x: np.ndarray, period: int) -> np.ndarray:
    """EMA with k = 2 / (period + 1) of ``x``, continuing from the state ``prev``.

    TA-Lib seeds its EMA with the SMA of the first ``period`` values, so
    ``period`` copies of ``prev`` put it in exactly that state (to an ulp).
    Wilder smoothing (k = 1 / n) is this with period 2n - 1.
    """
    return talib.EMA(np.concatenate((np.full(period, prev), x)), period)[period:]


def _ordered_sum(values: Any) -> float:
    """Left-to-right sum, as TA-Lib's loops add (``sum`` may compensate)."""
    total = 0.0
    for v in values:
        total += v
    return total


class O1Indicator(FedIndicator):
    """Base of the O(1) indicators: ``_push`` takes one bar's input values
    after ``self._n`` was counted; ``_bulk`` continues over ready columns."""

    @classmethod
    def supports(cls, params: Mapping[str, Any]) -> bool:
        """Whether these parameters have an O(1) form (else the window wrapper)."""
        return True

    def update(self, bar: Any) -> None:
        values = self._get(bar)
        for v in values:
            if math.isnan(v):
                self._read(bar)  # raises, naming the column
        self._n += 1
        self._push(*values)

    def update_many(self, bars: Any) -> tuple[np.ndarray, ...]:
        columns = self._read_chunk(bars)
        size = len(columns[0])
        outs = [np.full(size, NAN) for _ in self.spec.outputs]
        i = 0
        while i < size and not self.ready:
            self._n += 1
            self._push(*[float(c[i]) for c in columns])
            for out, v in zip(outs, self._value):
                out[i] = v
            i += 1
        if i < size:
            for out, values in zip(outs, self._bulk([c[i:] for c in columns])):
                out[i:] = values
            self._value = tuple(float(out[-1]) for out in outs)
        return tuple(outs)

    def _push(self, *values: float) -> None:
        raise NotImplementedError

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Outputs for bars that follow a ready state; advances the state."""
        raise NotImplementedError


class _FiniteMemory(O1Indicator):
    """An indicator whose output depends only on the last lookback + 1 bars."""

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self._recent = [deque(maxlen=self._lookback + 1) for _ in kind.columns]
        self._appends = [recent.append for recent in self._recent]
        self._reset()

    def _reset(self) -> None:
        """Start the running state afresh (as TA-Lib does at the start of an array)."""

    def _push(self, *values: float) -> None:
        for append, v in zip(self._appends, values):
            append(v)
        self._step(*values)

    def _step(self, *values: float) -> None:
        raise NotImplementedError

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        span = self._lookback + 1
        full = [np.concatenate((np.fromiter(r, np.float64, span)[1:], c)) for r, c in zip(self._recent, columns)]
        outs = self._kind.call(full, self._params)
        seen = self._n + len(columns[0])
        self._reset()
        self._n = 0
        for values in zip(*[f[-span:].tolist() for f in full]):
            self._n += 1
            self._push(*values)
        self._n = seen
        return tuple(o[self._lookback :] for o in outs)


class _RunningMean:
    """TA-Lib's SMA recurrence: add the new value, divide, drop the oldest."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.window: deque[float] = deque(maxlen=period)
        self.total = 0.0

    def push(self, x: float) -> float:
        """The mean of the last ``period`` values, NaN before there are that many."""
        window = self.window
        window.append(x)
        self.total += x
        if len(window) < self.period:
            return NAN
        mean = self.total / self.period
        self.total -= window[0]
        return mean


class SmaStream(_FiniteMemory):
    def _reset(self) -> None:
        self._mean = _RunningMean(self._params["period"])

    def _step(self, x: float) -> None:  # type: ignore[override]
        self._value = (self._mean.push(x),)


class WmaStream(_FiniteMemory):
    """TA-Lib's WMA: a running sum and a running weighted sum."""

    def _reset(self) -> None:
        period = self._params["timeperiod"]
        self._divider = float(period * (period + 1) // 2)
        self._sub = self._sum = self._trailing = 0.0

    def _step(self, x: float) -> None:  # type: ignore[override]
        period = self._lookback + 1
        if self._n < period:
            self._sub += x
            self._sum += x * self._n
            return
        self._sub += x
        self._sub -= self._trailing
        self._sum += x * period
        self._trailing = self._recent[0][0]
        self._value = (self._sum / self._divider,)
        self._sum -= self._sub


class BbandsStream(_FiniteMemory):
    """Bollinger Bands over TA-Lib's SMA with population stddev; O(1) for
    matype 0 only.

    TA-Lib (0.6+) computes the deviation without the cancellation of a naive
    sum of squares (a flat window gives exactly 0), so the variance here comes
    from running sums of deviations from an anchor near the prices, re-anchored
    every ``period`` bars (amortised O(1)), and is exactly 0 on a flat window.
    """

    @classmethod
    def supports(cls, params: Mapping[str, Any]) -> bool:
        return params["matype"] == 0

    def _reset(self) -> None:
        self._mean = _RunningMean(self._params["period"])
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
            self._s1 = _ordered_sum(kept)
            self._s2 = _ordered_sum(v * v for v in kept)
        self._value = (mean + std * self._up, mean, mean - std * self._dn)


class StochStream(_FiniteMemory):
    """Slow stochastic: %K over rolling high/low (monotonic deques), then two
    SMAs; O(1) for the default SMA smoothing (matype 0) only."""

    @classmethod
    def supports(cls, params: Mapping[str, Any]) -> bool:
        return params["slowk_matype"] == 0 and params["slowd_matype"] == 0

    def _reset(self) -> None:
        p = self._params
        self._highs: deque[tuple[int, float]] = deque()
        self._lows: deque[tuple[int, float]] = deque()
        self._slowk = _RunningMean(p["slowk_period"])
        self._slowd = _RunningMean(p["slowd_period"])
        self._span = p["fastk_period"]

    def _step(self, high: float, low: float, close: float) -> None:  # type: ignore[override]
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
        if n < span:
            return
        lowest = lows[0][1]
        diff = (highs[0][1] - lowest) / 100.0
        slowk = self._slowk.push((close - lowest) / diff if diff != 0.0 else 0.0)
        if not math.isnan(slowk):
            slowd = self._slowd.push(slowk)
            if not math.isnan(slowd):
                self._value = (slowk, slowd)


class EmaStream(O1Indicator):
    """TA-Lib's EMA: seeded with the SMA of the first ``period`` values."""

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self._period = params["period"]
        self._k = 2.0 / (self._period + 1)
        self._ema = 0.0

    def _push(self, x: float) -> None:  # type: ignore[override]
        if self._n <= self._period:
            self._ema += x  # the seed's running sum
            if self._n == self._period:
                self._ema /= self._period
                self._value = (self._ema,)
            return
        self._ema = (x - self._ema) * self._k + self._ema
        self._value = (self._ema,)

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        out = ema_continue(self._ema, columns[0], self._period)
        self._ema = float(out[-1])
        self._n += len(out)
        return (out,)


def _rsi(gain: float, loss: float) -> float:
    total = gain + loss
    return 100.0 * (gain / total) if total != 0.0 else 0.0


class RsiStream(O1Indicator):
    """TA-Lib's RSI: average gain and loss over the first ``period`` changes,
    then Wilder smoothing."""

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self._period = params["period"]
        self._prev = self._gain = self._loss = 0.0

    def _push(self, x: float) -> None:  # type: ignore[override]
        change, self._prev = x - self._prev, x
        if self._n == 1:
            return
        p = self._period
        seeding = self._n <= p + 1
        if not seeding:
            self._gain *= p - 1
            self._loss *= p - 1
        if change < 0:
            self._loss -= change
        else:
            self._gain += change
        if seeding and self._n < p + 1:
            return
        self._gain /= p
        self._loss /= p
        self._value = (_rsi(self._gain, self._loss),)

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        x = columns[0]
        change = np.diff(x, prepend=self._prev)
        wilder = 2 * self._period - 1
        gain = ema_continue(self._gain, np.maximum(change, 0.0), wilder)
        loss = ema_continue(self._loss, np.maximum(-change, 0.0), wilder)
        total = gain + loss
        out = np.divide(100.0 * gain, total, out=np.zeros_like(total), where=total != 0.0)
        self._prev, self._gain, self._loss = float(x[-1]), float(gain[-1]), float(loss[-1])
        self._n += len(x)
        return (out,)


class AtrStream(O1Indicator):
    """TA-Lib's ATR: the SMA of the first ``period`` true ranges (the first bar
    has none), then Wilder smoothing."""

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self._period = params["timeperiod"]
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
        else:
            self._atr *= p - 1
            self._atr += tr
        self._atr /= p
        self._value = (self._atr,)

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        high, low, close = columns
        prev = np.concatenate(([self._close], close[:-1]))
        tr = np.maximum(high - low, np.maximum(np.abs(prev - high), np.abs(prev - low)))
        out = ema_continue(self._atr, tr, 2 * self._period - 1)
        self._close, self._atr = float(close[-1]), float(out[-1])
        self._n += len(out)
        return (out,)


class MacdStream(O1Indicator):
    """TA-Lib's MACD: both EMAs start at the slow lookback (the fast one seeded
    with the SMA of the ``fast`` values ending there), the signal is an EMA of
    the MACD line seeded with the SMA of its first ``signal`` values."""

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
            self._fast_ema = _ordered_sum(self._seed) / self._fast
        else:
            self._fast_ema = (x - self._fast_ema) * self._kf + self._fast_ema
            self._slow_ema = (x - self._slow_ema) * self._ks + self._slow_ema
        macd = self._fast_ema - self._slow_ema
        m = n - slow + 1  # MACD values so far
        if m <= self._signal:
            self._sig += macd
            if m < self._signal:
                return
            self._sig /= self._signal
        else:
            self._sig = (macd - self._sig) * self._kg + self._sig
        self._value = (macd, self._sig, macd - self._sig)

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        x = columns[0]
        fast = ema_continue(self._fast_ema, x, self._fast)
        slow = ema_continue(self._slow_ema, x, self._slow)
        macd = fast - slow
        sig = ema_continue(self._sig, macd, self._signal)
        self._fast_ema, self._slow_ema, self._sig = float(fast[-1]), float(slow[-1]), float(sig[-1])
        self._n += len(x)
        return (macd, sig, macd - sig)


class VwapStream(O1Indicator):
    """Volume-weighted average typical price since the first bar: two running
    totals (a bounded window can never reproduce it)."""

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self._pv = self._v = 0.0

    def _push(self, high: float, low: float, close: float, volume: float) -> None:  # type: ignore[override]
        self._pv += (high + low + close) / 3.0 * volume
        self._v += volume
        self._value = (self._pv / self._v if self._v != 0.0 else NAN,)

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        high, low, close, volume = columns
        pv = self._pv + np.cumsum((high + low + close) / 3.0 * volume)
        v = self._v + np.cumsum(volume)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = pv / v
        self._pv, self._v = float(pv[-1]), float(v[-1])
        self._n += len(out)
        return (out,)


O1_CLASSES: dict[str, type[O1Indicator]] = {
    "SMA": SmaStream,
    "EMA": EmaStream,
    "WMA": WmaStream,
    "RSI": RsiStream,
    "MACD": MacdStream,
    "BBANDS": BbandsStream,
    "ATR": AtrStream,
    "STOCH": StochStream,
    "VWAP": VwapStream,
}
