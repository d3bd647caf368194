"""Remote control over MQTT: good commands act and are answered; unknown and
malformed ones are answered with an error and never acted on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from engine_plugin_mqtt import wire
from mqtt_brokers import Mosquitto, Subscriber
from mqtt_engines import Running, gated_config, sinks
from mqtt_gated import bar, channel
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from engine_core.testing import wait_until

SYMBOLS = ["AAA", "BBB", "EUR/USD"]


class Live:
    def __init__(self, run: Running, name: str, subscriber: Subscriber) -> None:
        self.run, self.name, self.subscriber = run, name, subscriber
        self.engine = run.engine
        self.bars = 0
        self.publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="commander")

    def feed(self, n: int) -> None:
        for i in range(self.bars, self.bars + n):
            for symbol in SYMBOLS:
                channel(self.name).put(bar(symbol, i))
        self.bars += n
        wait_until(lambda: all(w.bars_done >= self.bars for w in self.engine.workers.values()), f"{self.bars} bars")

    def command(self, name: str, payload: Any, request_id: str | None = None) -> dict[str, Any]:
        """Publish a command; its reply (matched by request_id, or the next reply)."""
        before = len(self.subscriber.on("t/e1/reply"))
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        self.publisher.publish(f"t/e1/control/{name}", data, qos=1).wait_for_publish(30)

        def reply() -> dict[str, Any] | None:
            for r in self.subscriber.on("t/e1/reply")[before:]:
                if request_id is None or r.get("request_id") == request_id:
                    return r
            return None

        wait_until(lambda: reply() is not None, f"the reply to {name}")
        answer = reply()
        assert answer is not None
        return answer


@pytest.fixture
def live(tmp_path: Path, broker, subscriber) -> Iterator[Live]:
    path, name = gated_config(tmp_path, broker.port, sink={"control": True})
    run = Running(path)
    wait_until(lambda: sinks(run.engine)[1].connects == 1, "the sink to connect")
    wait_until(lambda: any(s["online"] for s in subscriber.on("t/e1/status")), "the engine online")
    live = Live(run, name, subscriber)
    live.publisher.connect("127.0.0.1", broker.port)
    live.publisher.loop_start()
    live.feed(5)
    yield live
    live.publisher.disconnect()
    live.publisher.loop_stop()
    if run.thread.is_alive():
        channel(name).put(None)
        run.join()


def test_pause_flatten_resume_by_mqtt(live: Live):
    a = live.engine.workers["AAA"]
    assert a.ledger.qty != 0  # the busy strategy is in a trade after bar 4
    reply = live.command("pause", {"symbol": "AAA", "request_id": "r1"}, "r1")
    assert reply["ok"] is True and reply["schema"] == 1 and reply["engine"] == "e1"
    assert reply["command"] == "pause" and reply["symbol"] == "AAA" and reply["error"] is None
    assert set(reply["results"]) == {"AAA"}
    wait_until(lambda: live.subscriber.on("t/e1/AAA/status")[-1]["paused"], "AAA's status to show paused")

    reply = live.command("flatten", {"symbol": "AAA", "request_id": "r2"}, "r2")
    assert reply["ok"] is True and "sent" in reply["results"]["AAA"]
    live.feed(8)  # the flatten order fills at the next open; paused, the strategy does not re-enter
    assert a.ledger.qty == 0 and a.paused
    # the fill and the move to watch are two events: a status may go out between them
    wait_until(
        lambda: live.subscriber.on("t/e1/AAA/status")[-1]["state"] == "watch", "AAA's status to show the trade over"
    )
    status = live.subscriber.on("t/e1/AAA/status")[-1]
    assert status["position"] == "0" and status["paused"] is True and status["pending_order"] is None
    orders = [p for p in live.subscriber.on("t/e1/AAA/order") if p["status"] == "submitted"]
    assert orders[-1]["reason"] == "flatten"
    assert live.engine.workers["BBB"].orders_sent > a.orders_sent  # BBB traded on

    reply = live.command("resume", {"symbol": "AAA", "request_id": "r3"}, "r3")
    assert reply["ok"] is True and reply["results"] == {"AAA": "resumed"}
    live.feed(4)
    assert a.ledger.qty != 0  # trading again


def test_a_successful_command_is_answered_never_published_as_an_error(live: Live):
    reply = live.command("pause", {"symbol": "AAA", "request_id": "p1"}, "p1")
    assert reply["ok"] is True
    live.feed(2)
    assert live.command("resume", {"symbol": "AAA", "request_id": "p2"}, "p2")["ok"] is True
    live.feed(2)
    made = [wire.event_message(e, "e1", 0) for e in sinks(live.engine)[0].events]
    kinds = {name for symbol, name, _ in made if symbol == "AAA"}
    assert "error" not in kinds

    def published() -> int:
        return sum(len(live.subscriber.on(f"t/e1/AAA/{kind}")) for kind in kinds | {"error"})

    want = sum(1 for symbol, _, _ in made if symbol == "AAA")
    wait_until(lambda: published() >= want, "AAA's events published")
    assert live.subscriber.on("t/e1/AAA/error") == []


def test_a_command_for_every_symbol(live: Live):
    reply = live.command("pause", {"request_id": "all"}, "all")
    assert reply["ok"] and set(reply["results"]) == set(SYMBOLS)
    assert all(w.paused for w in live.engine.workers.values())
    reply = live.command("reload", "")  # an empty payload is a command without symbol or id
    assert reply["ok"] and reply["request_id"] is None
    assert set(reply["results"].values()) == {"the strategy file is unchanged"}


@pytest.mark.parametrize(
    ("name", "payload", "error"),
    [
        ("explode", {"symbol": "AAA", "request_id": "x"}, "unknown command 'explode'"),
        ("pause", "not json", "malformed command: not JSON"),
        ("pause", [1, 2], "malformed command: expected a JSON object, got list"),
        ("pause", {"symbol": 5, "request_id": "x"}, "malformed command: symbol: expected a non-empty string, got 5"),
        ("pause", {"sym": "AAA", "request_id": "x"}, "malformed command: unknown key 'sym'"),
        ("pause", {"symbol": "AAA", "schema": 2, "request_id": "x"}, "malformed command: schema 2 is not supported"),
        ("pause", {"symbol": "ZZZ", "request_id": "x"}, "symbol 'ZZZ' is not run by this engine"),
        ("stop", {"symbol": "AAA", "request_id": "x"}, "stop is engine-wide and takes no symbol"),
    ],
)
def test_unknown_and_malformed_commands_are_answered_and_never_acted_on(live: Live, name, payload, error):
    orders = {s: w.orders_sent for s, w in live.engine.workers.items()}
    reply = live.command(name, payload)
    assert reply["ok"] is False and reply["error"].startswith(error)
    if isinstance(payload, dict):
        assert reply["request_id"] == "x"
    live.feed(4)
    assert not any(w.paused for w in live.engine.workers.values())
    assert live.run.thread.is_alive()
    assert all(w.orders_sent > orders[s] for s, w in live.engine.workers.items())  # all kept trading
    assert sinks(live.engine)[1].control.refused == 1


def test_a_repeated_request_is_answered_again_not_acted_on_twice(live: Live):
    b = live.engine.workers["BBB"]
    assert b.ledger.qty != 0 and b.orders.current is None
    first = live.command("flatten", {"symbol": "BBB", "request_id": "once"}, "once")
    second = live.command("flatten", {"symbol": "BBB", "request_id": "once"}, "once")
    assert first["ok"] and second["repeated"] is True and second["results"] == first["results"]
    wait_until(lambda: any(p["reason"] == "flatten" for p in live.subscriber.on("t/e1/BBB/order")), "the flatten")
    sent = [p for p in live.subscriber.on("t/e1/BBB/order") if p["reason"] == "flatten" and p["status"] == "submitted"]
    assert len(sent) == 1


def test_stop_ends_the_engine(live: Live, broker):
    reply = live.command("stop", {"request_id": "bye"}, "bye")
    assert reply["ok"] and reply["results"] == {"*": "stopping"}
    live.run.join()
    # what engine run prints as "stopped by ...": the command, its request and where it came from
    where = f"MQTT topic t/e1/control/stop on mqtt://127.0.0.1:{broker.port}"
    assert live.engine.stopped_by == f"the stop command (request bye, from {where})"
    wait_until(lambda: live.subscriber.on("t/e1/status")[-1]["online"] is False, "the engine offline")


def test_mqtt5_response_topic_and_correlation_data(tmp_path: Path, mosquitto: Mosquitto):
    broker = mosquitto
    path, name = gated_config(tmp_path, broker.port, sink={"control": True, "mqtt_version": "5"})
    subscriber = Subscriber(broker.port)
    run = Running(path)
    try:
        wait_until(lambda: any(s["online"] for s in subscriber.on("t/e1/status")), "the engine online")
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="v5", protocol=paho.MQTTv5)
        answers: list[Any] = []
        client.on_message = lambda c, u, m: answers.append(m)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        client.subscribe("my/answers", qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "my/answers"
        props.CorrelationData = b"\x01corr"
        client.publish("t/e1/control/pause", json.dumps({"symbol": "AAA"}), qos=1, properties=props)
        wait_until(lambda: answers, "the answer on the response topic")
        client.disconnect()
        client.loop_stop()
        assert answers[0].properties.CorrelationData == b"\x01corr"
        assert json.loads(answers[0].payload)["ok"] is True
    finally:
        channel(name).put(None)
        run.join()
        subscriber.close()


def test_a_worker_error_without_a_message_is_answered_with_its_type_never_an_empty_line(monkeypatch):
    from concurrent.futures import Future

    from engine_plugin_mqtt import control

    failed: Future[Any] = Future()
    failed.set_exception(TimeoutError())  # str() is ""
    monkeypatch.setattr(control, "deliver", lambda engine, command: {"AAA": failed})
    channel = control.ControlChannel("e1")
    channel.engine = object()
    reply = asyncio.run(channel.answer("pause", b'{"symbol": "AAA"}'))
    assert reply["ok"] is False
    assert reply["errors"] == {"AAA": "internal error: TimeoutError: (no message)"}
    assert reply["error"] == "AAA: internal error: TimeoutError: (no message)"
