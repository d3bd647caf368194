"""Event sinks and the bus that hands every engine event to them and to the
observation hooks."""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import pluggy

from engine_core.model import (
    Bar,
    ErrorEvent,
    FillEvent,
    OrderEvent,
    SignalEvent,
    TransitionEvent,
)
from engine_core.sources import PluginConfig

Event = Bar | SignalEvent | TransitionEvent | OrderEvent | FillEvent | ErrorEvent

_HOOK_OF = {
    Bar: "engine_bar",
    SignalEvent: "engine_signal",
    TransitionEvent: "engine_transition",
    OrderEvent: "engine_order",
    FillEvent: "engine_fill",
    ErrorEvent: "engine_error",
}
_ARG_OF = {"engine_bar": "bar"}


class EventSink(abc.ABC):
    """Where events go. ``handle`` may be called from any worker thread, but
    the bus never calls one sink from two threads at once."""

    Config: ClassVar[type[PluginConfig]] = PluginConfig
    wants_bars: ClassVar[bool] = False  # bars are many; only sinks that ask get them

    def __init__(self, config: Any) -> None:
        self.config = config

    def bind(self, engine_id: str, symbols: Sequence[str], mode: str) -> None:
        """Called once before the bus is built: the engine's id, the symbols it
        runs (its shard's) and its mode. A sink may set ``wants_bars`` here."""

    def start(self) -> None:
        """Open connections or files."""

    @abc.abstractmethod
    def handle(self, event: Event) -> None:
        """Take one event."""

    def flush(self) -> None:
        """Write out anything buffered."""

    def close(self) -> None:
        """Release resources (after a final flush)."""

    def stats(self) -> dict[str, Any]:
        """Figures the run summary reports for this sink (e.g. events dropped); {} for none."""
        return {}


class EventBus:
    def __init__(self, pm: pluggy.PluginManager | None, sinks: Iterable[EventSink] = ()) -> None:
        self.pm = pm
        self.sinks = list(sinks)
        self._lock = threading.Lock()
        self._hooks = {}
        if pm is not None:
            for cls, name in _HOOK_OF.items():
                caller = getattr(pm.hook, name)
                if caller.get_hookimpls():
                    self._hooks[cls] = (caller, _ARG_OF.get(name, "event"))
        self.wants_bars = Bar in self._hooks or any(s.wants_bars for s in self.sinks)
        # False when nothing listens: the hot paths then skip building events.
        self.listening = bool(self.sinks) or bool(self._hooks)

    def emit(self, event: Event) -> None:
        hook = self._hooks.get(type(event))
        if hook is not None:
            caller, arg = hook
            caller(**{arg: event})
        if isinstance(event, Bar):
            targets = [s for s in self.sinks if s.wants_bars]
        else:
            targets = self.sinks
        if targets:
            with self._lock:
                for sink in targets:
                    sink.handle(event)

    def start(self) -> None:
        for sink in self.sinks:
            sink.start()

    def close(self) -> None:
        with self._lock:
            for sink in self.sinks:
                sink.flush()
                sink.close()
