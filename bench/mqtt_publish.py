"""The mqtt sink on a backtest with every event published: what it costs the backtest, events/s, latency.

Starts mosquitto on a free local port, then runs the same backtest
(strategies/sma_cross.lua on seeded simulated one-minute bars, paper broker)
without a sink (twice: the second says how far two identical runs differ on
this machine), with a sink that does nothing with the events (what the
engine spends making them), with a sink that only makes each event's JSON
payload on the worker and keeps it (what the documented payloads cost, with
no thread and no network), and with the mqtt sink (bars off, QoS 1, a queue
big enough that nothing is dropped). Each run is a fresh process (a
run after another in the same process measured 8-17% slower, whatever it
was), and each round runs them in the reverse order of the last. Prints:

* each run's wall and CPU time, start to finish (``Engine.run`` returns once
  the broker has acknowledged the last event); the median over the rounds
  of each configuration's ratio to the run without a sink of the same round,
  and the spread of those ratios: the machine is shared, so only ratios
  measured in one run mean anything, and the identical run's spread is how
  finely they can tell;
* the wall time the sink adds per event, and the events/s the backtest
  published;
* what the sink can publish on its own (events handed to it as fast as a
  thread can, until the broker acknowledged the last), batched and one
  message per event;
* what ``handle`` costs a worker per event, and for a live engine (one
  message per event) the time from an event to the broker's acknowledgement.

    .venv/bin/python bench/mqtt_publish.py [--bars 100000] [--symbols 2] [--rounds 5] [--qos 1] [--batch auto]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mosquitto(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    if shutil.which("mosquitto") is None:
        sys.exit("bench/mqtt_publish.py needs Debian's mosquitto: apt-get install mosquitto")
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"persistence false\nlistener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    sys.exit("mosquitto did not start")


def write_config(work: Path, bars: int, symbols: int, port: int | None, qos: int = 1, batch: str = "auto") -> Path:
    names = ", ".join(f'"S{k}"' for k in range(symbols))
    text = (
        f"[engine]\nsymbols = [{names}]\nwindow = 100\n"
        f'[source]\ntype = "simulated"\nbars = {bars}\n'
        f'[strategy]\nhost = "lua"\nscript = "{ROOT / "strategies" / "sma_cross.lua"}"\n'
        "[strategy.params]\nfast = 10\nslow = 30\nqty = 1\n"
        '[broker]\ntype = "paper"\nfill = "next_open"\n'
    )
    if port is not None:
        batch_value = batch if batch in ("true", "false") else f'"{batch}"'
        text += (
            f'[[sinks]]\ntype = "mqtt"\nport = {port}\nprefix = "bench"\nqos = {qos}\nbatch = {batch_value}\n'
            "queue = 10000000\nclose_timeout = 600\n"
        )
    path = work / ("with_sink.toml" if port is not None else "without.toml")
    path.write_text(text)
    return path


def bench_sinks_registry() -> Any:
    """The installed plugins and two sinks that take every event on the
    worker's thread: ``null`` does nothing with it; ``json`` makes the JSON the
    mqtt sink publishes for it (its payload, encoded) and keeps it, with no
    thread and no network: what the documented payloads cost by themselves."""
    from engine_plugin_mqtt import wire

    from engine_core.events import Event, EventSink
    from engine_core.hookspecs import hookimpl
    from engine_core.plugins import build_registry

    class NullSink(EventSink):
        inline = True

        def handle(self, event: Event) -> None:
            pass

    class JsonSink(EventSink):
        inline = True

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.seq = 0
            self.out: list[bytes] = []

        def handle(self, event: Event) -> None:
            self.seq += 1
            self.out.append(wire.dumps(wire.PAYLOADS[event.__class__](event, "bench", self.seq)))

    class BenchPlugin:
        @staticmethod
        @hookimpl
        def register_event_sinks(register: Any) -> None:
            register("null", NullSink)
            register("json", JsonSink)

    return build_registry([("bench-sinks", BenchPlugin())])


def run_once(path: Path, registry: Any = None) -> dict[str, Any]:
    import gc

    from engine_core.runner import build_engine

    gc.collect()  # the last run's garbage is not this run's to collect
    engine = build_engine(path, registry)
    sink = engine.bus.sinks[0] if engine.bus.sinks else None
    marks: dict[str, float] = {}
    if sink is not None:
        close = sink.close

        def timed_close() -> None:
            marks["workers_done"] = time.perf_counter()
            close()

        sink.close = timed_close  # type: ignore[method-assign]
    t0, c0 = time.perf_counter(), time.process_time()
    result = engine.run()
    end = time.perf_counter()
    out: dict[str, Any] = {
        "total": end - t0,
        "cpu": time.process_time() - c0,
        "bars": sum(r.bars for r in result.symbols.values()),
    }
    if sink is not None:
        out["workers"] = marks["workers_done"] - t0
        out["batched"] = getattr(sink, "batched", None)
        out.update(sink.stats())
    return out


def run_fresh(path: Path, bench_sinks: bool = False) -> dict[str, Any]:
    """``run_once`` in a new interpreter: no run inherits another's heap."""
    command = [sys.executable, __file__, "--one", str(path)] + (["--bench-sinks"] if bench_sinks else [])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"a benchmark run failed:\n{done.stderr.strip()}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def round_trips(n: int, symbols: int = 2) -> list[Any]:
    """``n`` events as a backtest makes them: per round trip a signal, two
    transitions, an order's three statuses and its fill, twice (in and out)."""
    from engine_core.model import Fill, FillEvent, Order, OrderEvent, Side, SignalEvent, State, TransitionEvent
    from engine_core.orders import OrderStatus

    out: list[Any] = []
    ts, k = 1_704_067_200_000_000_000, 0
    while len(out) < n:
        symbol = f"S{k % symbols}"
        for side, to in ((Side.BUY, State.IN_TRADE), (Side.SELL, State.WATCH)):
            k += 1
            ts += 60_000_000_000
            order = Order(f"bench-{symbol}-{k}", symbol, side, Decimal(1), ts, "bench")
            fill = Fill(order.client_id, symbol, side, Decimal(1), Decimal("100.25"), Decimal("0.1"), ts, f"t{k}")
            frm = State.WATCH if side is Side.BUY else State.IN_TRADE
            out += [
                SignalEvent(symbol, ts, "enter" if side is Side.BUY else "exit", {"side": side.value, "qty": "1"}),
                TransitionEvent(symbol, ts, frm, State.CLOSE_WATCH if side is Side.BUY else frm, "bench"),
                OrderEvent(order, OrderStatus.INTENT),
                OrderEvent(order, OrderStatus.SUBMITTED),
                OrderEvent(order, OrderStatus.FILLED),
                FillEvent(fill),
                TransitionEvent(symbol, ts, frm, to, "filled"),
            ]
    return out[:n]


