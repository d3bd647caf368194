"""Entry point of the ``alpaca`` plugin: the ``alpaca`` source and broker, and
``engine download alpaca``."""

from __future__ import annotations

from typing import Any

from engine_core import Register, hookimpl

# Every plugin spells its hooks out like this (PLUGINS.md): pluggy finds them by
# name on this module, and the imports inside keep loading the entry point cheap.
# The venue plugins and engine_core.testing look alike on purpose.


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
