"""The shipped strategies through the whole engine on the simulated feed; the
trades each must make are computed independently with TA-Lib and a small
reference of the worker's fill rules (entries and signal exits fill at the
next bar's open; a stop fills on the bar whose range touches it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import talib

from engine_core.builtin.simulated import SimulatedConfig, SimulatedSource
from engine_core.model import BarChunk
from engine_core.runner import run
from engine_core.testing import write_config

SYMBOLS = ["AAA", "BBB"]
BARS, SEED, SOURCE_CHUNK = 3000, 11, 1000
Trade = tuple[int, int, float, str]  # entry bar, exit bar, exit price, exit reason


def history(symbol: str) -> BarChunk:
    source = SimulatedSource(
        SimulatedConfig(seed=SEED, bars=BARS, chunk=SOURCE_CHUNK), symbols=[symbol], base_dir=Path(".")
    )
    chunks = list(source.history())
    columns = ("ts", "open", "high", "low", "close", "volume")
    return BarChunk(symbol, *(np.concatenate([getattr(c, k) for c in chunks]) for k in columns))


def cross_up(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a crosses above b on the bar (NaN never crosses)."""
    out = np.zeros(len(a), dtype=bool)
    with np.errstate(invalid="ignore"):
        out[1:] = (a[:-1] <= b[:-1]) & (a[1:] > b[1:])
    return out


def simulate(
    c: BarChunk,
    enter: np.ndarray,
    exit: np.ndarray,
    stops: Callable[[int], tuple[float, float]] | None = None,
    reasons: tuple[str, str] = ("", ""),
) -> list[Trade]:
    """Long-only trades from entry and exit signal bars (``stops(k)``: the
    stop-loss and take-profit an entry decided on bar k sets)."""
    trades: list[Trade] = []
    n, i = len(c), 0
    while i < n - 1:
        if not enter[i]:
            i += 1
            continue
        entry = i + 1
        sl, tp = stops(i) if stops else (-np.inf, np.inf)
        for j in range(entry, n):
            if c.low[j] <= sl:
                trades.append((entry, j, min(c.open[j], sl), "stop_loss"))
                i = j + 1
                break
            if c.high[j] >= tp:
                trades.append((entry, j, max(c.open[j], tp), "take_profit"))
                i = j + 1
                break
            if exit[j] and j + 1 < n:
                trades.append((entry, j + 1, c.open[j + 1], reasons[1]))
                i = j + 1
                break
        else:
            return trades
    return trades


def side_changes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bars where a moves above b and below b, passing over bars where they are
    equal up to rounding, 2**-40 of b as the script has it (backtrader's
    CrossOver; NaN is no side)."""
    with np.errstate(invalid="ignore"):
        gap, tie = a - b, 2.0**-40 * np.abs(b)
        side = np.where(gap > tie, 1, np.where(gap < -tie, -1, 0))
    last = 0
    up, down = np.zeros(len(a), dtype=bool), np.zeros(len(a), dtype=bool)
    for i, s in enumerate(side):
        if s:
            up[i], down[i] = last == -1 and s == 1, last == 1 and s == -1
            last = s
    return up, down


def sma_cross(c: BarChunk) -> list[Trade]:
    up, down = side_changes(talib.SMA(c.close, 5), talib.SMA(c.close, 20))
    return simulate(c, up, down, reasons=("", "fast crossed below slow"))


def rsi_reversion(c: BarChunk) -> list[Trade]:
    rsi = talib.RSI(c.close, 14)
    with np.errstate(invalid="ignore"):
        enter = np.concatenate(([False], (rsi[:-1] < 30) & (rsi[1:] >= 30)))
        exit = rsi >= 70
    return simulate(c, enter, exit, reasons=("", "rsi overbought"))


def bollinger_breakout(c: BarChunk) -> list[Trade]:
    upper, middle, _ = talib.BBANDS(c.close, 20, 2, 2)
    with np.errstate(invalid="ignore"):
        exit = c.close < middle
    return simulate(c, cross_up(c.close, upper), exit, reasons=("", "close below the middle band"))


def macd_trend(c: BarChunk) -> list[Trade]:
    _, _, hist = talib.MACD(c.close, 12, 26, 9)
    zero = np.zeros(len(hist))

    def stops(k: int) -> tuple[float, float]:
        return c.close[k] * (1 - 0.002), c.close[k] * (1 + 0.003)

    return simulate(c, cross_up(hist, zero), cross_up(zero, hist), stops, ("", "histogram turned negative"))


STRATEGIES: dict[str, tuple[dict[str, Any], Callable[[BarChunk], list[Trade]]]] = {
    "sma_cross": ({"fast": 5, "slow": 20, "qty": 2}, sma_cross),
    "rsi_reversion": ({"period": 14, "oversold": 30, "overbought": 70, "qty": 2}, rsi_reversion),
    "bollinger_breakout": ({"period": 20, "width": 2, "qty": 2}, bollinger_breakout),
    "macd_trend": (
        {"fast": 12, "slow": 26, "signal": 9, "stop": 0.002, "target": 0.003, "qty": 2},
        macd_trend,
    ),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_strategy_makes_the_computed_trades(name: str, tmp_path: Path, root: Path) -> None:
    params, expected_of = STRATEGIES[name]
    config = write_config(
        tmp_path / f"{name}.toml",
        {
            "engine": {"symbols": SYMBOLS, "window": 60, "chunk": 777},
            "source": {"type": "simulated", "seed": SEED, "bars": BARS, "chunk": SOURCE_CHUNK},
            "strategy": {"host": "lua", "script": str(root / "strategies" / f"{name}.lua"), "params": params},
            "broker": {"type": "paper", "cash": 100000, "fill": "next_open", "commission": 0, "slippage": 0},
        },
    )
    result = run(config)
    for symbol in SYMBOLS:
        c = history(symbol)
        got = result.symbols[symbol]
        assert got.halted is None, got.errors
        expected = expected_of(c)
        assert len(expected) >= 5, "the data should make this strategy trade"
        assert [(t.entry_ts, t.exit_ts) for t in got.trades] == [
            (int(c.ts[a]), int(c.ts[b])) for a, b, _, _ in expected
        ]
        assert [float(t.exit_price) for t in got.trades] == pytest.approx([p for _, _, p, _ in expected])
        assert [t.exit_reason for t in got.trades] == [r for _, _, _, r in expected]
        assert all(t.qty == 2 for t in got.trades)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_example_config_runs(name: str, root: Path) -> None:
    result = run(root / "examples" / f"{name}.toml")
    for s in result.symbols.values():
        assert s.halted is None and s.trades, (s.halted, s.errors[:1], len(s.trades))
        # sized from the equity, not 1 unit: each entry puts about half the symbol's equity at stake
        equity = float(result.start_cash) + np.interp([t.entry_ts for t in s.trades], s.ts, s.pnl)
        notional = np.array([float(t.qty * t.entry_price) for t in s.trades])
        assert np.all((notional > 0.45 * equity) & (notional < 0.55 * equity)), (notional / equity).min()
    if name == "macd_trend":
        # its stops are near enough to be hit, both ways
        reasons = [t.exit_reason for s in result.symbols.values() for t in s.trades]
        assert reasons.count("stop_loss") > 50 and reasons.count("take_profit") > 50
