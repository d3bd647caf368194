"""Entry point of the ``binance`` plugin."""

from __future__ import annotations

from typing import Any

from engine_core import Register, hookimpl

# Every plugin spells its hooks out like this (PLUGINS.md): pluggy finds them by
# name on this module; the source and broker are registered by reference and the
# command imported inside, so loading the entry point imports no HTTP client.
# The venue plugins and engine_core.testing look alike on purpose.


@hookimpl
def register_data_sources(register: Register) -> None:
    register("binance", "engine_plugin_binance.source:BinanceSource")


@hookimpl
def register_brokers(register: Register) -> None:
    register("binance", "engine_plugin_binance.broker:BinanceBroker")


@hookimpl
def register_commands(cli: Any) -> None:
    from engine_plugin_binance.download import download_command

    cli.commands["download"].add_command(download_command, "binance")
