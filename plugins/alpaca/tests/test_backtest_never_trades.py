"""A backtest never reaches Alpaca: a config that names the alpaca broker
with ``paper = false`` in ``mode = "backtest"`` is refused by ``engine
validate`` and ``engine run`` in one line, before any connection: the local
venue receives no request at all."""

from __future__ import annotations

from engine_plugin_alpaca.testing import KEY_ID, SECRET

from engine_core.testing.refusals import assert_refused_before_anything, venue_backtest


def test_validate_and_run_refuse_a_backtest_on_alpaca_before_any_request(tmp_path, server):
    broker = {"type": "alpaca", "key_id": KEY_ID, "secret_key": SECRET, "paper": False, "trading_url": server.http_url}
    assert_refused_before_anything(venue_backtest(tmp_path, "AAPL", "2024-01-02 15", broker), "alpaca")
    assert server.received == []  # no request of any kind: no account, no clock, no order
