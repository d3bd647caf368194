from __future__ import annotations

import csv
import itertools
import json
import re

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
        "101",
        "0.5",
        "-1.5",
        "0.05",
        "exit",
    ]


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
    assert '<img alt="Equity and drawdown" src="data:image/png;base64,' in html
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
