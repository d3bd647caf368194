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
- the curve spans ``(n - 1) / P`` years: ``span_days = (n - 1) / P * 365``.
  ``annualized`` is whether it spans at least MIN_ANNUALIZED_DAYS (90 days):
  a shorter run's figures are not scaled to a year, since a two-week result
  raised to the 26th power says nothing about a year.
- ``cagr = (E[n-1] / start_cash) ** (P / (n - 1)) - 1`` when annualized,
  else None (``total_return`` is the period's return).
- per-period returns ``r[i] = E[i] / E[i-1] - 1`` for ``i >= 1``.
- ``ratio_periods`` (F): ``P`` when annualized, else ``n - 1`` (the ratios
  are then over the run's whole span, not per year).
- ``sharpe = mean(r) / std(r, ddof=1) * sqrt(F)``.
- ``sortino = mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(F)``; the
  denominator (downside deviation over all periods, target 0) is
  backtesting.py's. Unlike backtesting.py, which resamples to daily returns
  and uses their geometric mean, both ratios here use the arithmetic mean of
  per-bar returns.
- ``returns = n - 1``. Sharpe and Sortino need at least
  ``ratio_min_returns = max(30, ceil(P / 52))`` of them: 30 returns, and at
  least a week of them at the curve's bar interval (10,108 one-minute bars;
  30 daily bars at P = 365). With fewer they are None: annualising a few
  days or a handful of bars multiplies their noise by ``sqrt(P / returns)``
  (the standard error of an annualised Sharpe ratio is about that).
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

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from engine_core.model import NS_PER_SECOND, SECONDS_PER_YEAR, RoundTrip, fraction_digits, iso_utc
from engine_core.results import RunResult, SymbolResult

SIGNIFICANT_DIGITS = 10
MIN_RATIO_RETURNS = 30
"""The fewest returns Sharpe and Sortino are given for, whatever the bar interval."""
MIN_RATIO_WEEKS = 1
"""The shortest span of returns, in weeks (of ``P / 52`` periods), they are given for."""
MIN_ANNUALIZED_DAYS = 90
"""The shortest span figures are annualised for (CAGR; Sharpe and Sortino per year)."""


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


BLOCK = 1 << 16  # rows per block of the streamed total curve and of drawdown scans


def _sorted(ts: np.ndarray) -> bool:
    """Whether bar times never decrease (checked in blocks, without an n-long temporary)."""
    return all(not np.any(np.diff(ts[i : i + BLOCK + 1]) < 0) for i in range(0, len(ts), BLOCK))


def _merge_window(series: list, cuts: list[tuple[int, int]], start_cash: float) -> Curve:
    """The total curve on the times of ``series[k].ts[lo:hi]`` for each ``(lo, hi)`` in cuts.

    The windows must hold every bar of every symbol between their first and last time.
    """
    times = np.concatenate([s.ts[lo:hi] for s, (lo, hi) in zip(series, cuts)])
    times = times.astype(np.int64, copy=False)
    # a stable sort merges the already-sorted series in linear time; a time shared
    # by several symbols becomes one grid point, taken at the last of its copies
    order = np.argsort(times, kind="stable")
    owner = np.repeat(np.arange(len(series)), [hi - lo for lo, hi in cuts])[order]
    merged = times[order]
    last_copy = np.append(merged[1:] != merged[:-1], True)
    pnl = np.zeros(np.count_nonzero(last_copy))
    exposed = np.zeros(len(pnl), dtype=bool)
    for k, (s, (lo, _)) in enumerate(zip(series, cuts)):
        # index of the symbol's latest bar at or before each grid time; -1 before its first
        latest = (np.cumsum(owner == k) + (lo - 1))[last_copy]
        started = latest >= 0
        pnl += np.where(started, s.pnl[latest], 0.0)
        exposed |= started & s.exposed[latest]
    return Curve(merged[last_copy], start_cash + pnl, exposed)


def total_curve_blocks(result: RunResult, block: int = BLOCK) -> Iterator[Curve]:
    """The total curve of :func:`total_curve` in consecutive pieces of about ``block`` rows.

    Memory stays bounded by the block size whatever the length of the run.
    """
    series = [s for s in result.symbols.values() if s.bars]
    if not series:
        return
    start_cash = float(result.start_cash)
    if all(np.array_equal(s.ts, series[0].ts) for s in series[1:]):
        ts = np.asarray(series[0].ts, np.int64)
        for i in range(0, len(ts), block):
            rows = slice(i, i + block)
            pnl = np.sum([s.pnl[rows] for s in series], axis=0)
            exposed = np.any([s.exposed[rows] for s in series], axis=0)
            yield Curve(ts[rows], start_cash + pnl, exposed)
        return
    if not all(_sorted(s.ts) for s in series):
        yield _merge_window(series, [(0, s.bars) for s in series], start_cash)
        return
    # windows of times up to the earliest of the symbols' next ``block``-th bar time:
    # every window holds all bars of all symbols in its time span
    lows = [0] * len(series)
    while True:
        live = [k for k, s in enumerate(series) if lows[k] < s.bars]
        if not live:
            return
        cut = min(series[k].ts[min(lows[k] + block, series[k].bars) - 1] for k in live)
        highs = [int(np.searchsorted(s.ts, cut, side="right")) for s in series]
        yield _merge_window(series, list(zip(lows, highs)), start_cash)
        lows = highs


def total_curve(result: RunResult) -> Curve:
    """The run's total equity on the union of all symbols' bar times."""
    blocks = total_curve_blocks(result)
    first = next(blocks, None)
    if first is None:
        return Curve(np.empty(0, np.int64), np.empty(0), np.empty(0, bool))
    second = next(blocks, None)
    if second is None:
        return first
    series = [s for s in result.symbols.values() if s.bars]
    same_times = all(np.array_equal(s.ts, series[0].ts) for s in series[1:])
    # filled in place: pages past the end of the grid are never touched, so never resident
    size = series[0].bars if same_times else sum(s.bars for s in series)
    ts = np.asarray(series[0].ts, np.int64) if same_times else np.empty(size, np.int64)
    equity = np.empty(size)
    exposed = np.empty(size, bool)
    n = 0
    for piece in itertools.chain([first, second], blocks):
        rows = slice(n, n + len(piece.ts))
        equity[rows], exposed[rows] = piece.equity, piece.exposed
        if not same_times:
            ts[rows] = piece.ts
        n = rows.stop
    return Curve(ts[:n], equity[:n], exposed[:n])


class Drawdown:
    """The fractional distance below the running peak (0 where the peak is not
    positive) of a curve fed in consecutive pieces, carrying the peak."""

    def __init__(self) -> None:
        self.peak = -np.inf

    def __call__(self, equity: np.ndarray) -> np.ndarray:
        peak = np.maximum.accumulate(equity)
        if len(peak):
            np.maximum(peak, self.peak, out=peak)
            self.peak = peak[-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            dd = np.divide(equity, peak)
            np.subtract(1.0, dd, out=dd)
            return np.where(peak > 0, dd, 0.0)


def sorted_trades(result: RunResult) -> list[RoundTrip]:
    """All round trips by exit time, then symbol (stable within a symbol)."""
    trades = [t for s in result.symbols.values() for t in s.trades]
    if len({t.symbol for t in trades}) <= 1 and all(a.exit_ts <= b.exit_ts for a, b in itertools.pairwise(trades)):
        return trades  # one symbol's, in exit order already (as they closed): no sort keys made
    return sorted(trades, key=lambda t: (t.exit_ts, t.symbol))


def ratio_min_returns(periods_per_year: float | None) -> int | None:
    """The fewest returns a curve needs for Sharpe and Sortino (None: cannot annualise)."""
    if not periods_per_year:
        return None
    return max(MIN_RATIO_RETURNS, math.ceil(periods_per_year * MIN_RATIO_WEEKS / 52))


def _ratio(mean: float, deviation: float, periods: float | None) -> float | None:
    if periods is None or not deviation > 0:
        return None
    return number(mean / deviation * math.sqrt(periods))


def _std(r: np.ndarray) -> float:
    """``r.std(ddof=1)``, the same float, computed in place: r is left overwritten."""
    n = len(r)
    mean = np.add.reduce(r, keepdims=True) / n
    np.subtract(r, mean, out=r)
    np.square(r, out=r)
    return float(np.sqrt(np.add.reduce(r) / (n - 1)))


class EquityBlocks:
    """A curve's equity read a block of rows at a time: ``start + pnl[lo:hi]``,
    made per block (so that no n-long equity array is held beside the
    returns), or ``pnl[lo:hi]`` itself when ``start`` is None (an equity
    array made already). Each value is the one ``start + pnl`` would hold."""

    def __init__(self, pnl: np.ndarray, start: float | None) -> None:
        self.pnl = pnl
        self.start = start

    def __len__(self) -> int:
        return len(self.pnl)

    def __call__(self, lo: int, hi: int) -> np.ndarray:
        values = self.pnl[lo:hi]
        return values if self.start is None else self.start + values


def _returns(equity: EquityBlocks) -> np.ndarray:
    """Per-period returns ``equity[1:] / equity[:-1] - 1`` in one new array
    (the equity read in blocks)."""
    n = len(equity)
    r = np.empty(max(n - 1, 0))
    for lo in range(0, n - 1, BLOCK):
        hi = min(lo + BLOCK, n - 1)
        e = equity(lo, hi + 1)
        np.divide(e[1:], e[:-1], out=r[lo:hi])
    np.subtract(r, 1.0, out=r)
    return r


def _drawdown_stats(ts: np.ndarray, equity: EquityBlocks) -> dict:
    """Maximum drawdown and the longest drawdown period, scanning the curve in blocks."""
    n = len(equity)
    dd_of = Drawdown()
    deepest = []
    last_top = 0  # the latest bar not under water (its own peak)
    longest_bars = longest_ns = None
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        dd = dd_of(equity(start, stop))
        deepest.append(dd.max())
        below = dd > 0
        under = np.flatnonzero(below)
        if not len(under):
            last_top = stop - 1
            continue
        tops = np.where(below, 0, np.arange(start, stop))
        np.maximum.accumulate(tops, out=tops)
        np.maximum(tops, last_top, out=tops)
        last_top = int(tops[-1])
        peak_bar = tops[under]
        under += start
        end_bar = np.minimum(under + 1, n - 1)
        bars = (end_bar - peak_bar).max()
        spans = (ts[end_bar] - ts[peak_bar]).max()
        longest_bars = bars if longest_bars is None else max(longest_bars, bars)
        longest_ns = spans if longest_ns is None else max(longest_ns, spans)
    stats: dict[str, Any] = {"max_drawdown": number(np.max(deepest))}
    if longest_bars is None or longest_ns is None:
        stats["max_drawdown_bars"] = 0
        stats["max_drawdown_seconds"] = 0.0
    else:
        stats["max_drawdown_bars"] = int(longest_bars)
        stats["max_drawdown_seconds"] = number(longest_ns / NS_PER_SECOND)
    return stats


def _curve_stats(
    ts: np.ndarray, equity: EquityBlocks, exposed: np.ndarray, start_cash: float, periods_per_year: float | None
) -> dict:
    """Return, risk and drawdown figures of one equity curve.

    Temporaries are at most one n-long array at a time (the bar intervals,
    then the returns), beside no equity array when ``equity`` adds the
    starting cash per block; the drawdown is scanned in blocks.
    """
    n = len(ts)
    final = float(equity(n - 1, n)[0]) if n else start_cash
    step = float(np.median(np.diff(ts), overwrite_input=True)) / NS_PER_SECOND if n > 1 else None
    periods = periods_per_year or (SECONDS_PER_YEAR / step if step else None)
    span_days = (n - 1) / periods * 365 if periods and n > 1 else None
    annualized = span_days is not None and span_days >= MIN_ANNUALIZED_DAYS
    factor = periods if annualized else (n - 1 if n > 1 else None)
    stats: dict[str, Any] = {
        "final_equity": number(final),
        "pnl": number(final - start_cash),
        "total_return": number((final - start_cash) / start_cash) if start_cash else None,
        "bar_seconds": number(step),
        "periods_per_year": number(periods),
        "span_days": number(span_days),
        "annualized": annualized,
        "ratio_periods": number(factor),
        "cagr": None,
        "sharpe": None,
        "sortino": None,
        "returns": max(n - 1, 0),
        "ratio_min_returns": ratio_min_returns(periods),
        "exposure": number(np.count_nonzero(exposed) / n) if n else None,
        "max_drawdown": None,
        "max_drawdown_bars": None,
        "max_drawdown_seconds": None,
    }
    if n == 0:
        return stats
    stats |= _drawdown_stats(ts, equity)
    if annualized and periods and start_cash > 0 and final > 0:
        with np.errstate(over="ignore"):
            stats["cagr"] = number(np.power(final / start_cash, periods / (n - 1)) - 1.0)
    need = stats["ratio_min_returns"]
    # every value but the last (which may be anything) positive
    if (
        need is not None
        and n - 1 >= need
        and all(np.all(equity(i, min(i + BLOCK, n - 1)) > 0) for i in range(0, n - 1, BLOCK))
    ):
        r = _returns(equity)
        mean = float(r.mean())
        stats["sharpe"] = _ratio(mean, _std(r), factor)
        del r  # _std overwrote it: computed again, without holding both
        r = _returns(equity)
        np.minimum(r, 0.0, out=r)
        np.square(r, out=r)
        stats["sortino"] = _ratio(mean, math.sqrt(np.mean(r)), factor)
    return stats


def _trade_stats(trades: list[RoundTrip]) -> dict:
    """Win rate, profit factor and per-trade figures of closed round trips."""
    pnls = [t.pnl for t in trades]
    if not pnls:
        return dict.fromkeys(("win_rate", "profit_factor", "avg_trade_pnl", "best_trade_pnl", "worst_trade_pnl")) | {
            "trades": 0
        }
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
    if not len(ts):
        return {"first_bar": None, "last_bar": None}
    digits = fraction_digits(ts[[0, -1]])
    return {"first_bar": iso_utc(int(ts[0]), digits), "last_bar": iso_utc(int(ts[-1]), digits)}


def _symbol_curve_stats(s: SymbolResult, start_cash: float, periods_per_year: float | None) -> dict:
    """The figures of a symbol's equity curve, ``start_cash + pnl`` (added per block)."""
    equity = EquityBlocks(np.asarray(s.pnl, float), start_cash)
    return _curve_stats(np.asarray(s.ts), equity, s.exposed, start_cash, periods_per_year)


def _symbol_summary(s: SymbolResult, curve_stats: dict) -> dict:
    return {
        **curve_stats,
        **_trade_stats(s.trades),
        **_span(np.asarray(s.ts)),
        "bars": s.bars,
        "orders": s.orders,
        "fills": s.fills,
        "halted": s.halted,
        "errors": list(s.errors),
        "final_state": s.final_state,
        "position_qty": str(s.position_qty),
    }


def summarize(result: RunResult, periods_per_year: float | None = None) -> dict:
    """The run's summary as JSON-safe data (see the module docstring for definitions)."""
    start_cash = float(result.start_cash)
    curves = {name: _symbol_curve_stats(s, start_cash, periods_per_year) for name, s in result.symbols.items()}
    per_symbol = {name: _symbol_summary(s, curves[name]) for name, s in result.symbols.items()}
    symbols = result.symbols.values()
    traded = [name for name, s in result.symbols.items() if s.bars]
    if len(traded) == 1:  # the total curve is that symbol's (total_curve's values), its figures too
        ts, total_stats = np.asarray(result.symbols[traded[0]].ts), curves[traded[0]]
    else:
        total = total_curve(result)
        ts = total.ts
        total_stats = _curve_stats(ts, EquityBlocks(total.equity, None), total.exposed, start_cash, periods_per_year)
    return {
        "strategy": result.strategy,
        "mode": result.mode,
        "start_cash": number(result.start_cash),
        "symbols": list(result.symbols),
        "source": json_safe(result.source_stats),
        "params": json_safe(result.params),
        **({"sinks": json_safe(result.sink_stats)} if result.sink_stats else {}),
        **_span(ts),
        "total": {
            **total_stats,
            **_trade_stats(sorted_trades(result)),
            "bars": sum(s.bars for s in symbols),
            "orders": sum(s.orders for s in symbols),
            "fills": sum(s.fills for s in symbols),
            "halted": {s.symbol: s.halted for s in symbols if s.halted},
            "errors": [f"{s.symbol}: {e}" for s in symbols for e in s.errors],
        },
        "per_symbol": per_symbol,
    }
