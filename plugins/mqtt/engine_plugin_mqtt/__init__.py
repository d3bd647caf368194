"""MQTT for the engine: the ``mqtt`` event sink (with remote control) and the
``mqtt`` data source. See the plugin's README for every key and payload."""

from engine_plugin_mqtt.config import MqttConnection, MqttSinkConfig, MqttSourceConfig

__all__ = ["MqttConnection", "MqttSinkConfig", "MqttSourceConfig"]
