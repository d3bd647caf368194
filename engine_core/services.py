"""The ``Service`` contract: something a plugin runs beside a live engine
(a web dashboard, an exporter), configured by a top-level table of the
engine's config named as the service is registered (``[dashboard]``).

The table is validated with the other plugin tables when the config loads
(``Config``, a :class:`PluginConfig`: unknown keys are errors naming the key
path). A live run starts each configured service once its workers are built
and stops it when the engine stops, whatever made it stop; a backtest (and
so every optimisation trial) only validates the table.
"""

from __future__ import annotations

from typing import Any, ClassVar

from engine_core.sources import PluginConfig


class Service:
    """Runs beside a live engine. ``start`` must return once the service is
    up (a thread of its own for anything long), raising an ``EngineError``
    with one line naming the table's key when it cannot start; ``stop`` frees
    what it holds (threads, ports) and returns."""

    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: Any, *, name: str, loaded: Any) -> None:
        """``config`` is an instance of ``Config``; ``name`` the table's;
        ``loaded`` the engine's whole validated config (``LoadedConfig``)."""
        self.config = config
        self.name = name
        self.loaded = loaded

    def start(self, engine: Any) -> None:
        """The engine's workers are built and about to run (after ``engine_started``)."""

    def stop(self) -> None:
        """The engine is stopping (its workers are stopped); free everything."""
