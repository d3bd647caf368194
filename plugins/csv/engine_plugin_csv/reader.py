"""Read files into checked single-symbol bar chunks within the configured time window."""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import BinaryIO, overload

import numpy as np

from engine_core import BarChunk, DataError
from engine_plugin_csv.checks import Rejects, RowLog, check_rows, describe
from engine_plugin_csv.config import CsvConfig
from engine_plugin_csv.layout import detect_layout, excerpt
from engine_plugin_csv.parse import BadLine, Block, BlockParser, Columns, arrow_buffer, open_arrow, read_blocks

_NEVER = np.iinfo(np.int64).min


class FileGroupReader:
    """Reads a sequence of files as one continuous history of ``symbols``.

    Without a symbol column every row belongs to ``symbols[0]``. Times must
    strictly increase per symbol across all the files, in the order given.
    """

    def __init__(self, paths: list[Path], config: CsvConfig, symbols: list[str], log: RowLog) -> None:
        self.paths = paths
        self.config = config
        self.symbols = symbols
        self.log = log
        self.last = np.full(len(symbols), _NEVER, dtype=np.int64)
        start, end = config.start_ns(), config.end_ns()
        self.start = _NEVER if start is None else start
        self.end = np.iinfo(np.int64).max if end is None else end

    def __iter__(self) -> Generator[BarChunk, None, None]:
        for path in self.paths:
            if self._past_end():
                return
            with path.open("rb") as stream:
                yield from self._read(path, stream)

    def _past_end(self) -> bool:
        return bool((self.last >= self.end).all())

    def _read(self, path: Path, stream: BinaryIO) -> Iterator[BarChunk]:
        origin = skip_bom(path, stream)
        first, first_number = _next_line(path, stream, 1)
        if first is None:
            raise DataError(f"{path}: empty file (no data rows)")
        data_start, data_number = stream.tell(), first_number + 1
        data, _ = _next_line(path, stream, data_number)
        layout = detect_layout(path, _text(first), _text(data), self.config)
        if not layout.header:
            data, data_start, data_number = first, origin, 1
        parser = BlockParser(layout, self.config, self.symbols)
        size = max(len(data or b""), 16) * self.config.chunk_rows
        with open_arrow(str(path)) as file:
            file.seek(data_start)
            for block in read_blocks(file, data_number, size):
                yield from self._chunks(path, block, *parser.parse(block))
                if self._past_end():
                    return

    def _chunks(self, path: Path, block: Block, cols: Columns, bad: list[BadLine]) -> Iterator[BarChunk]:
        rejects = Rejects()
        excluded = np.array([item.line for item in bad], dtype=np.int64)
        rejects.add(excluded, np.array([item.code for item in bad]), lambda j: bad[j].detail)
        out = []
        for k, rows in _by_symbol(cols.symbol_codes, len(self.symbols)):
            ts, prices, missing = cols.ts[rows], cols.prices[:, rows], cols.ts_missing[rows]
            last = int(self.last[k])
            codes = check_rows(ts, prices, missing, last)
            wrong = np.flatnonzero(codes)
            if len(wrong):
                rejects.add(
                    block.data_lines(excluded)[rows][wrong],
                    codes[wrong],
                    _describer(wrong, ts, prices, codes, last),
                )
                keep = codes == 0
                ts, prices = ts[keep], prices[:, keep]
            if len(ts):
                self.last[k] = ts[-1]
            lo, hi = np.searchsorted(ts, [self.start, self.end])
            if hi > lo:
                out.append(BarChunk(self.symbols[k], ts[lo:hi], *prices[:, lo:hi]))
        self.log.settle(path, rejects)
        for chunk in out:
            self.log.rows += len(chunk)
            yield chunk


def _by_symbol(codes: np.ndarray | None, count: int) -> Iterator[tuple[int, slice | np.ndarray]]:
    """(symbol index, rows) for each of the engine's symbols present in a block."""
    if codes is None:
        yield 0, slice(None)
        return
    for k in range(count):
        rows = np.flatnonzero(codes == k)
        if len(rows):
            yield k, rows


