"""How summary figures read to a person; the terminal table and the HTML page share it."""

from __future__ import annotations

from typing import Any, Literal

from engine_core.model import SECONDS_PER_DAY
from engine_core.report.metrics import MIN_ANNUALIZED_DAYS

Kind = Literal["int", "money", "percent", "ratio", "duration"]

# every summary figure a person reads: its label and how its value reads
FIGURES: dict[str, tuple[str, Kind]] = {
    "final_equity": ("Final equity", "money"),
    "pnl": ("PnL", "money"),
    "total_return": ("Return", "percent"),
    "span_days": ("Span (days)", "ratio"),
    "cagr": ("CAGR", "percent"),
    "sharpe": ("Sharpe", "ratio"),
    "sortino": ("Sortino", "ratio"),
    "max_drawdown": ("Max drawdown", "percent"),
    "max_drawdown_bars": ("Max drawdown duration (bars)", "int"),
    "max_drawdown_seconds": ("Max drawdown duration", "duration"),
    "exposure": ("Exposure", "percent"),
    "trades": ("Trades", "int"),
    "win_rate": ("Win rate", "percent"),
    "profit_factor": ("Profit factor", "ratio"),
    "avg_trade_pnl": ("Average trade", "money"),
    "best_trade_pnl": ("Best trade", "money"),
    "worst_trade_pnl": ("Worst trade", "money"),
    "bars": ("Bars", "int"),
    "orders": ("Orders", "int"),
    "fills": ("Fills", "int"),
}

# (summary key, label, kind): the headline figures of the whole run, in reading order
HEADLINE: list[tuple[str, str, Kind]] = [(key, label, kind) for key, (label, kind) in FIGURES.items()]

# the per-symbol table, in both terminal and HTML: fewer figures, labels that fit a column
_COLUMN_LABEL = {"max_drawdown": "Max DD"}
TABLE_COLUMNS: list[tuple[str, str, Kind]] = [
    (key, _COLUMN_LABEL.get(key, FIGURES[key][0]), FIGURES[key][1])
    for key in ("bars", "trades", "pnl", "total_return", "sharpe", "max_drawdown", "win_rate")
]

MISSING = "n/a"


def show(value: Any, kind: Kind) -> str:
    """Text of one summary value; ``n/a`` for an undefined (None) figure."""
    if value is None:
        return MISSING
    if kind == "int":
        return f"{value:,}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "percent":
        return f"{value * 100:.2f}%"
    if kind == "ratio":
        return f"{value:.2f}"
    days, rest = divmod(int(value), SECONDS_PER_DAY)
    clock = f"{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
    return f"{days}d {clock}" if days else clock


def notes(summary: dict) -> list[str]:
    """What a reader needs to read the figures right: whether they are annualised (and by
    what factor), and why Sharpe and Sortino read n/a when too few returns are the reason."""
    return [note for note in (annualization_note(summary), ratio_note(summary)) if note]


def annualization_note(summary: dict) -> str | None:
    """How the run's figures are scaled: per year (the factor) or, for a short run, not at all."""
    total = summary["total"]
    days, factor = total.get("span_days"), total.get("ratio_periods")
    if days is None or factor is None:
        return None
    annualized = bool(total.get("annualized"))
    if not annualized:
        note = (
            f"{days:,.1f} days of bars, under {MIN_ANNUALIZED_DAYS}: nothing is annualised. CAGR is left out; "
            f"Return, Sharpe and Sortino are the whole run's (ratios: per bar x sqrt({factor:,.0f} returns))."
        )
    else:
        note = (
            f"{days:,.1f} days of bars: CAGR, Sharpe and Sortino are per year (ratios: per bar x sqrt({factor:,.0f}))."
        )
    # a symbol with a shorter history than the run's is read on its own span
    short = [name for name, f in summary["per_symbol"].items() if f.get("ratio_periods") and not f.get("annualized")]
    if annualized and short:
        note += (
            f" {', '.join(short)}: under {MIN_ANNUALIZED_DAYS} days of bars of their own, "
            "so no CAGR and ratios over their own run."
        )
    return note


def ratio_note(summary: dict) -> str | None:
    """Why Sharpe and Sortino read n/a, when too few returns are the reason."""
    short = [
        (name, figures)
        for name, figures in [("Total", summary["total"]), *summary["per_symbol"].items()]
        if figures.get("ratio_min_returns") is not None and figures["returns"] < figures["ratio_min_returns"]
    ]
    if not short:
        return None
    need = max(figures["ratio_min_returns"] for _, figures in short)
    where = "" if short[0][0] == "Total" else " for " + ", ".join(name for name, _ in short)
    return (
        f"Sharpe and Sortino are n/a{where}: they need {need:,} bar returns "
        f"(at least 30, and a week of bars); {short[0][1]['returns']:,} here."
    )
