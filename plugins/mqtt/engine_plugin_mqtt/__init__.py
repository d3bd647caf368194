"""MQTT for the engine: the ``mqtt`` event sink (with remote control) and the
``mqtt`` data source. See the plugin's README for every key and payload.

The config classes are imported when first asked for: registering the plugin
(every ``engine run`` does) builds none of their models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine_plugin_mqtt.config import MqttConnection, MqttSinkConfig, MqttSourceConfig

__all__ = ["MqttConnection", "MqttSinkConfig", "MqttSourceConfig"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from engine_plugin_mqtt import config

    value = getattr(config, name)
    globals()[name] = value  # looked up once
    return value
