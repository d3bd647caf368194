"""Throughput of the CSV source: rows per second through ``CsvSource.history()``.

Writes a 1,000,000-row GBM file (the default ``datetime,...`` layout) and an
epoch-millisecond copy to a temporary directory, then times a full read of each.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from engine_plugin_csv import CsvConfig, CsvSource
from engine_plugin_csv.sample import write_gbm_csv

ROWS = 1_000_000


def rows_per_second(base_dir: Path, name: str) -> float:
    source = CsvSource(CsvConfig(path=name, symbol="BTCUSDT"), symbols=["BTCUSDT"], base_dir=base_dir)
    began = time.perf_counter()
    rows = sum(len(chunk) for chunk in source.history())
    elapsed = time.perf_counter() - began
    source.close()
    assert rows == ROWS, rows
    return rows / elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        write_gbm_csv(base / "iso.csv", "BTCUSDT", ROWS, seed=1)
        lines = (base / "iso.csv").read_text().splitlines()[1:]
        stamps = np.array([line[:19] for line in lines], dtype="datetime64[ms]").astype(np.int64)
        with (base / "epoch.csv").open("w") as out:
            out.write("timestamp,open,high,low,close,volume\n")
            out.writelines(f"{ms}{line[19:]}\n" for ms, line in zip(stamps.tolist(), lines))
        for name in ("iso.csv", "epoch.csv"):
            best = max(rows_per_second(base, name) for _ in range(3))
            print(f"csv_parse {name}: {ROWS:,} rows, {best:,.0f} rows/s (best of 3)")


if __name__ == "__main__":
    main()
