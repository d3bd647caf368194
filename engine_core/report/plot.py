"""The equity and drawdown chart of the HTML report, as PNG bytes."""

from __future__ import annotations

import io

import numpy as np

MAX_POINTS = 5_000


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points: the minimum and maximum of each bucket, in time order.

    Keeping both extremes of every bucket keeps short spikes and drawdowns
    visible, which plain striding would drop.
    """
    n = len(y)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    size = -(-n // buckets)
    padded = np.concatenate([y, np.full(buckets * size - n, y[-1])]).reshape(buckets, size)
    ends = np.sort(np.stack([padded.argmin(axis=1), padded.argmax(axis=1)], axis=1), axis=1)
    idx = np.minimum((ends + (np.arange(buckets) * size)[:, None]).ravel(), n - 1)
    return x[idx], y[idx]


class Downsampler:
    """:func:`downsample` of an ``n``-point series fed in consecutive pieces of any length.

    Holds less than one bucket between pieces, so memory stays bounded by the
    piece size; the points it keeps are exactly those :func:`downsample` keeps.
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
            # as downsample: pad the final buckets with the last value
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


def equity_chart(ts: np.ndarray, equity: np.ndarray, drawdown: np.ndarray) -> bytes:
    """PNG of the equity curve above its drawdown (in percent), byte-identical per input."""
    ts = np.asarray(ts, dtype=np.int64)
    return chart_png(*downsample(ts, equity), *downsample(ts, drawdown))


def chart_png(equity_ts: np.ndarray, equity: np.ndarray, drawdown_ts: np.ndarray, drawdown: np.ndarray) -> bytes:
    """:func:`equity_chart` of already downsampled points (int64 ns times)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.5), dpi=100)
    # fixed margins: a layout engine would cost more than the drawing itself
    fig.subplots_adjust(left=0.1, right=0.98, top=0.97, bottom=0.08, hspace=0.08)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot(_datetimes(equity_ts), equity, color="#1f5fa8", linewidth=0.9)
    top.set_ylabel("Equity")
    top.ticklabel_format(axis="y", style="plain", useOffset=False)
    top.grid(alpha=0.3)
    bottom.fill_between(_datetimes(drawdown_ts), -100.0 * drawdown, 0.0, color="#c0392b", alpha=0.5, linewidth=0)
    bottom.set_ylabel("Drawdown %")
    bottom.grid(alpha=0.3)
    locator = AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _datetimes(ts: np.ndarray) -> np.ndarray:
    return np.asarray(ts, dtype=np.int64).astype("datetime64[ns]")
