"""``engine download alpaca``: history from ``GET /v2/stocks/bars`` into CSV files
the ``csv`` source reads as they are (``<out>/<SYMBOL>-<timeframe>.csv``).

Paging follows ``next_page_token`` within one request range and moves the
range on after the last bar written, through the shared
:func:`engine_core.live.download_bars`, which resumes an interrupted file
without writing a row twice and shows a progress bar.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from datetime import date, datetime, timezone
from pathlib import Path

import click

from engine_core import ConfigError, DataError
from engine_core.live import DownloadResult, Row, download_bars
from engine_plugin_alpaca import wire
from engine_plugin_alpaca.config import DATA_URL, normalize_timeframe, timeframe_ns


def _when(text: str, what: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise ConfigError(f"--{what}: expected an ISO date or datetime (UTC), got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


async def download(
    symbols: Sequence[str],
    timeframe: str,
    start: int,
    end: int,
    out_dir: Path,
    *,
    key_id: str,
    secret_key: str,
    feed: str = "iex",
    adjustment: str = "raw",
    data_url: str = DATA_URL,
    page_limit: int = wire.MAX_LIMIT,
    progress: bool = True,
) -> list[DownloadResult]:
    # (aiohttp loads here, not with the command: ``engine --help`` lists the command without it)
    from engine_plugin_alpaca.rest import AlpacaHttpError, AlpacaRest, AlpacaUnreachable

    rest = AlpacaRest(data_url, key_id, secret_key)
    bar_ns = timeframe_ns(timeframe)
    results = []
    try:
        for symbol in symbols:
            # the request the previous page continues: (the cursor right after its last bar,
            # its next_page_token, the request's start), or None when it has no next page
            state: dict[str, tuple[int, str, int] | None] = {"resume": None}

            async def page(
                cursor: int,
                until: int,
                symbol: str = symbol,
                state: dict[str, tuple[int, str, int] | None] = state,
            ) -> list[Row]:
                # a cursor right after the previous page's last bar continues that request's pages
                resume = state["resume"]
                token: str | None
                if resume is not None and cursor == resume[0]:
                    _, token, first = resume
                else:
                    token, first = None, cursor
                q = wire.bars_query(
                    [symbol],
                    timeframe,
                    first,
                    until - 1,
                    feed,
                    adjustment=adjustment,
                    limit=page_limit,
                    page_token=token,
                )
                try:
                    body = await rest.get(wire.BARS_PATH, q)
                    bars, next_token = wire.bars_page(body)
                except (AlpacaHttpError, AlpacaUnreachable, wire.WireError) as err:
                    raise DataError(f"alpaca download {symbol}: {err}") from err
                rows = bars.get(symbol, [])
                if bar_ns:  # the minute (hour) still in progress is not in the file yet
                    rows = [b for b in rows if rest.clock.closed(b.ts + bar_ns)]
                state["resume"] = (rows[-1].ts + 1, next_token, first) if rows and next_token else None
                return [
                    (b.ts, b.open, b.high, b.low, b.close, int(b.volume) if b.volume.is_integer() else b.volume)
                    for b in rows
                ]

            path = out_dir / f"{symbol}-{timeframe}.csv"
            results.append(
                await download_bars(page, path, start, end, interval_ns=bar_ns, label=symbol, progress=progress)
            )
    finally:
        await rest.close()
    return results


# The options of `engine download binance` too, worded for each venue (symbols, times).
@click.command("alpaca")
@click.option("--symbol", "symbols", required=True, multiple=True, help="Symbol, e.g. AAPL (repeatable).")
@click.option("--timeframe", default="1Min", show_default=True, help="<N>Min, <N>Hour, 1Day, 1Week, <N>Month.")
@click.option("--start", required=True, help="First bar: ISO date or datetime, UTC.")
@click.option("--end", default=None, help="Bars before this time (default: now).")
@click.option("-o", "--output", "out_dir", default="data", show_default=True, type=click.Path(path_type=Path))
@click.option("--feed", default="iex", show_default=True, type=click.Choice(["iex", "sip", "delayed_sip"]))
@click.option("--adjustment", default="raw", show_default=True, type=click.Choice(["raw", "split", "dividend", "all"]))
@click.option("--data-url", default=DATA_URL, show_default=True, help="Market data REST base (e.g. a local server).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def download_command(
    symbols: tuple[str, ...],
    timeframe: str,
    start: str,
    end: str | None,
    out_dir: Path,
    feed: str,
    adjustment: str,
    data_url: str,
    no_progress: bool,
) -> None:
    """Download Alpaca stock bars into CSV files the csv source reads.

    Keys come from APCA_API_KEY_ID and APCA_API_SECRET_KEY."""
    key_id, secret = os.environ.get("APCA_API_KEY_ID"), os.environ.get("APCA_API_SECRET_KEY")
    if not key_id or not secret:
        raise ConfigError("engine download alpaca: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (Alpaca's keys)")
    try:
        tf = normalize_timeframe(timeframe)
    except ValueError as err:
        raise ConfigError(f"--timeframe: {err}") from None
    t0 = _when(start, "start")
    t1 = _when(end, "end") if end else int(datetime.now(timezone.utc).timestamp()) * 1_000_000_000
    if t0 >= t1:
        raise ConfigError("--start must be before --end")
    results = asyncio.run(
        download(
            symbols,
            tf,
            t0,
            t1,
            out_dir,
            key_id=key_id,
            secret_key=secret,
            feed=feed,
            adjustment=adjustment,
            data_url=data_url,
            progress=not no_progress,
        )
    )
    for symbol, result in zip(symbols, results):
        click.echo(result.line(symbol))
