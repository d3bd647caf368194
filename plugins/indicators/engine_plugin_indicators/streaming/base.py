"""The bases of the O(1) streaming indicators: ``O1Indicator`` (``update``
and ``update_many`` as exact replays of one ``_push`` per bar, or an exact
vectorised ``_bulk`` once ready) and ``FiniteMemory`` (an indicator that
keeps the last lookback + 1 bars)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_plugin_indicators.base import FedIndicator

if TYPE_CHECKING:
    from engine_plugin_indicators.catalog import TalibKind


class O1Indicator(FedIndicator):
    """Base of the O(1) indicators: ``_push`` takes one bar's input values
    after ``self._n`` was counted; ``_bulk`` continues over ready columns."""

    __slots__ = ()

    @classmethod
    def supports(cls, params: Mapping[str, Any]) -> bool:
        """Whether these parameters have an O(1) form (else the window wrapper)."""
        return True

    def update(self, bar: Any) -> None:
        self.step(bar)

    def step(self, bar: Any) -> tuple[float, ...]:
        one = self._one
        if one is not None:  # one input column (most indicators): no tuple, no loop
            x = one(bar)
            if x != x:  # NaN
                self._read(bar)  # raises, naming the column
            self._n += 1
            self._push(x)
            return self._value
        values = self._get(bar)
        for v in values:
            if v != v:
                self._read(bar)
        self._n += 1
        self._push(*values)
        return self._value

    def update_many(self, bars: Any) -> tuple[np.ndarray, ...]:
        columns = self._read_chunk(bars)
        size = len(columns[0])
        width = len(self.spec.outputs)
        i = 0
        if self._vectorised:
            # bar by bar until ready, then the exact vectorised continuation
            head: list[tuple[float, ...]] = []
            while i < size and not self.ready:
                self._n += 1
                self._push(*[float(c[i]) for c in columns])
                head.append(self._value)
                i += 1
            outs = np.empty((width, size))
            if head:
                outs[:, :i] = np.array(head, dtype=np.float64).reshape(i, width).T
            if i < size:
                for row, continued in zip(outs, self._bulk([c[i:] for c in columns])):
                    row[i:] = continued
                self._value = tuple(outs[:, -1].tolist())
            return tuple(outs)
        # exact replay of ``update``: the same operations in the same order
        values: list[tuple[float, ...]] = []
        keep = values.append
        push = self._push
        n = self._n
        for bar_values in zip(*[c.tolist() for c in columns]):
            n += 1
            self._n = n
            push(*bar_values)
            keep(self._value)
        if not size:
            return tuple(np.empty(0) for _ in range(width))
        return tuple(np.array(values, dtype=np.float64).reshape(size, width).T)

    _vectorised = False  # True when ``_bulk`` reproduces ``_push`` exactly

    def _push(self, *values: float) -> None:
        raise NotImplementedError

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """Outputs for bars that follow a ready state; advances the state."""
        raise NotImplementedError


def extend_recent(recent: deque[float], x: np.ndarray) -> None:
    """Append the tail of ``x`` that a bounded deque keeps."""
    recent.extend(x[-(recent.maxlen or len(x)) :].tolist())


class FiniteMemory(O1Indicator):
    """An indicator whose output depends only on the last lookback + 1 bars."""

    __slots__ = ("_appends", "_recent")

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self._recent: list[deque[float]] = [deque(maxlen=self._lookback + 1) for _ in kind.columns]
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
