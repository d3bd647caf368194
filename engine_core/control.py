"""Control commands: steering a running engine from outside (MQTT, a CLI, a test).

A :class:`Command` names what to do and to which symbol; :func:`deliver`
hands it to a running engine and returns, per symbol, a future that the
symbol's worker resolves on its own thread once it has acted (with a short
message) or refused (with a :class:`ControlError`). Commands travel through
the worker's inbox, so a command acts between two bars, never inside one.

=========  ==========================================================
pause      the strategy is no longer asked; stops and kill switches still act
resume     undo a pause
flatten    close the symbol's position with a market order (refused while
           an order is pending)
reload     load the strategy file again if it changed (keeping state)
stop       stop the engine, as Ctrl-C does (engine-wide only)
=========  ==========================================================

A symbol command without a symbol goes to every symbol of the engine.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from engine_core.errors import EngineError

SYMBOL_COMMANDS = ("pause", "resume", "flatten", "reload")
ENGINE_COMMANDS = ("stop",)
COMMANDS = SYMBOL_COMMANDS + ENGINE_COMMANDS
ENGINE = "*"  # the key of an engine-wide command's answer


class ControlError(EngineError):
    """A control command was malformed, unknown, or refused; nothing was done.
    A worker's refusal does not name its symbol: the answer to a command
    keys each refusal by symbol (the control channel's reply says it once)."""


@dataclass(frozen=True)
class Command:
    """One command: ``name`` (see the module docstring), the ``symbol`` it is
    for (None: every symbol, or the engine for ``stop``), the caller's
    ``request_id`` to match the answer with the request, and ``origin``: where
    it came from, for the messages it causes (``"MQTT topic engine/e1/control/stop
    on mqtt://host:1883"``)."""

    name: str
    symbol: str | None = None
    request_id: str | None = None
    origin: str = ""

    def describe(self) -> str:
        """``the stop command (request r1, from MQTT topic ...)``: what a user reads."""
        about = [f"request {self.request_id}"] if self.request_id is not None else []
        if self.origin:
            about.append(f"from {self.origin}")
        target = f" for {self.symbol}" if self.symbol is not None else ""
        return f"the {self.name} command{target}" + (f" ({', '.join(about)})" if about else "")

    def __post_init__(self) -> None:
        if self.name not in COMMANDS:
            raise ControlError(f"unknown command {self.name!r}; expected one of {', '.join(COMMANDS)}")
        if self.name in ENGINE_COMMANDS and self.symbol is not None:
            raise ControlError(f"{self.name} is engine-wide and takes no symbol")


class Request(NamedTuple):
    """A command on its way to one worker, with the future its answer goes to."""

    command: Command
    reply: Future[str]


class Controllable(Protocol):
    """What takes commands: a running engine (``runner.Engine``, which routes
    each to its symbols' workers and imports this module; not the reverse)."""

    def command(self, command: Command) -> dict[str, Future[str]]: ...


def deliver(engine: Controllable, command: Command) -> dict[str, Future[str]]:
    """Hand ``command`` to a running engine; returns once it is queued (in a
    backtest, a worker's bounded inbox may make this wait for the chunk in
    hand, so call it off any event loop).

    Returns one future per symbol the command went to (``{"*": ...}`` for an
    engine-wide command). A symbol the engine does not run is refused with
    ControlError before anything is done."""
    return engine.command(command)


__all__ = ["COMMANDS", "ENGINE", "Command", "ControlError", "Controllable", "Request", "deliver"]
