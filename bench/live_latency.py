"""Live path: latency from a bar's arrival to the order it causes, and CPU per symbol.

Runs the engine in live mode on the simulated feed (one bar per symbol every
``--pace`` seconds) with a Lua strategy that enters and exits often, for
``--symbols`` symbols. The source's bars are stamped on arrival (when the
I/O thread receives them); an observation hook stamps each submitted order.
Prints the arrival-to-order latency percentiles (over all bars, and for the
bars that arrived in the first and in the last tenth of their burst: bar
after bar in arrival order, the first tenth's orders leave long before the
last's) and the process CPU time per live bar, both over every bar and in the steady state (after each symbol's
first ``WARM`` bars, which pay one-time costs: the first indicator reads
build the plugin registry, the first calls warm the Lua runtimes), the
same CPU per live bar by kind of thread (the workers', the I/O thread's, the
baton's watcher's, the Lua watchdog's: each thread's CPU clock), the
same CPU per live bar as a ratio of a bar of ``bench/order_path.py``'s plain
Python loop (measured before and after the run: this machine's speed varies
from day to day), the Lua watchdog's polls, and the worker's own CPU per
live bar: the thread CPU time of ``SymbolWorker.take``
on each steady-state bar, summed by a wrapper this bench installs (the
engine's hot path carries no instrumentation), over all of them and over
those that moved no state, sent no order and booked no fill.
What the bench notes while the engine runs (a bar's arrival, an order's
submission, a bar's turn) is one append of a tuple each, made into its
tables after the run: dicts kept up to date under a lock cost the process
CPU the bench counted as the engine's.

    .venv/bin/python bench/live_latency.py [--symbols 100] [--bars 300] [--pace 0.05] [--journal]
        [--broker paper|scripted] [--mqtt [--rounds N]] [--shards N]

Without ``--journal`` the engine keeps no journal (the Python path alone);
with it, as a live engine runs by default (a SQLite journal in a temporary
directory, ``journal_sync = "full"``). The broker is the paper broker, whose
orders live in the journal behind their intents (they never wait for the
disk); ``--broker scripted`` trades on ``engine_core.testing``'s venue double
instead (it acks and fills from its own thread), whose intents wait for the
disk before the send, as a venue's do. ``--record`` records the session as a
live engine does by default (``bench/replay.py`` compares the two).
``--mqtt`` adds the mqtt sink as a live run uses it (QoS 1, one message per
event) publishing to a mosquitto this bench starts on a free local port, and
prints the CPU time the sink's thread and mosquitto took, per message, and
the p99 as a ratio to the same run without the sink, measured first in a
process of its own (the reference: this machine's speed varies from run to
run); with ``--rounds N``, N such pairs alternated, each run a process of its
own, and the median ratio.
``--shards N`` runs N engines at once, one process each with the symbols of
its shard (``engine run --shard K/N``: a fleet, one engine per core), and
prints their latencies together.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine_core import kernel
from engine_core.builtin.simulated import SimulatedSource
from engine_core.config import load_config
from engine_core.hookspecs import hookimpl
from engine_core.model import Bar, OrderEvent
from engine_core.plugins import build_registry
from engine_core.runner import Engine
from engine_core.worker import SymbolWorker

STRATEGY = """
function watch(ctx)
  local fast, slow = ctx.ind.sma(5), ctx.ind.sma(20)
  if fast and slow and ctx.index % 10 == 0 then return "setup" end
end
function close_watch(ctx) return "enter" end
function in_trade(ctx) if ctx.index % 10 == 5 then return "exit" end end
"""

WARM = 20  # a symbol's first bars pay one-time costs (indicator set-up, first imports)
# What the bench notes while the engine runs is one append of a tuple (no lock,
# no dict): its own CPU counts in the process's, so it is kept to that, and
# the tables are made from the notes after the run.
stamps: list[tuple[str, int, float]] = []  # each bar as it arrives: (symbol, ts, arrival)
submitted: list[tuple[str, int, float]] = []  # each order as it is submitted: (symbol, its bar's ts, when)
# each steady-state live bar's turn (take): (thread CPU seconds, quiet, its ts, when it ended)
handled: list[tuple[float, bool, int, float]] = []
steady_ts = [float("inf")]  # the first steady-state burst's time, once it has arrived
marks: dict[str, tuple[float, float]] = {}  # (process CPU, wall) when the steady state begins and when all is done
thread_marks: dict[str, dict[str, float]] = {}  # the same instants: CPU seconds by kind of thread
running: list[Engine] = []
sink_cpu: list[float] = []  # the mqtt sink thread's CPU seconds, when its loop ends


def time_sink() -> None:
    """Wrap the mqtt sink's thread to keep its CPU time."""
    from engine_plugin_mqtt.sink import MqttSink

    run = MqttSink._run

    def timed(sink: MqttSink, ready: threading.Event) -> None:
        try:
            run(sink, ready)
        finally:
            sink_cpu.append(time.thread_time())

    MqttSink._run = timed  # type: ignore[method-assign]


