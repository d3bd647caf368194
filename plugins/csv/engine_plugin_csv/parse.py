"""Cut a file into blocks of whole lines and parse each block with pyarrow.

A block that pyarrow refuses is bisected by lines until each bad line is
isolated, so a malformed row costs a few extra parses of its neighbourhood and
its line number stays exact.

A block is read from the file straight into Arrow's memory and parsed on the
calling thread: no Python copy of the text, and no reader threads. pyarrow's
threaded reader may drop its last reference to the input a moment after
``read_csv`` returned; a Python object (``bytes``) then needs the GIL to be
released, and if the interpreter is exiting by then (a ``DataError`` right
after the read) that thread is killed inside a C++ destructor and the process
aborts ("terminate called without an active exception"). A buffer Arrow owns
is freed without Python. The threads also cost CPU to hand a 16,384-row block
over, and memory (a malloc arena each) the reader never needs: in a backtest
the symbols' workers, not the reader, are the bottleneck.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from engine_plugin_csv import arrays
from engine_plugin_csv.checks import BAD_VALUE, FIELD_COUNT
from engine_plugin_csv.config import CsvConfig
from engine_plugin_csv.layout import PRICE_FIELDS, Layout, excerpt

_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_FIELD_COUNT_ERROR = re.compile(r"Expected (\d+) columns, got (\d+)")
_CONVERSION_ERROR = re.compile(r"column #(\d+): (?:Row #\d+: )?CSV conversion error to [^:]+: (.*)")
_TIME_GAP_ERROR = re.compile(r"doesn't exist in timezone '([^']+)': ([\d-]+ [\d:]+?)(\.0+)? is in a gap")
_NEWLINE = 10
_TAIL = 4096
"""Bytes at the end of a block searched first for its last newline."""


@dataclass(frozen=True)
class Block:
    """Whole lines of a file (ending in a newline); ``line`` is the first one's number."""

    line: int
    data: pa.Buffer

    def data_lines(self, excluded: np.ndarray) -> np.ndarray:
        """Numbers of the non-blank lines (the rows pyarrow reads), less ``excluded``."""
        buf = np.frombuffer(self.data, dtype=np.uint8)
        ends = np.flatnonzero(buf == _NEWLINE)
        starts = np.concatenate(([0], ends[:-1] + 1))
        length = ends - starts
        blank = (length == 0) | ((length == 1) & (buf[starts] == 13))
        lines = self.line + np.flatnonzero(~blank)
        return lines[~np.isin(lines, excluded)] if len(excluded) else lines


_POOL = pa.system_memory_pool()
"""The system allocator hands freed blocks back; Arrow's default pool keeps
them, which costs tens of MB over a long file."""


def arrow_buffer(data: bytes) -> pa.Buffer:
    """``data`` copied into Arrow's own memory (see the module docstring)."""
    sink = pa.BufferOutputStream(memory_pool=_POOL)
    sink.write(data)
    return sink.getvalue()


def open_arrow(path: str) -> pa.NativeFile:
    """``path`` opened for :func:`read_blocks`."""
    return pa.OSFile(path, memory_pool=_POOL)


def read_blocks(file: pa.NativeFile, line: int, size: int) -> Iterator[Block]:
    """Blocks of about ``size`` bytes from ``file``'s position on, whose next line is number ``line``."""
    want = size
    while True:
        start = file.tell()
        data = file.read_buffer(want)
        if not len(data):
            return
        cut = _whole_lines(data) if len(data) == want else len(data)
        if not cut:  # a line longer than the block: read more of it
            file.seek(start)
            want *= 2
            continue
        want = size
        file.seek(start + cut)
        block = data.slice(0, cut)
        if block[cut - 1] != _NEWLINE:  # the file's last line
            block = arrow_buffer(block.to_pybytes() + b"\n")
        yield Block(line, block)
        line += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == _NEWLINE))


def _whole_lines(data: pa.Buffer) -> int:
    """Bytes of ``data`` up to its last newline included (0: no newline)."""
    view = np.frombuffer(data, dtype=np.uint8)
    for width in (_TAIL, len(view)):
        tail = view[-width:]
        found = np.flatnonzero(tail == _NEWLINE)
        if len(found):
            return len(view) - len(tail) + int(found[-1]) + 1
    return 0


@dataclass(frozen=True)
class Columns:
    """A parsed block: times (ns, UTC), prices (5 x n, NaN where missing), symbols."""

    ts: np.ndarray
    ts_missing: np.ndarray
    prices: np.ndarray
    symbol_codes: np.ndarray | None
    """Per row, an index into the engine's symbols, or -1 for any other symbol."""


@dataclass(frozen=True)
class BadLine:
    line: int
    code: int
    detail: str


