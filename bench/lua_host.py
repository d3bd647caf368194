"""Per-bar cost of the Lua host for sma_cross: context update, call and decision,
under each CPU budget of the sandbox.

Drives ``LuaSymbolStrategy.scan`` over 1,000,000 seeded GBM bars in 65,536-bar
chunks with a real ``SymbolView`` (indicators from engine-plugin-indicators),
switching state at each decision the way the worker does, and prints the
host's time per bar (wall and CPU), excluding the view's own indicator
updates. Then the scan call alone, as a live bar makes it: one call per bar
(``scan(state, i, i + 1)``). Each is measured under ``budget = "time"`` (the
default: no hook, the watchdog) and ``budget = "instructions"`` (a count
hook), in alternating rounds, and printed as a ratio.

    .venv/bin/python bench/lua_host.py [--bars N] [--rounds K]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from engine_core.builtin.simulated import gbm_bars
from engine_core.config import StrategySection
from engine_core.lua.host import LuaHost
from engine_core.model import State
from engine_core.plugins import build_registry, set_registry
from engine_core.strategy import SymbolStrategy, SymbolView

ROOT = Path(__file__).resolve().parents[1]
CHUNK, WINDOW = 65_536, 500
CALLS = 100_000  # one-bar scan calls measured per round
NEXT = {"setup": State.IN_TRADE, "enter": State.IN_TRADE, "exit": State.WATCH, "cancel": State.WATCH}
BUDGETS = ("time", "instructions")


def columns(n: int) -> dict[str, np.ndarray]:
    bars = gbm_bars("BENCH", n, seed=7)
    return {k: getattr(bars, k) for k in ("ts", "open", "high", "low", "close", "volume")}


def bind(budget: str) -> tuple[SymbolStrategy, SymbolView]:
    config = StrategySection(
        script="strategies/sma_cross.lua", params={"fast": 10, "slow": 30, "qty": 1}, budget=budget
    )
    host = LuaHost(config, ROOT)
    host.load()
    view = SymbolView("BENCH", config.params, WINDOW)
    return host.bind("BENCH", view), view


def per_bar(budget: str, data: dict[str, np.ndarray], n: int) -> tuple[float, float, int]:
    """The host's wall and CPU seconds over ``n`` bars in chunks; decisions made."""
    strategy, view = bind(budget)
    state, decisions, host_time, host_cpu = State.WATCH, 0, 0.0, 0.0
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        first = max(0, start - (WINDOW - 1))
        view.set_data({k: v[first:stop] for k, v in data.items()}, start - first)
        t0, c0 = time.perf_counter(), time.process_time()
        i = 0
        while i < stop - start:
            k, decision = strategy.scan(state, i, stop - start)
            if decision is None:
                break
            decisions += 1
            state = NEXT[decision.action]  # the worker: setup -> close_watch -> enter, here in one step
            i = k + 1
        host_time += time.perf_counter() - t0
        host_cpu += time.process_time() - c0
    return host_time, host_cpu, decisions


def scan_calls(budget: str, data: dict[str, np.ndarray]) -> float:
    """CPU seconds of CALLS one-bar scan calls (the live path's call)."""
    strategy, view = bind(budget)
    view.set_data({k: v[: CALLS + WINDOW] for k, v in data.items()}, WINDOW)
    state = State.WATCH
    c0 = time.process_time()
    for i in range(CALLS):
        _, decision = strategy.scan(state, i, i + 1)
        if decision is not None:
            state = NEXT[decision.action]
    return time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per budget")
    args = parser.parse_args()
    from engine_plugin_indicators import plugin

    set_registry(build_registry(extra=[("indicators", plugin)], autoload=False))
    n = args.bars
    data = columns(max(n, CALLS + WINDOW))
    bar_cpu: dict[str, list[float]] = {b: [] for b in BUDGETS}
    bar_wall: dict[str, list[float]] = {b: [] for b in BUDGETS}
    call_cpu: dict[str, list[float]] = {b: [] for b in BUDGETS}
    decisions = 0
    for _ in range(args.rounds):
        for budget in BUDGETS:
            wall, cpu, decisions = per_bar(budget, data, n)
            bar_wall[budget].append(wall / n * 1e6)
            bar_cpu[budget].append(cpu / n * 1e6)
            call_cpu[budget].append(scan_calls(budget, data) / CALLS * 1e6)
    print(f"sma_cross: {n:,} bars, {decisions:,} decisions; {args.rounds} alternating rounds (best of each)")
    for budget in BUDGETS:
        print(
            f"  budget = {budget!r:15} per bar {min(bar_cpu[budget]):.3f} us of CPU "
            f"({min(bar_wall[budget]):.3f} wall); "
            f"a one-bar scan call {min(call_cpu[budget]):.3f} us of CPU"
        )
    t, i = "time", "instructions"
    print(
        f"  time / instructions: per bar {min(bar_cpu[t]) / min(bar_cpu[i]):.3f}x CPU, "
        f"per one-bar scan call {min(call_cpu[t]) / min(call_cpu[i]):.3f}x CPU"
    )


if __name__ == "__main__":
    main()
