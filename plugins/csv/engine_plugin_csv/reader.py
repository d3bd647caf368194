"""Read files into checked single-symbol bar chunks within the configured time window."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine_core.errors import DataError
from engine_core.model import BarChunk
from engine_plugin_csv.checks import Rejects, RowLog, check_rows, describe
from engine_plugin_csv.config import CsvConfig
from engine_plugin_csv.layout import detect_layout
from engine_plugin_csv.parse import BadLine, Block, BlockParser, Columns, read_blocks

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
        first, first_number = _next_line(stream, 1)
        if first is None:
            raise DataError(f"{path}: empty file (no data rows)")
        data_start, data_number = stream.tell(), first_number + 1
        data, _ = _next_line(stream, data_number)
        layout = detect_layout(path, first.decode("utf-8", "replace"), _text(data), self.config)
        if not layout.header:
            data, data_start, data_number = first, 0, 1
        stream.seek(data_start)
        parser = BlockParser(layout, self.config, self.symbols)
        size = max(len(data or b""), 16) * self.config.chunk_rows
        for block in read_blocks(stream, data_number, size):
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


def _next_line(stream: BinaryIO, number: int) -> tuple[bytes | None, int]:
    """The next non-blank line at or after line ``number``, and its number."""
    for line in iter(stream.readline, b""):
        if line.strip(b"\r\n"):
            return line, number
        number += 1
    return None, number


def _text(line: bytes | None) -> str | None:
    return None if line is None else line.decode("utf-8", "replace")
