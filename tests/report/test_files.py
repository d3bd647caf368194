from __future__ import annotations

import csv
import io
import itertools
import json
import re
from decimal import Decimal

import numpy as np
import pytest

from engine_core.model import Side
from engine_core.report import summarize, write_report
from engine_core.report.files import TRADE_COLUMNS
from engine_core.report.page import TRADE_LIMIT


@pytest.fixture
def result(build):
    btc = build.symbol(
        "BTC",
        [0, 1, 2, 3],
        [0, 10, -1, 20],
        [False, True, True, False],
        trades=[
            build.trip("BTC", "20", 3, reason="take <profit>"),
            build.trip("BTC", "-1.5", 2, Side.SELL),
        ],
    )
    eth = build.symbol("ETH", [0.5, 1.5], [0, 2.5], trades=[build.trip("ETH", "2.5", 2)])
    return build.run(btc, eth, strategy="<b>demo</b>.lua")


def write(result, path):
    return write_report(result, summarize(result), path)


def test_writes_the_four_files_byte_identically(result, tmp_path):
    first, second = write(result, tmp_path / "a"), write(result, tmp_path / "b")
    assert sorted(first) == ["candles", "equity", "html", "summary", "trades"]
    for key in first:
        assert first[key].read_bytes() == second[key].read_bytes(), key


def test_summary_json_is_sorted_and_ends_with_a_newline(result, tmp_path):
    text = write(result, tmp_path)["summary"].read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == json.loads(json.dumps(summarize(result)))
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_trades_csv_is_sorted_by_exit_time_then_symbol(result, tmp_path):
    with write(result, tmp_path)["trades"].open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == TRADE_COLUMNS
    assert [(r[0], r[4]) for r in rows[1:]] == [
        ("BTC", "2024-01-01T00:02:00Z"),
        ("ETH", "2024-01-01T00:02:00Z"),
        ("BTC", "2024-01-01T00:03:00Z"),
    ]
    assert rows[1] == [
        "BTC",
        "sell",
        "2024-01-01T00:00:00Z",
        "100.25",
        "2024-01-01T00:02:00Z",
        "101.00",
        "0.5",
        "-1.5",
        "0.05",
        "exit",
    ]
    assert rows[3][7] == "20.0"  # BTC's PnLs read at one precision: 20 and -1.5


def test_trade_columns_read_at_each_symbols_precision_exactly(build, tmp_path):
    def trip(symbol, entry, exit_, qty, pnl, minute):
        t = build.trip(symbol, pnl, minute)
        return t._replace(entry_price=Decimal(entry), exit_price=Decimal(exit_), qty=Decimal(qty))

    btc = [trip("BTC", "101.12", "100.7", "494.462", "-207.67404", 1), trip("BTC", "99.8", "100", "2", "197.77400", 2)]
    eth = [trip("ETH", "2000.5", "2001.25", "0.1", "0.075", 3)]
    result = build.run(
        build.symbol("BTC", [0, 1, 2], [0, 0, 0], trades=btc), build.symbol("ETH", [0, 3], [0, 0], trades=eth)
    )
    paths = write(result, tmp_path)
    with paths["trades"].open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = ("entry_price", "exit_price", "qty", "pnl")
    assert [tuple(r[c] for c in columns) for r in rows] == [
        ("101.12", "100.70", "494.462", "-207.67404"),
        ("99.80", "100.00", "2.000", "197.77400"),
        ("2000.50", "2001.25", "0.1", "0.075"),
    ]
    for row, t in zip(rows, [*btc, *eth]):  # exact: the same Decimals
        assert (Decimal(row["exit_price"]), Decimal(row["pnl"])) == (t.exit_price, t.pnl)
    assert "<td>100.70</td>" in paths["html"].read_text()


def test_trades_csv_quotes_the_text_fields_as_the_csv_module_does(build, tmp_path):
    reasons = ["a,b", 'say "hi"', "line\nbreak", "", "plain"]
    trades = [build.trip("X,Y", "1", minute, reason=reason) for minute, reason in enumerate(reasons, 1)]
    result = build.run(build.symbol("X,Y", [0, 1, 2, 3, 4, 5], [0] * 6, trades=trades))
    path = write(result, tmp_path)["trades"]
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert [(r[0], r[9]) for r in rows[1:]] == [("X,Y", reason) for reason in reasons]
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n").writerows(rows)
    assert path.read_text(encoding="utf-8") == expected.getvalue()


