"""The simulated source: seeded geometric Brownian motion bars.

Deterministic for a given seed: each symbol gets its own generator seeded
from (seed, symbol), so adding a symbol does not change the others' bars.
``bars`` bars per symbol for a backtest, or endless (``bars = 0``) at
``pace`` seconds per bar for a live-like run.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
from pydantic import Field

from engine_core.hookspecs import hookimpl
from engine_core.model import NS_PER_SECOND, SECONDS_PER_YEAR, Bar, BarChunk, epoch_ns
from engine_core.sources import DataSource, PluginConfig


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


class SimulatedSource(DataSource):
    Config = SimulatedConfig

    def _rngs(self, symbol: str) -> tuple[np.random.Generator, np.random.Generator]:
        digest = hashlib.sha256(f"{self.config.seed}:{symbol}".encode()).digest()
        return (
            np.random.default_rng(int.from_bytes(digest[:8], "little")),
            np.random.default_rng(int.from_bytes(digest[8:16], "little")),
        )

    def _start_ns(self) -> int:
        start = self.config.start
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        return epoch_ns(start)

    def _generate(
        self, rngs: tuple[np.random.Generator, np.random.Generator], n: int, log_price: float, first: int, symbol: str
    ) -> tuple[BarChunk, float]:
        """``n`` bars continuing from ``log_price``; returns them and the new log price.

        Prices and volumes draw from their own streams and the log price is
        summed in one sequence, so the bars do not depend on the chunk size."""
        rng, vol_rng = rngs
        cfg = self.config
        dt = cfg.interval / SECONDS_PER_YEAR
        sigma = cfg.volatility * np.sqrt(dt)
        mu = (cfg.drift - 0.5 * cfg.volatility**2) * dt
        # Four sub-steps per bar give the open, two extremes and the close.
        steps = rng.standard_normal((n, 4)) * (sigma / 2) + mu / 4
        logs = np.cumsum(np.concatenate(([log_price], steps.ravel())))
        path = np.exp(logs[1:]).reshape(n, 4)
        prev_close = np.exp(logs[:-1:4])
        open_ = prev_close * np.exp(steps[:, 0] * 0.1)
        close = path[:, 3]
        high = np.maximum.reduce([path[:, 1], path[:, 2], open_, close])
        low = np.minimum.reduce([path[:, 1], path[:, 2], open_, close])
        volume = np.round(vol_rng.gamma(2.0, 50.0, n), 3)
        ts = self._start_ns() + (first + np.arange(n, dtype=np.int64)) * cfg.interval * NS_PER_SECOND
        prices = np.round(np.stack((open_, high, low, close)), 4)  # as a venue would quote them
        return BarChunk(symbol, ts, prices[0], prices[1], prices[2], prices[3], volume), float(logs[-1])

    def check(self) -> list[str]:
        """Generated bars: nothing can be missing."""
        return []

    def history(self) -> Iterator[BarChunk]:
        cfg = self.config
        rngs = {s: self._rngs(s) for s in self.symbols}
        log_price = {s: float(np.log(cfg.price)) for s in self.symbols}
        done = 0
        while cfg.bars == 0 or done < cfg.bars:
            n = cfg.chunk if cfg.bars == 0 else min(cfg.chunk, cfg.bars - done)
            for symbol in self.symbols:
                chunk, log_price[symbol] = self._generate(rngs[symbol], n, log_price[symbol], done, symbol)
                yield chunk
            done += n

    async def live(self) -> AsyncIterator[Bar]:  # type: ignore[override]
        """The same bars as ``history`` (for the same seed), one at a time in
        time order, ``pace`` seconds apart."""
        pending: list[BarChunk] = []
        for chunk in self.history():
            pending.append(chunk)
            if len(pending) < len(self.symbols):
                continue
            for i in range(len(pending[0])):
                for c in pending:
                    yield c.bar(i)
                await asyncio.sleep(self.config.pace)
            pending = []


@hookimpl
def register_data_sources(register: Any) -> None:
    register("simulated", SimulatedSource)
