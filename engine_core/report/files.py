"""The report files of a run: summary.json, trades.csv, equity.csv and report.html.

Money in trades.csv is exact: each round trip's Decimals, every column of
a symbol at one number of decimals (the fewest that show all of its values
exactly, so a symbol's prices read at the instrument's precision). equity.csv
holds the total equity curve (see :mod:`engine_core.report.metrics`): equity
in fixed point with 10 significant digits for the largest value (at most 8
decimals), drawdown as a fraction with 10 decimals. Every file is a function
of the run alone, so two writes of the same run are byte-identical.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine_core.errors import ConfigError
from engine_core.model import RoundTrip, fraction_digits
from engine_core.report.candles import write_candles
from engine_core.report.fastcsv import (
    CHUNK_ROWS,
    decimal_format,
    decimal_places,
    fixed_columns,
    join_rows,
    time_columns,
)
from engine_core.report.metrics import (
    SIGNIFICANT_DIGITS,
    Drawdown,
    sorted_trades,
    total_curve_blocks,
)
from engine_core.report.page import TRADE_LIMIT, render_page
from engine_core.report.plot import ChartData, Downsampler, chart_svg, symbol_line
from engine_core.results import RunResult

TRADE_COLUMNS = [
    "symbol",
    "side",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "qty",
    "pnl",
    "commission",
    "exit_reason",
]
TEXT_COLUMNS = {TRADE_COLUMNS.index(name) for name in ("symbol", "side", "exit_reason")}  # the others never need quotes
DRAWDOWN_DECIMALS = 10
EQUITY_HEADER = b"time,equity,drawdown\n"
Curves = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # downsampled total equity and drawdown


TRADE_BLOCK = 1024  # round trips formatted at a time
EQUITY_BLOCK = 1 << 13  # rows of the total curve made, formatted and written at a time (about 1.5 MB of text)


@dataclass(frozen=True)
class _Places:
    """Format specs of a symbol's money columns: the fewest decimals that show all its round trips exactly."""

    price: str
    qty: str
    pnl: str
    commission: str

    @classmethod
    def of(cls, trades: list[RoundTrip]) -> _Places:
        columns = (
            itertools.chain((t.entry_price for t in trades), (t.exit_price for t in trades)),
            (t.qty for t in trades),
            (t.pnl for t in trades),
            (t.commission for t in trades),
        )
        return cls(*(decimal_format(decimal_places(values)) for values in columns))


def trade_column_blocks(trades: list[RoundTrip]) -> Iterator[list[list[str]]]:
    """The text of the round trips' fields, one list per column in TRADE_COLUMNS order,
    TRADE_BLOCK round trips at a time."""
    if not trades:
        return
    n = len(trades)
    ts = np.fromiter(itertools.chain((t.entry_ts for t in trades), (t.exit_ts for t in trades)), np.int64, 2 * n)
    digits = fraction_digits(ts)  # of all the times: entries and exits line up
    by_symbol: dict[str, list[RoundTrip]] = {}
    for t in trades:
        by_symbol.setdefault(t.symbol, []).append(t)
    places = {symbol: _Places.of(own) for symbol, own in by_symbol.items()}
    for start in range(0, n, TRADE_BLOCK):
        block = trades[start : start + TRADE_BLOCK]
        m = len(block)
        times = np.concatenate([ts[start : start + m], ts[n + start : n + start + m]])
        text = join_rows([time_columns(times, digits)]).tobytes().decode("ascii").splitlines()
        own = [places[t.symbol] for t in block]
        price = [p.price for p in own]
        yield [
            [t.symbol for t in block],
            [t.side.value for t in block],
            text[:m],
            list(map(format, [t.entry_price for t in block], price)),
            text[m:],
            list(map(format, [t.exit_price for t in block], price)),
            list(map(format, [t.qty for t in block], [p.qty for p in own])),
            list(map(format, [t.pnl for t in block], [p.pnl for p in own])),
            list(map(format, [t.commission for t in block], [p.commission for p in own])),
            [t.exit_reason for t in block],
        ]


class _CsvFields(dict[str, str]):
    """Each text as a field of a CSV line (quoted by the csv module if it must be), made once per text."""

    def __missing__(self, text: str) -> str:
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow([text, ""])
        self[text] = field = line.getvalue()[: -len(",\n")]
        return field


def _decimals_for(largest: float) -> int:
    """Decimals that give the largest equity value 10 significant digits (0 to 8)."""
    return min(max(SIGNIFICANT_DIGITS - len(str(int(largest))), 0), 8)


