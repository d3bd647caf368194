"""Per-bar cost of the Lua host for sma_cross: context update, call and decision.

Drives ``LuaSymbolStrategy.scan`` over 1,000,000 seeded GBM bars in 65,536-bar
chunks with a real ``SymbolView`` (indicators from engine-plugin-indicators),
switching state at each decision the way the worker does. Prints the host's
time per bar (wall and CPU), excluding the view's own indicator updates.

    .venv/bin/python bench/lua_host.py [bars]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from engine_core.builtin.simulated import gbm_bars
from engine_core.config import StrategySection
from engine_core.lua.host import LuaHost
from engine_core.model import State
from engine_core.plugins import build_registry, set_registry
from engine_core.strategy import SymbolView

ROOT = Path(__file__).resolve().parents[1]
CHUNK, WINDOW = 65_536, 500
NEXT = {"setup": State.IN_TRADE, "enter": State.IN_TRADE, "exit": State.WATCH, "cancel": State.WATCH}


def columns(n: int) -> dict[str, np.ndarray]:
    bars = gbm_bars("BENCH", n, seed=7)
    return {k: getattr(bars, k) for k in ("ts", "open", "high", "low", "close", "volume")}


def main(n: int) -> None:
    from engine_plugin_indicators import plugin

    set_registry(build_registry(extra=[("indicators", plugin)], autoload=False))
    config = StrategySection(script="strategies/sma_cross.lua", params={"fast": 10, "slow": 30, "qty": 1})
    host = LuaHost(config, ROOT)
    host.load()
    view = SymbolView("BENCH", config.params, WINDOW)
    strategy = host.bind("BENCH", view)
    data = columns(n)
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
    print(f"sma_cross: {n:,} bars, {decisions:,} decisions, {host_time:.2f} s in the host")
    print(f"{host_time / n * 1e6:.3f} us per bar ({n / host_time:,.0f} bars/s)")
    print(f"{host_cpu / n * 1e6:.3f} us of CPU per bar (steadier on a busy machine)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
