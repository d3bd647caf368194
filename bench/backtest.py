"""The whole engine on 1,000,000 one-minute bars: bars/s and peak RSS.

Generates a seeded GBM data set as CSV (cached in bench/data/), then runs
strategies/sma_cross.lua (fast=10, slow=30, qty=1, next-open fills, no costs)
through the CSV source, storage, indicators, the Lua host, the state machine,
the paper broker and the event bus, and writes the report.

    .venv/bin/python bench/backtest.py [--bars N] [--symbols K] [--no-report]

Peak RSS is the whole process's (ru_maxrss), measured in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"


def make_data(bars: int, symbols: list[str]) -> Path:
    from engine_plugin_csv.sample import write_gbm_csv

    folder = DATA / f"gbm_{bars}"
    folder.mkdir(parents=True, exist_ok=True)
    for k, symbol in enumerate(symbols):
        path = folder / f"{symbol}.csv"
        if not path.exists():
            write_gbm_csv(path, symbol, bars, seed=1000 + k)
    return folder


def config(folder: Path, symbols: list[str], report: bool) -> Path:
    path = folder / "bench.toml"
    path.write_text(
        "[engine]\n"
        f"symbols = {json.dumps(symbols)}\n"
        "window = 100\n"
        '[source]\ntype = "csv"\npath = "."\n'
        f'[strategy]\nhost = "lua"\nscript = "{ROOT / "strategies" / "sma_cross.lua"}"\n'
        "[strategy.params]\nfast = 10\nslow = 30\nqty = 1\n"
        '[broker]\ntype = "paper"\ncash = 100000\nfill = "next_open"\n'
        f'[report]\ndir = "report"\nhtml = {"true" if report else "false"}\n'
    )
    return path


def child(path: str, report: bool) -> None:
    """Run once in this process and print the figures as JSON."""
    from engine_core.report import summarize, write_report
    from engine_core.runner import build_engine

    engine = build_engine(path)
    t0 = time.perf_counter()
    result = engine.run()
    run_s = time.perf_counter() - t0
    summary = summarize(result)
    if report:
        write_report(result, summary, Path(path).parent / "report", html=True)
    total_s = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bars = sum(r.bars for r in result.symbols.values())
    trades = sum(len(r.trades) for r in result.symbols.values())
    print(
        json.dumps(
            {
                "bars": bars,
                "trades": trades,
                "run_s": run_s,
                "total_s": total_s,
                "rss_mb": rss,
                "pnl": summary["total"]["pnl"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000, help="bars per symbol")
    parser.add_argument("--symbols", type=int, default=1)
    parser.add_argument("--no-report", action="store_true", help="do not write the report files")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, not args.no_report)
        return
    symbols = [f"SYM{k}" for k in range(args.symbols)]
    folder = make_data(args.bars, symbols)
    path = config(folder, symbols, not args.no_report)
    cmd = [sys.executable, __file__, "--child", str(path)] + (["--no-report"] if args.no_report else [])
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"backtest: {out['bars']:,} bars, {out['trades']:,} round trips, pnl {out['pnl']}")
    print(f"  engine run:         {out['run_s']:.2f} s = {out['bars'] / out['run_s']:,.0f} bars/s")
    print(f"  with report files:  {out['total_s']:.2f} s = {out['bars'] / out['total_s']:,.0f} bars/s")
    print(f"  peak RSS:           {out['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