def _write_trades(path: Path, trades: list[RoundTrip]) -> list[list[str]]:
    """Write trades.csv block by block; return the rows the HTML page lists.

    Times and numbers never need quoting: only the text columns go through
    the csv module, once per distinct text of a block."""
    shown: list[list[str]] = []
    with path.open("w", newline="", encoding="utf-8") as out:
        out.write(",".join(TRADE_COLUMNS) + "\n")
        for columns in trade_column_blocks(trades):
            fields = _CsvFields()
            quoted = [list(map(fields.__getitem__, c)) if k in TEXT_COLUMNS else c for k, c in enumerate(columns)]
            out.write("\n".join(map(",".join, zip(*quoted))) + "\n")
            if len(shown) < TRADE_LIMIT:
                shown += map(list, itertools.islice(zip(*columns), TRADE_LIMIT - len(shown)))
    return shown


def _write_equity(path: Path, result: RunResult) -> Curves | None:
    """Write equity.csv from the total curve in blocks; return the chart's points.

    A first pass finds what fixes the format of every row (fraction digits of
    the times, decimals of the equity); the second formats and writes.
    """
    n, digits, largest = 0, 0, []
    for curve in total_curve_blocks(result, EQUITY_BLOCK):
        n += len(curve.ts)
        digits = max(digits, fraction_digits(curve.ts))
        largest.append(np.abs(curve.equity).max())
    decimals = _decimals_for(float(np.max(largest)) if largest else 0.0)
    equity_points, drawdown_points = Downsampler(n), Downsampler(n)
    dd_of = Drawdown()
    with path.open("wb") as out:
        out.write(EQUITY_HEADER)
        for curve in total_curve_blocks(result, EQUITY_BLOCK):
            dd = dd_of(curve.equity)
            for text in equity_lines(curve.ts, curve.equity, dd, digits, decimals):
                out.write(text)
            equity_points.add(curve.ts, curve.equity)
            drawdown_points.add(curve.ts, dd)
    return (*equity_points.points(), *drawdown_points.points()) if n else None


def equity_lines(
    ts: np.ndarray, equity: np.ndarray, drawdown: np.ndarray, digits: int, decimals: int
) -> Iterator[memoryview]:
    """The lines of equity.csv for these rows (time with ``digits`` fraction
    digits, equity with ``decimals``), CHUNK_ROWS rows at a time."""
    for i in range(0, len(ts), CHUNK_ROWS):
        rows = slice(i, i + CHUNK_ROWS)
        fields = [
            time_columns(ts[rows], digits),
            fixed_columns(equity[rows], decimals),
            fixed_columns(drawdown[rows], DRAWDOWN_DECIMALS),
        ]
        yield join_rows(fields).data


def write_report(result: RunResult, summary: dict, out_dir: Path, *, html: bool = True) -> dict[str, Path]:
    """Write the report files into ``out_dir`` (created if missing); return their paths.

    ``html=False`` leaves out report.html (and the chart).

    Memory stays bounded whatever the length of the run: the curve and the
    trades are formatted and written in blocks, and the chart gets at most a
    few thousand points.
    """
    out_dir = Path(out_dir)
    try:
        return _write_report(result, summary, out_dir, html)
    except OSError as err:
        where = err.filename or out_dir
        raise ConfigError(f"report.dir: cannot write {where}: {err.strerror or err}") from err


def _write_report(result: RunResult, summary: dict, out_dir: Path, html: bool) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out_dir / "summary.json",
        "trades": out_dir / "trades.csv",
        "equity": out_dir / "equity.csv",
    }
    paths["summary"].write_text(json.dumps(summary, sort_keys=True, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    trades = sorted_trades(result)
    shown = _write_trades(paths["trades"], trades)
    points = _write_equity(paths["equity"], result)
    paths["candles"] = out_dir / "candles.csv"
    write_candles(paths["candles"], result.symbols)
    if not html:
        return paths
    paths["html"] = out_dir / "report.html"
    chart = None
    if points:
        start_cash = float(result.start_cash)
        lines = [symbol_line(s, start_cash) for s in result.symbols.values() if s.bars]
        chart = chart_svg(ChartData(*points, lines))
    paths["html"].write_text(
        render_page(summary, TRADE_COLUMNS, shown, chart, trade_count=len(trades)),
        encoding="utf-8",
    )
    return paths
