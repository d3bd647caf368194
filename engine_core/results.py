"""What a finished run hands to the report: per-symbol series and round trips.

Everything here is derived from event time only (no wall clock), so the same
config and data give byte-identical reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from engine_core.model import RoundTrip

if TYPE_CHECKING:
    from engine_core.worker import SymbolWorker


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


def symbol_result(w: SymbolWorker) -> SymbolResult:
    """What a symbol's worker hands to the report once its run has ended."""
    ts, pnl, exposed = w.ledger.series()
    return SymbolResult(
        symbol=w.symbol,
        ts=ts,
        pnl=pnl,
        exposed=exposed,
        trades=list(w.ledger.trades),
        orders=w.orders_sent,
        fills=w.ledger.fills,
        final_state=w.sm.state.value,
        position_qty=w.ledger.qty,
        halted=w.halted,
        errors=list(w.errors),
        candles=w.candles,
    )


@dataclass
class RunResult:
    strategy: str  # script path or class name, as configured
    mode: str  # backtest | live
    start_cash: Decimal
    symbols: dict[str, SymbolResult]  # in configured order
    source_stats: dict[str, Any] = field(default_factory=dict)
    sink_stats: list[dict[str, Any]] = field(default_factory=list)  # sinks that report figures
    params: dict[str, Any] = field(default_factory=dict)
