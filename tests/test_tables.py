"""The CLI's tables at 80 columns: every word whole, the least important columns dropped first."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from engine_core import indicators
from engine_core.tables import Column, fitted, indicator_detail, indicators_table, plugins_table, status_table


def render(table: Any, width: int = 80) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def assert_readable(text: str, cells: list[str], width: int = 80) -> None:
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    words = {w.rstrip(",") for w in text.split()}
    cut = [w for cell in cells for w in cell.split() if w.rstrip(",") not in words]
    assert not cut, f"words cut or missing: {cut[:10]}"


def header(text: str) -> str:
    return " ".join(text.split())  # headers may wrap


def test_indicators_at_80_columns_keep_name_parameters_description_outputs():
    specs = indicators.available()
    text = render(indicators_table(specs, Console(width=80)))
    assert_readable(text, [s.name for s in specs] + [f"{k}={v}" for s in specs for k, v in s.params.items()])
    assert_readable(text, [s.description for s in specs] + [o for s in specs if len(s.outputs) > 1 for o in s.outputs])
    assert "group" not in header(text.split("─")[0]) and "inputs" not in header(text.split("─")[0])
    wide = render(indicators_table(specs, Console(width=200)), 200)
    assert "inputs" in wide.split("─")[0] and "group" in wide.split("─")[0]


def test_one_indicator_in_full_with_talib_aliases():
    text = render(indicator_detail(indicators.kind("macd").spec), 40)
    assert "fast=12 (also fastperiod)" in text and "macd, macdsignal, macdhist" in text


def test_status_at_80_columns_drops_the_last_event_first():
    rows = [
        {
            "symbol": "BTCUSDT",
            "state": "close_watch",
            "qty": "0.015",
            "avg_price": "43012.55",
            "open_orders": ["engine-BTCUSDT-17", "engine-BTCUSDT-18"],
            "halted": "position mismatch after restart: the journal says 1, the broker 0",
            "last_event": {"kind": "transition", "ts": 1_704_067_200_000_000_000},
            "last_bar": 1_704_067_200_000_000_000,
        }
    ]
    text = render(status_table(rows, "journal state/engine.sqlite", Console(width=80)))
    r = rows[0]
    assert_readable(text, [r["symbol"], r["state"], r["qty"], r["avg_price"], *r["open_orders"], r["halted"]])
    assert_readable(text, ["2024-01-01 00:00:00Z"])
    assert "last event" not in header(text) and "transition" not in text
    assert "transition" in render(status_table(rows, "j", Console(width=200)), 200)


def test_plugin_errors_wrap_whole_words():
    rows = [
        {
            "name": "csv",
            "kind": "source",
            "distribution": "engine-plugin-csv",
            "version": "0.1.0",
            "status": "loaded",
            "error": None,
        },
        {
            "name": "broken",
            "kind": "-",
            "distribution": "engine-plugin-broken",
            "version": "0.3.1",
            "status": "failed",
            "error": 'plugin "broken" (engine-plugin-broken) failed to import: ModuleNotFoundError: No module named websockets',
        },
    ]
    text = render(plugins_table(rows, Console(width=80)))
    assert_readable(text, [str(v) for r in rows for v in r.values() if v])


def test_a_word_wider_than_the_console_is_folded_not_lost():
    text = render(fitted("t", [Column("path", 1)], [["/a/" + "x" * 100]], Console(width=40)), 40)
    assert "".join(text.split()).endswith("/a/" + "x" * 100)
