"""The whole engine on the simulated feed with a Python strategy that trades;
the expected trades are computed independently with numpy."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from engine_core.builtin.simulated import gbm_bars
from engine_core.model import BarChunk
from engine_core.runner import run
from engine_core.testing import write_config

SYMBOLS = ["AAA", "BBB"]
FAST, SLOW, COMMISSION = 5, 20, Decimal("0.001")


def expected_trades(c: BarChunk) -> tuple[list[tuple[int, int]], int | None]:
    """(entry bar, exit bar) pairs and the entry bar of a position still open:
    a cross up on bar i buys at the open of i+1; a cross down sells at the next open."""
    sma = lambda p: np.convolve(c.close, np.ones(p) / p, "valid")  # noqa: E731
    fast, slow = sma(FAST)[SLOW - FAST :], sma(SLOW)  # both start at bar SLOW-1
    trades, entry = [], None
    for k in range(1, len(fast) - 1):  # the last bar has no next open
        i = k + SLOW - 1
        if entry is None and fast[k - 1] <= slow[k - 1] and fast[k] > slow[k]:
            entry = i + 1
        elif entry is not None and i >= entry and fast[k - 1] >= slow[k - 1] and fast[k] < slow[k]:
            trades.append((entry, i + 1))
            entry = None
    return trades, entry


@pytest.fixture
def config(tmp_path: Path, root: Path) -> Path:
    shutil.copy(root / "examples" / "python_sma_cross.py", tmp_path / "sma.py")
    return write_config(
        tmp_path / "sma.toml",
        {
            "engine": {"symbols": SYMBOLS, "window": 50, "chunk": 777},
            "source": {"type": "simulated", "seed": 9, "bars": 3000},
            "strategy": {
                "host": "python",
                "class": "sma.py:SmaCross",
                "params": {"fast": FAST, "slow": SLOW, "qty": 3},
            },
            "broker": {"type": "paper", "cash": 50000, "commission": float(COMMISSION)},
        },
    )


def test_python_strategy_trades_exactly_as_computed(config):
    result = run(config)
    assert result.start_cash == 50000
    for symbol in SYMBOLS:
        c = gbm_bars(symbol, 3000, seed=9)
        want, still_open = expected_trades(c)
        r = result.symbols[symbol]
        assert len(want) > 20 and r.bars == 3000
        assert [(t.entry_ts, t.exit_ts) for t in r.trades] == [(int(c.ts[a]), int(c.ts[b])) for a, b in want]
        for t, (a, b) in zip(r.trades, want):
            entry, exit_ = Decimal(repr(float(c.open[a]))), Decimal(repr(float(c.open[b])))
            assert t.pnl == (exit_ - entry) * 3 - (entry + exit_) * 3 * COMMISSION
        # final PnL: closed trades plus an open position marked at the last close
        expected = float(sum(t.pnl for t in r.trades))
        if still_open is not None:
            entry_px = float(c.open[still_open])
            expected += 3 * (float(c.close[-1]) - entry_px) - entry_px * 3 * float(COMMISSION)
        assert r.position_qty == (3 if still_open is not None else 0)
        assert r.pnl[-1] == pytest.approx(expected, rel=1e-9)


def test_backtest_is_deterministic(config):
    a, b = run(config), run(config)
    for symbol in SYMBOLS:
        assert a.symbols[symbol].trades == b.symbols[symbol].trades
        assert np.array_equal(a.symbols[symbol].pnl, b.symbols[symbol].pnl)


def test_live_mode_gives_the_same_decisions(config, tmp_path):
    text = config.read_text().replace('mode = "backtest"', "")
    live = tmp_path / "live.toml"
    live.write_text(text.replace("[engine]\n", '[engine]\nmode = "live"\n', 1))
    back, now = run(config), run(live)
    assert now.mode == "live"
    for symbol in SYMBOLS:
        assert [(t.entry_ts, t.exit_ts, t.pnl) for t in now.symbols[symbol].trades] == [
            (t.entry_ts, t.exit_ts, t.pnl) for t in back.symbols[symbol].trades
        ]
