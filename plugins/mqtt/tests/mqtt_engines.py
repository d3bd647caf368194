"""Configs for engines that publish to the test broker."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from engine_plugin_mqtt import wire
from engine_plugin_mqtt.sink import MqttSink

from engine_core.events import Event
from engine_core.runner import Engine, build_engine
from engine_core.testing import MemorySink, write_config

# Trades often: in at every 4th bar, out two bars later.
BUSY = """
class S:
    def watch(self, ctx):
        return "enter" if ctx.index % 4 == 0 else None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return "exit" if ctx.index % 4 == 2 else None
"""


def config(
    tmp_path: Path,
    port: int,
    *,
    engine: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    sink: dict[str, Any] | None = None,
    name: str = "c.toml",
) -> Path:
    (tmp_path / "busy.py").write_text(BUSY)
    return write_config(
        tmp_path / name,
        {
            "engine": {"symbols": ["AAA", "BBB", "EUR/USD"], "id": "e1", "journal": False, **(engine or {})},
            "source": source or {"type": "simulated", "bars": 200},
            "strategy": {"host": "python", "class": "busy.py:S"},
            "sinks": [
                {"type": "memory", "bars": bool((sink or {}).get("bars"))},
                # one message per event unless a test asks for batches (test_batch.py does)
                {"type": "mqtt", "host": "127.0.0.1", "port": port, "prefix": "t", "batch": False, **(sink or {})},
            ],
        },
    )


def gated_config(tmp_path: Path, port: int, channel: str, sink: dict[str, Any] | None = None) -> Path:
    """A live engine fed by the ``gated`` source: the bars a test puts on ``channel``."""
    return config(tmp_path, port, engine={"mode": "live"}, source={"type": "gated", "channel": channel}, sink=sink)


def sinks(engine: Engine) -> tuple[MemorySink, MqttSink]:
    memory, mqtt = engine.bus.sinks
    assert isinstance(memory, MemorySink) and isinstance(mqtt, MqttSink)
    return memory, mqtt


def expected(events: list[Event], bars: bool) -> list[tuple[Any, ...]]:
    """What a subscriber should see of ``events``, in order: (symbol, event, ts)."""
    out = []
    for event in events:
        symbol, name, payload = wire.event_message(event, "e", 0)
        if name != "bar" or bars:
            out.append((symbol, name, payload["ts"]))
    return out


def received(payloads: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(p["symbol"], p["event"], p["ts"]) for p in payloads]


class Running:
    """An engine run on a thread."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        self.engine = build_engine(path, **kwargs)
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.engine.run()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            self.error = err

    def join(self, timeout: float = 60) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the engine did not finish"
        if self.error is not None:
            raise self.error
        return self.result
