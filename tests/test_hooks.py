"""Every hook spec, implemented by a plugin written against the public API
(``from engine_core import ...``) and called by the engine on its own path.

tests/test_hook_guide.py checks that each spec has an implementation in some
test and a section in the plugin guide."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner

import engine_core.testing as testing
from engine_core import (
    Bar,
    ConnectionEvent,
    ConnectionState,
    Decision,
    ErrorEvent,
    FillEvent,
    IndicatorKind,
    IndicatorSpec,
    LogEvent,
    OrderEvent,
    OrderStatus,
    PluginConfig,
    Service,
    Side,
    SignalEvent,
    State,
    StrategyHost,
    StreamingIndicator,
    SymbolStrategy,
    SymbolView,
    TransitionEvent,
    hookimpl,
)
from engine_core.cli import main
from engine_core.errors import ConfigError, EngineError
from engine_core.plugins import set_registry
from engine_core.runner import Engine, build_engine
from engine_core.testing import builtin_registry, write_config

# ------------------------------------------------------------ observation hooks

TRADER = """
class S:
    def watch(self, ctx):
        if ctx.index == 6:
            ctx.log("about to fail")
        if ctx.index == 7:
            raise ValueError("strategy bug")
        return "enter" if ctx.index == 1 else None
    def close_watch(self, ctx):
        return "enter"
    def in_trade(self, ctx):
        return "exit" if ctx.index == 4 else None
"""


class ConnectedReplay(testing.ReplaySource):
    """The replay source, live, saying it connected first."""

    async def live(self) -> AsyncIterator[Bar]:
        self.connection(ConnectionState.CONNECTED, "replay")
        async for bar in super().live():
            yield bar


class Observer:
    """Implements every observation hook, keeping what each was given: one
    method per spec, alike on purpose (pluggy matches them by name and arguments)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[Any]] = {}

    def _keep(self, hook: str, value: Any) -> None:
        self.calls.setdefault(hook, []).append(value)

    @hookimpl
    def register_data_sources(self, register: Any) -> None:
        register("connected_replay", ConnectedReplay)

    @hookimpl
    def engine_started(self, config: Any, engine: Any) -> None:
        self._keep("engine_started", (config, engine))

    @hookimpl
    def engine_stopped(self, summary: dict[str, Any]) -> None:
        self._keep("engine_stopped", summary)

    @hookimpl
    def engine_bar(self, bar: Bar) -> None:
        self._keep("engine_bar", bar)

    @hookimpl
    def engine_signal(self, event: SignalEvent) -> None:
        self._keep("engine_signal", event)

    @hookimpl
    def engine_transition(self, event: TransitionEvent) -> None:
        self._keep("engine_transition", event)

    @hookimpl
    def engine_order(self, event: OrderEvent) -> None:
        self._keep("engine_order", event)

    @hookimpl
    def engine_fill(self, event: FillEvent) -> None:
        self._keep("engine_fill", event)

    @hookimpl
    def engine_error(self, event: ErrorEvent) -> None:
        self._keep("engine_error", event)

    @hookimpl
    def engine_connection(self, event: ConnectionEvent) -> None:
        self._keep("engine_connection", event)

    @hookimpl
    def engine_log(self, event: LogEvent) -> None:
        self._keep("engine_log", event)


def rows(n: int) -> list[list[Any]]:
    return [["A", 60 * i, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0] for i in range(n)]


