"""What every streaming indicator of this plugin shares: reading bars and
chunks (NaN is rejected), counting bars, ``value`` and ``ready``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_core import IndicatorError, StreamingIndicator

if TYPE_CHECKING:
    from engine_plugin_indicators.catalog import TalibKind

NAN = math.nan


class FedIndicator(StreamingIndicator):
    """Ready once more than TA-Lib's lookback bars were seen; NaN until then."""

    __slots__ = ("spec", "_kind", "_params", "_lookback", "_n", "_value", "_get", "_one")

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        self.spec = kind.spec
        self._kind = kind
        self._params = dict(params)
        self._lookback = kind.lookback(params)
        self._n = 0  # bars seen
        self._value: tuple[float, ...] = (NAN,) * len(kind.spec.outputs)
        self._get: Callable[[Any], tuple[float, ...]]
        self._one: Callable[[Any], float] | None  # a bar's one input value
        if len(kind.columns) == 1:
            one = attrgetter(kind.columns[0])
            self._get = lambda bar: (one(bar),)
            self._one = one
        else:
            self._get = attrgetter(*kind.columns)
            self._one = None

    @property
    def value(self) -> float | tuple[float, ...]:
        return self._value[0] if len(self._value) == 1 else self._value

    @property
    def ready(self) -> bool:
        return self._n > self._lookback

    def _read(self, bar: Any) -> tuple[float, ...]:
        values: tuple[float, ...] = self._get(bar)
        for v in values:
            if math.isnan(v):
                raise IndicatorError(f"indicator {self.spec.name!r}: bar has NaN in {self._nan_column(values)}")
        return values

    def _nan_column(self, values: tuple[float, ...]) -> str:
        return next(c for c, v in zip(self._kind.columns, values) if math.isnan(v))

    def _read_chunk(self, bars: Any) -> list[np.ndarray]:
        columns = [np.ascontiguousarray(getattr(bars, c), dtype=np.float64) for c in self._kind.columns]
        for name, col in zip(self._kind.columns, columns):
            bad = np.flatnonzero(np.isnan(col))
            if bad.size:
                raise IndicatorError(f"indicator {self.spec.name!r}: chunk has NaN in {name} at row {bad[0]}")
        return columns
