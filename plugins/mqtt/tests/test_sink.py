"""The mqtt sink against a real broker: every event reaches a separate client,
complete and in order; statuses are retained; the last will marks a dead
engine offline; a stuck subscriber does not hold the engine up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from mqtt_brokers import Subscriber, stuck_subscriber
from mqtt_engines import Running, config, expected, gated_config, received, sinks
from mqtt_gated import bar, channel

from engine_core.model import FillEvent
from engine_core.report import summarize
from engine_core.runner import build_engine
from engine_core.testing import wait_until


def test_a_subscriber_receives_every_event_complete_and_in_order(tmp_path: Path, broker, subscriber):
    engine = build_engine(config(tmp_path, broker.port, sink={"bars": True}))
    memory, mqtt = sinks(engine)
    result = engine.run()
    want = expected(memory.events, bars=True)
    assert len(want) > 600 and any(name == "fill" for _, name, _ in want)
    wait_until(lambda: len(subscriber.events()) >= len(want), f"{len(want)} events")
    got = subscriber.events()
    assert [p["seq"] for p in got] == list(range(1, len(want) + 1))
    assert received(got) == want
    # topics: <prefix>/<engine id>/<symbol>/<event>, '/' in a symbol escaped
    topics = {t for t, p, _ in subscriber.snapshot() if isinstance(p, dict) and "event" in p}
    assert "t/e1/EUR%2FUSD/fill" in topics and "t/e1/AAA/bar" in topics
    fill = next(p for p in got if p["event"] == "fill")
    first = next(e.fill for e in memory.events if isinstance(e, FillEvent))
    assert fill["price"] == str(first.price) and fill["qty"] == str(first.qty) and fill["schema"] == 1
    assert mqtt.stats()["dropped"] == 0 and mqtt.lost == 0
    # the engine status: online while running, then offline "stopped", with its symbols
    final = subscriber.final_status()
    assert final["online"] is False and final["reason"] == "stopped"
    assert final["symbols"] == ["AAA", "BBB", "EUR/USD"] and final["dropped"] == 0
    assert any(s["online"] for s in subscriber.on("t/e1/status"))
    # the sink's figures are in the run summary
    summary = summarize(result)
    assert summary["sinks"][0]["type"] == "mqtt" and summary["sinks"][0]["dropped"] == 0
    assert summary["sinks"][0]["events"] == len(memory.events)


def test_statuses_are_retained_for_a_late_subscriber(tmp_path: Path, broker):
    engine = build_engine(config(tmp_path, broker.port))
    result = engine.run()
    late = Subscriber(broker.port, "t/#", client_id="late")
    try:
        wait_until(lambda: len(late.snapshot()) >= 4, "the retained statuses")
        retained = {t: p for t, p, r in late.snapshot() if r}
    finally:
        late.close()
    assert set(retained) == {"t/e1/status", "t/e1/AAA/status", "t/e1/BBB/status", "t/e1/EUR%2FUSD/status"}
    for symbol, r in result.symbols.items():
        status = retained[f"t/e1/{symbol.replace('/', '%2F')}/status"]
        assert status["symbol"] == symbol and status["state"] == r.final_state
        assert Decimal(status["position"]) == r.position_qty
        pending = engine.workers[symbol].orders.current
        assert (status["pending_order"] or {}).get("client_id") == (pending.order.client_id if pending else None)
        assert status["halted"] is None and status["paused"] is False
    assert retained["t/e1/status"]["online"] is False


def test_the_last_will_marks_a_killed_engine_offline(tmp_path: Path, broker, subscriber):
    path = config(
        tmp_path,
        broker.port,
        engine={"mode": "live"},
        source={"type": "simulated", "bars": 0, "pace": 0.01},
        sink={"keepalive": 5},
    )
    text = path.read_text().replace('type = "memory"', f'type = "log"\npath = "{tmp_path / "events.log"}"')
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_DISABLE_PLUGIN_AUTOLOAD"}
    proc = subprocess.Popen([sys.executable, "-m", "engine_core", "run", "-c", str(path)], env=env)
    try:
        wait_until(lambda: any(s["online"] for s in subscriber.on("t/e1/status")), "the engine to come online")
        wait_until(lambda: subscriber.on("t/e1/AAA/fill"), "a fill")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        wait_until(lambda: subscriber.on("t/e1/status")[-1]["online"] is False, "the last will")
    finally:
        if proc.poll() is None:
            proc.kill()
    last = subscriber.on("t/e1/status")[-1]
    assert last["reason"] == "connection lost" and last["symbols"] == ["AAA", "BBB", "EUR/USD"]


def test_a_subscriber_that_never_reads_does_not_hold_the_engine(tmp_path: Path, broker, subscriber):
    with stuck_subscriber(broker.port):
        path = config(
            tmp_path, broker.port, sink={"bars": True, "close_timeout": 120}, source={"type": "simulated", "bars": 500}
        )
        engine = build_engine(path)
        memory, mqtt = sinks(engine)
        engine.run()
        want = expected(memory.events, bars=True)
        wait_until(lambda: len(subscriber.events()) >= len(want), f"{len(want)} events at the healthy subscriber")
        assert received(subscriber.events()) == want
        assert mqtt.dropped == 0 and mqtt.lost == 0


def test_stats_are_json(tmp_path: Path, broker):
    engine = build_engine(config(tmp_path, broker.port))
    _, mqtt = sinks(engine)
    engine.run()
    assert json.loads(json.dumps(mqtt.stats()))["broker"] == f"mqtt://127.0.0.1:{broker.port}"


def test_a_restarted_live_engine_publishes_the_state_its_journal_restored(tmp_path: Path, broker):
    path, name = gated_config(tmp_path, broker.port, engine={"journal": True})
    for i in range(6):  # the busy strategy is in a trade after bar 5 (entered on bar 4)
        for symbol in ("AAA", "BBB", "EUR/USD"):
            channel(name).put(bar(symbol, i))
    channel(name).put(None)
    first = Running(path).join()
    held = first.symbols["AAA"].position_qty
    assert held != 0
    channel(name).put(None)  # the second run gets no bar at all
    late = Subscriber(broker.port, "t/e1/AAA/status", client_id="late")

    def live() -> list:  # published while we listen (the first run's comes marked retained)
        return [p for _, p, retained in late.snapshot() if not retained]

    try:
        second = Running(path)
        second.join()
        wait_until(live, "AAA's status from the second run")
        status = live()[-1]
    finally:
        late.close()
    assert Decimal(status["position"]) == held and status["state"] == first.symbols["AAA"].final_state
    assert status["avg_price"] is not None and status["last_bar"]["ts"] == int(first.symbols["AAA"].ts[-1])
