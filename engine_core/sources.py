"""The data-source contract.

A source turns a venue or a file into bars. It declares its own config model
(the keys of the ``[source]`` table besides ``type``), validated by the core
before anything starts, and implements at least one of:

* ``history()``: for backtests, ``BarChunk`` columns in event-time order.
  Each chunk holds one symbol; within a symbol chunks follow each other in
  time; across symbols, chunks are interleaved so that no chunk starts after a
  later chunk of another symbol ends (a k-way merge by time).
* ``live()``: for live runs, an async generator of ``Bar`` run on the
  engine's asyncio I/O thread, each bar closed and delivered once, in time
  order per symbol.

A live source may also provide ``warmup(symbol, bars)``: history that the
engine feeds through the symbol's indicators and strategy, without trading,
before its first live bar (at every start, so a restart rebuilds the
indicators while the journal restores the position). It reports its
connection with ``self.connection(state, detail)``; the engine turns that
into an event and ``engine status`` shows it.

On stop the engine closes the ``live()`` generator (``aclose()``) on the I/O
loop, then awaits ``aclose()`` of the source, so sessions are released
before the loop closes.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from engine_core.model import Bar, BarChunk


class ConnectionState(str, enum.Enum):
    """A live source's connection, as events and in ``engine status``."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    BACKFILLING = "backfilling"
    STALE = "stale"
    CLOSED = "closed"  # the market is closed (a venue with sessions) or the source stopped
    STOPPED = "stopped"  # the engine stopped: nothing is connected (the journal's last word on a run)


ConnectionCallback = Callable[[ConnectionState, str], None]


class PluginConfig(BaseModel):
    """Base of every plugin's config model: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(abc.ABC):
    """Bars from somewhere. Implement ``history`` (backtests), ``live``
    (live runs), or both; the engine refuses a mode the source lacks."""

    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: Any, *, symbols: Sequence[str], base_dir: Path) -> None:
        """``config`` is an instance of ``Config``; ``base_dir`` is the config
        file's directory (relative paths in the config are relative to it)."""
        self.config = config
        self.symbols = list(symbols)
        self.base_dir = base_dir
        self._on_connection: ConnectionCallback | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None) and not (cls.has_history() or cls.has_live()):
            raise TypeError(f"{cls.__name__}: a data source must implement history() or live() (or both)")

    @classmethod
    def has_history(cls) -> bool:
        return cls.history is not DataSource.history

    @classmethod
    def has_live(cls) -> bool:
        return cls.live is not DataSource.live

    def history(self) -> Iterator[BarChunk]:
        """Historical bars for a backtest (see the module docstring for ordering)."""
        raise NotImplementedError(f"{type(self).__name__} has no historical data")

    async def live(self) -> AsyncIterator[Bar]:
        """Live bars, as an async generator, until the engine stops it: each a
        ``Bar`` whose ``ts`` is an int of nanoseconds since the epoch (UTC; an
        integer of numpy's is taken as its int; anything else stops the run
        with an error naming the source)."""
        raise NotImplementedError(f"{type(self).__name__} has no live data")
        yield  # pragma: no cover - makes this an async generator

    async def warmup(self, symbol: str, bars: int) -> BarChunk | None:
        """Up to ``bars`` closed bars of ``symbol`` before now, oldest first,
        for the engine to warm indicators and strategy; None: no warm-up."""
        return None

    def entries_allowed(self, symbol: str, ts: int) -> bool:
        """Whether the engine may open a position on the bar of ``symbol``
        starting at ``ts`` (a venue with market sessions says no outside them,
        and on a session's last bar). Exits and stops are always allowed.
        Called from the symbols' worker threads: must be quick and thread-safe."""
        return True

    def bind_connection(self, callback: ConnectionCallback) -> None:
        """The engine's receiver of connection states (set before ``live``)."""
        self._on_connection = callback

    def connection(self, state: ConnectionState, detail: str = "") -> None:
        """Report the connection's state (connected, reconnecting, ...)."""
        if self._on_connection is not None:
            self._on_connection(state, detail)

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

    async def aclose(self) -> None:
        """Release async sessions (on the I/O loop, before it closes)."""

    def close(self) -> None:
        """Release files and connections."""
