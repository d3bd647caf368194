"""The log sink: engine events as lines on stderr or in a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import ValidationInfo, field_validator

from engine_core.errors import ConfigError
from engine_core.events import Event, EventSink, describe
from engine_core.hookspecs import hookimpl
from engine_core.model import ErrorEvent, FillEvent
from engine_core.sources import PluginConfig


class LogConfig(PluginConfig):
    path: str | None = None  # a file (appended to), relative to the config file; stderr when not given
    bars: bool = False
    level: Literal["all", "trades", "errors"] = "all"

    @field_validator("path")
    @classmethod
    def _writable_place(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Resolve against the config's directory; the folder must exist (checked
        before the run, so a typo does not cost a run)."""
        if value is None:
            return None
        base = (info.context or {}).get("base_dir")
        path = (Path(base, value) if base is not None else Path(value)).resolve()
        if path.is_dir():
            raise ValueError(f"{path} is a folder; give a file name")
        if not path.parent.is_dir():
            raise ValueError(f"folder {path.parent} does not exist")
        return str(path)


class LogSink(EventSink):
    Config = LogConfig

    def __init__(self, config: LogConfig) -> None:
        super().__init__(config)
        self.wants_bars = config.bars  # type: ignore[misc]
        self._out: TextIO | None = None

    def start(self) -> None:
        if not self.config.path:
            self._out = sys.stderr
            return
        try:
            self._out = open(Path(self.config.path), "a", encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"sinks: log: cannot open {self.config.path}: {err.strerror}") from err

    def handle(self, event: Event) -> None:
        level = self.config.level
        if level == "errors" and not isinstance(event, ErrorEvent):
            return
        if level == "trades" and not isinstance(event, (FillEvent, ErrorEvent)):
            return
        if self._out is not None:
            self._out.write(describe(event) + "\n")

    def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        if self._out is not None and self._out is not sys.stderr:
            self._out.close()
        self._out = None


@hookimpl
def register_event_sinks(register: Any) -> None:
    register("log", LogSink)
