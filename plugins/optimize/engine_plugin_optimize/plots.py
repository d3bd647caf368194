"""The charts of optimize.html, as PNG bytes (matplotlib, Agg), like the run report's.

* history: each complete trial's figure by trial number, and the best so far;
* importance: how much each parameter matters for reaching the best tenth of
  the figures (Optuna's PED-ANOVA, its default, which needs no extra package),
  over the trials ranked by their figure;
* heatmap: the best figure in each cell of a grid over the two most
  important parameters.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from engine_plugin_optimize.metrics import Direction
from engine_plugin_optimize.search import TrialRecord

CELLS = 12  # bins per axis of a numeric parameter with more distinct values than that


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def history_png(records: list[TrialRecord], metric: str, direction: str) -> bytes | None:
    """Each complete trial's figure, the best so far as a step line; None with no figure to plot."""
    points: list[tuple[int, float, bool]] = []
    for r in records:
        value = r.figure(metric)
        if r.state == "complete" and value is not None and math.isfinite(value):
            points.append((r.number, value, r.qualified))
    if not points:
        return None
    points.sort()
    fig = _figure(9, 4)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.13)
    ax = fig.subplots()
    ranked = [(n, v) for n, v, q in points if q]
    others = [(n, v) for n, v, q in points if not q]
    if ranked:
        ax.scatter(*zip(*ranked), s=14, color="#1f5fa8", label="trial")
        best, xs, ys = None, [], []
        for n, v in ranked:
            if best is None or (v > best if direction == "maximize" else v < best):
                best = v
            xs.append(n)
            ys.append(best)
        ax.step(xs, ys, where="post", color="#c0392b", linewidth=1.2, label="best so far")
    if others:
        ax.scatter(*zip(*others), s=14, facecolors="none", edgecolors="#999999", label="ranked last")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def importances(
    records: list[TrialRecord], distributions: dict[str, Any], metric: str, direction: Direction
) -> dict[str, float]:
    """Parameter importances (summing to 1) over the trials ranked by their figure;
    empty when there are too few such trials or parameters to say."""
    import optuna

    trials = [
        optuna.trial.create_trial(params=r.params, distributions=distributions, value=r.figure(metric))
        for r in records
        if r.qualified and r.figure(metric) is not None and set(r.params) == set(distributions)
    ]
    varied = [n for n in distributions if len({repr(t.params[n]) for t in trials}) > 1]
    if len(trials) < 3 or not varied:
        return {}
    study = optuna.create_study(direction=direction)
    study.add_trials(trials)
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=varied
        )
    except (ValueError, RuntimeError):
        return {}
    return dict(found)


def importance_png(found: dict[str, float]) -> bytes | None:
    if not found:
        return None
    return _png(importance_figure(found))


def importance_figure(found: dict[str, float]) -> Any:
    """The importance bars; margins in inches, so both axis labels show however many bars."""
    names = list(found)[::-1]
    height = 1.1 + 0.35 * len(names)
    fig = _figure(7, height)
    fig.subplots_adjust(left=0.28, right=0.95, top=1 - 0.2 / height, bottom=0.75 / height)
    ax = fig.subplots()
    ax.barh(names, [found[n] for n in names], color="#1f5fa8")
    ax.set_xlim(0, 1)
    ax.set_xlabel("importance for the best tenth of the trials (PED-ANOVA, sums to 1)")
    ax.set_ylabel("parameter")
    ax.grid(alpha=0.3, axis="x")
    return fig


def _axis(values: list[Any], log: bool) -> tuple[list[str], list[int]]:
    """Labels of an axis' cells and the cell of each value."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    distinct = sorted(set(values), key=lambda v: (not numeric, v if numeric else str(v)))
    if not numeric or len(distinct) <= CELLS:
        index = {repr(v): i for i, v in enumerate(distinct)}
        return [f"{v:g}" if numeric else str(v) for v in distinct], [index[repr(v)] for v in values]
    if not log and all(isinstance(v, int) for v in values):
        return _integer_axis(values)
    x = np.log(np.asarray(values, float)) if log else np.asarray(values, float)
    edges = np.linspace(x.min(), x.max(), CELLS + 1)
    cells = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, CELLS - 1)
    shown = np.exp(edges) if log else edges
    labels = [f"{shown[i]:.3g}-{shown[i + 1]:.3g}" for i in range(CELLS)]
    return labels, [int(c) for c in cells]


def _integer_axis(values: list[int]) -> tuple[list[str], list[int]]:
    """Cells of whole numbers for an integer parameter: ``5-7``, ``8-10``, never ``5-7.08``."""
    low, high = min(values), max(values)
    width = -(-(high - low + 1) // CELLS)
    cells = -(-(high - low + 1) // width)
    labels = []
    for i in range(cells):
        first, last = low + i * width, min(low + (i + 1) * width - 1, high)
        labels.append(str(first) if first == last else f"{first}-{last}")
    return labels, [(v - low) // width for v in values]


def heatmap_png(
    records: list[TrialRecord], x: str, y: str, logs: dict[str, bool], metric: str, direction: str
) -> bytes | None:
    """The best figure in each cell over parameters ``x`` and ``y``; blank cells had no trial."""
    rows = [(r, value) for r in records if r.qualified and (value := r.figure(metric)) is not None]
    if len(rows) < 2:
        return None
    x_labels, x_cells = _axis([r.params[x] for r, _ in rows], logs.get(x, False))
    y_labels, y_cells = _axis([r.params[y] for r, _ in rows], logs.get(y, False))
    grid = np.full((len(y_labels), len(x_labels)), np.nan)
    pick = np.fmax if direction == "maximize" else np.fmin
    for (_, value), row, col in zip(rows, y_cells, x_cells):
        grid[row, col] = pick(grid[row, col], value)
    import matplotlib

    fig = _figure(8, 5.5)
    fig.subplots_adjust(left=0.16, right=0.97, top=0.95, bottom=0.2)
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis" if direction == "maximize" else "viridis_r"].with_extremes(bad="#ffffff")
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap)
    fig.colorbar(image, ax=ax, label=f"best {metric}")
    ax.set_xticks(range(len(x_labels)), x_labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(y_labels)), y_labels, fontsize=8)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if grid.size <= 15 * 15:
        shade = image.norm(grid)  # 0..1 along the colour map: dark text on its bright end
        for (row, col), value in np.ndenumerate(grid):
            if not np.isnan(value):
                bright = (shade[row, col] > 0.6) == (direction == "maximize")
                color = "#000000" if bright else "#ffffff"
                ax.text(col, row, f"{value:.3g}", ha="center", va="center", fontsize=7, color=color)
    return _png(fig)


__all__ = ["heatmap_png", "history_png", "importance_png", "importances"]
