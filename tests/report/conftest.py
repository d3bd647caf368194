"""The ``build`` fixture: hand-made run results at known times for the report tests."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from engine_core.model import RoundTrip, Side
from engine_core.results import RunResult, SymbolResult


class Build:
    """Makers of symbol results, round trips and runs; bars sit whole minutes after T0."""

    MINUTE = 60 * 1_000_000_000
    T0 = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z

    @staticmethod
    def symbol(
        name: str,
        minutes: list[float],
        pnl: list[float],
        exposed: list[bool] | None = None,
        **extra,
    ) -> SymbolResult:
        ts = Build.T0 + (np.array(minutes, dtype=np.float64) * Build.MINUTE).astype(np.int64)
        flags = np.array(exposed if exposed is not None else [False] * len(pnl), dtype=bool)
        return SymbolResult(name, ts, np.array(pnl, dtype=np.float64), flags, **extra)

    @staticmethod
    def trip(name: str, pnl: str, exit_minute: int, side: Side = Side.BUY, reason: str = "exit") -> RoundTrip:
        exit_ts = Build.T0 + exit_minute * Build.MINUTE
        return RoundTrip(
            name,
            side,
            Decimal("0.5"),
            Build.T0,
            Decimal("100.25"),
            exit_ts,
            Decimal(101),
            Decimal(pnl),
            Decimal("0.05"),
            reason,
        )

    @staticmethod
    def run(*symbols: SymbolResult, start_cash: str = "100", strategy: str = "demo.lua") -> RunResult:
        return RunResult(
            strategy,
            "backtest",
            Decimal(start_cash),
            {s.symbol: s for s in symbols},
            source_stats={"bars": sum(s.bars for s in symbols)},
            params={"fast": 5, "size": Decimal("0.5")},
        )


@pytest.fixture
def build() -> type[Build]:
    return Build
