"""The shipped examples as a new user meets them: each validates (the README's
``engine validate examples/*.toml``) and each backtest runs with nothing on
stderr."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine_core.testing import engine_env, write_config
from engine_core.testing import run_engine as engine

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
KEYS = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "BINANCE_API_KEY", "BINANCE_API_SECRET")
BACKTESTS = [p for p in EXAMPLES if 'mode = "backtest"' in p.read_text()]


def test_every_shipped_example_validates_without_a_warning():
    env = engine_env(**{key: "test-key" for key in KEYS})
    proc = engine("validate", *map(str, EXAMPLES), env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert [line.partition(": ok (")[0] for line in proc.stdout.splitlines() if ": ok (" in line] == [
        str(p) for p in EXAMPLES
    ]
    assert (
        f"{ROOT / 'examples' / 'optimize_sma_cross.toml'}: ok (for engine optimize, on "
        f"{ROOT / 'examples' / 'sma_cross.toml'}: backtest, 2 symbols"
    ) in proc.stdout


def test_keys_not_set_are_a_warning_of_validate_and_an_error_of_run(tmp_path):
    env = {k: v for k, v in engine_env().items() if k not in KEYS}
    example = ROOT / "examples" / "binance_testnet.toml"
    proc = engine("validate", str(example), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"warning: {example}: environment variable BINANCE_API_KEY is not set (broker.api_key); engine run needs it",
        f"warning: {example}: environment variable BINANCE_API_SECRET is not set (broker.api_secret); engine run needs it",
    ]
    run = engine("run", "-c", str(example), env=env)
    assert run.returncode == 2
    assert run.stderr == f"error: {example}: broker.api_key: environment variable BINANCE_API_KEY is not set\n"


@pytest.mark.parametrize("example", BACKTESTS, ids=lambda p: p.stem)
def test_every_shipped_backtest_runs_with_nothing_on_stderr(example):
    proc = engine("run", "-q", "--no-report", "-c", str(example), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_an_optimize_table_without_a_backtest_says_how_to_use_it(tmp_path):
    cfg = write_config(tmp_path / "search.toml", {"optimize": {"metric": "sharpe", "params": {"fast": {"low": 2}}}})
    proc = engine("validate", str(cfg))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: {cfg}: engine: required key is missing; this file has an [optimize] table: add the backtest's "
        'tables, or name its config with [optimize] config = "backtest.toml" (engine optimize -c)\n'
    )


def test_an_optimize_file_names_the_problems_of_its_backtest(tmp_path):
    base = write_config(tmp_path / "base.toml", {"engine": {"symbols": []}, "source": {"type": "simulated"}})
    cfg = write_config(tmp_path / "search.toml", {"optimize": {"config": "base.toml"}})
    proc = engine("validate", str(cfg))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: {cfg}: optimize.config: {base} has a problem",
        f"error: {base}: engine.symbols: expected at least 1 item, got []",
        f"error: {base}: strategy: required key is missing",
    ]


def test_every_config_the_readmes_commands_name_is_shipped():
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    named = sorted({name for block in blocks for name in re.findall(r"-c ([\w./-]+\.toml)", block)})
    assert "examples/binance_paper.toml" in named  # engine status, on a live config
    assert [name for name in named if not (ROOT / name).is_file()] == []


def test_an_optimize_file_that_names_its_backtest_holds_nothing_else(tmp_path):
    write_config(tmp_path / "base.toml", {"engine": {"symbols": ["A"]}})
    cfg = write_config(tmp_path / "search.toml", {"optimize": {"config": "base.toml"}, "engine": {"symbols": ["B"]}})
    proc = engine("validate", str(cfg))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: {cfg}: engine: this file names its backtest config (optimize.config); put the backtest's tables there\n"
    )
