"""The chart of the HTML report, as an inline SVG element.

Three panels on one time axis:

- equity: one line per symbol (start cash plus its PnL, as in the summary's
  per-symbol figures) and the total; each trade's entry (a triangle, up for
  a long, down for a short) and exit (a circle) are marked on its symbol's
  line while the symbol has at most MARK_LIMIT trades (more would cover it);
- trades: one lane per symbol (up to LANE_LIMIT symbols), a bar from each
  entry to its exit, green for a winning trade and red for a losing one, and
  the exits by stop-loss or trailing stop (x) and by take-profit (+);
- drawdown of the total equity, in percent below its peak.

Whatever the length of the run, the SVG holds a bounded number of points:
each curve is downsampled to MAX_POINTS (:class:`Downsampler`, fed in
blocks), and the trade bars and stop marks are merged per pixel. The
drawing itself (scales, ticks, elements) is :mod:`engine_core.report.svg`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine_core.report import svg
from engine_core.results import SymbolResult

MAX_POINTS = 5_000
MARK_LIMIT = 150  # trades of a symbol marked on its equity line
LANE_LIMIT = 20  # symbols that get a trade lane
BLOCK = 1 << 16  # rows of a symbol fed to its downsampler at a time
STOP_REASONS = ("stop_loss", "trailing_stop")
TARGET_REASONS = ("take_profit",)


class Downsampler:
    """At most ``max_points`` of an ``n``-point series fed in consecutive pieces
    of any length: the minimum and maximum of each bucket, in time order.

    Keeping both extremes of every bucket keeps short spikes and drawdowns
    visible, which plain striding would drop. Holds less than one bucket
    between pieces, so memory stays bounded by the piece size; the points kept
    do not depend on how the series is cut.
    """

    def __init__(self, n: int, max_points: int = MAX_POINTS) -> None:
        self.n = n
        self.whole = n <= max_points  # kept as is
        self.buckets = max_points // 2
        self.size = -(-n // self.buckets) if n else 1
        self.seen = 0  # points fed so far
        self.done = 0  # buckets reduced so far
        self.x_rest: np.ndarray | None = None  # the points of the current, unfinished bucket
        self.y_rest: np.ndarray | None = None
        self.xs: list[np.ndarray] = []
        self.ys: list[np.ndarray] = []

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        self.seen += len(y)
        if self.whole:
            self.xs.append(x)
            self.ys.append(y)
            return
        if self.x_rest is not None:
            x, y = np.concatenate([self.x_rest, x]), np.concatenate([self.y_rest, y])
        last = self.seen == self.n
        if last:
            # pad the final buckets with the last value
            padded = np.concatenate([y, np.full((self.buckets - self.done) * self.size - len(y), y[-1])])
        else:
            full = len(y) // self.size * self.size
            padded = y[:full]
            self.x_rest, self.y_rest = x[full:], y[full:]
        if not len(padded):
            return
        grid = padded.reshape(-1, self.size)
        ends = np.sort(np.stack([grid.argmin(axis=1), grid.argmax(axis=1)], axis=1), axis=1)
        idx = np.minimum((ends + (np.arange(len(grid)) * self.size)[:, None]).ravel(), len(y) - 1)
        self.xs.append(x[idx])
        self.ys.append(y[idx])
        self.done += len(grid)

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept points, once all ``n`` have been fed."""
        if not self.xs:
            return np.empty(0, np.int64), np.empty(0)
        return np.concatenate(self.xs), np.concatenate(self.ys)


@dataclass(frozen=True, eq=False)
class TradeMarks:
    """One symbol's round trips as arrays, with its equity at the entry and exit bars."""

    entry_ts: np.ndarray
    exit_ts: np.ndarray
    entry_equity: np.ndarray
    exit_equity: np.ndarray
    won: np.ndarray  # pnl > 0
    short: np.ndarray
    stop: np.ndarray  # left by a stop-loss or trailing stop
    target: np.ndarray  # left by a take-profit


