"""The keys of an ``mqtt`` sink (``[[sinks]]``) and an ``mqtt`` source (``[source]``).

Both share the broker connection keys (:class:`MqttConnection`); the README
lists every key with its default.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from engine_core import PluginConfig

_LEVEL = r"[^/+#\x00]+"  # one topic level without wildcards


class MqttConnection(PluginConfig):
    """How to reach the broker."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # CA bundle for tls (relative to the config file); system CAs when not given
    client_id: str | None = None  # default: derived from the prefix and the engine id
    keepalive: int = Field(default=30, ge=5, le=3600)  # seconds; the broker declares us dead after 1.5x
    mqtt_version: Literal["3.1.1", "5"] = "3.1.1"
    qos: Literal[0, 1, 2] = 1

    @model_validator(mode="after")
    def _tls_keys(self) -> MqttConnection:
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is given but tls is false")
        if self.password is not None and self.username is None:
            raise ValueError("password is given without username")
        return self


class MqttSinkConfig(MqttConnection):
    """``[[sinks]] type = "mqtt"``: every engine event on the broker."""

    prefix: str = "engine"  # topic tree root: <prefix>/<engine id>/...
    bars: bool = False  # bars are many: opt in
    queue: int = Field(default=10_000, ge=1, le=10_000_000)  # events buffered while the broker is away
    on_full: Literal["drop_oldest", "block"] = "drop_oldest"
    control: bool = False  # accept commands on <prefix>/<engine id>/control/<command>
    close_timeout: float = Field(default=10.0, ge=0)  # seconds a stopping engine waits to deliver what is queued
    status_every: float = Field(default=5.0, gt=0)  # seconds between engine status updates (when figures change)
    # seconds between a symbol's statuses that only its bars changed (an event's goes at once); 0: every bar
    bar_status_every: float = Field(default=1.0, ge=0)
    # many events per message on <prefix>/<engine id>/<symbol>/events: "auto" in backtests only
    batch: Literal["auto"] | bool = "auto"
    batch_size: int = Field(default=1000, ge=1, le=100_000)  # events per batched message, at most

    @field_validator("batch", mode="before")
    @classmethod
    def _batch(cls, batch: object) -> object:
        if batch is True or batch is False or batch == "auto":
            return batch
        raise ValueError(f'expected true, false or "auto" (batched in backtests only), got {batch!r}')

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        if not re.fullmatch(rf"{_LEVEL}(/{_LEVEL})*", prefix):
            raise ValueError(f"expected topic levels without '+', '#' or empty levels, got {prefix!r}")
        return prefix


class MqttSourceConfig(MqttConnection):
    """``[source] type = "mqtt"``: bars (and trades) from topics, for live runs."""

    topic: str = Field(default="feeds/+/bars", min_length=1)  # JSON bars
    trades_topic: str | None = None  # JSON trades, made into bars of bar_seconds
    bar_seconds: int = Field(default=60, ge=1, le=86_400)

    @field_validator("topic", "trades_topic")
    @classmethod
    def _filter(cls, topic: str | None) -> str | None:
        if topic is None:
            return None
        levels = topic.split("/")
        for i, level in enumerate(levels):
            if level == "" or (("+" in level or "#" in level) and level not in ("+", "#")):
                raise ValueError(f"expected an MQTT topic filter ('+' and '#' as whole levels), got {topic!r}")
            if level == "#" and i != len(levels) - 1:
                raise ValueError(f"'#' must be the last level of a topic filter, got {topic!r}")
        return topic
