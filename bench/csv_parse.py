"""Throughput of the CSV source: rows per second through ``CsvSource.history()``,
and its CPU time as a ratio of pyarrow's CSV reader alone on the same file.

Writes a 1,000,000-row GBM file (the default ``datetime,...`` layout) and an
epoch-millisecond copy to a temporary directory, then times a full read of
each. The reference, measured in the same run since these machines' speed
varies: ``pyarrow.csv.read_csv`` of the whole file into the same column types,
on one thread, with none of the source's checks. CPU time is the process's
(every thread's), the best of 3.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
from engine_plugin_csv import CsvConfig, CsvSource
from engine_plugin_csv.sample import write_gbm_csv

ROWS = 1_000_000
RUNS = 3


def source_read(base_dir: Path, name: str) -> tuple[float, float]:
    """Wall and CPU seconds of a full read through the source."""
    source = CsvSource(CsvConfig(path=name, symbol="BTCUSDT"), symbols=["BTCUSDT"], base_dir=base_dir)
    wall, cpu = time.perf_counter(), time.process_time()
    rows = sum(len(chunk) for chunk in source.history())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    source.close()
    assert rows == ROWS, rows
    return wall, cpu


def pyarrow_read(path: Path) -> float:
    """CPU seconds of pyarrow's CSV reader alone."""
    time_type = pa.timestamp("ns") if path.name == "iso.csv" else pa.int64()
    names = ["time", "open", "high", "low", "close", "volume"]
    cpu = time.process_time()
    table = pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
        convert_options=pcsv.ConvertOptions(column_types={"time": time_type} | dict.fromkeys(names[1:], pa.float64())),
    )
    cpu = time.process_time() - cpu
    assert table.num_rows == ROWS, table.num_rows
    return cpu


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
            runs = [source_read(base, name) for _ in range(RUNS)]
            wall = min(w for w, _ in runs)
            cpu = min(c for _, c in runs)
            reference = min(pyarrow_read(base / name) for _ in range(RUNS))
            print(
                f"csv_parse {name}: {ROWS:,} rows, {ROWS / wall:,.0f} rows/s; CPU {cpu:.3f} s, "
                f"pyarrow.csv alone {reference:.3f} s: {cpu / reference:.2f}x the reference (best of {RUNS})"
            )


if __name__ == "__main__":
    main()
