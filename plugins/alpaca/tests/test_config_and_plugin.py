"""The ``alpaca`` config keys, the shipped example's tables, the plugin's
registrations, and which trading API the source reads the market clock from."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from engine_plugin_alpaca import plugin as alpaca_plugin
from engine_plugin_alpaca.config import LIVE_URL, PAPER_URL, AlpacaBrokerConfig, AlpacaSourceConfig
from pydantic import ValidationError

from engine_core import ConfigError
from engine_core.config import load_config
from engine_core.testing import builtin_registry, write_config

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def table(name: str, key: str) -> dict:
    body = tomllib.loads((EXAMPLES / name).read_text())[key]
    body.pop("type")
    return body


def test_the_shipped_example_validates():
    src = AlpacaSourceConfig(**table("alpaca_paper.toml", "source"))
    assert (src.feed, src.timeframe, src.warmup, src.sessions) == ("iex", "1Min", 200, "regular")
    assert (src.data_url, src.stream_url, src.trading_url) == (
        "https://data.alpaca.markets",
        "wss://stream.data.alpaca.markets",
        PAPER_URL,
    )
    broker = AlpacaBrokerConfig(**table("alpaca_paper.toml", "broker"))
    assert broker.paper and broker.base_url == PAPER_URL
    assert broker.stream_url == "wss://paper-api.alpaca.markets/stream"


def test_broker_defaults_to_paper_and_hides_secrets():
    cfg = AlpacaBrokerConfig(key_id="key-123", secret_key="secret-456")
    assert cfg.paper and cfg.base_url == PAPER_URL
    assert "secret-456" not in repr(cfg) and "key-123" not in str(cfg)
    live = AlpacaBrokerConfig(key_id="k", secret_key="s", paper=False)
    assert live.base_url == LIVE_URL and live.stream_url == "wss://api.alpaca.markets/stream"
    local = AlpacaBrokerConfig(key_id="k", secret_key="s", trading_url="http://127.0.0.1:9/")
    assert local.base_url == "http://127.0.0.1:9" and local.stream_url == "ws://127.0.0.1:9/stream"


KEYS = {"key_id": "k", "secret_key": "s"}


@pytest.mark.parametrize(
    ("cls", "kw", "message"),
    [
        (AlpacaSourceConfig, {"feed": "otc"}, "'iex', 'sip' or 'delayed_sip'"),
        (AlpacaSourceConfig, {"timeframe": "5Min"}, "timeframe '5Min' is not supported live"),
        (AlpacaSourceConfig, {"timeframe": "90Min"}, "at most 59Min"),
        (AlpacaSourceConfig, {"stream_url": "https://x"}, "must start with ws:// or wss://"),
        (AlpacaSourceConfig, {"data_url": "http://"}, "and name a host"),
        (AlpacaSourceConfig, {"stale_after": 0}, "greater than 0"),
        (AlpacaSourceConfig, {"sessions": "overnight"}, "'regular' or 'extended'"),
        (AlpacaSourceConfig, {"warmup": -1}, "greater than or equal to 0"),
        (AlpacaSourceConfig, {"feeds": "iex"}, "Extra inputs are not permitted"),
        (AlpacaBrokerConfig, {"poll_interval": 0}, "greater than 0"),
        (AlpacaBrokerConfig, {"trading_url": "ftp://x"}, "must start with http:// or https://"),
        (AlpacaBrokerConfig, {"papre": False}, "Extra inputs are not permitted"),
    ],
)
def test_bad_keys_are_refused_saying_what_is_wrong(cls, kw, message):
    with pytest.raises(ValidationError, match=message):
        cls(**KEYS, **kw)


def test_keys_are_required():
    with pytest.raises(ValidationError, match="key_id"):
        AlpacaSourceConfig(secret_key="s")


def test_the_plugin_registers_source_broker_and_download_command():
    from click.testing import CliRunner

    from engine_core.cli import main
    from engine_core.plugins import get_registry

    registry = get_registry()
    kinds = {(r.name, r.kind) for r in registry.registrations() if r.plugin.name == "alpaca"}
    assert kinds == {("alpaca", "source"), ("alpaca", "broker")}
    result = CliRunner().invoke(main, ["download", "--help"])
    assert "alpaca" in result.output


# ------------------------------------------------------------ the source's trading API


def loaded(tmp_path: Path, source: dict, broker: dict):
    path = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["AAPL"]},
            "source": {"type": "alpaca", "key_id": "PK1", "secret_key": "s", **source},
            "strategy": {"host": "lua", "script": str(ROOT / "strategies" / "sma_cross.lua")},
            "broker": broker,
        },
    )
    return load_config(path, builtin_registry(("alpaca", alpaca_plugin)))


ALPACA = {"type": "alpaca", "key_id": "PK1", "secret_key": "s"}


@pytest.mark.parametrize(
    ("broker", "url"),
    [
        ({**ALPACA, "paper": False}, LIVE_URL),
        ({**ALPACA, "paper": True}, PAPER_URL),
        (ALPACA, PAPER_URL),
        ({"type": "paper"}, PAPER_URL),
    ],
    ids=["live-broker", "paper-broker", "broker-default", "simulated-broker"],
)
def test_the_source_reads_the_clock_from_the_brokers_account(tmp_path, broker, url):
    assert loaded(tmp_path, {}, broker).source_config.trading_url == url


def test_a_source_pointed_at_the_other_account_with_the_brokers_keys_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        loaded(tmp_path, {"trading_url": PAPER_URL}, {**ALPACA, "paper": False})
    message = str(info.value)
    assert "c.toml: source.trading_url: points at the paper API, but the broker trades the live account" in message
    assert "\n" not in message and "secret_key" not in message
    # other keys (another account for market data) or a URL of one's own are the user's choice
    other = loaded(tmp_path, {"trading_url": PAPER_URL, "key_id": "PK2"}, {**ALPACA, "paper": False})
    assert other.source_config.trading_url == PAPER_URL
    local = loaded(tmp_path, {"trading_url": "http://127.0.0.1:9"}, {**ALPACA, "paper": False})
    assert local.source_config.trading_url == "http://127.0.0.1:9"
