"""Entry point of the ``alpaca`` plugin: the ``alpaca`` source and broker, and
``engine download alpaca``."""

from __future__ import annotations

from typing import Any

from engine_core.hookspecs import Register, hookimpl


@hookimpl
def register_data_sources(register: Register) -> None:
    from engine_plugin_alpaca.source import AlpacaSource

    register("alpaca", AlpacaSource)


@hookimpl
def register_brokers(register: Register) -> None:
    from engine_plugin_alpaca.broker import AlpacaBroker

    register("alpaca", AlpacaBroker)


@hookimpl
def register_commands(cli: Any) -> None:
    from engine_plugin_alpaca.download import download_command

    cli.commands["download"].add_command(download_command, "alpaca")
