"""What the engine tells a sink (bind), what a sink tells the run summary
(stats), and the engine handed to engine_started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import engine_core.testing as testing
from engine_core.events import Event, EventSink
from engine_core.hookspecs import hookimpl
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
