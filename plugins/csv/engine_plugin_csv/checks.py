"""Row checks, and what happens to a rejected row: an error, or skipped and counted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine_core import DataError, iso_utc

REASONS = (
    "",
    "wrong field count",
    "bad value",
    "missing value",
    "high < low",
    "open/close outside [low, high]",
    "negative volume",
    "duplicate time",
    "time going backwards",
    "infinite value",
    "price not positive",
)
"""Why a row is rejected, indexed by reason code (0 = accepted)."""
FIELD_COUNT, BAD_VALUE, MISSING, HIGH_LOW, OUTSIDE, NEGATIVE_VOLUME, DUPLICATE, BACKWARDS, INFINITE, NOT_POSITIVE = (
    range(1, 11)
)

COLUMNS = ("time", "open", "high", "low", "close", "volume")


def check_rows(ts: np.ndarray, prices: np.ndarray, ts_missing: np.ndarray, last_ts: int) -> np.ndarray:
    """Reason codes of each row (0 = good).

    ``prices`` is (5, n): open, high, low, close, volume, NaN where missing.
    Prices must be positive and every value finite. Times must strictly
    increase over the accepted rows, after ``last_ts``.
    """
    if _all_good(ts, prices, ts_missing, last_ts):
        return np.zeros(len(ts), dtype=np.uint8)
    o, h, low, c, v = prices
    missing = ts_missing | np.isnan(prices).any(axis=0)
    infinite = np.isinf(prices).any(axis=0)
    not_positive = (prices[:4] <= 0).any(axis=0)
    outside = (o < low) | (o > h) | (c < low) | (c > h)
    conditions = [missing, infinite, not_positive, h < low, outside, v < 0]
    codes = np.zeros(len(ts), dtype=np.uint8)
    if np.logical_or.reduce(conditions).any():
        reasons = [MISSING, INFINITE, NOT_POSITIVE, HIGH_LOW, OUTSIDE, NEGATIVE_VOLUME]
        codes = np.select(conditions, reasons, 0).astype(np.uint8)
    kept = np.flatnonzero(codes == 0)
    t = ts[kept]
    prev = np.maximum(np.concatenate(([last_ts], np.maximum.accumulate(t)[:-1])), last_ts)
    if not (t > prev).all():
        codes[kept[t == prev]] = DUPLICATE
        codes[kept[t < prev]] = BACKWARDS
    return codes


def _all_good(ts: np.ndarray, prices: np.ndarray, ts_missing: np.ndarray, last_ts: int) -> bool:
    """Whether :func:`check_rows` would find nothing wrong, in fewer passes
    over the rows: the usual case, whose codes are all 0."""
    if not len(ts):
        return True
    o, h, low, c, v = prices
    return bool(
        ts[0] > last_ts
        and (ts[1:] > ts[:-1]).all()
        and not ts_missing.any()
        and np.isfinite(prices).all()
        and (low > 0).all()
        and (np.minimum(o, c) >= low).all()
        and (np.maximum(o, c) <= h).all()
        and (v >= 0).all()
    )


def describe(code: int, i: int, ts: np.ndarray, prices: np.ndarray, codes: np.ndarray, last_ts: int) -> str:
    """What is wrong with row ``i`` (arrays as given to :func:`check_rows`)."""
    o, h, low, c, v = (float(x) for x in prices[:, i])
    if code == MISSING:
        bad = [n for n, x in zip(COLUMNS[1:], prices[:, i]) if np.isnan(x)]
        return f"missing value in {bad[0] if bad else 'time'}"
    if code == INFINITE:
        name, x = next((n, x) for n, x in zip(COLUMNS[1:], prices[:, i]) if np.isinf(x))
        return f"{name} is {x:g}: prices and volumes must be finite"
    if code == NOT_POSITIVE:
        name, x = next((n, x) for n, x in zip(COLUMNS[1:5], prices[:, i]) if x <= 0)
        return f"{name} {x:g} is not a positive price"
    if code == HIGH_LOW:
        return f"high {h:g} < low {low:g}"
    if code == OUTSIDE:
        return f"open {o:g} or close {c:g} outside [low {low:g}, high {h:g}]"
    if code == NEGATIVE_VOLUME:
        return f"negative volume {v:g}"
    before = ts[:i][codes[:i] == 0]
    prev = max(last_ts, int(before.max())) if len(before) else last_ts
    if code == DUPLICATE:
        return f"duplicate time {iso_utc(int(ts[i]))}"
    return f"time {iso_utc(int(ts[i]))} is before the previous row's {iso_utc(prev)}"


@dataclass
class Rejects:
    """The rows one block rejects: line numbers, reason codes, and how to describe one."""

    parts: list[tuple[np.ndarray, np.ndarray, Callable[[int], str]]] = field(default_factory=list)

    def add(self, lines: np.ndarray, codes: np.ndarray, detail: Callable[[int], str]) -> None:
        if len(lines):
            self.parts.append((lines, codes, detail))

    def first(self) -> tuple[int, str]:
        """Line number and description of the earliest rejected row."""
        lines, _, detail = min(self.parts, key=lambda part: int(part[0].min()))
        j = int(np.argmin(lines))
        return int(lines[j]), detail(j)


class RowLog:
    """Counts rows; raises on a rejected row, or (``skip``) counts it by reason."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.rows = 0
        self.skipped: Counter[str] = Counter()
        self.first_skipped: str | None = None

    def settle(self, path: Path, rejects: Rejects) -> None:
        """Raise ``DataError`` for the earliest rejected row, or count them all."""
        if not rejects.parts:
            return
        line, detail = rejects.first()
        message = f"{path}:{line}: {detail}"
        if not self.skip:
            raise DataError(message)
        for _, codes, _ in rejects.parts:
            for code, count in zip(*np.unique(codes, return_counts=True)):
                self.skipped[REASONS[code]] += int(count)
        self.first_skipped = self.first_skipped or message

    def stats(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "skipped_rows": sum(self.skipped.values()),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "first_skipped": self.first_skipped,
        }
