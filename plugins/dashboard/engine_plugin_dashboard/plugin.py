"""Entry point of the ``dashboard`` plugin: adds ``engine dashboard`` to the
command line, and the ``[dashboard]`` service that serves it beside a live engine."""

from __future__ import annotations

from typing import Any

from engine_core import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``engine dashboard`` (aiohttp and the MQTT client load only when it runs)."""
    from engine_plugin_dashboard.command import dashboard_command

    cli.add_command(dashboard_command, "dashboard")


@hookimpl
def register_services(register: Any) -> None:
    """``[dashboard]`` in a live config: ``engine run`` serves the page beside
    the engine (imported when a config names it: a backtest imports no asyncio)."""
    register("dashboard", "engine_plugin_dashboard.service:DashboardService")
