"""optimize.html: the search on one self-contained page (charts inlined as PNG)."""

from __future__ import annotations

import base64
import json
from html import escape
from typing import Any

from engine_core import iso_utc
from engine_core.report.page import STYLE
from engine_plugin_optimize import plots
from engine_plugin_optimize.metrics import shown
from engine_plugin_optimize.search import StudyResult, TrialRecord, ranked
from engine_plugin_optimize.settings import Job
from engine_plugin_optimize.walkforward import FoldTotals

FAILURES_SHOWN = 20
IN_SAMPLE_WARNING = (
    "In sample: these figures come from the same bars the parameters were chosen on, so they "
    "flatter the strategy; [optimize.walk_forward] tests the best parameters on bars they were not chosen on."
)

_STYLE = STYLE + "img { display: block; margin-bottom: 1em; }\n"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; every cell is escaped here."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _image(png: bytes | None, alt: str, missing: str) -> str:
    if png is None:
        return f'<p class="note">{escape(missing)}</p>'
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=False, separators=(", ", ": "))


def top_rows(job: Job, records: list[TrialRecord], limit: int) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the best trials (shared with the terminal table)."""
    metric = job.settings.metric
    extra = [m for m in ("trades", "pnl", "max_drawdown", "sharpe") if m != metric]
    header = ["#", "trial", metric, *extra, *job.settings.params, "seconds"]
    rows = []
    for rank, r in enumerate(ranked(records, metric, job.direction)[:limit], 1):
        m = r.metrics or {}
        label = f"{rank}" if r.qualified else f"{rank} ({r.note})"
        rows.append(
            [
                label,
                str(r.number),
                shown(metric, m.get(metric)),
                *(shown(k, m.get(k)) for k in extra),
                *(_value(r.params.get(p)) for p in job.settings.params),
                f"{r.seconds:.2f}" if r.seconds is not None else "",
            ]
        )
    return header, rows


def _value(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _counts(records: list[TrialRecord]) -> str:
    states: dict[str, int] = {}
    for r in records:
        states[r.state] = states.get(r.state, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in states.items()) or "none"


def _study_section(job: Job, res: StudyResult) -> list[str]:
    metric, direction = job.settings.metric, job.direction
    found = plots.importances(res.records, job.distributions(), metric, direction)
    names = list(found) or list(job.settings.params)
    logs = {n: p.log for n, p in job.settings.params.items()}
    title = "Search" if res.fold is None else f"Fold {res.fold.index}: in-sample search"
    out = [f"<h2>{escape(title)}</h2>", f'<p class="note">Study {escape(res.name)}: {_counts(res.records)}.</p>']
    out.append("<h3>Optimisation history</h3>")
    out.append(_image(plots.history_png(res.records, metric, direction), "history", "No complete trial to plot."))
    out.append("<h3>Parameter importance</h3>")
    out.append(_image(plots.importance_png(found), "importance", "Too few ranked trials or varied parameters."))
    if found:
        out.append(_table(["Parameter", "Importance"], [[n, f"{v:.3f}"] for n, v in found.items()]))
    out.append("<h3>Heatmap</h3>")
    if len(names) >= 2:
        x, y = names[0], names[1]
        png = plots.heatmap_png(res.records, x, y, logs, metric, direction)
        out.append(_image(png, f"{metric} over {x} and {y}", "Too few ranked trials for a heatmap."))
    else:
        out.append('<p class="note">One parameter: no heatmap.</p>')
    header, rows = top_rows(job, res.records, job.settings.top)
    out += [f"<h3>Top {len(rows)} trials</h3>", _table(header, rows)]
    failed = [r for r in res.records if r.state == "failed"]
    if failed:
        out.append(f"<h3>Failed trials ({len(failed)})</h3>")
        shown_rows = [[str(r.number), _params(r.params), r.note or ""] for r in failed[:FAILURES_SHOWN]]
        out.append(_table(["Trial", "Parameters", "Error"], shown_rows))
    return out


def _walk_forward_section(job: Job, results: list[StudyResult], totals: FoldTotals) -> list[str]:
    metric = job.settings.metric
    rows = []
    for res in results:
        if res.fold is None:
            continue
        inside = (res.best.metrics or {}) if res.best else {}
        outside = (res.test.metrics or {}) if res.test else {}
        rows.append(
            [
                str(res.fold.index),
                f"{iso_utc(res.fold.train[0])} - {iso_utc(res.fold.train[1])}",
                f"{iso_utc(res.fold.test[0])} - {iso_utc(res.fold.test[1])}",
                _params(res.best.params) if res.best else "no complete trial",
                shown(metric, inside.get(metric)),
                f"failed: {res.test.error}" if res.test and res.test.error else shown(metric, outside.get(metric)),
                shown("trades", inside.get("trades")),
                shown("trades", outside.get("trades")),
                shown("pnl", inside.get("pnl")),
                shown("pnl", outside.get("pnl")),
            ]
        )
    rows.append(
        [
            "Total",
            "",
            "",
            "mean of the folds; PnL summed",
            shown(metric, totals.in_sample),
            shown(metric, totals.out_of_sample),
            "",
            "",
            shown("pnl", totals.in_sample_pnl),
            shown("pnl", totals.out_of_sample_pnl),
        ]
    )
    header = [
        "Fold",
        "In sample",
        "Out of sample",
        "Best parameters",
        f"{metric} in",
        f"{metric} out",
        "Trades in",
        "Trades out",
        "PnL in",
        "PnL out",
    ]
    efficiency = "n/a" if totals.efficiency is None else f"{totals.efficiency:.2f}"
    return [
        "<h2>Walk-forward</h2>",
        _table(header, rows),
        f'<p class="note">Walk-forward efficiency (mean {escape(metric)} out of sample / in sample): '
        f"{efficiency}. Each out-of-sample window is backtested alone, from no position.</p>",
    ]


def render_page(
    job: Job, results: list[StudyResult], best: TrialRecord | None, storage: str, totals: FoldTotals | None
) -> str:
    s = job.settings
    all_records = [r for res in results for r in res.records]
    run = [
        ["Config", str(job.where)],
        ["Strategy", job.loaded.config.strategy.script or job.loaded.config.strategy.class_ or ""],
        ["Metric", f"{s.metric} ({job.direction})"],
        ["Sampler", s.sampler + (f" (seed {s.seed})" if s.seed is not None else "")],
        ["Trials", _counts(all_records)],
        ["Min trades", str(s.min_trades)],
        ["Constraints", "; ".join(c.text for c in job.constraints) or "none"],
        ["Storage", storage],
    ]
    if best is not None:
        run += [
            ["Best trial", f"{best.number}" + (f" (fold {best.fold})" if best.fold else "")],
            ["Best " + s.metric, shown(s.metric, best.figure(s.metric))],
            ["Best parameters", _params(best.params)],
        ]
    body = [_table(["Search", ""], run)]
    if totals is not None:  # the out-of-sample figures first: they are the ones to trust
        body += _walk_forward_section(job, results, totals)
    else:
        body.append(f'<p class="note"><strong>{escape(IN_SAMPLE_WARNING)}</strong></p>')
    for res in results:
        body += _study_section(job, res)
    title = f"Optimisation: {escape(job.study_name)}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8">',
            f"<title>{title}</title>",
            f"<style>{_STYLE}</style></head>",
            "<body>",
            f"<h1>{title}</h1>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


__all__ = ["render_page", "top_rows"]
