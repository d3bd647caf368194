from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from engine_core.builtin.simulated import SimulatedConfig, SimulatedSource, gbm_bars

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def columns(symbols: list[str], **cfg: object) -> dict[str, dict[str, np.ndarray]]:
    source = SimulatedSource(SimulatedConfig(**cfg), symbols=symbols, base_dir=Path("."))
    out: dict[str, dict[str, list[np.ndarray]]] = {s: {k: [] for k in COLUMNS} for s in symbols}
    for chunk in source.history():
        for k in COLUMNS:
            out[chunk.symbol][k].append(getattr(chunk, k))
    return {s: {k: np.concatenate(v) for k, v in cols.items()} for s, cols in out.items()}


@pytest.mark.parametrize("chunk", [1, 37, 1000])
def test_bars_do_not_depend_on_chunking(chunk):
    a = columns(["A"], seed=5, bars=1000, chunk=1000)["A"]
    b = columns(["A"], seed=5, bars=1000, chunk=chunk)["A"]
    assert all(np.array_equal(a[k], b[k]) for k in COLUMNS)


def test_gbm_bars_are_the_sources_bars():
    """What tests, benchmarks and plugins generate is what a config with the same keys runs on."""
    cfg = {"seed": 4, "interval": 5, "price": 20.0, "drift": 0.1}
    source = columns(["A"], bars=500, chunk=77, **cfg)["A"]
    made = gbm_bars("A", 500, **cfg)
    assert made.symbol == "A" and all(np.array_equal(source[k], getattr(made, k)) for k in COLUMNS)


def test_bars_are_valid_and_seeded_per_symbol():
    both = columns(["A", "B"], seed=5, bars=2000)
    alone = columns(["B"], seed=5, bars=2000)
    assert np.array_equal(both["B"]["close"], alone["B"]["close"])  # adding a symbol changes no other
    assert not np.array_equal(both["A"]["close"], both["B"]["close"])
    for cols in both.values():
        assert np.all(cols["low"] <= np.minimum(cols["open"], cols["close"]))
        assert np.all(cols["high"] >= np.maximum(cols["open"], cols["close"]))
        assert np.all(np.diff(cols["ts"]) == 60 * 10**9)
    assert not np.array_equal(columns(["A"], seed=6, bars=50)["A"]["close"], both["A"]["close"][:50])


@pytest.mark.parametrize("chunk", [7, 600])  # chunks shorter and longer than the blocks live() converts
def test_live_replays_the_history_bars_in_time_order(chunk):
    source = SimulatedSource(SimulatedConfig(seed=2, bars=600, chunk=chunk), symbols=["A", "B"], base_dir=Path("."))

    async def collect():
        return [bar async for bar in source.live()]

    bars = asyncio.run(collect())
    assert [b.ts for b in bars] == sorted(b.ts for b in bars)
    for symbol in ("A", "B"):
        history = gbm_bars(symbol, 600, seed=2)
        assert [b for b in bars if b.symbol == symbol] == [history.bar(i) for i in range(600)]
