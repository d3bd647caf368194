"""One trial: a full backtest through the engine with some parameters.

The driver builds one :class:`TrialSetup` per search (the validated config
made ready for trials, the history in memory, the strategy script's text)
and ships it once to each worker process (local) or once into the object
store (Ray). A worker keeps a :class:`TrialRunner` over it and runs each
:class:`TrialSpec` through ``Engine(loaded, registry).run()`` and
``summarize``, as ``engine run`` does, so a trial's figures are those of a
plain run with the same parameters.

What a trial's config differs in from the user's, and why:

* the source replays the history in memory (:mod:`history`), cut to the
  trial's window;
* no event sinks and no journal: trials run side by side and must neither
  publish nor share a journal;
* no hot reload: every trial runs the strategy file (Lua script, or the
  ``.py`` of a Python class) as read when the search started, even if the
  file changes meanwhile or is not on a Ray node.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine_core import EngineError, error_text
from engine_core.config import LoadedConfig, StrategySection
from engine_core.plugins import Registry, get_registry
from engine_core.streams import guard_std_streams
from engine_plugin_optimize.history import History, MemorySource, MemoryWindow
from engine_plugin_optimize.metrics import figures


@dataclass(frozen=True)
class ScriptText:
    """The strategy's file (a Lua ``script``, or the ``.py`` of a ``class``) as the driver read it."""

    name: str  # file name
    data: bytes
    digest: str  # sha256 of data


def strategy_file(strategy: StrategySection) -> tuple[str, str] | None:
    """(key, relative or absolute path) of the file the strategy is read from, if any."""
    if strategy.script:
        return "script", strategy.script
    module, _, _ = (strategy.class_ or "").partition(":")
    return ("class", module) if module.endswith(".py") else None


def with_strategy_file(strategy: StrategySection, path: str) -> StrategySection:
    """``strategy`` reading its file from ``path`` instead."""
    key, _ = strategy_file(strategy) or ("", "")
    if key == "script":
        return strategy.model_copy(update={"script": path})
    _, _, name = (strategy.class_ or "").partition(":")
    return strategy.model_copy(update={"class_": f"{path}:{name}"})


@dataclass(frozen=True, eq=False)
class TrialSetup:
    """What every trial of a search shares; shipped once per worker process or node."""

    loaded: LoadedConfig
    history: History
    script: ScriptText | None


@dataclass(frozen=True)
class TrialSpec:
    key: int  # unique within the search
    params: dict[str, Any]
    start: int | None = None  # window [start, end) in ns; None: unbounded
    end: int | None = None


@dataclass(frozen=True)
class TrialOutcome:
    key: int
    metrics: dict[str, Any] | None  # the summary's rankable totals; None when the trial failed
    error: str | None
    seconds: float


def make_setup(loaded: LoadedConfig, history: History) -> TrialSetup:
    """The trials' config (see the module docstring) with the history and script text."""
    cfg = loaded.config
    config = cfg.model_copy(
        update={
            "strategy": cfg.strategy.model_copy(update={"reload": False}),
            "engine": cfg.engine.model_copy(update={"journal": False}),
            "sinks": [],
            "optimize": None,
        }
    )
    trial_loaded = replace(loaded, config=config, source_cls=MemorySource, source_config=None, sinks=[])
    script = None
    found = strategy_file(cfg.strategy)
    if found is not None:
        key, name = found
        path = (loaded.base_dir / name).resolve()
        try:
            data = path.read_bytes()
        except OSError as err:
            raise EngineError(f"{loaded.path}: strategy.{key}: cannot read {path}: {err.strerror}") from err
        script = ScriptText(path.name, data, hashlib.sha256(data).hexdigest())
    return TrialSetup(trial_loaded, history, script)


class TrialRunner:
    """Runs trials of one setup in this process, one after another."""

    def __init__(self, setup: TrialSetup, registry: Registry | None = None) -> None:
        self.setup = setup
        self.registry = registry or get_registry()
        self.loaded = self._with_script(setup)

    def _with_script(self, setup: TrialSetup) -> LoadedConfig:
        """The setup's config, its script pointing at the text the driver read: the
        configured file when it holds that text, else a private copy of it."""
        loaded, script = setup.loaded, setup.script
        found = strategy_file(loaded.config.strategy)
        if script is None or found is None:
            return loaded
        path = (loaded.base_dir / found[1]).resolve()
        try:
            same = hashlib.sha256(path.read_bytes()).hexdigest() == script.digest
        except OSError:
            same = False
        if same:
            return loaded
        folder = Path(tempfile.mkdtemp(prefix="engine-optimize-"))
        atexit.register(shutil.rmtree, folder, True)
        copy = folder / script.name
        copy.write_bytes(script.data)
        strategy = with_strategy_file(loaded.config.strategy, str(copy))
        return replace(loaded, config=loaded.config.model_copy(update={"strategy": strategy}))

    def config_for(self, spec: TrialSpec) -> LoadedConfig:
        """The trial's config: the setup's with the spec's parameters and window."""
        cfg = self.loaded.config
        strategy = cfg.strategy.model_copy(update={"params": {**cfg.strategy.params, **spec.params}})
        return replace(
            self.loaded,
            config=cfg.model_copy(update={"strategy": strategy}),
            source_config=MemoryWindow(self.setup.history, spec.start, spec.end),
        )

    def run(self, spec: TrialSpec) -> TrialOutcome:
        from engine_core.report import summarize
        from engine_core.runner import Engine

        started = time.perf_counter()

        def outcome(metrics: dict[str, Any] | None, error: str | None) -> TrialOutcome:
            return TrialOutcome(spec.key, metrics, error, time.perf_counter() - started)

        try:
            summary = summarize(Engine(self.config_for(spec), self.registry).run())
        except EngineError as err:
            return outcome(None, str(err))
        except Exception as err:  # noqa: BLE001 - a bug in a plugin fails this trial, not the search
            return outcome(None, f"internal error: {error_text(err)}")
        total = summary["total"]
        for symbol, reason in total["halted"].items():
            if not _kill_switch(reason):
                return outcome(None, f"{symbol} halted: {reason}")
        return outcome(figures(total), None)


def _kill_switch(reason: str) -> bool:
    """A risk kill switch stopping a symbol is a result of its parameters, not a failure."""
    return " kill switch " in reason and " tripped" in reason


# ------------------------------------------------------------ local worker processes

_runner: TrialRunner | None = None


def init_process(setup: TrialSetup) -> None:
    """Initializer of a local worker process: Ctrl-C is the driver's to
    handle; stdout and stderr (the driver's) are written as ``engine run``
    writes them, so that a reader who does not read never stops a trial."""
    global _runner
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    guard_std_streams()
    _runner = TrialRunner(setup)


def run_in_process(spec: TrialSpec) -> TrialOutcome:
    assert _runner is not None, "init_process was not called in this worker"
    return _runner.run(spec)


# ------------------------------------------------------------ Ray workers

_ray_runners: dict[str, TrialRunner] = {}


def run_on_ray(key: str, holder: list[Any], spec: TrialSpec) -> TrialOutcome:
    """A Ray task: the setup (``holder[0]``, an object ref, not resolved by Ray
    on each call) is fetched and prepared once per worker process."""
    runner = _ray_runners.get(key)
    if runner is None:
        import ray

        _ray_runners.clear()  # one search at a time per worker process
        runner = _ray_runners[key] = TrialRunner(ray.get(holder[0]))
    return runner.run(spec)


__all__ = ["TrialOutcome", "TrialRunner", "TrialSetup", "TrialSpec", "make_setup"]
