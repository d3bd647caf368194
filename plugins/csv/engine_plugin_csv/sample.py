"""Seeded sample data: geometric Brownian motion bars as ``datetime,open,high,low,close,volume``.

``python -m engine_plugin_csv.sample OUT_DIR --symbols BTCUSDT,ETHUSDT --bars 20000 --seed 7``
writes ``OUT_DIR/<SYMBOL>.csv`` for each symbol.
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine_core import SECONDS_PER_YEAR

_VOLATILITY = 0.6
"""Annualised volatility of the simulated price."""


def write_gbm_csv(
    path: Path | str,
    symbol: str,
    bars: int,
    seed: int,
    start: str = "2024-01-01",
    interval_s: int = 60,
    price: float = 100.0,
) -> None:
    """Write ``bars`` bars of a GBM price, starting at ``start`` (UTC), to ``path``.

    The same ``symbol`` and ``seed`` always give the same file; prices have 2
    decimals and volumes 3.

    A path of its own rather than the simulated source's
    (``engine_core.builtin.simulated.gbm_bars``), deliberately: the shipped
    ``examples/data`` is this function's output byte for byte, and the
    README's backtest figures are computed on it.
    """
    rng = np.random.default_rng([seed, zlib.crc32(symbol.encode())])
    sigma = _VOLATILITY * np.sqrt(interval_s / SECONDS_PER_YEAR)
    close = price * np.exp(np.cumsum(rng.normal(-(sigma**2) / 2, sigma, bars)))
    opens = np.concatenate(([price], close[:-1]))
    wick = np.abs(rng.normal(0, sigma / 2, (2, bars)))
    o, c = np.round(opens, 2), np.round(close, 2)
    high = np.maximum(np.round(np.maximum(opens, close) * (1 + wick[0]), 2), np.maximum(o, c))
    low = np.minimum(np.round(np.minimum(opens, close) * (1 - wick[1]), 2), np.minimum(o, c))
    volume = np.round(rng.lognormal(2, 1, bars), 3)
    times = np.datetime64(start, "s") + np.arange(bars) * np.timedelta64(interval_s, "s")
    stamps = np.char.replace(np.datetime_as_string(times.astype("M8[s]"), unit="s"), "T", " ")
    row = "{},{:.2f},{:.2f},{:.2f},{:.2f},{:.3f}".format
    columns = (
        stamps.tolist(),
        o.tolist(),
        high.tolist(),
        low.tolist(),
        c.tolist(),
        volume.tolist(),
    )
    lines = map(row, *columns)
    Path(path).write_text("datetime,open,high,low,close,volume\n" + "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write one sample file per symbol into a directory."""
    parser = argparse.ArgumentParser(prog="python -m engine_plugin_csv.sample", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma-separated")
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--interval-s", type=int, default=60)
    parser.add_argument("--price", type=float, default=100.0)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for symbol in filter(None, args.symbols.split(",")):
        out = args.out_dir / f"{symbol}.csv"
        write_gbm_csv(out, symbol, args.bars, args.seed, args.start, args.interval_s, args.price)
        print(f"wrote {out} ({args.bars} bars)")


if __name__ == "__main__":
    main()
