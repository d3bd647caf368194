"""Plain SVG drawing for the report's chart: scales, axis ticks, and the text of the elements.

Coordinates are written with at most one decimal (a tenth of a pixel), so the
file stays small and the same data gives the same bytes. Time ticks follow
matplotlib's AutoDateLocator and ConciseDateFormatter: a step chosen for the
span, each tick labelled with the finest unit that changes ("Jan", "02",
"14:30"), a tick on a rollover with the unit above ("Feb-01" among hours),
and the date the labels leave out as an offset ("2024-Jan").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from html import escape

import numpy as np

NS = 1_000_000_000
CHAR_WIDTH = 0.6  # an average glyph's width, in font sizes (for laying out legends)
NICE = (1.0, 2.0, 2.5, 5.0, 10.0)
# time axis units, coarsest first: name, about how many seconds, steps (AutoDateLocator's)
UNITS = (
    ("year", 365.25 * 86400, (1, 2, 4, 5, 10, 20, 40, 50, 100, 200, 400, 500, 1000)),
    ("month", 30.44 * 86400, (1, 2, 3, 4, 6)),
    ("day", 86400, (1, 2, 3, 7, 14)),  # days of the month
    ("hour", 3600, (1, 2, 3, 4, 6, 12)),
    ("minute", 60, (1, 5, 10, 15, 30)),
    ("second", 1, (1, 5, 10, 15, 30)),
)
MIN_TICKS, MAX_TICKS = 5, 11
# ConciseDateFormatter's formats per level (year, month, day, hour, minute, second)
FORMATS = ("%Y", "%b", "%d", "%H:%M", "%H:%M", "%H:%M:%S")
ZERO_FORMATS = ("", "%Y", "%b", "%b-%d", "%H:%M", "%H:%M")
OFFSET_FORMATS = ("", "", "%Y-%b", "%Y-%b-%d", "%Y-%b-%d", "%Y-%b-%d %H:%M")


def num(v: float) -> str:
    """A coordinate to a tenth of a pixel: ``12``, ``12.5``, ``-3.1``."""
    return tenths(round(float(v) * 10))


def _gap(v: int) -> str:
    """The separator before a number in a path: none before a minus sign."""
    return "" if v < 0 else " "


class Scale:
    """A linear map from data values in ``[lo, hi]`` onto pixels ``[a, b]``."""

    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        self.lo, self.a = lo, a
        self.k = (b - a) / (hi - lo) if hi != lo else 0.0

    def __call__(self, v: np.ndarray) -> np.ndarray:
        return self.a + (np.asarray(v, np.float64) - self.lo) * self.k

    def at(self, v: float) -> float:
        return self.a + (v - self.lo) * self.k


def padded(lo: float, hi: float, margin: float = 0.05) -> tuple[float, float]:
    """A data range with ``margin`` of its length added on each side (some room if it is one value)."""
    pad = (hi - lo) * margin or abs(hi) * margin or 1.0
    return lo - pad, hi + pad


def value_ticks(lo: float, hi: float, target: int = 7) -> tuple[list[float], int]:
    """Round values in ``[lo, hi]`` about ``target`` of them, and the decimals that show their step."""
    raw = (hi - lo) / target if hi > lo else 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    nice = next(n for n in NICE if n * power >= raw * 0.999)
    step = nice * power
    decimals = max(0, -math.floor(math.log10(step) + 1e-9) + (nice == 2.5))
    first = math.ceil(lo / step - 1e-9)
    ticks = [round(k * step, decimals + 1) for k in range(first, math.floor(hi / step + 1e-9) + 1)]
    return [t + 0.0 for t in ticks], decimals


def _stamp(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)


def time_ticks(t0: int, t1: int) -> tuple[list[int], list[str], str]:
    """Ticks over ``[t0, t1]`` (ns, UTC), their labels and the offset text, as matplotlib's
    AutoDateLocator and ConciseDateFormatter would: the coarsest unit with at least MIN_TICKS
    in the span, at the smallest of its steps that gives at most MAX_TICKS."""
    span = max(t1 - t0, 1) / NS
    unit, seconds, steps = next((u for u in UNITS if span / u[1] >= MIN_TICKS), UNITS[-1])
    step = next((s for s in steps if span / seconds / s <= MAX_TICKS), steps[-1])
    first, last = _stamp(t0), _stamp(t1)
    ticks: list[datetime] = []
    if unit == "year":
        ticks = [datetime(y, 1, 1, tzinfo=timezone.utc) for y in range(first.year, last.year + 1) if y % step == 0]
    elif unit == "month":
        months = (
            datetime(y, m, 1, tzinfo=timezone.utc) for y in range(first.year, last.year + 1) for m in range(1, 13)
        )
        ticks = [t for t in months if (t.month - 1) % step == 0]
    elif unit == "day":
        day = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
        while day <= last:
            if (day.day - 1) % step == 0 and (step == 1 or day.day <= 28):
                ticks.append(day)
            day += timedelta(days=1)
    else:  # hours, minutes, seconds: steps that divide a day
        every = int(step * seconds) * NS
        ticks = [_stamp(t) for t in range(-(-t0 // every) * every, t1 + 1, every)]
    ticks = [t for t in ticks if first <= t <= last]
    return [_ns(t) for t in ticks], *_labels(ticks)


def _ns(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 1000


def _labels(ticks: Sequence[datetime]) -> tuple[list[str], str]:
    """ConciseDateFormatter's labels: the finest field that differs between the ticks sets the level."""
    if not ticks:
        return [], ""
    fields = [(t.year, t.month, t.day, t.hour, t.minute, t.second) for t in ticks]
    level = next((k for k in range(5, -1, -1) if len({f[k] for f in fields}) > 1), 5)
    zero = (0, 1, 1, 0, 0, 0)[level]
    labels = [t.strftime(ZERO_FORMATS[level] if f[level] == zero else FORMATS[level]) for t, f in zip(ticks, fields)]
    if level == 5 and len(ticks) == 1:
        labels = [ticks[0].strftime("%H:%M:%S")]
    return labels, ticks[-1].strftime(OFFSET_FORMATS[level])


