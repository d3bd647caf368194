"""The mqtt sink on a backtest with every event published: events/s and what it costs the backtest.

Starts mosquitto on a free local port, then runs the same backtest
(strategies/sma_cross.lua on seeded simulated one-minute bars, paper broker)
alternately without a sink and with the mqtt sink (bars off, QoS 1, a queue
big enough that nothing is dropped), in this one process, and prints:

* the backtest's time without the sink, and with it until the workers are
  done (the sink's cost to the backtest, as a ratio);
* the time until the broker acknowledged the last event, and so the events
  published per second;
* the wall time the sink adds per event, and what ``handle`` costs a
  worker per event (the network is on the plugin's own thread);
* for a live engine, the time from an event to the broker's acknowledgement.

    .venv/bin/python bench/mqtt_publish.py [--bars 100000] [--symbols 2] [--rounds 2] [--qos 1]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
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
    conf.write_text(f"persistence false\nlistener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    sys.exit("mosquitto did not start")


def write_config(work: Path, bars: int, symbols: int, port: int | None, qos: int = 1) -> Path:
    names = ", ".join(f'"S{k}"' for k in range(symbols))
    text = (
        f"[engine]\nsymbols = [{names}]\nwindow = 100\n"
        f'[source]\ntype = "simulated"\nbars = {bars}\n'
        f'[strategy]\nhost = "lua"\nscript = "{ROOT / "strategies" / "sma_cross.lua"}"\n'
        "[strategy.params]\nfast = 10\nslow = 30\nqty = 1\n"
        '[broker]\ntype = "paper"\nfill = "next_open"\n'
    )
    if port is not None:
        text += (
            f'[[sinks]]\ntype = "mqtt"\nport = {port}\nprefix = "bench"\nqos = {qos}\n'
            "queue = 10000000\nclose_timeout = 600\n"
        )
    path = work / ("with_sink.toml" if port is not None else "without.toml")
    path.write_text(text)
    return path


def run_once(path: Path) -> dict[str, Any]:
    from engine_core.runner import build_engine

    engine = build_engine(path)
    sink = engine.bus.sinks[0] if engine.bus.sinks else None
    marks: dict[str, float] = {}
    if sink is not None:
        close = sink.close

        def timed_close() -> None:
            marks["workers_done"] = time.perf_counter()
            close()

        sink.close = timed_close  # type: ignore[method-assign]
    t0 = time.perf_counter()
    result = engine.run()
    end = time.perf_counter()
    out = {"total": end - t0, "bars": sum(r.bars for r in result.symbols.values())}
    if sink is not None:
        out["workers"] = marks["workers_done"] - t0
        out.update(sink.stats())
    return out


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
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, alternating; the best is shown")
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker, port = start_mosquitto(work)
        try:
            latency = event_latency(port)
            plain = write_config(work, args.bars, args.symbols, None)
            with_sink = write_config(work, args.bars, args.symbols, port, args.qos)
            without: list[dict[str, Any]] = []
            withs: list[dict[str, Any]] = []
            for _ in range(args.rounds):
                without.append(run_once(plain))
                withs.append(run_once(with_sink))
        finally:
            broker.terminate()
            broker.wait(10)
    base = min(r["total"] for r in without)
    best = min(withs, key=lambda r: r["workers"])
    events = best["events"]
    bars = best["bars"]
    print(
        f"mqtt sink: {args.symbols} symbols x {args.bars:,} bars, sma_cross.lua, {events:,} events, "
        f"QoS {args.qos}, bars off"
    )
    print(f"  backtest without the sink: {base:.2f} s ({bars / base:,.0f} bars/s)")
    print(
        f"  with it, workers done:     {best['workers']:.2f} s ({bars / best['workers']:,.0f} bars/s): "
        f"x{best['workers'] / base:.2f} the time, +{(best['workers'] / base - 1) * 100:.0f}%"
    )
    print(
        f"  last event acknowledged:   {best['total']:.2f} s: {best['published']:,} messages "
        f"(events and statuses), {best['published'] / best['total']:,.0f} messages/s, "
        f"{events / best['total']:,.0f} events/s"
    )
    print(
        f"  the sink added {(best['total'] - base) / events * 1e6:,.0f} us of wall time per event published "
        f"(dropped {best['dropped']}, lost {best['lost']})"
    )
    median, p99 = latency[len(latency) // 2], latency[int(len(latency) * 0.99)]
    print(f"  one event at a time (live): handle() to broker ack median {median:.2f} ms, p99 {p99:.2f} ms")
    print(f"  handle() on the worker's thread: {handle_cost():.2f} us per event")


if __name__ == "__main__":
    main()
