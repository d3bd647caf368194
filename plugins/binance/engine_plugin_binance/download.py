"""``engine download binance``: Binance spot klines into CSV files that the
``csv`` source reads as they are (one file per symbol, ``<SYMBOL>-<interval>.csv``).

Pages through ``GET /api/v3/klines`` (1000 a request, within the weight
budget), resumes an interrupted download after the last row it holds, and
shows a progress bar; the shared paging and file handling are
:func:`engine_core.live.download_bars`.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import click

from engine_core import ConfigError
from engine_core.live import Row, download_bars
from engine_plugin_binance import wire
from engine_plugin_binance.config import REST, TESTNET_REST


def _moment(value: str, option: str) -> int:
    """An ISO date or datetime (UTC unless it says otherwise) as ns."""
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=timezone.utc)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
    except ValueError as err:
        raise ConfigError(f"{option} {value!r}: not an ISO date or datetime (2024-01-01 or 2024-01-01T12:00)") from err
    return int(moment.timestamp()) * 1_000_000_000


async def download(
    symbols: list[str],
    interval: str,
    start: int,
    end: int,
    out_dir: Path,
    *,
    rest_url: str,
    progress: bool = True,
) -> list[Any]:
    """Download each symbol's klines from ``start`` to ``end`` (ns) into ``out_dir``."""
    # (aiohttp loads here, not with the command: ``engine --help`` lists the command without it)
    from engine_plugin_binance.rest import KLINES_LIMIT, KLINES_WEIGHT, BinanceRest

    rest = BinanceRest(rest_url)
    results = []
    try:
        await rest.sync_time()
        for symbol in symbols:

            async def page(cursor: int, stop: int, symbol: str = symbol) -> list[Row]:
                params = {
                    "symbol": symbol,
                    "interval": interval,
                    "startTime": cursor // wire.MS + (1 if cursor % wire.MS else 0),
                    "endTime": (stop - 1) // wire.MS,
                    "limit": KLINES_LIMIT,
                }
                body = await rest.request("GET", "/api/v3/klines", params, weight=KLINES_WEIGHT, raw=True)
                rows = wire.decode_kline_texts(body)
                return [(r.t * wire.MS, r.o, r.h, r.l, r.c, r.v) for r in rows if rest.closed(r)]

            path = out_dir / f"{symbol}-{interval}.csv"
            results.append(
                await download_bars(
                    page,
                    path,
                    start,
                    end,
                    interval_ns=wire.INTERVAL_MS[interval] * wire.MS,
                    label=f"{symbol} {interval}",
                    progress=progress,
                )
            )
    finally:
        await rest.close()
    return results


# The options of `engine download alpaca` too, worded for each venue (symbols, times).
@click.command("binance")
@click.option("--symbol", "symbols", required=True, multiple=True, help="Symbol, e.g. BTCUSDT (repeatable).")
@click.option("--interval", default="1m", show_default=True, type=click.Choice(list(wire.INTERVAL_MS)))
@click.option("--start", required=True, help="First bar's open time: ISO date or datetime, UTC.")
@click.option("--end", default=None, help="Bars open before this time (default: now).")
@click.option("-o", "--output", "out_dir", default="data", show_default=True, type=click.Path(path_type=Path))
@click.option("--testnet", is_flag=True, help="Use the spot testnet's REST endpoint.")
@click.option("--rest-url", default=None, help="REST base URL override (e.g. a local server).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def download_command(
    symbols: tuple[str, ...],
    interval: str,
    start: str,
    end: str | None,
    out_dir: Path,
    testnet: bool,
    rest_url: str | None,
    no_progress: bool,
) -> None:
    """Download Binance spot klines into CSV files the csv source reads.

    An interrupted download resumes where its file ends, without duplicating rows."""
    first = _moment(start, "--start")
    last = _moment(end, "--end") if end else int(datetime.now(timezone.utc).timestamp()) * 1_000_000_000
    if first >= last:
        raise ConfigError(f"--start {start} must be before --end {end or 'now'}")
    base = rest_url or (TESTNET_REST if testnet else REST)
    results = asyncio.run(
        download([s.upper() for s in symbols], interval, first, last, out_dir, rest_url=base, progress=not no_progress)
    )
    for symbol, r in zip(symbols, results):
        click.echo(r.line(symbol.upper()))
