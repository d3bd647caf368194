"""The self-contained HTML report: tables and an inline SVG chart, nothing loaded from outside."""

from __future__ import annotations

import json
from html import escape

from engine_core.report.display import HEADLINE, TABLE_COLUMNS, notes, show

TRADE_LIMIT = 500

# The report pages' look (the optimize plugin's page uses it too).
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.75em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; }
.note { color: #666; }
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; every cell is escaped here."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def readable(value: object) -> str:
    """Configuration-like data as a person reads it: ``csv: files 2, rows 40,000``
    rather than JSON; empty and null entries are left out."""
    if isinstance(value, dict):
        kept = {str(k).replace("_", " "): v for k, v in value.items() if v is not None and v != {} and v != []}
        parts = [f"{k}: {readable(v)}" if isinstance(v, dict) else f"{k} {readable(v)}" for k, v in kept.items()]
        return ("; " if any(isinstance(v, dict) for v in kept.values()) else ", ").join(parts)
    if isinstance(value, (list, tuple)):
        return ", ".join(readable(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _params(params: dict) -> str:
    """Strategy parameters as the config writes them: ``fast = 10, slow = 30``."""
    return ", ".join(f"{key} = {json.dumps(value)}" for key, value in params.items()) or "none"


def _live_vs_backtest(section: dict | None) -> list[str]:
    """``engine replay --against-backtest``: live held against this backtest, decision by decision."""
    if not section:
        return []
    reasons = [[reason, str(n)] for reason, n in sorted(section["reasons"].items(), key=lambda r: -r[1])]
    rows = [[d["time"], d["symbol"], d["live"] or "", d["backtest"] or "", d["reason"]] for d in section["differences"]]
    return [
        "<h2>Live against backtest</h2>",
        f'<p class="note">{section["same"]} of {section["decisions"]} live decisions and fills as the backtest.</p>',
        _table(["Reason", "Differences"], reasons) if reasons else "",
        _table(["Time", "Symbol", "Live", "Backtest", "Reason"], rows) if rows else "",
    ]


def render_page(
    summary: dict,
    trade_header: list[str],
    trade_rows: list[list[str]],
    chart_svg: str | None,
    trade_count: int | None = None,
) -> str:
    """The report page for a summary, its trade rows (sorted) and the chart (an SVG element), if any.

    ``trade_rows`` may hold only the first TRADE_LIMIT rows when ``trade_count``
    gives the number of all trades.
    """
    if trade_count is None:
        trade_count = len(trade_rows)
    total = summary["total"]
    run = [
        ["Strategy", summary["strategy"]],
        ["Mode", summary["mode"]],
        ["Start cash", show(summary["start_cash"], "money")],
        ["Symbols", ", ".join(summary["symbols"])],
        ["First bar", summary["first_bar"] or "n/a"],
        ["Last bar", summary["last_bar"] or "n/a"],
        ["Parameters", _params(summary["params"])],
        ["Source", readable(summary["source"]) or "n/a"],
    ]
    run += [[f"Halted: {name}", reason] for name, reason in total["halted"].items()]
    run += [["Error", message] for message in total["errors"]]
    per_symbol = [
        [name, *(show(figures[key], kind) for key, _, kind in TABLE_COLUMNS)]
        for name, figures in summary["per_symbol"].items()
    ]
    chart = chart_svg or '<p class="note">No bars: nothing to plot.</p>'
    trades_note = (
        f"First {TRADE_LIMIT} of {trade_count} trades; all are in trades.csv."
        if trade_count > TRADE_LIMIT
        else f"{trade_count} trades."
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8">',
            f"<title>Run report: {escape(summary['strategy'])}</title>",
            f"<style>{STYLE}</style></head>",
            "<body>",
            f"<h1>Run report: {escape(summary['strategy'])}</h1>",
            _table(["Run", ""], run),
            "<h2>Headline figures</h2>",
            _table(
                ["Figure", "Total"],
                [[label, show(total[key], kind)] for key, label, kind in HEADLINE],
            ),
            "<h2>Per symbol</h2>",
            _table(["Symbol", *(label for _, label, _ in TABLE_COLUMNS)], per_symbol),
            *(f'<p class="note">{escape(note)}</p>' for note in notes(summary)),
            "<h2>Equity and drawdown</h2>",
            chart,
            "<h2>Trades</h2>",
            _table(trade_header, trade_rows[:TRADE_LIMIT]),
            f'<p class="note">{trades_note}</p>',
            *_live_vs_backtest(summary.get("live_vs_backtest")),
            "</body>",
            "</html>",
            "",
        ]
    )
