"""The keys of the ``[source]`` table for ``type = "csv"``."""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, datetime, time
from typing import Literal

from pydantic import Field, field_validator, model_validator

from engine_core import PluginConfig, epoch_ns

FieldName = Literal["time", "open", "high", "low", "close", "volume"]
ColumnRef = str | int
"""A column by header name (case-insensitive) or by 0-based position."""


class CsvConfig(PluginConfig):
    """Where the CSV files are and how to read them.

    Symbols: with ``symbol_column`` each row names its symbol; otherwise each
    file holds one symbol, ``symbol`` if set, else the first group of
    ``symbol_pattern`` searched in the file's stem, else the longest engine
    symbol that the stem equals or starts with followed by a non-alphanumeric
    character (``BTCUSDT.csv``, ``BTCUSDT-1m-2024-01.csv``). Files and rows of
    symbols the engine does not trade are ignored.
    """

    path: str
    """A file, a directory (its ``*.csv`` files) or a glob, relative to the config file."""
    symbol: str | None = None
    symbol_pattern: str | None = None
    symbol_column: ColumnRef | None = None
    columns: dict[FieldName, ColumnRef] = Field(default_factory=dict)
    """Where each field is; unset fields are found by header name, else by position."""
    header: bool | None = None
    """Whether the first line is a header; by default, when none of its fields is a number."""
    time_unit: Literal["auto", "s", "ms", "us", "ns"] = "auto"
    """Unit of numeric times; ``auto`` decides per value by magnitude."""
    timezone: str = "UTC"
    """IANA zone of datetimes (and of ``start``/``end``) written without an offset."""
    start: datetime | date | None = None
    """First time included."""
    end: datetime | date | None = None
    """First time excluded."""
    delimiter: str = ","
    on_bad_row: Literal["error", "skip"] = "error"
    chunk_rows: int = Field(default=16_384, ge=1)
    """About how many rows each emitted chunk holds."""

    @field_validator("symbol_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as err:
                raise ValueError(f"not a regular expression: {err}") from err
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown IANA time zone {value!r}") from err
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1 or value in '\r\n"':
            raise ValueError("must be one character other than a quote or newline")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CsvConfig:
        given = [k for k in ("symbol", "symbol_pattern", "symbol_column") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"set at most one of {', '.join(given)}")
        start, end = self.start_ns(), self.end_ns()
        if start is not None and end is not None and start >= end:
            raise ValueError("start must be before end")
        return self

    def start_ns(self) -> int | None:
        """``start`` as nanoseconds since the epoch (naive values in ``timezone``)."""
        return _to_ns(self.start, self.timezone)

    def end_ns(self) -> int | None:
        """``end`` as nanoseconds since the epoch (naive values in ``timezone``)."""
        return _to_ns(self.end, self.timezone)


def _to_ns(value: datetime | date | None, zone: str) -> int | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.combine(value, time())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return epoch_ns(moment)
