from __future__ import annotations

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
