"""The log sink: engine events as lines on stderr or in a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import ValidationInfo, field_validator

from engine_core.errors import ConfigError
from engine_core.events import Event, EventSink
from engine_core.hookspecs import hookimpl
from engine_core.model import (
    Bar,
    ConnectionEvent,
    ErrorEvent,
    FillEvent,
    LogEvent,
    OrderEvent,
    SignalEvent,
    TransitionEvent,
    iso_utc,
)
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


def describe(event: Event) -> str:
    """One line for an event (shared by every text sink)."""
    if isinstance(event, TransitionEvent):
        return f"{iso_utc(event.ts)} {event.symbol} {event.from_state.value} -> {event.to_state.value} ({event.reason})"
    if isinstance(event, OrderEvent):
        o = event.order
        extra = f": {event.detail}" if event.detail else ""
        what = f"order {event.status.value} {o.side.value} {o.qty} [{o.client_id}]"
        return f"{iso_utc(o.ts)} {o.symbol} {what} {o.reason}{extra}"
    if isinstance(event, FillEvent):
        f = event.fill
        return f"{iso_utc(f.ts)} {f.symbol} fill {f.side.value} {f.qty} @ {f.price} fee {f.commission} [{f.client_id}]"
    if isinstance(event, SignalEvent):
        return f"{iso_utc(event.ts)} {event.symbol} signal {event.action} {event.detail or ''}".rstrip()
    if isinstance(event, ErrorEvent):
        return f"{iso_utc(event.ts)} {event.symbol or '-'} {event.kind}: {event.message}"
    if isinstance(event, ConnectionEvent):
        detail = f" ({event.detail})" if event.detail else ""
        return f"{iso_utc(event.ts)} - source {event.source} {event.state}{detail}"
    if isinstance(event, LogEvent):
        return f"{iso_utc(event.ts)} {event.symbol} log: {event.message}"
    if isinstance(event, Bar):
        prices = f"o={event.open} h={event.high} l={event.low} c={event.close} v={event.volume}"
        return f"{iso_utc(event.ts)} {event.symbol} bar {prices}"
    return repr(event)


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
