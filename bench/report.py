"""Time summarize and write_report on 1,000,000-bar synthetic runs, and their memory.

    .venv/bin/python bench/report.py [bars] [repeats]

Three layouts: one symbol; both symbols on the same bar times; and the second
symbol's bars 30 s after the first's, so that the total curve is built on a
merged grid of twice as many times. The first write_report includes drawing
the chart (inline SVG).

Each layout runs in a fresh process, which reports how much summarize and the
first write_report raise its peak RSS (``ru_maxrss``) above what it held once
the synthetic run was built: the memory the report adds to a backtest.
"""

from __future__ import annotations

import json
import resource
import subprocess
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
    return SymbolResult(name, ts, pnl, exposed, trades=trades, orders=2 * len(trades), fills=2 * len(trades))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(result: RunResult, out_dir: Path) -> tuple[float, float]:
    """Seconds taken by summarize and by write_report."""
    started = time.perf_counter()
    summary = summarize(result)
    summarized = time.perf_counter()
    write_report(result, summary, out_dir)
    return summarized - started, time.perf_counter() - summarized


LAYOUTS = {
    "one symbol": None,
    "same bar times": 0,
    "second symbol 30 s later": 30,
}


def child(label: str, bars: int, repeats: int) -> None:
    """Run one layout in this (fresh) process and print its figures as JSON."""
    offset_s = LAYOUTS[label]
    symbols = {"BTCUSDT": synthetic_symbol("BTCUSDT", bars, 0, 1)}
    if offset_s is not None:
        symbols["ETHUSDT"] = synthetic_symbol("ETHUSDT", bars, offset_s * 1_000_000_000, 2)
    result = RunResult("bench.lua", "backtest", Decimal(100_000), symbols)
    with tempfile.TemporaryDirectory() as tmp:
        base = peak_mb()
        started = time.perf_counter()
        summary = summarize(result)
        summarized = time.perf_counter()
        summarize_mb = peak_mb() - base
        write_report(result, summary, Path(tmp))
        runs = [(summarized - started, time.perf_counter() - summarized)]
        report_mb = peak_mb() - base
        runs += [timed(result, Path(tmp)) for _ in range(repeats - 1)]
        rows = sum(1 for _ in (Path(tmp) / "equity.csv").open("rb")) - 1
    print(
        json.dumps(
            {
                "rows": rows,
                "runs": runs,
                "base_mb": base,
                "summarize_mb": summarize_mb,
                "report_mb": report_mb,
            }
        )
    )


def main(bars: int = 1_000_000, repeats: int = 3) -> None:
    for label in LAYOUTS:
        cmd = [sys.executable, __file__, "--child", label, str(bars), str(repeats)]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        runs = out["runs"]
        (first_s, first_w), best_s, best_w = (
            runs[0],
            min(r[0] for r in runs),
            min(r[1] for r in runs),
        )
        print(f"{bars:,} bars, {label}: equity.csv {out['rows']:,} rows")
        print(f"  summarize    first {first_s:.3f} s, best of {repeats} {best_s:.3f} s")
        print(f"  write_report first {first_w:.3f} s, best of {repeats} {best_w:.3f} s")
        print(
            f"  peak RSS +{out['summarize_mb']:.0f} MB after summarize, "
            f"+{out['report_mb']:.0f} MB after write_report "
            f"(over {out['base_mb']:.0f} MB with the run built)"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main(*(int(a) for a in sys.argv[1:]))
