"""Entry point of the ``optimize`` plugin: adds ``engine optimize`` to the command line."""

from __future__ import annotations

from typing import Any

from engine_core import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``engine optimize`` (Optuna, Ray and matplotlib load only when it runs)."""
    from engine_plugin_optimize.command import optimize_command

    cli.add_command(optimize_command, "optimize")
