"""Entry point of the ``binance`` plugin."""

from __future__ import annotations

from typing import Any

from engine_core import Register, hookimpl

# Every plugin spells its hooks out like this (PLUGINS.md): pluggy finds them by
# name on this module, and the imports inside keep loading the entry point cheap.
# The venue plugins and engine_core.testing look alike on purpose.


@hookimpl
def register_data_sources(register: Register) -> None:
    from engine_plugin_binance.source import BinanceSource

    register("binance", BinanceSource)


@hookimpl
def register_brokers(register: Register) -> None:
    from engine_plugin_binance.broker import BinanceBroker

    register("binance", BinanceBroker)


@hookimpl
def register_commands(cli: Any) -> None:
    from engine_plugin_binance.download import download_command

    cli.commands["download"].add_command(download_command, "binance")
