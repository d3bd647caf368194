"""The same strategy in backtrader on the same data gives the same trades and PnL.

backtrader 1.9.78 is the reference: SMA(10)/SMA(30) crossover (its
CrossOver), long only, 1 unit, market orders filled at the next bar's open,
no costs, run on the sample data the README's backtest uses (that example
sizes its entries from the equity; here both trade 1 unit). Every trade
must be the same, to the bar and to the cent, except where the two
averages are equal to within float rounding on the decision bar: there
backtrader's float sums and TA-Lib's may each put the tie a hair to one
side, and the cross is taken one bar apart.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import backtrader as bt
import numpy as np
import pytest
import talib

from engine_core.runner import run
from engine_core.testing import write_config


def backtrader_trades(csv: Path) -> list[tuple[dt.datetime, dt.datetime, float]]:
    trades: list[tuple[dt.datetime, dt.datetime, float]] = []

    class SmaCross(bt.Strategy):
        def __init__(self) -> None:
            self.cross = bt.ind.CrossOver(bt.ind.SMA(period=10), bt.ind.SMA(period=30))

        def next(self) -> None:
            if not self.position and self.cross > 0:
                self.buy(size=1)
            elif self.position and self.cross < 0:
                self.close()

    class Record(bt.Analyzer):
        def notify_trade(self, trade) -> None:  # type: ignore[no-untyped-def]
            if trade.isclosed:
                trades.append((bt.num2date(trade.dtopen), bt.num2date(trade.dtclose), trade.pnl))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        bt.feeds.GenericCSVData(
            dataname=str(csv),
            dtformat="%Y-%m-%d %H:%M:%S",
            datetime=0,
            open=1,
            high=2,
            low=3,
            close=4,
            volume=5,
            openinterest=-1,
            timeframe=bt.TimeFrame.Minutes,
        )
    )
    cerebro.addstrategy(SmaCross)
    cerebro.addanalyzer(Record)
    cerebro.broker.setcash(100_000)
    cerebro.run()
    return trades


TIE = 2.0**-40  # strategies/sma_cross.lua's: averages this close, relative to the price, are equal


def tie_times(csv: Path) -> set[dt.datetime]:
    """Bars where SMA(10) and SMA(30) are equal up to rounding (TIE): the two
    engines' float arithmetic may each call such a bar a hair above or below."""
    rows = np.genfromtxt(csv, delimiter=",", skip_header=1, usecols=(4,))
    times = np.genfromtxt(csv, delimiter=",", skip_header=1, usecols=(0,), dtype="datetime64[s]")
    fast, slow = talib.SMA(rows, 10), talib.SMA(rows, 30)
    with np.errstate(invalid="ignore"):
        tied = np.abs(fast - slow) <= TIE * np.abs(slow)
    return {t.astype(dt.datetime) for t in times[tied]}


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_sma_cross_matches_backtrader(root: Path, tmp_path: Path, symbol: str) -> None:
    csv = root / "examples" / "data" / f"{symbol}.csv"
    want = backtrader_trades(csv)
    config = write_config(
        tmp_path / "sma_cross.toml",
        {
            "engine": {"symbols": [symbol], "window": 100},
            "source": {"type": "csv", "path": str(csv.parent)},
            "strategy": {
                "host": "lua",
                "script": str(root / "strategies" / "sma_cross.lua"),
                "params": {"fast": 10, "slow": 30, "qty": 1},
            },
            "broker": {"type": "paper", "cash": 100000, "fill": "next_open", "commission": 0, "slippage": 0},
        },
    )
    got = run(config).symbols[symbol].trades
    assert len(want) > 300 and len(got) == len(want)
    utc = lambda ns: dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).replace(tzinfo=None)  # noqa: E731
    ties, minute = tie_times(csv), dt.timedelta(minutes=1)
    differ = 0
    for t, (entry, exit_, pnl) in zip(got, want):
        if (utc(t.entry_ts), utc(t.exit_ts)) == (entry, exit_):
            assert float(t.pnl) == pytest.approx(pnl, abs=1e-9)  # backtrader adds floats; ours is exact
            continue
        # the only difference allowed: a cross decided one bar apart, at a tie
        differ += 1
        for ours, theirs in ((utc(t.entry_ts), entry), (utc(t.exit_ts), exit_)):
            if ours != theirs:
                assert abs(ours - theirs) == minute
                assert {ours - minute, theirs - minute} & ties, (ours, theirs)
    assert differ <= len(want) // 50
