"""Entry point of the ``binance`` plugin."""

from __future__ import annotations

from typing import Any

from engine_core.hookspecs import Register, hookimpl


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
