"""The data-source contract.

A source turns a venue or a file into bars. It declares its own config model
(the keys of the ``[source]`` table besides ``type``), validated by the core
before anything starts, and provides one or both of:

* ``history()``: for backtests, ``BarChunk`` columns in event-time order.
  Each chunk holds one symbol; within a symbol chunks follow each other in
  time; across symbols, chunks are interleaved so that no chunk starts after a
  later chunk of another symbol ends (a k-way merge by time).
* ``live()``: for live runs, an async iterator of ``Bar`` run on the engine's
  asyncio I/O thread.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from engine_core.model import Bar, BarChunk


class PluginConfig(BaseModel):
    """Base of every plugin's config model: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(abc.ABC):
    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: Any, *, symbols: Sequence[str], base_dir: Path) -> None:
        """``config`` is an instance of ``Config``; ``base_dir`` is the config
        file's directory (relative paths in the config are relative to it)."""
        self.config = config
        self.symbols = list(symbols)
        self.base_dir = base_dir

    def history(self) -> Iterator[BarChunk]:
        """Historical bars for a backtest (see the module docstring for ordering)."""
        raise NotImplementedError(f"{type(self).__name__} has no historical data")

    def live(self) -> AsyncIterator[Bar]:
        """Live bars, as an async iterator, until the engine stops."""
        raise NotImplementedError(f"{type(self).__name__} has no live data")

    def check(self) -> list[str]:
        """Check what can be known before a run, without side effects (no
        connection opened, nothing written): files exist, each symbol has
        data, headers read. Raise ``DataError`` (or another ``EngineError``)
        for the first problem; return what was not verified, one phrase each.
        ``engine validate`` calls it."""
        return [f"the data itself ({type(self).__name__} checks nothing before a run)"]

    def stats(self) -> dict[str, Any]:
        """Figures the run summary reports for this source (e.g. skipped rows)."""
        return {}

    def close(self) -> None:
        """Release files and connections."""
