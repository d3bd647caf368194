from __future__ import annotations

import math

import numpy as np
import pytest

from engine_core.report import metrics
from engine_core.report.metrics import summarize, total_curve


def test_drawdown_depth_and_duration(build):
    # equity 100, 110, 99, 120: 10% below the 110 peak, regained two bars later
    s = summarize(build.run(build.symbol("BTC", [0, 1, 2, 3], [0, 10, -1, 20], [False, True, True, False])))
    figures = s["per_symbol"]["BTC"]
    assert figures["max_drawdown"] == 0.1
    assert figures["max_drawdown_bars"] == 2
    assert figures["max_drawdown_seconds"] == 120.0
    assert figures["pnl"] == 20.0
    assert figures["final_equity"] == 120.0
    assert figures["total_return"] == 0.2
    assert figures["exposure"] == 0.5
    assert figures["bar_seconds"] == 60.0
    assert figures["periods_per_year"] == 525_600.0


def test_unrecovered_drawdown_lasts_to_the_last_bar(build):
    figures = summarize(build.run(build.symbol("BTC", [0, 1, 2, 5], [0, 10, -1, 5])))["per_symbol"]["BTC"]
    assert figures["max_drawdown"] == 0.1
    assert figures["max_drawdown_bars"] == 2
    assert figures["max_drawdown_seconds"] == 240.0


def known_returns(build, repeats: int):
    """Equity 100 with returns +10%, -10%, +10% repeated: mean 1/30, downside dev sqrt(1/300)."""
    equity = 100 * np.cumprod([1.0] + [1.1, 0.9, 1.1] * repeats)
    return build.run(build.symbol("BTC", list(range(len(equity))), list(equity - 100)))


def test_sharpe_sortino_cagr_on_known_returns(build):
    # 30 returns at 120 a year: a quarter of a year (91.25 days), long enough to annualise
    figures = summarize(known_returns(build, 10), periods_per_year=120)["total"]
    # 30 returns: population variance 8/900, sample variance 8/900 * 30/29
    assert figures["returns"] == 30 and figures["ratio_min_returns"] == 30
    assert figures["annualized"] is True and figures["ratio_periods"] == 120
    assert figures["span_days"] == 91.25
    assert figures["sharpe"] == pytest.approx((1 / 30) / math.sqrt(8 / 900 * 30 / 29) * math.sqrt(120), rel=1e-9)
    assert figures["sortino"] == pytest.approx((1 / 30) / math.sqrt(1 / 300) * math.sqrt(120), rel=1e-9)
    assert figures["cagr"] == pytest.approx(1.089 ** (10 * 120 / 30) - 1, rel=1e-9)
    assert figures["periods_per_year"] == 120


def test_a_run_shorter_than_90_days_is_not_annualised(build):
    # the same 30 returns at 360 a year span a month: no CAGR, ratios over the run (sqrt(30), not sqrt(360))
    figures = summarize(known_returns(build, 10), periods_per_year=360)["total"]
    assert figures["annualized"] is False and figures["span_days"] == pytest.approx(30 / 360 * 365)
    assert figures["cagr"] is None
    assert figures["total_return"] == pytest.approx(1.089**10 - 1, rel=1e-9)
    assert figures["ratio_periods"] == 30
    assert figures["sharpe"] == pytest.approx((1 / 30) / math.sqrt(8 / 900 * 30 / 29) * math.sqrt(30), rel=1e-9)
    assert figures["sortino"] == pytest.approx((1 / 30) / math.sqrt(1 / 300) * math.sqrt(30), rel=1e-9)
    # two weeks of one-minute bars that return 3.07%: the shipped sample's shape
    minutes = np.arange(20_000)
    equity = 100 * (1 + 0.0307 * minutes / minutes[-1] + 0.001 * np.sin(minutes / 50.0))
    figures = summarize(build.run(build.symbol("BTC", list(minutes), list(equity - 100))))["total"]
    assert figures["total_return"] == pytest.approx(equity[-1] / 100 - 1) and 0.02 < figures["total_return"] < 0.04
    assert figures["cagr"] is None and figures["annualized"] is False
    assert figures["span_days"] == pytest.approx(19_999 / 1440)
    assert figures["sharpe"] is not None and figures["ratio_periods"] == 19_999


