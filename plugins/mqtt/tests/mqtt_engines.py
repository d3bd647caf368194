"""Configs for engines that publish to the test broker."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

from engine_plugin_mqtt import wire
from engine_plugin_mqtt.sink import MqttSink

from engine_core.events import Event
from engine_core.runner import Engine, build_engine
from engine_core.testing import EngineThread, MemorySink, wait_until, write_config

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


def gated_config(
    tmp_path: Path, port: int, *, engine: dict[str, Any] | None = None, sink: dict[str, Any] | None = None
) -> tuple[Path, str]:
    """A live config fed through a fresh gated channel: (its path, the channel's
    name for ``channel(name).put(bar)``)."""
    name = uuid.uuid4().hex
    source = {"type": "gated", "channel": name}
    return config(tmp_path, port, engine={"mode": "live", **(engine or {})}, source=source, sink=sink), name


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


class Running(EngineThread):
    """An engine run on a thread, started at once."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(build_engine(path, **kwargs))
        self.start()


def cut_when_published(proxy: Any, mqtt: MqttSink, counts: tuple[int, ...]) -> tuple[threading.Thread, list[int]]:
    """On a thread: cut the connection (then let it back) each time the sink
    has published ``counts[k]`` messages and is connected again since the
    last cut (a cut while it reconnects cuts nothing); the list gets how many
    were unacknowledged at each cut."""
    cuts: list[int] = []

    def cutter() -> None:
        for at in counts:
            wait_until(
                lambda at=at: mqtt.published >= at and mqtt.connects > len(cuts),
                f"{at} messages published on connection {len(cuts) + 1}",
                120,
            )
            proxy.cut()
            cuts.append(len(mqtt._unacked))
            proxy.open()

    thread = threading.Thread(target=cutter, daemon=True)
    thread.start()
    return thread, cuts