@dataclass(frozen=True, eq=False)
class SymbolLine:
    """A symbol's downsampled equity curve and its trades."""

    name: str
    ts: np.ndarray
    equity: np.ndarray
    trades: TradeMarks


@dataclass(frozen=True, eq=False)
class ChartData:
    """Everything the chart draws: the total curve, its drawdown and each symbol's line."""

    ts: np.ndarray
    equity: np.ndarray
    drawdown_ts: np.ndarray
    drawdown: np.ndarray
    symbols: list[SymbolLine]


def symbol_line(s: SymbolResult, start_cash: float) -> SymbolLine:
    """The chart's view of one symbol: its equity downsampled block by block, its trades."""
    ts, pnl = np.asarray(s.ts, np.int64), np.asarray(s.pnl, np.float64)
    points = Downsampler(len(ts))
    for i in range(0, len(ts), BLOCK):
        points.add(ts[i : i + BLOCK], start_cash + pnl[i : i + BLOCK])
    line_ts, equity = points.points()
    entry = np.fromiter((t.entry_ts for t in s.trades), np.int64, len(s.trades))
    exit_ = np.fromiter((t.exit_ts for t in s.trades), np.int64, len(s.trades))

    def equity_at(times: np.ndarray) -> np.ndarray:
        """The equity at the close of the last bar at or before each time."""
        if not len(ts):
            return np.full(len(times), start_cash)
        i = np.clip(np.searchsorted(ts, times, "right") - 1, 0, len(ts) - 1)
        return start_cash + pnl[i]

    reasons = [t.exit_reason for t in s.trades]
    marks = TradeMarks(
        entry,
        exit_,
        equity_at(entry),
        equity_at(exit_),
        np.array([t.pnl > 0 for t in s.trades], bool),
        np.array([t.side.value == "sell" for t in s.trades], bool),
        np.array([r in STOP_REASONS for r in reasons], bool),
        np.array([r in TARGET_REASONS for r in reasons], bool),
    )
    return SymbolLine(s.symbol, line_ts, equity, marks)


# colours: symbols from a qualitative palette; the total black; trades by outcome
SYMBOL_COLOURS = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
TOTAL_COLOUR = "#111111"
MANY_COLOUR = "#9aa5b1"
WON, LOST = "#2e9d5b", "#d0453a"
STOP_COLOUR, TARGET_COLOUR = "#7a1f16", "#145a32"
LANE_PIXELS = 1000  # about the plot's width in pixels: trades closer than 1/LANE_PIXELS of the span merge
# layout, in pixels: the plot spans LEFT..RIGHT of WIDTH
WIDTH, LEFT, RIGHT = 1000, 80, 980
EQUITY_HEIGHT, LANE_HEIGHT, DRAWDOWN_HEIGHT = 400, 30, 150
ROW = 16  # a legend row
GRID = "#e3e3e3"
# marks, drawn from their centre
UP, DOWN = "m0-5l4.5 8h-9z", "m0 5l4.5-8h-9z"
RING = "m-3 0a3 3 0 1 0 6 0a3 3 0 1 0-6 0"
CROSS, PLUS = "m-3-3l6 6m0-6l-6 6", "m-3.5 0h7m-3.5-3.5v7"

Legend = list[tuple[dict, str]]  # (swatch attributes, label): a line; a mark if "d" is its path; kind "box"


