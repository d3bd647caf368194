"""Indicator costs: O(1) streaming per update (one Bar, and per bar inside
update_many on 65,536-bar chunks), and batch next to TA-Lib's own call.

    python bench/indicators.py
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

import talib
from engine_plugin_indicators import plugin
from engine_plugin_indicators.testing import make_path

from engine_core import indicators
from engine_core.plugins import build_registry, set_registry

O1 = ["sma", "ema", "wma", "rsi", "macd", "bbands", "atr", "stoch", "vwap"]
CHUNK = 65_536


def per_call_us(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Best of ``repeat`` runs, microseconds per call."""
    number = max(1, int(0.05 / max(timeit.timeit(fn, number=1), 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def streaming() -> None:
    path = make_path(1, 4 * CHUNK, "gaps")
    bars = [path.bar(i) for i in range(20_000)]
    print(f"{'streaming':<10} {'update us':>10} {'update_many us/bar':>19}")
    for name in O1:
        stream = indicators.create(name)
        stream.update_many(path.slice(0, 1000))
        it = iter(bars * 1000)
        update_us = per_call_us(lambda s=stream, i=it: s.update(next(i)))
        many = indicators.create(name)
        chunks = iter([path.slice(i * CHUNK, (i + 1) * CHUNK) for i in range(4)] * 1000)
        many.update_many(next(chunks))
        many_us = per_call_us(lambda m=many, c=chunks: m.update_many(next(c)), repeat=3) / CHUNK
        print(f"{name:<10} {update_us:>10.2f} {many_us:>19.4f}")


def batch() -> None:
    print(f"\n{'batch':<10} {'points':>8} {'engine us':>10} {'talib us':>10} {'ratio':>6}")
    for size in (200, 1_000, 100_000):
        path = make_path(2, size, "gaps")
        for name in O1:
            kind = indicators.kind(name)
            params = indicators.resolve_params(kind.spec, {})
            inputs = {c: getattr(path, c) for c in kind.spec.inputs}
            func = getattr(talib, name.upper())
            args = [getattr(path, c) for c in kind.columns]  # type: ignore[attr-defined]
            ours = per_call_us(lambda k=kind, i=inputs, p=params: k.batch(i, p))
            theirs = per_call_us(lambda f=func, a=args: f(*a))
            print(f"{name:<10} {size:>8} {ours:>10.2f} {theirs:>10.2f} {ours / theirs:>6.2f}")


def main() -> None:
    set_registry(build_registry(extra=[("indicators", plugin)], autoload=False))
    streaming()
    batch()


if __name__ == "__main__":
    main()
