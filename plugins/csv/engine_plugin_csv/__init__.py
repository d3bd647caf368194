"""CSV historical data source: ``[source] type = "csv"``."""

from engine_plugin_csv.config import CsvConfig
from engine_plugin_csv.source import CsvSource

__all__ = ["CsvConfig", "CsvSource"]
