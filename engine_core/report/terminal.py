"""The summary table printed at the end of ``engine run``."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine_core.report.display import TABLE_COLUMNS, ratio_note, show


def print_summary(summary: dict, console: Console) -> None:
    """Print per-symbol and total headline figures, then halted symbols and error counts."""
    # no vertical rules: the table stays within 80 columns for six-figure PnLs
    table = Table(title=f"{summary['strategy']} ({summary['mode']})", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("Symbol")
    for _, label, _ in TABLE_COLUMNS:
        table.add_column(label, justify="right")
    for name, figures in summary["per_symbol"].items():
        table.add_row(name, *(show(figures[key], kind) for key, _, kind in TABLE_COLUMNS))
    total = summary["total"]
    table.add_section()
    table.add_row("Total", *(show(total[key], kind) for key, _, kind in TABLE_COLUMNS), style="bold")
    console.print(table)
    note = ratio_note(summary)
    if note:
        console.print(Text(note, style="dim"))
    for name, reason in total["halted"].items():
        console.print(Text.assemble((f"{name} halted: ", "yellow"), reason))
    if total["errors"]:
        console.print(Text(f"{len(total['errors'])} error(s), listed in the report", style="red"))
