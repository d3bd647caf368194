"""The ``binance`` data source: closed klines of every symbol from one
combined-stream websocket, each bar delivered once and in time order.

What it does on the wire (web-socket-streams.md):

* connects to ``<ws_url>/stream?streams=<symbol>@kline_<interval>/...`` with
  ``websockets`` (which answers the server's pings), and turns klines with
  ``"x": true`` into bars;
* on any drop (a network error, a close frame, ``serverShutdown``, the
  24-hour cut, which it takes early itself, or ``stale_after`` seconds
  without a message) it reconnects with exponential backoff and jitter, and
  backfills what it missed from ``GET /api/v3/klines`` through the shared
  :class:`~engine_core.live.BarSequencer`, so no bar is missed or doubled;
* before trading, :meth:`BinanceSource.warmup` gives the engine each
  symbol's last ``warmup`` closed bars, and the first connection backfills
  what closed since;
* bad frames (malformed JSON, unknown events, klines of other symbols,
  duplicates, bars out of order) are counted, logged once per kind and
  dropped (``stats()``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import websockets

from engine_core import Bar, BarChunk, ConnectionState, DataSource, error_text
from engine_core.live import Backoff, BarSequencer, WireProblems
from engine_plugin_binance import rest as binance_rest
from engine_plugin_binance import wire
from engine_plugin_binance.config import BinanceSourceConfig
from engine_plugin_binance.rest import BinanceRest, Unanswered

log = logging.getLogger("engine_plugin_binance")

_DROPPED = (
    websockets.ConnectionClosed,
    websockets.InvalidHandshake,
    websockets.InvalidURI,
    OSError,
    asyncio.TimeoutError,
)


class _Reconnect(Exception):
    """Leave the current connection and open a new one (stale, shutdown, age)."""


class BinanceSource(DataSource):
    """Live Binance spot klines (``[source] type = "binance"``)."""

    Config = BinanceSourceConfig
    MAX_CONNECTION_AGE = 23.5 * 3600.0
    """Seconds before the source reconnects on its own, ahead of Binance's 24-hour cut."""

    def __init__(self, config: BinanceSourceConfig, *, symbols: Sequence[str], base_dir: Path) -> None:
        super().__init__(config, symbols=[s.upper() for s in symbols], base_dir=base_dir)
        self.interval_ms = wire.INTERVAL_MS[config.interval]
        self.problems = WireProblems(f"binance {config.interval} stream", log)
        self.sequencer = BarSequencer(self.interval_ms * wire.MS, problems=self.problems)
        self.backoff = Backoff(0.5, 30.0)
        self._wanted = frozenset(self.symbols)
        self._rest: BinanceRest | None = None
        self._synced = False
        self.counts = {"bars": 0, "backfilled": 0, "reconnects": 0, "stale": 0}

    # ---------------------------------------------------------------- REST

    async def _client(self) -> BinanceRest:
        loop = asyncio.get_running_loop()
        if self._rest is None or self._rest.loop not in (None, loop):
            self._rest = BinanceRest(self.config.rest())
            self._synced = False
        if not self._synced:
            await self._rest.sync_time()
            self._synced = True
        return self._rest

    async def warmup(self, symbol: str, bars: int) -> BarChunk | None:
        """The last ``warmup`` (else ``bars``) closed bars of ``symbol``, oldest first."""
        count = self.config.warmup if self.config.warmup is not None else bars
        if count <= 0:
            return None
        rows = await binance_rest.klines_before(await self._client(), symbol, self.config.interval, count)
        if not rows:
            return None
        self.sequencer.mark(symbol, rows[-1].t * wire.MS)
        return BarChunk.from_bars([wire.row_bar(symbol, r) for r in rows])

    async def _backfill(self, url: str) -> list[Bar]:
        """Fetch every held symbol's missing bars and release them in order
        (the connection is ``backfilling`` meanwhile, then ``connected``)."""
        gaps = self.sequencer.gaps()
        if not gaps:
            return []
        self.connection(ConnectionState.BACKFILLING, ", ".join(g.symbol for g in gaps))
        client = await self._client()
        out: list[Bar] = []
        for gap in gaps:
            fetched: list[Bar] = []
            if gap.start is not None:
                end = None if gap.end is None else gap.end // wire.MS
                rows = await binance_rest.klines_after(
                    client, gap.symbol, self.config.interval, gap.start // wire.MS, end
                )
                fetched = [wire.row_bar(gap.symbol, r) for r in rows]
            fetched_ts = {b.ts for b in fetched}
            released = self.sequencer.backfill(gap.symbol, fetched)
            self.counts["bars"] += len(released)
            self.counts["backfilled"] += sum(1 for b in released if b.ts in fetched_ts)
            out += released
        self.connection(ConnectionState.CONNECTED, url)
        return out

    # ---------------------------------------------------------------- stream

    def stream_url(self) -> str:
        names = "/".join(f"{s.lower()}@kline_{self.config.interval}" for s in self.symbols)
        return f"{self.config.stream()}/stream?streams={names}"

    async def live(self) -> AsyncIterator[Bar]:
        try:
            url = self.stream_url()
            loop = asyncio.get_running_loop()
            first = True
            for symbol in self.symbols:  # bars may have closed since the warm-up: fetched once connected
                if self.sequencer.last(symbol) is not None:
                    self.sequencer.hold(symbol)
            while True:
                self.connection(ConnectionState.CONNECTING if first else ConnectionState.RECONNECTING, url)
                try:
                    async with websockets.connect(
                        url, ping_interval=None, open_timeout=10, close_timeout=1, max_size=2**22, compression=None
                    ) as ws:
                        opened = loop.time()
                        self.connection(ConnectionState.CONNECTED, url)
                        self.backoff.reset()
                        for bar in await self._backfill(url):
                            yield bar
                        first = False
                        while True:
                            try:
                                frame = await asyncio.wait_for(ws.recv(), self.config.stale_after)
                            except asyncio.TimeoutError:
                                self.counts["stale"] += 1
                                self.connection(ConnectionState.STALE, f"no message for {self.config.stale_after:g}s")
                                raise _Reconnect("stale stream") from None
                            for bar in self._on_frame(frame):
                                yield bar
                            if self.sequencer.gaps():
                                for bar in await self._backfill(url):
                                    yield bar
                            if loop.time() - opened > self.MAX_CONNECTION_AGE:
                                raise _Reconnect("connection age (Binance cuts at 24 hours)")
                except _Reconnect as why:
                    log.info("binance: reconnecting: %s", why)
                except (*_DROPPED, Unanswered) as err:
                    log.warning("binance: stream dropped: %s", error_text(err))
                    await asyncio.sleep(self.backoff.next())
                self.counts["reconnects"] += 1
                for symbol in self.symbols:
                    self.sequencer.hold(symbol)
        finally:
            self.connection(ConnectionState.CLOSED, "stopped")

    def _on_frame(self, frame: str | bytes) -> tuple[Bar, ...]:
        try:
            msg = wire.decode_stream(frame)
        except wire.ValidationError as err:
            self.problems.drop("unknown message", f"{err}: {str(frame)[:120]}")
            return ()
        except wire.DecodeError as err:
            self.problems.drop("malformed JSON", f"{err}: {str(frame)[:120]}")
            return ()
        data = msg.data
        if type(data) is not wire.KlineEvent:
            raise _Reconnect("server shutdown announced")
        k = data.k
        if not k.x:
            return ()
        if k.s not in self._wanted:
            self.problems.drop("kline of an unsubscribed symbol", k.s)
            return ()
        out = self.sequencer.push(wire.kline_bar(k))
        self.counts["bars"] += len(out)
        return out

    def stats(self) -> dict[str, Any]:
        return {"binance": {**self.counts, **self.problems.stats()}}

    async def aclose(self) -> None:
        if self._rest is not None:
            await self._rest.close()
            self._rest = None
