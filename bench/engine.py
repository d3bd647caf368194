"""Core benchmark: state-machine transitions/s and full-pipeline bars/s.

The pipeline runs the whole engine (simulated source, dispatcher, one worker
thread per symbol, storage, strategy host, state machine, paper broker,
events) on seeded simulated bars, for 1 and for 100 symbols, with a Python
strategy that trades every 50 bars.

    .venv/bin/python bench/engine.py [--bars N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from engine_core.model import State
from engine_core.runner import build_engine
from engine_core.statemachine import StateMachine
from engine_core.testing import python_strategy, write_config

EVERY_50 = {  # a round trip every 50 bars
    "watch": 'return "setup" if ctx.index % 50 == 0 else None',
    "close_watch": 'return "enter"',
    "in_trade": 'return "exit" if ctx.index % 50 == 25 else None',
}


def transitions_per_second(n: int = 300_000) -> float:
    sm = StateMachine("X")
    w, c, i = State.WATCH, State.CLOSE_WATCH, State.IN_TRADE
    t = time.perf_counter()
    for k in range(n):
        sm.transition(c, k, "setup")
        sm.transition(i, k, "entry filled")
        sm.transition(w, k, "exit")
    return 3 * n / (time.perf_counter() - t)


def pipeline(symbols: int, bars: int, work: Path) -> tuple[float, int]:
    config = write_config(
        work / f"bench_{symbols}.toml",
        {
            "engine": {"symbols": [f"S{k:03d}" for k in range(symbols)], "window": 100},
            "source": {"type": "simulated", "seed": 1, "bars": bars},
            "strategy": python_strategy(work, **EVERY_50),
            "broker": {"type": "paper", "cash": 1_000_000},
        },
    )
    engine = build_engine(config)
    t = time.perf_counter()
    result = engine.run()
    dt = time.perf_counter() - t
    total = sum(r.bars for r in result.symbols.values())
    trades = sum(len(r.trades) for r in result.symbols.values())
    assert total == symbols * bars and trades > 0
    return total / dt, trades


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=200_000, help="bars per symbol for 1 symbol")
    args = parser.parse_args()
    print(f"state machine: {transitions_per_second():,.0f} transitions/s")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for symbols, bars in ((1, args.bars), (100, max(1, args.bars // 50))):
            rate, trades = pipeline(symbols, bars, work)
            print(
                f"pipeline, {symbols:>3} symbol(s) x {bars:,} bars, Python host: "
                f"{rate:,.0f} bars/s ({trades:,} round trips)"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MB (python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
