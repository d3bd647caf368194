"""A backtest never reaches Binance: a config that names the binance broker
(keys set, ``testnet = false``) in ``mode = "backtest"`` is refused by
``engine validate`` and ``engine run`` in one line, before any connection:
the local venue receives no request at all."""

from __future__ import annotations

from pathlib import Path

from engine_plugin_binance.testing import API_KEY, API_SECRET

from engine_core.testing import run_engine, write_config

ROOT = Path(__file__).resolve().parents[3]
REFUSAL = '[broker] type = "binance" is a venue broker; mode "backtest" runs only simulated brokers (paper'  # , ...)


def backtest_on_binance(tmp_path: Path, fake) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(f"2024-01-01 00:{m:02d}:00,{p},{p + 1},{p - 1},{p},1\n" for m, p in enumerate(range(100, 140)))
    (data / "BTCUSDT.csv").write_text("datetime,open,high,low,close,volume\n" + rows)
    return write_config(
        tmp_path / "backtest.toml",
        {
            "engine": {"mode": "backtest", "symbols": ["BTCUSDT"], "window": 10},
            "source": {"type": "csv", "path": "data"},
            "strategy": {"script": str(ROOT / "strategies" / "sma_cross.lua"), "params": {"fast": 2, "slow": 5}},
            "broker": {
                "type": "binance",
                "api_key": API_KEY,
                "api_secret": API_SECRET,
                "testnet": False,
                "rest_url": fake.http_url,
                "ws_api_url": fake.ws_api_url,
            },
            "report": {"dir": "out"},
        },
    )


def test_validate_and_run_refuse_a_backtest_on_binance_before_any_request(tmp_path, fake):
    config = backtest_on_binance(tmp_path, fake)
    for command in ("validate", "run"):
        done = run_engine(command, "-c", str(config), cwd=tmp_path)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {config}: {REFUSAL}"), (command, lines)
        assert "ok (" not in done.stdout
    assert fake.received == []  # no request of any kind: no time sync, no account, no order
    assert fake.placed == []
    assert not (tmp_path / "out").exists() and not (tmp_path / ".engine").exists()
