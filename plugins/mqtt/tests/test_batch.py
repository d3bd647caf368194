"""Batched events (``batch``): JSON arrays of events on
``<prefix>/<engine id>/<symbol>/events``, the default in backtests, complete
and in order per symbol at QoS 1 across cut connections and a broker restart;
one message per event stays the default live."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from mqtt_brokers import Proxy, Subscriber, stuck_subscriber
from mqtt_engines import Running, config, cut_when_published, expected, gated_config, received, sinks
from mqtt_gated import bar, channel

from engine_core.config import load_config
from engine_core.errors import ConfigError
from engine_core.plugins import get_registry
from engine_core.runner import build_engine
from engine_core.testing import wait_until

SYMBOLS = ["AAA", "BBB", "EUR/USD"]
TOPICS = {s: f"t/e1/{s.replace('/', '%2F')}/events" for s in SYMBOLS}


@pytest.fixture
def proxy(broker):
    p = Proxy(broker.port)
    yield p
    p.close()


def batches(subscriber: Subscriber) -> dict[str, list[list[dict[str, Any]]]]:
    """The arrays received on each topic, in arrival order."""
    out: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for topic, payload, _retained in subscriber.snapshot():
        if isinstance(payload, list):
            out[topic].append(payload)
    return out


def per_symbol(subscriber: Subscriber) -> dict[str, list[dict[str, Any]]]:
    """Each symbol's events as its topic delivered them, batches joined in
    order, a seq seen before (QoS 1 may deliver a batch twice) dropped."""
    seen: set[int] = set()
    out: dict[str, list[dict[str, Any]]] = {}
    for symbol, topic in TOPICS.items():
        events = out[symbol] = []
        for batch in batches(subscriber).get(topic, []):
            for payload in batch:
                if payload["seq"] not in seen:
                    seen.add(payload["seq"])
                    events.append(payload)
    return out


def want_per_symbol(events: list[Any], bars: bool) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {s: [] for s in SYMBOLS}
    for item in expected(events, bars):
        out[item[0]].append(item)
    return out


def delivered_in_order(subscriber: Subscriber, events: list[Any], bars: bool) -> None:
    """Every event arrived once, each symbol's in its order, and the seqs
    number all of them 1..n."""
    want = want_per_symbol(events, bars)
    total = sum(len(v) for v in want.values())
    wait_until(lambda: len(subscriber.events()) >= total, f"{total} events")
    got = per_symbol(subscriber)
    for symbol in SYMBOLS:
        assert received(got[symbol]) == want[symbol], symbol
        seqs = [p["seq"] for p in got[symbol]]
        assert seqs == sorted(seqs), symbol
    assert sorted(p["seq"] for events in got.values() for p in events) == list(range(1, total + 1))


def test_a_backtest_publishes_batches_by_default(tmp_path: Path, broker, subscriber):
    engine = build_engine(config(tmp_path, broker.port, sink={"batch": "auto"}))
    memory, mqtt = sinks(engine)
    engine.run()
    assert mqtt.batched
    delivered_in_order(subscriber, memory.events, bars=False)
    arrays = batches(subscriber)
    assert set(arrays) == set(TOPICS.values())  # nothing else carries events
    singles = [t for t, p, _ in subscriber.snapshot() if isinstance(p, dict) and "event" in p]
    assert singles == []
    messages = sum(len(v) for v in arrays.values())
    assert messages < len(subscriber.events())  # many events to a message
    # each element is the object the per-event topics carry
    fill = next(p for p in subscriber.events() if p["event"] == "fill")
    assert fill["schema"] == 1 and fill["engine"] == "e1" and {"price", "qty", "client_id", "time"} <= set(fill)
    final = subscriber.final_status()
    assert final["batch"] is True and final["online"] is False and final["reason"] == "stopped"
    assert mqtt.dropped == 0 and mqtt.lost == 0


def test_batch_size_bounds_every_message(tmp_path: Path, broker, subscriber):
    engine = build_engine(config(tmp_path, broker.port, sink={"batch": True, "batch_size": 7, "bars": True}))
    memory, _ = sinks(engine)
    engine.run()
    delivered_in_order(subscriber, memory.events, bars=True)
    sizes = [len(b) for arrays in batches(subscriber).values() for b in arrays]
    assert max(sizes) == 7 and min(sizes) >= 1


def test_a_live_engine_publishes_one_message_per_event_by_default(tmp_path: Path, broker, subscriber):
    path, name = gated_config(tmp_path, broker.port, sink={"batch": "auto"})
    for i in range(12):
        for symbol in SYMBOLS:
            channel(name).put(bar(symbol, i))
    channel(name).put(None)
    run = Running(path)
    memory, mqtt = sinks(run.engine)
    run.join()
    assert not mqtt.batched
    want = expected(memory.events, bars=False)
    wait_until(lambda: len(subscriber.events()) >= len(want), f"{len(want)} events")
    assert received(subscriber.events()) == want
    assert batches(subscriber) == {}
    assert subscriber.on("t/e1/AAA/fill") and subscriber.on("t/e1/status")[-1]["batch"] is False


def test_connections_cut_mid_batch_lose_nothing(tmp_path: Path, broker, proxy, subscriber):
    path = config(
        tmp_path,
        proxy.port,
        source={"type": "simulated", "bars": 300},
        sink={"batch": True, "batch_size": 5, "bars": True, "close_timeout": 120},
    )
    engine = build_engine(path)
    memory, mqtt = sinks(engine)
    thread, cuts = cut_when_published(proxy, mqtt, (30, 120, 240))
    engine.run()
    thread.join(60)
    delivered_in_order(subscriber, memory.events, bars=True)
    assert len(cuts) == 3 and any(cuts)  # batches were in flight when the connection went
    assert mqtt.connects == 4 and mqtt.lost == 0 and mqtt.dropped == 0


def test_the_broker_killed_mid_run_loses_no_batched_event(tmp_path: Path, broker, proxy, subscriber):
    path, name = gated_config(tmp_path, proxy.port, sink={"batch": True, "close_timeout": 60})
    run = Running(path)
    memory, mqtt = sinks(run.engine)

    def feed(start: int, stop: int) -> None:
        for i in range(start, stop):
            for symbol in SYMBOLS:
                channel(name).put(bar(symbol, i))

    def processed(bars: int) -> bool:
        workers = run.engine.workers
        return len(workers) == len(SYMBOLS) and all(w.bars_done >= bars for w in workers.values())

    feed(0, 40)
    wait_until(lambda: processed(40), "the first 40 bars")
    wait_until(lambda: not mqtt._buf and not mqtt._unacked and len(subscriber.events()) == mqtt._seq, "a delivery")
    broker.kill()  # kill -9 with batches on their way
    proxy.cut()
    feed(40, 80)
    wait_until(lambda: processed(80), "40 bars with the broker dead")
    back = subscriber.resubscribed()
    broker.start()
    wait_until(back.is_set, "the subscriber to resubscribe")
    proxy.open()
    feed(80, 100)
    channel(name).put(None)
    run.join()
    delivered_in_order(subscriber, memory.events, bars=False)
    assert mqtt.batched and mqtt.connects >= 2 and mqtt.dropped == 0 and mqtt.lost == 0
    assert subscriber.final_status()["reason"] == "stopped"


def test_a_subscriber_that_never_reads_does_not_hold_a_batched_backtest(tmp_path: Path, broker, subscriber):
    with stuck_subscriber(broker.port):
        path = config(
            tmp_path,
            broker.port,
            sink={"batch": True, "batch_size": 3, "bars": True, "close_timeout": 120},
            source={"type": "simulated", "bars": 500},
        )
        engine = build_engine(path)
        memory, mqtt = sinks(engine)
        engine.run()
        delivered_in_order(subscriber, memory.events, bars=True)
        assert mqtt.dropped == 0 and mqtt.lost == 0


@pytest.mark.parametrize(
    ("sink", "error"),
    [
        ({"batch": "yes"}, """sinks[1].batch: expected true, false or "auto" (batched in backtests only), got 'yes'"""),
        ({"batch": 1}, "sinks[1].batch: expected true, false or"),
        ({"batch_size": 0}, "sinks[1].batch_size: expected a number >= 1, got 0"),
    ],
)
def test_bad_batch_keys_are_one_line(tmp_path: Path, sink, error):
    path = config(tmp_path, 1883, sink=sink)
    with pytest.raises(ConfigError) as err:
        load_config(path, get_registry())
    assert str(err.value).startswith(f"{path}: {error}")
    assert "\n" not in str(err.value)
