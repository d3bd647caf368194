"""Entry point of the ``csv`` plugin: registers the ``csv`` data source."""

from __future__ import annotations

from engine_core import Register, hookimpl
from engine_plugin_csv.source import CsvSource


@hookimpl
def register_data_sources(register: Register) -> None:
    """Register :class:`CsvSource` as ``csv``."""
    register("csv", CsvSource)
