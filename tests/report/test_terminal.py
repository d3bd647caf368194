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
