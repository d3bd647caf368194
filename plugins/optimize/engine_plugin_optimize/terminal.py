"""What a search shows on a terminal: a progress bar while it runs, the top trials at the end."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.text import Text

from engine_core import iso_utc
from engine_core.tables import Column, fitted
from engine_plugin_optimize.metrics import shown
from engine_plugin_optimize.page import IN_SAMPLE_WARNING, top_rows
from engine_plugin_optimize.search import StudyResult
from engine_plugin_optimize.settings import Job
from engine_plugin_optimize.walkforward import FoldTotals


class TerminalProgress:
    """A rich progress bar per study: trials done of the target, best figure so far, time left."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Any = None
        self.task: Any = None

    def begin(self, label: str, total: int, done: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("trials"),
            TextColumn("{task.fields[best]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.bar.add_task(label, total=total, completed=done, best="")
        self.bar.start()

    def advance(self, done: int, best: str) -> None:
        self.bar.update(self.task, completed=done, best=best)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def progress_for(console: Console) -> TerminalProgress | None:
    """A progress bar when ``console`` is a terminal, else nothing."""
    return TerminalProgress(console) if console.is_terminal else None


def print_top(job: Job, results: list[StudyResult], console: Console) -> None:
    """The top trials of each study as a table fitted to the console (figures never cut:
    the least telling columns go first), then the in-sample warning."""
    metric, names = job.settings.metric, set(job.settings.params)
    for res in results:
        header, rows = top_rows(job, res.records, job.settings.top)
        title = f"top trials of {res.name}" + (f" (fold {res.fold.index}, in sample)" if res.fold else "")
        columns = [
            Column(name, _keep(name, metric, names), "left" if i == 0 else "right") for i, name in enumerate(header)
        ]
        console.print(fitted(title, columns, rows, console))
    if job.settings.walk_forward is None:
        console.print(Text(IN_SAMPLE_WARNING, style="yellow"))


def _keep(column: str, metric: str, params: set[str]) -> int:
    """How long a column of the top table stays as the console narrows."""
    if column in ("#", metric) or column in params:
        return 100
    return {"trades": 80, "pnl": 70, "max_drawdown": 60, "sharpe": 50, "trial": 40, "seconds": 10}.get(column, 30)


def print_walk_forward(job: Job, results: list[StudyResult], totals: FoldTotals, console: Console) -> None:
    """Per fold: the best in-sample parameters and their figures in and out of sample,
    fitted to the console (the out-of-sample figure stays longest)."""
    metric = job.settings.metric
    columns = [
        Column("fold", 100),
        Column("out of sample from", 50),
        Column("best parameters", 80),
        Column("in", 85, "right"),
        Column("out", 95, "right"),
        Column("trades in", 60, "right"),
        Column("trades out", 70, "right"),
    ]
    rows = []
    for res in results:
        if res.fold is None:
            continue
        inside = (res.best.metrics or {}) if res.best else {}
        outside = (res.test.metrics or {}) if res.test else {}
        out = f"failed: {res.test.error}" if res.test and res.test.error else shown(metric, outside.get(metric))
        rows.append(
            [
                str(res.fold.index),
                iso_utc(res.fold.test[0]),
                json.dumps(res.best.params) if res.best else "no complete trial",
                shown(metric, inside.get(metric)),
                out,
                shown("trades", inside.get("trades")),
                shown("trades", outside.get("trades")),
            ]
        )
    efficiency = "n/a" if totals.efficiency is None else f"{totals.efficiency:.2f}"
    total = [
        "mean",
        "",
        f"efficiency {efficiency}",
        shown(metric, totals.in_sample),
        shown(metric, totals.out_of_sample),
    ]
    title = f"walk-forward: {metric} in sample and out of sample"
    console.print(fitted(title, columns, rows, console, total=[*total, "", ""]))
    last = max((res.fold.index for res in results if res.fold is not None), default=None)
    console.print(
        Text(
            f"Out of sample is what to expect; the top trials below are fold {last}'s in-sample search.",
            style="yellow",
        )
    )


__all__ = ["TerminalProgress", "print_top", "print_walk_forward", "progress_for"]