def _describer(
    wrong: np.ndarray, ts: np.ndarray, prices: np.ndarray, codes: np.ndarray, last: int
) -> Callable[[int], str]:
    def detail(j: int) -> str:
        i = int(wrong[j])
        return describe(int(codes[i]), i, ts, prices, codes, last)

    return detail


MAX_LINE = 1 << 20
"""Longest line read while working out a file's layout (bytes)."""

_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""Bytes no CSV text holds (tab, CR and LF aside): a sign of a binary file."""
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def skip_bom(path: Path, stream: BinaryIO) -> int:
    """Step over a UTF-8 byte-order mark (spreadsheets write one); return where
    the text starts. UTF-16 text is refused with what to do about it."""
    head = stream.read(3)
    if head.startswith(_UTF16_BOMS):
        raise DataError(f"{path}: UTF-16 text; save the file as UTF-8 (CSV UTF-8 in a spreadsheet)")
    origin = 3 if head == _UTF8_BOM else 0
    stream.seek(origin)
    return origin


def _next_line(path: Path, stream: BinaryIO, number: int) -> tuple[bytes | None, int]:
    """The next non-blank line at or after line ``number``, and its number.

    A binary file is refused here, with a short escaped excerpt of the line:
    a control byte, or a line longer than ``MAX_LINE``.
    """
    for line in iter(lambda: stream.readline(MAX_LINE + 1), b""):
        if len(line) > MAX_LINE or _CONTROL.search(line):
            why = "has control bytes" if len(line) <= MAX_LINE else f"is longer than {MAX_LINE:,} bytes"
            raise DataError(f"{path}:{number}: not a CSV text file: the line {why} (it starts '{excerpt(line)}')")
        if line.strip(b"\r\n"):
            return line, number
        number += 1
    return None, number


@overload
def _text(line: bytes) -> str: ...
@overload
def _text(line: bytes | None) -> str | None: ...
def _text(line: bytes | None) -> str | None:
    return None if line is None else line.decode("utf-8", "backslashreplace")


TAIL = 1 << 16
"""Bytes read from the end of a file to find its last row."""


def peek(path: Path, config: CsvConfig, symbols: list[str], skip: bool) -> tuple[int | None, int | None]:
    """The times of the first and the last row of ``path``, reading only its
    first lines and its tail.

    Raises ``DataError`` as a run would for the file's layout, and (unless
    ``skip``) for a bad first row; a time is None when its row is bad.
    """
    try:
        stream = path.open("rb")
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err.strerror}") from err
    with stream:
        skip_bom(path, stream)
        first, number = _next_line(path, stream, 1)
        if first is None:
            raise DataError(f"{path}: empty file (no data rows)")
        data, data_number = _next_line(path, stream, number + 1)
        layout = detect_layout(path, _text(first), _text(data), config)
        if not layout.header or data is None:
            data, data_number = first, number
        parser = BlockParser(layout, config, symbols)
        first_ts = _row_time(path, parser, data, data_number, skip)
        size = stream.seek(0, 2)
        stream.seek(max(0, size - TAIL))
        lines = [line for line in stream.read().split(b"\n") if line.strip(b"\r")]
        last_ts = _row_time(path, parser, lines[-1], data_number, True) if lines else None
    return first_ts, last_ts


def _row_time(path: Path, parser: BlockParser, line: bytes, number: int, skip: bool) -> int | None:
    """The time of one data row; ``DataError`` naming line ``number`` when it is bad (unless ``skip``)."""
    cols, bad = parser.parse(Block(number, arrow_buffer(line.rstrip(b"\r\n") + b"\n")))
    codes = check_rows(cols.ts, cols.prices, cols.ts_missing, _NEVER) if not bad else None
    if codes is not None and len(codes) and codes[0] == 0:
        return int(cols.ts[0])
    if not skip:
        # codes is None exactly when the row is a bad line
        detail = bad[0].detail if codes is None else describe(int(codes[0]), 0, cols.ts, cols.prices, codes, _NEVER)
        raise DataError(f"{path}:{number}: {detail}")
    return None
