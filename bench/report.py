"""Time summarize and write_report on a 1,000,000-bar, two-symbol synthetic run.

    .venv/bin/python bench/report.py [bars]

The second symbol's bars sit 30 s after the first's, so the total curve is
built on a merged grid of twice as many times (the slow path).
"""

from __future__ import annotations

import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from engine_core.model import RoundTrip, Side
from engine_core.report import summarize, write_report
from engine_core.results import RunResult, SymbolResult

MINUTE_NS = 60 * 1_000_000_000


def synthetic_symbol(name: str, bars: int, offset_ns: int, seed: int) -> SymbolResult:
    """A random-walk pnl on 1-minute bars with a round trip every 1,000 bars."""
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000 * 1_000_000_000 + offset_ns + np.arange(bars, dtype=np.int64) * MINUTE_NS
    pnl = np.cumsum(rng.normal(0.0, 5.0, bars))
    exposed = (np.arange(bars) // 500) % 2 == 0
    trades = [
        RoundTrip(
            name,
            Side.BUY,
            Decimal("0.1"),
            int(ts[i]),
            Decimal(100),
            int(ts[i + 499]),
            Decimal(101),
            Decimal(f"{pnl[i + 499] - pnl[i]:.2f}"),
            Decimal("0.02"),
            "exit",
        )
        for i in range(0, bars - 500, 1_000)
    ]
    return SymbolResult(
        name, ts, pnl, exposed, trades=trades, orders=2 * len(trades), fills=2 * len(trades)
    )


def main(bars: int = 1_000_000) -> None:
    symbols = {
        "BTCUSDT": synthetic_symbol("BTCUSDT", bars, 0, 1),
        "ETHUSDT": synthetic_symbol("ETHUSDT", bars, 30 * 1_000_000_000, 2),
    }
    result = RunResult("bench.lua", "backtest", Decimal(100_000), symbols)
    started = time.perf_counter()
    summary = summarize(result)
    summarized = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_report(result, summary, Path(tmp))
        written = time.perf_counter()
        rows = sum(1 for _ in paths["equity"].open("rb")) - 1
    print(f"bars per symbol: {bars:,}, equity.csv rows: {rows:,}")
    print(f"summarize:    {summarized - started:.3f} s")
    print(f"write_report: {written - summarized:.3f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
