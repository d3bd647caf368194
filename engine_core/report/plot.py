"""The chart of the HTML report, as PNG bytes.

Three panels on one time axis:

- equity: one line per symbol (start cash plus its PnL, as in the summary's
  per-symbol figures) and the total; each trade's entry (a triangle, up for
  a long, down for a short) and exit (a circle) are marked on its symbol's
  line while the symbol has at most MARK_LIMIT trades (more would cover it);
- trades: one lane per symbol (up to LANE_LIMIT symbols), a bar from each
  entry to its exit, green for a winning trade and red for a losing one, and
  the exits by stop-loss or trailing stop (x) and by take-profit (+);
- drawdown of the total equity, in percent below its peak.

Whatever the length of the run, matplotlib gets a bounded number of points:
each curve is downsampled to MAX_POINTS (:class:`Downsampler`, fed in
blocks), and the trade bars and stop marks are merged per pixel.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine_core.model import NS_PER_DAY
from engine_core.results import SymbolResult

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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
WON, LOST = "#2e9d5b", "#d0453a"
STOP_COLOUR, TARGET_COLOUR = "#7a1f16", "#145a32"
LANE_PIXELS = 1000  # about the plot's width in pixels: trades closer than 1/LANE_PIXELS of the span merge


def chart_png(data: ChartData) -> bytes:
    """The chart as PNG, byte-identical for the same data."""
    buffer = io.BytesIO()
    chart_figure(data).savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def chart_figure(data: ChartData) -> Figure:
    """The chart's matplotlib figure (Agg): equity, trade lanes, drawdown."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    symbols = data.symbols
    lanes = symbols if 0 < len(symbols) <= LANE_LIMIT else []
    # panel heights and the gaps above each (room for a legend row), in inches
    panels = [(4.0, 0.35)]
    if lanes:
        panels.append((0.3 * len(lanes) + 0.2, 0.3))
    panels.append((1.5, 0.2))
    bottom_in = 0.5
    height = bottom_in + sum(h + gap for h, gap in panels)
    fig = Figure(figsize=(10, height), dpi=100)
    # fixed positions: a layout engine would cost more than the drawing itself
    axes: list[Axes] = []
    y = height
    for h, gap in panels:
        y -= gap + h
        axes.append(fig.add_axes((0.1, y / height, 0.88, h / height), sharex=axes[0] if axes else None))
    top, bottom = axes[0], axes[-1]
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)

    # equity: symbols, then the total on top
    colour = {s.name: SYMBOL_COLOURS[k % len(SYMBOL_COLOURS)] for k, s in enumerate(symbols)}
    many = len(symbols) > len(SYMBOL_COLOURS)
    handles: list[Artist] = []
    for s in symbols:
        if many:
            top.plot(_days(s.ts), s.equity, color="#9aa5b1", linewidth=0.6, alpha=0.7)
        else:
            (line,) = top.plot(_days(s.ts), s.equity, color=colour[s.name], linewidth=1.0, label=s.name)
            handles.append(line)
    if many:
        handles.append(Line2D([], [], color="#9aa5b1", linewidth=0.8, label=f"{len(symbols)} symbols"))
    if len(symbols) != 1:
        (total,) = top.plot(_days(data.ts), data.equity, color=TOTAL_COLOUR, linewidth=1.6, label="Total")
        handles.append(total)
    else:
        handles[0].set_label(f"{symbols[0].name} (= total)")
    marked = False
    for s in symbols:
        m = s.trades
        if many or not 0 < len(m.entry_ts) <= MARK_LIMIT:
            continue
        marked = True
        c = colour[s.name]
        for short, marker in ((False, "^"), (True, "v")):
            pick = m.short == short
            top.scatter(
                _days(m.entry_ts[pick]),
                m.entry_equity[pick],
                marker=marker,
                s=34,
                color=c,
                edgecolors="white",
                linewidths=0.5,
                zorder=3,
            )
        top.scatter(
            _days(m.exit_ts),
            m.exit_equity,
            marker="o",
            s=14,
            facecolors="white",
            edgecolors=c,
            linewidths=0.9,
            zorder=3,
        )
    if marked:
        handles.append(Line2D([], [], marker="^", linestyle="", color="#555555", markersize=5, label="entry"))
        handles.append(
            Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="#555555", label="exit")
        )
    top.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=min(len(handles), 8),
        fontsize=8,
        frameon=False,
        borderaxespad=0.2,
    )
    top.set_ylabel("Equity")
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    top.grid(alpha=0.3)

    if lanes:
        _trade_lanes(axes[1], lanes, data.ts)

    dd_days = _days(data.drawdown_ts)
    bottom.fill_between(dd_days, -100.0 * data.drawdown, 0.0, color="#c0392b", alpha=0.45, linewidth=0)
    bottom.plot(dd_days, -100.0 * data.drawdown, color="#922b21", linewidth=0.6)
    bottom.set_ylabel("Drawdown (%)")
    bottom.yaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=None))
    bottom.set_ylim(top=0.0)
    bottom.grid(alpha=0.3)
    locator = AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return fig


def _trade_lanes(ax: Axes, lanes: list[SymbolLine], total_ts: np.ndarray) -> None:
    """One row per symbol: a bar per trade (merged per pixel), stop and take-profit exits marked."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    span = int(total_ts[-1] - total_ts[0]) if len(total_ts) > 1 else 1
    pixel = max(span // LANE_PIXELS, 1)  # ns
    stops = targets = False
    for row, s in enumerate(lanes):
        m = s.trades
        y = len(lanes) - 1 - row
        for won, colour in ((True, WON), (False, LOST)):
            start, stop = _merged(m.entry_ts[m.won == won], m.exit_ts[m.won == won], pixel)
            if len(start):
                ax.broken_barh(
                    list(zip(_days(start), np.maximum(stop - start, pixel) / NS_PER_DAY)),
                    (y - 0.36, 0.5),
                    facecolors=colour,
                    linewidth=0,
                )
        for pick, marker, colour in ((m.stop, "x", STOP_COLOUR), (m.target, "+", TARGET_COLOUR)):
            at = np.unique(m.exit_ts[pick] // pixel) * pixel
            if len(at):
                ax.scatter(_days(at), np.full(len(at), y + 0.3), marker=marker, s=14, color=colour, linewidths=0.8)
                stops |= marker == "x"
                targets |= marker == "+"
    ax.set_yticks(np.arange(len(lanes)) - 0.11, [s.name for s in reversed(lanes)], fontsize=8 if len(lanes) <= 8 else 6)
    ax.set_ylim(-0.55, len(lanes) - 0.4)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", alpha=0.3)
    ax.set_ylabel("Trades", fontsize=9)
    handles: list[Artist] = [Patch(color=WON, label="won"), Patch(color=LOST, label="lost")]
    if stops:
        handles.append(Line2D([], [], marker="x", linestyle="", color=STOP_COLOUR, label="stop-loss exit"))
    if targets:
        handles.append(Line2D([], [], marker="+", linestyle="", color=TARGET_COLOUR, label="take-profit exit"))
    ax.legend(
        handles=handles,
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=len(handles),
        fontsize=7.5,
        frameon=False,
        borderaxespad=0.1,
    )


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


def _days(ts: np.ndarray) -> np.ndarray:
    """Matplotlib date numbers (days) of int64 ns times."""
    from matplotlib.dates import date2num

    return date2num(np.asarray(ts, dtype=np.int64).astype("datetime64[ns]"))
