"""What the engine tells a sink (bind), what a sink tells the run summary
(stats), and the engine handed to engine_started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import engine_core.testing as testing
from engine_core.events import Event, EventSink
from engine_core.hookspecs import hookimpl
from engine_core.model import Bar
from engine_core.report import summarize
from engine_core.runner import build_engine


class CountingSink(EventSink):
    bound: list[tuple[str, list[str], str]] = []

    def bind(self, engine_id: str, symbols: Any, mode: str) -> None:
        CountingSink.bound.append((engine_id, list(symbols), mode))
        self.wants_bars = True  # type: ignore[misc]
        self.count = 0

    def handle(self, event: Event) -> None:
        self.count += 1

    def stats(self) -> dict[str, Any]:
        return {"events": self.count}


class Started:
    engines: list[Any] = []

    @staticmethod
    @hookimpl
    def engine_started(engine: Any) -> None:
        Started.engines.append(engine)


def test_bind_stats_and_engine_started(tmp_path: Path):
    sinks = testing.InlinePlugin(sinks={"counting": CountingSink})
    registry = testing.builtin_registry(("contract", sinks), ("started", Started()))
    symbols = [f"S{i}" for i in range(8)]
    path = testing.write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": symbols, "id": "x", "shard": "2/2"},
            "source": {"type": "simulated", "bars": 10},
            "strategy": testing.python_strategy(tmp_path),
            "sinks": [{"type": "counting"}, {"type": "log", "path": str(tmp_path / "log.txt")}],
        },
    )
    engine = build_engine(path, registry)
    result = engine.run()
    engine_id, held, mode = CountingSink.bound[-1]
    assert (engine_id, mode) == ("x-2of2", "backtest") and held == list(result.symbols)
    assert 0 < len(held) < len(symbols)
    assert Started.engines[-1] is engine
    # bars came because bind asked for them; only sinks with figures are in the summary
    assert summarize(result)["sinks"] == [{"type": "counting", "events": 10 * len(held)}]


class OneBarThenQuiet(testing.ReplaySource):
    """Its bars at once, then a quiet market (the run stays live)."""

    async def live(self) -> AsyncIterator[Bar]:  # type: ignore[override]
        for bar in self._bars():
            yield bar
        await asyncio.sleep(3600)


def test_a_live_runs_log_lines_reach_the_file_at_once(tmp_path: Path):
    """The bus flushes a sink whenever its queue runs empty: a log file
    followed with ``tail -f`` shows each bar as it is processed."""
    config = testing.write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A"]},
            "source": {"type": "quiet", "bars": testing.replay_rows("A", [100.0])},
            "strategy": testing.python_strategy(tmp_path),
            "sinks": [{"type": "log", "path": "events.log", "bars": True}],
        },
    )
    registry = testing.builtin_registry(
        ("testing", testing), ("quiet", testing.InlinePlugin(sources={"quiet": OneBarThenQuiet}))
    )
    log = tmp_path / "events.log"
    with testing.EngineThread(build_engine(config, registry)) as run:
        run.wait(lambda: log.exists() and " A bar o=100.0 " in log.read_text(), "the bar's line in the file")