class BlockParser:
    """Parses blocks of one layout into :class:`Columns`."""

    def __init__(self, layout: Layout, config: CsvConfig, symbols: list[str]) -> None:
        names = layout.names
        time_type = {
            "int": pa.int64(),
            "float": pa.float64(),
            "iso": pa.timestamp("ns"),
            "iso_tz": pa.timestamp("ns", tz="UTC"),
        }[layout.time_kind]
        types = {names[layout.time]: time_type} | {names[i]: pa.float64() for i in layout.prices}
        self._fields = {layout.time: "time"} | dict(zip(layout.prices, PRICE_FIELDS))
        if layout.symbol is not None:
            types[names[layout.symbol]] = pa.dictionary(pa.int32(), pa.string())
            self._fields[layout.symbol] = "symbol"
        self._empty = pa.table({name: pa.array([], types[name]) for name in names if name in types})
        self._layout = layout
        self._time_dtype = np.float64 if layout.time_kind == "float" else np.int64
        self._symbols = {symbol: k for k, symbol in enumerate(symbols)}
        self._zone = config.timezone if layout.time_kind == "iso" and config.timezone != "UTC" else None
        self._unit = config.time_unit
        self._options = {
            "read_options": pcsv.ReadOptions(column_names=names, block_size=1 << 20, use_threads=False),
            "parse_options": pcsv.ParseOptions(delimiter=config.delimiter),
            "convert_options": pcsv.ConvertOptions(
                column_types=types,
                include_columns=[names[i] for i in self._fields],
                null_values=[""],
                strings_can_be_null=False,
            ),
        }

    def parse(self, block: Block) -> tuple[Columns, list[BadLine]]:
        """The rows of ``block`` that pyarrow accepts, and the lines it refuses."""
        try:
            return self._columns(self._table(block.data)), []
        except pa.ArrowInvalid as err:
            tables: list[pa.Table] = []
            bad: list[BadLine] = []
            self._bisect(block, err, tables, bad)
            return self._columns(pa.concat_tables(tables) if tables else self._empty), bad

    def _table(self, data: pa.Buffer) -> pa.Table:
        table = pcsv.read_csv(pa.BufferReader(data), memory_pool=_POOL, **self._options)
        if self._zone is not None:
            import pyarrow.compute as pc  # only here: see ``arrays``

            time = table.column(0)
            local = pc.assume_timezone(time, self._zone, ambiguous="earliest", nonexistent="raise")
            table = table.set_column(0, table.schema.field(0).name, local)
        return table

    def _bisect(self, block: Block, err: pa.ArrowInvalid, tables: list[pa.Table], bad: list[BadLine]) -> None:
        newlines = np.flatnonzero(np.frombuffer(block.data, dtype=np.uint8) == 10)
        if len(newlines) == 1:
            bad.append(BadLine(block.line, *self._reason(err)))
            return
        half = len(newlines) // 2
        cut = int(newlines[half - 1]) + 1
        for part in (
            Block(block.line, block.data.slice(0, cut)),
            Block(block.line + half, block.data.slice(cut)),
        ):
            try:
                tables.append(self._table(part.data))
            except pa.ArrowInvalid as part_err:
                self._bisect(part, part_err, tables, bad)

    def _reason(self, err: pa.ArrowInvalid) -> tuple[int, str]:
        message = str(err).splitlines()[0]
        if match := _FIELD_COUNT_ERROR.search(message):
            return FIELD_COUNT, f"expected {match[1]} fields, got {match[2]}"
        if match := _CONVERSION_ERROR.search(message):
            return BAD_VALUE, f"bad {self._fields.get(int(match[1]), 'value')}: {excerpt(match[2], 60)}"
        if match := _TIME_GAP_ERROR.search(message):
            return BAD_VALUE, f"bad time: {match[2]} does not exist in {match[1]} (a DST gap)"
        return BAD_VALUE, excerpt(message, 100)

    def _columns(self, table: pa.Table) -> Columns:
        layout = self._layout
        ts, missing = arrays.values(table.column(f"f{layout.time}"), self._time_dtype, 0)
        if layout.time_kind not in ("iso", "iso_tz"):
            ts = _epoch_ns(ts, self._unit)
        prices = np.empty((5, table.num_rows))
        for row, i in zip(prices, layout.prices):
            arrays.fill(row, table.column(f"f{i}"), np.nan)
        codes = None
        if layout.symbol is not None:
            codes = arrays.codes(table.column(f"f{layout.symbol}"), self._symbols)
        return Columns(ts, np.zeros(len(ts), dtype=bool) if missing is None else missing, prices, codes)


def _epoch_ns(values: np.ndarray, unit: str) -> np.ndarray:
    """Epoch numbers to int64 nanoseconds; ``auto`` picks s/ms/us/ns per value by magnitude."""
    scale: np.ndarray | int
    if unit == "auto":
        size = np.abs(values)
        low, high = (size.min(), size.max()) if len(size) else (0, 0)
        if not np.isnan(low) and _auto_unit(low) == _auto_unit(high):  # the usual file: one unit
            scale = _auto_unit(low)
        else:
            scale = np.where(size < 1e11, 10**9, np.where(size < 1e14, 10**6, np.where(size < 1e17, 10**3, 1)))
    else:
        scale = _UNIT_NS[unit]
    if values.dtype.kind == "f":
        return np.rint(values * scale).astype(np.int64)
    return values * scale


def _auto_unit(size: float) -> int:
    """Nanoseconds per unit of an epoch number of this magnitude (``time_unit = "auto"``)."""
    return 10**9 if size < 1e11 else 10**6 if size < 1e14 else 10**3 if size < 1e17 else 1
