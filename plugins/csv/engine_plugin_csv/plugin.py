"""Entry point of the ``csv`` plugin: registers the ``csv`` data source."""

from __future__ import annotations

from engine_core import Register, hookimpl


@hookimpl
def register_data_sources(register: Register) -> None:
    """Register :class:`CsvSource` as ``csv`` (by reference: the reader and
    pyarrow load when a config names the source)."""
    register("csv", "engine_plugin_csv.source:CsvSource")
