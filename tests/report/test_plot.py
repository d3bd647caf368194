"""The report chart: an equity line per symbol and the total, trades marked,
one trade lane per symbol, the drawdown in percent; bounded whatever the run.

The chart is SVG: these tests read it as a person reads the picture, values
back from pixels through the tick labels of each panel's axis."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
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
    chart_svg,
    symbol_line,
)

NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")


def chart_text(result) -> str:
    """The SVG write_report draws for a run."""
    total = total_curve(result)
    start = float(result.start_cash)
    lines = [symbol_line(s, start) for s in result.symbols.values() if s.bars]
    equity, dd = Downsampler(len(total.ts)), Downsampler(len(total.ts))
    equity.add(total.ts, total.equity)
    dd.add(total.ts, Drawdown()(total.equity))
    return chart_svg(ChartData(*equity.points(), *dd.points(), lines))


def chart(result) -> dict[str, ET.Element]:
    """The chart's panels by name: equity, trades (if any lanes), drawdown, time (the axis)."""
    return {g.get("class"): g for g in ET.fromstring(chart_text(result)).findall("g")}


def texts(panel: ET.Element, cls: str) -> list[str]:
    return [t.text or "" for t in panel.iter("text") if t.get("class") == cls]


def legend(panel: ET.Element) -> list[str]:
    return [t.text or "" for t in panel.find("g[@class='legend']").iter("text")]


def value_of(panel: ET.Element):
    """Pixel y to the value on the panel's axis, from two of its tick labels."""
    ticks = [
        (float(t.get("y")) - 4, float(t.text.replace(",", "").rstrip("%")))
        for t in panel.iter("text")
        if t.get("class") == "tick"
    ]
    (y0, v0), (y1, v1) = ticks[0], ticks[-1]
    return lambda y: v0 + (np.asarray(y) - y0) * (v1 - v0) / (y1 - y0)


def path_points(d: str) -> np.ndarray:
    """The points of a line drawn as ``M x y l dx dy dx dy ...``."""
    start, _, steps = d[1:].partition("l")
    xy = np.array([float(v) for v in NUMBER.findall(start) + NUMBER.findall(steps)]).reshape(-1, 2)
    return np.cumsum(xy, axis=0)


def lines(panel: ET.Element) -> dict[str, np.ndarray]:
    """Each line's points (pixels) by its label, in drawing order."""
    return {p.get("data-label"): path_points(p.get("d")) for p in panel.iter("path") if p.get("class") == "line"}


def marks(panel: ET.Element, cls: str, symbol: str | None = None) -> np.ndarray:
    """The centres of the marks of a kind (each a subpath that starts there)."""
    found = [
        [float(v) for v in m.groups()]
        for p in panel.iter("path")
        if p.get("class") == cls and symbol in (None, p.get("data-symbol"))
        for m in re.finditer(r"M(-?[\d.]+) (-?[\d.]+)", p.get("d"))
    ]
    return np.array(found).reshape(-1, 2)


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
    panels = chart(build.run(btc, eth))
    assert list(panels) == ["equity", "trades", "drawdown", "time"]
    equity, lanes, dd = panels["equity"], panels["trades"], panels["drawdown"]
    drawn = lines(equity)
    assert list(drawn) == ["BTC", "ETH", "Total"]
    value = value_of(equity)
    assert np.allclose(value(drawn["Total"][:, 1]), [100, 112, 103, 126, 123], atol=0.05)
    assert legend(equity) == ["BTC", "ETH", "Total", "entry", "exit"]
    # marks on each symbol's line: entries (long, short) and exits, at its equity on those bars
    assert np.allclose(value(marks(equity, "entry", "BTC")[:, 1]), [100.0, 100.0], atol=0.05)  # both on bar 0
    assert np.allclose(value(marks(equity, "exit", "BTC")[:, 1]), [120.0, 115.0], atol=0.05)  # bars 3 and 4
    assert np.allclose(value(marks(equity, "exit", "ETH")[:, 1]), [108.0], atol=0.05)  # ETH exit on bar 4
    # a lane per symbol, top to bottom in configured order, with the stops' kinds in its legend
    names = sorted(lanes.iter("text"), key=lambda t: float(t.get("y")))
    assert [t.text for t in names if t.get("class") == "lane"] == ["BTC", "ETH"]
    assert legend(lanes) == ["won", "lost", "stop-loss exit", "take-profit exit"]
    assert len(marks(lanes, "stops", "BTC")) == 1 and len(marks(lanes, "targets", "ETH")) == 1
    assert [texts(p, "label") for p in (equity, lanes, dd)] == [["Equity"], ["Trades"], ["Drawdown (%)"]]
    assert all(t.endswith("%") for t in texts(dd, "tick")) and "-5.0%" in texts(dd, "tick")
    assert np.allclose(value_of(dd)(lines(dd)["Drawdown"][:4, 1]), [0.0, 0.0, -100 * 9 / 112, 0.0], atol=0.05)
    assert "100" in texts(equity, "tick") and "110" in texts(equity, "tick")  # the equity's axis, in money
    # the time axis: minutes of one day, labelled as ConciseDateFormatter would, the day as the offset
    assert [t.text for t in panels["time"].iter("text")] == ["00:00", "00:01", "00:02", "00:03", "00:04", "2024-Jan-01"]


