"""Test support: synthetic OHLCV paths and comparisons against TA-Lib's batch
output, for this plugin's tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from engine_core import indicators
from engine_core.model import BarChunk

RTOL = 1e-9


def make_path(seed: int, size: int, kind: str = "walk", scale: float = 100.0) -> BarChunk:
    """OHLCV bars: a seeded random walk, optionally with jumps (gaps), flat
    stretches, or scaled to an extreme magnitude."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.01, size)
    if kind == "gaps":
        steps += np.where(rng.random(size) < 0.03, rng.normal(0.0, 0.2, size), 0.0)
    close = scale * np.exp(np.cumsum(steps))
    if kind == "cents":  # 2-decimal prices with long flat stretches: ties abound
        close = np.round(close, 2)
        for start in rng.integers(0, size, 12):
            close[start : start + 120] = close[start]
    if kind in ("flat", "cents"):
        for start in rng.integers(0, size, 6):
            close[start : start + 40] = close[start]
    open_ = np.concatenate(([close[0]], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.003, (2, size)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    if kind == "cents":
        high, low = np.round(high, 2), np.round(low, 2)
    if kind in ("flat", "cents"):
        flat = np.flatnonzero(np.diff(close, prepend=np.nan) == 0.0)
        open_[flat] = high[flat] = low[flat] = close[flat]
    volume = rng.lognormal(6.0, 0.7, size)
    return BarChunk("T", np.arange(size, dtype=np.int64), open_, high, low, close, volume)


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
