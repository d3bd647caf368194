"""The keys of ``[source] type = "alpaca"`` and ``[broker] type = "alpaca"``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from engine_core import PluginConfig
from engine_core.live import HttpBaseUrl, WsBaseUrl

DATA_URL = "https://data.alpaca.markets"
STREAM_URL = "wss://stream.data.alpaca.markets"
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"

_TIMEFRAME = re.compile(r"^([1-9][0-9]*)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNIT = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week", "M": "Month"}
_MAX = {"Min": 59, "Hour": 23, "Day": 1, "Week": 1, "Month": 12}


def normalize_timeframe(value: str) -> str:
    """``1Min``, ``5Min``, ``1Hour``, ``1Day``... (Alpaca's own spelling; ``5T`` becomes ``5Min``).
    Raises ValueError naming the accepted forms."""
    m = _TIMEFRAME.match(value.strip())
    if m is None:
        raise ValueError(f"timeframe {value!r} is not one of <N>Min (1-59), <N>Hour (1-23), 1Day, 1Week, <N>Month")
    n, unit = int(m.group(1)), _UNIT.get(m.group(2), m.group(2))
    if n > _MAX[unit]:
        raise ValueError(f"timeframe {value!r}: at most {_MAX[unit]}{unit}")
    return f"{n}{unit}"


def timeframe_ns(timeframe: str) -> int:
    """The length of a bar of an intraday timeframe, in nanoseconds (0 for day and longer)."""
    m = _TIMEFRAME.match(timeframe)
    assert m is not None
    n, unit = int(m.group(1)), _UNIT.get(m.group(2), m.group(2))
    return n * {"Min": 60, "Hour": 3600}.get(unit, 0) * 1_000_000_000


def _broker_paper(info: ValidationInfo) -> bool | None:
    """The ``[broker]`` table's ``paper`` when the broker is Alpaca's (None: another broker)."""
    broker = ((info.context or {}).get("tables") or {}).get("broker") or {}
    return bool(broker.get("paper", True)) if broker.get("type") == "alpaca" else None


class AlpacaSourceConfig(PluginConfig):
    """Market data: the stream v2 for live minute bars, REST v2 for warm-up and gaps,
    the trading API's clock and calendar for the market's sessions."""

    key_id: SecretStr
    secret_key: SecretStr
    feed: Literal["iex", "sip", "delayed_sip"] = "iex"
    timeframe: str = "1Min"
    data_url: HttpBaseUrl = DATA_URL
    """REST market data base (``/v2/stocks/bars`` is appended)."""
    stream_url: WsBaseUrl = STREAM_URL
    """Market data stream base; the source appends ``/v2/<feed>``."""
    trading_url: HttpBaseUrl = ""
    """Trading API base, for ``/v2/clock`` and ``/v2/calendar``. Default: the
    account the ``[broker]`` trades when it is ``alpaca`` (the live API with
    ``paper = false``, else the paper API); the paper API otherwise."""
    warmup: int | None = Field(default=None, ge=0, le=100_000)
    """Bars of history per symbol before trading (default: what the engine asks, its window)."""
    stale_after: float = Field(default=30.0, gt=0)
    """Seconds without a message while the market is open before a forced reconnect."""
    sessions: Literal["regular", "extended"] = "regular"
    """When bars are delivered and entries allowed: regular hours, or with pre- and post-market."""
    clock_poll: float = Field(default=60.0, gt=0)
    """Seconds between reads of the market clock (it is also read at each open and close)."""
    adjustment: Literal["raw", "split", "dividend", "all"] = "raw"
    """Corporate-action adjustment of REST bars (warm-up, gaps)."""

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        value = normalize_timeframe(value)
        if value != "1Min":
            raise ValueError(f"live bars come from the stream as 1Min bars; timeframe {value!r} is not supported live")
        return value

    @field_validator("trading_url")
    @classmethod
    def _same_account(cls, url: str, info: ValidationInfo) -> str:
        """Paper and live keys belong to different accounts: a source given the
        broker's keys and pointed at the other account's API is refused here,
        rather than answered 401 at its first request."""
        paper = _broker_paper(info)
        key = info.data.get("key_id")
        broker_key = (((info.context or {}).get("tables") or {}).get("broker") or {}).get("key_id")
        same_keys = key is not None and key.get_secret_value() == broker_key
        if same_keys and (url == PAPER_URL and paper is False or url == LIVE_URL and paper is True):
            raise ValueError(
                f"points at the {'paper' if url == PAPER_URL else 'live'} API, but the broker trades the "
                f"{'paper' if paper else 'live'} account with the same key_id (broker.paper = {str(paper).lower()}): "
                "leave trading_url out (it follows the broker) or make the two agree"
            )
        return url

    @model_validator(mode="after")
    def _follow_the_broker(self, info: ValidationInfo) -> AlpacaSourceConfig:
        """The default trading API is the broker's account's, when the broker is Alpaca's."""
        if not self.trading_url:
            object.__setattr__(self, "trading_url", LIVE_URL if _broker_paper(info) is False else PAPER_URL)
        return self


class AlpacaBrokerConfig(PluginConfig):
    """Orders through the trading API v2; updates from its ``trade_updates`` stream."""

    key_id: SecretStr
    secret_key: SecretStr
    paper: bool = True
    """The paper endpoint (default); live money needs ``paper = false``."""
    trading_url: HttpBaseUrl | None = None
    """Override of the trading API base; the ``trade_updates`` stream is ``<trading_url>/stream``."""
    poll_interval: float = Field(default=2.0, gt=0)
    """Seconds between REST polls of open orders while the ``trade_updates`` stream is down."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for an answer to one request; an order unanswered by then is resolved by client id."""
    extended_hours: bool = False
    """Send limit day orders with ``extended_hours`` (eligible in pre- and post-market)."""

    @property
    def base_url(self) -> str:
        return self.trading_url or (PAPER_URL if self.paper else LIVE_URL)

    @property
    def stream_url(self) -> str:
        base = self.base_url
        return ("wss" + base[5:] if base.startswith("https") else "ws" + base[4:]) + "/stream"
