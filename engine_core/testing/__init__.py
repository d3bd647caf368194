"""Fakes and helpers for testing the engine and its plugins.

* :func:`builtin_registry` - a registry of the core's built-ins plus the
  plugin objects you pass, without loading installed entry points;
* :class:`InlinePlugin` - a plugin object registering a test's own sources,
  brokers and sinks by name;
* :class:`ReplaySource` - a source that replays bars given in its config;
* :class:`RecordingBroker` - a simulated broker that records every order;
* :class:`ScriptedBroker` - a venue-like broker that acks, fills, partially
  fills, rejects, cancels and delays from its own thread, as a script says;
* :class:`MemorySink` - an event sink that keeps every event in a list;
* :func:`replay_rows` - the replay source's rows from prices or OHLC bars;
* :func:`gbm_bars` - seeded geometric-Brownian-motion bars (the ``simulated``
  source's generator) for tests and benchmarks;
* :func:`python_strategy` - a small Python strategy class written from its
  function bodies, and the ``[strategy]`` table that runs it;
* :func:`write_config` - a TOML config file from Python dicts;
* :func:`wait_until`, :func:`wait_until_async` - poll a condition with a
  generous timeout, failing with what was awaited;
* :class:`UpdateLog` - a broker's ``on_update`` callback keeping every update;
* :class:`EngineThread` - a live engine on a thread, driven by the test;
* :func:`run_engine`, :func:`start_engine`, :func:`engine_env`,
  :func:`exited`, :func:`journal_value` - an ``engine`` command in a child
  process, as a user runs it (installed plugins loaded), and its journal
  read while it runs;
* :class:`BackgroundServer` - an aiohttp application on 127.0.0.1 in a thread
  of its own, for fake venues (imported on first use: aiohttp is a venue
  plugin's dependency, not the core's).

The module is itself a plugin registering ``replay``, ``recording``,
``scripted`` and ``memory``:
``builtin_registry(("testing", engine_core.testing))``.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine_core.builtin import log_sink, paper, python_host, simulated
from engine_core.builtin.paper import PaperBroker
from engine_core.builtin.simulated import gbm_bars
from engine_core.events import Event, EventSink
from engine_core.hookspecs import hookimpl
from engine_core.model import NS_PER_SECOND, Bar, BarChunk, Order
from engine_core.plugins import Registry, build_registry
from engine_core.sources import DataSource, PluginConfig
from engine_core.testing.processes import engine_env, exited, journal_value, run_engine, start_engine
from engine_core.testing.running import EngineThread
from engine_core.testing.scripted import ScriptedBroker, Venue, venue
from engine_core.testing.updates import UpdateLog
from engine_core.testing.waiting import wait_until, wait_until_async

BUILTINS = (
    ("simulated", simulated),
    ("paper", paper),
    ("python", python_host),
    ("log", log_sink),
)


class InlinePlugin:
    """A plugin registering the classes it is given, by name: a test's own
    sources, brokers and sinks, passed to :func:`builtin_registry`."""

    def __init__(
        self,
        *,
        sources: Mapping[str, type] | None = None,
        brokers: Mapping[str, type] | None = None,
        sinks: Mapping[str, type] | None = None,
    ) -> None:
        self.sources, self.brokers, self.sinks = dict(sources or {}), dict(brokers or {}), dict(sinks or {})

    # A plugin's registration hooks, alike in every plugin by design: pluggy calls each by its name.

    @hookimpl
    def register_data_sources(self, register: Any) -> None:
        for name, cls in self.sources.items():
            register(name, cls)

    @hookimpl
    def register_brokers(self, register: Any) -> None:
        for name, cls in self.brokers.items():
            register(name, cls)

    @hookimpl
    def register_event_sinks(self, register: Any) -> None:
        for name, cls in self.sinks.items():
            register(name, cls)


def builtin_registry(*extra: tuple[str, Any]) -> Registry:
    """Built-ins (the Lua host too, when importable) plus ``extra`` plugins."""
    plugins = list(BUILTINS)
    try:
        from engine_core.lua import plugin as lua_plugin

        plugins.append(("lua", lua_plugin))
    except ImportError:
        pass
    return build_registry([*plugins, *extra], autoload=False)


class MemoryConfig(PluginConfig):
    bars: bool = False


class ReplayConfig(PluginConfig):
    # rows of [symbol, seconds since epoch, open, high, low, close, volume]
    bars: list[tuple[str, int, float, float, float, float, float]]
    pace: float = 0.0  # live: seconds between bars


class ReplaySource(DataSource):
    """Replays the bars listed in its config, in the given order."""

    Config = ReplayConfig

    def _bars(self) -> list[Bar]:
        return [
            Bar(s, t * NS_PER_SECOND, o, h, lo, c, v) for s, t, o, h, lo, c, v in self.config.bars if s in self.symbols
        ]

    def history(self) -> Iterator[BarChunk]:
        for symbol in self.symbols:
            bars = [b for b in self._bars() if b.symbol == symbol]
            if bars:
                yield BarChunk.from_bars(bars)

    async def live(self) -> AsyncIterator[Bar]:
        for bar in self._bars():
            if self.config.pace:
                await asyncio.sleep(self.config.pace)
            yield bar


def replay_rows(symbol: str, bars: Iterable[float | Sequence[float]], interval: int = 60) -> list[list[Any]]:
    """Rows for :class:`ReplaySource`: one bar of ``symbol`` every ``interval``
    seconds from t=0, each an (open, high, low, close) or one price (open and
    close at it, high 1 above, low 1 below); volume 1."""
    rows: list[list[Any]] = []
    for i, bar in enumerate(bars):
        o, h, lo, c = (bar, bar + 1, bar - 1, bar) if isinstance(bar, (int, float)) else bar
        rows.append([symbol, interval * i, float(o), float(h), float(lo), float(c), 1.0])
    return rows


class RecordingBroker(PaperBroker):
    """The paper broker, keeping every order it was sent (resends included)."""

    sent: list[Order]

    def submit(self, order: Order) -> None:
        if not hasattr(self, "sent"):
            self.sent = []
        self.sent.append(order)
        super().submit(order)


class MemorySink(EventSink):
    """Keeps every event (bars too when ``bars = true``) in ``events``."""

    Config = MemoryConfig

    def __init__(self, config: MemoryConfig) -> None:
        super().__init__(config)
        self.wants_bars = config.bars  # type: ignore[misc]
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)


# Spelled out like every plugin's hooks (PLUGINS.md), so alike on purpose.
@hookimpl
def register_event_sinks(register: Any) -> None:
    register("memory", MemorySink)


@hookimpl
def register_data_sources(register: Any) -> None:
    register("replay", ReplaySource)


@hookimpl
def register_brokers(register: Any) -> None:
    register("recording", RecordingBroker)
    register("scripted", ScriptedBroker)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _table(name: str, values: dict[str, Any], out: list[str], array: bool = False) -> None:
    out.append(f"[[{name}]]" if array else f"[{name}]")
    nested = {k: v for k, v in values.items() if isinstance(v, dict)}
    for key, value in values.items():
        if key not in nested:
            out.append(f"{key} = {_toml_value(value)}")
    for key, value in nested.items():
        _table(f"{name}.{key}", value, out)


def python_strategy(
    folder: Path,
    *,
    watch: str = "return None",
    close_watch: str = "return None",
    in_trade: str = "return None",
    init: str | None = None,
    file: str = "s.py",
) -> dict[str, Any]:
    """Write a strategy class ``S`` to ``folder/file`` whose functions run these
    bodies (``self`` and ``ctx`` in scope; a body may span lines; no ``init``
    unless given), and return the ``[strategy]`` table that runs it."""
    lines = ["class S:"]
    bodies = {"init": init, "watch": watch, "close_watch": close_watch, "in_trade": in_trade}
    for function, body in bodies.items():
        if body is None:
            continue
        lines += [f"    def {function}(self, ctx):", textwrap.indent(textwrap.dedent(body).strip(), " " * 8)]
    (folder / file).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"host": "python", "class": f"{file}:S"}


def write_config(path: Path, sections: dict[str, Any]) -> Path:
    """Write ``{"engine": {...}, "strategy": {..., "params": {...}}, "sinks": [{...}]}``
    as TOML to ``path`` and return it."""
    out: list[str] = []
    for name, values in sections.items():
        if isinstance(values, list):
            for item in values:
                _table(name, item, out, array=True)
        else:
            _table(name, values, out)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def scripted_live_config(
    tmp_path: Path,
    strategy: dict[str, str],
    broker: dict[str, Any],
    *,
    symbols: Sequence[str] = ("A",),
    n: int = 8,
    pace: float = 0.02,
    **tables: Any,
) -> Path:
    """``tmp_path/c.toml``: a live run of ``symbols`` on ``n`` replayed bars at
    100 each, ``pace`` seconds apart, with the Python strategy whose function
    bodies ``strategy`` gives (``python_strategy``), on the scripted venue
    (``broker``: its ``venue``, ``script`` ...); ``tables``: more sections."""
    rows = sorted((row for symbol in symbols for row in replay_rows(symbol, [100.0] * n)), key=lambda r: r[1])
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": list(symbols), "window": 20, "journal_sync": "normal"},
            "source": {"type": "replay", "bars": rows, "pace": pace},
            "strategy": python_strategy(tmp_path, **strategy),
            "broker": {"type": "scripted", **broker},
            **tables,
        },
    )


def __getattr__(name: str) -> Any:
    if name == "BackgroundServer":  # needs aiohttp, which only venue plugins bring
        from engine_core.testing.server import BackgroundServer

        return BackgroundServer
    raise AttributeError(f"module 'engine_core.testing' has no attribute {name!r}")


__all__ = [
    "BackgroundServer",
    "EngineThread",
    "InlinePlugin",
    "MemorySink",
    "RecordingBroker",
    "ReplaySource",
    "ScriptedBroker",
    "EngineThread",
    "UpdateLog",
    "Venue",
    "builtin_registry",
    "engine_env",
    "exited",
    "gbm_bars",
    "journal_value",
    "python_strategy",
    "replay_rows",
    "run_engine",
    "start_engine",
    "venue",
    "wait_until",
    "wait_until_async",
    "write_config",
]
