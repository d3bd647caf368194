"""Streaming for every other TA-Lib function: recompute TA-Lib over a bounded
window of the last bars.

How long the window must be is measured, not guessed, once per function and
parameters (:func:`plan`), on a seeded synthetic OHLCV path:

* finite memory (most functions): lookback + 1 bars give TA-Lib's value;
* recursive (EMA-based, Hilbert transforms, KAMA, SAR, ...): the window
  doubles until dropping older bars changes the value by under ``TOLERANCE``
  relative at every checked bar, and is then doubled once more as a margin
  (at most ``MAX_WINDOW`` bars);
* running totals (path dependent with lookback 0: AD, OBV, CUMSUM, NVI, ...):
  the last two bars give the step, added to (or multiplied into) the carried
  value, which is exact whatever the history;
* other path-dependent state (SAR, SAREXT, SUPERTREND, ADOSC): a trend flag
  or extreme point can outlive any window a probe measures, so these always
  recompute ``MAX_WINDOW`` bars; their equality with TA-Lib holds once the
  window has seen the trend reversals TA-Lib saw, which the tests check on
  seeded paths but cannot guarantee for every path.

Ties and flat prices: MAXINDEX/MININDEX pick among equal values by TA-Lib's
scan history, and the Hilbert-transform functions (HT_*) branch on values
near zero, so on perfectly flat stretches these may differ from a batch over
the whole history.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_plugin_indicators.base import NAN, FedIndicator

if TYPE_CHECKING:
    from engine_plugin_indicators.catalog import TalibKind

TOLERANCE = 1e-11
MAX_WINDOW = 8192
_CHECKS = 16  # end points compared per probe


@dataclass(frozen=True)
class Plan:
    """``window`` bars are recomputed; ``mode`` is how the value follows from them."""

    window: int
    mode: str = "absolute"  # absolute | add | mul


@functools.lru_cache(maxsize=1)
def probe_bars(size: int = 4 * MAX_WINDOW + 64) -> dict[str, np.ndarray]:
    """A seeded OHLCV random walk with jumps and trending and quiet regimes,
    the path every plan is measured on.

    Its own generator on purpose, not the simulated source's GBM (which the
    tests' ``testing.make_path`` uses): these numbers fix every plan, and
    another path of the same statistics moved three of them (HT_DCPHASE 1024
    -> 2048 bars, HT_SINE 1024 -> 4096, HT_TRENDMODE 256 -> 64, which then
    no longer matched TA-Lib)."""
    rng = np.random.default_rng(20240531)
    regime = np.repeat(rng.integers(0, 3, size // 256 + 1), 256)[:size]
    drift = np.array([0.0, 0.003, -0.003])[regime]
    vol = np.array([0.01, 0.002, 0.004])[regime]
    jumps = np.where(rng.random(size) < 0.005, rng.normal(0.0, 0.05, size), 0.0)
    steps = drift + rng.normal(0.0, 1.0, size) * vol + jumps
    close = 100.0 * np.exp(np.cumsum(steps))
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = 1.0 + np.abs(rng.normal(0.0, 0.004, (2, size)))
    return {
        "open": open_,
        "high": np.maximum(open_, close) * wick[0],
        "low": np.minimum(open_, close) / wick[1],
        "close": close,
        "volume": rng.lognormal(8.0, 0.5, size),
    }


def _run(kind: TalibKind, params: Mapping[str, Any], start: int, stop: int) -> np.ndarray:
    bars = probe_bars()
    outs = kind.call([bars[c][start:stop] for c in kind.columns], params)
    return np.array([np.asarray(o, dtype=np.float64) for o in outs])


def _close(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> bool:
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore"):
        return bool(np.all(same | (np.abs(a - b) <= TOLERANCE * (np.abs(a) + scale))))


def _window_is_enough(kind: TalibKind, params: Mapping[str, Any], window: int) -> bool:
    size = len(probe_bars()["close"])
    full = _run(kind, params, 0, size)
    scale = np.nanmax(np.abs(full), axis=1, initial=0.0)
    ends = np.linspace(min(4 * window, size), size, _CHECKS).astype(int)
    offset = kind.index_outputs  # index outputs count from the window's start
    return all(
        _close(_run(kind, params, end - window, end)[:, -1] + offset * (end - window), full[:, end - 1], scale)
        for end in ends
    )


def _step_mode(kind: TalibKind, params: Mapping[str, Any]) -> str | None:
    """'add' or 'mul' when each value follows from the last one and a step that
    TA-Lib computes from the last two bars alone."""
    full = _run(kind, params, 0, 64)
    scale = np.nanmax(np.abs(full), axis=1, initial=0.0)
    pairs = [(full[:, t - 1], full[:, t], _run(kind, params, t - 1, t + 1)) for t in range(1, 64)]
    if all(_close(prev + win[:, 1] - win[:, 0], cur, scale) for prev, cur, win in pairs):
        return "add"
    with np.errstate(divide="ignore", invalid="ignore"):
        if all(_close(prev * (win[:, 1] / win[:, 0]), cur, scale) for prev, cur, win in pairs):
            return "mul"
    return None


@functools.lru_cache(maxsize=4096)
def plan(kind: TalibKind, params: tuple[tuple[str, Any], ...]) -> Plan:
    """The shortest window (and mode) that reproduces TA-Lib for these parameters."""
    values = dict(params)
    if "Output is path-dependent" in kind.flags:
        mode = _step_mode(kind, values) if kind.lookback(values) == 0 else None
        return Plan(2, mode) if mode else Plan(MAX_WINDOW)
    window = kind.lookback(values) + 1
    if _window_is_enough(kind, values, window):
        return Plan(window)
    while window < MAX_WINDOW and not _window_is_enough(kind, values, window):
        window *= 2
    return Plan(min(2 * window, MAX_WINDOW))


class WindowIndicator(FedIndicator):
    """A TA-Lib function recomputed over the last ``plan.window`` bars per update."""

    __slots__ = ("plan", "_pos", "_ring")

    def __init__(self, kind: TalibKind, params: Mapping[str, Any]) -> None:
        super().__init__(kind, params)
        self.plan = plan(kind, tuple(params.items()))
        width = self.plan.window
        # Each bar stored twice, as engine_core.storage.Ring does, but in one
        # 2-D array written with one assignment: the core's Ring (a dict of
        # columns per push, a lock) made update 1.3x slower here (2-4 us a bar).
        self._ring = np.zeros((len(kind.columns), 2 * width))
        self._pos = -1

    def _window(self) -> np.ndarray:
        """The last bars as contiguous rows (one per input column), oldest first."""
        width = self.plan.window
        if self._n < width:
            return self._ring[:, : self._n]
        return self._ring[:, self._pos + 1 : self._pos + 1 + width]

    def update(self, bar: Any) -> None:
        values = self._read(bar)
        width = self.plan.window
        self._pos = (self._pos + 1) % width
        self._ring[:, self._pos] = values
        self._ring[:, self._pos + width] = values
        self._n += 1
        if not self.ready:
            return
        window = self._window()
        outs = self._kind.call(list(window), self._params)
        raw = np.array([float(o[-1]) for o in outs])
        if self.plan.mode == "absolute":
            if self._kind.index_outputs:
                raw += self._n - window.shape[1]
            self._value = tuple(raw.tolist())
        elif self._n > 1:
            prev_raw = np.array([float(o[-2]) for o in outs])
            self._value = tuple(self._follow(np.array(self._value), prev_raw, raw).tolist())
        else:
            self._value = tuple(raw.tolist())

    def _follow(self, carried: np.ndarray, base: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Values of a running total from its carried value and TA-Lib's steps."""
        if self.plan.mode == "add":
            return carried + (raw - base)
        with np.errstate(divide="ignore", invalid="ignore"):
            return carried * (raw / base)

    def update_many(self, bars: Any) -> tuple[np.ndarray, ...]:
        columns = self._read_chunk(bars)
        size = len(columns[0])
        held = self._window()[:, 1:] if self._n >= self.plan.window else self._window()
        full = np.concatenate((held, np.array(columns).reshape(len(columns), size)), axis=1)
        raw = np.array([np.asarray(o, dtype=np.float64) for o in self._kind.call(list(full), self._params)])
        skip = held.shape[1]
        if self.plan.mode == "absolute" or self._n == 0:
            outs = raw[:, skip:]
            if self._kind.index_outputs:
                outs += self._n - skip
        else:
            outs = self._follow(np.array(self._value)[:, None], raw[:, skip - 1 : skip], raw[:, skip:])
        outs[:, : max(0, self._lookback - self._n)] = NAN
        self._store(full)
        self._n += size
        if size:
            self._value = tuple(outs[:, -1].tolist())
        return tuple(outs)

    def _store(self, full: np.ndarray) -> None:
        """Keep the last bars of ``full`` in the ring, in order."""
        width = self.plan.window
        tail = full[:, -width:]
        count = tail.shape[1]
        self._ring[:, :count] = tail
        self._ring[:, width : width + count] = tail
        self._pos = count - 1
