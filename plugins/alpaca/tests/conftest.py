"""Fixtures: a local fake Alpaca on 127.0.0.1 and configs pointing at it.

Times: 2024-01-02 and 2024-01-03 are market days (regular session 14:30-21:00
UTC, extended 09:00-01:00 UTC); 2024-01-01 is a holiday.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from engine_plugin_alpaca.config import AlpacaBrokerConfig, AlpacaSourceConfig
from engine_plugin_alpaca.testing import (
    DAY1_CLOSE,
    DAY1_OPEN,
    DAY2_OPEN,
    KEY_ID,
    MINUTE,
    SECRET,
    FakeAlpaca,
    regular_day,
)


@pytest.fixture
def server() -> Iterator[FakeAlpaca]:
    fake = FakeAlpaca().start()
    fake.set_calendar([regular_day(date(2024, 1, 2)), regular_day(date(2024, 1, 3))])
    # open, an hour into day 1
    fake.set_clock(DAY1_OPEN + 60 * MINUTE, True, DAY2_OPEN, DAY1_CLOSE)
    for symbol in ("AAPL", "MSFT"):
        fake.set_asset(symbol)
        fake.prices[symbol] = Decimal("100")
    try:
        yield fake
    finally:
        fake.stop()


def _configs(model: type[Any], **defaults: Any) -> Callable[..., Any]:
    """A factory of ``model`` configs with the fake's keys and ``defaults``, and what a test overrides."""
    return lambda **over: model.model_validate({"key_id": KEY_ID, "secret_key": SECRET, **defaults, **over})


@pytest.fixture
def source_config(server: FakeAlpaca) -> Callable[..., AlpacaSourceConfig]:
    return _configs(
        AlpacaSourceConfig,
        data_url=server.http_url,
        trading_url=server.http_url,
        stream_url=server.ws_url,
        clock_poll=0.2,
    )


@pytest.fixture
def broker_config(server: FakeAlpaca) -> Callable[..., AlpacaBrokerConfig]:
    return _configs(AlpacaBrokerConfig, trading_url=server.http_url, poll_interval=0.2, timeout=5)


@pytest.fixture
def tmp_base(tmp_path: Path) -> Path:
    return tmp_path
