"""A long live session's memory, and what its history costs a restart.

1. Memory kept: a live paper session of the simulated feed (journaled, not
   recorded) run twice, ``--bars`` and twice that, each fresh; the Python
   heap the engine still holds when each has ended (tracemalloc, after a
   collection; the run's result, which the report reads once, let go), and
   the difference per bar and per order: what a session adds the longer it
   runs. The reference: the bytes of the bars themselves (five float64
   prices and an int64 time, 48 a bar), which the engine does not keep.
2. A restart on the longer session's journal: the time to build the engine
   and take up its journal (a run of ``--restart-bars`` bars), against the
   same run on a fresh journal, in the same minutes.

    .venv/bin/python bench/live_memory.py [--bars 50000] [--restart-bars 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sqlite3
import tempfile
import time
import tracemalloc
from pathlib import Path

from engine_core.plugins import get_registry
from engine_core.runner import build_engine

ROOT = Path(__file__).resolve().parent.parent
BAR_BYTES = 48


def config(folder: Path, bars: int) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"live{bars}.toml"
    path.write_text(
        '[engine]\nmode = "live"\nid = "mem"\nsymbols = ["A"]\nwindow = 60\nrecord = false\n'
        f'[source]\ntype = "simulated"\nbars = {bars}\ninterval = 60\n'
        f'[strategy]\nhost = "lua"\nscript = "{ROOT / "strategies" / "sma_cross.lua"}"\nstop_loss = 0.02\n'
        "[strategy.params]\nfast = 5\nslow = 20\nqty = 1\n"
        '[broker]\ntype = "paper"\ncash = 100000\ncommission = 0.001\n'
    )
    return path


def held_after(folder: Path, bars: int) -> tuple[int, int]:
    """(bytes of heap held once a fresh session of ``bars`` bars has ended, its orders)."""
    registry = get_registry()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    engine = build_engine(config(folder, bars), registry)
    result = engine.run()
    orders = sum(s.orders for s in result.symbols.values())
    del result  # the report's copy of the series, made once at the end
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base  # what the engine holds at the session's end
    tracemalloc.stop()
    del engine
    return held, orders


def run_seconds(path: Path) -> float:
    registry = get_registry()
    t0 = time.perf_counter()
    build_engine(path, registry).run()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=50_000)
    parser.add_argument("--restart-bars", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        short, long = Path(a), Path(b)
        held_after(short / "warm", 2_000)  # what the first session makes once (imports, caches) is not growth
        held1, orders1 = held_after(short, args.bars)
        held2, orders2 = held_after(long, 2 * args.bars)
        per_bar = (held2 - held1) / args.bars
        per_order = (held2 - held1) / max(orders2 - orders1, 1)
        print(f"1. heap held after a live paper session: {args.bars:,} bars {held1 / 1e6:.1f} MB ({orders1:,} orders),")
        print(f"   {2 * args.bars:,} bars {held2 / 1e6:.1f} MB ({orders2:,} orders)")
        print(
            f"   growth: {per_bar:.0f} bytes a bar (x{per_bar / BAR_BYTES:.2f} the bar's own {BAR_BYTES}), "
            f"{per_order:,.0f} bytes an order; a symbol-day of one-minute bars: {per_bar * 1440 / 1e3:.0f} KB"
        )

        journal = long / ".engine" / "mem.sqlite"
        with sqlite3.connect(journal) as db:
            rows = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("orders", "events", "broker")}
        size = journal.stat().st_size
        print(
            f"2. a restart on that journal ({size / 1e6:.1f} MB: {rows['orders']:,} orders, "
            f"{rows['events']:,} events, {rows['broker']:,} broker records), {args.restart_bars} bars:"
        )
        fresh = Path(a) / "fresh"
        for k in range(args.rounds):
            t_fresh = run_seconds(config(fresh, args.restart_bars))
            t_hist = run_seconds(config(long, args.restart_bars))
            print(
                f"   round {k + 1}: {t_hist * 1e3:.0f} ms with the history, {t_fresh * 1e3:.0f} ms on a fresh "
                f"journal (x{t_hist / t_fresh:.2f})"
            )
            shutil.rmtree(fresh)


if __name__ == "__main__":
    main()
