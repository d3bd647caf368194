"""The figures a search can rank by, their direction, and how trials are ranked.

The figures are the run's ``summary.json`` totals (see
:mod:`engine_core.report.metrics`). Drawdowns are minimised; every other
figure is maximised. A trial whose figure is undefined (``null``, e.g. a
Sharpe ratio without returns) or that made fewer than ``min_trades`` round
trips is ranked last, whatever its figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

Direction = Literal["maximize", "minimize"]

METRICS: dict[str, Direction] = {
    "sharpe": "maximize",
    "sortino": "maximize",
    "cagr": "maximize",
    "total_return": "maximize",
    "pnl": "maximize",
    "final_equity": "maximize",
    "profit_factor": "maximize",
    "win_rate": "maximize",
    "avg_trade_pnl": "maximize",
    "best_trade_pnl": "maximize",
    "worst_trade_pnl": "maximize",
    "trades": "maximize",
    "orders": "maximize",
    "fills": "maximize",
    "exposure": "maximize",
    "max_drawdown": "minimize",
    "max_drawdown_bars": "minimize",
    "max_drawdown_seconds": "minimize",
}
"""Every rankable summary total and its direction."""

# how each figure reads (engine_core.report.display kinds)
KIND: dict[str, str] = {
    "sharpe": "ratio",
    "sortino": "ratio",
    "profit_factor": "ratio",
    "cagr": "percent",
    "total_return": "percent",
    "win_rate": "percent",
    "exposure": "percent",
    "max_drawdown": "percent",
    "pnl": "money",
    "final_equity": "money",
    "avg_trade_pnl": "money",
    "best_trade_pnl": "money",
    "worst_trade_pnl": "money",
    "trades": "int",
    "orders": "int",
    "fills": "int",
    "max_drawdown_bars": "int",
    "max_drawdown_seconds": "duration",
}

# summary totals that are the same for every trial on the same data
CONSTANT = ("bars", "bar_seconds", "periods_per_year")


def direction_of(metric: str) -> Direction:
    """The direction of ``metric``; KeyError when it is not a rankable figure."""
    return METRICS[metric]


def unknown_metric_message(metric: str) -> str:
    if metric in CONSTANT:
        return f"{metric!r} is the same for every trial on the same data; rank by one of: {', '.join(METRICS)}"
    return f"unknown metric {metric!r}; one of: {', '.join(METRICS)}"


RECORDED = (*METRICS, "bars")
"""The figures kept of each trial: the rankable ones and the bars it ran on."""


def figures(total: Mapping[str, Any]) -> dict[str, float | int | None]:
    """The recorded figures of a summary's ``total`` (numbers or None)."""
    return {name: total.get(name) for name in RECORDED}


def shown(metric: str, value: Any) -> str:
    """A figure as the run report shows it."""
    from engine_core.report.display import show

    return show(value, KIND[metric])  # type: ignore[arg-type]


def worst(direction: Direction) -> float:
    return -math.inf if direction == "maximize" else math.inf


def objective(
    metrics: Mapping[str, Any], metric: str, direction: Direction, min_trades: int
) -> tuple[float, str | None]:
    """The value told to the search, and why it is the worst possible (None if it is not)."""
    value = metrics.get(metric)
    if value is None:
        return worst(direction), f"{metric} undefined"
    trades = metrics.get("trades") or 0
    if trades < min_trades:
        return worst(direction), f"{trades} trades < min_trades {min_trades}"
    return float(value), None


def rank_key(value: float | None, qualified: bool, direction: Direction) -> tuple[int, float]:
    """Sort key, best first: qualified trials before the rest, then by the figure."""
    if value is None or math.isnan(value):
        return (1, math.inf)
    return (0 if qualified else 1, -value if direction == "maximize" else value)


__all__ = [
    "KIND",
    "METRICS",
    "RECORDED",
    "Direction",
    "direction_of",
    "figures",
    "objective",
    "rank_key",
    "shown",
    "worst",
]