def test_sharpe_and_sortino_need_30_returns_and_a_week_of_them(build):
    assert metrics.ratio_min_returns(365) == 30  # 30 daily bars (a week is fewer)
    assert metrics.ratio_min_returns(525_600) == 10_108  # a week of one-minute bars
    assert metrics.ratio_min_returns(52) == 30
    for returns, periods, shown in ((29, 12, False), (30, 12, True), (30, 1561, False), (31, 1612, True)):
        result = known_returns(build, 11)
        result.symbols["BTC"].ts = result.symbols["BTC"].ts[: returns + 1]
        result.symbols["BTC"].pnl = result.symbols["BTC"].pnl[: returns + 1]
        result.symbols["BTC"].exposed = result.symbols["BTC"].exposed[: returns + 1]
        summary = summarize(result, periods_per_year=periods)
        for figures in (summary["total"], summary["per_symbol"]["BTC"]):
            assert (figures["sharpe"] is not None, figures["sortino"] is not None) == (shown, shown), (returns, periods)
            assert (figures["cagr"] is not None) == (returns / periods * 365 >= 90)  # the other figures stay
    # three days of one-minute bars: no annualised ratio, whatever the curve
    minutes = build.run(build.symbol("BTC", list(range(4_320)), list(np.sin(np.arange(4_320) / 50.0))))
    figures = summarize(minutes)["total"]
    assert figures["sharpe"] is None and figures["sortino"] is None
    assert figures["returns"] == 4_319 and figures["ratio_min_returns"] == 10_108
    # two weeks of them (the shipped sample data) have both
    weeks = build.run(build.symbol("BTC", list(range(20_000)), list(np.sin(np.arange(20_000) / 50.0))))
    figures = summarize(weeks)["total"]
    assert figures["sharpe"] is not None and figures["sortino"] is not None


def test_trade_figures(build):
    pnls = ["10", "-5", "20", "-5", "0"]
    result = build.run(
        build.symbol("BTC", [0, 1], [0, 20], trades=[build.trip("BTC", p, i) for i, p in enumerate(pnls)])
    )
    figures = summarize(result)["total"]
    assert figures["trades"] == 5
    assert figures["win_rate"] == 0.4
    assert figures["profit_factor"] == 3.0
    assert figures["avg_trade_pnl"] == 4.0
    assert figures["best_trade_pnl"] == 20.0
    assert figures["worst_trade_pnl"] == -5.0


def test_profit_factor_without_losses_is_null(build):
    result = build.run(build.symbol("BTC", [0, 1], [0, 3], trades=[build.trip("BTC", "3", 1)]))
    assert summarize(result)["total"]["profit_factor"] is None


