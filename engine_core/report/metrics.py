"""Headline figures of a finished run, per symbol and in total.

Equity curves
    A symbol's equity at bar ``i`` is ``start_cash + pnl[i]`` (as if it had
    traded the whole starting cash alone). The total equity is ``start_cash``
    plus the sum over symbols of each symbol's pnl, forward-filled onto the
    sorted union of all symbols' bar times (0 before a symbol's first bar).

Definitions (rf = 0), for a curve ``E[0..n-1]`` at times ``t[0..n-1]``:

- ``pnl = E[n-1] - start_cash``, ``total_return = pnl / start_cash``.
- ``bar_seconds``: median of ``diff(t)``. ``periods_per_year`` (P): the
  override if given, else ``365 * 86400 / bar_seconds`` (24/7 markets).
- ``cagr = (E[n-1] / start_cash) ** (P / (n - 1)) - 1``: the curve spans
  ``(n - 1) / P`` years.
- per-period returns ``r[i] = E[i] / E[i-1] - 1`` for ``i >= 1``.
- ``sharpe = mean(r) / std(r, ddof=1) * sqrt(P)``.
- ``sortino = mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(P)``; the
  denominator (downside deviation over all periods, target 0) is
  backtesting.py's. Unlike backtesting.py, which resamples to daily returns
  and uses their geometric mean, both ratios here use the arithmetic mean of
  per-bar returns.
- ``drawdown[i] = 1 - E[i] / max(E[0..i])``; ``max_drawdown`` is its maximum,
  a positive fraction. A drawdown period runs from its peak bar to the bar
  that regains the peak (or to the last bar, if none does);
  ``max_drawdown_bars`` and ``max_drawdown_seconds`` are the longest such
  period counted in bars and in seconds (as backtesting.py's duration).
- ``exposure``: fraction of bars with a position open at the close (in total:
  with any symbol's position open).
- over closed round trips (``RoundTrip.pnl`` as the engine reports it):
  ``win_rate`` = share with pnl > 0; ``profit_factor`` = sum of gains /
  sum of losses; ``avg_trade_pnl``, ``best_trade_pnl``, ``worst_trade_pnl``.
- in total, ``bars``, ``trades``, ``orders`` and ``fills`` are sums over
  symbols, while drawdown bars count steps of the total curve.

A figure that is undefined (no trades, fewer than two bars, zero variance, no
losses for the profit factor) is ``None`` (JSON ``null``), never inf or NaN.
Headline money and ratios are floats rounded to 10 significant digits; exact
quantities (``position_qty``) and the strings in ``source``/``params`` keep
their text. Nothing depends on the wall clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from engine_core.model import NS_PER_SECOND, RoundTrip
from engine_core.report.fastcsv import iso_times
from engine_core.results import RunResult

SECONDS_PER_YEAR = 365 * 86_400
SIGNIFICANT_DIGITS = 10


@dataclass(frozen=True, eq=False)
class Curve:
    """An equity curve: bar times (int64 ns), equity and exposure at each close."""

    ts: np.ndarray
    equity: np.ndarray
    exposed: np.ndarray


def number(value: float | Decimal | None) -> float | None:
    """A JSON-safe float rounded to 10 significant digits; None if not finite."""
    if value is None:
        return None
    x = float(value)
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(x) else None


def json_safe(value: Any) -> Any:
    """Plain JSON data from configuration-like values (Decimal and other objects as text)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, (float, np.floating)):
        return number(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


def total_curve(result: RunResult) -> Curve:
    """The run's total equity on the union of all symbols' bar times."""
    series = [s for s in result.symbols.values() if s.bars]
    if not series:
        return Curve(np.empty(0, np.int64), np.empty(0), np.empty(0, bool))
    start_cash = float(result.start_cash)
    if all(np.array_equal(s.ts, series[0].ts) for s in series[1:]):
        pnl = np.sum([s.pnl for s in series], axis=0)
        exposed = np.any([s.exposed for s in series], axis=0)
        return Curve(np.asarray(series[0].ts, np.int64), start_cash + pnl, exposed)
    # a stable sort merges the already-sorted series in linear time; a time shared
    # by several symbols becomes one grid point, taken at the last of its copies
    times = np.concatenate([s.ts for s in series]).astype(np.int64, copy=False)
    order = np.argsort(times, kind="stable")
    owner = np.repeat(np.arange(len(series)), [s.bars for s in series])[order]
    merged = times[order]
    last_copy = np.append(merged[1:] != merged[:-1], True)
    pnl = np.zeros(np.count_nonzero(last_copy))
    exposed = np.zeros(len(pnl), dtype=bool)
    for k, s in enumerate(series):
        # index of the symbol's latest bar at or before each grid time; -1 before its first
        latest = (np.cumsum(owner == k) - 1)[last_copy]
        started = latest >= 0
        pnl += np.where(started, s.pnl[latest], 0.0)
        exposed |= started & s.exposed[latest]
    return Curve(merged[last_copy], start_cash + pnl, exposed)


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Fractional distance below the running peak (0 where the peak is not positive)."""
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, 1.0 - equity / peak, 0.0)


def sorted_trades(result: RunResult) -> list[RoundTrip]:
    """All round trips by exit time, then symbol (stable within a symbol)."""
    trades = [t for s in result.symbols.values() for t in s.trades]
    return sorted(trades, key=lambda t: (t.exit_ts, t.symbol))


def _ratio(mean: float, deviation: float, periods: float | None) -> float | None:
    if periods is None or not deviation > 0:
        return None
    return number(mean / deviation * math.sqrt(periods))


def _curve_stats(curve: Curve, start_cash: float, periods_per_year: float | None) -> dict:
    """Return, risk and drawdown figures of one equity curve."""
    ts, equity, n = curve.ts, curve.equity, len(curve.ts)
    final = float(equity[-1]) if n else start_cash
    step = float(np.median(np.diff(ts))) / NS_PER_SECOND if n > 1 else None
    periods = periods_per_year or (SECONDS_PER_YEAR / step if step else None)
    stats: dict[str, Any] = {
        "final_equity": number(final),
        "pnl": number(final - start_cash),
        "total_return": number((final - start_cash) / start_cash) if start_cash else None,
        "bar_seconds": number(step),
        "periods_per_year": number(periods),
        "cagr": None,
        "sharpe": None,
        "sortino": None,
        "exposure": number(np.count_nonzero(curve.exposed) / n) if n else None,
        "max_drawdown": None,
        "max_drawdown_bars": None,
        "max_drawdown_seconds": None,
    }
    if n == 0:
        return stats
    dd = drawdown(equity)
    stats["max_drawdown"] = number(dd.max())
    under = np.flatnonzero(dd > 0)
    if len(under):
        peak_bar = np.maximum.accumulate(np.where(dd > 0, 0, np.arange(n)))[under]
        end_bar = np.minimum(under + 1, n - 1)
        stats["max_drawdown_bars"] = int((end_bar - peak_bar).max())
        stats["max_drawdown_seconds"] = number((ts[end_bar] - ts[peak_bar]).max() / NS_PER_SECOND)
    else:
        stats["max_drawdown_bars"] = 0
        stats["max_drawdown_seconds"] = 0.0
    if periods and n > 1 and start_cash > 0 and final > 0:
        with np.errstate(over="ignore"):
            stats["cagr"] = number(np.power(final / start_cash, periods / (n - 1)) - 1.0)
    if n > 2 and np.all(equity[:-1] > 0):
        r = equity[1:] / equity[:-1] - 1.0
        mean = float(r.mean())
        stats["sharpe"] = _ratio(mean, float(r.std(ddof=1)), periods)
        stats["sortino"] = _ratio(mean, math.sqrt(np.mean(np.minimum(r, 0.0) ** 2)), periods)
    return stats


def _trade_stats(trades: list[RoundTrip]) -> dict:
    """Win rate, profit factor and per-trade figures of closed round trips."""
    pnls = [t.pnl for t in trades]
    if not pnls:
        return dict.fromkeys(
            ("win_rate", "profit_factor", "avg_trade_pnl", "best_trade_pnl", "worst_trade_pnl")
        ) | {"trades": 0}
    gains = sum((p for p in pnls if p > 0), Decimal(0))
    losses = -sum((p for p in pnls if p < 0), Decimal(0))
    return {
        "trades": len(pnls),
        "win_rate": number(sum(1 for p in pnls if p > 0) / len(pnls)),
        "profit_factor": number(gains / losses) if losses else None,
        "avg_trade_pnl": number(sum(pnls, Decimal(0)) / len(pnls)),
        "best_trade_pnl": number(max(pnls)),
        "worst_trade_pnl": number(min(pnls)),
    }


def _span(ts: np.ndarray) -> dict[str, str | None]:
    first, last = iso_times(ts[[0, -1]]) if len(ts) else (None, None)
    return {"first_bar": first, "last_bar": last}


def summarize(result: RunResult, periods_per_year: float | None = None) -> dict:
    """The run's summary as JSON-safe data (see the module docstring for definitions)."""
    start_cash = float(result.start_cash)
    per_symbol = {}
    for name, s in result.symbols.items():
        curve = Curve(np.asarray(s.ts), start_cash + np.asarray(s.pnl, float), s.exposed)
        per_symbol[name] = {
            **_curve_stats(curve, start_cash, periods_per_year),
            **_trade_stats(s.trades),
            **_span(curve.ts),
            "bars": s.bars,
            "orders": s.orders,
            "fills": s.fills,
            "halted": s.halted,
            "errors": list(s.errors),
            "final_state": s.final_state,
            "position_qty": str(s.position_qty),
        }
    symbols = result.symbols.values()
    total = total_curve(result)
    return {
        "strategy": result.strategy,
        "mode": result.mode,
        "start_cash": number(result.start_cash),
        "symbols": list(result.symbols),
        "source": json_safe(result.source_stats),
        "params": json_safe(result.params),
        **_span(total.ts),
        "total": {
            **_curve_stats(total, start_cash, periods_per_year),
            **_trade_stats(sorted_trades(result)),
            "bars": sum(s.bars for s in symbols),
            "orders": sum(s.orders for s in symbols),
            "fills": sum(s.fills for s in symbols),
            "halted": {s.symbol: s.halted for s in symbols if s.halted},
            "errors": [f"{s.symbol}: {e}" for s in symbols for e in s.errors],
        },
        "per_symbol": per_symbol,
    }
