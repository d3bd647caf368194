"""What a finished run hands to the report: per-symbol series and round trips.

Everything here is derived from event time only (no wall clock), so the same
config and data give byte-identical reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from engine_core.model import RoundTrip


@dataclass
class SymbolResult:
    symbol: str
    ts: np.ndarray  # int64 ns, the time of each bar the symbol's worker processed
    pnl: np.ndarray  # float64, realised + unrealised PnL net of costs at each bar's close
    exposed: np.ndarray  # bool, a position was open at that bar's close
    trades: list[RoundTrip] = field(default_factory=list)
    orders: int = 0
    fills: int = 0
    final_state: str = "watch"
    position_qty: Decimal = Decimal(0)
    halted: str | None = None  # why the symbol stopped trading, if it did
    errors: list[str] = field(default_factory=list)
    candles: Any = None  # report.candles.Candles: the bars as candlesticks, for candles.csv

    @property
    def bars(self) -> int:
        return len(self.ts)


@dataclass
class RunResult:
    strategy: str  # script path or class name, as configured
    mode: str  # backtest | live
    start_cash: Decimal
    symbols: dict[str, SymbolResult]  # in configured order
    source_stats: dict[str, Any] = field(default_factory=dict)
    sink_stats: list[dict[str, Any]] = field(default_factory=list)  # sinks that report figures
    params: dict[str, Any] = field(default_factory=dict)
