"""The backtest's history read once into memory, and a source that replays it.

Every trial of a search runs on the same bars, so the configured source is
read once (on the machine that drives the search); trials replay the same
chunks through :class:`MemorySource`, whole or cut to a time window (a
walk-forward fold), and nothing is read again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine_core import BarChunk, DataError, DataSource
from engine_core.config import LoadedConfig


@dataclass(frozen=True, eq=False)
class History:
    """The chunks the configured source gave, in its order, and its stats."""

    chunks: tuple[BarChunk, ...]
    stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, loaded: LoadedConfig) -> History:
        """Read the whole history of ``loaded``'s source (its own window applies)."""
        cfg = loaded.config
        source: DataSource = loaded.source_cls(
            loaded.source_config, symbols=cfg.engine.symbols, base_dir=loaded.base_dir
        )
        try:
            chunks = tuple(c for c in source.history() if len(c))
            stats = source.stats()
        except NotImplementedError:
            raise DataError(f"source {cfg.source.type!r} has no history to optimise on") from None
        finally:
            source.close()
        if not chunks:
            raise DataError(f"source {cfg.source.type!r}: no bars to optimise on")
        return cls(chunks, stats)

    def span(self) -> tuple[int, int]:
        """Times (ns) of the first and of the last bar."""
        return min(int(c.ts[0]) for c in self.chunks), max(int(c.ts[-1]) for c in self.chunks)

    def bars(self, start: int | None = None, end: int | None = None) -> dict[str, int]:
        """Bars per symbol in ``[start, end)``."""
        out: dict[str, int] = {}
        for chunk in self.window(start, end):
            out[chunk.symbol] = out.get(chunk.symbol, 0) + len(chunk)
        return out

    def window(self, start: int | None = None, end: int | None = None) -> Iterator[BarChunk]:
        """The chunks cut to ``[start, end)`` (ns; None: unbounded), in the source's order."""
        for chunk in self.chunks:
            lo = 0 if start is None else int(np.searchsorted(chunk.ts, start, "left"))
            hi = len(chunk) if end is None else int(np.searchsorted(chunk.ts, end, "left"))
            if lo >= hi:
                continue
            yield chunk if (lo, hi) == (0, len(chunk)) else chunk.slice(lo, hi)


@dataclass(frozen=True, eq=False)
class MemoryWindow:
    """The config of a :class:`MemorySource`: which history, which window."""

    history: History
    start: int | None = None
    end: int | None = None


class MemorySource(DataSource):
    """Replays a :class:`History` (cut to a window) as a backtest's source."""

    config: MemoryWindow

    def __init__(self, config: MemoryWindow, *, symbols: Sequence[str], base_dir: Path) -> None:
        super().__init__(config, symbols=symbols, base_dir=base_dir)
        self._wanted = set(symbols)

    def history(self) -> Iterator[BarChunk]:
        for chunk in self.config.history.window(self.config.start, self.config.end):
            if chunk.symbol in self._wanted:
                yield chunk

    def stats(self) -> dict[str, Any]:
        return self.config.history.stats


__all__ = ["History", "MemorySource", "MemoryWindow"]
