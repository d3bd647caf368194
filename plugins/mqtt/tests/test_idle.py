"""Live, the sink publishes once the engine says a burst of bars is over
(``idle``), never in the middle of one, where its thread would take the
interpreter from the workers; from an engine that never says so, within
LIVE_EVERY; and at once when a burst fills half its queue."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from engine_plugin_mqtt.config import MqttSinkConfig
from engine_plugin_mqtt.sink import LIVE_EVERY, MqttSink

from engine_core.model import State, TransitionEvent
from engine_core.testing import wait_until

QUIET = 10 * LIVE_EVERY  # seconds in which an event published at once would have arrived many times over


def event(i: int) -> TransitionEvent:
    return TransitionEvent("AAA", i, State.WATCH, State.CLOSE_WATCH, "test")


@pytest.fixture
def live_sink(broker) -> Iterator[MqttSink]:
    sink = MqttSink(MqttSinkConfig(port=broker.port, prefix="t", queue=10))
    sink.bind("e1", ["AAA"], "live")
    sink.start()
    sink.attach()
    yield sink
    sink.close()


def test_events_wait_for_the_engine_to_say_the_burst_is_over(live_sink, subscriber):
    live_sink.idle()  # the engine says when it is idle (nothing queued yet: nothing to publish)
    time.sleep(QUIET)  # (a wait the loop began before it knew has run out)
    for i in range(3):
        live_sink.handle(event(i))
    time.sleep(QUIET)
    assert subscriber.events() == []  # the burst goes on as far as the sink knows
    live_sink.idle()
    wait_until(lambda: len(subscriber.events()) == 3, "the burst's three events")
    assert [e["ts"] for e in subscriber.events()] == [0, 1, 2]


def test_an_engine_that_never_says_it_is_idle_has_its_events_published_anyway(live_sink, subscriber):
    for i in range(3):
        live_sink.handle(event(i))
    wait_until(lambda: len(subscriber.events()) == 3, "the three events, LIVE_EVERY after they came")


def test_a_burst_that_fills_half_the_queue_is_published_while_it_runs(live_sink, subscriber):
    live_sink.idle()
    for i in range(5):  # half the queue of 10
        live_sink.handle(event(i))
    wait_until(lambda: len(subscriber.events()) == 5, "the five events, without the engine idle")
    assert live_sink.dropped == 0


def test_closing_a_sink_whose_loop_has_ended_raises_nothing(broker):
    """The publishing loop may end before ``close`` wakes it (it failed, or
    it ended as soon as a first wake-up came): ``close`` still returns
    quietly, never "event loop is closed" from the engine's stop."""
    sink = MqttSink(MqttSinkConfig(port=broker.port, prefix="t", queue=10))
    sink.bind("e1", ["AAA"], "live")
    sink.start()
    thread, loop, attached = sink._thread, sink._loop, sink._attached
    assert thread is not None and loop is not None and attached is not None
    loop.call_soon_threadsafe(attached.set)  # the loop ends on its own: never attached, nothing to publish
    thread.join(5)
    assert loop.is_closed()
    sink.close()
