"""``CsvSource``: historical bars from CSV files, for backtests."""

from __future__ import annotations

import glob
import re
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

from engine_core import BarChunk, DataError, DataSource, iso_utc
from engine_plugin_csv.checks import RowLog
from engine_plugin_csv.config import CsvConfig
from engine_plugin_csv.merge import demux, merge_by_time
from engine_plugin_csv.reader import FileGroupReader, peek


class CsvSource(DataSource):
    """Streams bars from CSV files, merged across symbols by time (see ``merge``).

    Only the engine's symbols are read: files and rows of other symbols are
    ignored. Each of the engine's symbols must have at least one bar in the
    configured window, or ``history()`` raises ``DataError`` before the first
    chunk.
    """

    Config = CsvConfig
    config: CsvConfig

    def __init__(self, config: CsvConfig, *, symbols: Sequence[str], base_dir: Path) -> None:
        super().__init__(config, symbols=symbols, base_dir=base_dir)
        self._log = RowLog(skip=config.on_bad_row == "skip")
        self._files: list[Path] = []
        self._readers: list[Generator[BarChunk, None, None]] = []

    def history(self) -> Iterator[BarChunk]:
        self._files = find_files(self.base_dir, self.config.path)
        streams = []
        for paths, symbols in self._groups(self._files):
            reader = iter(FileGroupReader(paths, self.config, symbols, self._log))
            self._readers.append(reader)
            where = ", ".join(str(p) for p in paths)
            for symbol, stream in zip(symbols, demux(reader, symbols)):
                streams.append(_nonempty(stream, f"no data for {symbol} in {where}{self._window()}"))
        yield from merge_by_time(streams)

    def check(self) -> list[str]:
        """What can be known without reading the data: the files exist, each
        symbol has one, each file's header and first data row read, and (a
        file per symbol) the window ``start``/``end`` overlaps the span from
        a symbol's first row to its last. Raises ``DataError``."""
        files = find_files(self.base_dir, self.config.path)
        skip = self.config.on_bad_row == "skip"
        for paths, symbols in self._groups(files):
            spans = [peek(path, self.config, symbols, skip) for path in paths]
            if len(symbols) == 1:
                self._check_window(symbols[0], paths, spans[0][0], spans[-1][1])
        unchecked = ["the rows after each file's first (they are checked as the run reads them)"]
        if self.config.symbol_column is not None:
            unchecked.append(f"that each symbol has rows in {self.config.path!r} (each row names its symbol)")
        return unchecked

    def _check_window(self, symbol: str, paths: list[Path], first: int | None, last: int | None) -> None:
        start, end = self.config.start_ns(), self.config.end_ns()
        if first is None or last is None or (start is None and end is None):
            return
        if (start is not None and last < start) or (end is not None and first >= end):
            where = ", ".join(str(p) for p in paths)
            raise DataError(
                f"no data for {symbol} in {where}{self._window()}: the files run from "
                f"{iso_utc(first)} to {iso_utc(last)}"
            )

    def stats(self) -> dict[str, Any]:
        return {"csv": {"files": len(self._files), **self._log.stats()}}

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers.clear()

    def _groups(self, files: list[Path]) -> list[tuple[list[Path], list[str]]]:
        """(files, symbols) read together: all files for a symbol column, else per symbol."""
        if self.config.symbol_column is not None:
            return [(files, self.symbols)]
        by_symbol: dict[str, list[Path]] = {symbol: [] for symbol in self.symbols}
        for path in files:
            symbol = file_symbol(path, self.config, self.symbols)
            if symbol is not None:
                by_symbol[symbol].append(path)
        for symbol, paths in by_symbol.items():
            if not paths:
                raise DataError(
                    f"source.path: no data for {symbol}: no file of {self.config.path!r} in "
                    f"{self.base_dir.resolve()} is named for it (set symbol, symbol_pattern or symbol_column)"
                )
        return [(paths, [symbol]) for symbol, paths in by_symbol.items()]

    def _window(self) -> str:
        start, end = self.config.start, self.config.end
        if start is None and end is None:
            return ""
        return f" from {start or 'the beginning'} until {end or 'the end'}"


def find_files(base_dir: Path, pattern: str) -> list[Path]:
    """The files ``pattern`` names (a file, a directory's ``*.csv``, or a glob), sorted."""
    base_dir = base_dir.resolve()
    target = base_dir / pattern
    if glob.has_magic(pattern):
        found = (base_dir / p for p in glob.glob(pattern, root_dir=base_dir, recursive=True))
        files = sorted(p for p in found if p.is_file())
        why = "no file matches it"
    elif target.is_dir():
        files = sorted(p for p in target.glob("*.csv") if p.is_file())
        why = "a directory without *.csv files"
    else:
        files = [target] if target.is_file() else []
        why = "no such file or directory"
    if not files:
        raise DataError(f"source.path: no CSV files at {pattern!r} (in {base_dir}): {why}")
    return files


def file_symbol(path: Path, config: CsvConfig, symbols: Sequence[str]) -> str | None:
    """The engine symbol a file holds, or None when it holds none of them (see ``CsvConfig``)."""
    stem = path.stem
    if config.symbol is not None:
        named = config.symbol
    elif config.symbol_pattern is not None:
        match = re.search(config.symbol_pattern, stem)
        if match is None:
            return None
        pattern = match.re
        named = match["symbol"] if "symbol" in pattern.groupindex else match[1 if pattern.groups else 0]
    else:
        upper = stem.upper()
        prefixes = [s for s in symbols if upper.startswith(s.upper()) and not upper[len(s) : len(s) + 1].isalnum()]
        return max(prefixes, key=len, default=None)
    return next((s for s in symbols if s.upper() == named.upper()), None)


def _nonempty(stream: Iterator[BarChunk], message: str) -> Iterator[BarChunk]:
    """``stream``, raising ``DataError(message)`` at the start if it is empty."""
    first = next(stream, None)
    if first is None:
        raise DataError(message)
    yield first
    yield from stream