def chart_svg(data: ChartData) -> str:
    """The chart as an SVG element for inside an HTML page (so without a namespace), byte-identical
    for the same data."""
    symbols = data.symbols
    lanes = symbols if 0 < len(symbols) <= LANE_LIMIT else []
    t0, t1 = int(data.ts[0]), int(data.ts[-1])
    pad = max((t1 - t0) // 50, 30 * svg.NS)
    x = svg.Scale(t0 - pad, t1 + pad, LEFT, RIGHT)
    ticks, labels, offset = svg.time_ticks(t0 - pad, t1 + pad)
    parts: list[str] = []
    y = 8.0
    y, part = _equity(data, x, ticks, y)
    parts.append(part)
    if lanes:
        y, part = _lanes(lanes, data.ts, x, ticks, y + 8)
        parts.append(part)
    y, part = _drawdown(data, x, ticks, y + 16)
    parts.append(part)
    axis = [svg.element("line", x1=float(x.at(t)), y1=y, x2=float(x.at(t)), y2=y + 4, stroke="#333") for t in ticks]
    axis += [svg.text(x.at(t), y + 16, label, text_anchor="middle") for t, label in zip(ticks, labels)]
    if offset:
        axis.append(svg.text(RIGHT, y + 32, offset, text_anchor="end"))
    parts.append(svg.group(axis, class_="time"))
    height = int(y + 40)
    return svg.element(
        "svg",
        "\n" + "\n".join(parts) + "\n",
        viewBox=f"0 0 {WIDTH} {height}",
        width=WIDTH,
        height=height,
        class_="chart",
        role="img",
        aria_label="Equity and drawdown",
        font_family="system-ui, sans-serif",
        font_size=12,
        style="max-width:100%;height:auto",
    )


def _equity(data: ChartData, x: svg.Scale, ticks: list[int], y: float) -> tuple[float, str]:
    """Equity lines per symbol and the total, trades marked on the lines; returns the panel's bottom."""
    symbols = data.symbols
    colour = {s.name: SYMBOL_COLOURS[k % len(SYMBOL_COLOURS)] for k, s in enumerate(symbols)}
    many = len(symbols) > len(SYMBOL_COLOURS)
    marked = [s for s in symbols if not many and 0 < len(s.trades.entry_ts) <= MARK_LIMIT]
    values = [s.equity for s in symbols] + [m for s in marked for m in (s.trades.entry_equity, s.trades.exit_equity)]
    if len(symbols) != 1:
        values.append(data.equity)
    lo, hi = svg.padded(*_extent(values))
    items: Legend = []
    if many:
        items.append(({"stroke": MANY_COLOUR, "stroke_width": 0.8}, f"{len(symbols)} symbols"))
    else:
        items += [({"stroke": colour[s.name]}, s.name) for s in symbols]
    if len(symbols) != 1:
        items.append(({"stroke": TOTAL_COLOUR, "stroke_width": 1.6}, "Total"))
    else:
        items[0] = (items[0][0], f"{symbols[0].name} (= total)")
    if marked:
        items.append(({"d": UP, "fill": "#555555"}, "entry"))
        items.append(({"d": RING, "fill": "white", "stroke": "#555555"}, "exit"))
    rows, legend = _legend(items, y, right=False)
    top = y + rows
    py = svg.Scale(lo, hi, top + EQUITY_HEIGHT, top)
    ytick, decimals = svg.value_ticks(lo, hi, 9)
    body = [_grid(x, ticks, py, ytick, top, EQUITY_HEIGHT), legend]
    body += [_ylabel(top, EQUITY_HEIGHT, "Equity"), *_yticks(py, ytick, f"{{:,.{decimals}f}}")]
    for s in symbols:
        style = {"stroke": MANY_COLOUR, "stroke_width": 0.6, "opacity": 0.7} if many else {"stroke": colour[s.name]}
        body.append(_line(x(s.ts), py(s.equity), s.name, **style))
    if len(symbols) != 1:
        body.append(_line(x(data.ts), py(data.equity), "Total", stroke=TOTAL_COLOUR, stroke_width=1.6))
    for s in marked:
        m, c = s.trades, colour[s.name]
        for short, shape in ((False, UP), (True, DOWN)):
            pick = m.short == short
            if pick.any():
                d = _marks(x(m.entry_ts[pick]), py(m.entry_equity[pick]), shape)
                body.append(
                    svg.element(
                        "path", d=d, class_="entry", data_symbol=s.name, fill=c, stroke="white", stroke_width=0.5
                    )
                )
        d = _marks(x(m.exit_ts), py(m.exit_equity), RING)
        body.append(
            svg.element("path", d=d, class_="exit", data_symbol=s.name, fill="white", stroke=c, stroke_width=1.0)
        )
    body.append(_frame(top, EQUITY_HEIGHT))
    return top + EQUITY_HEIGHT, svg.group(body, class_="equity")


def _lanes(
    lanes: list[SymbolLine], total_ts: np.ndarray, x: svg.Scale, ticks: list[int], y: float
) -> tuple[float, str]:
    """One row per symbol: a bar per trade (merged per pixel), stop and take-profit exits marked."""
    span = int(total_ts[-1] - total_ts[0]) if len(total_ts) > 1 else 1
    pixel = max(span // LANE_PIXELS, 1)  # ns
    n = len(lanes)
    height = LANE_HEIGHT * n + 20
    items: Legend = [({"kind": "box", "fill": WON}, "won"), ({"kind": "box", "fill": LOST}, "lost")]
    if any(s.trades.stop.any() for s in lanes):
        items.append(({"d": CROSS, "stroke": STOP_COLOUR}, "stop-loss exit"))
    if any(s.trades.target.any() for s in lanes):
        items.append(({"d": PLUS, "stroke": TARGET_COLOUR}, "take-profit exit"))
    rows, legend = _legend(items, y, right=True)
    top = y + rows
    py = svg.Scale(-0.55, n - 0.4, top + height, top)
    body = [_grid(x, ticks, None, [], top, height), legend, _ylabel(top, height, "Trades")]
    size = 11 if n <= 8 else 9
    for row, s in enumerate(lanes):
        m, lane = s.trades, n - 1 - row
        label_y = py.at(lane - 0.11) + size * 0.35
        body.append(svg.text(LEFT - 6, label_y, s.name, class_="lane", text_anchor="end", font_size=size))
        bar_top, bar_height = py.at(lane + 0.14), svg.num(py.at(lane - 0.36) - py.at(lane + 0.14))
        for won, colour in ((True, WON), (False, LOST)):
            start, stop = _merged(m.entry_ts[m.won == won], m.exit_ts[m.won == won], pixel)
            if len(start):
                widths = np.maximum(np.round(np.maximum(stop - start, pixel) * x.k, 1), 0.1)
                d = "".join(
                    f"M{svg.num(a)} {svg.num(bar_top)}h{svg.num(w)}v{bar_height}h{svg.num(-w)}z"
                    for a, w in zip(x(start), widths)
                )
                body.append(svg.element("path", d=d, class_="bars", data_symbol=s.name, fill=colour))
        for pick, shape, colour, kind in (
            (m.stop, CROSS, STOP_COLOUR, "stops"),
            (m.target, PLUS, TARGET_COLOUR, "targets"),
        ):
            at = np.unique(m.exit_ts[pick] // pixel) * pixel
            if len(at):
                d = _marks(x(at), np.full(len(at), py.at(lane + 0.3)), shape)
                body.append(
                    svg.element(
                        "path", d=d, class_=kind, data_symbol=s.name, fill="none", stroke=colour, stroke_width=1.2
                    )
                )
    body.append(_frame(top, height))
    return top + height, svg.group(body, class_="trades")


def _drawdown(data: ChartData, x: svg.Scale, ticks: list[int], top: float) -> tuple[float, str]:
    """The total's drawdown in percent below its peak, filled down from zero."""
    percent = -100.0 * data.drawdown
    lo = float(percent.min()) if len(percent) else 0.0
    lo = lo * 1.05 if lo < 0 else -1.0
    py = svg.Scale(lo, 0.0, top + DRAWDOWN_HEIGHT, top)
    ytick, decimals = svg.value_ticks(lo, 0.0, 4)
    xs, ys = x(data.drawdown_ts), py(percent)
    area = svg.line_path(xs, ys) + f"V{svg.num(py.at(0.0))}H{svg.num(xs[0])}z" if len(xs) else ""
    body = [_grid(x, ticks, py, ytick, top, DRAWDOWN_HEIGHT), _ylabel(top, DRAWDOWN_HEIGHT, "Drawdown (%)")]
    body += _yticks(py, ytick, f"{{:.{decimals}f}}%")
    body.append(svg.element("path", d=area, class_="area", fill="#c0392b", fill_opacity=0.45))
    body.append(_line(xs, ys, "Drawdown", stroke="#922b21", stroke_width=0.6))
    body.append(_frame(top, DRAWDOWN_HEIGHT))
    return top + DRAWDOWN_HEIGHT, svg.group(body, class_="drawdown")


def _extent(values: list[np.ndarray]) -> tuple[float, float]:
    full = [v for v in values if len(v)]
    if not full:
        return 0.0, 1.0
    return float(min(v.min() for v in full)), float(max(v.max() for v in full))


def _line(xs: np.ndarray, ys: np.ndarray, label: str, **style: object) -> str:
    style = {"stroke_width": 1.0, **style}
    return svg.element("path", d=svg.line_path(xs, ys), class_="line", data_label=label, fill="none", **style)


def _marks(xs: np.ndarray, ys: np.ndarray, shape: str) -> str:
    """One path of marks of ``shape``, each a subpath that starts at the mark's centre."""
    return "".join(f"M{svg.num(a)} {svg.num(b)}{shape}" for a, b in zip(xs, ys))


def _grid(x: svg.Scale, ticks: list[int], py: svg.Scale | None, values: list[float], top: float, height: float) -> str:
    lines = [f"M{svg.num(x.at(t))} {svg.num(top)}v{height}" for t in ticks]
    lines += [f"M{LEFT} {svg.num(py.at(v))}H{RIGHT}" for v in values] if py else []
    return svg.element("path", d="".join(lines), class_="grid", stroke=GRID, fill="none")


def _yticks(py: svg.Scale, values: list[float], form: str) -> list[str]:
    return [svg.text(LEFT - 6, py.at(v) + 4, form.format(v), class_="tick", text_anchor="end") for v in values]


def _ylabel(top: float, height: float, label: str) -> str:
    at, mid = LEFT - 64, top + height / 2
    return svg.text(
        at, mid, label, class_="label", text_anchor="middle", font_size=13, transform=f"rotate(-90 {at} {svg.num(mid)})"
    )


def _frame(top: float, height: float) -> str:
    return svg.element("rect", x=LEFT, y=top, width=RIGHT - LEFT, height=height, fill="none", stroke="#333")


def _legend(items: Legend, top: float, right: bool) -> tuple[float, str]:
    """Legend items in rows above a panel (left or right aligned); returns its height and element."""
    widths = [28 + svg.text_width(label, 11) + 12 for _, label in items]
    rows: list[list[int]] = [[]]
    used = 0.0
    for k, w in enumerate(widths):
        if rows[-1] and used + w > RIGHT - LEFT:
            rows.append([])
            used = 0.0
        rows[-1].append(k)
        used += w
    out = []
    for r, row in enumerate(rows):
        cy = top + r * ROW + ROW / 2
        at = RIGHT - sum(widths[k] for k in row) if right else LEFT
        for k in row:
            swatch, label = items[k]
            out.append(svg.group([_swatch(swatch, at, cy), svg.text(at + 28, cy + 4, label)], class_="item"))
            at += widths[k]
    return len(rows) * ROW, svg.group(out, class_="legend", font_size=11)


def _swatch(style: dict, x: float, y: float) -> str:
    style = {"stroke_width": 1.0, **style}
    if style.pop("kind", None) == "box":
        return svg.element("rect", x=x + 4, y=y - 5, width=16, height=10, **style)
    if "d" in style:
        return svg.element("path", d=f"M{svg.num(x + 12)} {svg.num(y)}{style.pop('d')}", **style)
    return svg.element("line", x1=x, y1=y, x2=x + 24, y2=y, **style)


def _merged(start: np.ndarray, stop: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Spans sorted by start, those less than ``gap`` apart merged into one."""
    if not len(start):
        return start, stop
    order = np.argsort(start, kind="stable")
    start, stop = start[order], np.maximum.accumulate(stop[order])
    new = np.concatenate(([True], start[1:] - stop[:-1] >= gap))
    first = np.flatnonzero(new)
    last = np.concatenate((first[1:] - 1, [len(start) - 1]))
    return start[first], stop[last]