watchdog_cpu: list[float] = []  # thread CPU seconds of each poll of the Lua time budget's watchdog


def time_watchdog() -> None:
    """Wrap the Lua watchdog's poll to keep its thread CPU time: it looks at
    every symbol's sandbox, holding the interpreter's lock from the workers."""
    from engine_core.lua.watchdog import Watchdog

    poll = Watchdog._poll

    def timed(watchdog: Watchdog) -> float | None:
        c0 = time.thread_time()
        try:
            return poll(watchdog)
        finally:
            watchdog_cpu.append(time.thread_time() - c0)

    Watchdog._poll = timed  # type: ignore[method-assign]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has taken, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads_cpu() -> dict[str, float]:
    """CPU seconds each kind of thread has taken so far (the workers' threads
    together, as ``worker``), read from each thread's CPU clock."""
    spent: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            cpu = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except OSError:  # it ended meanwhile
            continue
        kind = "worker" if thread.name.startswith("worker-") else thread.name
        spent[kind] = spent.get(kind, 0.0) + cpu
    return spent


def time_handle() -> None:
    """Wrap ``SymbolWorker.take`` (a worker's turn, as the baton calls it) to
    note its thread CPU time on each steady-state live bar, and whether the
    bar moved no state, sent no order and booked no fill (a quiet bar, the
    common case). Not ``handle``: the compiled worker calls that itself,
    past any wrapper (engine_core/kernel.py)."""
    take = SymbolWorker.take
    clock, now, note = time.thread_time, time.perf_counter, handled.append

    def timed(worker: SymbolWorker, msg: Any) -> bool:
        if type(msg) is not Bar or msg.ts < steady_ts[0]:
            return take(worker, msg)
        ledger = worker.ledger
        before = (worker.sm.state, worker.orders_sent, ledger.fills)
        t0 = clock()
        going = take(worker, msg)
        spent = clock() - t0
        note((spent, (worker.sm.state, worker.orders_sent, ledger.fills) == before, msg.ts, now()))
        return going

    SymbolWorker.take = timed  # type: ignore[method-assign]


class StampedSource(SimulatedSource):
    async def live(self):  # type: ignore[override]
        # the simulated source gives every symbol a bar at each instant, in turn: the
        # first steady-state bar is the one after each symbol's first WARM
        steady, seen = WARM * len(self.symbols) + 1, 0
        now, note = time.perf_counter, stamps.append
        async for bar in super().live():
            seen += 1
            if seen == steady:
                marks["steady"] = (time.process_time(), now())
                thread_marks["steady"] = threads_cpu()
                steady_ts[0] = bar.ts
            note((bar.symbol, bar.ts, now()))
            yield bar
        # the feed is over: wait until every worker has processed its last bar
        workers = list(running[0].workers.values())
        while any(not w.inbox.empty() or w.lock.locked() for w in workers):
            await asyncio.sleep(0.001)
        marks["done"] = (time.process_time(), time.perf_counter())
        thread_marks["done"] = threads_cpu()


def latencies() -> list[tuple[float, bool, int]]:
    """Each order's (seconds from its bar's arrival, after the symbol's first
    WARM bars, the bar's place in its burst), from the notes."""
    arrived: dict[tuple[str, int], tuple[float, int, int]] = {}  # (symbol, ts) -> (arrival, bar number, place)
    counts: dict[str, int] = {}
    places: dict[int, int] = {}
    for symbol, ts, at in stamps:
        n = counts[symbol] = counts.get(symbol, 0) + 1
        place = places[ts] = places.get(ts, 0) + 1
        arrived[(symbol, ts)] = (at, n, place)
    out = []
    for symbol, ts, at in submitted:
        stamp = arrived.get((symbol, ts))
        if stamp is not None:
            out.append((at - stamp[0], stamp[1] > WARM, stamp[2]))
    return out


