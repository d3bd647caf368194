"""Test support: synthetic OHLCV paths (GBM bars from the core's simulated
source, then shaped) and comparisons against TA-Lib's batch output, for this
plugin's tests and benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from engine_core import BarChunk, indicators
from engine_core.testing import gbm_bars

RTOL = 1e-9
_BAR_S = 86_400  # one bar a day: the simulated source's year is 365 of them
_BARS_PER_YEAR = 365
_PRICES = ("open", "high", "low", "close")


def _gbm(seed: int, size: int, sigma: float) -> BarChunk:
    """``size`` bars of the simulated source (prices from 100, 4 decimals) whose
    log close moves by ``sigma`` a bar (standard deviation), without drift."""
    return gbm_bars(
        "T",
        size,
        seed,
        interval=_BAR_S,
        volatility=sigma * math.sqrt(_BARS_PER_YEAR),
        drift=0.5 * sigma**2 * _BARS_PER_YEAR,  # the source subtracts volatility^2 / 2
    )


def _scaled(chunk: BarChunk, factor: np.ndarray | float) -> dict[str, np.ndarray]:
    """The chunk's prices times ``factor`` (per bar or one number), and its volume."""
    columns = {name: getattr(chunk, name) * factor for name in _PRICES}
    columns["volume"] = chunk.volume
    return columns


def make_path(seed: int, size: int, kind: str = "walk", scale: float = 100.0) -> BarChunk:
    """OHLCV bars: a seeded GBM of about 1% a bar, optionally with jumps
    (``gaps``), flat stretches (``flat``; ``cents`` also rounds prices to 2
    decimals), scaled to start near ``scale``."""
    rng = np.random.default_rng(seed)
    base = _gbm(seed, size, 0.01)
    factor: np.ndarray | float = scale / 100.0
    if kind == "gaps":  # a jump moves every later price: the bar opens away from the last close
        factor = factor * np.exp(np.cumsum(np.where(rng.random(size) < 0.03, rng.normal(0.0, 0.2, size), 0.0)))
    bars = _scaled(base, factor)
    close = bars["close"]
    if kind == "cents":  # 2-decimal prices with long flat stretches: ties abound
        for name in _PRICES:
            bars[name] = np.round(bars[name], 2)
        close = bars["close"]
        for start in rng.integers(0, size, 12):
            close[start : start + 120] = close[start]
    if kind in ("flat", "cents"):
        for start in rng.integers(0, size, 6):
            close[start : start + 40] = close[start]
        flat = np.flatnonzero(np.diff(close, prepend=np.nan) == 0.0)
        for name in ("open", "high", "low"):
            bars[name][flat] = close[flat]
        # a close moved by a stretch but not flat (where stretches overlap): the range takes it in
        np.maximum(bars["high"], close, out=bars["high"])
        np.minimum(bars["low"], close, out=bars["low"])
    return BarChunk("T", np.arange(size, dtype=np.int64), **bars)


PATHS = {  # name -> (seed, kind, scale)
    "walk": (1, "walk", 100.0),
    "gaps": (2, "gaps", 100.0),
    "flat": (3, "flat", 100.0),
    "tiny": (4, "gaps", 1e-8),
    "huge": (5, "gaps", 1e8),
    "cents": (6, "cents", 100.0),
}


def path(name: str, size: int = 1500) -> BarChunk:
    """One of the named test paths."""
    seed, kind, scale = PATHS[name]
    return make_path(seed, size, kind, scale)


def expected(name: str, chunk: BarChunk, params: dict[str, Any]) -> list[np.ndarray]:
    """TA-Lib's batch output as streaming reports it: float, NaN in the lookback."""
    kind = indicators.kind(name)
    full = indicators.resolve_params(kind.spec, params)
    outs = kind.batch({c: getattr(chunk, c) for c in kind.spec.inputs}, full)
    lookback = kind.lookback(full)  # type: ignore[attr-defined]
    result = []
    for out in outs:
        out = np.asarray(out, dtype=np.float64).copy()
        out[:lookback] = np.nan
        result.append(out)
    return result


def streamed(name: str, chunk: BarChunk, params: dict[str, Any]) -> list[np.ndarray]:
    """Values after each ``update`` with one Bar; checks ``ready`` along the way."""
    stream = indicators.create(name, **params)
    values = []
    for i in range(len(chunk)):
        stream.update(chunk.bar(i))
        value = stream.value
        value = value if isinstance(value, tuple) else (value,)
        assert stream.ready or np.isnan(value).all()
        values.append(value)
    return list(np.array(values, dtype=np.float64).reshape(len(chunk), -1).T)


def streamed_many(name: str, chunk: BarChunk, params: dict[str, Any], cuts: Sequence[int]) -> list[np.ndarray]:
    """``update_many`` over the chunk split at ``cuts``."""
    stream = indicators.create(name, **params)
    bounds = [0, *sorted(cuts), len(chunk)]
    parts = [stream.update_many(chunk.slice(a, b)) for a, b in pairwise(bounds)]
    return [np.concatenate(p) for p in zip(*parts)]


def assert_exact(got: Sequence[np.ndarray], want: Sequence[np.ndarray], label: str) -> None:
    """Bitwise equal floats and NaN exactly where ``want`` has NaN."""
    assert len(got) == len(want), label
    for i, (g, w) in enumerate(zip(got, want)):
        assert np.array_equal(np.isnan(g), np.isnan(w)), f"{label} output {i}: NaN positions differ"
        bad = np.flatnonzero(~((g == w) | np.isnan(w)))
        assert not bad.size, f"{label} output {i}: first difference at {bad[0]}: {g[bad[0]]!r} != {w[bad[0]]!r}"


def assert_same(got: Sequence[np.ndarray], want: Sequence[np.ndarray], label: str) -> None:
    """Equal within RTOL relative to the value (or to the output's scale near
    zero), and NaN exactly where TA-Lib has NaN."""
    assert len(got) == len(want), label
    for i, (g, w) in enumerate(zip(got, want)):
        assert np.array_equal(np.isnan(g), np.isnan(w)), f"{label} output {i}: NaN positions differ"
        scale = float(np.nanmax(np.abs(w), initial=0.0))
        bad = np.flatnonzero(~np.isclose(g, w, rtol=RTOL, atol=RTOL * scale, equal_nan=True))
        assert not bad.size, f"{label} output {i}: first mismatch at {bad[0]}: {g[bad[0]]!r} != {w[bad[0]]!r}"
