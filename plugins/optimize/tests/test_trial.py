"""One trial in this process: the same figures as a plain run, on the window asked,
from the script text read when the search started."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from engine_plugin_optimize.history import History
from engine_plugin_optimize.metrics import RECORDED, figures
from engine_plugin_optimize.trial import TrialRunner, TrialSpec, make_setup

from engine_core.config import LoadedConfig, load_config
from engine_core.plugins import get_registry
from engine_core.report import summarize
from engine_core.runner import Engine

ROOT = Path(__file__).resolve().parents[3]


def loaded_config(project: Path, extra: str = "") -> LoadedConfig:
    path = project / "backtest.toml"
    if extra:
        path.write_text(path.read_text() + extra)
    return load_config(path, get_registry())


def runner_for(loaded: LoadedConfig) -> tuple[TrialRunner, History]:
    history = History.read(loaded)
    return TrialRunner(make_setup(loaded, history)), history


def test_a_trial_is_a_plain_run_with_its_parameters(project: Path) -> None:
    loaded = loaded_config(project)
    runner, _ = runner_for(loaded)
    outcome = runner.run(TrialSpec(1, {"fast": 7, "slow": 45}))
    assert outcome.error is None and outcome.seconds > 0
    strategy = loaded.config.strategy.model_copy(update={"params": {"fast": 7, "slow": 45, "qty": 1}})
    plain = replace(loaded, config=loaded.config.model_copy(update={"strategy": strategy}))
    expected = figures(summarize(Engine(plain, get_registry()).run())["total"])
    assert outcome.metrics == expected
    assert outcome.metrics["trades"] > 0
    # the same trial again in the same process: the same figures
    assert runner.run(TrialSpec(2, {"fast": 7, "slow": 45})).metrics == expected


def test_a_window_runs_on_its_bars_only(project: Path) -> None:
    runner, history = runner_for(loaded_config(project))
    first, last = history.span()
    start, end = first + (last - first) // 4, first + (last - first) // 2
    outcome = runner.run(TrialSpec(1, {}, start, end))
    assert outcome.metrics is not None
    assert outcome.metrics["bars"] == sum(history.bars(start, end).values()) < 40_000 // 3
    whole = runner.run(TrialSpec(2, {}))
    assert whole.metrics is not None and whole.metrics["bars"] == 40_000


def test_the_script_read_at_the_start_is_the_one_that_runs(project: Path) -> None:
    runner_before, _ = runner_for(loaded_config(project))
    expected = runner_before.run(TrialSpec(1, {})).metrics
    loaded = loaded_config(project)
    history = History.read(loaded)
    setup = make_setup(loaded, history)
    script = project / "strategies" / "sma_cross.lua"
    script.write_text('function watch(ctx) error("edited") end\n' + script.read_text())  # edited mid-search
    assert TrialRunner(setup).run(TrialSpec(2, {})).metrics == expected
    script.unlink()  # or not on this machine at all (a Ray node)
    assert TrialRunner(setup).run(TrialSpec(3, {})).metrics == expected


def test_a_kill_switch_is_a_result_not_a_failure(project: Path) -> None:
    loaded = loaded_config(project, "\n[risk]\nmax_drawdown = 0.000001\n")
    halted = summarize(Engine(loaded, get_registry()).run())["total"]["halted"]
    assert halted and all(" kill switch max_drawdown tripped" in reason for reason in halted.values())
    runner, _ = runner_for(loaded)
    outcome = runner.run(TrialSpec(1, {}))
    assert outcome.error is None and outcome.metrics is not None


@pytest.mark.parametrize("params", [{"fast": 0}, {"fast": "ten"}])
def test_a_strategy_error_fails_the_trial_with_its_message(project: Path, params: dict) -> None:
    runner, _ = runner_for(loaded_config(project))
    outcome = runner.run(TrialSpec(1, params))
    assert outcome.metrics is None
    assert outcome.error is not None and outcome.error.startswith("BTCUSDT halted: ")


def test_recorded_figures_are_summary_totals(project: Path) -> None:
    loaded = loaded_config(project)
    total = summarize(Engine(loaded, get_registry()).run())["total"]
    assert set(RECORDED) <= set(total)


def test_a_python_class_file_travels_with_the_setup(project: Path, python_config) -> None:
    loaded = load_config(python_config(3000), get_registry())
    setup = make_setup(loaded, History.read(loaded))
    expected = TrialRunner(setup).run(TrialSpec(1, {"fast": 5})).metrics
    assert expected is not None and expected["trades"] > 0
    (project / "strat.py").unlink()  # not on this machine (a Ray node)
    assert TrialRunner(setup).run(TrialSpec(2, {"fast": 5})).metrics == expected