def test_every_observation_hook_is_called_with_what_its_spec_names(tmp_path: Path):
    (tmp_path / "s.py").write_text(textwrap.dedent(TRADER))
    observer = Observer()
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A"], "window": 20, "journal_sync": "normal"},
            "source": {"type": "connected_replay", "bars": rows(10)},
            "strategy": {"host": "python", "class": "s.py:S", "qty": 1, "on_error": "keep"},
            "broker": {"type": "paper", "cash": 10000, "fill": "close"},
        },
    )
    result = build_engine(cfg, builtin_registry(("testing", testing), ("observer", observer))).run()
    calls = observer.calls

    [(config, engine)] = calls["engine_started"]
    assert isinstance(engine, Engine) and config.engine.symbols == ["A"]
    [summary] = calls["engine_stopped"]
    assert "total" in summary
    assert [b.ts // 60_000_000_000 for b in calls["engine_bar"]] == list(range(10))
    assert [(s.symbol, s.action) for s in calls["engine_signal"]] == [("A", "enter"), ("A", "exit")]
    assert [(t.from_state, t.to_state) for t in calls["engine_transition"]] == [
        (State.WATCH, State.CLOSE_WATCH),
        (State.CLOSE_WATCH, State.IN_TRADE),
        (State.IN_TRADE, State.WATCH),
    ]
    orders = calls["engine_order"]
    assert {(o.order.client_id, o.order.side) for o in orders} == {("c-A-1", Side.BUY), ("c-A-2", Side.SELL)}
    assert [o.status for o in orders if o.order.client_id == "c-A-1"][0] is OrderStatus.INTENT
    assert [f.fill.side for f in calls["engine_fill"]] == [Side.BUY, Side.SELL]
    [error] = calls["engine_error"]
    assert error.symbol == "A" and "strategy bug" in error.message
    assert [(c.source, c.state) for c in calls["engine_connection"]] == [("connected_replay", "connected")]
    assert [log.message for log in calls["engine_log"]] == ["about to fail"]
    assert result.symbols["A"].halted is not None


class Terse:
    """Observers that take fewer arguments than their spec names (pluggy allows a
    subset), and one that fails."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    @hookimpl
    def engine_log(self) -> None:
        self.calls.append("log")

    @hookimpl
    def engine_bar(self, bar: Bar) -> None:
        self.calls.append(bar.ts)

    @hookimpl
    def engine_error(self, event: ErrorEvent) -> None:
        raise RuntimeError("observer bug")


def test_an_observer_gets_the_arguments_it_names_and_one_that_fails_alone_is_disabled():
    from engine_core.events import EventBus
    from engine_core.plugins import new_plugin_manager

    pm = new_plugin_manager()
    terse = Terse()
    pm.register(terse, name="terse")
    bus = EventBus(pm)
    bar = Bar("A", 60, 1.0, 1.0, 1.0, 1.0, 1.0)
    for _ in range(2):
        bus.emit(LogEvent("A", None, "hi"))
        bus.emit(bar)
        bus.emit(ErrorEvent("A", 60, "boom"))
    assert terse.calls == ["log", 60, "log", 60]
    assert bus.hook_failures == ["plugin 'terse' failed in engine_error: RuntimeError: observer bug; hook disabled"]


# ------------------------------------------------------------ registration hooks


class Doubled(StreamingIndicator):
    """Twice the close: the smallest indicator there is."""

    def __init__(self, spec: IndicatorSpec) -> None:
        self.spec = spec
        self._value = float("nan")

    def update(self, bar: Any) -> None:
        self._value = 2.0 * bar.close

    def update_many(self, bars: Any) -> tuple[np.ndarray, ...]:
        out = 2.0 * np.asarray(bars.close, dtype=np.float64)
        if len(out):
            self._value = float(out[-1])
        return (out,)

    @property
    def value(self) -> float:
        return self._value

    @property
    def ready(self) -> bool:
        return not np.isnan(self._value)


class DoubledKind(IndicatorKind):
    spec = IndicatorSpec(name="doubled", inputs=("close",), params={}, outputs=("doubled",))

    def batch(self, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
        return (2.0 * inputs["close"],)

    def stream(self, params: Mapping[str, Any]) -> StreamingIndicator:
        return Doubled(self.spec)


class ThresholdStrategy(SymbolStrategy):
    """Enters when the ``doubled`` indicator reaches ``params.above``, exits a bar later."""

    def __init__(self, view: SymbolView, above: float) -> None:
        self.view = view
        self.above = above

    def init(self) -> None:
        pass

    def scan(self, state: State, start: int, stop: int) -> tuple[int, Decision | None]:
        (doubled,) = self.view.indicator("doubled")
        for k in range(start, stop):
            if state is State.IN_TRADE:
                return k, Decision("exit")
            if doubled[self.view.offset + k] >= self.above:
                return k, Decision("enter")
        return stop, None

    def on_fill(self, fill: Any) -> None:
        pass


class ThresholdHost(StrategyHost):
    def load(self) -> None:
        self.above = float(self.config.params["above"])

    def bind(self, symbol: str, view: SymbolView) -> SymbolStrategy:
        return ThresholdStrategy(view, self.above)


class Extension:
    """A plugin adding an indicator, a strategy language and a command."""

    @staticmethod
    @hookimpl
    def register_indicators(register: Any) -> None:
        register(DoubledKind())

    @staticmethod
    @hookimpl
    def register_strategy_hosts(register: Any) -> None:
        register("threshold", ThresholdHost)

    @staticmethod
    @hookimpl
    def register_commands(cli: click.Group) -> None:
        @click.command("hello")
        @click.argument("who")
        def hello(who: str) -> None:
            """Say hello."""
            click.echo(f"hello {who}")

        cli.add_command(hello)


def test_a_registered_host_runs_on_a_registered_indicator(tmp_path: Path):
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A"], "window": 20},
            "source": {"type": "replay", "bars": rows(10)},
            "strategy": {"host": "threshold", "class": "above", "params": {"above": 2 * 104.5}},
            "broker": {"type": "paper", "cash": 10000, "fill": "close"},
            "sinks": [{"type": "memory"}],
        },
    )
    registry = builtin_registry(("testing", testing), ("extension", Extension()))
    set_registry(registry)  # indicators resolve through the process-wide registry
    engine = build_engine(cfg, registry)
    result = engine.run()
    fills = [e for e in engine.bus.sinks[0].events if isinstance(e, FillEvent)]
    # close = 100.5 + i: doubled reaches 209 at bar 4; filled at that close, out at the next bar's
    assert [(f.fill.side, f.fill.price) for f in fills[:2]] == [(Side.BUY, 104.5), (Side.SELL, 105.5)]
    assert result.strategy == "above" and result.symbols["A"].halted is None


def test_a_registered_command_runs_from_the_engine_command(monkeypatch: pytest.MonkeyPatch):
    # The ``engine`` group adds plugin commands once per process: let it add them again.
    monkeypatch.setattr(main, "commands", dict(main.commands))
    monkeypatch.setattr(main, "_plugins_added", False)
    set_registry(builtin_registry(("extension", Extension())))
    result = CliRunner().invoke(main, ["hello", "plugin"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello plugin\n"


class Recorder(Service):
    """A service keeping what the engine showed it, and when it was stopped."""

    class Config(PluginConfig):
        label: str = "rec"
        fail: bool = False

    runs: list[dict[str, Any]] = []

    def start(self, engine: Any) -> None:
        if self.config.fail:
            raise ConfigError(f"{self.name}.fail: asked to fail")
        self.run = {"label": self.config.label, "symbols": list(engine.workers), "stopped": False}
        Recorder.runs.append(self.run)

    def stop(self) -> None:
        self.run["stopped"] = True


class WithService:
    @staticmethod
    @hookimpl
    def register_services(register: Any) -> None:
        register("recorder", Recorder)


def _service_config(tmp_path: Path, mode: str, table: Any) -> Path:
    (tmp_path / "s.py").write_text(textwrap.dedent(TRADER))
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": mode, "symbols": ["A"], "window": 20, "journal_sync": "normal"},
            "source": {"type": "replay", "bars": rows(3)},
            "strategy": {"host": "python", "class": "s.py:S", "qty": 1},
            "broker": {"type": "paper", "cash": 10000, "fill": "close"},
            "recorder": table,
        },
    )


def test_a_registered_service_runs_beside_a_live_engine_and_stops_with_it(tmp_path: Path):
    Recorder.runs = []
    registry = builtin_registry(("testing", testing), ("with_service", WithService()))
    build_engine(_service_config(tmp_path, "live", {"label": "x"}), registry).run()
    assert Recorder.runs == [{"label": "x", "symbols": ["A"], "stopped": True}]
    # a backtest (an optimisation trial) validates the table and starts nothing
    (tmp_path / "bt").mkdir()
    build_engine(_service_config(tmp_path / "bt", "backtest", {"label": "y"}), registry).run()
    assert len(Recorder.runs) == 1


def test_a_service_table_is_validated_and_a_failing_start_stops_the_engine(tmp_path: Path):
    registry = builtin_registry(("testing", testing), ("with_service", WithService()))
    with pytest.raises(ConfigError, match=r"c\.toml: recorder\.colour: unknown key"):
        build_engine(_service_config(tmp_path, "live", {"colour": "red"}), registry)
    path = _service_config(tmp_path, "live", {})
    path.write_text("recorder = 3\n" + path.read_text().replace("[recorder]", ""))
    with pytest.raises(ConfigError, match="recorder: expected a table"):
        build_engine(path, registry)
    with pytest.raises(ConfigError, match=r"recorder\.fail: asked to fail"):
        build_engine(_service_config(tmp_path, "live", {"fail": True}), registry).run()
    # without the plugin, the table names the distribution that would run it
    path = _service_config(tmp_path, "live", {})
    path.write_text(path.read_text().replace("[recorder]", "[dashboard]"))
    with pytest.raises(EngineError, match=r"c\.toml: dashboard: unknown service 'dashboard'.*engine-plugin-dashboard"):
        build_engine(path, builtin_registry(("testing", testing)))
