"""Hook specifications: every extension point of the engine.

A plugin is any object (usually a module) with functions marked
``@hookimpl`` whose names match the specs below, declared under the
entry-point group ``engine_core.plugins``. An implementation may take a
subset of a spec's arguments; specs only ever gain arguments, so old
plugins keep working.

Plugin authors read PLUGINS.md (a section per spec) and import from
``engine_core`` (the public API). A new spec needs its section there and a
test that implements it: tests/test_hook_guide.py checks both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from engine_core.model import (
        Bar,
        ConnectionEvent,
        ErrorEvent,
        FillEvent,
        LogEvent,
        OrderEvent,
        SignalEvent,
        TransitionEvent,
    )

PROJECT = "engine_core"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]

# ------------------------------------------------------------ registration
# Called once when plugins load. Each receives a ``register`` callback; every
# call of it adds one named implementation. All plugins' results combine; a
# name registered twice is an error naming both distributions. Where a spec
# says ``register(name, cls)``, ``cls`` may also be given as a reference,
# ``"package.module:Class"``, imported the first time a config names it (so
# registering imports none of the plugin's dependencies).


@hookspec
def register_data_sources(register: Register) -> None:
    """Register market-data sources.

    ``register(name, cls)`` where ``cls`` subclasses
    :class:`engine_core.sources.DataSource` and carries its own config model
    for the keys of the ``[source]`` table.
    """


@hookspec
def register_indicators(register: Register) -> None:
    """Register indicators.

    ``register(kind)`` where ``kind`` is an
    :class:`engine_core.indicators.IndicatorKind` (its ``spec.name`` is the
    registered name, lower case).
    """


@hookspec
def register_strategy_hosts(register: Register) -> None:
    """Register strategy hosts (languages strategies are written in).

    ``register(name, cls)`` where ``cls`` subclasses
    :class:`engine_core.strategy.StrategyHost`.
    """


@hookspec
def register_brokers(register: Register) -> None:
    """Register brokers.

    ``register(name, cls)`` where ``cls`` subclasses
    :class:`engine_core.brokers.Broker` and carries its own config model for
    the venue-specific keys of the ``[broker]`` table.
    """


@hookspec
def register_event_sinks(register: Register) -> None:
    """Register event sinks (where engine events go: log, MQTT, files).

    ``register(name, cls)`` where ``cls`` subclasses
    :class:`engine_core.events.EventSink`.
    """


@hookspec
def register_services(register: Register) -> None:
    """Register services: what runs beside a live engine (a web dashboard).

    ``register(name, cls)`` where ``cls`` subclasses
    :class:`engine_core.services.Service` and carries its own config model
    for the keys of the config's top-level ``[name]`` table. A live run with
    that table starts the service after ``engine_started`` and stops it when
    the engine stops; a backtest only validates the table.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``engine`` command line.

    ``cli`` is the :class:`click.Group` behind ``engine``; call
    ``cli.add_command(command)`` with a click command or group (for example
    ``engine optimize``). A venue's history download goes under the core's
    ``download`` group: ``cli.commands["download"].add_command(command,
    "binance")``. A plugin's command
    must import its heavy dependencies inside the command, not at load time.
    """


# ------------------------------------------------------------ observation
# One spec per event, alike by design (pluggy matches implementations by
# name and arguments). Called by the engine as things happen; results are
# ignored. They run on the thread where the event happens (a symbol's
# worker for bars, signals, transitions, orders and fills), so an
# implementation must be quick and thread-safe. ``engine_bar`` is only called when some plugin implements it.


@hookspec
def engine_started(config: Any, engine: Any) -> None:
    """The engine has validated its config and is about to start the workers.

    ``engine`` is the running :class:`engine_core.runner.Engine`; a plugin
    that steers it (a control channel) keeps it and calls
    :func:`engine_core.control.deliver`."""


@hookspec
def engine_stopped(summary: dict[str, Any]) -> None:
    """The engine has stopped; ``summary`` is what ``summary.json`` holds."""


@hookspec
def engine_bar(bar: Bar) -> None:
    """A bar reached its symbol's worker."""


@hookspec
def engine_signal(event: SignalEvent) -> None:
    """A strategy made a decision."""


@hookspec
def engine_transition(event: TransitionEvent) -> None:
    """A symbol's state machine changed state."""


@hookspec
def engine_order(event: OrderEvent) -> None:
    """An order changed status: ``event.status`` is an ``orders.OrderStatus``
    (intent, submitted, accepted, cancelled, rejected, refused, lost, ...)."""


@hookspec
def engine_fill(event: FillEvent) -> None:
    """An order was filled (in whole or in part)."""


@hookspec
def engine_error(event: ErrorEvent) -> None:
    """Something failed: a strategy error halting a symbol, a broker error, bad data."""


@hookspec
def engine_connection(event: ConnectionEvent) -> None:
    """A live source's connection changed state (connected, reconnecting, backfilling, stale, closed)."""


@hookspec
def engine_log(event: LogEvent) -> None:
    """A strategy logged a line (``ctx.log``): ``event.symbol``, the bar's ``event.ts``, ``event.message``."""
