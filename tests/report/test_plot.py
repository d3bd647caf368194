"""The report chart: an equity line per symbol and the total, trades marked,
one trade lane per symbol, the drawdown in percent; bounded whatever the run."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from engine_core.model import RoundTrip, Side
from engine_core.report.metrics import Drawdown, total_curve
from engine_core.report.plot import (
    LANE_LIMIT,
    LANE_PIXELS,
    MARK_LIMIT,
    MAX_POINTS,
    ChartData,
    Downsampler,
    chart_figure,
    symbol_line,
)


def chart(result):
    """The figure write_report draws for a run."""
    total = total_curve(result)
    start = float(result.start_cash)
    lines = [symbol_line(s, start) for s in result.symbols.values() if s.bars]
    equity, dd = Downsampler(len(total.ts)), Downsampler(len(total.ts))
    equity.add(total.ts, total.equity)
    dd.add(total.ts, Drawdown()(total.equity))
    return chart_figure(ChartData(*equity.points(), *dd.points(), lines))


def labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_a_line_per_symbol_and_the_total_with_entries_and_exits_marked(build):
    btc = build.symbol(
        "BTC",
        [0, 1, 2, 3, 4],
        [0, 10, -1, 20, 15],
        trades=[build.trip("BTC", "20", 3, reason="stop_loss"), build.trip("BTC", "-5", 4, Side.SELL)],
    )
    eth = build.symbol(
        "ETH", [0, 1, 2, 3, 4], [0, 2, 4, 6, 8], trades=[build.trip("ETH", "8", 4, reason="take_profit")]
    )
    fig = chart(build.run(btc, eth))
    equity, lanes, dd = fig.axes
    assert labels(equity) == ["BTC", "ETH", "Total"]
    assert equity.get_lines()[2].get_ydata().tolist() == [100, 112, 103, 126, 123]
    assert legend(equity) == ["BTC", "ETH", "Total", "entry", "exit"]
    # markers on each symbol's line: entries (long, short) then exits, at its equity on those bars
    points = [c.get_offsets() for c in equity.collections]
    entries_btc = np.concatenate(points[0:2])
    assert sorted(entries_btc[:, 1].tolist()) == [100.0, 100.0]  # both entered on bar 0
    assert points[2][:, 1].tolist() == [120.0, 115.0]  # BTC exits on bars 3 and 4
    assert points[5][:, 1].tolist() == [108.0]  # ETH exit on bar 4
    # a lane per symbol, top to bottom in configured order, with the stops' kinds in its legend
    assert [t.get_text() for t in lanes.get_yticklabels()] == ["ETH", "BTC"]
    assert legend(lanes) == ["won", "lost", "stop-loss exit", "take-profit exit"]
    assert dd.get_ylabel() == "Drawdown (%)"
    tick = dd.yaxis.get_major_formatter()(-5.0, 0).replace("\u2212", "-")  # matplotlib's minus sign
    assert tick.startswith("-5") and tick.endswith("%")
    assert np.allclose(dd.get_lines()[0].get_ydata()[:4], [0.0, 0.0, -100 * 9 / 112, 0.0])


def test_one_symbol_is_the_total(build):
    fig = chart(build.run(build.symbol("BTC", [0, 1, 2], [0, 1, 2])))
    assert labels(fig.axes[0]) == ["BTC (= total)"]
    assert legend(fig.axes[1]) == ["won", "lost"]  # no stop exits, no stop legend


def test_many_symbols_stay_readable(build):
    symbols = [
        build.symbol(f"S{k:02d}", [0, 1, 2], [0, k, -k], trades=[build.trip(f"S{k:02d}", "1", 2)]) for k in range(12)
    ]
    fig = chart(build.run(*symbols))
    equity, lanes, _ = fig.axes
    assert legend(equity) == ["12 symbols", "Total"]  # grey lines, no colour per symbol, no markers
    assert not equity.collections
    assert len(lanes.get_yticklabels()) == 12
    many = [build.symbol(f"S{k:02d}", [0, 1], [0, k]) for k in range(LANE_LIMIT + 1)]
    assert len(chart(build.run(*many)).axes) == 2  # equity and drawdown: too many for lanes


def test_the_chart_stays_bounded_on_a_long_run(build):
    n, step = 200_000, 10
    ts = build.T0 + np.arange(n, dtype=np.int64) * build.MINUTE
    pnl = np.cumsum(np.random.default_rng(1).normal(0, 1, n))
    trades = [
        RoundTrip("A", Side.BUY, Decimal(1), int(ts[i]), Decimal(100), int(ts[i + step - 2]), Decimal(101),
                  Decimal(1 if i % 3 else -1), Decimal(0), "stop_loss" if i % 7 == 0 else "exit")
        for i in range(0, n - step, step)
    ]  # fmt: skip
    result = build.run(build.symbol("A", [0], [0.0]), start_cash="100000")
    a = result.symbols["A"]
    a.ts, a.pnl, a.exposed, a.trades = ts, pnl, np.zeros(n, bool), trades
    assert len(trades) > MARK_LIMIT
    equity, lanes, dd = chart(result).axes
    assert all(len(line.get_xdata()) <= MAX_POINTS for ax in (equity, dd) for line in ax.get_lines())
    assert not equity.collections  # too many trades to mark on the line: the lane shows them
    bars = sum(len(c.get_paths()) for c in lanes.collections if c.__class__.__name__ == "PolyCollection")
    marks = sum(len(c.get_offsets()) for c in lanes.collections if c.__class__.__name__ == "PathCollection")
    assert 0 < bars <= 2 * LANE_PIXELS + 2 and 0 < marks <= LANE_PIXELS + 1
