"""The log sink: engine events as lines on stderr or in a file.

On stderr under the ``engine`` command, a line that finds no reader (a full
pipe nobody reads) is left out and counted (``engine_core.streams``): the
sink never stops the run, and its ``stats`` say how many lines it lost."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import ValidationInfo, field_validator

from engine_core.errors import ConfigError
from engine_core.events import Event, EventSink, describe
from engine_core.hookspecs import hookimpl
from engine_core.model import ErrorEvent, FillEvent
from engine_core.sources import PluginConfig
from engine_core.streams import GuardedStream

BATCH = 50  # lines written at once at most (about 4 KB: what a pipe takes whole)


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
        self._out: TextIO | GuardedStream | None = None
        self._file: TextIO | None = None  # the file it opened (path), closed at the end
        self._lines: list[str] = []  # written together: one write for many events in a backtest
        self.lines = 0
        self.dropped = 0  # lines the stream left out (no room: nobody reads it)

    def start(self) -> None:
        if not self.config.path:
            self._out = sys.stderr
            return
        try:
            self._file = self._out = open(Path(self.config.path), "a", encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"sinks: log: cannot open {self.config.path}: {err.strerror}") from err
        if not stat.S_ISREG(os.fstat(self._file.fileno()).st_mode):  # a pipe, a terminal: maybe nobody reads it
            self._out = GuardedStream(self._file)

    def handle(self, event: Event) -> None:
        level = self.config.level
        if level == "errors" and not isinstance(event, ErrorEvent):
            return
        if level == "trades" and not isinstance(event, (FillEvent, ErrorEvent)):
            return
        self._lines.append(describe(event) + "\n")
        self.lines += 1
        if len(self._lines) >= BATCH:
            self._write()

    def _write(self) -> None:
        text = "".join(self._lines)
        if self._out is not None:
            out = self._out.write(text)
            if out < len(text):  # the lines not written whole are lost
                self.dropped += len(self._lines) - text.count("\n", 0, out)
        self._lines.clear()

    def flush(self) -> None:
        """Called by the bus when the sink's queue runs empty, and at the end."""
        self._write()
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        if self._lines:
            self._write()
        if self._file is not None:
            self._file.close()
        self._file = self._out = None

    def stats(self) -> dict[str, Any]:
        if not self.dropped:
            return {}
        where = self.config.path or "stderr"
        return {"lines": self.lines, "dropped": self.dropped, "why": f"{where} was not being read"}


@hookimpl
def register_event_sinks(register: Any) -> None:
    register("log", LogSink)
