"""``candles.csv``: each symbol's bars as candlesticks (:class:`engine_core.candles.Candles`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine_core.model import fraction_digits
from engine_core.report.fastcsv import join_rows, time_columns

CANDLES_HEADER = b"symbol,time,open,high,low,close,bars\n"


def write_candles(path: Path, symbols: dict[str, Any]) -> None:
    """``candles.csv``: each symbol's candles (``symbol,time,open,high,low,close,bars``),
    the prices as Python writes floats (exact, shortest)."""
    with path.open("wb") as out:
        out.write(CANDLES_HEADER)
        for symbol, result in symbols.items():
            candles = getattr(result, "candles", None)
            if candles is None:
                continue
            ts, o, h, low, c, bars = candles.candles()
            if not len(ts):
                continue
            times = join_rows([time_columns(ts, fraction_digits(ts))]).tobytes().decode().splitlines()
            out.write(
                "".join(
                    f"{symbol},{time},{a!r},{b!r},{d!r},{e!r},{k}\n"
                    for time, a, b, d, e, k in zip(
                        times, o.tolist(), h.tolist(), low.tolist(), c.tolist(), bars.tolist()
                    )
                ).encode()
            )
