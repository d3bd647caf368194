"""A backtest never reaches Alpaca: a config that names the alpaca broker
with ``paper = false`` in ``mode = "backtest"`` is refused by ``engine
validate`` and ``engine run`` in one line, before any connection: the local
venue receives no request at all."""

from __future__ import annotations

from pathlib import Path

from engine_plugin_alpaca.testing import KEY_ID, SECRET

from engine_core.testing import run_engine, write_config

ROOT = Path(__file__).resolve().parents[3]
REFUSAL = '[broker] type = "alpaca" is a venue broker; mode "backtest" runs only simulated brokers (paper'


def test_validate_and_run_refuse_a_backtest_on_alpaca_before_any_request(tmp_path, server):
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(f"2024-01-02 15:{m:02d}:00,{p},{p + 1},{p - 1},{p},1\n" for m, p in enumerate(range(100, 140)))
    (data / "AAPL.csv").write_text("datetime,open,high,low,close,volume\n" + rows)
    config = write_config(
        tmp_path / "backtest.toml",
        {
            "engine": {"mode": "backtest", "symbols": ["AAPL"], "window": 10},
            "source": {"type": "csv", "path": "data"},
            "strategy": {"script": str(ROOT / "strategies" / "sma_cross.lua"), "params": {"fast": 2, "slow": 5}},
            "broker": {
                "type": "alpaca",
                "key_id": KEY_ID,
                "secret_key": SECRET,
                "paper": False,
                "trading_url": server.http_url,
            },
            "report": {"dir": "out"},
        },
    )
    for command in ("validate", "run"):
        done = run_engine(command, "-c", str(config), cwd=tmp_path)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {config}: {REFUSAL}"), (command, lines)
    assert server.received == []  # no request of any kind: no account, no clock, no order
    assert not (tmp_path / "out").exists() and not (tmp_path / ".engine").exists()
