"""The keys of ``[source]`` and ``[broker]`` for ``type = "binance"``."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from engine_core import PluginConfig
from engine_core.live import HttpBaseUrl, WsBaseUrl
from engine_plugin_binance.wire import INTERVAL_MS

REST = "https://api.binance.com"
STREAM = "wss://stream.binance.com:9443"
WS_API = "wss://ws-api.binance.com:443/ws-api/v3"
TESTNET_REST = "https://testnet.binance.vision"
TESTNET_STREAM = "wss://stream.testnet.binance.vision"
TESTNET_WS_API = "wss://ws-api.testnet.binance.vision/ws-api/v3"


class BinanceSourceConfig(PluginConfig):
    """Live klines from Binance spot."""

    interval: str = "1m"
    """Any Binance kline interval: 1s, 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M."""
    testnet: bool = False
    rest_url: HttpBaseUrl | None = None
    ws_url: WsBaseUrl | None = None
    """Market-stream base; the source appends ``/stream?streams=...``."""
    warmup: int | None = Field(default=None, ge=0)
    """Bars of history per symbol before trading (default: ``engine.window``)."""
    stale_after: float = Field(default=30.0, gt=0)
    """Seconds without any message before a forced reconnect."""

    @field_validator("interval")
    @classmethod
    def _known_interval(cls, value: str) -> str:
        if value not in INTERVAL_MS:
            raise ValueError(f"unknown Binance kline interval {value!r} (one of {', '.join(INTERVAL_MS)})")
        return value

    def rest(self) -> str:
        return self.rest_url or (TESTNET_REST if self.testnet else REST)

    def stream(self) -> str:
        return self.ws_url or (TESTNET_STREAM if self.testnet else STREAM)


class BinanceBrokerConfig(PluginConfig):
    """Orders on Binance spot (the testnet unless ``testnet = false``)."""

    api_key: SecretStr
    api_secret: SecretStr
    testnet: bool = True
    """Real money needs an explicit ``testnet = false``."""
    rest_url: HttpBaseUrl | None = None
    ws_api_url: WsBaseUrl | None = None
    """The WebSocket API endpoint (``.../ws-api/v3``), for the user data stream."""
    recv_window: int = Field(default=5000, gt=0, le=60000)
    """Milliseconds a signed request stays valid (Binance's maximum: 60000)."""

    @field_validator("api_key", "api_secret")
    @classmethod
    def _not_empty(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if not value.get_secret_value().strip():
            variable = "BINANCE_API_KEY" if info.field_name == "api_key" else "BINANCE_API_SECRET"
            raise ValueError(f"is empty (set it, e.g. from ${{{variable}}})")
        return value

    def rest(self) -> str:
        return self.rest_url or (TESTNET_REST if self.testnet else REST)

    def ws_api(self) -> str:
        return self.ws_api_url or (TESTNET_WS_API if self.testnet else WS_API)
