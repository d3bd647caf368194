"""Volume, O(1) per bar: VWAP (TA-Lib's numbers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_plugin_indicators.streaming.base import O1Indicator

if TYPE_CHECKING:
    from engine_plugin_indicators.catalog import TalibKind


class VwapStream(O1Indicator):
    """TA-Lib's VWAP since the first bar: ``typ = (high + low + close) / 3.0``,
    ``sumPV += typ * volume``, ``sumV += volume``, value ``sumPV / sumV`` once
    ``sumV > 0`` (0.0 before). ``update_many`` runs the same sums in order
    with ``np.cumsum``."""

    __slots__ = ("_pv", "_v", "_vwap")

    _vectorised = True

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self._pv = self._v = self._vwap = 0.0

    def _push(self, high: float, low: float, close: float, volume: float) -> None:  # type: ignore[override]
        self._pv += (high + low + close) / 3.0 * volume
        self._v += volume
        if self._v > 0.0:
            self._vwap = self._pv / self._v
        self._value = (self._vwap,)

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        high, low, close, volume = columns
        size = len(high)
        pv = np.empty(size + 1)
        pv[0] = self._pv
        np.multiply((high + low + close) / 3.0, volume, out=pv[1:])
        v = np.empty(size + 1)
        v[0] = self._v
        v[1:] = volume
        pv = np.cumsum(pv)[1:]
        v = np.cumsum(v)[1:]
        if np.all(v > 0.0):
            out = pv / v
        else:  # leading bars without volume carry the last value
            out = np.empty(size)
            vwap = self._vwap
            for i, (a, b) in enumerate(zip(pv.tolist(), v.tolist())):
                if b > 0.0:
                    vwap = a / b
                out[i] = vwap
        self._pv, self._v, self._vwap = float(pv[-1]), float(v[-1]), float(out[-1])
        self._n += size
        return (out,)
