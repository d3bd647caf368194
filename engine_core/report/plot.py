"""The equity and drawdown chart of the HTML report, as PNG bytes."""

from __future__ import annotations

import io

import numpy as np

MAX_POINTS = 5_000


def downsample(
    x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
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


def equity_chart(ts: np.ndarray, equity: np.ndarray, drawdown: np.ndarray) -> bytes:
    """PNG of the equity curve above its drawdown (in percent), byte-identical per input."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    times = np.asarray(ts, dtype=np.int64).astype("datetime64[ns]")
    fig = Figure(figsize=(10, 5.5), dpi=100)
    # fixed margins: a layout engine would cost more than the drawing itself
    fig.subplots_adjust(left=0.1, right=0.98, top=0.97, bottom=0.08, hspace=0.08)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot(*downsample(times, equity), color="#1f5fa8", linewidth=0.9)
    top.set_ylabel("Equity")
    top.ticklabel_format(axis="y", style="plain", useOffset=False)
    top.grid(alpha=0.3)
    dd_times, dd = downsample(times, drawdown)
    bottom.fill_between(dd_times, -100.0 * dd, 0.0, color="#c0392b", alpha=0.5, linewidth=0)
    bottom.set_ylabel("Drawdown %")
    bottom.grid(alpha=0.3)
    locator = AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
