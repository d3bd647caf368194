"""``engine validate`` in process: what it checks, what it says it did not, and
that it touches nothing (no broker built or contacted, nothing written)."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

import engine_core.testing as testing
from engine_core.builtin.paper import PaperBroker
from engine_core.hookspecs import hookimpl
from engine_core.testing import write_config
from engine_core.validate import NOT_CHECKED_BY_VALIDATE, cannot_create, validate

BARE_ENTER = 'function watch(ctx) return "enter" end\nfunction close_watch(ctx) end\nfunction in_trade(ctx) end\n'


class UntouchableBroker(PaperBroker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("validate built a broker")


@hookimpl
def _register_brokers(register: Any) -> None:
    register("untouchable", UntouchableBroker)


@pytest.fixture
def registry_with_spy(registry):
    spy = types.SimpleNamespace(register_brokers=_register_brokers)
    return testing.builtin_registry(("testing", testing), ("spy", spy))


def config(tmp_path: Path, **over: Any) -> Path:
    (tmp_path / "s.lua").write_text(BARE_ENTER)
    sections = {
        "engine": {"symbols": ["AAA", "BBB"]},
        "source": {"type": "simulated", "bars": 10},
        "strategy": {"script": "s.lua"},
    } | over
    return write_config(tmp_path / "c.toml", sections)


def test_ok_config_says_what_it_did_not_check(tmp_path, registry):
    result = validate(config(tmp_path), registry)
    assert result.ok and result.problems == [] and result.warnings == []
    assert result.summary == (
        "backtest, 2 symbols, source simulated, "
        "strategy s.lua on lua (time budget 100 ms per call, memory 64 MB per symbol), broker paper"
    )
    assert result.unchecked == list(NOT_CHECKED_BY_VALIDATE)


def test_live_config_builds_no_broker_and_writes_nothing(tmp_path, registry_with_spy):
    path = config(
        tmp_path,
        engine={"mode": "live", "symbols": ["AAA"], "journal": True},
        broker={"type": "untouchable"},
        sinks=[{"type": "log", "path": "events.log"}],
    )
    result = validate(path, registry_with_spy)
    assert result.ok, result.problems
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "s.lua"]


def test_every_failed_check_is_one_line_naming_the_config(tmp_path, registry):
    (tmp_path / "afile").write_text("")
    path = config(tmp_path, strategy={"script": "s.lua", "params": {"qty": 5}}, report={"dir": "afile/x"})
    (tmp_path / "s.lua").write_text("function watch(ctx) return 'enter'\n")
    result = validate(path, registry)
    assert not result.ok
    assert [p.split(": ")[1] for p in result.problems] == ["report.dir", "s.lua:2"]
    assert all(p.startswith(f"{path}: ") and "\n" not in p for p in result.problems)


def test_config_that_does_not_load_is_one_problem(tmp_path, registry):
    path = tmp_path / "c.toml"
    path.write_text("[engine]\nsymbols = [\n")
    result = validate(path, registry)
    assert len(result.problems) == 1 and result.problems[0].startswith(f"{path}: invalid TOML")


def test_qty_param_that_sizes_nothing_warns_once(tmp_path, registry, root):
    path = config(tmp_path, strategy={"script": "s.lua", "params": {"qty": 5}})
    (warning,) = validate(path, registry).warnings
    assert warning == (
        f"{path}: strategy.params.qty = 5 has no effect: s.lua never reads params.qty, "
        "so an entry is sized by [strategy] qty = 1"
    )
    shipped = config(tmp_path, strategy={"script": str(root / "strategies" / "sma_cross.lua"), "params": {"qty": 5}})
    assert validate(shipped, registry).warnings == []  # sma_cross returns qty = ctx.params.qty
    python = config(
        tmp_path,
        strategy={
            "host": "python",
            "class": str(root / "examples" / "python_sma_cross.py") + ":SmaCross",
            "params": {"qty": 5},
        },
    )
    assert validate(python, registry).warnings == []  # reads ctx.params["qty"]


def test_cannot_create(tmp_path):
    (tmp_path / "afile").write_text("")
    assert cannot_create(tmp_path / "new" / "deeper") is None
    assert cannot_create(tmp_path / "afile") == "it is a file"
    assert cannot_create(tmp_path / "afile" / "x" / "y") == f"{tmp_path / 'afile'} is a file"


def test_the_qty_warning_names_what_sizes_the_entries(tmp_path, registry):
    strategy = {"script": "s.lua", "params": {"qty": 1}}
    # [strategy] qty is 1 too: the entries trade what params.qty says, nothing to warn about
    assert validate(config(tmp_path, strategy=strategy), registry).warnings == []
    path = config(
        tmp_path,
        engine={"symbols": ["A", "B"]},
        strategy=strategy,
        risk={"sizing": "percent_equity", "percent": 0.5, "symbols": {"B": {"sizing": "fixed_qty", "qty": 3}}},
    )
    assert validate(path, registry).warnings == [
        f"{path}: strategy.params.qty = 1 has no effect: s.lua never reads params.qty, so an entry is sized by "
        '[risk.symbols.B] qty = 3 or [risk] sizing = "percent_equity"'
    ]


def test_a_limit_of_the_budget_not_chosen_warns(tmp_path, registry):
    path = config(tmp_path, strategy={"script": "s.lua", "max_instructions": 5000000})
    assert validate(path, registry).warnings == [
        f'{path}: strategy.max_instructions = 5000000 is not used: the CPU budget is budget = "time" (the default); '
        'set budget = "instructions" to count instructions'
    ]
    path = config(tmp_path, strategy={"script": "s.lua", "budget": "instructions", "max_call_ms": 50})
    assert validate(path, registry).warnings == [
        f'{path}: strategy.max_call_ms = 50 is not used: the CPU budget is budget = "instructions"'
    ]
    path = config(tmp_path, strategy={"script": "s.lua", "budget": "instructions", "max_instructions": 5000000})
    result = validate(path, registry)
    assert result.warnings == []
    assert "strategy s.lua on lua (instruction budget 5000000 per call, memory 64 MB per symbol)" in result.summary
