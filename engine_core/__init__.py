"""engine_core: the small core of a plugin-based trading engine.

The names in ``__all__`` are the API for plugin authors, importable from the
package itself whatever module holds them::

    from engine_core import Bar, DataSource, PluginConfig, hookimpl

=================  ==========================================================
group              names
=================  ==========================================================
hooks              ``hookimpl``, ``Register`` (the specs: ``engine_core.hookspecs``)
contracts          ``DataSource``, ``PluginConfig``, ``ConnectionState``;
                   ``Broker``, ``SimulatedBroker``, ``UpdateCallback``, ``key_hint``,
                   ``Journal``; ``EventSink``, ``Event``; ``Service``; ``StrategyHost``,
                   ``SymbolStrategy``, ``SymbolView``, ``Decision``;
                   ``IndicatorKind``, ``IndicatorSpec``, ``StreamingIndicator``
values             bars, orders, fills and events (``engine_core.model``);
                   the order lifecycle (``OrderStatus``, ``OrderUpdate``,
                   ``UpdateKind``, ``OrderState``, ``OpenOrder``, client ids); control
                   ``Command`` and ``deliver``
errors             the tree rooted at ``EngineError`` (``engine_core.errors``)
=================  ==========================================================

Two subpackages have public APIs of their own: ``engine_core.live`` (what live
venues share) and ``engine_core.testing`` (fakes for plugin tests).

Each name is imported from its module on first use (PEP 562): the modules
pull in numpy and pydantic (~0.4 s), while ``import engine_core``, which every
``engine`` command and every submodule import runs first, takes a few
milliseconds. Only the error tree (no dependencies) comes with the package.
"""

# ruff: noqa: F401, F403 (the imports under TYPE_CHECKING are the re-exports, for type checkers)
from __future__ import annotations

import importlib

from engine_core import errors as _errors  # no dependencies: cheap to import with the package
from engine_core import kernel as _kernel

_kernel.interpreted = _kernel.check()  # before any module of the compiled order path is imported

__version__ = "0.1.0"
TYPE_CHECKING = False  # as typing.TYPE_CHECKING (type checkers take it as true), without importing typing

# The module that holds each public name; the block under TYPE_CHECKING says
# the same for type checkers and editors (tests/test_public_api.py keeps the two equal).
_HOMES = {
    "engine_core.hookspecs": ("Register", "hookimpl"),
    "engine_core.sources": ("ConnectionState", "DataSource", "PluginConfig"),
    "engine_core.brokers": ("Broker", "SimulatedBroker", "UpdateCallback", "key_hint"),
    "engine_core.journal": ("Journal",),
    "engine_core.events": ("Event", "EventSink"),
    "engine_core.services": ("Service",),
    "engine_core.strategy": ("Decision", "StrategyHost", "SymbolStrategy", "SymbolView"),
    "engine_core.indicators": ("IndicatorKind", "IndicatorSpec", "StreamingIndicator"),
    "engine_core.model": (
        "NS_PER_SECOND",
        "SECONDS_PER_YEAR",
        "Bar",
        "BarChunk",
        "ConnectionEvent",
        "ErrorEvent",
        "Fill",
        "FillEvent",
        "LogEvent",
        "Order",
        "OrderEvent",
        "OrderType",
        "RoundTrip",
        "Side",
        "SignalEvent",
        "State",
        "TimeInForce",
        "Trade",
        "TransitionEvent",
        "epoch_ns",
        "iso_utc",
    ),
    "engine_core.orders": (
        "OpenOrder",
        "OrderState",
        "OrderStatus",
        "OrderUpdate",
        "UpdateKind",
        "make_client_id",
        "parse_client_id",
    ),
    "engine_core.control": ("Command", "ControlError", "deliver"),
    "engine_core.errors": tuple(_errors.__all__),  # the whole tree, as errors.py lists it
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_HOME_OF)


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'engine_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from typing import Any

    from engine_core.brokers import Broker, SimulatedBroker, UpdateCallback, key_hint
    from engine_core.control import Command, ControlError, deliver
    from engine_core.errors import *
    from engine_core.events import Event, EventSink
    from engine_core.hookspecs import Register, hookimpl
    from engine_core.indicators import IndicatorKind, IndicatorSpec, StreamingIndicator
    from engine_core.journal import Journal
    from engine_core.model import (
        NS_PER_SECOND,
        SECONDS_PER_YEAR,
        Bar,
        BarChunk,
        ConnectionEvent,
        ErrorEvent,
        Fill,
        FillEvent,
        LogEvent,
        Order,
        OrderEvent,
        OrderType,
        RoundTrip,
        Side,
        SignalEvent,
        State,
        TimeInForce,
        Trade,
        TransitionEvent,
        epoch_ns,
        iso_utc,
    )
    from engine_core.orders import (
        OpenOrder,
        OrderState,
        OrderStatus,
        OrderUpdate,
        UpdateKind,
        make_client_id,
        parse_client_id,
    )
    from engine_core.services import Service
    from engine_core.sources import ConnectionState, DataSource, PluginConfig
    from engine_core.strategy import Decision, StrategyHost, SymbolStrategy, SymbolView
