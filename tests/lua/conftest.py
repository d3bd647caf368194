"""Helpers for the Lua host tests: a strategy bound to a view, fed chunks."""

from __future__ import annotations

import faulthandler
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine_core.config import StrategySection
from engine_core.lua.host import LuaHost, LuaSymbolStrategy
from engine_core.strategy import SymbolView

MINUTE = 60_000_000_000

DEFAULT = """
function watch(ctx) end
function close_watch(ctx) end
function in_trade(ctx) end
"""


class Harness:
    """A Lua script bound to one symbol, fed bars in chunks like the worker does."""

    def __init__(self, path: Path, code: str, window: int = 50, **strategy: Any) -> None:
        path.write_text(code)
        self.path = path
        self.config = StrategySection(script=path.name, **strategy)
        self.host = LuaHost(self.config, path.parent)
        self.host.load()
        self.view = SymbolView("TEST", self.config.params, window)
        self.strategy: LuaSymbolStrategy = self.host.bind("TEST", self.view)  # type: ignore[assignment]
        self.close = np.empty(0)
        self.window = window

    def feed(self, close: np.ndarray) -> None:
        """Append bars (open = previous close, high/low around) and show the
        window's history plus these bars to the view."""
        close = np.asarray(close, dtype=np.float64)
        start = len(self.close)
        self.close = np.concatenate((self.close, close))
        history = min(start, self.window - 1)
        c = self.close[start - history :]
        ts = (np.arange(start - history, len(self.close), dtype=np.int64) + 1) * MINUTE
        opens = np.concatenate(([c[0]], c[:-1]))
        cols = {
            "ts": ts,
            "open": opens,
            "high": np.maximum(opens, c) + 0.5,
            "low": np.minimum(opens, c) - 0.5,
            "close": c,
            "volume": np.arange(len(c), dtype=np.float64) + 10,
        }
        self.view.set_data(cols, history)


@pytest.fixture
def harness(tmp_path: Path) -> Any:
    def make(code: str = DEFAULT, **kwargs: Any) -> Harness:
        return Harness(tmp_path / "strategy.lua", code, **kwargs)

    return make


@dataclass(frozen=True)
class Budget:
    """A CPU budget mode with limits small enough for runaway tests, and the
    error a spent budget raises."""

    limits: dict[str, Any]
    message: str  # a regex


BUDGETS = {
    "time": Budget({"budget": "time", "max_call_ms": 20}, r"time budget exceeded \(20 ms per call\)"),
    "instructions": Budget(
        {"budget": "instructions", "max_instructions": 100_000}, r"instruction budget exceeded \(100000 per call\)"
    ),
}
# Limits that no test's CPU use reaches, by mode (for the memory tests).
ROOMY = {"time": {"budget": "time", "max_call_ms": 600_000}, "instructions": {"max_instructions": 100_000_000}}


@pytest.fixture(params=sorted(BUDGETS))
def budget(request: pytest.FixtureRequest) -> Budget:
    """Each hostile-script test runs under both CPU budgets."""
    return BUDGETS[request.param]


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A runaway script the sandbox failed to stop ends the test run with
    every thread's stack instead of hanging it."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
