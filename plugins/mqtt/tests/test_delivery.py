"""QoS 1 delivery when the broker goes away: nothing lost, order kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from mqtt_brokers import Proxy
from mqtt_engines import Running, config, cut_when_published, expected, gated_config, received, sinks
from mqtt_gated import bar, channel

from engine_core.runner import build_engine
from engine_core.testing import wait_until

SYMBOLS = ["AAA", "BBB", "EUR/USD"]


@pytest.fixture
def proxy(broker):
    p = Proxy(broker.port)
    yield p
    p.close()


def feed(name: str, start: int, stop: int) -> None:
    q = channel(name)
    for i in range(start, stop):
        for symbol in SYMBOLS:
            q.put(bar(symbol, i))


def processed(engine, bars: int) -> bool:
    return len(engine.workers) == len(SYMBOLS) and all(w.bars_done >= bars for w in engine.workers.values())


def caught_up(mqtt, subscriber) -> bool:
    """Everything published so far was acknowledged and reached the subscriber."""
    return not mqtt._buf and not mqtt._unacked and not mqtt._local and len(subscriber.events()) == mqtt._seq


def test_the_broker_killed_and_restarted_mid_run_loses_nothing(tmp_path: Path, broker, proxy, subscriber):
    path, name = gated_config(tmp_path, proxy.port, sink={"qos": 1, "close_timeout": 60})
    run = Running(path)
    memory, mqtt = sinks(run.engine)
    feed(name, 0, 40)
    wait_until(lambda: processed(run.engine, 40), "the first 40 bars")
    wait_until(lambda: caught_up(mqtt, subscriber), "the subscriber to catch up")
    before = mqtt._seq

    broker.kill()  # kill -9 in the middle of a live run (amqtt, in this process: shut down)
    proxy.cut()  # and hold the engine off until the subscriber is back
    feed(name, 40, 80)
    wait_until(lambda: processed(run.engine, 80), "40 bars with the broker dead")
    # events wait in the sink's queue (the bus hands them over on its own thread)
    wait_until(lambda: len(mqtt._buf) > 0, "events to wait in the sink's queue")
    back = subscriber.resubscribed()
    broker.start()
    wait_until(back.is_set, "the subscriber to resubscribe")
    proxy.open()
    feed(name, 80, 100)
    channel(name).put(None)
    run.join()

    want = expected(memory.events, bars=False)
    assert mqtt._seq > before
    wait_until(lambda: len(subscriber.events()) >= len(want), f"{len(want)} events")
    got = subscriber.events()
    assert [p["seq"] for p in got] == list(range(1, len(want) + 1))
    assert received(got) == want
    assert mqtt.connects >= 2 and mqtt.dropped == 0 and mqtt.lost == 0
    assert subscriber.final_status()["reason"] == "stopped"


def test_connections_cut_with_messages_in_flight_lose_nothing(tmp_path: Path, broker, proxy, subscriber):
    path = config(
        tmp_path,
        proxy.port,
        source={"type": "simulated", "bars": 300},
        sink={"bars": True, "close_timeout": 120},
    )
    engine = build_engine(path)
    memory, mqtt = sinks(engine)
    thread, cuts = cut_when_published(proxy, mqtt, (300, 1200, 2400))
    engine.run()
    thread.join(60)
    want = expected(memory.events, bars=True)
    wait_until(lambda: len(subscriber.events()) >= len(want), f"{len(want)} events")
    got = subscriber.events()
    assert [p["seq"] for p in got] == list(range(1, len(want) + 1))
    assert received(got) == want
    assert len(cuts) == 3 and any(cuts)  # messages were in flight when the connection went
    assert mqtt.connects == 4 and mqtt.lost == 0


def test_a_hung_broker_holds_a_stopping_engine_no_longer_than_close_timeout(tmp_path: Path, broker, proxy):
    path, name = gated_config(tmp_path, proxy.port, sink={"close_timeout": 1, "keepalive": 3600})
    run = Running(path)
    _, mqtt = sinks(run.engine)
    feed(name, 0, 10)
    wait_until(lambda: processed(run.engine, 10) and mqtt.published > 0 and not mqtt._unacked, "a first delivery")
    proxy.hold()  # connected, but nothing passes any more: no acknowledgement comes
    feed(name, 10, 30)
    wait_until(lambda: processed(run.engine, 30), "20 more bars")
    channel(name).put(None)
    # without close_timeout the sink would wait for the keepalive to notice: an hour
    run.join(60)
    assert mqtt.lost > 0 and mqtt.connects == 1
