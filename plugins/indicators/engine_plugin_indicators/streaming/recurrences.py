"""TA-Lib's recurrences reproduced bit for bit: its fused multiply-add, its
running mean, and EMA and ATR continued from a saved state inside TA-Lib's
own C loop (seeded so that TA-Lib's first value is exactly that state)."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import talib

from engine_plugin_indicators.base import NAN


def _load_fma() -> Any:
    """The C library's correctly rounded ``fma(a, b, c)``: TA-Lib's build
    contracts ``a * b + c`` into one fused multiply-add (it picks its FMA code
    path at load time on CPUs that have one), and so must we to agree bit for
    bit. Python 3.13 has ``math.fma``; older ones reach libm through ctypes."""
    if hasattr(math, "fma"):
        return math.fma
    import ctypes
    import ctypes.util

    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    func = libm.fma
    func.restype = ctypes.c_double
    func.argtypes = (ctypes.c_double, ctypes.c_double, ctypes.c_double)
    return func


fma = _load_fma()


# Below this many bars a Python loop beats setting up a TA-Lib call.
TALIB_MIN = 48


def mean_seed(target: float, period: int) -> float | None:
    """A double ``z`` with ``z / period == target`` exactly (the division
    rounded as C rounds it), or None when no double divides to ``target``.

    ``z / period`` is monotone in ``z``, and ``fl(target * period)`` is within
    half an ulp of the exact product, so the quotient is within about an ulp
    of ``target``: stepping ``z`` one ulp at a time towards ``target`` either
    hits it within a step or two or jumps over it (then no double does: the
    spacing of ``z / period`` there is wider than ``target``'s rounding
    interval, which happens for roughly one state in eight when ``period`` is
    not a power of two)."""
    p = float(period)
    z = target * p
    if not math.isfinite(z):
        return None
    q = z / p
    if q == target:
        return z
    up = q < target
    for _ in range(8):
        z = math.nextafter(z, math.inf if up else -math.inf)
        q = z / p
        if q == target:
            return z
        if (q > target) == up:  # stepped over: no double divides to target
            return None
    return None


def ema_continue(ema: float, x: np.ndarray, period: int, k: float) -> np.ndarray:
    """TA-Lib's EMA continued from state ``ema`` over ``x``: bitwise what the
    loop ``ema = fma(v - ema, k, ema)`` gives, for ``k = 2 / (period + 1)``.

    TA-Lib seeds its EMA with the in-order sum of the first ``period`` inputs
    divided by ``period`` and then steps over the rest, so
    ``talib.EMA([z, 0, ..., 0, *x], period)`` with ``z / period == ema``
    exactly (adding zeros is exact) continues the recursion in TA-Lib's own C
    loop. When no such ``z`` exists, one exact step in Python moves the state
    on and the search is tried again."""
    size = len(x)
    out = np.empty(size)
    i = 0
    if period >= 2 and size >= TALIB_MIN:
        while i < size:
            z = mean_seed(ema, period)
            if z is not None:
                seeded = np.zeros(period + size - i)
                seeded[0] = z
                seeded[period:] = x[i:]
                result = talib.EMA(seeded, period)
                if result[period - 1] == ema:
                    out[i:] = result[period:]
                    return out
            ema = fma(float(x[i]) - ema, k, ema)
            out[i] = ema
            i += 1
    values = x[i:].tolist()
    rest = [0.0] * len(values)
    for j, v in enumerate(values):
        ema = fma(v - ema, k, ema)
        rest[j] = ema
    out[i:] = rest
    return out


def atr_continue(
    atr: float, prev_close: float, high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int
) -> np.ndarray | None:
    """TA-Lib's ATR continued from state ``atr`` (after a bar that closed at
    ``prev_close``) in its own C loop, or None when the state cannot be seeded.

    ``period + 1`` seed bars come first: flat at 0, then one from 0 up to
    ``z`` that closes at ``prev_close``, then flat at ``prev_close``; their
    true ranges are ``[z, 0, ..., 0]``, so TA-Lib's initial SMA is exactly
    ``z / period == atr`` and the chunk's first true range sees the real
    previous close."""
    z = mean_seed(atr, period)
    if z is None or z < 0.0:
        return None
    seed = period + 1
    rows = seed + len(high)
    h, lo, c = np.empty(rows), np.empty(rows), np.empty(rows)
    h[:seed] = lo[:seed] = c[:seed] = prev_close
    h[0] = lo[0] = c[0] = lo[1] = 0.0
    h[1] = z
    h[seed:], lo[seed:], c[seed:] = high, low, close
    result = talib.ATR(h, lo, c, period)
    if result[period] != atr:
        return None
    return np.asarray(result[seed:])


def ordered_sum(values: Any) -> float:
    """Left-to-right sum, as TA-Lib's loops add (``sum`` may compensate)."""
    total = 0.0
    for v in values:
        total += v
    return total


class RunningMean:
    """TA-Lib's SMA recurrence: add the new value, divide, drop the oldest."""

    __slots__ = ("period", "window", "total")

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

    def bulk(self, x: np.ndarray) -> np.ndarray:
        """``push`` over ``x`` once the window is full, vectorised: the same
        additions in the same order through ``np.cumsum`` (a sequential
        accumulate) over ``[total, x0, -old0, x1, -old1, ...]``."""
        size = len(x)
        period = self.period
        full = np.concatenate((np.fromiter(self.window, np.float64, period), x))
        seq = np.empty(2 * size + 1)
        seq[0] = self.total
        seq[1::2] = x
        np.negative(full[1 : size + 1], out=seq[2::2])
        sums = np.cumsum(seq)
        self.total = float(sums[-1])
        self.window.extend(full[-period:].tolist())
        return sums[1::2] / period