def sink_alone(port: int, events: list[Any], batch: bool, qos: int) -> float:
    """Events/s the sink publishes on its own: ``events`` handed over as fast
    as one thread can, until the broker acknowledged the last (close drains)."""
    from engine_plugin_mqtt.config import MqttSinkConfig
    from engine_plugin_mqtt.sink import MqttSink

    sink = MqttSink(MqttSinkConfig(port=port, prefix="alone", qos=qos, batch=batch, queue=len(events) + 1))
    sink.bind("alone", ["S0", "S1"], "backtest")
    sink.start()
    sink.attach(None)
    t0 = time.perf_counter()
    for event in events:
        sink.handle(event)
    sink.close()
    elapsed = time.perf_counter() - t0
    if sink.lost or sink.dropped:
        sys.exit(f"the sink lost {sink.lost} and dropped {sink.dropped} events")
    return len(events) / elapsed


def handle_cost(events: int = 200_000) -> float:
    """Microseconds per ``handle`` call, the worker's side of the sink."""
    from engine_plugin_mqtt.config import MqttSinkConfig
    from engine_plugin_mqtt.sink import MqttSink

    from engine_core.model import State, TransitionEvent

    sink = MqttSink(MqttSinkConfig(queue=events + 1))
    sink.bind("bench", ["S0"], "backtest")
    event = TransitionEvent("S0", 1, State.WATCH, State.CLOSE_WATCH, "bench")
    t0 = time.perf_counter()
    for _ in range(events):
        sink.handle(event)
    return (time.perf_counter() - t0) / events * 1e6


