"""The whole engine on 1,000,000 one-minute bars: bars/s and peak RSS.

Generates a seeded GBM data set as CSV (cached in bench/data/), then runs
strategies/sma_cross.lua (fast=10, slow=30, qty=1, next-open fills, no costs)
through the CSV source, storage, indicators, the Lua host, the state machine,
the paper broker and the event bus, and writes the report.

    .venv/bin/python bench/backtest.py [--bars N] [--symbols K] [--no-report]

Peak RSS is the whole process's (ru_maxrss), measured in a fresh process.
In the same process, a plain Python loop does the same SMA(10)/SMA(30)
crossover over the same closes (long only, 1 unit, filled at the next open,
no costs) as the reference: the engine's speed is printed as a ratio of it,
since these machines' speed varies from day to day.

Then the whole process, start-up included: ``engine run -c <config>`` against
a process that reads the CSV itself (pyarrow) and runs the same loop.

What an order costs: the same run with a script that reads the same averages
and finds the same crosses but never decides (``NO_ORDERS``), in a fresh
process too; the CPU the orders add, divided by the orders sent (the best of
``ORDER_ROUNDS`` runs of each, alternated). And the bars alone against the
loop (the in-process ratio the engine would have if an order cost nothing),
with what an order could cost for the engine to reach 0.25x of the loop.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from engine_core import kernel

ROOT = Path(__file__).resolve().parents[1]
ORDER_ROUNDS = 3  # runs with and without orders for an order's cost (the best of each)
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


# sma_cross.lua's crosses, found by its own code, never acted on: the bars' cost without the orders
NO_ORDERS = """
function watch(ctx) cross(ctx) end
function close_watch(ctx) end
function in_trade(ctx) end
"""


def no_orders_script() -> str:
    """sma_cross.lua with its state functions replaced by ``NO_ORDERS``."""
    text = (ROOT / "strategies" / "sma_cross.lua").read_text()
    return text[: text.index("function watch(ctx)")] + NO_ORDERS


def config(folder: Path, symbols: list[str], report: bool, orders: bool = True) -> Path:
    script = ROOT / "strategies" / "sma_cross.lua"
    if not orders:
        script = folder / "no_orders.lua"
        script.write_text(no_orders_script())
    path = folder / ("bench.toml" if orders else "bench_no_orders.toml")
    path.write_text(
        "[engine]\n"
        f"symbols = {json.dumps(symbols)}\n"
        "window = 100\n"
        '[source]\ntype = "csv"\npath = "."\n'
        f'[strategy]\nhost = "lua"\nscript = "{script}"\n'
        "[strategy.params]\nfast = 10\nslow = 30\nqty = 1\n"
        '[broker]\ntype = "paper"\ncash = 100000\nfill = "next_open"\n'
        f'[report]\ndir = "report"\nhtml = {"true" if report else "false"}\n'
    )
    return path


def plain_loop(opens: list[float], closes: list[float]) -> tuple[int, float]:
    """The reference: SMA(10)/SMA(30) crossover, backtrader's definition (a
    change of side, ties passed over), filled at the next bar's open."""
    fast_n, slow_n = 10, 30
    fsum = ssum = 0.0
    side = 0  # +1 fast above slow, -1 below
    pos = 0
    entry = pnl = 0.0
    pending = 0  # +1 buy, -1 sell at the next open
    trades = 0
    for i, c in enumerate(closes):
        if pending:
            if pending > 0:
                pos, entry = 1, opens[i]
            else:
                pos, pnl, trades = 0, pnl + opens[i] - entry, trades + 1
            pending = 0
        fsum += c
        ssum += c
        if i >= fast_n:
            fsum -= closes[i - fast_n]
        if i >= slow_n:
            ssum -= closes[i - slow_n]
        if i >= slow_n - 1:
            diff = fsum / fast_n - ssum / slow_n
            now = 1 if diff > 0 else -1 if diff < 0 else 0
            if now and now != side:
                if side and now > 0 and pos == 0:
                    pending = 1
                elif side and now < 0 and pos > 0:
                    pending = -1
                side = now
    return trades, pnl


def plain_process(folder: str) -> None:
    """The whole-process reference: read each CSV's opens and closes with
    pyarrow (the quickest plain way; the csv module takes about twice as
    long), run the loop, print the round trips."""
    import pyarrow.csv as pcsv

    trades = 0
    for path in sorted(Path(folder).glob("*.csv")):
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(include_columns=["open", "close"]))
        trades += plain_loop(table.column("open").to_pylist(), table.column("close").to_pylist())[0]
    print(json.dumps({"trades": trades}))


