"""What one order costs: µs, Python calls, bytecodes and modules crossed per
order and per round trip, through the paper broker (a backtest) and through
``engine_core.testing.ScriptedBroker`` (a venue double answering from its own
thread, in a live run).

Each broker runs the same bars twice with the same strategy (in Python and
in Lua, ``--hosts``): once
entering every ``--every`` bars and exiting on the next (orders), once never
deciding (no orders). What the first costs more than the second, divided by
the orders it sent, is the cost of an order:

- µs: CPU time of the whole process (every thread), best of ``--rounds``;
- calls: cProfile's call count (Python functions and built-ins), every thread
  (each profiled on its own CPU clock, so a thread is not charged for another's);
- frames, bytecodes, module crossings: a trace of every thread on a
  ``--trace-bars`` sample (a Python frame called from a frame of another
  module is a crossing); the modules listed are those the order path calls
  into (more calls with orders than without).

A plain Python loop over the same bars, without orders (a running SMA of the
closes), is timed in the same run, so that figures compare across days:
``loop bars`` is an order's µs in bars of that loop.

The records an order leaves are made alone too, in a loop with nothing
between them (``records_alone``: its client id, the ``Order``, the
``InFlight``, the ``Fill`` and ``OrderUpdate`` of its fill, the Decimal price
and the cash it moves; per round trip the ``Entry`` and the ``RoundTrip``):
``x records`` is an order's µs as a multiple of that, what the path costs
beyond the objects it must make.

The paper broker's runs are backtests of ``--bars`` bars; the scripted
broker's are live runs of ``--live-bars`` bars, paced (0.5 ms) so that the
venue's thread answers between bars, with no journal (a live run's default
journal would add its commits to every order).

    .venv/bin/python bench/order_path.py [--bars 20000] [--live-bars 4000] [--every 10]
        [--rounds 3] [--trace-bars 2000] [--top 25]

``--top N`` also prints the N functions whose calls and own time grow most
with orders (paper broker), the list to cut from.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine_core import kernel

ENTER_EVERY = """
class S:
    def watch(self, ctx):
        return "enter" if ctx.index % {every} == 0 else None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return "exit"
"""
# The same in Lua (the shipped strategies' language); ``orders = 0`` never decides.
LUA = """
function watch(ctx)
  if ctx.index % ctx.params.every == 0 and ctx.params.orders == 1 then return "enter" end
end
function close_watch(ctx) end
function in_trade(ctx) return "exit" end
"""
NEVER = """
class S:
    def watch(self, ctx):
        return None if ctx.index % {every} == 0 else None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return None
