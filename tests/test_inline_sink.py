"""An ``inline`` sink: its handle runs on the thread that emits (a worker's),
every event in order, and a failure is isolated and reported like a sink on
a thread of its own."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path
from typing import Any

import engine_core.testing as testing
from engine_core.events import EventSink
from engine_core.hookspecs import hookimpl
from engine_core.model import FillEvent
from engine_core.runner import build_engine
from engine_core.testing import builtin_registry, write_config

TRADER = """
class S:
    def watch(self, ctx):
        return "enter" if ctx.index % 4 == 1 else None
    def close_watch(self, ctx):
        return "enter"
    def in_trade(self, ctx):
        return "exit" if ctx.index % 4 == 3 else None
"""


class InlineRecorder(EventSink):
    inline = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.events: list[Any] = []
        self.threads: set[str] = set()
        self.closed_after: int | None = None

    def handle(self, event: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(event)

    def close(self) -> None:
        self.closed_after = len(self.events)


class IdleRecorder(InlineRecorder):
    """Keeps, for each time the engine said it was idle, the thread that said
    it and how many events it had made by then."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.told: list[tuple[str, int]] = []

    def idle(self) -> None:
        self.told.append((threading.current_thread().name, len(self.events)))


class IdleExploding(InlineRecorder):
    def idle(self) -> None:
        raise OSError("socket gone")


class InlineExploding(EventSink):
    inline = True

    def handle(self, event: Any) -> None:
        if isinstance(event, FillEvent):
            raise OSError("socket gone")


class _Sinks:
    @staticmethod
    @hookimpl
    def register_event_sinks(register: Any) -> None:
        register("inline", InlineRecorder)
        register("inline_exploding", InlineExploding)
        register("idle", IdleRecorder)
        register("idle_exploding", IdleExploding)


def config(tmp_path: Path, sinks: list[dict[str, Any]], live: bool = False) -> Path:
    (tmp_path / "s.py").write_text(textwrap.dedent(TRADER))
    bars = [
        [s, 60 * i, 100.0 + i % 5, 102.0 + i % 5, 99.0 + i % 5, 101.0 + i % 5, 1.0] for i in range(40) for s in "AB"
    ]
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A", "B"], "window": 20, "mode": "live" if live else "backtest", "journal": False},
            "source": {"type": "replay", "bars": bars, "pace": 0.002 if live else 0.0},
            "strategy": {"host": "python", "class": "s.py:S", "qty": 1},
            "broker": {"type": "paper", "cash": 10000},
            "sinks": sinks,
        },
    )


def test_an_inline_sink_gets_every_event_on_the_workers_threads(tmp_path: Path):
    registry = builtin_registry(("testing", testing), ("sinks", _Sinks()))
    engine = build_engine(config(tmp_path, [{"type": "memory"}, {"type": "inline"}]), registry)
    memory, inline = engine.bus.sinks
    engine.run()
    assert isinstance(inline, InlineRecorder)
    assert inline.events == memory.events and any(isinstance(e, FillEvent) for e in inline.events)
    assert inline.threads <= {"worker-A", "worker-B"} and inline.threads
    assert inline.closed_after == len(inline.events)  # closed once, after the last event


def test_an_inline_sink_that_raises_is_disabled_and_reported(tmp_path: Path):
    registry = builtin_registry(("testing", testing), ("sinks", _Sinks()))
    engine = build_engine(config(tmp_path, [{"type": "inline_exploding"}, {"type": "memory"}]), registry)
    result = engine.run()
    assert all(r.halted is None and r.fills > 2 for r in result.symbols.values())
    failed = result.source_stats["sinks"]["InlineExploding"]["failed"]
    assert "failed in handle: OSError: socket gone" in failed
    memory = engine.bus.sinks[1]
    assert sum(isinstance(e, FillEvent) for e in memory.events) == sum(r.fills for r in result.symbols.values())


def test_a_live_engine_tells_its_sinks_when_a_burst_is_over_and_a_backtest_never(tmp_path: Path):
    registry = builtin_registry(("testing", testing), ("sinks", _Sinks()))
    live = build_engine(config(tmp_path, [{"type": "idle"}], live=True), registry)
    live.run()
    sink = live.bus.sinks[0]
    assert isinstance(sink, IdleRecorder)
    assert sink.told and {thread for thread, _ in sink.told} == {"baton"}  # the baton's watcher, not a worker
    assert [made for _, made in sink.told] == sorted(made for _, made in sink.told)
    assert any(0 < made < len(sink.events) for _, made in sink.told)  # told between the bars, not only at the end
    backtest = build_engine(config(tmp_path, [{"type": "idle"}]), registry)
    backtest.run()
    assert backtest.bus.sinks[0].events and not backtest.bus.sinks[0].told


def test_a_sink_that_raises_when_told_idle_is_disabled_and_reported(tmp_path: Path):
    registry = builtin_registry(("testing", testing), ("sinks", _Sinks()))
    engine = build_engine(config(tmp_path, [{"type": "idle_exploding"}, {"type": "memory"}], live=True), registry)
    result = engine.run()
    assert all(r.halted is None and r.fills > 2 for r in result.symbols.values())
    failed = result.source_stats["sinks"]["IdleExploding"]["failed"]
    assert "failed in idle: OSError: socket gone" in failed