def test_equity_csv_holds_the_total_curve(result, tmp_path):
    lines = write(result, tmp_path)["equity"].read_text().splitlines()
    assert lines[0] == "time,equity,drawdown"
    assert lines[1:] == [
        "2024-01-01T00:00:00Z,100.0000000,0.0000000000",
        "2024-01-01T00:00:30Z,100.0000000,0.0000000000",
        "2024-01-01T00:01:00Z,110.0000000,0.0000000000",
        "2024-01-01T00:01:30Z,112.5000000,0.0000000000",
        "2024-01-01T00:02:00Z,101.5000000,0.0977777778",
        "2024-01-01T00:03:00Z,122.5000000,0.0000000000",
    ]


def test_html_is_self_contained_and_escaped(result, tmp_path):
    html = write(result, tmp_path)["html"].read_text()
    assert not re.search(r"https?://", html)
    assert '<svg viewBox="0 0 1000 ' in html and 'aria-label="Equity and drawdown"' in html  # drawn inline
    assert "<img" not in html and "<script" not in html
    assert "&lt;b&gt;demo&lt;/b&gt;.lua" in html and "<b>demo" not in html
    assert "take &lt;profit&gt;" in html
    assert "3 trades." in html


def test_html_lists_the_first_trades_only(build, tmp_path):
    trades = [build.trip("BTC", "1", i) for i in range(TRADE_LIMIT + 20)]
    html = write(build.run(build.symbol("BTC", [0, 1], [0, 1], trades=trades)), tmp_path)["html"].read_text()
    assert html.count("<tr><td>BTC</td><td>buy</td>") == TRADE_LIMIT
    assert f"First {TRADE_LIMIT} of {TRADE_LIMIT + 20} trades" in html


def test_a_run_without_bars_or_trades(build, tmp_path):
    paths = write(build.run(build.symbol("BTC", [], [])), tmp_path)
    assert paths["equity"].read_text() == "time,equity,drawdown\n"
    assert paths["trades"].read_text() == ",".join(TRADE_COLUMNS) + "\n"
    assert "No bars: nothing to plot." in paths["html"].read_text()


def test_chart_downsampling_keeps_the_extremes_however_the_curve_is_cut():
    from engine_core.report.plot import Downsampler

    y = np.sin(np.arange(100_001) / 1000.0)
    y[77_777] = -5.0
    kept = []
    for cuts in ([], [1, 30_000, 30_001, 99_999]):
        points = Downsampler(len(y), max_points=1_000)
        for a, b in itertools.pairwise([0, *cuts, len(y)]):
            points.add(np.arange(a, b), y[a:b])
        x, small = points.points()
        assert len(small) <= 1_000
        assert small.min() == -5.0 and small.max() == y.max()
        assert np.all(np.diff(x) >= 0)
        kept.append((x, small))
    assert all(np.array_equal(a, b) for a, b in zip(kept[0], kept[1]))


def test_html_says_why_sharpe_is_missing(result, tmp_path):
    html = write(result, tmp_path)["html"].read_text()
    assert "Sharpe and Sortino are n/a: they need 20,216 bar returns (at least 30, and a week of bars); 5 here." in html
    assert summarize(result)["total"]["sharpe"] is None


def test_html_of_a_short_run_leaves_cagr_out_and_says_why(build, tmp_path):
    minutes = list(range(20_000))
    html = write(build.run(build.symbol("BTC", minutes, [float(i % 7) for i in minutes])), tmp_path)["html"]
    text = html.read_text()
    assert "<tr><td>CAGR</td><td>n/a</td></tr>" in text
    assert "<tr><td>Span (days)</td><td>13.89</td></tr>" in text
    assert "13.9 days of bars, under 90: nothing is annualised." in text
    assert "sqrt(19,999 returns)" in text
    summary = json.loads((tmp_path / "summary.json").read_text())["total"]
    assert (summary["cagr"], summary["annualized"], summary["ratio_periods"]) == (None, False, 19_999)


def test_html_source_and_parameters_read_as_words_not_json(build, tmp_path):
    result = build.run(build.symbol("BTC", [0, 1], [0, 1]))
    result.source_stats = {"csv": {"files": 2, "first_skipped": None, "rows": 40_000, "skipped_by_reason": {}}}
    html = write(result, tmp_path)["html"].read_text()
    assert "<tr><td>Source</td><td>csv: files 2, rows 40,000</td></tr>" in html
    assert "<tr><td>Parameters</td><td>fast = 5, size = &quot;0.5&quot;</td></tr>" in html
    assert "{&quot;" not in html
