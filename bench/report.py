"""Time summarize and write_report on a 1,000,000-bar, two-symbol synthetic run.

    .venv/bin/python bench/report.py [bars] [repeats]

Two layouts: both symbols on the same bar times, and the second symbol's bars
30 s after the first's, so that the total curve is built on a merged grid of
twice as many times. The first write_report includes importing matplotlib.
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


def timed(result: RunResult, out_dir: Path) -> tuple[float, float]:
    """Seconds taken by summarize and by write_report."""
    started = time.perf_counter()
    summary = summarize(result)
    summarized = time.perf_counter()
    write_report(result, summary, out_dir)
    return summarized - started, time.perf_counter() - summarized


def main(bars: int = 1_000_000, repeats: int = 3) -> None:
    for label, offset_s in (("same bar times", 0), ("second symbol 30 s later", 30)):
        symbols = {
            "BTCUSDT": synthetic_symbol("BTCUSDT", bars, 0, 1),
            "ETHUSDT": synthetic_symbol("ETHUSDT", bars, offset_s * 1_000_000_000, 2),
        }
        result = RunResult("bench.lua", "backtest", Decimal(100_000), symbols)
        with tempfile.TemporaryDirectory() as tmp:
            runs = [timed(result, Path(tmp)) for _ in range(repeats)]
            rows = sum(1 for _ in (Path(tmp) / "equity.csv").open("rb")) - 1
        (first_s, first_w), best_s, best_w = (
            runs[0],
            min(r[0] for r in runs),
            min(r[1] for r in runs),
        )
        print(f"{bars:,} bars x 2 symbols, {label}: equity.csv {rows:,} rows")
        print(f"  summarize    first {first_s:.3f} s, best of {repeats} {best_s:.3f} s")
        print(f"  write_report first {first_w:.3f} s, best of {repeats} {best_w:.3f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
