"""Vectorised CSV text for long columns (1,000,000 rows in a fraction of a second).

A formatter returns a :class:`Column`: its width in bytes, found from the
values, and a writer that puts the ASCII text of every value into its columns
of a ``uint8`` matrix with one row per line. :func:`join_rows` lays the
columns out side by side in one matrix, has each write its part in place, and
drops the NUL bytes a column pads with (the blanks before a number's first
digit). Bytes are moved 8, 4, 2 or 1 at a time as integers (:func:`_lanes`),
and digits come four at a time from a table: every step is a numpy operation
on whole columns instead of a Python call per value (``np.savetxt`` and
f-strings take about a second per million rows); callers format CHUNK_ROWS
rows at a time, which stay in the CPU cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

import numpy as np

from engine_core.model import NS_PER_DAY, NS_PER_SECOND, SECONDS_PER_DAY

CHUNK_ROWS = 1 << 15
_ZERO = ord("0")


@dataclass(frozen=True)
class Column:
    """The text of ``rows`` values, ``width`` bytes each (NUL-padded): ``put(matrix, at)``
    writes it into columns ``at`` to ``at + width`` of a C-contiguous uint8 matrix."""

    rows: int
    width: int
    put: Callable[[np.ndarray, int], None]


def _lanes(matrix: np.ndarray, at: int, width: int) -> list[np.ndarray]:
    """Columns ``at`` to ``at + width`` of a C-contiguous uint8 matrix as 1-D views of
    little-endian integers 8, 4, 2 or 1 bytes wide, left to right: a copy moves
    a few integers a row instead of ``width`` single bytes."""
    return [matrix.view(lane)["v"].reshape(-1) for lane in _lane_types(at, width, matrix.shape[1])]


@cache
def _lane_types(at: int, width: int, row: int) -> list[np.dtype]:
    """The record types of :func:`_lanes`: one integer field each, in rows of ``row`` bytes."""
    types = []
    while width:
        size = next(s for s in (8, 4, 2, 1) if s <= width)
        types.append(np.dtype({"names": ["v"], "formats": [f"<u{size}"], "offsets": [at], "itemsize": row}))
        at, width = at + size, width - size
    return types


def _put_rows(out: np.ndarray, at: int, table: np.ndarray, rows: np.ndarray) -> None:
    """``table[rows]`` (a C-contiguous uint8 matrix's rows) into columns ``at`` on of ``out``."""
    for target, source in zip(_lanes(out, at, table.shape[1]), _lanes(table, 0, table.shape[1])):
        np.take(source, rows, out=target, mode="clip")


@cache
def _digit_table(size: int) -> np.ndarray:
    """The ``size`` zero-padded ASCII digits of each integer below ``10**size``, one row each."""
    n = np.arange(10**size)[:, None] // 10 ** np.arange(size - 1, -1, -1)
    return (n % 10 + _ZERO).astype(np.uint8)


def _put_digits(out: np.ndarray, at: int, values: np.ndarray, width: int) -> None:
    """Zero-padded decimal digits of non-negative integers into columns ``at`` to
    ``at + width`` of ``out``, four at a time from the right."""
    rest = np.asarray(values).astype(np.uint64, copy=False)  # unsigned division is the quicker
    end = at + width
    while end > at:
        size = min(4, end - at)
        if end - size > at:
            high = rest // 10**size
            low, rest = rest - high * 10**size, high
        else:
            low = rest  # the leftmost digits
        _put_rows(out, end - size, _digit_table(size), low)
        end -= size


def _matrix(n: int, width: int, put: Callable[[np.ndarray, int], None]) -> np.ndarray:
    out = np.empty((n, width), dtype=np.uint8)
    put(out, 0)
    return out


def _dates(days: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD`` of days since the epoch, one row each."""
    date = days.astype("datetime64[D]")
    month_start = date.astype("datetime64[M]")
    year = date.astype("datetime64[Y]").astype(np.int64) + 1970
    month = month_start.astype(np.int64) % 12 + 1
    day = (date - month_start).astype(np.int64) + 1

    def put(out: np.ndarray, at: int) -> None:
        _put_digits(out, at, year, 4)
        out[:, [at + 4, at + 7]] = ord("-")
        _put_digits(out, at + 5, month, 2)
        _put_digits(out, at + 8, day, 2)

    return _matrix(len(days), 10, put)


@cache
def _clock_table() -> np.ndarray:
    """``HH:MM:SS`` of every second of a day, looked up by second."""
    seconds = np.arange(SECONDS_PER_DAY)

    def put(out: np.ndarray, at: int) -> None:
        _put_digits(out, at, seconds // 3600, 2)
        out[:, [at + 2, at + 5]] = ord(":")
        _put_digits(out, at + 3, seconds // 60 % 60, 2)
        _put_digits(out, at + 6, seconds % 60, 2)

    return _matrix(SECONDS_PER_DAY, 8, put)


def time_columns(ts: np.ndarray, frac_digits: int = 0) -> Column:
    """ISO 8601 UTC text of int64 epoch nanoseconds, e.g. ``2024-01-02T03:04:05Z``:
    :func:`engine_core.model.iso_utc` of a whole column at once.

    ``frac_digits`` digits of the second follow a point if non-zero (see
    :func:`engine_core.model.fraction_digits`). Dates are formatted once per distinct day and
    clock times come from a table, then both are looked up.
    """
    ts = np.asarray(ts, dtype=np.int64)
    n = len(ts)
    width = 20 + (frac_digits + 1 if frac_digits else 0)

    def put(out: np.ndarray, at: int) -> None:
        days, ns_of_day = np.divmod(ts, NS_PER_DAY)
        first = days.min() if n else 0
        _put_rows(out, at, _dates(np.arange(first, days.max() + 1 if n else 0)), days - first)
        out[:, at + 10] = ord("T")
        _put_rows(out, at + 11, _clock_table(), ns_of_day // NS_PER_SECOND)
        if frac_digits:
            out[:, at + 19] = ord(".")
            _put_digits(out, at + 20, ns_of_day % NS_PER_SECOND // 10 ** (9 - frac_digits), frac_digits)
        out[:, at + width - 1] = ord("Z")

    return Column(n, width, put)


def fixed_columns(values: np.ndarray, decimals: int) -> Column:
    """Fixed-point text of floats with ``decimals`` digits after the point.

    Non-finite values become empty fields. Values must fit in int64 once
    scaled by ``10**decimals``. A sign column is there only if a value shows
    a minus, and blanks pad the numbers shorter than the longest on the left.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    finite = np.isfinite(values)
    every = bool(finite.all())
    clean = values if every else np.where(finite, values, 0.0)
    below = bool(n and clean.min() < 0)
    scaled = np.rint((np.abs(clean) if below else clean) * 10.0**decimals).astype(np.uint64)  # unsigned: quicker
    whole = scaled // 10**decimals
    frac = scaled - whole * 10**decimals
    digits = len(str(int(whole.max()))) if n else 1
    negative = (clean < 0) & (scaled > 0) if below else np.zeros(0, bool)
    sign = int(negative.any())
    width = sign + digits + (decimals + 1 if decimals else 0)

    def put(out: np.ndarray, at: int) -> None:
        if sign:
            out[:, at] = np.where(negative, ord("-"), 0)
        _put_digits(out, at + sign, whole, digits)
        if n and whole.min() < 10 ** (digits - 1):
            # blank the leading zeros, keeping the units digit
            lengths = np.searchsorted(10 ** np.arange(1, digits, dtype=np.uint64), whole, side="right") + 1
            out[:, at + sign : at + sign + digits][np.arange(digits) < digits - lengths[:, None]] = 0
        if decimals:
            out[:, at + sign + digits] = ord(".")
            _put_digits(out, at + sign + digits + 1, frac, decimals)
        if not every:
            out[~finite, at : at + width] = 0

    return Column(n, width, put)


def decimal_places(values: Iterable[Decimal]) -> int:
    """The fewest decimals that show every one of ``values`` exactly (as
    :func:`engine_core.model.fraction_digits` does for times): a column of
    prices or quantities then reads at one precision, the instrument's.

    A value is normalized (its trailing zeros dropped) only when its text
    shows more decimals than found so far or is not plain digits:
    normalizing never adds decimals, and a Decimal's text is the quicker to make."""
    places = 0
    for value in values:
        whole, _, decimals = str(value).partition(".")
        if len(decimals) <= places and (whole + decimals).lstrip("-").isdigit():
            continue
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            places = -exponent
    return places


def decimal_format(places: int) -> str:
    """The format spec that writes a Decimal with exactly ``places`` decimals
    (``format(value, spec)``); exact when ``places`` is at least
    :func:`decimal_places` of it (never rounded)."""
    return f".{places}f"


def join_rows(fields: list[Column], sep: str = ",") -> np.ndarray:
    """CSV lines (``sep`` between fields, ``\\n`` after each row) as a flat uint8 array."""
    n = fields[0].rows
    matrix = np.empty((n, sum(f.width for f in fields) + len(fields)), dtype=np.uint8)
    at = 0
    for field in fields:
        field.put(matrix, at)
        at += field.width
        matrix[:, at] = ord(sep)
        at += 1
    matrix[:, -1] = ord("\n")
    flat = matrix.reshape(-1)
    return flat if not n or matrix.min() else flat[flat != 0]
