"""A live source the test feeds bar by bar (``[source] type = "gated"``), so
that a test decides what happens between two bars."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator
from typing import Any

from engine_core.hookspecs import hookimpl
from engine_core.model import NS_PER_SECOND, Bar
from engine_core.sources import DataSource, PluginConfig

CHANNELS: dict[str, queue.Queue[Bar | None]] = {}


def channel(name: str) -> queue.Queue[Bar | None]:
    return CHANNELS.setdefault(name, queue.Queue())


def bar(symbol: str, i: int) -> Bar:
    price = 100.0 + (i % 7)
    return Bar(symbol, (1_700_000_000 + 60 * i) * NS_PER_SECOND, price, price + 1, price - 1, price, 10.0)


class GatedConfig(PluginConfig):
    channel: str


class GatedSource(DataSource):
    Config = GatedConfig

    async def live(self) -> AsyncIterator[Bar]:  # type: ignore[override]
        q = channel(self.config.channel)
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.002)
                continue
            if item is None:
                return
            yield item


@hookimpl
def register_data_sources(register: Any) -> None:
    register("gated", GatedSource)
