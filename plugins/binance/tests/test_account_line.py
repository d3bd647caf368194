"""A live run says, before it connects, which venue and account it trades:
real money with ``testnet = false``, the endpoint, the first characters of
the API key at most, never the secret."""

from __future__ import annotations

from engine_plugin_binance.testing import API_KEY, API_SECRET


def test_a_live_run_names_real_money_and_the_account_before_it_connects(fake, live_config, running, broker_table):
    fake.add_history("BTCUSDT", 30, price=20000.0)
    broker = broker_table(testnet=False)
    run = running(live_config(broker=broker))
    lines: list[str] = []
    run.engine.notice = lambda line: lines.append(f"{line} (requests so far: {len(fake.received)})")
    with run:
        run.worker()
    assert lines == [f"trading on binance spot, REAL MONEY: {fake.http_url}, api key fak... (requests so far: 0)"]
    assert API_SECRET not in lines[0] and API_KEY not in lines[0]


def test_the_testnet_is_named_as_test_money(broker_config):
    from engine_plugin_binance.broker import BinanceBroker

    broker = BinanceBroker(broker_config(), on_update=lambda update: None)
    assert broker.describe_account().startswith("binance spot, the testnet (test money): ")