"""

BROKERS = {
    "paper": ("backtest", {"type": "paper", "cash": 1_000_000, "fill": "next_open"}),
    "scripted": ("live", {"type": "scripted", "venue": "order_path", "script": ["ack", "fill"]}),
}
LIVE_PACE = 0.0005  # seconds between live bars: the venue's thread answers between them


def prices(n: int) -> list[tuple[float, float, float, float]]:
    out = []
    for i in range(n):
        c = 100.0 + (i % 17) * 0.25
        out.append((c - 0.1, c + 0.5, c - 0.5, c))
    return out


def records_alone(trips: int) -> float:
    """CPU seconds to make, ``trips`` times, the records of a round trip (two
    orders filled at the market, one trade) with nothing else between them."""
    from engine_core.ledger import Entry
    from engine_core.model import BUY, SELL, Fill, Order, OrderType, RoundTrip, TimeInForce, to_decimal
    from engine_core.orders import InFlight, OrderStatus, OrderUpdate, UpdateKind

    market, gtc, intent, filled, kind = (
        OrderType.MARKET,
        TimeInForce.GTC,
        OrderStatus.INTENT,
        OrderStatus.FILLED,
        UpdateKind.FILL,
    )
    one, zero, head = Decimal(1), Decimal(0), "order_path-A-"
    c0 = time.process_time()
    cash = Decimal(1_000_000)
    for k in range(trips):
        ts = 2 * k
        entry = exit_ = None
        for side, at, px in ((BUY, ts, 100.25), (SELL, ts + 1, 101.5)):
            order = Order(f"{head}{ts}", "A", side, one, at, "r", market, None, gtc, None, None)
            flight = InFlight(order, intent, bar=at)
            price = to_decimal(px)
            fill = Fill(order.client_id, "A", side, one, price, zero, at + 1, order.client_id)
            OrderUpdate(kind, order.client_id, "A", at + 1, fill)
            flight.filled += fill.qty
            flight.status = filled
            notional = fill.qty * fill.price
            cash = cash - (notional + fill.commission) if side is BUY else cash - (-notional + fill.commission)
            if entry is None:
                entry = Entry(fill.ts, price, one, zero, side, at)
            else:
                exit_ = fill
        assert entry is not None and exit_ is not None
        pnl = (exit_.price - entry.price) * entry.qty
        RoundTrip("A", BUY, one, entry.ts, entry.price, exit_.ts, exit_.price, pnl, zero, "r")
    return time.process_time() - c0


def plain_loop(bars: list[tuple[float, float, float, float]]) -> float:
    """The reference: each bar read and a running SMA(10) of the closes, no orders."""
    total = 0.0
    window: list[float] = []
    last = 0.0
    for _o, _h, _l, c in bars:
        window.append(c)
        total += c
        if len(window) > 10:
            total -= window.pop(0)
        last = total / len(window)
    return last


class Run:
    """One engine run of a broker, with or without orders."""

    def __init__(self, folder: Path, broker: str, bars: int, every: int | None, host: str) -> None:
        from engine_core.testing import replay_rows, write_config

        mode, table = BROKERS[broker]
        name = f"{broker}_{bars}_{'orders' if every else 'none'}"
        if host == "lua":
            (folder / "order_path.lua").write_text(LUA)
            strategy = {
                "host": "lua",
                "script": "order_path.lua",
                "params": {"every": every or 10, "orders": int(bool(every))},
            }
        else:
            (folder / f"{name}.py").write_text((ENTER_EVERY if every else NEVER).format(every=every or 10))
            strategy = {"host": "python", "class": f"{name}.py:S"}
        engine: dict[str, Any] = {"mode": mode, "symbols": ["A"], "window": 50, "journal": False}
        source: dict[str, Any] = {"type": "replay", "bars": replay_rows("A", prices(bars))}
        if mode == "live":
            source["pace"] = LIVE_PACE
        self.path = write_config(
            folder / f"{name}.toml",
            {
                "engine": engine,
                "source": source,
                "strategy": {**strategy, "qty": 1},
                "broker": table,
            },
        )
        self.broker = broker

    def engine(self) -> Any:
        import engine_core.testing as testing
        from engine_core.runner import build_engine
        from engine_core.testing import builtin_registry, venue

        if self.broker == "scripted":
            venue("order_path", reset=True)
        return build_engine(self.path, builtin_registry(("testing", testing)))

    def run(self, wrap: Callable[[], Any] | None = None) -> tuple[float, int, int]:
        """(CPU seconds of the run, orders, round trips)."""
        engine = self.engine()
        c0 = time.process_time()
        if wrap is None:
            result = engine.run()
        else:
            with wrap():
                result = engine.run()
        cpu = time.process_time() - c0
        r = result.symbols["A"]
        assert r.halted is None, r.halted
        return cpu, r.fills, len(r.trades)


@contextmanager
def profiled(stats: list[pstats.Stats]) -> Iterator[None]:
    """cProfile in this thread and in every thread started meanwhile (one
    profiler each: a profiler follows one thread's calls)."""
    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start(*_: Any) -> None:
        p = cProfile.Profile(time.thread_time)
        with lock:
            profilers.append(p)
        p.enable()  # replaces this thread's setprofile hook with the profiler

    main = cProfile.Profile(time.thread_time)
    threading.setprofile(start)
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        merged = pstats.Stats(main)
        for p in profilers:
            p.create_stats()
            merged.add(p)
        stats.append(merged)


class Tracer:
    """Counts Python frames, bytecodes and module crossings in every thread."""

    def __init__(self) -> None:
        self.frames = 0
        self.opcodes = 0
        self.crossings = 0
        self.calls_into: Counter[str] = Counter()
        self._lock = threading.Lock()

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        if event != "call":
            return None
        module = _module(frame)
        back = frame.f_back
        crossed = back is not None and _module(back) != module
        frame.f_trace_opcodes = True
        with self._lock:
            self.frames += 1
            self.calls_into[module] += 1
            if crossed:
                self.crossings += 1
        return self.local

    def local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            self.opcodes += 1  # the GIL makes += safe enough for a count
        return self.local

    @contextmanager
    def on(self) -> Iterator[None]:
        threading.settrace(self.trace)
        sys.settrace(self.trace)
        try:
            yield
        finally:
            sys.settrace(None)
            threading.settrace(None)  # type: ignore[arg-type]


def _module(frame: Any) -> str:
    name = frame.f_globals.get("__name__", "?")
    if name.startswith("namedtuple_"):  # a NamedTuple's generated __new__
        return "(NamedTuple constructors)"
    return "(the strategy)" if name.startswith("engine_strategy_") else name  # one name in both runs


def per(x: float, n: int) -> float:
    return x / n if n else float("nan")


def measure(folder: Path, broker: str, host: str, args: argparse.Namespace, loop_us: float) -> dict[str, Any]:
    bars = args.bars if BROKERS[broker][0] == "backtest" else args.live_bars
    with_orders = Run(folder, broker, bars, args.every, host)
    without = Run(folder, broker, bars, None, host)
    best: dict[bool, float] = {}
    counts = (0, 0)
    for _ in range(args.rounds):  # alternate, keep each one's best
        for orders, run in ((True, with_orders), (False, without)):
            cpu, n, trips = run.run()
            best[orders] = min(best.get(orders, cpu), cpu)
            if orders:
                counts = (n, trips)
    orders, trips = counts
    extra_us = (best[True] - best[False]) * 1e6

    stats: list[pstats.Stats] = []
    _, n_prof, trips_prof = with_orders.run(lambda: profiled(stats))
    without.run(lambda: profiled(stats))
    calls = stats[0].total_calls - stats[1].total_calls  # type: ignore[attr-defined]

    small_with = Run(folder, broker, args.trace_bars, args.every, host)
    small_without = Run(folder, broker, args.trace_bars, None, host)
    traced_with, traced_without = Tracer(), Tracer()
    _, n_traced, trips_traced = small_with.run(traced_with.on)
    small_without.run(traced_without.on)
    grew = {  # modules called more than once every 20 orders more with orders than without
        m: traced_with.calls_into[m] - traced_without.calls_into[m]
        for m in traced_with.calls_into
        if traced_with.calls_into[m] - traced_without.calls_into[m] >= 0.05 * n_traced
    }
    return {
        "broker": f"{broker}/{host}",
        "orders": orders,
        "trips": trips,
        "us": per(extra_us, orders),
        "us_trip": per(extra_us, trips),
        "loop_bars": per(extra_us, orders) / loop_us,
        "calls": per(calls, n_prof),
        "calls_trip": per(calls, trips_prof),
        "frames": per(traced_with.frames - traced_without.frames, n_traced),
        "opcodes": per(traced_with.opcodes - traced_without.opcodes, n_traced),
        "opcodes_trip": per(traced_with.opcodes - traced_without.opcodes, trips_traced),
        "crossings": per(traced_with.crossings - traced_without.crossings, n_traced),
        "modules": sorted(grew, key=lambda m: -grew[m]),
        "module_calls": {m: per(c, n_traced) for m, c in grew.items()},
        "stats": stats,
        "prof_orders": n_prof,
    }


def top_functions(m: dict[str, Any], n: int) -> None:
    """The functions whose calls and own time grow most with orders."""
    with_orders, without = (s.stats for s in m["stats"])  # type: ignore[attr-defined]
    rows = []
    for key, (_cc, nc, tt, ct, _) in with_orders.items():
        base = without.get(key, (0, 0, 0.0, 0.0, None))
        dn, dt, dc = nc - base[1], tt - base[2], ct - base[3]
        if dn > 0:
            filename, line, name = key
            where = name if filename == "~" else f"{Path(filename).parent.name}/{Path(filename).name}:{line}({name})"
            rows.append((dn, dt, dc, where))
    orders = m["prof_orders"]
    for title, order in (("called most more often", 0), ("whose own time grows most", 1)):
        print(f"\n{m['broker']}: the {n} functions {title} with orders (per order, cProfile on thread CPU time)")
        print(f"{'calls':>7} {'own µs':>7} {'cum µs':>7}  function")
        for dn, dt, dc, where in sorted(rows, key=lambda r: r[order], reverse=True)[:n]:
            print(f"{dn / orders:7.2f} {dt / orders * 1e6:7.2f} {dc / orders * 1e6:7.2f}  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=20_000, help="bars of the timed and profiled runs")
    parser.add_argument("--live-bars", type=int, default=4_000, help="bars of the live runs (paced)")
    parser.add_argument("--every", type=int, default=10, help="an entry every N bars (and its exit on the next)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace-bars", type=int, default=2_000, help="bars of the traced sample")
    parser.add_argument("--top", type=int, default=0, help="also list the N functions that grow most with orders")
    parser.add_argument("--brokers", default="paper,scripted")
    parser.add_argument("--hosts", default="python,lua", help="the strategy's language (python, lua)")
    args = parser.parse_args()

    bars = prices(args.bars)
    loop_s = min(_timed(lambda: plain_loop(bars)) for _ in range(5))
    loop_us = loop_s / len(bars) * 1e6
    hint = "" if kernel.interpreted else " (with ENGINE_INTERPRETED=1 they count all)"
    print(f"{kernel.describe()}: calls, frames and bytecodes count Python frames{hint}")
    print(f"reference: plain Python loop, {len(bars):,} bars, no orders: {loop_us:.3f} µs per bar")
    trips = max(1, args.bars // 2)
    records_us = min(records_alone(trips) for _ in range(3)) / (2 * trips) * 1e6
    print(f"reference: the records an order leaves, made alone: {records_us:.2f} µs per order")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for host in args.hosts.split(","):
            for broker in args.brokers.split(","):
                results.append(measure(Path(tmp), broker, host, args, loop_us))
    print(
        f"\n{'broker':<15} {'orders':>6} {'µs/order':>9} {'loop bars':>9} {'x records':>9} {'calls':>7} {'frames':>7} "
        f"{'bytecodes':>9} {'crossings':>9} {'modules':>7} | {'µs/trip':>8} {'calls':>7} {'bytecodes':>9}"
    )
    for m in results:
        print(
            f"{m['broker']:<15} {m['orders']:>6} {m['us']:9.1f} {m['loop_bars']:9.0f} {m['us'] / records_us:9.1f} "
            f"{m['calls']:7.0f} "
            f"{m['frames']:7.0f} {m['opcodes']:9.0f} {m['crossings']:9.1f} {len(m['modules']):7} | "
            f"{m['us_trip']:8.1f} {m['calls_trip']:7.0f} {m['opcodes_trip']:9.0f}"
        )
    for m in results:
        crossed = ", ".join(f"{name} {m['module_calls'][name]:.1f}" for name in m["modules"])
        print(f"\n{m['broker']}: modules the order path calls into (Python frames per order): {crossed}")
    if args.top:
        for m in results:
            top_functions(m, args.top)


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