def event_latency(port: int, events: int = 300) -> list[float]:
    """Milliseconds from ``handle`` to the broker's acknowledgement, one event
    at a time (a live engine's case: a dashboard sees the event this late)."""
    from engine_plugin_mqtt.config import MqttSinkConfig
    from engine_plugin_mqtt.sink import MqttSink

    from engine_core.model import State, TransitionEvent

    sink = MqttSink(MqttSinkConfig(port=port, prefix="latency", qos=1))
    sink.bind("latency", ["S0"], "live")
    sink.start()
    sink.attach(None)
    out = []
    try:
        for i in range(events):
            before = sink.published
            t0 = time.perf_counter()
            sink.handle(TransitionEvent("S0", i, State.WATCH, State.CLOSE_WATCH, "bench"))
            # the event's message, then the symbol's status: wait for the first
            while sink.published <= before:
                time.sleep(0.00005)
            out.append((time.perf_counter() - t0) * 1000)
            while sink._unacked:  # let the status go too, so events do not queue behind each other
                time.sleep(0.0005)
    finally:
        sink.close()
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000, help="bars per symbol")
    parser.add_argument("--symbols", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each; a round runs them in reverse of the last")
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    parser.add_argument("--batch", default="auto", choices=("auto", "true", "false"), help="the sink's batch key")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # one run, in this process: JSON out
    parser.add_argument("--bench-sinks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_once(args.one, bench_sinks_registry() if args.bench_sinks else None)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker, port = start_mosquitto(work)
        try:
            plain = write_config(work, args.bars, args.symbols, None)
            null = work / "null.toml"
            null.write_text(plain.read_text() + '[[sinks]]\ntype = "null"\n')
            payloads = work / "json.toml"
            payloads.write_text(plain.read_text() + '[[sinks]]\ntype = "json"\n')
            with_sink = write_config(work, args.bars, args.symbols, port, args.qos, args.batch)
            runs: dict[str, tuple[Path, bool]] = {
                "without": (plain, False),
                "again": (plain, False),
                "null": (null, True),
                "json": (payloads, True),
                "mqtt": (with_sink, False),
            }
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
            order = list(runs)
            for _ in range(args.rounds):
                for name in order:
                    results[name].append(run_fresh(*runs[name]))
                order.reverse()
            without, again, nulls, jsons, withs = (results[name] for name in runs)
            synthetic = round_trips(100_000)
            alone_batched = sink_alone(port, synthetic, True, args.qos)
            alone_single = sink_alone(port, synthetic[:5_000], False, args.qos)
            latency = event_latency(port)
        finally:
            broker.terminate()
            broker.wait(10)
    events, bars = withs[0]["events"], withs[0]["bars"]
    mode = "batched" if withs[0]["batched"] else "one message per event"
    print(
        f"mqtt sink: {args.symbols} symbols x {args.bars:,} bars, sma_cross.lua, {events:,} events, "
        f"QoS {args.qos}, bars off, {mode} (batch = {args.batch!r})"
    )
    for k, (a, a2, n, j, b) in enumerate(zip(without, again, nulls, jsons, withs), 1):
        print(
            f"  round {k}: without a sink {a['total']:.2f} s (CPU {a['cpu']:.2f} s) and again {a2['total']:.2f} s "
            f"({a2['cpu']:.2f} s); a sink doing nothing {n['total']:.2f} s ({n['cpu']:.2f} s); the payloads alone "
            f"{j['total']:.2f} s ({j['cpu']:.2f} s); the mqtt sink "
            f"{b['total']:.2f} s ({b['cpu']:.2f} s; workers done {b['workers']:.2f} s, {b['published']:,} messages, "
            f"dropped {b['dropped']}, lost {b['lost']})"
        )

    def median(values: list[float]) -> float:
        values = sorted(values)
        middle = len(values) // 2
        return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2

    def ratios(runs: list[dict[str, Any]], key: str = "total") -> str:
        """The median over the rounds of ``runs``' ratio to the run without a sink, and their spread."""
        values = [r[key] / a[key] for a, r in zip(without, runs)]
        return f"x{median(values):.2f} (rounds x{min(values):.2f} to x{max(values):.2f})"

    print(f"  backtest slowdown with the mqtt sink: {ratios(withs)} the time, {ratios(withs, 'cpu')} the CPU")
    print("  (target: under x1.10)")
    print(f"  a sink doing nothing (the engine making events): {ratios(nulls)} the time, {ratios(nulls, 'cpu')} CPU")
    print(f"  the payloads alone (made on the worker, kept): {ratios(jsons)} the time, {ratios(jsons, 'cpu')} CPU")
    print(f"  the same run without a sink again (how finely this machine tells): {ratios(again)} the time")
    plain_time = median([r["total"] for r in without])
    sink_time = median([r["total"] for r in withs])
    print(
        f"  added wall time per event published: {(sink_time - plain_time) / events * 1e6:.1f} us (medians); "
        f"{events / sink_time:,.0f} events/s published during the backtest "
        f"({bars / plain_time:,.0f} -> {bars / sink_time:,.0f} bars/s)"
    )
    print(
        f"  the sink alone: {alone_batched:,.0f} events/s batched, "
        f"{alone_single:,.0f} events/s one message per event (QoS {args.qos}, until the last is acknowledged)"
    )
    ack_median, ack_p99 = latency[len(latency) // 2], latency[int(len(latency) * 0.99)]
    print(f"  one event at a time (live): handle() to broker ack median {ack_median:.2f} ms, p99 {ack_p99:.2f} ms")
    print(f"  handle() on the worker's thread: {handle_cost():.2f} us per event")


if __name__ == "__main__":
    main()
