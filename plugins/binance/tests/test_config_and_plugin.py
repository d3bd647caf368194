from pathlib import Path

import pytest
import tomllib
from engine_plugin_binance.config import BinanceBrokerConfig, BinanceSourceConfig
from engine_plugin_binance.filters import SymbolRules
from pydantic import ValidationError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def table(name, key):
    body = tomllib.loads((EXAMPLES / name).read_text())[key]
    body.pop("type")
    return body


def test_the_shipped_examples_validate():
    src = BinanceSourceConfig(**table("binance_paper.toml", "source"))
    assert (src.interval, src.warmup, src.stream()) == ("1m", 200, "wss://stream.binance.com:9443")
    testnet = BinanceSourceConfig(**table("binance_testnet.toml", "source"))
    assert testnet.rest() == "https://testnet.binance.vision"
    broker = {**table("binance_testnet.toml", "broker"), "api_key": "k", "api_secret": "s"}
    cfg = BinanceBrokerConfig(**broker)
    assert cfg.testnet and cfg.ws_api() == "wss://ws-api.testnet.binance.vision/ws-api/v3"


def test_broker_defaults_to_the_testnet_and_hides_secrets():
    cfg = BinanceBrokerConfig(api_key="key-123", api_secret="secret-456")
    assert cfg.testnet and cfg.rest() == "https://testnet.binance.vision"
    assert "secret-456" not in repr(cfg) and "key-123" not in str(cfg)
    live = BinanceBrokerConfig(api_key="k", api_secret="s", testnet=False)
    assert live.rest() == "https://api.binance.com" and live.ws_api() == "wss://ws-api.binance.com:443/ws-api/v3"


@pytest.mark.parametrize(
    ("cls", "kw", "message"),
    [
        (BinanceSourceConfig, {"interval": "2m"}, "unknown Binance kline interval '2m'"),
        (BinanceSourceConfig, {"ws_url": "http://x"}, "must start with ws:// or wss://"),
        (BinanceBrokerConfig, {"api_key": "k", "api_secret": "s", "rest_url": "https://"}, "and name a host"),
        (BinanceSourceConfig, {"stale_after": 0}, "greater than 0"),
        (BinanceSourceConfig, {"intervall": "1m"}, "Extra inputs are not permitted"),
        (
            BinanceBrokerConfig,
            {"api_key": "", "api_secret": "s"},
            r"is empty \(set it, e.g. from \$\{BINANCE_API_KEY\}\)",
        ),
        (
            BinanceBrokerConfig,
            {"api_key": "k", "api_secret": " "},
            r"is empty \(set it, e.g. from \$\{BINANCE_API_SECRET\}\)",
        ),
        (BinanceBrokerConfig, {"api_key": "k", "api_secret": "s", "recv_window": 70000}, "less than or equal to 60000"),
    ],
)
def test_bad_keys_are_refused_saying_what_is_wrong(cls, kw, message):
    with pytest.raises(ValidationError, match=message):
        cls(**kw)


def test_the_plugin_registers_source_broker_and_download_command():
    from engine_core.plugins import get_registry

    registry = get_registry()
    kinds = {(r.name, r.kind) for r in registry.registrations() if r.plugin.name == "binance"}
    assert kinds == {("binance", "source"), ("binance", "broker")}
    from click.testing import CliRunner

    from engine_core.cli import main

    result = CliRunner().invoke(main, ["download", "--help"])
    assert "binance" in result.output


def test_filters_round_down_to_the_step_and_to_the_tick():
    from decimal import Decimal as D

    rules = SymbolRules("BTCUSDT", "BTC", "USDT", step=D("0.001"), tick=D("0.01"), min_qty=D("0.001"))
    assert rules.round_qty(D("0.12345")) == D("0.123")
    assert rules.round_price(D("100.006")) == D("100.01")
