"""Live, the sink publishes once the burst being processed has ended, and
looks at its queue as seldom as it can meanwhile: each look takes the
interpreter from a worker busy with the burst."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from engine_plugin_mqtt import sink as sink_module
from engine_plugin_mqtt.config import MqttSinkConfig
from engine_plugin_mqtt.sink import LIVE_QUIET, MqttSink

from engine_core.model import State, TransitionEvent

EVENT = TransitionEvent("AAA", 1, State.WATCH, State.CLOSE_WATCH, "test")


def live_sink(queue: int = 10_000) -> MqttSink:
    sink = MqttSink(MqttSinkConfig(queue=queue))
    sink.bind("e1", ["AAA"], "live")
    return sink


def settle(sink: MqttSink, monkeypatch: pytest.MonkeyPatch, during: Any = None) -> list[float]:
    """Run the sink's settle on a loop of its own (``during(loop)`` first);
    the LIVE_QUIET looks it took."""
    looks: list[float] = []
    sleep = asyncio.sleep

    async def counted(delay: float) -> None:
        looks.append(delay)
        await sleep(delay)

    monkeypatch.setattr(sink_module.asyncio, "sleep", counted)

    async def main() -> None:
        sink._wake = asyncio.Event()
        if during is not None:
            during(asyncio.get_running_loop())
        await sink._settle()

    loop = asyncio.new_event_loop()
    sink._loop = loop
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return looks


def test_the_first_burst_is_watched_until_it_is_quiet(monkeypatch):
    sink = live_sink()
    sink.handle(EVENT)
    assert settle(sink, monkeypatch) == [LIVE_QUIET]  # nothing came after one look: the burst is over


def test_most_of_the_last_burst_is_waited_in_one_go(monkeypatch):
    sink = live_sink()
    sink._burst = 0.03  # the last burst took 30 ms to settle
    sink.handle(EVENT)
    assert settle(sink, monkeypatch) == [LIVE_QUIET]  # one wait of 28 ms, then one look
    assert sink._burst > 0.02  # (it waited: the burst it saw lasted as long)


def test_half_the_queue_ends_the_wait(monkeypatch):
    sink = live_sink(queue=10)
    sink._burst = 0.05
    sink.handle(EVENT)

    def burst(loop: asyncio.AbstractEventLoop) -> None:
        loop.call_later(0.001, lambda: [sink.handle(EVENT) for _ in range(4)])  # 5 events: half the queue

    assert settle(sink, monkeypatch, burst) == []  # woken at half the queue: published at once, without a look
    assert len(sink._buf) == 5 and sink._wake_at == sink_module._NEVER
