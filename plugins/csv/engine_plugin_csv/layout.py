"""Work out a file's layout from its first lines: header, columns, kind of time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine_core import DataError
from engine_plugin_csv.config import ColumnRef, CsvConfig, FieldName

PRICE_FIELDS: tuple[FieldName, ...] = ("open", "high", "low", "close", "volume")
TIME_NAMES = ("datetime", "timestamp", "time", "date", "open_time", "ts")
"""Header names taken as the time column when ``columns.time`` is not set;
failing those, a first column without a name (pandas' ``to_csv`` writes its
index, the time, that way)."""

TimeKind = Literal["int", "float", "iso", "iso_tz"]

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_ZONE_SUFFIX = re.compile(r"(Z|[+-]\d\d(:?\d\d)?)$")


@dataclass(frozen=True)
class Layout:
    """How to read one file. Columns are named ``f0, f1, ...`` by position."""

    width: int
    header: bool
    time: int
    prices: tuple[int, ...]
    """Positions of open, high, low, close, volume."""
    symbol: int | None
    time_kind: TimeKind

    @property
    def names(self) -> list[str]:
        return [f"f{i}" for i in range(self.width)]


def detect_layout(path: Path, first: str, data: str | None, config: CsvConfig) -> Layout:
    """The layout of ``path`` given its first line and its first data line.

    ``data`` is None when the first line is all there is.
    """
    fields = _split(first, config.delimiter)
    header = config.header if config.header is not None else not any(map(_is_number, fields))
    row = fields if not header else _split(data, config.delimiter) if data is not None else None
    if row is None:
        raise DataError(f"{path}: empty file (no data rows)")
    names = [name.lower() for name in fields] if header else []

    def find(field: str, ref: ColumnRef | None, default: int | None) -> int:
        if isinstance(ref, int):
            if not 0 <= ref < len(fields):
                raise DataError(f"{path}:1: no column {ref} for {field} (the file has {len(fields)})")
            return ref
        candidates = (ref,) if ref is not None else TIME_NAMES if field == "time" else (field,)
        for name in candidates:
            if name.lower() in names:
                return names.index(name.lower())
        if ref is None and not header and default is not None and default < len(fields):
            return default
        if ref is None and header and field == "time" and names[0] == "":
            return 0
        have = f"header: {excerpt(first.strip(), 80)}" if header else "no header"
        what = f"column {ref!r} for {field}" if ref is not None else f"{field} column"
        raise DataError(f"{path}:1: missing {what} ({have})")

    time = find("time", config.columns.get("time"), 0)
    prices = tuple(find(f, config.columns.get(f), i + 1) for i, f in enumerate(PRICE_FIELDS))
    symbol = None if config.symbol_column is None else find("symbol", config.symbol_column, None)
    return Layout(len(fields), header, time, prices, symbol, _time_kind(row[time]))


def excerpt(text: str | bytes, limit: int = 40) -> str:
    """``text`` for an error line: at most ``limit`` characters, control
    characters and bytes that are not UTF-8 escaped (``\\x00``, ``\\xff``)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return shown + ("..." if len(text) > limit else "")


def _split(line: str, delimiter: str) -> list[str]:
    return [field.strip().strip('"').strip() for field in line.rstrip("\r\n").split(delimiter)]


def _is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def _time_kind(text: str) -> TimeKind:
    if _NUMBER.fullmatch(text):
        return "float" if any(c in text for c in ".eE") else "int"
    return "iso_tz" if len(text) > 10 and _ZONE_SUFFIX.search(text[10:]) else "iso"