def test_the_chart_is_the_same_text_for_the_same_run(build):
    run = build.run(build.symbol("BTC", [0, 1, 2], [0, 1, 2], trades=[build.trip("BTC", "2", 2)]))
    assert chart_text(run) == chart_text(run)
    assert re.fullmatch(
        r'<svg viewBox="0 0 1000 \d+" width="1000" height="\d+" class="chart".*', chart_text(run)[:200].split(">")[0]
    )


def test_one_symbol_is_the_total(build):
    panels = chart(build.run(build.symbol("BTC", [0, 1, 2], [0, 1, 2])))
    assert list(lines(panels["equity"])) == ["BTC"]
    assert legend(panels["equity"]) == ["BTC (= total)"]
    assert legend(panels["trades"]) == ["won", "lost"]  # no stop exits, no stop legend


def test_many_symbols_stay_readable(build):
    symbols = [
        build.symbol(f"S{k:02d}", [0, 1, 2], [0, k, -k], trades=[build.trip(f"S{k:02d}", "1", 2)]) for k in range(12)
    ]
    panels = chart(build.run(*symbols))
    equity, lanes = panels["equity"], panels["trades"]
    assert legend(equity) == ["12 symbols", "Total"]  # grey lines, no colour per symbol, no markers
    assert {
        p.get("stroke")
        for label, p in ((p.get("data-label"), p) for p in equity.iter("path"))
        if label and label != "Total"
    } == {"#9aa5b1"}
    assert not len(marks(equity, "entry")) and not len(marks(equity, "exit"))
    assert len(texts(lanes, "lane")) == 12
    many = [build.symbol(f"S{k:02d}", [0, 1], [0, k]) for k in range(LANE_LIMIT + 1)]
    assert list(chart(build.run(*many))) == ["equity", "drawdown", "time"]  # too many for lanes


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
    panels = chart(result)
    equity, lanes, dd = panels["equity"], panels["trades"], panels["drawdown"]
    drawn = [*lines(equity).values(), *lines(dd).values()]
    assert len(drawn) == 2 and all(1000 < len(points) <= MAX_POINTS for points in drawn)
    assert not len(marks(equity, "entry"))  # too many trades to mark on the line: the lane shows them
    bars, stops = len(marks(lanes, "bars")), len(marks(lanes, "stops"))
    assert 0 < bars <= 2 * LANE_PIXELS + 2 and 0 < stops <= LANE_PIXELS + 1
    # 139 days: ticks on days 1 and 15, the month's name where one begins, the year as the offset
    time_axis = [t.text for t in panels["time"].iter("text")]
    assert time_axis[:3] == ["Jan", "15", "Feb"] and time_axis[-1] == "2024-May"
