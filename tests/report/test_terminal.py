from __future__ import annotations

import numpy as np
from rich.console import Console

from engine_core import report
from engine_core.report import print_summary, summarize


def test_prints_symbols_and_total(build):
    result = build.run(
        build.symbol("BTC", [0, 1, 2, 3], [0, 10, -1, 20], trades=[build.trip("BTC", "20", 3)]),
        build.symbol("ETH", [0, 1], [0, 0], halted="[bold]script error[/bold]"),
    )
    console = Console(record=True, width=120)
    print_summary(summarize(result), console)
    text = console.export_text()
    for expected in ("BTC", "ETH", "Total", "20.00%", "10.00%", "100.00%", "n/a"):
        assert expected in text
    assert "ETH halted: [bold]script error[/bold]" in text


def test_public_names():
    assert sorted(report.__all__) == ["print_summary", "summarize", "write_report"]


def test_sharpe_reads_na_with_the_reason_when_returns_are_too_few(build):
    minutes = list(range(100))
    pnl = [float(i % 7) for i in minutes]
    console = Console(record=True, width=200)
    print_summary(summarize(build.run(build.symbol("BTC", minutes, pnl))), console)
    text = console.export_text()
    row = next(line for line in text.splitlines() if "BTC" in line)
    assert row.split()[5] == "n/a"  # Symbol, Bars, Trades, PnL, Return, Sharpe
    assert "Sharpe and Sortino are n/a: they need 10,108 bar returns" in text
    assert "99 here" in text
    # a year of daily bars has its ratios, and no note
    days = [1440.0 * i for i in range(366)]
    console = Console(record=True, width=200)
    print_summary(summarize(build.run(build.symbol("BTC", days, [float(i % 7) for i in range(366)]))), console)
    text = console.export_text()
    assert "are n/a" not in text
    assert next(line for line in text.splitlines() if "BTC" in line).split()[5] != "n/a"


def test_the_table_fits_80_columns_with_six_figure_pnls(build):
    pnl = [0.0, -120_710.93]
    result = build.run(
        build.symbol("BTCUSDT", [0, 1], pnl, trades=[build.trip("BTCUSDT", "-120710.93", 1)]),
        build.symbol("ETHUSDT", [0, 1], pnl),
        start_cash="1000000",
    )
    console = Console(record=True, width=80)
    print_summary(summarize(result), console)
    text = console.export_text()
    assert "-241,421.86" in text and "-120,710.93" in text and "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80


def test_at_80_columns_figures_are_never_cut_columns_go_first(build):
    # a million bars a symbol and five-figure losses: the table is wider than 80 columns
    minutes = list(range(0, 2_000_000, 2))
    pnl = list(np.linspace(0.0, -11_529.12, len(minutes)))
    result = build.run(
        build.symbol("BTCUSDT", minutes, pnl, trades=[build.trip("BTCUSDT", "-11529.12", 1)] * 19_365),
        build.symbol("ETHUSDT", minutes, list(np.linspace(0.0, -9_181.81, len(minutes)))),
        start_cash="100000",
    )
    summary = summarize(result)
    for width in (80, 60):
        console = Console(record=True, width=width)
        print_summary(summary, console)
        text = console.export_text()
        assert "…" not in text
        assert max(len(line.rstrip()) for line in text.splitlines()) <= width
        for figure in ("-11,529.12", "-9,181.81", "-20,710.93", "-11.53%", "19,365"):
            assert figure in text, (width, text)
    assert "1,000,000" in text or width < 80  # at 60 columns the bar counts go first


def test_a_short_run_says_it_is_not_annualised_and_a_long_one_states_its_factor(build):
    minutes = list(range(20_000))  # 13.9 days of one-minute bars
    console = Console(record=True, width=80)
    print_summary(summarize(build.run(build.symbol("BTC", minutes, [float(i % 7) for i in minutes]))), console)
    text = " ".join(console.export_text().split())
    assert "13.9 days of bars, under 90: nothing is annualised. CAGR is left out;" in text
    assert "Return, Sharpe and Sortino are the whole run's (ratios: per bar x sqrt(19,999 returns))." in text
    days = [1440.0 * i for i in range(366)]
    console = Console(record=True, width=80)
    print_summary(summarize(build.run(build.symbol("BTC", days, [float(i % 7) for i in range(366)]))), console)
    text = " ".join(console.export_text().split())
    assert "365.0 days of bars: CAGR, Sharpe and Sortino are per year (ratios: per bar x sqrt(365))." in text


def test_a_symbol_with_a_short_history_in_a_long_run_is_named_in_the_note(build):
    days = [1440.0 * i for i in range(366)]
    late = days[-30:]  # a month of bars of its own
    result = build.run(
        build.symbol("BTC", days, [float(i % 7) for i in range(366)]),
        build.symbol("NEW", late, [float(i % 3) for i in range(30)]),
    )
    summary = summarize(result)
    assert summary["total"]["annualized"] and not summary["per_symbol"]["NEW"]["annualized"]
    assert summary["per_symbol"]["NEW"]["cagr"] is None and summary["per_symbol"]["BTC"]["cagr"] is not None
    console = Console(record=True, width=200)
    print_summary(summary, console)
    text = console.export_text()
    assert "NEW: under 90 days of bars of their own, so no CAGR and ratios over their own run." in text
