from pathlib import Path

import pytest
from engine_plugin_binance.config import BinanceBrokerConfig, BinanceSourceConfig
from engine_plugin_binance.source import BinanceSource
from engine_plugin_binance.testing import API_KEY, API_SECRET, FakeBinance


@pytest.fixture
def fake():
    with FakeBinance() as venue:
        yield venue


@pytest.fixture
def source_for(fake):
    """A factory of sources pointed at the fake venue."""

    def make(symbols=("BTCUSDT",), **kw):
        cfg = BinanceSourceConfig(rest_url=fake.http_url, ws_url=fake.ws_url, **kw)
        return BinanceSource(cfg, symbols=list(symbols), base_dir=Path("."))

    return make


@pytest.fixture
def broker_config(fake):
    """A factory of broker configs pointed at the fake venue."""

    def make(**kw):
        return BinanceBrokerConfig(
            api_key=API_KEY, api_secret=API_SECRET, rest_url=fake.http_url, ws_api_url=fake.ws_api_url, **kw
        )

    return make