def test_total_curve_forward_fills_symbols_on_the_union_of_times(build):
    a = build.symbol("A", [0, 1, 2], [0, 5, 10], [False, True, False])
    b = build.symbol("B", [1, 1.5, 3], [1, -2, 3], [True, False, False])
    curve = total_curve(build.run(a, b))
    minute = build.MINUTE
    assert (curve.ts - build.T0).tolist() == [0, minute, minute * 3 // 2, 2 * minute, 3 * minute]
    assert curve.equity.tolist() == [100, 106, 103, 108, 113]
    assert curve.exposed.tolist() == [False, True, True, False, False]
    s = summarize(build.run(a, b))
    assert s["total"]["pnl"] == 13.0
    assert s["total"]["bars"] == 6
    assert s["total"]["exposure"] == 0.4
    assert s["first_bar"] == "2024-01-01T00:00:00Z"
    assert s["last_bar"] == "2024-01-01T00:03:00Z"


def test_total_curve_of_symbols_on_the_same_times_is_the_sum(build):
    a = build.symbol("A", [0, 1, 2], [0, 5, 10])
    b = build.symbol("B", [0, 1, 2], [0, -1, 1], [False, True, True])
    curve = total_curve(build.run(a, b))
    assert curve.equity.tolist() == [100, 104, 111]
    assert curve.exposed.tolist() == [False, True, True]


def test_a_run_without_trades_has_nulls_not_errors(build):
    s = summarize(build.run(build.symbol("BTC", [0, 1, 2], [0, 0, 0]), build.symbol("ETH", [], [])))
    btc, eth = s["per_symbol"]["BTC"], s["per_symbol"]["ETH"]
    assert btc["trades"] == 0
    for key in ("win_rate", "profit_factor", "avg_trade_pnl", "sharpe", "sortino"):
        assert btc[key] is None
    assert btc["max_drawdown"] == 0.0 and btc["max_drawdown_bars"] == 0
    assert eth["bars"] == 0 and eth["pnl"] == 0.0 and eth["first_bar"] is None
    assert eth["max_drawdown"] is None and eth["exposure"] is None


def test_an_empty_run(build):
    s = summarize(build.run())
    assert s["symbols"] == [] and s["first_bar"] is None
    assert s["total"]["bars"] == 0 and s["total"]["final_equity"] == 100.0


def test_summary_header_and_json_safety(build):
    halted = build.symbol("BTC", [0, 1], [0, 1], halted="strategy error", errors=["boom"])
    s = summarize(build.run(halted))
    assert s["strategy"] == "demo.lua" and s["mode"] == "backtest" and s["start_cash"] == 100.0
    assert s["symbols"] == ["BTC"]
    assert s["source"] == {"bars": 2}
    assert s["params"] == {"fast": 5, "size": "0.5"}
    assert s["total"]["halted"] == {"BTC": "strategy error"}
    assert s["total"]["errors"] == ["BTC: boom"]
    assert s["per_symbol"]["BTC"]["position_qty"] == "0"


def test_number_rounds_to_ten_significant_digits():
    assert metrics.number(1 / 3) == 0.3333333333
    assert metrics.number(float("inf")) is None
    assert metrics.number(float("nan")) is None
    assert metrics.json_safe({1: (np.float64(2.5), np.int64(3))}) == {"1": [2.5, 3]}


def test_returns_read_in_blocks_are_those_of_the_whole_equity_array():
    # across block edges, each return is the one the n-long equity array gives, to the bit
    rng = np.random.default_rng(7)
    pnl = np.cumsum(rng.normal(0, 1, 3 * metrics.BLOCK + 5))
    equity = 1000.0 + pnl
    whole = equity[1:] / equity[:-1] - 1
    assert np.array_equal(metrics._returns(metrics.EquityBlocks(pnl, 1000.0)), whole)
    assert np.array_equal(metrics._returns(metrics.EquityBlocks(equity, None)), whole)
    assert len(metrics._returns(metrics.EquityBlocks(pnl[:1], 1000.0))) == 0


def test_one_symbols_total_figures_are_those_of_the_total_curve(build):
    # summarize takes one symbol's total figures from the symbol's own; they are
    # the figures of the total curve that total_curve makes
    rng = np.random.default_rng(3)
    n = metrics.BLOCK + 100
    pnl = list(np.cumsum(rng.normal(0, 1, n)))
    result = build.run(build.symbol("BTC", list(range(n)), pnl, list(rng.random(n) > 0.5)))
    total = summarize(result)["total"]
    curve = total_curve(result)
    equity = metrics.EquityBlocks(curve.equity, None)
    expected = metrics._curve_stats(curve.ts, equity, curve.exposed, 100.0, None)
    assert {k: total[k] for k in expected} == expected
    assert total["sharpe"] is not None and total["max_drawdown"] is not None


def test_trades_come_by_exit_time_whether_one_symbol_or_several(build):
    a1, a2, a3 = build.trip("A", "1", 3), build.trip("A", "2", 5), build.trip("A", "3", 4)
    b1 = build.trip("B", "4", 4)
    in_order = build.run(build.symbol("A", [0], [0.0], trades=[a1, a2]))
    assert metrics.sorted_trades(in_order) == [a1, a2]
    late = build.run(build.symbol("A", [0], [0.0], trades=[a1, a2, a3]))  # a fill reported late
    assert metrics.sorted_trades(late) == [a1, a3, a2]
    both = build.run(build.symbol("B", [0], [0.0], trades=[b1]), build.symbol("A", [0], [0.0], trades=[a1, a2]))
    assert metrics.sorted_trades(both) == [a1, b1, a2]