def text_width(text: str, size: float) -> float:
    """About how wide ``text`` is drawn at font size ``size``."""
    return len(text) * size * CHAR_WIDTH


def tenths(v: int) -> str:
    """A number of tenths as SVG writes it short: ``12`` for 120, ``-.3`` for -3, ``1.5`` for 15."""
    whole, rest = divmod(abs(v), 10)
    text = (str(whole) if whole else "") + (f".{rest}" if rest else "") or "0"
    return "-" + text if v < 0 else text


@functools.lru_cache(maxsize=1 << 12)
def _step(v: int) -> str:
    """A relative step's number in a path, with its separator: made once per value (the
    steps of a line between neighbouring pixels repeat)."""
    return _gap(v) + tenths(v)


def line_path(xs: np.ndarray, ys: np.ndarray) -> str:
    """A path through the points to a tenth of a pixel: an absolute start, then relative steps
    (``M10 20l.5-3 1 2``); repeated points and the inside of flat runs are left out."""
    x, y = np.rint(np.asarray(xs) * 10).astype(np.int64), np.rint(np.asarray(ys) * 10).astype(np.int64)
    keep = np.ones(len(x), bool)
    keep[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1])
    x, y = x[keep], y[keep]
    inside = np.zeros(len(y), bool)
    inside[1:-1] = (y[1:-1] == y[:-2]) & (y[1:-1] == y[2:])
    x, y = x[~inside], y[~inside]
    if not len(x):
        return ""
    steps = "".join(map(_step, np.stack([np.diff(x), np.diff(y)], axis=1).ravel().tolist()))
    return f"M{tenths(int(x[0]))} {tenths(int(y[0]))}" + (f"l{steps.lstrip()}" if steps else "")


def element(tag: str, body: str = "", /, **attrs: object) -> str:
    """One element; attribute names with ``_`` are written with ``-`` (``stroke_width``), None left out."""
    text = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{escape(num(v) if isinstance(v, float) else str(v))}"'
        for k, v in attrs.items()
        if v is not None
    )
    return f"<{tag}{text}>{body}</{tag}>" if body else f"<{tag}{text}/>"


def text(x: float, y: float, label: str, **attrs: object) -> str:
    return element("text", escape(label), x=float(x), y=float(y), **attrs)


def group(children: Iterable[str], **attrs: object) -> str:
    return element("g", "\n" + "\n".join(children) + "\n", **attrs)
