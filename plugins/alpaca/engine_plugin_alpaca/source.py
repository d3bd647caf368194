"""The ``alpaca`` data source: live minute bars from the market data stream v2,
warm-up and gaps from REST, sessions from the trading API's clock and calendar.

Live, one websocket (``<stream_url>/v2/<feed>``) carries every symbol's bars.
On any drop (network error, close, a ``slow client`` or ``internal error``
message, a stream silent for ``stale_after`` seconds while the market is
open) the source reconnects with backoff and jitter, subscribes again and
backfills each symbol from its last bar through ``GET /v2/stocks/bars``
(paged with ``next_page_token``), while the stream's new bars wait: the
shared :class:`~engine_core.live.BarSequencer` delivers every bar once, in
time order. A bar from REST counts as closed by Alpaca's clock (``/v2/clock``,
each answer's ``Date`` header: :class:`~engine_core.live.VenueClock`), never
the local one: the minute still in progress is left to the stream. Alpaca
sends a minute bar only for minutes with trades, so a quiet minute is no
gap; the night between two sessions is none either.

Authentication failure (402), the connection limit (406), the symbol limit
(405) and a feed outside the data plan (409) are one-line errors that stop
the run: retrying cannot help.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from engine_core import Bar, BarChunk, ConnectionState, DataError, DataSource, error_text, iso_utc
from engine_core.live import Backoff, BarSequencer, VenueClock, WireProblems, cancel_all
from engine_plugin_alpaca import wire
from engine_plugin_alpaca.config import AlpacaSourceConfig, timeframe_ns
from engine_plugin_alpaca.market import Sessions
from engine_plugin_alpaca.rest import AlpacaHttpError, AlpacaRest, AlpacaUnreachable

log = logging.getLogger("engine_plugin_alpaca.source")

HANDSHAKE_TIMEOUT = 10.0
CALENDAR_DAYS = 14  # days read on each side of the day asked for


class _Retry(Exception):
    """The stream failed in a way a reconnect can mend."""


class AlpacaSource(DataSource):
    Config = AlpacaSourceConfig

    def __init__(self, config: AlpacaSourceConfig, *, symbols: Sequence[str], base_dir: Path) -> None:
        super().__init__(config, symbols=symbols, base_dir=base_dir)
        self.bar_ns = timeframe_ns(config.timeframe)
        self.problems = WireProblems("alpaca stream", log)
        self.sequencer = BarSequencer(self.bar_ns, contiguous=False, problems=self.problems)
        self.sessions: Sessions | None = None  # replaced whole, read from worker threads
        self.counts: Counter[str] = Counter()
        self.url = f"{config.stream_url}{wire.stream_path(config.feed)}"
        self._data: AlpacaRest | None = None
        self._trading: AlpacaRest | None = None
        self.clock = VenueClock()  # Alpaca's time, from its answers
        self._market_open: bool | None = None
        self._market_detail = ""
        self._stream_state = ConnectionState.CONNECTING
        self._stream_detail = ""
        self._reported: tuple[ConnectionState, str] | None = None
        self._symbols = set(self.symbols)
        self.last_trade: dict[str, wire.Trade] = {}
        self._days: dict[date, wire.SessionDay] = {}

    # ------------------------------------------------------------ REST

    def _keys(self) -> tuple[str, str]:
        return self.config.key_id.get_secret_value(), self.config.secret_key.get_secret_value()

    def _data_rest(self) -> AlpacaRest:
        if self._data is None:
            self._data = AlpacaRest(self.config.data_url, *self._keys(), clock=self.clock)
        return self._data

    def _trading_rest(self) -> AlpacaRest:
        if self._trading is None:
            self._trading = AlpacaRest(self.config.trading_url, *self._keys(), clock=self.clock)
        return self._trading

    async def aclose(self) -> None:
        for rest in (self._data, self._trading):
            if rest is not None:
                await rest.close()
        self._data = self._trading = None

    def now(self) -> int:
        """The venue's time now (ns), as its answers last said."""
        return self.clock.now()

    async def _get(self, rest: AlpacaRest, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            return await rest.get(path, params)
        except AlpacaHttpError as err:
            if err.error.status in (401, 403):
                raise DataError(
                    f"alpaca source: {rest.base_url}{path}: {err.error}: check key_id and secret_key "
                    "(paper and live keys differ; trading_url must match them)"
                ) from err
            raise

    # ------------------------------------------------- clock and calendar

    async def read_clock(self) -> wire.Clock:
        clk = wire.clock(await self._get(self._trading_rest(), "/v2/clock"))
        self.clock.observe(clk.timestamp)
        await self.calendar_for(clk.timestamp)
        return clk

    async def calendar_for(self, ts: int) -> Sessions:
        """The sessions around ``ts`` (the calendar is read again when it does not reach it)."""
        sessions = self.sessions
        if sessions is not None and sessions.covers(ts):
            return sessions
        day = datetime.fromtimestamp(ts / 1e9, tz=timezone.utc).date()
        params = {
            "start": (day - timedelta(days=CALENDAR_DAYS)).isoformat(),
            "end": (day + timedelta(days=CALENDAR_DAYS)).isoformat(),
        }
        days = wire.calendar(await self._get(self._trading_rest(), "/v2/calendar", params))
        if sessions is not None:  # keep what is known beyond the new range
            known = {d.day: d for d in days}
            days = sorted({**{d: s for d, s in self._days.items() if d not in known}, **known}.values())
        self._days = {d.day: d for d in days}
        self.sessions = Sessions(days, extended=self.config.sessions == "extended")
        return self.sessions

    def entries_allowed(self, symbol: str, ts: int) -> bool:
        """An entry on the bar starting at ``ts`` is allowed when the configured
        session is still open as that bar closes."""
        sessions = self.sessions
        return sessions is not None and sessions.entries_allowed(ts, self.bar_ns)

    def _market_state(self, clk: wire.Clock, sessions: Sessions) -> tuple[bool, str]:
        if self.config.sessions == "regular":
            is_open, opens, closes = clk.is_open, clk.next_open, clk.next_close
        else:
            w = sessions.window(clk.timestamp)
            is_open = w is not None
            opens = sessions.next_open(clk.timestamp) or clk.next_open
            closes = w[1] if w is not None else clk.next_close
        if is_open:
            return True, f"market open until {iso_utc(closes)}"
        return False, f"market closed; opens {iso_utc(opens)}"

    def _report(self) -> None:
        if self._stream_state is ConnectionState.CONNECTED and self._market_open is False:
            now: tuple[ConnectionState, str] = (ConnectionState.CLOSED, self._market_detail)
        elif self._stream_state is ConnectionState.CONNECTED:
            now = (ConnectionState.CONNECTED, self._market_detail or self._stream_detail)
        else:
            now = (self._stream_state, self._stream_detail)
        if now != self._reported:
            self._reported = now
            log.info("alpaca source: %s %s", now[0].value, now[1])
            self.connection(*now)

    def _stream(self, state: ConnectionState, detail: str = "") -> None:
        self._stream_state, self._stream_detail = state, detail
        self._report()

    async def _clock_loop(self) -> None:
        backoff = Backoff(1.0, 60.0)
        while True:
            try:
                clk = await self.read_clock()
            except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
                log.warning("alpaca source: market clock: %s", err)
                await backoff.wait()
                continue
            backoff.reset()
            assert self.sessions is not None
            self._market_open, self._market_detail = self._market_state(clk, self.sessions)
            self._report()
            change = clk.next_close if self._market_open else clk.next_open
            if self.config.sessions == "extended":
                w = self.sessions.window(clk.timestamp)
                change = w[1] if w is not None else self.sessions.next_open(clk.timestamp) or change
            until = (change - clk.timestamp) / 1e9 + 0.5
            await asyncio.sleep(max(0.05, min(self.config.clock_poll, until)))

    # ----------------------------------------------------------- REST bars

    async def fetch_bars(
        self, symbol: str, start: int, end: int | None = None, *, limit: int | None = None, desc: bool = False
    ) -> list[Bar]:
        """``symbol``'s bars from ``start`` to ``end`` (inclusive), following
        ``next_page_token``; newest first with ``desc``, at most ``limit``."""
        out: list[Bar] = []
        token: str | None = None
        while True:
            page_limit = wire.MAX_LIMIT if limit is None else min(wire.MAX_LIMIT, limit - len(out))
            q = wire.bars_query(
                [symbol],
                self.config.timeframe,
                start,
                end,
                self.config.feed,
                adjustment=self.config.adjustment,
                limit=page_limit,
                page_token=token,
                sort="desc" if desc else "asc",
            )
            page, token = wire.bars_page(await self._get(self._data_rest(), wire.BARS_PATH, q))
            for sym, bars in page.items():
                if sym != symbol:
                    self.problems.drop("bar of another symbol", f"asked {symbol}, got {sym}")
                    continue
                out.extend(bars)
            self.counts["rest_pages"] += 1
            if token is None or (limit is not None and len(out) >= limit):
                return out

    def _in_session(self, sessions: Sessions, bar: Bar) -> bool:
        return sessions.bar_in_session(bar.ts)

    async def warmup(self, symbol: str, bars: int) -> BarChunk | None:
        """The last ``warmup`` (else ``bars``) closed bars of ``symbol`` in the
        configured sessions, oldest first."""
        want = self.config.warmup if self.config.warmup is not None else bars
        if want <= 0:
            return None
        try:
            if self._market_open is None:
                await self.read_clock()
            now = self.now()
            days = max(7, want // 300 * 2 + 7)  # a regular session holds 390 minute bars
            start = now - days * 86_400 * 10**9
            fetched = await self.fetch_bars(symbol, start, now, limit=want * 3, desc=True)
        except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
            raise DataError(f"alpaca source: warm-up of {symbol}: {err}") from err
        kept: list[Bar] = []
        for bar in fetched:  # newest first
            if not self.clock.closed(bar.ts + self.bar_ns):
                continue  # the minute still running
            sessions = await self.calendar_for(bar.ts)
            if self._in_session(sessions, bar):
                kept.append(bar)
                if len(kept) == want:
                    break
        kept.reverse()
        if not kept:
            return None
        self.sequencer.mark(symbol, kept[-1].ts)
        self.counts["warmup_bars"] += len(kept)
        return BarChunk.from_bars(kept)

    # ----------------------------------------------------------- live

    async def live(self) -> AsyncIterator[Bar]:  # type: ignore[override]
        queue: asyncio.Queue[Bar | BaseException] = asyncio.Queue()

        async def guard(coro: Any) -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed to the consumer, raised there
                queue.put_nowait(exc)

        tasks = [
            asyncio.ensure_future(guard(self._clock_loop())),
            asyncio.ensure_future(guard(self._run_stream(queue))),
        ]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            await cancel_all(tasks)

    async def _run_stream(self, queue: asyncio.Queue[Bar | BaseException]) -> None:
        backoff = Backoff(0.5, 30.0)
        first = True
        while True:
            for symbol in self.symbols:
                if self.sequencer.last(symbol) is not None:
                    self.sequencer.hold(symbol)  # anything after its last bar may be missing
            self._stream(ConnectionState.CONNECTING if first else ConnectionState.RECONNECTING, self.url)
            backfill: asyncio.Task[None] | None = None
            try:
                async with connect(
                    self.url,
                    open_timeout=HANDSHAKE_TIMEOUT,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=2,
                    max_size=2**24,
                    compression="deflate",
                ) as ws:
                    await self._handshake(ws)
                    backoff.reset()
                    backfill = asyncio.ensure_future(self._backfill(queue))
                    await self._read(ws, queue)
            except DataError:
                raise
            except (
                _Retry,
                ConnectionClosed,
                InvalidHandshake,
                OSError,
                asyncio.TimeoutError,
            ) as err:
                log.warning("alpaca source: stream %s: %s", self.url, error_text(err))
            finally:
                if backfill is not None:
                    await cancel_all([backfill])
            first = False
            self.counts["reconnects"] += 1
            self._stream(ConnectionState.RECONNECTING, f"{self.url} (attempt {backoff.attempts + 1})")
            await backoff.wait()

    async def _recv(self, ws: ClientConnection, timeout: float) -> list[dict[str, Any]]:
        raw = await asyncio.wait_for(ws.recv(), timeout)
        return wire.stream_messages(raw)

    def _fail(self, err: wire.StreamError) -> Exception:
        if err.fatal:
            return DataError(f"alpaca source: stream {self.url}: {err.describe()}")
        return _Retry(err.describe())

    async def _handshake(self, ws: ClientConnection) -> None:
        """``connected``, then ``auth`` -> ``authenticated``, then ``subscribe`` -> ``subscription``."""
        key, secret = self._keys()
        steps = (
            ("connected", None),
            ("authenticated", wire.auth_message(key, secret)),
            ("subscription", wire.subscribe_message(sorted(self._symbols))),
        )
        for expect, send in steps:
            if send is not None:
                await ws.send(send)
            while True:
                try:
                    msgs = await self._recv(ws, HANDSHAKE_TIMEOUT)
                except wire.WireError as err:
                    raise _Retry(f"handshake: {err}") from err
                msg = msgs[0]
                kind = msg["T"]
                if kind == "error":
                    raise self._fail(wire.stream_error(msg))
                if kind == "success" and msg.get("msg") == expect or kind == expect == "subscription":
                    break
                # anything else before the answer (data of an earlier subscription) is ignored
            if expect == "subscription":
                missing = self._symbols - set(msg.get("bars") or [])
                if missing and "*" not in (msg.get("bars") or []):
                    raise DataError(
                        f"alpaca source: the stream did not subscribe {', '.join(sorted(missing))} (unknown symbols?)"
                    )

    async def _read(self, ws: ClientConnection, queue: asyncio.Queue[Bar | BaseException]) -> None:
        if not any(self.sequencer.held(s) for s in self.symbols):
            self._stream(ConnectionState.CONNECTED, self.url)
        while True:
            is_open = self._market_open is True  # unknown until the clock is read: no stale check yet
            try:
                msgs = await self._recv(ws, self.config.stale_after if is_open else self.config.clock_poll)
            except asyncio.TimeoutError:
                if not is_open or self._market_open is not True:
                    continue
                self.counts["stale"] += 1
                self._stream(
                    ConnectionState.STALE, f"no message for {self.config.stale_after:g}s while the market is open"
                )
                return
            except wire.WireError as err:
                self.problems.drop(err.kind, str(err))
                continue
            for msg in msgs:
                kind = msg["T"]
                if kind == "b":
                    await self._on_bar(msg, queue)
                elif kind == "t":
                    try:
                        trade = wire.trade_from_stream(msg)
                    except wire.WireError as err:
                        self.problems.drop(err.kind, str(err))
                        continue
                    self.last_trade[trade.symbol] = trade
                    self.counts["trades"] += 1
                elif kind == "error":
                    try:
                        raise self._fail(wire.stream_error(msg))
                    except wire.WireError as err:
                        self.problems.drop(err.kind, str(err))
                elif kind in ("u", "d", "q", "s", "success", "subscription"):
                    self.counts[f"ignored_{kind}"] += 1  # corrected/daily bars, quotes, statuses
                else:
                    self.problems.drop("unknown message type", repr(msg)[:120])

    async def _on_bar(self, msg: dict[str, Any], queue: asyncio.Queue[Bar | BaseException]) -> None:
        try:
            bar = wire.bar_from_stream(msg)
        except wire.WireError as err:
            self.problems.drop(err.kind, str(err))
            return
        if bar.symbol not in self._symbols:
            self.problems.drop("bar of an unsubscribed symbol", bar.symbol)
            return
        sessions = await self.calendar_for(bar.ts)
        if not self._in_session(sessions, bar):
            self.counts["outside_session"] += 1
            return
        self.counts["stream_bars"] += 1
        for out in self.sequencer.push(bar):
            queue.put_nowait(out)

    async def _backfill(self, queue: asyncio.Queue[Bar | BaseException]) -> None:
        """Fetch every held symbol's missing bars and release them with the
        stream's waiting ones."""
        gaps = self.sequencer.gaps()
        if not gaps:
            return
        self._stream(ConnectionState.BACKFILLING, ", ".join(g.symbol for g in gaps))
        backoff = Backoff(0.5, 30.0)
        for gap in gaps:
            while True:
                try:
                    start = gap.start if gap.start is not None else self.now() - self.bar_ns
                    fetched = await self.fetch_bars(gap.symbol, start, gap.end - 1 if gap.end is not None else None)
                    break
                except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
                    log.warning("alpaca source: backfill of %s: %s", gap.symbol, err)
                    await backoff.wait()
            kept = []
            for bar in fetched:
                if not self.clock.closed(bar.ts + self.bar_ns):
                    continue  # still running: the stream sends it when it closes
                if self._in_session(await self.calendar_for(bar.ts), bar):
                    kept.append(bar)
            released = self.sequencer.backfill(gap.symbol, kept)
            self.counts["backfilled_bars"] += len({b.ts for b in kept} & {b.ts for b in released})
            for bar in released:
                queue.put_nowait(bar)
        self._stream(ConnectionState.CONNECTED, self.url)

    def stats(self) -> dict[str, Any]:
        return {"alpaca": {**dict(self.counts), **self.problems.stats()}}
