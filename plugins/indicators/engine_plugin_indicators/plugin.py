"""The plugin object: registers one indicator kind per TA-Lib function."""

from __future__ import annotations

from engine_core import Register, hookimpl


@hookimpl
def register_indicators(register: Register) -> None:
    """Register every TA-Lib function (lower-case names)."""
    from engine_plugin_indicators.catalog import kinds

    for kind in kinds():
        register(kind)
