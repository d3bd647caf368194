"""A broker that is away: events queue up to ``queue``; ``on_full`` drops the
oldest or makes the worker wait; either way it is counted and reported."""

from __future__ import annotations

import logging
from pathlib import Path

from mqtt_brokers import free_port
from mqtt_engines import Running, config, expected, gated_config, received, sinks
from mqtt_gated import bar, channel

from engine_core.report import summarize
from engine_core.runner import build_engine
from engine_core.testing import wait_until


def test_drop_oldest_counts_what_it_dropped_and_what_was_never_delivered(tmp_path: Path, caplog):
    nobody = free_port()  # nothing listens there
    engine = build_engine(config(tmp_path, nobody, sink={"queue": 50, "close_timeout": 0.5}))
    memory, mqtt = sinks(engine)
    with caplog.at_level(logging.WARNING):
        result = engine.run()
    events = len(memory.events)
    assert events > 50
    assert mqtt.dropped == events - 50 and mqtt.published == 0
    assert mqtt.lost >= 50  # the 50 queued (and the statuses) never left
    figures = summarize(result)["sinks"][0]
    assert figures["dropped"] == events - 50 and figures["events"] == events and figures["lost"] == mqtt.lost
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert f"cannot reach mqtt://127.0.0.1:{nobody}" in messages
    assert "not delivered" in messages


def test_block_makes_workers_wait_for_the_broker_and_loses_nothing(tmp_path: Path, broker, subscriber):
    engine = build_engine(config(tmp_path, broker.port, sink={"queue": 5, "on_full": "block"}))
    memory, mqtt = sinks(engine)
    engine.run()
    want = expected(memory.events, bars=False)
    wait_until(lambda: len(subscriber.events()) >= len(want), f"{len(want)} events")
    assert received(subscriber.events()) == want
    assert mqtt.blocked > 0 and mqtt.dropped == 0


def test_a_blocked_engine_still_stops(tmp_path: Path):
    path, name = gated_config(tmp_path, free_port(), sink={"queue": 3, "on_full": "block", "close_timeout": 0.2})
    run = Running(path)
    memory, mqtt = sinks(run.engine)
    for i in range(20):
        channel(name).put(bar("AAA", i))
    wait_until(lambda: mqtt.blocked > 0, "a worker to wait on the full queue")
    run.engine.stop_event.set()  # Ctrl-C
    result = run.join()
    assert mqtt.blocked > 0 and mqtt.dropped >= 1  # it gave way to the stop
    assert summarize(result)["sinks"][0]["blocked"] == mqtt.blocked
