"""CSV historical data source: ``[source] type = "csv"``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine_plugin_csv.config import CsvConfig
    from engine_plugin_csv.source import CsvSource

__all__ = ["CsvConfig", "CsvSource"]


def __getattr__(name: str) -> Any:
    # Imported on first use: loading the plugin's entry point (this package)
    # must not import the reader and pyarrow for a run that reads no CSV.
    if name == "CsvConfig":
        from engine_plugin_csv.config import CsvConfig

        return CsvConfig
    if name == "CsvSource":
        from engine_plugin_csv.source import CsvSource

        return CsvSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
