"""The log sink: engine events as lines on stderr or in a file.

On stderr under the ``engine`` command, a line that finds no reader (a full
pipe nobody reads) is left out and counted (``engine_core.streams``): the
sink never stops the run, and its ``stats`` say how many lines it lost. A
``path`` that is a pipe or a terminal (``/dev/stderr``, a FIFO) is written
the same way; a FIFO is opened without waiting for a reader: until one
comes, each write tries again and its lines are counted as left out."""

from __future__ import annotations

import errno
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
        """Made absolute against the config's directory, links kept as given
        (``/dev/stderr`` is this process's stderr, wherever it leads when the
        run opens it); the folder must exist (checked before the run, so a
        typo does not cost a run)."""
        if value is None:
            return None
        base = (info.context or {}).get("base_dir")
        path = Path(os.path.abspath(Path(base, value) if base is not None else Path(value)))
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
        self.closed = False

    def start(self) -> None:
        if not self.config.path:
            self._out = sys.stderr
            return
        self._open()

    def _open(self) -> None:
        """Open ``path`` to append, never waiting: a FIFO with no reader yet
        stays closed (ENXIO) and is tried again at the next write."""
        path = self.config.path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666)
        except OSError as err:
            if err.errno == errno.ENXIO:
                return
            raise ConfigError(f"sinks: log: cannot open {path}: {err.strerror}") from err
        os.set_blocking(fd, True)  # a plain file, as open() gives; GuardedStream never waits long on a pipe
        self._file = self._out = open(fd, "a", encoding="utf-8")
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a pipe, a terminal: maybe nobody reads it
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
        if not self._lines:
            return
        if self._out is None and self.config.path and not self.closed:
            self._open()  # a FIFO nobody had opened to read
        text = "".join(self._lines)
        if self._out is None:
            self.dropped += len(self._lines)
        else:
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
        self._write()
        self.closed = True
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
