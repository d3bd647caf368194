"""A live run says, before it connects, which venue and account it trades:
real money with ``paper = false``, the endpoint, the first characters of the
key id at most, never the secret."""

from __future__ import annotations

from engine_plugin_alpaca import plugin as alpaca_plugin
from engine_plugin_alpaca.broker import AlpacaBroker
from engine_plugin_alpaca.config import LIVE_URL
from engine_plugin_alpaca.testing import KEY_ID, SECRET

import engine_core.testing as core_testing
from engine_core.runner import build_engine
from engine_core.testing import EngineThread, builtin_registry, replay_rows, write_config


def test_a_live_run_names_real_money_and_the_account_before_it_connects(tmp_path, server):
    (tmp_path / "s.py").write_text(
        "class S:\n    def watch(self, ctx): pass\n    def close_watch(self, ctx): pass\n"
        "    def in_trade(self, ctx): pass\n"
    )
    config = write_config(
        tmp_path / "live.toml",
        {
            "engine": {"mode": "live", "symbols": ["AAPL"], "window": 5},
            "source": {"type": "replay", "bars": replay_rows("AAPL", [100.0] * 3)},
            "strategy": {"host": "python", "class": "s.py:S"},
            "broker": {
                "type": "alpaca",
                "key_id": KEY_ID,
                "secret_key": SECRET,
                "paper": False,
                "trading_url": server.http_url,
            },
        },
    )
    engine = build_engine(config, builtin_registry(("alpaca", alpaca_plugin), ("testing", core_testing)))
    lines: list[str] = []
    engine.notice = lambda line: lines.append(f"{line} (requests so far: {len(server.received)})")
    EngineThread(engine).start().join()
    assert lines == [f"trading on alpaca, REAL MONEY: {server.http_url}, key id P... (requests so far: 0)"]
    assert SECRET not in lines[0] and KEY_ID not in lines[0]


def test_real_money_without_an_override_is_alpacas_live_endpoint(broker_config):
    broker = AlpacaBroker(broker_config(paper=False, trading_url=None), on_update=lambda update: None)
    assert broker.describe_account() == f"alpaca, REAL MONEY: {LIVE_URL}, key id P..."
    paper = AlpacaBroker(broker_config(trading_url=None), on_update=lambda update: None)
    assert paper.describe_account().startswith("alpaca, the paper account (test money): https://paper-api")
