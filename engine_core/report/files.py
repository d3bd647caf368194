"""The report files of a run: summary.json, trades.csv, equity.csv and report.html.

Money in trades.csv is the exact Decimal text of each round trip. equity.csv
holds the total equity curve (see :mod:`engine_core.report.metrics`): equity
in fixed point with 10 significant digits for the largest value (at most 8
decimals), drawdown as a fraction with 10 decimals. Every file is a function
of the run alone, so two writes of the same run are byte-identical.
"""

from __future__ import annotations

import csv
import json
from functools import partial
from pathlib import Path

import numpy as np

from engine_core.model import RoundTrip
from engine_core.report.fastcsv import (
    fixed_columns,
    fraction_digits,
    iso_times,
    time_columns,
    write_csv,
)
from engine_core.report.metrics import SIGNIFICANT_DIGITS, drawdown, sorted_trades, total_curve
from engine_core.report.page import render_page
from engine_core.report.plot import equity_chart
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
DRAWDOWN_DECIMALS = 10


def trade_rows(trades: list[RoundTrip]) -> list[list[str]]:
    """One row of text per round trip, in TRADE_COLUMNS order."""
    times = iso_times(
        np.array([t.entry_ts for t in trades] + [t.exit_ts for t in trades], np.int64)
    )
    return [
        [
            t.symbol,
            t.side.value,
            entry,
            str(t.entry_price),
            exit_,
            str(t.exit_price),
            str(t.qty),
            str(t.pnl),
            str(t.commission),
            t.exit_reason,
        ]
        for t, entry, exit_ in zip(trades, times[: len(trades)], times[len(trades) :])
    ]


def _equity_decimals(equity: np.ndarray) -> int:
    """Decimals that give the largest equity value 10 significant digits (0 to 8)."""
    largest = float(np.abs(equity).max()) if len(equity) else 0.0
    return min(max(SIGNIFICANT_DIGITS - len(str(int(largest))), 0), 8)


def write_report(result: RunResult, summary: dict, out_dir: Path) -> dict[str, Path]:
    """Write the four report files into ``out_dir`` (created if missing); return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out_dir / "summary.json",
        "trades": out_dir / "trades.csv",
        "equity": out_dir / "equity.csv",
        "html": out_dir / "report.html",
    }
    paths["summary"].write_text(
        json.dumps(summary, sort_keys=True, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    rows = trade_rows(sorted_trades(result))
    with paths["trades"].open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(TRADE_COLUMNS)
        writer.writerows(rows)
    curve = total_curve(result)
    dd = drawdown(curve.equity)
    columns = [
        (partial(time_columns, frac_digits=fraction_digits(curve.ts)), curve.ts),
        (partial(fixed_columns, decimals=_equity_decimals(curve.equity)), curve.equity),
        (partial(fixed_columns, decimals=DRAWDOWN_DECIMALS), dd),
    ]
    with paths["equity"].open("wb") as out:
        write_csv(out, "time,equity,drawdown", columns)
    chart = equity_chart(curve.ts, curve.equity, dd) if len(curve.ts) else None
    paths["html"].write_text(render_page(summary, TRADE_COLUMNS, rows, chart), encoding="utf-8")
    return paths
