"""O(1) streaming indicators with their own incremental state.

Each follows TA-Lib's C code step by step (same seeding, same order of
floating-point operations), so ``update`` reproduces TA-Lib's numbers.
``update_many`` never restarts anything: it runs exactly the operations
``update`` runs, in the same order, so its values do not depend on where
chunks start. SMA and VWAP do so vectorised (``np.cumsum`` is a sequential
accumulate, so a running sum keeps TA-Lib's order of additions); EMA loops
over the chunk with local variables; the others replay ``_push`` bar by bar.
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


def _mean_seed(target: float, period: int) -> float | None:
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


def _ema_continue(ema: float, x: np.ndarray, period: int, k: float) -> np.ndarray:
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
            z = _mean_seed(ema, period)
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


def _atr_continue(
    atr: float, prev_close: float, high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int
) -> np.ndarray | None:
    """TA-Lib's ATR continued from state ``atr`` (after a bar that closed at
    ``prev_close``) in its own C loop, or None when the state cannot be seeded.

    ``period + 1`` seed bars come first: flat at 0, then one from 0 up to
    ``z`` that closes at ``prev_close``, then flat at ``prev_close``; their
    true ranges are ``[z, 0, ..., 0]``, so TA-Lib's initial SMA is exactly
    ``z / period == atr`` and the chunk's first true range sees the real
    previous close."""
    z = _mean_seed(atr, period)
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
                for row, values in zip(outs, self._bulk([c[i:] for c in columns])):
                    row[i:] = values
                self._value = tuple(outs[:, -1].tolist())
            return tuple(outs)
        # exact replay of ``update``: the same operations in the same order
        values: list[tuple[float, ...]] = []
        keep = values.append
        push = self._push
        n = self._n
        for row in zip(*[c.tolist() for c in columns]):
            n += 1
            self._n = n
            push(*row)
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


def _extend(recent: deque[float], x: np.ndarray) -> None:
    """Append the tail of ``x`` that a bounded deque keeps."""
    recent.extend(x[-(recent.maxlen or len(x)) :].tolist())


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


class SmaStream(_FiniteMemory):
    """TA-Lib's SMA: one running sum from the first bar (add the new value,
    divide, subtract the oldest). ``update_many`` runs the same additions in
    the same order through ``np.cumsum`` (a strictly sequential accumulate)
    over ``[total, x0, -old0, x1, -old1, ...]``."""

    _vectorised = True

    def _reset(self) -> None:
        self._mean = _RunningMean(self._params["period"])

    def _step(self, x: float) -> None:  # type: ignore[override]
        self._value = (self._mean.push(x),)

    def _bulk(self, columns: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        x = columns[0]
        out = self._mean.bulk(x)
        _extend(self._recent[0], x)
        self._n += len(x)
        return (out,)


class WmaStream(_FiniteMemory):
    """TA-Lib's WMA: a running sum and a running weighted sum."""

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
        _extend(recent, x)
        self._n += size
        return (out,)


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
        _extend(window, x)
        self._n = n = n0 + size
        if n % p == 0:  # the last bar re-anchors
            self._anchor = xl = float(x[-1])
            kept_last = [v - xl for v in list(window)[1:]]
            self._s1 = _ordered_sum(kept_last)
            self._s2 = _ordered_sum(v * v for v in kept_last)
        return (mean + std * self._up, mean, mean - std * self._dn)


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
            _extend(recent, col)
        n = self._n + size
        self._highs.clear()
        self._lows.clear()
        self._n = n - span
        for h, lo in zip(highs[-span:].tolist(), lows[-span:].tolist()):
            self._n += 1
            self._extremes(h, lo)
        return (slowk, slowd)


class EmaStream(O1Indicator):
    """TA-Lib's EMA: seeded with the SMA of the first ``period`` values (summed
    in order, then divided), then ``fma(x - ema, k, ema)``, k = 2 / (period + 1)."""

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
        out = _ema_continue(self._ema, x, self._period, self._k)
        self._ema = float(out[-1])
        self._n += len(x)
        return (out,)


def _rsi(gain: float, loss: float) -> float:
    total = gain + loss
    return 100.0 * (gain / total) if total != 0.0 else 0.0


class RsiStream(O1Indicator):
    """TA-Lib's RSI: average gain and loss over the first ``period`` changes,
    then Wilder smoothing of each, in the form TA-Lib's build computes ATR's
    (``fma(avg, w, change * (1 - w))``, ``w = (period - 1) / period``, the
    change 0 for the side that did not move), so that ``update_many`` can
    continue both averages exactly in ``talib.ATR``'s C loop."""

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
                gain = _atr_continue(self._gain, 0.0, up, zeros, zeros, self._period)
                loss = _atr_continue(self._loss, 0.0, down, zeros, zeros, self._period)
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


class AtrStream(O1Indicator):
    """TA-Lib's ATR: the SMA of the first ``period`` true ranges (the first bar
    has none), then Wilder smoothing as TA-Lib's build computes it:
    ``fma(atr, w, tr * (1 - w))`` with ``w = (period - 1) / period``."""

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
                rest = _atr_continue(self._atr, self._close, high[i:], low[i:], close[i:], self._period)
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
        fast = _ema_continue(self._fast_ema, x, self._fast, self._kf)
        slow = _ema_continue(self._slow_ema, x, self._slow, self._ks)
        macd = fast - slow
        sig = _ema_continue(self._sig, macd, self._signal, self._kg)
        self._fast_ema, self._slow_ema, self._sig = float(fast[-1]), float(slow[-1]), float(sig[-1])
        self._n += len(x)
        return (macd, sig, macd - sig)


class VwapStream(O1Indicator):
    """TA-Lib's VWAP since the first bar: ``typ = (high + low + close) / 3.0``,
    ``sumPV += typ * volume``, ``sumV += volume``, value ``sumPV / sumV`` once
    ``sumV > 0`` (0.0 before). ``update_many`` runs the same sums in order
    with ``np.cumsum``."""

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
