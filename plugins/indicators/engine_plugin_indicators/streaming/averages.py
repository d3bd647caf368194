"""Moving averages, O(1) per bar: SMA, EMA, WMA (TA-Lib's numbers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_plugin_indicators.streaming.base import FiniteMemory, O1Indicator, extend_recent
from engine_plugin_indicators.streaming.recurrences import (
    RunningMean,
    ema_continue,
    fma,
)

if TYPE_CHECKING:
    from engine_plugin_indicators.catalog import TalibKind


class SmaStream(O1Indicator):
    """TA-Lib's SMA: one running sum from the first bar (add the new value,
    divide, subtract the oldest); the running mean keeps the window.
    ``update_many`` runs the same additions in the same order through
    ``np.cumsum`` (a strictly sequential accumulate) over
    ``[total, x0, -old0, x1, -old1, ...]``."""

    __slots__ = ("_mean",)

    _vectorised = True

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self._mean = RunningMean(params["period"])

    def _push(self, x: float) -> None:  # type: ignore[override]
        self._value = (self._mean.push(x),)

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        x = columns[0]
        out = self._mean.bulk(x)
        self._n += len(x)
        return (out,)


class EmaStream(O1Indicator):
    """TA-Lib's EMA: seeded with the SMA of the first ``period`` values (summed
    in order, then divided), then ``fma(x - ema, k, ema)``, k = 2 / (period + 1)."""

    __slots__ = ("_period", "_k", "_ema")

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
        self._ema = fma(x - self._ema, self._k, self._ema)
        self._value = (self._ema,)

    _vectorised = True

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        x = columns[0]
        out = ema_continue(self._ema, x, self._period, self._k)
        self._ema = float(out[-1])
        self._n += len(x)
        return (out,)


class WmaStream(FiniteMemory):
    """TA-Lib's WMA: a running sum and a running weighted sum."""

    __slots__ = ("_divider", "_sub", "_sum", "_trailing")

    def _reset(self) -> None:
        period = self._params["period"]
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

    _vectorised = True

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """The two running sums through ``np.cumsum`` in ``_step``'s order:
        ``sub`` over ``[sub, x0, -t0, x1, -t1, ...]`` and ``sum`` over
        ``[sum, x0 * period, -sub0, x1 * period, -sub1, ...]``, where ``t`` is
        the trailing value (the oldest of the window before each bar)."""
        x = columns[0]
        size = len(x)
        recent = self._recent[0]
        period = self._lookback + 1
        full = np.concatenate((np.fromiter(recent, np.float64, len(recent)), x))
        seq = np.empty(2 * size + 1)
        seq[0] = self._sub
        seq[1::2] = x
        seq[2] = -self._trailing
        np.negative(full[1:size], out=seq[4::2])
        subs = np.cumsum(seq)[2::2]
        seq[0] = self._sum
        np.multiply(x, float(period), out=seq[1::2])
        np.negative(subs, out=seq[2::2])
        sums = np.cumsum(seq)
        out = sums[1::2] / self._divider
        self._sub, self._sum, self._trailing = float(subs[-1]), float(sums[-1]), float(full[size])
        extend_recent(recent, x)
        self._n += size
        return (out,)
