"""strategies/sma_cross.lua calls two averages equal only up to rounding.

TA-Lib's running sums put two averages that are equal in decimal a few
float epsilons apart: such a bar is a tie, passed over. A real gap, however
small next to the price, is a side: the cross is taken on its bar, as
backtrader, backtesting.py and a plain loop take it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import talib

from engine_core.runner import run
from engine_core.testing import write_config

TIE = 2.0**-40  # the script's TIE, a fraction of the price
MINUTE = 60


def gap(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SMA(10) - SMA(30) as TA-Lib computes it, and SMA(30)."""
    fast, slow = talib.SMA(close, 10), talib.SMA(close, 30)
    return fast - slow, slow


def first_entry_bar(tmp_path: Path, root: Path, close: np.ndarray) -> int:
    """Index of the bar whose open filled the engine's first entry."""
    opens = np.concatenate(([close[0]], close[:-1]))
    rows = [
        ["X", MINUTE * i, float(o), float(max(o, c)), float(min(o, c)), float(c), 1.0]
        for i, (o, c) in enumerate(zip(opens, close))
    ]
    config = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["X"], "window": 60},
            "source": {"type": "replay", "bars": rows},
            "strategy": {
                "host": "lua",
                "script": str(root / "strategies" / "sma_cross.lua"),
                "params": {"fast": 10, "slow": 30, "qty": 1},
            },
            "broker": {"type": "paper", "cash": 100000, "fill": "next_open"},
        },
    )
    exposed = run(config).symbols["X"].exposed  # a position open at the bar's close
    assert exposed.any(), "the data should make the strategy trade"
    return int(exposed.argmax())


def decimal_tie_at_a_cross() -> tuple[np.ndarray, int]:
    """Cent prices where SMA(10) == SMA(30) exactly in decimal on bar t, between
    a bar below and a bar above, and TA-Lib computes the tie a hair above."""
    rng = np.random.default_rng(3)
    while True:
        cents = 10_000 + np.cumsum(rng.integers(-8, 9, 90))
        g, _ = gap(cents / 100)
        for t in range(35, 80):
            if not (g[t - 1] < 0 < g[t]):
                continue
            # 30 * gap in cents is 3 * (9 fast cents + x) - (29 slow cents + x): zero for x below
            rest = 3 * cents[t - 9 : t].sum() - cents[t - 29 : t].sum()
            if rest % 2:
                continue
            tied = cents.copy()
            tied[t] = -rest // 2
            close = tied / 100
            g, slow = gap(close)
            if g[t - 1] < -TIE * slow[t - 1] and 0 < g[t] and np.all(g[t + 1 : t + 3] > TIE * slow[t + 1 : t + 3]):
                return close, t


def test_a_decimal_tie_is_passed_over_whatever_its_rounding(tmp_path: Path, root: Path) -> None:
    close, t = decimal_tie_at_a_cross()
    g, slow = gap(close)
    assert 0 < g[t] <= TIE * slow[t]  # rounding put the tie above: a tolerance of 0 would cross here
    # below, equal, above: the cross is on bar t + 1 and its entry fills at bar t + 2's open
    assert first_entry_bar(tmp_path, root, close) == t + 2


def test_a_real_gap_far_below_the_price_is_a_side(tmp_path: Path, root: Path) -> None:
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 120)))
    g, slow = gap(close)
    t = next(i for i in range(40, 100) if g[i - 1] < 0 < g[i])
    # move bar t's close so that fast is above slow by 1e-10 of the price (the gap moves by
    # 1/10 - 1/30 = 1/15 of the change), a gap the former tolerance of 1e-9 called a tie
    close[t] += 15 * (1e-10 * slow[t] - g[t])
    g, slow = gap(close)
    assert g[t - 1] < -TIE * slow[t - 1] and TIE * slow[t] < g[t] < 1e-9 * slow[t]
    assert first_entry_bar(tmp_path, root, close) == t + 1