def timed(cmd: list[str]) -> tuple[float, float, float, str]:
    """Wall and CPU seconds, peak RSS (MB) and output of a process running ``cmd``."""
    began = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own CPU time and peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{out}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: str, report: bool) -> None:
    """Run once in this process and print the figures as JSON."""
    from engine_core.report import summarize, write_report
    from engine_core.runner import build_engine

    engine = build_engine(path)
    peaks = {"start-up": _peak_mb()}
    t0, c0 = time.perf_counter(), time.process_time()
    result = engine.run()
    run_s, run_cpu = time.perf_counter() - t0, time.process_time() - c0
    peaks["run"] = _peak_mb()
    summary = engine.summary or summarize(result)  # as engine run does
    if report:
        write_report(result, summary, Path(path).parent / "report", html=True)
        peaks["report"] = _peak_mb()
    total_s = time.perf_counter() - t0
    rss = _peak_mb()
    bars = sum(r.bars for r in result.symbols.values())
    loop_s = loop_cpu = 0.0
    loop_trades = 0
    for csv in sorted(Path(path).parent.glob("*.csv")):
        import numpy as np

        data = np.loadtxt(csv, delimiter=",", skiprows=1, usecols=(1, 4), dtype=np.float64)
        opens, closes = data[:, 0].tolist(), data[:, 1].tolist()
        t1, c1 = time.perf_counter(), time.process_time()
        loop_trades += plain_loop(opens, closes)[0]
        loop_s += time.perf_counter() - t1
        loop_cpu += time.process_time() - c1
    trades = sum(len(r.trades) for r in result.symbols.values())
    orders = sum(r.orders for r in result.symbols.values())
    print(
        json.dumps(
            {
                "bars": bars,
                "trades": trades,
                "orders": orders,
                "run_s": run_s,
                "run_cpu": run_cpu,
                "loop_cpu": loop_cpu,
                "total_s": total_s,
                "rss_mb": rss,
                "peaks": peaks,
                "loop_s": loop_s,
                "loop_trades": loop_trades,
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
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, not args.no_report)
        return
    if args.plain:
        plain_process(args.plain)
        return
    symbols = [f"SYM{k}" for k in range(args.symbols)]
    folder = make_data(args.bars, symbols)
    path = config(folder, symbols, not args.no_report)
    cmd = [sys.executable, __file__, "--child", str(path)] + (["--no-report"] if args.no_report else [])
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"backtest: {out['bars']:,} bars, {out['trades']:,} round trips, pnl {out['pnl']}")
    print(f"  {kernel.describe()}")
    print(f"  engine run:         {out['run_s']:.2f} s = {out['bars'] / out['run_s']:,.0f} bars/s")
    print(f"  with report files:  {out['total_s']:.2f} s = {out['bars'] / out['total_s']:,.0f} bars/s")
    print(f"  peak RSS:           {out['rss_mb']:.0f} MB (before the reference loop; target: at most 150 MB)")
    phases = ", ".join(f"{name} {mb:.0f}" for name, mb in out["peaks"].items())
    print(f"  peak RSS by phase:  {phases} MB (the peak so far at the end of each)")
    loop_rate = out["bars"] / out["loop_s"]
    print(f"  plain Python loop:  {out['loop_s']:.2f} s = {loop_rate:,.0f} bars/s ({out['loop_trades']:,} round trips)")
    print(f"  engine / loop:      {out['loop_s'] / out['run_s']:.3f}x wall (target: at least 0.25x)")
    # CPU time is steadier than wall time on a shared machine; the engine's
    # counts every thread (the reader's and the worker's).
    print(
        f"  CPU time:           engine {out['run_cpu']:.2f} s, loop {out['loop_cpu']:.2f} s: "
        f"{out['loop_cpu'] / out['run_cpu']:.3f}x (target: at least 0.25x)"
    )
    # An order's cost is a difference of two runs' CPU, each of which varies by
    # tenths of a second here: the best of ORDER_ROUNDS of each, alternated.
    bare_path = config(folder, symbols, False, orders=False)
    bare_cmd = [sys.executable, __file__, "--child", str(bare_path), "--no-report"]
    with_cmd = [sys.executable, __file__, "--child", str(path), "--no-report"]
    best = {"with": [out["run_cpu"]], "bare": []}
    for _ in range(ORDER_ROUNDS):
        for name, command in (("bare", bare_cmd), ("with", with_cmd)):
            best[name].append(
                json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)["run_cpu"]
            )
    run_cpu, bare_cpu = min(best["with"]), min(best["bare"])
    per_order = (run_cpu - bare_cpu) / out["orders"] * 1e6 if out["orders"] else float("nan")
    print(
        f"  an order:           {per_order:.1f} us CPU ({out['orders']:,} orders; the run {run_cpu:.2f} s, "
        f"the same bars without orders {bare_cpu:.2f} s, each the best of {ORDER_ROUNDS}; target: at most 20 us)"
    )
    # Where the in-process target's floor is: the bars alone, with orders that cost nothing,
    # against the same loop; and what an order could cost for the engine to reach 0.25x.
    budget = (out["loop_cpu"] / 0.25 - bare_cpu) / out["orders"] * 1e6 if out["orders"] else float("nan")
    print(
        f"  the bars alone:     loop / engine without orders {out['loop_cpu'] / bare_cpu:.3f}x CPU "
        f"(the ratio if an order cost nothing); 0.25x leaves an order {budget:.1f} us"
    )
    engine = str(Path(sys.executable).with_name("engine"))
    run = timed([engine, "run", "-c", str(path)] + (["--no-report"] if args.no_report else []))
    plain = timed([sys.executable, __file__, "--plain", str(folder)])
    print("  whole process, start-up included:")
    print(f"    engine run -c:    {run[0]:.2f} s, CPU {run[1]:.2f} s, peak RSS {run[2]:.0f} MB")
    trades = json.loads(plain[3])["trades"]
    print(f"    plain loop:       {plain[0]:.2f} s, CPU {plain[1]:.2f} s (reads the CSV; {trades:,} round trips)")
    print(f"    engine / loop:    {plain[0] / run[0]:.3f}x wall, {plain[1] / run[1]:.3f}x CPU (target: at least 0.3x)")


if __name__ == "__main__":
    main()
