"""equity.csv text for a 1,000,000-bar run: the engine's vectorised formatter
against columnar CSV writers from libraries, and a plain Python loop.

    .venv/bin/python bench/report_csv.py [rows] [repeats]

Each writer formats the same total curve (one-minute bars, equity near
100,000 with 4 decimals, drawdown with 10) into memory; the figures are the
best of ``repeats``, and each is also given as a ratio of the plain loop's
time measured in the same run (these machines' speed varies from day to day).
A library writer is tried in the form closest to the engine's file that it
can give, and the bench says whether its bytes are the same. Importing a
library is timed apart, in a fresh process: a report pays it once per run.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from engine_core.model import iso_utc
from engine_core.report.files import DRAWDOWN_DECIMALS, EQUITY_HEADER, equity_lines
from engine_core.report.metrics import Drawdown

MINUTE_NS = 60 * 1_000_000_000
DECIMALS = 4  # what the report gives equity near 100,000 (10 significant digits)

Curve = tuple[np.ndarray, np.ndarray, np.ndarray]


def curve(rows: int) -> Curve:
    rng = np.random.default_rng(1)
    ts = 1_700_000_000 * 1_000_000_000 + np.arange(rows, dtype=np.int64) * MINUTE_NS
    equity = 100_000 + np.cumsum(rng.normal(0.0, 5.0, rows))
    return ts, equity, Drawdown()(equity)


def engine(ts: np.ndarray, equity: np.ndarray, dd: np.ndarray) -> bytes:
    out = io.BytesIO()
    out.write(EQUITY_HEADER)
    for text in equity_lines(ts, equity, dd, 0, DECIMALS):
        out.write(text)
    return out.getvalue()


def plain_loop(ts: np.ndarray, equity: np.ndarray, dd: np.ndarray) -> bytes:
    """The reference: one f-string a row (what the engine wrote before fastcsv)."""
    lines = [EQUITY_HEADER.decode()]
    lines += [
        f"{iso_utc(t)},{e:.{DECIMALS}f},{d:.{DRAWDOWN_DECIMALS}f}\n"
        for t, e, d in zip(ts.tolist(), equity.tolist(), dd.tolist())
    ]
    return "".join(lines).encode()


def pyarrow_csv(ts: np.ndarray, equity: np.ndarray, dd: np.ndarray) -> bytes:
    """pyarrow's CSV writer, with times and fixed-point numbers made by pyarrow
    compute casts (its strftime takes seconds per million rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    times = pa.array(ts, pa.timestamp("ns")).cast(pa.timestamp("s")).cast(pa.string())
    times = pc.binary_join_element_wise(pc.replace_substring(times, " ", "T"), "Z", "")
    eq = pa.array(np.round(equity, DECIMALS)).cast(pa.decimal128(18, DECIMALS), safe=False)
    down = pa.array(np.round(dd, DRAWDOWN_DECIMALS)).cast(pa.decimal128(18, DRAWDOWN_DECIMALS), safe=False)
    # a zero decimal with 10 places prints as "0E-10"
    down_text = pc.if_else(pc.equal(down, 0), "0." + "0" * DRAWDOWN_DECIMALS, down.cast(pa.string()))
    out = io.BytesIO()
    out.write(EQUITY_HEADER)
    table = pa.table({"time": times, "equity": eq, "drawdown": down_text})
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return out.getvalue()


def polars_csv(ts: np.ndarray, equity: np.ndarray, dd: np.ndarray) -> bytes:
    """polars' CSV writer, times by its strftime, numbers as fixed-point decimals."""
    import polars as pl

    frame = pl.DataFrame({"time": ts, "equity": equity, "drawdown": dd}).select(
        pl.col("time").cast(pl.Datetime("ns", "UTC")).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        pl.col("equity").round(DECIMALS).cast(pl.Decimal(18, DECIMALS)),
        pl.col("drawdown").round(DRAWDOWN_DECIMALS).cast(pl.Decimal(18, DRAWDOWN_DECIMALS)),
    )
    out = io.BytesIO()
    frame.write_csv(out)
    return out.getvalue()


WRITERS: dict[str, tuple[str | None, Callable[[np.ndarray, np.ndarray, np.ndarray], bytes]]] = {
    "plain loop (reference)": (None, plain_loop),
    "engine (fastcsv)": (None, engine),
    "pyarrow.csv": ("pyarrow", pyarrow_csv),
    "polars": ("polars", polars_csv),
}


def import_seconds(module: str) -> float | None:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(done.stdout) if done.returncode == 0 else None


def first_difference(a: bytes, b: bytes) -> str:
    for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines())):
        if x != y:
            return f"line {i + 1}: {y.decode()!r} (engine: {x.decode()!r})"
    return f"{len(b):,} bytes (engine: {len(a):,})"


def main(rows: int = 1_000_000, repeats: int = 3) -> None:
    data = curve(rows)
    want = engine(*data)
    best: dict[str, float] = {}
    notes: dict[str, str] = {}
    for name, (module, write) in WRITERS.items():
        if module is not None and import_seconds(module) is None:
            notes[name] = f"{module} is not installed: skipped"
            continue
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            text = write(*data)
            times.append(time.perf_counter() - started)
        best[name] = min(times)
        same = "same bytes" if text == want else "differs at " + first_difference(want, text)
        imported = f", import {import_seconds(module):.2f} s" if module else ""
        notes[name] = f"{same}{imported}"
    reference = best["plain loop (reference)"]
    print(f"equity.csv, {rows:,} rows, best of {repeats}:")
    for name in WRITERS:
        if name in best:
            print(f"  {name:24} {best[name]:6.3f} s  {best[name] / reference:5.2f} x the loop  {notes[name]}")
        else:
            print(f"  {name:24} {notes[name]}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
