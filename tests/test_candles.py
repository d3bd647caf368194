"""A symbol's bars as candlesticks for the report: bounded, exact, and the
same however the bars were cut into chunks."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from engine_core.candles import Candles
from engine_core.testing import run_engine, write_config


def bars(n: int, seed: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) + rng.uniform(0, 1, n)
    low = np.minimum(open_, close) - rng.uniform(0, 1, n)
    ts = (1_700_000_000 + 60 * np.arange(n)) * 10**9
    return ts.astype(np.int64), open_, high, low, close


def expected(cols: tuple[np.ndarray, ...], size: int) -> list[tuple[object, ...]]:
    ts, o, h, low, c = cols
    out = []
    for i in range(0, len(ts), size):
        j = min(i + size, len(ts))
        out.append((int(ts[i]), o[i], h[i:j].max(), low[i:j].min(), c[j - 1], j - i))
    return out


def got(candles: Candles) -> list[tuple[object, ...]]:
    return list(zip(*(a.tolist() for a in candles.candles())))


@pytest.mark.parametrize("cuts", [[1], [7], [8], [1000], [100_000], [3, 500, 1, 9, 4096]])
def test_the_candles_are_those_of_the_bars_whatever_the_chunks(cuts):
    cols = bars(10_007)
    candles = Candles(max_candles=100)
    i, k = 0, 0
    while i < len(cols[0]):
        j = i + cuts[k % len(cuts)]
        candles.add(*(a[i:j] for a in cols))
        i, k = j, k + 1
    # 10,007 bars in at most 100 candles: 128 bars each (64 would make 157)
    assert candles.size == 128
    assert got(candles) == expected(cols, 128)


def test_few_bars_stay_one_candle_each():
    cols = bars(5)
    candles = Candles(max_candles=100)
    candles.add(*cols)
    assert candles.size == 1 and got(candles) == expected(cols, 1)


def test_a_backtest_report_has_its_candles(tmp_path):
    config = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["AAA", "EUR/USD"]},
            "source": {"type": "simulated", "bars": 5000, "seed": 4},
            "strategy": {"host": "python", "class": "s.py:S"},
            "report": {"dir": "out", "html": False},
        },
    )
    (tmp_path / "s.py").write_text(
        "class S:\n    def watch(self, ctx): return None\n"
        "    def close_watch(self, ctx): return None\n    def in_trade(self, ctx): return None\n"
    )
    done = run_engine("run", "-c", str(config), "-q")
    assert done.returncode == 0, done.stderr
    with (tmp_path / "out" / "candles.csv").open() as f:
        rows = list(csv.DictReader(f))
    by_symbol = {s: [r for r in rows if r["symbol"] == s] for s in ("AAA", "EUR/USD")}
    for symbol, candles in by_symbol.items():
        assert 1000 <= len(candles) <= 2000, symbol
        assert sum(int(r["bars"]) for r in candles) == 5000
        for r in candles:
            assert float(r["low"]) <= min(float(r["open"]), float(r["close"])) <= float(r["high"])
        assert candles[0]["time"].endswith("Z") and candles[0]["time"] < candles[1]["time"]
