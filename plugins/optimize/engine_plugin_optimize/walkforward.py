"""Walk-forward totals: the folds' figures in sample and out of sample, side by side."""

from __future__ import annotations

from dataclasses import dataclass

from engine_plugin_optimize.search import StudyResult


@dataclass(frozen=True)
class FoldTotals:
    """Means of the metric over the folds (in and out of sample), PnL summed, and the
    walk-forward efficiency: mean out of sample / mean in sample (None when undefined)."""

    in_sample: float | None
    out_of_sample: float | None
    in_sample_pnl: float | None
    out_of_sample_pnl: float | None
    efficiency: float | None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def fold_totals(results: list[StudyResult], metric: str) -> FoldTotals:
    inside, outside, pnl_in, pnl_out = [], [], [], []
    for res in results:
        if res.fold is None or res.best is None:
            continue
        m = res.best.metrics or {}
        if m.get(metric) is not None:
            inside.append(float(m[metric]))
        if m.get("pnl") is not None:
            pnl_in.append(float(m["pnl"]))
        t = (res.test.metrics or {}) if res.test else {}
        if t.get(metric) is not None:
            outside.append(float(t[metric]))
        if t.get("pnl") is not None:
            pnl_out.append(float(t["pnl"]))
    mean_in, mean_out = _mean(inside), _mean(outside)
    efficiency = mean_out / mean_in if mean_in and mean_out is not None and mean_in > 0 else None
    return FoldTotals(mean_in, mean_out, sum(pnl_in) if pnl_in else None, sum(pnl_out) if pnl_out else None, efficiency)


__all__ = ["FoldTotals", "fold_totals"]
