"""What each venue plugin's test asserts of a backtest on its venue: a config
naming the venue's broker in ``mode = "backtest"`` (on CSV bars and the
shipped ``sma_cross.lua``) is refused by ``engine validate`` and ``engine
run`` in one line, before anything is built: no report, no journal. The
plugin's test adds that its local venue received no request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine_core.testing.processes import run_engine

SMA_CROSS = Path(__file__).resolve().parents[2] / "strategies" / "sma_cross.lua"


def venue_backtest(folder: Path, symbol: str, day: str, broker: dict[str, Any]) -> Path:
    """``folder/backtest.toml``: a backtest of ``symbol`` over 40 minute bars
    of ``day`` (``2024-01-02 15``: from that hour) with ``broker`` as its
    ``[broker]`` table."""
    from engine_core.testing import write_config

    data = folder / "data"
    data.mkdir()
    rows = "".join(f"{day}:{m:02d}:00,{p},{p + 1},{p - 1},{p},1\n" for m, p in enumerate(range(100, 140)))
    (data / f"{symbol}.csv").write_text("datetime,open,high,low,close,volume\n" + rows)
    return write_config(
        folder / "backtest.toml",
        {
            "engine": {"mode": "backtest", "symbols": [symbol], "window": 10},
            "source": {"type": "csv", "path": "data"},
            "strategy": {"script": str(SMA_CROSS), "params": {"fast": 2, "slow": 5}},
            "broker": broker,
            "report": {"dir": "out"},
        },
    )


def assert_refused_before_anything(config: Path, broker: str) -> None:
    """``engine validate`` and ``engine run`` of ``config`` exit 2 with the one
    line naming its venue ``broker``, and leave no report or journal behind."""
    refusal = f'[broker] type = "{broker}" is a venue broker; mode "backtest" runs only simulated brokers (paper'
    for command in ("validate", "run"):
        done = run_engine(command, "-c", str(config), cwd=config.parent)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {config}: {refusal}"), (command, lines)
        assert "ok (" not in done.stdout
    assert not (config.parent / "out").exists() and not (config.parent / ".engine").exists()
