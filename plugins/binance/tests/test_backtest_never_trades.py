"""A backtest never reaches Binance: a config that names the binance broker
(keys set, ``testnet = false``) in ``mode = "backtest"`` is refused by
``engine validate`` and ``engine run`` in one line, before any connection:
the local venue receives no request at all."""

from __future__ import annotations

from engine_core.testing.refusals import assert_refused_before_anything, venue_backtest


def test_validate_and_run_refuse_a_backtest_on_binance_before_any_request(tmp_path, fake, broker_table):
    broker = broker_table(testnet=False)
    assert_refused_before_anything(venue_backtest(tmp_path, "BTCUSDT", "2024-01-01 00", broker), "binance")
    assert fake.received == []  # no request of any kind: no time sync, no account, no order
    assert fake.placed == []
