"""The ``mqtt`` plugin: an event sink, a data source, and the control channel
(which reaches the engine through ``engine_started``)."""

from __future__ import annotations

import sys
from typing import Any

from engine_core import hookimpl

# Every plugin spells its hooks out like this (PLUGINS.md): pluggy finds them by
# name on this module; the sink and source are registered by reference, so
# loading the entry point imports no MQTT client.
# This plugin, the venue plugins and engine_core.testing look alike on purpose.


@hookimpl
def register_event_sinks(register: Any) -> None:
    register("mqtt", "engine_plugin_mqtt.sink:MqttSink")


@hookimpl
def register_data_sources(register: Any) -> None:
    register("mqtt", "engine_plugin_mqtt.source:MqttSource")


@hookimpl
def engine_started(engine: Any) -> None:
    """Connect this engine's mqtt sinks, with the engine to steer and the
    symbols' restored state."""
    if "engine_plugin_mqtt.sink" not in sys.modules:
        return  # no config named an mqtt sink: none to connect (and no client to import)
    from engine_plugin_mqtt.sink import MqttSink

    loaded = engine.loaded
    configs = [c for _, c in loaded.sinks]
    for sink in getattr(engine.bus, "sinks", ()):
        if isinstance(sink, MqttSink):
            index = next((i for i, c in enumerate(configs) if c is sink.config), None)
            where = f"{loaded.path}: sinks[{index}]" if index is not None else f"{loaded.path}: sinks"
            sink.attach(engine, loaded.base_dir, loaded.config.engine.shard, where)
