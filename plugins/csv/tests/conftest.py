"""Helpers: write CSV text into tmp_path and read it back through ``CsvSource``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_plugin_csv import CsvConfig, CsvSource

from engine_core.model import BarChunk

Read = Callable[..., list[BarChunk]]


def _ns(text: str) -> int:
    return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


def _bars(chunks: list[BarChunk]) -> list[tuple[Any, ...]]:
    return [
        (b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume)
        for chunk in chunks
        for b in (chunk.bar(i) for i in range(len(chunk)))
    ]


@pytest.fixture
def ns() -> Callable[[str], int]:
    """ISO time (UTC) as nanoseconds since the epoch."""
    return _ns


@pytest.fixture
def bars() -> Callable[[list[BarChunk]], list[tuple[Any, ...]]]:
    """Every bar of some chunks as a plain tuple, in emitted order."""
    return _bars


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def source(tmp_path: Path) -> Callable[..., CsvSource]:
    def make(symbols: Sequence[str] = ("BTCUSDT",), **config: Any) -> CsvSource:
        return CsvSource(CsvConfig(**config), symbols=list(symbols), base_dir=tmp_path)

    return make


@pytest.fixture
def read(source: Callable[..., CsvSource]) -> Read:
    def read(symbols: Sequence[str] = ("BTCUSDT",), **config: Any) -> list[BarChunk]:
        src = source(symbols, **config)
        try:
            return list(src.history())
        finally:
            src.close()

    return read
