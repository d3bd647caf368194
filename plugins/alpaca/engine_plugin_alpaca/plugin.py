"""Entry point of the ``alpaca`` plugin: the ``alpaca`` source and broker, and
``engine download alpaca``."""

from __future__ import annotations

from engine_core.hookspecs import Register, hookimpl


@hookimpl
def register_data_sources(register: Register) -> None:
    from engine_plugin_alpaca.source import AlpacaSource

    register("alpaca", AlpacaSource)


@hookimpl
def register_brokers(register: Register) -> None:
    from engine_plugin_alpaca.broker import AlpacaBroker

    register("alpaca", AlpacaBroker)
