"""The ``mqtt`` source: live bars from MQTT topics, so any producer can feed
the engine.

Bars arrive as JSON on ``topic`` (and trades on ``trades_topic``, made into
bars of ``bar_seconds``); the README has the schema. A message that is not a
valid bar is counted and logged, never a crash; a bar of a symbol this engine
does not run (another shard's) is counted and skipped; a bar not after the
symbol's last one is counted as stale and skipped. The connection is retried
with backoff when the broker goes away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiomqtt

from engine_core import NS_PER_SECOND, Bar, DataSource, Trade
from engine_plugin_mqtt import connection, wire
from engine_plugin_mqtt.config import MqttSourceConfig

log = logging.getLogger(__name__)

LOGGED = 20  # malformed messages logged one by one; after that every 1000th


class MqttSource(DataSource):
    Config = MqttSourceConfig

    def __init__(self, config: MqttSourceConfig, *, symbols: Sequence[str], base_dir: Path) -> None:
        super().__init__(config, symbols=symbols, base_dir=base_dir)
        self.cfg = config
        self._wanted = set(self.symbols)
        self._last: dict[str, int] = {}
        self._building: dict[str, list[Any]] = {}  # symbol -> [bucket ts, o, h, l, c, volume]
        self.counts = {"messages": 0, "bars": 0, "trades": 0, "malformed": 0, "stale": 0, "other_symbols": 0}
        self.connects = 0
        self.subscribed = False  # subscribed on the current connection

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "connects": self.connects}

    async def live(self) -> AsyncIterator[Bar]:  # type: ignore[override]
        tls = connection.tls_context(self.cfg, self.base_dir, "source")
        delays = connection.backoff()
        while True:
            try:
                client = connection.client(self.cfg, identifier=None, tls=tls)
                async with client:
                    self.connects += 1
                    delays = connection.backoff()
                    log.info("mqtt source: connected to %s", connection.describe(self.cfg))
                    await client.subscribe(self.cfg.topic, qos=self.cfg.qos)
                    if self.cfg.trades_topic:
                        await client.subscribe(self.cfg.trades_topic, qos=self.cfg.qos)
                    self.subscribed = True
                    async for message in client.messages:
                        bar = self.accept(message.topic, message.payload)
                        if bar is not None:
                            yield bar
            except aiomqtt.MqttError as err:
                self.subscribed = False
                if connection.refused(err):
                    raise
                log.warning("mqtt source: %s: %s; reconnecting", connection.describe(self.cfg), err)
            await asyncio.sleep(next(delays))

    def accept(self, topic: aiomqtt.Topic, payload: Any) -> Bar | None:
        """One message: the bar to route, or None (counted)."""
        self.counts["messages"] += 1
        data = payload if isinstance(payload, bytes) else str(payload or "").encode()
        is_trade = self.cfg.trades_topic is not None and topic.matches(self.cfg.trades_topic)
        try:
            item: Bar | Trade = wire.parse_trade(data) if is_trade else wire.parse_bar(data)
        except wire.Malformed as err:
            self.counts["malformed"] += 1
            n = self.counts["malformed"]
            if n <= LOGGED or n % 1000 == 0:
                log.warning("mqtt source: malformed message #%d on %s: %s", n, topic.value, err)
            return None
        if item.symbol not in self._wanted:
            self.counts["other_symbols"] += 1
            return None
        if isinstance(item, Trade):
            self.counts["trades"] += 1
            return self._trade(item)
        return self._bar(item)

    def _bar(self, bar: Bar) -> Bar | None:
        last = self._last.get(bar.symbol)
        if last is not None and bar.ts <= last:
            self.counts["stale"] += 1
            return None
        self._last[bar.symbol] = bar.ts
        self.counts["bars"] += 1
        return bar

    def _trade(self, trade: Trade) -> Bar | None:
        """Add a trade to its symbol's bar; the finished bar when this trade
        opens the next one."""
        step = self.cfg.bar_seconds * NS_PER_SECOND
        bucket = trade.ts - trade.ts % step
        current = self._building.get(trade.symbol)
        done: Bar | None = None
        if current is not None and bucket < current[0]:
            self.counts["stale"] += 1
            return None
        if current is not None and bucket > current[0]:
            done = self._bar(Bar(trade.symbol, *current))
            current = None
        if current is None:
            self._building[trade.symbol] = [bucket, trade.price, trade.price, trade.price, trade.price, trade.qty]
        else:
            current[2] = max(current[2], trade.price)
            current[3] = min(current[3], trade.price)
            current[4] = trade.price
            current[5] += trade.qty
        return done
