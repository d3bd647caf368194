"""The simulated source: seeded geometric Brownian motion bars.

Deterministic for a given seed: each symbol gets its own generator seeded
from (seed, symbol), so adding a symbol does not change the others' bars.
``bars`` bars per symbol for a backtest, or endless (``bars = 0``) at
``pace`` seconds per bar for a live-like run.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
from pydantic import Field

from engine_core.hookspecs import hookimpl
from engine_core.model import NS_PER_SECOND, SECONDS_PER_YEAR, Bar, BarChunk, epoch_ns
from engine_core.sources import DataSource, PluginConfig

_ROWS = 256  # bars per symbol turned into Python numbers at a time (live)


def _columns(chunk: BarChunk) -> tuple[np.ndarray, ...]:
    return chunk.ts, chunk.open, chunk.high, chunk.low, chunk.close, chunk.volume


class SimulatedConfig(PluginConfig):
    seed: int = 1
    bars: int = Field(default=10_000, ge=0)  # per symbol; 0 = endless (live)
    interval: int = Field(default=60, ge=1)  # seconds per bar
    start: datetime = datetime(2024, 1, 1, tzinfo=timezone.utc)
    price: float = Field(default=100.0, gt=0)
    drift: float = 0.0  # per year
    volatility: float = Field(default=0.6, ge=0)  # per year
    pace: float = Field(default=0.0, ge=0)  # live: seconds between bars (0 = as fast as possible)
    chunk: int = Field(default=65536, ge=1)


class GbmPath:
    """One symbol's bars, chunk after chunk, as the simulated source generates
    them: the same (seed, symbol) give the same bars whatever the chunk sizes.

    Prices and volumes draw from their own streams, seeded from (seed,
    symbol), and the log price is summed in one sequence."""

    def __init__(self, config: SimulatedConfig, symbol: str) -> None:
        self.config = config
        self.symbol = symbol
        digest = hashlib.sha256(f"{config.seed}:{symbol}".encode()).digest()
        self.rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        self.volume_rng = np.random.default_rng(int.from_bytes(digest[8:16], "little"))
        self.log_price = float(np.log(config.price))
        start = config.start if config.start.tzinfo is not None else config.start.replace(tzinfo=timezone.utc)
        self.start_ns = epoch_ns(start)
        self.done = 0  # bars generated so far

    def bars(self, n: int) -> BarChunk:
        """The next ``n`` bars."""
        cfg = self.config
        dt = cfg.interval / SECONDS_PER_YEAR
        sigma = cfg.volatility * np.sqrt(dt)
        mu = (cfg.drift - 0.5 * cfg.volatility**2) * dt
        # Four sub-steps per bar give the open, two extremes and the close.
        steps = self.rng.standard_normal((n, 4)) * (sigma / 2) + mu / 4
        logs = np.cumsum(np.concatenate(([self.log_price], steps.ravel())))
        path = np.exp(logs[1:]).reshape(n, 4)
        prev_close = np.exp(logs[:-1:4])
        open_ = prev_close * np.exp(steps[:, 0] * 0.1)
        close = path[:, 3]
        high = np.maximum.reduce([path[:, 1], path[:, 2], open_, close])
        low = np.minimum.reduce([path[:, 1], path[:, 2], open_, close])
        volume = np.round(self.volume_rng.gamma(2.0, 50.0, n), 3)
        ts = self.start_ns + (self.done + np.arange(n, dtype=np.int64)) * cfg.interval * NS_PER_SECOND
        prices = np.round(np.stack((open_, high, low, close)), 4)  # as a venue would quote them
        self.log_price = float(logs[-1])
        self.done += n
        return BarChunk(self.symbol, ts, prices[0], prices[1], prices[2], prices[3], volume)


def gbm_bars(symbol: str, n: int, seed: int = 1, **config: Any) -> BarChunk:
    """``n`` seeded geometric Brownian motion bars of ``symbol``: what the
    simulated source gives for this seed and the other ``[source]`` keys of
    :class:`SimulatedConfig` (interval, start, price, drift, volatility)."""
    return GbmPath(SimulatedConfig(seed=seed, **config), symbol).bars(n)


class SimulatedSource(DataSource):
    Config = SimulatedConfig

    def check(self) -> list[str]:
        """Generated bars: nothing can be missing."""
        return []

    def history(self) -> Iterator[BarChunk]:
        cfg = self.config
        paths = [GbmPath(cfg, s) for s in self.symbols]
        done = 0
        while cfg.bars == 0 or done < cfg.bars:
            n = cfg.chunk if cfg.bars == 0 else min(cfg.chunk, cfg.bars - done)
            for path in paths:
                yield path.bars(n)
            done += n

    async def live(self) -> AsyncIterator[Bar]:  # type: ignore[override]
        """The same bars as ``history`` (for the same seed), one at a time in
        time order, ``pace`` seconds apart."""
        import asyncio  # live only: registering the source imports no asyncio

        pending: list[BarChunk] = []
        for chunk in self.history():
            pending.append(chunk)
            if len(pending) < len(self.symbols):
                continue
            for start in range(0, len(pending[0]), _ROWS):
                # a block of each chunk as Python numbers at once, not six numpy scalars per bar
                block = [(c.symbol, *(col[start : start + _ROWS].tolist() for col in _columns(c))) for c in pending]
                for i in range(len(block[0][1])):
                    for symbol, ts, o, h, lo, c, v in block:
                        yield Bar(symbol, ts[i], o[i], h[i], lo[i], c[i], v[i])
                    await asyncio.sleep(self.config.pace)
            pending = []


@hookimpl
def register_data_sources(register: Any) -> None:
    register("simulated", SimulatedSource)