class Probe:
    @staticmethod
    @hookimpl
    def register_data_sources(register: Any) -> None:
        register("stamped", StampedSource)

    @staticmethod
    @hookimpl
    def engine_order(event: OrderEvent) -> None:
        if event.status == "submitted":
            submitted.append((event.order.symbol, event.order.ts, time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=300, help="bars per symbol")
    parser.add_argument("--pace", type=float, default=0.05, help="seconds between bars")
    parser.add_argument("--journal", action="store_true", help="keep the journal, as a live engine does by default")
    parser.add_argument("--record", action="store_true", help="record the session, as a live engine does by default")
    parser.add_argument("--broker", choices=["paper", "scripted"], default="paper", help="paper, or the venue double")
    parser.add_argument("--mqtt", action="store_true", help="publish every event to a local mosquitto (QoS 1)")
    parser.add_argument("--shards", type=int, default=1, help="run N engines (--shard K/N each), one process each")
    parser.add_argument(
        "--rounds", type=int, default=1, help="with --mqtt: N alternated pairs without / with the sink, the median"
    )
    parser.add_argument("--shard", help=argparse.SUPPRESS)  # K/N: this process runs shard K (set by --shards)
    parser.add_argument("--dump", help=argparse.SUPPRESS)  # where this shard leaves its latencies
    args = parser.parse_args()
    if args.shards > 1:
        run_shards(args)
        return
    if args.mqtt and args.rounds > 1 and not args.dump:
        mqtt_rounds(args)
        return
    reference = p99_of(args, mqtt=False) if args.mqtt and not args.dump else None
    time_handle()
    time_watchdog()
    import engine_plugin_indicators.plugin as indicators

    import engine_core.builtin.log_sink as log_sink
    import engine_core.builtin.paper as paper
    import engine_core.lua.plugin as lua

    plugins: list[tuple[str, Any]] = [
        ("paper", paper),
        ("lua", lua),
        ("log", log_sink),
        ("indicators", indicators),
        ("probe", Probe()),
    ]
    broker_table = ""
    if args.broker == "scripted":
        import engine_core.testing as testing

        plugins.append(("testing", testing))
        testing.venue("bench", reset=True)
        broker_table = '[broker]\ntype = "scripted"\nvenue = "bench"\nscript = ["ack", "fill"]\n'
    if args.mqtt:
        import engine_plugin_mqtt.plugin as mqtt

        plugins.append(("mqtt", mqtt))
        time_sink()
    registry = build_registry(plugins, autoload=False)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "s.lua").write_text(STRATEGY)
        symbols = ", ".join(f'"S{k:03d}"' for k in range(args.symbols))
        sink = ""
        if args.mqtt:
            from mqtt_publish import start_mosquitto

            broker, port = start_mosquitto(work)
            sink = f'[[sinks]]\ntype = "mqtt"\nport = {port}\nprefix = "bench"\nqos = 1\n'
        (work / "live.toml").write_text(
            f'[engine]\nmode = "live"\nsymbols = [{symbols}]\njournal = {str(args.journal).lower()}\n'
            f"record = {str(args.record).lower()}\n"
            f'[source]\ntype = "stamped"\nbars = {args.bars}\npace = {args.pace}\n'
            '[strategy]\nhost = "lua"\nscript = "s.lua"\n' + broker_table + sink
        )
        engine = Engine(load_config(work / "live.toml", registry, shard=args.shard), registry)
        running.append(engine)
        loop_ref = [reference_us()]
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = engine.run()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        loop_ref.append(reference_us())
        if args.mqtt:
            broker_cpu = process_cpu(broker.pid)
            broker.terminate()
            broker.wait()
    bars = sum(r.bars for r in result.symbols.values())
    run = len(result.symbols)  # the symbols this engine ran (its shard's, with --shard)
    orders = latencies()
    lat = np.array([s for s, _, _ in orders]) * 1000
    steady = np.array([s for s, warm, _ in orders if warm]) * 1000
    tenth = max(1, run // 10)
    first = np.array([s for s, warm, place in orders if warm and place <= tenth]) * 1000
    last = np.array([s for s, warm, place in orders if warm and place > run - tenth]) * 1000
    journal = "with the journal" if args.journal else "no journal"
    journal += ", recorded" if args.record else ", not recorded"
    journal += ", mqtt sink (QoS 1, a message per event)" if args.mqtt else ""
    journal += f", {args.broker} broker"
    print(f"live: {run} symbols, {bars:,} bars in {wall:.1f} s, {len(lat):,} orders, {journal}")
    print(f"  {kernel.describe()}")
    for label, values in (("all bars", lat), (f"after each symbol's first {WARM} bars", steady)):
        if len(values):
            print(
                f"  arrival -> order submitted ({label}): median {np.median(values):.2f} ms, "
                f"p99 {np.percentile(values, 99):.2f} ms, max {values.max():.2f} ms"
            )
    if len(first) and len(last):
        print(
            "  arrival -> order, steady state, by the bar's place in its burst: "
            f"first tenth median {np.median(first):.2f} ms (p99 {np.percentile(first, 99):.2f}), "
            f"last tenth median {np.median(last):.2f} ms (p99 {np.percentile(last, 99):.2f})"
        )
    bursts: dict[int, float] = {}  # a steady-state burst's time -> when its last bar was processed
    for _, _, ts, end in handled:
        bursts[ts] = max(end, bursts.get(ts, end))
    if bursts:
        # A burst is kept up with when its last bar is processed before the next burst's first arrives.
        first_arrival: dict[int, float] = {}
        for _, ts, at in stamps:
            first_arrival[ts] = min(at, first_arrival.get(ts, at))
        times = sorted(bursts)
        gaps = [(bursts[t] - first_arrival[t], first_arrival[u] - first_arrival[t]) for t, u in zip(times, times[1:])]
        behind = sum(took > gap for took, gap in gaps)
        slowest = max(gaps, default=(0.0, 0.0))
        print(
            f"  bursts processed before the next one arrived: {len(gaps) - behind:,} of {len(gaps):,} "
            f"(fell behind {behind:,} times; the slowest took {slowest[0] * 1000:.1f} ms)"
        )
    if engine.baton is not None:
        turns = engine.baton.begun
        print(
            f"  turns: {turns:,}, {engine.baton.woken:,} begun by waking a thread "
            f"({engine.baton.woken / max(turns, 1):.1%}; the others ran on the thread that ended the one before), "
            f"{engine.baton.lapsed:,} lost the baton by its lease"
        )
    print(f"  CPU per live bar, whole run: {cpu / bars * 1e6:.0f} us (whole process, start-up included)")
    # Steady state: from the first bar after the warm-up to the moment every
    # bar has been processed (backlog included when the engine fell behind).
    if "steady" in marks and "done" in marks:
        (c0, w0), (c1, w1) = marks["steady"], marks["done"]
        n = bars - WARM * run
        print(
            f"  CPU per live bar, steady state: {(c1 - c0) / n * 1e6:.0f} us over {n:,} bars "
            f"({(c1 - c0) / (w1 - w0) * 100:.1f}% of one core = {(c1 - c0) / (w1 - w0) * 100 / run:.3f}% "
            "per symbol)"
        )
        began, ended = thread_marks["steady"], thread_marks["done"]
        kinds = sorted(ended, key=lambda k: began.get(k, 0.0) - ended[k])
        by_thread = ", ".join(f"{k} {(ended[k] - began.get(k, 0.0)) / n * 1e6:.1f}" for k in kinds)
        print(f"  the same by thread, us a bar: {by_thread}")
        ref = min(loop_ref)
        print(
            f"  the same, as a ratio: {(c1 - c0) / n * 1e6 / ref:.0f}x a bar of the reference loop "
            f"(bench/order_path.py's plain Python loop, the faster of {loop_ref[0]:.3f} us a bar before this "
            f"run and {loop_ref[-1]:.3f} after; this machine's speed varies from day to day)"
        )
    if handled:
        spent = sum(s for s, _, _, _ in handled)
        per_bar = spent / len(handled) * 1e6
        print(f"  worker CPU per bar (its turn, take): {per_bar:.1f} us over {len(handled):,} live bars")
        quiet = [s for s, calm, _, _ in handled if calm]
        if quiet:
            print(
                f"  of which bars with no decision, order or fill: {sum(quiet) / len(quiet) * 1e6:.1f} us "
                f"over {len(quiet):,} bars"
            )
    if watchdog_cpu:
        polls = np.array(watchdog_cpu) * 1e6
        print(
            f"  Lua watchdog: {len(polls):,} polls (of the calls begun since the one before and those still "
            f"running), median {np.median(polls):.0f} us "
            f"of CPU each (p90 {np.percentile(polls, 90):.0f}), {polls.sum() / 1e6:.2f} s in all"
        )
    if engine.journal is not None:
        j = engine.journal
        orders = max(len(lat), 1)
        print(
            f"  journal: {j.commits:,} commits ({j.commits / orders:.1f} per order) in {j.rounds:,} rounds of the "
            f"writer, {j.synced_commits:,} synced "
            f"with {j.fsyncs:,} fsyncs ({j.synced_commits / max(j.fsyncs, 1):.1f} synced commits per fsync: "
            f"the group commit; {j.fsyncs / orders:.2f} fsyncs per order); write-ahead log at most "
            f"{j.log_bytes / 1e6:.1f} MB (it starts over after each checkpoint)"
        )
    if args.mqtt:
        sink = next(s for s in engine.bus.sinks if type(s).__name__ == "MqttSink")
        n = max(sink.published, 1)
        print(
            f"  mqtt: {sink.published:,} messages; sink thread CPU {sink_cpu[0]:.2f} s "
            f"({sink_cpu[0] / n * 1e6:.0f} us a message), mosquitto CPU {broker_cpu:.2f} s "
            f"({broker_cpu / n * 1e6:.0f} us a message)"
        )
        if reference is not None and len(steady):
            p99 = np.percentile(steady, 99)
            print(
                f"  mqtt: p99 {p99:.2f} ms against {reference:.2f} ms without the sink (measured just before): "
                f"x{p99 / reference:.2f} (target: at most x1.10)"
            )
    print(f"  peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.dump:
        np.save(args.dump, np.array(orders, dtype=np.float64).reshape(-1, 3))


def reference_us() -> float:
    """A bar of bench/order_path.py's plain Python loop, in µs (the best of
    five): the reference the CPU per live bar is given as a ratio of."""
    from order_path import plain_loop, prices

    bars = prices(20_000)
    best = float("inf")
    for _ in range(5):
        c0 = time.thread_time()  # (this thread's: the engine's threads may still be ending)
        plain_loop(bars)
        best = min(best, time.thread_time() - c0)
    return best / len(bars) * 1e6


def forwarded_flags(args: argparse.Namespace, *, mqtt: bool = True) -> list[str]:
    """The flags of this run, as a child process of it takes them."""
    flags = [f"--symbols={args.symbols}", f"--bars={args.bars}", f"--pace={args.pace}", f"--broker={args.broker}"]
    return flags + [f for f in ("--journal", "--record", "--mqtt") if getattr(args, f[2:]) and (mqtt or f != "--mqtt")]


def p99_of(args: argparse.Namespace, *, mqtt: bool) -> float:
    """The steady-state p99 (ms) of this run, with or without the mqtt sink, in
    a process of its own (without: the reference ``--mqtt`` is measured against)."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "p99.npy"
        subprocess.run(
            [sys.executable, __file__, *forwarded_flags(args, mqtt=mqtt), f"--dump={dump}"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        rows = np.load(dump)
    return float(np.percentile(rows[rows[:, 1] > 0, 0] * 1000, 99))


def mqtt_rounds(args: argparse.Namespace) -> None:
    """``--mqtt --rounds N``: N pairs of runs, without the sink then with it,
    each in a process of its own; each pair's p99 ratio and their median (a
    single run's p99 moves by a third from run to run here)."""
    ratios = []
    for k in range(1, args.rounds + 1):
        without, with_sink = p99_of(args, mqtt=False), p99_of(args, mqtt=True)
        ratios.append(with_sink / without)
        print(f"  pair {k}: p99 {without:.2f} ms without the sink, {with_sink:.2f} ms with it: x{ratios[-1]:.2f}")
    print(
        f"mqtt: {args.symbols} symbols, {args.rounds} alternated pairs: p99 with / without the sink, "
        f"median x{float(np.median(ratios)):.2f} (x{min(ratios):.2f} to x{max(ratios):.2f}; target: at most x1.10)"
    )


def run_shards(args: argparse.Namespace) -> None:
    """``--shards N``: N engines at once, each a process running the symbols
    of its shard (``engine run --shard K/N``), as a fleet covers more symbols
    than one interpreter keeps up with; the latencies of all of them together."""
    import subprocess
    import sys

    forwarded = forwarded_flags(args)
    with tempfile.TemporaryDirectory() as tmp:
        dumps = [Path(tmp) / f"shard{k}.npy" for k in range(1, args.shards + 1)]
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, *forwarded, f"--shard={k}/{args.shards}", f"--dump={dump}"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for k, dump in enumerate(dumps, 1)
        ]
        outputs = [proc.communicate()[0] for proc in procs]
        if any(proc.returncode for proc in procs):
            raise SystemExit(f"a shard failed: exit codes {[proc.returncode for proc in procs]}")
        rows = np.concatenate([np.load(dump) for dump in dumps])
    for k, out in enumerate(outputs, 1):
        for line in out.splitlines():
            if "steady state:" in line or "its turn" in line or "p99" in line:
                print(f"  shard {k}/{args.shards}: {line.strip()}")
    steady = rows[rows[:, 1] > 0, 0] * 1000
    print(
        f"live: {args.symbols} symbols in {args.shards} engines (one process each), {len(rows):,} orders: "
        f"arrival -> order submitted, after each symbol's first {WARM} bars: median {np.median(steady):.2f} ms, "
        f"p99 {np.percentile(steady, 99):.2f} ms, max {steady.max():.2f} ms"
    )


if __name__ == "__main__":
    main()
