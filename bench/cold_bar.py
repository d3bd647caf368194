"""What a live bar costs when the caches are cold, as they are when it comes.

A live engine's bars come in bursts (every symbol's kline closes at the same
instant) with idle time between them: 50 ms in ``bench/live_latency.py``, a
minute on one-minute bars. Meanwhile the machine runs other things and the
caches lose what the burst touched, so each bar of the next burst reads its
symbol's state from memory again.

This bench builds a live engine of ``--symbols`` symbols (the Lua strategy of
``bench/live_latency.py`` that never decides: the common, quiet bar), lets it
take its warm-up bars, then calls each worker's ``handle`` with one bar after
another on this thread, every symbol in turn (a burst), in rounds:

- warm: the rounds back to back (the caches keep what the last round touched);
- cold: before each round, ``--evict`` MB of memory is written (what idle
  time on a shared machine does to the caches).

It prints the CPU per bar of each, with the share of the call into Lua
(``LuaSymbolStrategy``'s call into the sandbox), and the cold figure as a
ratio of the warm one and of a bar of ``bench/order_path.py``'s plain Python
loop (this machine's speed varies from day to day). The rounds alternate
warm and cold; each figure is the median of ``--rounds``.

Last, the Python frames and bytecodes of a quiet bar, counted over
``--traced`` bursts (``bench/order_path.py``'s tracer): figures this
machine's speed does not move, to tell a change of a few percent from noise.

    .venv/bin/python bench/cold_bar.py [--symbols 100] [--bars 200] [--rounds 5] [--evict 64] [--traced 10]

Under callgrind, the instructions of a quiet bar (``--traced 0``: no tracer):

    valgrind --tool=callgrind --toggle-collect='CPyPy_worker___SymbolWorker___handle' \
        .venv/bin/python bench/cold_bar.py --rounds 1 --bars 100 --traced 0 --evict 8
    (total instructions / (symbols * 2 * bars))
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_latency import STRATEGY, reference_us  # noqa: E402
from order_path import Tracer  # noqa: E402

from engine_core.model import Bar  # noqa: E402
from engine_core.runner import build_engine  # noqa: E402

QUIET = STRATEGY.replace("ctx.index % 10 == 0", "ctx.index < 0")  # reads the same averages, never decides
MINUTE = 60_000_000_000


def engine(folder: Path, symbols: int) -> Any:
    (folder / "s.lua").write_text(QUIET)
    names = ", ".join(f'"S{k:03d}"' for k in range(symbols))
    path = folder / "live.toml"
    path.write_text(
        f'[engine]\nmode = "live"\nsymbols = [{names}]\njournal = false\nrecord = false\n'
        '[source]\ntype = "simulated"\nbars = 30\npace = 0.001\n'
        '[strategy]\nhost = "lua"\nscript = "s.lua"\n'
        '[broker]\ntype = "paper"\ncash = 100000\n'
    )
    eng = build_engine(path)
    eng.run()  # the warm-up and 30 live bars: indicators registered, the runtimes warm
    return eng


def timed_lua(workers: list[Any]) -> list[float]:
    """Wrap each worker's call into its sandbox to sum its thread CPU time."""
    spent = [0.0]
    for w in workers:
        call = w.strategy._scan

        def timed(*args: Any, call: Callable[..., Any] = call) -> Any:
            c0 = time.thread_time()
            try:
                return call(*args)
            finally:
                spent[0] += time.thread_time() - c0

        w.strategy._scan = timed
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=200, help="bars per symbol in a round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each, alternated")
    parser.add_argument("--evict", type=int, default=64, help="MB written before each cold burst")
    parser.add_argument(
        "--traced", type=int, default=10, help="bursts whose Python frames and bytecodes are counted (0: none)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        eng = engine(Path(tmp), args.symbols)
        workers = list(eng.workers.values())
        assert all(w.halted is None for w in workers)
        lua = timed_lua(workers)
        junk = np.ones(args.evict * 1024 * 1024 // 8)
        ts = {w.symbol: w.last_ts for w in workers}
        n = 0
        figures: dict[str, list[tuple[float, float]]] = {"warm": [], "cold": []}
        for _ in range(args.rounds):
            for kind in ("warm", "cold"):
                spent = lua[0] = 0.0
                for _ in range(args.bars):
                    n += 1
                    if kind == "cold":
                        junk += 1.0  # (outside the time measured)
                    c0 = time.thread_time()
                    for w in workers:
                        close = 100.0 + (n % 7) * 0.1
                        w.handle(Bar(w.symbol, ts[w.symbol] + n * MINUTE, 100.0, 101.0, 99.0, close, 10.0))
                    spent += time.thread_time() - c0
                bars = args.bars * len(workers)
                figures[kind].append((spent / bars * 1e6, lua[0] / bars * 1e6))
        tracer = Tracer()
        for _ in range(args.traced):
            n += 1
            burst = [Bar(w.symbol, ts[w.symbol] + n * MINUTE, 100.0, 101.0, 99.0, 100.0, 10.0) for w in workers]
            with tracer.on():
                for w, bar in zip(workers, burst):
                    w.handle(bar)
        assert all(w.halted is None and w.orders_sent == 0 for w in workers)
    ref = reference_us()
    print(f"a quiet live bar, {args.symbols} symbols, {args.bars} bursts a round, median of {args.rounds} rounds:")
    med = {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v)) for k, v in figures.items()}
    for kind in ("warm", "cold"):
        us, in_lua = med[kind]
        print(f"  {kind}: {us:5.1f} us CPU a bar (handle), of which the call into Lua {in_lua:4.1f} us")
    (warm, warm_lua), (cold, cold_lua) = med["warm"], med["cold"]
    print(
        f"  cold / warm: {cold / warm:.2f}x; the caches cost {cold - warm:.1f} us a bar, "
        f"{cold_lua - warm_lua:.1f} of it in Lua ({args.evict} MB written before each cold burst)"
    )
    print(f"  cold, as a ratio: {cold / ref:.0f}x a bar of the reference loop ({ref:.3f} us)")
    if args.traced == 0:
        return
    traced = args.traced * len(workers)
    print(
        f"  a quiet bar runs {tracer.frames / traced:.1f} Python frames and {tracer.opcodes / traced:.0f} bytecodes "
        f"(counted over {args.traced} bursts; the machine's speed does not move these)"
    )


if __name__ == "__main__":
    main()
