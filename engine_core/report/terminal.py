"""The summary table printed at the end of ``engine run``."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from engine_core.report.display import TABLE_COLUMNS, notes, show
from engine_core.tables import Column, fitted

# which columns stay longest as the console narrows (figures are never cut: columns go)
_KEEP = {"pnl": 95, "total_return": 90, "trades": 80, "max_drawdown": 70, "sharpe": 60, "win_rate": 50, "bars": 40}


def print_summary(summary: dict, console: Console) -> None:
    """Print per-symbol and total headline figures, then halted symbols and error counts."""
    columns = [Column("Symbol", 100)]
    columns += [Column(label, _KEEP.get(key, 0), "right") for key, label, _ in TABLE_COLUMNS]
    rows = [
        [name, *(show(figures[key], kind) for key, _, kind in TABLE_COLUMNS)]
        for name, figures in summary["per_symbol"].items()
    ]
    total = summary["total"]
    totals = ["Total", *(show(total[key], kind) for key, _, kind in TABLE_COLUMNS)]
    console.print(fitted(f"{summary['strategy']} ({summary['mode']})", columns, rows, console, total=totals))
    for note in notes(summary):
        console.print(Text(note, style="dim"))
    for name, reason in total["halted"].items():
        console.print(Text.assemble((f"{name} halted: ", "yellow"), reason))
    if total["errors"]:
        console.print(Text(f"{len(total['errors'])} error(s), listed in the report", style="red"))
